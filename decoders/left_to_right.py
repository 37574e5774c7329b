"""Left-to-right decoding (``"dynamic"``): commit the leftmost ``k`` masked positions of the block per step.

Published method: ParallelBench's "left-to-right top-k" (``furiosa-ai/ParallelBench`` ``unmasking=left_to_right``;
in v1 obtained with ``block_length = k`` and one step per block), i.e. autoregressive order with ``k`` tokens
per forward. The candidate is ``argmax(l + T g)`` (LLaDA's proposal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import ops
from .base import StepInput, StepOutput, Strategy
from .llada import llada_candidates
from .registry import register

__all__ = ["LeftToRight"]


@register("left_to_right", aliases=("l2r", "autoregressive"),
          reproduces="furiosa-ai/ParallelBench unmasking=left_to_right (block_length=k, one step per block)")
@dataclass(frozen=True)
class LeftToRight(Strategy):
    """Commit the ``k`` leftmost maskable positions per step (``min(k, remaining)``).

    Args:
        k: tokens per step (default 1).
    """

    k: int = 1
    schedule = "dynamic"  # type: ignore[misc]

    def _validate(self) -> None:
        if self.k < 1:
            self._fail("k", "must be >= 1")

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        xp = ops.namespace(inp.logits)
        tokens = llada_candidates(inp)
        # equal scores: the rank tie-break (lower index first) is exactly the left-to-right order
        score = xp.zeros(inp.maskable.shape, dtype=xp.float32, device=ops.device_of(inp.maskable))
        commit = ops.topk_mask(score, inp.maskable, self.k)
        return StepOutput(tokens, commit, ops.no_remask(inp.maskable), state)
