"""Dream's sampler algorithms: ``origin``, ``maskgit_plus``, ``topk_margin``, ``entropy``.

Published method: ``HKUNLP/Dream`` ``generation_utils.py::DreamGenerationMixin._sample`` and ``sample_tokens``
(the same file ships with the HF checkpoint and in ``NVlabs/Fast-dLLM`` ``dream/model/``); strategies.md
section 2 rows 3-6 and section 6.2. All four are ``"fixed"``: exactly ``steps_per_block`` steps per block.

Per step ``i`` of ``S`` (shapes ``[B, L, V]`` logits, already shifted by the model adapter):

* Sampling distribution ``q = softmax(filter(l / T))`` in float32: temperature (if ``T > 0``), then top-p,
  then top-k, removed entries set to ``finfo.min`` (Dream's ``sample_tokens``; the filters apply at any ``T``).
  Candidate: ``argmax`` at ``T = 0``, otherwise a sample from ``q`` (Gumbel-max with the engine's noise).
* Schedule: ``t, s = timesteps[i], timesteps[i+1]`` of ``linspace(1, eps, S + 1)`` in float32 (torch's
  linspace arithmetic emulated exactly) and ``r_i = 1 - s/t`` (float32); ``r_{S-1} = 1``.
* ``origin``: each maskable position is committed independently with probability ``r_i`` (``uniform < r_i``);
  the last step commits everything.
* ``maskgit_plus`` / ``topk_margin`` / ``entropy``: ``k = int(M * r_i)`` (float32 product, truncated) with ``M``
  the row's current maskable count; commit the top-k by ``q(x_hat)``, ``q1 - q2`` or ``sum q log(q + 1e-10)``.
  ``alg_temp > 0``: draw the ``k`` positions without replacement with probability ``softmax(c / alg_temp)``.

Documented deviations:

* **Per-row quotas.** Dream uses the batch-averaged mask count ``M`` for every row; with unequal rows its top-k
  can pick already-committed positions and write the mask id back into them (strategies.md quirk 5). Here ``M``
  is per row; with equal rows (the normal case, same length and schedule) the two coincide exactly.
* ``alg_temp > 0`` uses the Gumbel-top-k trick on the engine's uniform noise (``keys = c/alg_temp + G(u)``):
  the same distribution as ``torch.multinomial(softmax(c / alg_temp), k)`` without replacement, not the same
  draws. Likewise ``T > 0`` token samples and ``origin``'s Bernoulli draws use engine noise.
* Boundary ties of the top-p filter are kept by value (see ``ops.filter_logits``).
* Inside engine blocks, ``steps_per_block`` plays the role of Dream's global ``steps`` (one block = Dream).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, Optional

from . import ops
from .base import EmptyState, SamplingParams, StepInput, StepOutput, Strategy
from .registry import register

__all__ = ["DreamOrigin", "DreamMaskGITPlus", "DreamTopKMargin", "DreamEntropy", "dream_ratio"]

_REPO = "HKUNLP/Dream generation_utils.py::DreamGenerationMixin._sample"


@functools.lru_cache(maxsize=256)
def _ratio_table(steps: int, eps: float):
    return ops.dream_timestep_ratios(steps, eps)


def dream_ratio(step: Any, steps_per_block: int, eps: float, like: Any) -> Any:
    """0-d float32 ``1 - s/t`` of Dream's schedule at ``step`` (1 at the last step), on ``like``'s device."""
    xp = ops.namespace(like)
    table = xp.asarray(_ratio_table(int(steps_per_block), float(eps)), device=ops.device_of(like))
    return xp.asarray(table[step])  # NumPy returns a scalar for a 0-d index: keep an array


def _dream_distribution(inp: StepInput, dtype: Any):
    """``(tokens, q)``: Dream candidates and the filtered, tempered sampling distribution ``q`` ([B, L, V])."""
    s = inp.sampling
    z, keep = ops.filter_logits(inp.logits, s.temperature, s.top_p, s.top_k, dtype)
    q = ops.softmax(z, dtype)
    tokens = ops.propose(inp.logits, s.temperature, inp.gumbel, keep)
    return tokens, q


@dataclass(frozen=True)
class _DreamBase(Strategy):
    schedule = "fixed"  # type: ignore[misc]

    def _validate(self) -> None:
        if not (0.0 < self.eps < 1.0):
            self._fail("eps", "must be in (0, 1)")

    def init_state(self, block_mask_count: Any, steps_per_block: int) -> EmptyState:
        if int(steps_per_block) < 1:
            raise ValueError(f"steps_per_block must be >= 1, got {steps_per_block!r}.")
        return EmptyState()


@register("origin", aliases=("dream_origin",), reproduces=_REPO + " (alg='origin')")
@dataclass(frozen=True)
class DreamOrigin(_DreamBase):
    """Dream ``origin``: commit each masked position with probability ``1 - s/t``; the last step commits all.

    Args:
        eps: the schedule's end time (``linspace(1, eps, S + 1)``), default 1e-3.
    """

    eps: float = 1e-3

    def needs_uniform_noise(self, sampling: SamplingParams) -> bool:
        return True

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        tokens, _ = _dream_distribution(inp, xp.float32)
        if inp.uniform is None:
            raise ValueError("strategy 'origin' needs StepInput.uniform noise, got None.")
        r = dream_ratio(inp.step, inp.steps_per_block, self.eps, inp.logits)
        commit = inp.maskable & (inp.uniform < xp.astype(r, inp.uniform.dtype))
        return StepOutput(tokens, commit, ops.no_remask(inp.maskable), state)


@dataclass(frozen=True)
class _DreamTopK(_DreamBase):
    """Shared fields and step of the scored Dream algorithms."""

    alg_temp: Optional[float] = None
    eps: float = 1e-3
    precision: Literal["float32", "float64"] = "float32"

    def _score(self, tokens: Any, q: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _validate(self) -> None:
        super()._validate()
        if self.alg_temp is not None and self.alg_temp < 0:
            self._fail("alg_temp", "must be >= 0 or None")

    def needs_uniform_noise(self, sampling: SamplingParams) -> bool:
        return self.alg_temp is not None and self.alg_temp > 0

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        dtype = ops.float_dtype(xp, self.precision)
        tokens, q = _dream_distribution(inp, dtype)
        c = self._score(tokens, q)  # [B, L]
        r = dream_ratio(inp.step, inp.steps_per_block, self.eps, inp.logits)
        m = xp.astype(ops.count(inp.maskable), xp.float32)
        k = xp.astype(xp.floor(m * r), xp.int32)  # int(M * (1 - s/t)): float32 product, truncated
        if self.needs_uniform_noise(inp.sampling):
            if inp.uniform is None:
                raise ValueError(f"strategy {self.type_name!r} with alg_temp > 0 needs StepInput.uniform, got None.")
            # Gumbel-top-k == sampling k without replacement from softmax(c / alg_temp)
            key = xp.astype(c / self.alg_temp, xp.float64) + ops.gumbel_from_uniform(inp.uniform)
        else:
            key = c
        commit = ops.topk_mask(key, inp.maskable, k)
        return StepOutput(tokens, commit, ops.no_remask(inp.maskable), state)


@register("maskgit_plus", aliases=("dream_maskgit_plus", "maskgit"), reproduces=_REPO + " (alg='maskgit_plus')")
@dataclass(frozen=True)
class DreamMaskGITPlus(_DreamTopK):
    """Dream ``maskgit_plus``: top-k by the sampling probability of the candidate, ``k = int(M (1 - s/t))``.

    Args:
        alg_temp: None/0 = deterministic top-k; > 0 = sample positions ``~ softmax(c / alg_temp)``.
        eps: schedule end time (default 1e-3).
        precision: dtype of the sampling distribution (Dream: float32).
    """

    def _score(self, tokens: Any, q: Any) -> Any:
        return ops.take_last(q, tokens)


@register("topk_margin", aliases=("dream_topk_margin",), reproduces=_REPO + " (alg='topk_margin')")
@dataclass(frozen=True)
class DreamTopKMargin(_DreamTopK):
    """Dream ``topk_margin``: top-k by ``q1 - q2`` (top-1 minus top-2 sampling probability).

    Args: as ``maskgit_plus``.
    """

    def _score(self, tokens: Any, q: Any) -> Any:
        return ops.margin(q)


@register("entropy", aliases=("dream_entropy", "neg_entropy"), reproduces=_REPO + " (alg='entropy')")
@dataclass(frozen=True)
class DreamEntropy(_DreamTopK):
    """Dream ``entropy``: top-k by negative entropy ``sum q log(q + 1e-10)`` of the sampling distribution.

    Args: as ``maskgit_plus``.
    """

    def _score(self, tokens: Any, q: Any) -> Any:
        return ops.neg_entropy_eps(q, 1e-10)
