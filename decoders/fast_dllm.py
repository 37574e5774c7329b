"""Fast-dLLM confidence-aware parallel decoding: ``threshold`` and ``factor`` (both ``"dynamic"``).

Published method: ``NVlabs/Fast-dLLM`` ``llada/generate.py``: ``get_transfer_index`` (threshold) and
``get_transfer_index_dynamic`` (factor); strategies.md section 2 rows 7-8 and quirks 7, 8, 14.

Both score the candidate ``x_hat = argmax(l + T g)`` by ``c = softmax(l)[x_hat]`` of the **untempered** logits
computed in **float64** (Fast-dLLM casts before the softmax), restricted to the maskable positions of the current
block. ``steps_per_block`` is ignored: a block runs until it has no masks (at least one commit per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from . import ops
from .base import StepInput, StepOutput, Strategy
from .llada import llada_candidates
from .registry import register

__all__ = ["ConfidenceThreshold", "ConfidenceFactor"]

_REPO = "NVlabs/Fast-dLLM llada/generate.py::"


@register("threshold", aliases=("confidence_threshold", "fast_dllm_threshold", "low_confidence_threshold"),
          reproduces=_REPO + "get_transfer_index(threshold=...)")
@dataclass(frozen=True)
class ConfidenceThreshold(Strategy):
    """Fast-dLLM threshold: commit every maskable position with ``c >= threshold``, and always the top-1.

    Args:
        threshold: confidence threshold tau (default 0.9); ``>=`` as in the reference.
        precision: dtype of the confidence softmax (Fast-dLLM: float64).

    Quirks matched: ``>=`` (the reference drops a candidate only when ``c < tau``); the best position is
    committed even below tau; no step cap.
    """

    threshold: float = 0.9
    precision: Literal["float32", "float64"] = "float64"
    schedule = "dynamic"  # type: ignore[misc]

    def _validate(self) -> None:
        if not (0.0 <= self.threshold <= 1.0):
            self._fail("threshold", "must be in [0, 1]")

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        tokens = llada_candidates(inp)
        c = ops.prob_at(inp.logits, tokens, ops.float_dtype(xp, self.precision))
        commit = ops.threshold_mask(c, inp.maskable, self.threshold, min_k=1)
        return StepOutput(tokens, commit, ops.no_remask(inp.maskable), state)


@register("factor", aliases=("confidence_factor", "fast_dllm_factor", "low_confidence_factor"),
          reproduces=_REPO + "get_transfer_index_dynamic(factor=...)")
@dataclass(frozen=True)
class ConfidenceFactor(Strategy):
    """Fast-dLLM factor: commit the largest confidence prefix with ``c_(r) >= 1 - f/(r+1)`` for ranks r = 2..n.

    With the block's ``M`` maskable confidences sorted descending ``c_(1) >= ... >= c_(M)``, rank 1 always passes.
    ``n`` = (first failing rank) - 1, or ``M`` when nothing fails.

    **Quirk (matched):** when the first failure is at the last rank ``r = M``, all ``M`` are committed (the
    reference's loop index lands on ``M - 1`` both when it breaks there and when it never breaks).

    Args:
        factor: f (default 1.0); larger commits more per step.
        precision: dtype of the confidence softmax (Fast-dLLM: float64). The thresholds are float64.
    """

    factor: float = 1.0
    precision: Literal["float32", "float64"] = "float64"
    schedule = "dynamic"  # type: ignore[misc]

    def _validate(self) -> None:
        if not (self.factor > 0.0):
            self._fail("factor", "must be > 0")

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        tokens = llada_candidates(inp)
        c = ops.prob_at(inp.logits, tokens, ops.float_dtype(xp, self.precision))
        maskable = inp.maskable
        rank = ops.descending_rank(c, maskable)  # 0-based: rank r0 is the reference's rank r = r0 + 1
        m = ops.count(maskable)  # [B]
        thr = 1.0 - self.factor / (xp.astype(rank, xp.float64) + 2.0)  # 1 - f / (r + 1), r = r0 + 1
        fail = maskable & (rank > 0) & (xp.astype(c, xp.float64) < thr)
        big = xp.astype(m, rank.dtype)[..., None]
        first_fail = xp.min(xp.where(fail, rank, big), axis=-1)  # = M when nothing fails
        n = xp.where(first_fail == xp.astype(m, first_fail.dtype) - 1, xp.astype(m, first_fail.dtype), first_fail)
        commit = maskable & (rank < n[..., None])
        return StepOutput(tokens, commit, ops.no_remask(maskable), state)
