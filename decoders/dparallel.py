"""dParallel entropy-threshold decoding (``"dynamic"``).

Published method: ``czg1225/dParallel`` ``LLaDA/generate.py::get_transfer_index_entropy`` (LLaDA) and
``Dream/model/generation_utils_semiar.py::_sample(alg='entropy_threshold')`` (Dream); dparallel.md section 6,
strategies.md row 25 and quirk 10.

Per step: ``H_i = -sum_v p log(p + eps)`` with ``p = softmax(l_i)`` of the **untempered** logits over the full
vocabulary; among the maskable positions of the block, the minimum-entropy one is always committed (ties -> lower
index), plus every other with ``H_i <= threshold`` (LLaDA: ``>`` drops; Dream: ``<`` keeps, i.e. ``strict``).
The candidate is ``argmax(l + T g)`` (greedy at T = 0, as in the published evaluations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from . import ops
from .base import StepInput, StepOutput, Strategy
from .llada import llada_candidates
from .registry import register

__all__ = ["EntropyThreshold", "EntropyThresholdDream"]


@dataclass(frozen=True)
class _EntropyThresholdBase(Strategy):
    schedule = "dynamic"  # type: ignore[misc]

    def _validate(self) -> None:
        if not (self.threshold >= 0.0):
            self._fail("threshold", "must be >= 0 (nats)")
        if not (self.eps >= 0.0):
            self._fail("eps", "must be >= 0")

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        tokens = llada_candidates(inp)
        h = ops.entropy(inp.logits, ops.float_dtype(xp, self.precision), eps=self.eps)
        rank = ops.ascending_rank(h, inp.maskable)
        low = (h < self.threshold) if self.strict else (h <= self.threshold)
        commit = inp.maskable & (low | (rank < 1))
        return StepOutput(tokens, commit, ops.no_remask(inp.maskable), state)


@register("entropy_threshold", aliases=("dparallel", "dparallel_llada", "dparallel_entropy_threshold"),
          reproduces="czg1225/dParallel LLaDA/generate.py::get_transfer_index_entropy")
@dataclass(frozen=True)
class EntropyThreshold(_EntropyThresholdBase):
    """dParallel entropy threshold (LLaDA code): commit the min-entropy position plus all with ``H <= threshold``.

    Args:
        threshold: tau_H in nats (default 0.5: GSM8K / MATH / HumanEval; 0.45 for MBPP).
        precision: dtype of the softmax/entropy (reference: float64).
        eps: ``log(p + eps)`` guard (reference: 1e-12).
        strict: commit ``H < threshold`` instead of ``<=`` (the Dream variant's comparison).
    """

    threshold: float = 0.5
    precision: Literal["float32", "float64"] = "float64"
    eps: float = 1e-12
    strict: bool = False


@register("entropy_threshold_dream", aliases=("dparallel_dream",),
          reproduces="czg1225/dParallel Dream/model/generation_utils_semiar.py::_sample(alg='entropy_threshold') "
                     "+ sample_tokens_with_entropy")
@dataclass(frozen=True)
class EntropyThresholdDream(_EntropyThresholdBase):
    """dParallel entropy threshold (Dream code): min-entropy position plus all with ``H < threshold``.

    Same rule as ``entropy_threshold`` with the Dream sampler's constants: entropy in the logits' dtype
    (float32), ``log(p + 1e-8)``, strict ``<``. Block length 32 in the published runs.

    Args: as ``entropy_threshold`` (defaults ``precision="float32"``, ``eps=1e-8``, ``strict=True``).
    """

    threshold: float = 0.5
    precision: Literal["float32", "float64"] = "float32"
    eps: float = 1e-8
    strict: bool = True
