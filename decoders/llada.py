"""LLaDA fixed-schedule top-k strategies: ``low_confidence``, ``random`` and the generic ``topk``.

Published method: ``ML-GSAI/LLaDA`` ``generate.py::generate`` (``remasking in {"low_confidence", "random"}``),
with ``get_num_transfer_tokens`` for the per-block schedule (strategies.md section 6.1).

Per step, for ``[B, L, V]`` logits ``l``:

1. candidate ``x_hat = argmax(l + T * g)`` in float64 (``g`` the engine's Gumbel noise; ``T = 0`` -> plain argmax);
2. score: ``low_confidence`` -> ``softmax(l)[x_hat]`` of the **untempered** logits (float32 by default, the
   logits' dtype as in LLaDA's ``generate.py``); ``random`` -> the engine's ``uniform`` noise;
3. commit the top ``k_{b,s}`` maskable positions by score, with the schedule
   ``k_{b,s} = floor(m_b / S) + [s < m_b mod S]`` (remainder to the earliest steps) from the block's mask count
   ``m_b`` at block start (``init_state``). After ``S`` steps the block is full.

Quirks and deviations:

* Ties are broken by the lower position index (``torch.topk`` does not promise an order).
* ``k > 0`` replaces the schedule by a fixed number of tokens per step (ParallelBench ``confidence_topk`` with
  ``k``): the strategy becomes ``"dynamic"`` and commits ``min(k, remaining)`` per step until the block is empty.
* ``top_p`` / ``top_k`` (not in LLaDA) only restrict the Gumbel proposal at ``T > 0``; scores stay untempered.
* Confidence precision: ``generate.py`` takes the softmax in the logits' dtype (float32 here, strategies.md
  quirk 14); a later upstream revision casts to float64 (non-MPS path). ``precision="float64"`` matches that one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from . import ops
from .base import SamplingParams, StepInput, StepOutput, Strategy
from .registry import register

__all__ = ["LLaDAState", "LowConfidence", "RandomOrder", "TopK", "llada_candidates", "llada_schedule_quota"]

Precision = Literal["float32", "float64"]


class LLaDAState(NamedTuple):
    """``block_mask_count``: ``[B]`` int, masks in the block when it started (the schedule's ``m_b``)."""

    block_mask_count: Any


def llada_candidates(inp: StepInput) -> Any:
    """``[B, L]`` candidate tokens: ``argmax(l + T g)`` (float64), top-p/top-k restricting the support at T > 0."""
    s = inp.sampling
    keep = None
    if s.temperature > 0 and ((s.top_p is not None and s.top_p < 1) or (s.top_k is not None and s.top_k > 0)):
        xp = ops.namespace(inp.logits)
        _, keep = ops.filter_logits(inp.logits, s.temperature, s.top_p, s.top_k, xp.float32)
    return ops.propose(inp.logits, s.temperature, inp.gumbel, keep)


def llada_schedule_quota(block_mask_count: Any, step: Any, steps_per_block: int) -> Any:
    """``k_{b,s} = floor(m_b / S) + [s < m_b mod S]`` per row (``[B]`` int)."""
    xp = ops.namespace(block_mask_count)
    m = block_mask_count
    base = m // steps_per_block
    rem = m % steps_per_block
    return base + xp.astype(step < rem, base.dtype)


@dataclass(frozen=True)
class _ScheduledTopK(Strategy):
    """Shared step of the LLaDA top-k family (fields ``k`` and ``_score_kind`` defined by subclasses)."""

    none_means = {"k": 0}  # k=None: use the step schedule

    def _score_kind(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def schedule(self) -> str:  # type: ignore[override]
        return "dynamic" if self.k > 0 else "fixed"

    def _validate(self) -> None:
        if self.k < 0:
            self._fail("k", "must be >= 0 (0 = the per-block step schedule)")

    def needs_uniform_noise(self, sampling: SamplingParams) -> bool:
        return self._score_kind() == "random"

    def init_state(self, block_mask_count: Any, steps_per_block: int) -> LLaDAState:
        if int(steps_per_block) < 1:
            raise ValueError(f"steps_per_block must be >= 1, got {steps_per_block!r}.")
        return LLaDAState(block_mask_count=block_mask_count)

    def _scores(self, inp: StepInput, tokens: Any) -> Any:
        xp = ops.namespace(inp.logits)
        kind = self._score_kind()
        if kind == "random":
            if inp.uniform is None:
                raise ValueError(f"strategy {self.type_name!r} needs StepInput.uniform noise, got None.")
            return inp.uniform
        dtype = ops.float_dtype(xp, getattr(self, "precision", "float32"))
        if kind == "confidence":
            return ops.prob_at(inp.logits, tokens, dtype)
        if kind == "margin":
            return ops.margin(ops.softmax(inp.logits, dtype))
        if kind == "entropy":
            return -ops.entropy(inp.logits, dtype)
        raise ValueError(f"unknown score {kind!r}.")  # pragma: no cover

    def step(self, inp: StepInput, state: LLaDAState) -> StepOutput:
        tokens = llada_candidates(inp)
        score = self._scores(inp, tokens)
        if self.k > 0:
            commit = ops.topk_mask(score, inp.maskable, self.k)
        else:
            quota = llada_schedule_quota(state.block_mask_count, inp.step, inp.steps_per_block)
            commit = ops.topk_mask(score, inp.maskable, quota)
        return StepOutput(tokens, commit, ops.no_remask(inp.maskable), state)


@register("low_confidence", aliases=("confidence_topk", "llada_low_confidence"),
          reproduces="ML-GSAI/LLaDA generate.py::generate(remasking='low_confidence') + get_num_transfer_tokens")
@dataclass(frozen=True)
class LowConfidence(_ScheduledTopK):
    """LLaDA low-confidence remasking: commit the top-k_{b,s} by untempered softmax confidence of the candidate.

    Args:
        k: tokens per step; 0 (default) = LLaDA's per-block schedule (``"fixed"``), > 0 = ``min(k, remaining)``
            per step until the block is empty (``"dynamic"``, ParallelBench ``confidence_topk`` with ``k``).
        precision: dtype of the confidence softmax (``"float32"``: LLaDA ``generate.py`` on float32 logits).
    """

    k: int = 0
    precision: Precision = "float32"

    def _score_kind(self) -> str:
        return "confidence"


@register("random", aliases=("llada_random", "random_topk"),
          reproduces="ML-GSAI/LLaDA generate.py::generate(remasking='random')")
@dataclass(frozen=True)
class RandomOrder(_ScheduledTopK):
    """LLaDA random remasking: commit the top-k_{b,s} positions by engine uniform noise (a random order).

    Args:
        k: tokens per step; 0 (default) = the per-block schedule (``"fixed"``), > 0 = ``"dynamic"``.
    """

    k: int = 0

    def _score_kind(self) -> str:
        return "random"


@register("topk",
          reproduces="furiosa-ai/ParallelBench top-k unmasking (confidence_topk / topk_margin / entropy_topk / "
                     "random) on LLaDA generate.py's proposal; margin/entropy as in NEUIR/PC-Sampler "
                     "generate_with_margin / generate_with_entropy")
@dataclass(frozen=True)
class TopK(_ScheduledTopK):
    """Generic top-k: commit ``k`` maskable positions per step by a chosen score of the untempered softmax.

    Args:
        k: tokens per step (default 1, ``"dynamic"``); 0 = LLaDA's per-block schedule (``"fixed"``).
        score: ``"confidence"`` (p of the candidate), ``"margin"`` (top-1 minus top-2 probability),
            ``"entropy"`` (negative entropy), or ``"random"`` (uniform noise).
        precision: dtype of the softmax.
    """

    k: int = 1
    score: Literal["confidence", "margin", "entropy", "random"] = "confidence"
    precision: Precision = "float32"

    def _score_kind(self) -> str:
        return self.score
