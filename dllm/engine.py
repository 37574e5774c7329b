"""The decoding loop, torch backend: blocks, noise, CFG, EOS processors, NFE accounting (strategies.md §1).

::

    canvas = left-padded prompts ++ [MASK] * gen_length          # pad id != mask id; key-padding mask
    position_ids = cumsum(attention_mask) - 1 (pads -> 0)        # padding is invisible (quirk 19 fixed)
    for each block b of block_length slots (semi-AR; one block when block_length == gen_length):
        state = strategy.init_state(masks in block b per row [B], S = steps / num_blocks)
        repeat (fixed: exactly S times; dynamic: until block b has no masks [+ post-edit steps]):
            logits = _forward(canvas)  (+ CFG: cond and uncond as ONE batched forward of 2B rows)
            logits = processors(logits)            # EOS rules, [MASK] suppression   (dllm.processors)
            noise  = Gumbel [B, L, V] f64 if T > 0; uniform [B, L] f64 if the strategy asks (dllm.noise)
            out = strategy.step(StepInput(...), state)
            canvas = where(out.commit, out.tokens, canvas); canvas[out.remask] = MASK
        optional stop_on_eos: rows whose committed tokens contain EOS are filled with EOS and stop

NFE counts model forward passes; a CFG step is **one** forward (of a batch of 2B), like LLaDA's
``generate.py`` (some papers count it as 2).

Mask-token candidates (reference quirk, reproduced by default): LLaDA's, Fast-dLLM's and Dream's samplers never
exclude the mask id from the argmax. When it wins at a position that gets committed, the reference writes the
mask id back, so the position simply stays masked. The engine does the same unless ``suppress_mask_token``:

* a commit of the mask id is allowed; the position stays masked and its decoding order is not set;
* ``maskable`` = masked ∧ generated ∧ column < block end: masks left over in *earlier* blocks stay candidates,
  because the references only blank the scores after the current block (``x0_p[:, block_end:] = -inf``);
  the fixed schedule of a block is still computed from the block's own masks at block start;
* a row that committed the mask id in a block may end that block with masks left (the same slot tends to win
  again, so the reference spends its quota there); a dynamic block stops after ``block_length`` (+ post edit)
  steps if only re-committed mask ids keep it open (the reference loops forever there).

With ``suppress_mask_token=True`` the mask logit is −∞, committing it is a contract error, and every block must
end full.

Designed for what comes next:

* every model call goes through :meth:`Engine._forward` with any leading batch size, so one canvas can be
  expanded into K candidate canvases evaluated in one batched forward (lookahead branches, LoPA); per-row state
  (canvas, masks, order) is kept in tensors, never in Python lists;
* a ``cache`` hook object (:class:`NullCache` now) is passed to ``_forward`` and told about block starts and step
  ends, so KV caches (prefix / dual cache) plug in without touching strategies.
"""
from __future__ import annotations

from typing import Generator, Iterable, NamedTuple, Sequence

import torch

from .config import DecodeConfig
from .decoding import demoted_ids, prompt_rows, resolve_strategy, special_ids, strategy_label
from .noise import NoiseSource
from .outputs import StepEvent
from .processors import classifier_free_guidance, demote_candidates, set_columns_to_neg_inf

from decoders import SamplingParams, StepInput  # the strategy contract types (architecture.md §2)


class NullCache:
    """Cache hook interface, with no caching: every step runs the whole canvas.

    A KV-cache policy implements the same three methods; the engine and the strategies stay unchanged.
    """

    def begin_block(self, block: int, start: int, end: int) -> None:
        """Called before the first forward of a block; canvas columns ``[start, end)`` are the block."""

    def forward(self, model_call, input_ids, attention_mask, position_ids):
        """Return aligned logits ``[N, L, V]`` for ``input_ids [N, L]`` (may reuse cached keys/values)."""
        return model_call(input_ids, attention_mask, position_ids)

    def end_step(self, commit, remask) -> None:
        """Called after a step was written, with its ``[B, L]`` commit / remask masks."""


class BatchResult(NamedTuple):
    """What :meth:`Engine.run` returns (as the generator's return value) for one batch."""

    sequences: torch.Tensor        # [B, G] int64 generated region
    canvas: torch.Tensor           # [B, P + G] final canvas
    prompt_length: int             # P
    decoding_order: torch.Tensor   # [B, G] int64, step of the final commit, -1 never
    nfe: int                       # forwards of this batch
    steps: int                     # strategy steps of this batch
    history: list | None           # list over steps of [B, G] int64 CPU tensors
    branch_forwards: int | None = None  # sequences forwarded per prompt (= nfe without lookahead branches)


class Engine:
    """Runs decoding strategies on one torch model following the model protocol of architecture.md §1.

    Args:
        model: ``model(input_ids [N, L], attention_mask [N, L] bool | None, position_ids [N, L] | None)``
            returning aligned float logits ``[N, L, V]``, with a ``config`` (``mask_token_id``, ``eos_token_id``,
            ``eot_token_id``, ``pad_token_id``, ``vocab_size``).
        mask_id / eos_id / eot_id / pad_id: defaults for the special ids (``None``: from ``model.config``).
        cache: a cache hook object (default :class:`NullCache`).
        branch_executor: where lookahead branches (strategy ``lopa``) are verified: None = one batched forward on
            this device (:class:`dllm.lookahead.LocalBranches`); ``dllm.distributed.torch_branches.TorchBranchGroup``
            spreads them over ``torch.distributed`` ranks.
    """

    def __init__(self, model, *, mask_id: int | None = None, eos_id: int | None = None, eot_id: int | None = None,
                 pad_id: int | None = None, cache=None, branch_executor=None):
        self.model = model
        mc = getattr(model, "config", None)
        self.mask_id = mask_id if mask_id is not None else getattr(mc, "mask_token_id", None)
        self.eos_id = eos_id if eos_id is not None else getattr(mc, "eos_token_id", None)
        self.eot_id = eot_id if eot_id is not None else getattr(mc, "eot_token_id", None)
        self.pad_id = pad_id if pad_id is not None else getattr(mc, "pad_token_id", None)
        self.vocab_size = getattr(mc, "vocab_size", None)
        self.cache = cache
        self.branch_executor = branch_executor
        try:
            self.device = next(model.parameters()).device
        except (AttributeError, StopIteration, TypeError):
            self.device = torch.device("cpu")

    # ---- the one model call -----------------------------------------------------------------------------------
    def _model_call(self, input_ids, attention_mask, position_ids):
        with torch.no_grad():
            return self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids)

    def _forward(self, canvas: torch.Tensor, attention_mask: torch.Tensor | None,
                 position_ids: torch.Tensor | None, cache=None) -> torch.Tensor:
        """Aligned float32 logits ``[N, L, V]`` for ``canvas [N, L]``; N is any leading batch size (B rows, 2B
        for CFG, B*K for branch candidates). ``attention_mask`` / ``position_ids``: ``[N, L]`` or None."""
        if cache is None:
            out = self._model_call(canvas, attention_mask, position_ids)
        else:
            out = cache.forward(self._model_call, canvas, attention_mask, position_ids)
        return out.float()

    # ---- inputs -------------------------------------------------------------------------------------------------
    def _special_ids(self, config: DecodeConfig) -> tuple[int, int | None, int | None, int]:
        return special_ids(config, self.mask_id, self.eos_id, self.eot_id, self.pad_id, self.vocab_size)

    def prepare(self, input_ids: Sequence[Sequence[int]], gen_length: int, mask_id: int, pad_id: int):
        """Left-padded canvas ``[B, P + G]``, key-padding mask and positions (``None`` when nothing is padded)."""
        rows = prompt_rows(input_ids, self.vocab_size)
        B, P = len(rows), max(len(r) for r in rows)
        L = P + gen_length
        canvas = torch.full((B, L), pad_id, dtype=torch.long)
        attn = torch.zeros((B, L), dtype=torch.bool)
        for i, r in enumerate(rows):
            if r:
                canvas[i, P - len(r):P] = torch.tensor(r, dtype=torch.long)
            attn[i, P - len(r):] = True
        canvas[:, P:] = mask_id
        padded = any(len(r) != P for r in rows)
        position_ids = (attn.long().cumsum(-1) - 1).clamp_min(0) if padded else None
        dev = self.device
        return (canvas.to(dev), attn.to(dev) if padded else None,
                position_ids.to(dev) if padded else None, attn.to(dev), P)

    # ---- the loop -----------------------------------------------------------------------------------------------
    def run(self, input_ids: Sequence[Sequence[int]], config: DecodeConfig, strategy=None, *,
            record_history: bool = False, cache=None) -> Generator[StepEvent, None, BatchResult]:
        """Decode one batch, yielding a :class:`~dllm.outputs.StepEvent` per step; returns a :class:`BatchResult`
        (``result = yield from engine.run(...)``).

        Args:
            input_ids: B prompts as lists of token ids (ragged; left-padded here).
            config: the decoding parameters.
            strategy: strategy object (default: resolved from ``config.strategy``).
            record_history: keep a CPU copy of the generated region after every step.
            cache: cache hook (default: the engine's, else :class:`NullCache`).
        """
        strategy = resolve_strategy(config.strategy if strategy is None else strategy)
        if getattr(strategy, "requires_branches", False):  # LoPA lookahead branches: the branch loop
            from .lookahead import run_lookahead

            return (yield from run_lookahead(self, input_ids, config, strategy, record_history=record_history,
                                             cache=cache, executor=self.branch_executor))
        label = strategy_label(strategy)
        schedule = getattr(strategy, "schedule", "fixed")
        if schedule not in ("fixed", "dynamic"):
            raise ValueError(f"strategy {label!r} has schedule {schedule!r}; expected 'fixed' or 'dynamic'.")
        cache = cache or self.cache or NullCache()
        mask_id, eos_id, eot_id, pad_id = self._special_ids(config)
        G, BL, S = config.gen_length, config.block_len, config.steps_per_block
        T = float(config.temperature)
        sampling = SamplingParams(temperature=T, top_p=config.top_p, top_k=config.top_k)
        needs_uniform = bool(getattr(strategy, "needs_uniform_noise", lambda s: False)(sampling))
        post_edit = int(getattr(strategy, "max_post_edit_steps", 0) or 0)
        stop_ids = [i for i in (eos_id, eot_id) if i is not None]
        demote = demoted_ids(eos_id, eot_id, T, config.llada_eos_quirk) if config.confidence_eos_eot_inf else []
        neg_inf_ids = ([eos_id] if config.logits_eos_inf else []) + ([mask_id] if config.suppress_mask_token else [])
        allow_mask_commits = not config.suppress_mask_token

        canvas, attn, pos, real, P = self.prepare(input_ids, G, mask_id, pad_id)
        B, L = canvas.shape
        dev = canvas.device
        noise = NoiseSource(config.seed, dev)
        col = torch.arange(L, device=dev)
        gen_cols = col >= P                                       # [L] generated region
        prompt_mask = real & ~gen_cols                            # [B, L] real prompt tokens (CFG blanks them)
        order = torch.full((B, L), -1, dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)        # rows stopped by stop_on_eos
        history = [] if record_history else None
        nfe = 0
        step = 0
        if config.cfg_scale > 0:
            # LLaDA quirk 3 fixed: the reference only duplicates an attention mask that was passed in and fails
            # without one; here the key-padding mask always exists (all ones when nothing is padded, passed as
            # None then, which the model treats identically).
            cfg_attn = None if attn is None else torch.cat([attn, attn])
            cfg_pos = None if pos is None else torch.cat([pos, pos])

        for blk in range(config.num_blocks):
            start, end = P + blk * BL, P + (blk + 1) * BL
            in_block = (col >= start) & (col < end)              # [L]
            before_end = gen_cols & (col < end)                  # [L]
            block_mask_count = ((canvas == mask_id) & in_block).sum(-1)  # [B]
            if config.stop_on_eos and bool(done.all()):
                break
            if int(block_mask_count.sum()) == 0:
                continue  # every row of the batch already stopped
            state = strategy.init_state(block_mask_count, S)
            cache.begin_block(blk, start, end)
            max_steps = S if schedule == "fixed" else BL + post_edit
            s = 0
            edits_left = post_edit
            changed = True
            recommitted = torch.zeros_like(canvas, dtype=torch.bool)  # slots where the mask id was "committed"
            while True:
                masked = canvas == mask_id
                # masked ∧ before the block end ∧ generated (never prompt / pad); earlier blocks only hold masks
                # when a mask id was "committed" there (module docstring)
                maskable = masked & before_end
                has_maskable = (masked & in_block).any(-1)       # [B] the current block still has masks
                if schedule == "fixed":
                    if s >= S:
                        break
                elif not bool(has_maskable.any()):
                    if edits_left <= 0 or not changed:
                        break
                    edits_left -= 1
                if s >= max_steps:
                    if allow_mask_commits:
                        break  # only re-committed mask ids keep the block open (the reference would loop forever)
                    raise RuntimeError(f"strategy {label!r} did not finish block {blk} within {max_steps} steps "
                                       f"(block_length {BL} + {post_edit} post-edit steps).")

                # 1. forward (one NFE; CFG = one batched forward of 2B rows)
                if config.cfg_scale > 0:
                    uncond = canvas.masked_fill(prompt_mask, mask_id)
                    both = self._forward(torch.cat([canvas, uncond]), cfg_attn, cfg_pos, cache)
                    logits = classifier_free_guidance(both[:B], both[B:], float(config.cfg_scale))
                else:
                    logits = self._forward(canvas, attn, pos, cache)
                nfe += 1
                # 2. processors
                set_columns_to_neg_inf(logits, neg_inf_ids)
                # 3. noise from the engine's generator
                gumbel = noise.gumbel(logits.shape) if T > 0 else None
                uniform = noise.uniform((B, L)) if needs_uniform else None
                if demote:
                    logits, gumbel = demote_candidates(logits, gumbel, T, demote)
                # 4. strategy
                inp = StepInput(logits=logits, canvas=canvas, maskable=maskable,
                                step=torch.tensor(s, device=dev), steps_per_block=S, sampling=sampling,
                                gumbel=gumbel, uniform=uniform)
                out = strategy.step(inp, state)
                state = out.state
                commit = torch.as_tensor(out.commit, device=dev).bool()
                remask = torch.as_tensor(out.remask, device=dev).bool() if out.remask is not None \
                    else torch.zeros_like(commit)
                tokens = torch.as_tensor(out.tokens, device=dev).long()
                # 5. check the contract, then write
                committed_in_block = ~masked & in_block & gen_cols & ~done[:, None]
                self._check_step(label, blk, commit, remask, tokens, maskable, committed_in_block,
                                 maskable.any(-1), schedule, None if allow_mask_commits else mask_id)
                new = torch.where(commit, tokens, canvas).masked_fill(remask, mask_id)
                if post_edit:  # only edit steps need to know whether anything changed (a host sync)
                    changed = bool((new != canvas).any())
                recommitted |= commit & (new == mask_id)
                order = torch.where(commit & (new != mask_id), step, order).masked_fill(remask, -1)
                canvas = new
                cache.end_step(commit, remask)
                if history is not None:
                    history.append(canvas[:, P:].cpu())
                yield StepEvent(step=step, block=blk, step_in_block=s, committed=commit[:, P:],
                                remasked=remask[:, P:], tokens=canvas[:, P:], canvas=canvas, nfe=nfe,
                                prompt_length=P)
                s += 1
                step += 1

            # A row may end its block with masks only if it "committed" the mask id in this block (the reference
            # then spends the quota on that slot and leaves the others masked); any other row must end full.
            left = int(((canvas == mask_id) & in_block & ~recommitted.any(-1, keepdim=True)).sum())
            if left:
                raise RuntimeError(f"strategy {label!r} left {left} masked position(s) in block {blk} after its "
                                   f"{s} steps; a 'fixed' strategy must fill its block within steps_per_block={S}.")
            if config.stop_on_eos and stop_ids:
                gen = canvas[:, P:]
                is_stop = torch.isin(gen, torch.tensor(stop_ids, device=dev)) & (col[P:] < end)
                newly = is_stop.any(-1) & ~done
                if bool(newly.any()):
                    first = torch.where(is_stop, torch.arange(G, device=dev), G).min(-1).values  # [B]
                    after = (torch.arange(G, device=dev)[None] > first[:, None]) & newly[:, None]
                    gen = gen.masked_fill(after, eos_id)
                    canvas = torch.cat([canvas[:, :P], gen], dim=1)
                    order[:, P:] = order[:, P:].masked_fill(after, -1)
                    done = done | newly

        return BatchResult(sequences=canvas[:, P:], canvas=canvas, prompt_length=P,
                           decoding_order=order[:, P:], nfe=nfe, steps=step, history=history, branch_forwards=nfe)

    @staticmethod
    def _check_step(label, blk, commit, remask, tokens, maskable, committed_in_block, has_maskable, schedule,
                    mask_id):
        """Contract checks of architecture.md §2 (one host sync for all of them). ``mask_id=None``: committing
        the mask id is allowed (the reference quirk, module docstring)."""
        bad_commit = commit & ~(maskable | committed_in_block)    # outside the block, prompt, padding
        bad_remask = remask & ~(committed_in_block | commit)
        bad_token = commit & (tokens == mask_id) if mask_id is not None else torch.zeros_like(commit)
        stuck = has_maskable & ~(commit & maskable).any(-1) if schedule == "dynamic" else torch.zeros_like(
            has_maskable)
        flags = torch.stack([bad_commit.any(), bad_remask.any(), bad_token.any(), stuck.any()]).tolist()
        if flags[0]:
            raise RuntimeError(f"strategy {label!r} committed position(s) outside the maskable set of block {blk} "
                               "(prompt, padding or another block).")
        if flags[1]:
            raise RuntimeError(f"strategy {label!r} remasked position(s) that are not committed generated tokens "
                               f"of block {blk}.")
        if flags[2]:
            raise RuntimeError(f"strategy {label!r} committed the mask token itself.")
        if flags[3]:
            raise RuntimeError(f"dynamic strategy {label!r} committed nothing in a step although block {blk} still "
                               "has masked positions; a dynamic strategy must commit at least one per step.")


def answer_lengths(sequences: torch.Tensor, stop_ids: Iterable[int]) -> torch.Tensor:
    """``[B]`` number of tokens before the first stop token (EOS / EoT) of each row (``G`` if none)."""
    G = sequences.shape[-1]
    ids = [int(i) for i in stop_ids if i is not None]
    if not ids:
        return torch.full(sequences.shape[:-1], G, dtype=torch.long)
    is_stop = torch.isin(sequences, torch.tensor(ids, device=sequences.device))
    idx = torch.arange(G, device=sequences.device)
    return torch.where(is_stop, idx, G).min(-1).values


__all__ = ["Engine", "NullCache", "BatchResult", "SamplingParams", "StepInput", "resolve_strategy",
           "answer_lengths"]
