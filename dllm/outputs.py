"""Result types of the decoding API: :class:`GenerationOutput` (one call) and :class:`StepEvent` (one step)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class StepEvent:
    """What one decoding step did, yielded by :func:`dllm.iterate` (one event per model forward).

    Tensors live on the model's device; positions index the generated region (``[B, gen_length]``) except
    ``canvas``, which is the whole left-padded canvas ``[B, P + gen_length]`` (P = longest prompt in the batch).

    Attributes:
        step: global step index in this batch (0-based; equals ``nfe - 1``).
        block: index of the semi-autoregressive block being decoded.
        step_in_block: step index within that block.
        committed: ``[B, gen_length]`` bool, positions written by this step (new tokens and edits).
        remasked: ``[B, gen_length]`` bool, positions turned back into ``[MASK]`` by this step.
        tokens: ``[B, gen_length]`` int64, the generated region after the step (mask id where still masked).
        canvas: ``[B, P + gen_length]`` int64, the full canvas after the step.
        nfe: model forward passes so far in this batch (a CFG step is one batched forward).
        prompt_length: P, where the generated region starts in ``canvas``.
        row_forwards: ``[B]`` int64 or None: the forwards this step would have cost each row decoded alone (set by
            the lookahead loop, whose batched verification also forwards rows that no longer need it); None: every
            row that took part is charged the step's forwards.
        row_branch_forwards: ``[B]`` int64 or None: the sequences (bare canvas, anchor, lookahead branches) this step
            would have forwarded for each row decoded alone (lookahead loops only).
    """

    step: int
    block: int
    step_in_block: int
    committed: Any
    remasked: Any
    tokens: Any
    canvas: Any
    nfe: int
    prompt_length: int
    row_forwards: Any = None
    row_branch_forwards: Any = None


@dataclass(frozen=True)
class GenerationOutput:
    """Result of :func:`dllm.generate`. All fields are plain Python data (JSON-serialisable).

    Attributes:
        sequences: ``[B][gen_length]`` generated token ids (the answer region only, prompt excluded).
        texts: decoded answers, cut at the first EOS / EoT and without special tokens ("" without a tokenizer).
        nfe: per row, the model forward passes of the batch the row was decoded in. Rows decoded together share
            forwards, so every row of a batch reports the batch's NFE. One CFG step (conditional + unconditional
            as one batch of 2B) counts as **one** forward.
        steps: per row, decoding steps of its batch (equal to ``nfe`` for this engine: one forward per step).
        total_nfe: forward passes summed over all batches of the call.
        num_answer_tokens: per row, generated tokens before the first EOS / EoT (the "real answer").
        tokens_per_forward: per row, ``num_answer_tokens / nfe``: real answer tokens per forward, **excluding**
            the first EOS/EoT and everything after it (the EOS padding that inflates parallelism), strategies.md §7.
        tokens_per_step: per row, ``gen_length / nfe`` (ParallelBench's "tokens per step", padding included).
        decoding_order: ``[B][gen_length]`` global step index at which each position received its final token
            (-1: never committed by the strategy, e.g. filled by ``stop_on_eos``); only with ``return_order=True``.
        history: ``[B][step][gen_length]`` the generated region after every step (mask id where masked);
            only with ``return_history=True``.
        prompt_ids: the prompt token ids actually decoded (after the chat template).
        config: the :class:`~dllm.DecodeConfig` used.
        branch_forwards: per row, the sequences forwarded for that row's batch, per prompt: equal to ``nfe``
            without lookahead; with strategy ``lopa`` each forward verifies up to ``num_lookahead + 1`` branches
            of every prompt as one batch (``nfe`` still counts batched forwards).
        total_branch_forwards: ``branch_forwards`` summed over the batches of the call (one count per batch).
    """

    sequences: list
    texts: list
    nfe: list
    steps: list
    total_nfe: int
    num_answer_tokens: list
    tokens_per_forward: list
    tokens_per_step: list
    decoding_order: Optional[list] = None
    history: Optional[list] = None
    prompt_ids: list = field(default_factory=list)
    config: Any = None
    branch_forwards: Optional[list] = None
    total_branch_forwards: Optional[int] = None

    def to_tuple(self) -> tuple:
        """``(sequences, texts, nfe, steps, decoding_order, history)``, like ``return_dict=False`` in diffusers."""
        return (self.sequences, self.texts, self.nfe, self.steps, self.decoding_order, self.history)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("sequences", "texts", "nfe", "steps", "total_nfe", "num_answer_tokens",
                                           "tokens_per_forward", "tokens_per_step", "decoding_order", "history",
                                           "prompt_ids", "branch_forwards", "total_branch_forwards")}
        d["config"] = self.config.to_dict() if hasattr(self.config, "to_dict") else self.config
        return d


__all__ = ["StepEvent", "GenerationOutput"]
