"""Per-row forward accounting of a batched lookahead (LoPA) loop, shared by the torch loop (:mod:`dllm.lookahead`)
and the JAX one (:mod:`dllm.distributed.jax_branches`), on torch tensors or NumPy arrays alike.

A batch verifies every row's branches in one forward, but a row whose anchor already filled its block has no
lookahead: decoded alone it would skip that verification and forward its bare canvas at its next step instead.
:class:`RowForwardLedger` counts, per step, what each row would have run alone (greedy), which is what
``StepEvent.row_forwards`` / ``row_branch_forwards`` report and ``bench.runner.decode_batch`` charges.
"""
from __future__ import annotations

from typing import Any


class RowForwardLedger:
    """Per step: ``begin(has_maskable)``, then ``verified(has_maskable, lvalid)`` after a verification forward or
    ``skipped(has_maskable)`` when there was none; ``forwards`` / ``branches`` then hold the step's ``[B]`` counts.

    Args:
        stale: ``[B]`` bool, all True: no row has logits of its canvas yet.

    Attributes:
        forwards: ``[B]`` int, forwards the step would cost each row alone (bare canvas + verification).
        branches: ``[B]`` int, sequences the step would forward for each row alone (bare canvas, anchor, and the
            row's own valid lookahead branches).
    """

    def __init__(self, stale: Any):
        self.stale = stale
        self.forwards = self.branches = None

    def begin(self, has_maskable: Any) -> None:
        """``has_maskable``: ``[B]`` bool, rows with masks left in the block; a stale one forwards its canvas."""
        self.forwards = (has_maskable & self.stale) * 1
        self.branches = self.forwards * 1
        self.stale = self.stale & ~has_maskable

    def skipped(self, has_maskable: Any) -> None:
        """No verification this step: every active row must forward its bare canvas next step."""
        self.stale = self.stale | has_maskable

    def verified(self, has_maskable: Any, lvalid: Any) -> None:
        """``lvalid``: ``[B, k]`` bool, each row's valid lookaheads in the verification; a row without any would
        have skipped it alone (and forwards its bare canvas next step)."""
        verified = lvalid.any(-1)
        took_part = has_maskable & verified
        self.forwards = self.forwards + took_part * 1
        self.branches = self.branches + took_part * (lvalid.sum(-1) + 1)
        self.stale = self.stale | (has_maskable & ~verified)
