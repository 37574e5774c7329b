"""EB-Sampler: entropy-bounded unmasking (``"dynamic"``).

Published method: Ben-Hamu et al., "Accelerated Sampling from Masked Diffusion Models via Entropy Bounded
Unmasking", arXiv 2505.24857; the reimplementation reproduced is ``NEUIR/PC-Sampler``
``src/generate.py::generate_with_eb_sampler`` (strategies.md row 9 and section 2.1).

Per step, over the maskable positions of the block:

1. ``H_i`` = entropy of ``softmax(l_i)`` (untempered, float32 like ``torch.distributions.Categorical``);
   in bits when ``units="bits"`` (DUS's copy, used there with gamma = 1.0).
2. Order the positions by the error proxy, best first: ``error="entropy"`` (ascending ``H``, the default),
   ``"confidence"`` (descending ``p(x_hat)``) or ``"margin"`` (descending top-1 minus top-2 probability);
   ties -> lower index.
3. Commit the largest prefix ``n`` with ``sum_{j<=n} H_(j) - max_{j<=n} H_(j) <= gamma`` (at least 1). The left
   side bounds the joint dependence of the committed set. With ``error="entropy"`` the running max is simply the
   last entropy; with the other orders it is a true running max.

The reproduced code supports only the entropy order (``error="entropy"``, bit-identical arithmetic on torch:
``Categorical(logits=...).entropy()``, cumsum, cummax, ``<=``). The ``"confidence"`` / ``"margin"`` orders are the
paper's alternative error proxies, implemented here as "order by that proxy, bound the entropies" (a toolkit
interpretation, not a reproduced code path).

There is no step cap: the engine runs until the block has no masks. The candidate is ``argmax(l + T g)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from . import ops
from .base import StepInput, StepOutput, Strategy
from .llada import llada_candidates
from .registry import register

__all__ = ["EBSampler"]


@register("eb_sampler", aliases=("eb", "entropy_bound", "entropy_bounded"),
          reproduces="NEUIR/PC-Sampler src/generate.py::generate_with_eb_sampler (EB-Sampler, arXiv 2505.24857)")
@dataclass(frozen=True)
class EBSampler(Strategy):
    """EB-Sampler: commit the largest low-error prefix whose entropy sum minus max stays below ``gamma``.

    Args:
        gamma: the entropy budget (default 0.01, PC-Sampler scripts; DUS uses 1.0 in bits).
        error: ordering proxy, ``"entropy"`` | ``"confidence"`` | ``"margin"``.
        units: ``"nats"`` (natural log) or ``"bits"``.
        precision: dtype of the softmax / entropy (reference: the logits' dtype, float32).
    """

    gamma: float = 0.01
    error: Literal["entropy", "confidence", "margin"] = "entropy"
    units: Literal["nats", "bits"] = "nats"
    precision: Literal["float32", "float64"] = "float32"
    schedule = "dynamic"  # type: ignore[misc]

    def _validate(self) -> None:
        if not (self.gamma >= 0.0):
            self._fail("gamma", "must be >= 0")

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        dtype = ops.float_dtype(xp, self.precision)
        maskable = inp.maskable
        tokens = llada_candidates(inp)
        h = ops.entropy(inp.logits, dtype)  # [B, L] nats
        if self.units == "bits":
            h = h / math.log(2.0)
        if self.error == "entropy":
            score = -h
        elif self.error == "confidence":
            score = ops.prob_at(inp.logits, tokens, dtype)
        else:
            score = ops.margin(ops.softmax(inp.logits, dtype))
        order = ops.descending_order(score, maskable)  # maskable first, best first
        rank = ops.stable_argsort(order, axis=-1)
        mask_sorted = ops.take_last_axis(maskable, order)
        h_sorted = ops.take_last_axis(h, order)
        h_sorted = xp.where(mask_sorted, h_sorted, xp.zeros_like(h_sorted))
        bound = ops.cumsum(h_sorted, axis=-1) - ops.cummax(h_sorted, axis=-1)
        n = ops.count(mask_sorted & (bound <= self.gamma))
        n = xp.where(n < 1, xp.ones_like(n), n)  # at least one (a row without maskable positions commits nothing anyway)
        commit = maskable & (rank < n[..., None])
        return StepOutput(tokens, commit, ops.no_remask(maskable), state)
