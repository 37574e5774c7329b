"""LoPA lookahead branch decoding, torch backend: the branch loop driven by :class:`~dllm.engine.Engine`.

The engine dispatches here when the strategy has ``requires_branches`` (``decoders.Lopa``); the strategy keeps
only hyperparameters and backend-neutral helpers (``decoders.lopa``). One **iteration** costs one batched forward::

    logits  = winner's logits of the previous forward (the very first iteration, and the first one after every
              row's block was completed by its anchor, forwards the current canvas alone)
    anchor  = base.step(logits, canvas)                          # threshold / factor / entropy / EB ... rule
    look_j  = anchor + the j-th best remaining masked position of the block (the base's proposal there), j <= k
    forward [anchor, look_1 .. look_k] of every prompt as ONE batch of B * (k' + 1) rows   (k' = min(k, cands))
    scores  = alpha * creation + (1 - alpha) * future confidence (own logits)    -> winner per prompt
    canvas, logits = winner's canvas and logits                                 # drive the next fill

NFE counts batched forwards (iterations); ``branch_forwards`` counts the sequences each prompt had forwarded
(``sum(k' + 1)``). With ``num_lookahead = 0`` the forwards, noise draws and tokens are exactly the base
strategy's. Everything per row is vectorised; the only host syncs are the ones the engine already makes per step
plus ``k'`` (so the branch batch shrinks at block ends instead of forwarding copies).

Branch parallelism plugs in through the **executor** (``verify`` = forward + score + winner, ``share`` = make the
fill computed by the device that holds a row's winner logits known to every device): :class:`LocalBranches` here,
``dllm.distributed.torch_branches.TorchBranchGroup`` across ``torch.distributed`` ranks.

Sampling pipeline inside an iteration (as the engine's, style.md §2.12): forward -> CFG -> ``-inf`` processors
(EOS / mask columns; also used for scoring) -> noise -> EOS/EoT demotion (fill and lookahead ranking only) ->
base rule -> lookahead candidates -> batched verification.
"""
from __future__ import annotations

from typing import Any, Generator, NamedTuple, Sequence

import torch

from .config import DecodeConfig
from .noise import NoiseSource
from .outputs import StepEvent
from .decoding import demoted_ids
from .row_accounting import RowForwardLedger
from .processors import classifier_free_guidance, demote_candidates, set_columns_to_neg_inf

__all__ = ["Verified", "LocalBranches", "BranchContext", "run_lookahead"]


class Verified(NamedTuple):
    """Result of verifying a set of branches.

    Attributes:
        scores: ``[B, K1]`` branch confidences (``-inf`` for invalid branches), identical on every device.
        winner: ``[B]`` int64 winning branch, identical on every device.
        logits: ``[B, L, V]`` the winner's processed logits for the rows whose winner this device computed
            (other rows hold some other branch's logits and must not be used); None when this device computed
            no branch.
        owner: ``[B]`` int64 device (rank) holding each row's winner logits, or None when every device holds them
            (replicated single-branch forward).
    """

    scores: torch.Tensor
    winner: torch.Tensor
    logits: torch.Tensor | None
    owner: torch.Tensor | None


class BranchContext:
    """What an executor needs from the loop: the forward with the row's padding / positions / CFG, the ``-inf``
    processors, and the branch score (``decoders.lopa``) over the current scope."""

    def __init__(self, engine, strategy, attn, pos, prompt_mask, config: DecodeConfig, mask_id: int,
                 neg_inf_ids: Sequence[int]):
        self.engine = engine
        self.strategy = strategy
        self.attn, self.pos, self.prompt_mask = attn, pos, prompt_mask
        self.cfg_scale = float(config.cfg_scale)
        self.mask_id = mask_id
        self.neg_inf_ids = list(neg_inf_ids)
        self.scope = (0, prompt_mask.shape[-1])

    def set_block(self, start: int, end: int) -> None:
        L = self.prompt_mask.shape[-1]
        self.scope = (start, end) if self.strategy.branch_scope == "block" else (start, L)

    def forward(self, rows: torch.Tensor, row_of: torch.Tensor) -> torch.Tensor:
        """Processed logits ``[N, L, V]`` of canvases ``rows [N, L]`` belonging to prompts ``row_of [N]``."""
        engine = self.engine
        attn = None if self.attn is None else self.attn[row_of]
        pos = None if self.pos is None else self.pos[row_of]
        if self.cfg_scale > 0:
            N = rows.shape[0]
            uncond = rows.masked_fill(self.prompt_mask[row_of], self.mask_id)
            a2 = None if attn is None else torch.cat([attn, attn])
            p2 = None if pos is None else torch.cat([pos, pos])
            both = engine._forward(torch.cat([rows, uncond]), a2, p2)
            logits = classifier_free_guidance(both[:N], both[N:], self.cfg_scale)
        else:
            logits = engine._forward(rows, attn, pos)
        return set_columns_to_neg_inf(logits, self.neg_inf_ids)

    def branch_scores(self, logits: torch.Tensor, branches: torch.Tensor, valid: torch.Tensor,
                      creation: torch.Tensor) -> torch.Tensor:
        """``[B, g]`` branch confidences from ``logits [B, g, L, V]`` of ``branches [B, g, L]``."""
        from decoders.lopa import branch_confidence, position_scores

        a, b = self.scope
        s = self.strategy
        sc = position_scores(logits[:, :, a:b], s.branch_score)
        masked = branches[:, :, a:b] == self.mask_id
        return branch_confidence(sc, masked, creation.to(sc.dtype), s.alpha, s.rho, valid)


class LocalBranches:
    """Single device: every branch of every prompt in one batched forward."""

    rank = 0
    world_size = 1

    def verify(self, ctx: BranchContext, branches: torch.Tensor, valid: torch.Tensor,
               creation: torch.Tensor) -> Verified:
        """Forward ``branches [B, K1, L]`` as one batch, score them, pick the winners."""
        from decoders.lopa import select_winner

        B, K1, L = branches.shape
        row_of = torch.arange(B, device=branches.device).repeat_interleave(K1)
        logits = ctx.forward(branches.reshape(B * K1, L), row_of)
        logits = logits.view(B, K1, L, logits.shape[-1])
        scores = ctx.branch_scores(logits, branches, valid, creation)
        winner = select_winner(scores)
        win_logits = logits[torch.arange(B, device=branches.device), winner] if K1 > 1 else logits[:, 0]
        return Verified(scores, winner, win_logits, None)

    def share(self, owner, *tensors):
        """Rows computed by their owner, on every device (nothing to do on one device)."""
        return tensors


def run_lookahead(engine, input_ids: Sequence[Sequence[int]], config: DecodeConfig, strategy, *,
                  record_history: bool = False, cache=None, executor=None) -> Generator[StepEvent, None, Any]:
    """Decode one batch with LoPA lookahead branches; yields a :class:`StepEvent` per iteration and returns the
    engine's ``BatchResult`` (with ``branch_forwards``). Called by :meth:`Engine.run`.

    Args:
        engine: the :class:`~dllm.engine.Engine` (model call, special ids, canvas preparation).
        input_ids: B prompts (ragged, left-padded).
        config: decoding parameters (``steps`` only sets ``steps_per_block`` for the base's ``init_state``).
        strategy: a ``decoders.Lopa`` (or any object with ``base_strategy``, ``num_lookahead``, ``alpha``,
            ``rho``, ``branch_score``, ``branch_scope``).
        record_history: keep a CPU copy of the generated region after every iteration.
        cache: must be None / :class:`~dllm.engine.NullCache` (branch-aware KV caches do not exist yet).
        executor: :class:`LocalBranches` (default) or a branch-parallel executor.
    """
    from decoders.lopa import lookahead_candidates, position_scores, build_branches

    from .decoding import strategy_label
    from .engine import BatchResult, NullCache, SamplingParams, StepInput

    cache = cache or engine.cache
    if cache is not None and type(cache) is not NullCache:
        raise NotImplementedError("strategy 'lopa' does not support KV caches yet (the branches would need "
                                  "branch-aware cache slices); run it without a cache.")
    executor = executor or LocalBranches()
    base = strategy.base_strategy
    label = f"lopa[{strategy_label(base)}]"
    if getattr(base, "schedule", "fixed") != "dynamic":
        raise ValueError(f"strategy 'lopa' needs a 'dynamic' base, got {strategy_label(base)!r}.")
    K = int(strategy.num_lookahead)
    mask_id, eos_id, eot_id, pad_id = engine._special_ids(config)
    G, BL, S = config.gen_length, config.block_len, config.steps_per_block
    T = float(config.temperature)
    sampling = SamplingParams(temperature=T, top_p=config.top_p, top_k=config.top_k)
    needs_uniform = bool(getattr(base, "needs_uniform_noise", lambda s: False)(sampling))
    stop_ids = [i for i in (eos_id, eot_id) if i is not None]
    demote = demoted_ids(eos_id, eot_id, T, config.llada_eos_quirk) if config.confidence_eos_eot_inf else []
    # The mask id is never a lookahead candidate (whatever ``suppress_mask_token`` says): a branch that "commits"
    # it would be a duplicate of its parent, and LoPA's reference (D2F) never proposes it either.
    neg_inf_ids = ([eos_id] if config.logits_eos_inf else []) + [mask_id]

    canvas, attn, pos, real, P = engine.prepare(input_ids, G, mask_id, pad_id)
    B, L = canvas.shape
    dev = canvas.device
    noise = NoiseSource(config.seed, dev)
    col = torch.arange(L, device=dev)
    rows = torch.arange(B, device=dev)
    gen_cols = col >= P
    prompt_mask = real & ~gen_cols
    ctx = BranchContext(engine, strategy, attn, pos, prompt_mask, config, mask_id, neg_inf_ids)
    order = torch.full((B, L), -1, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    history = [] if record_history else None
    ones_b1 = torch.ones((B, 1), dtype=torch.bool, device=dev)
    nfe = branch_forwards = step = 0
    logits = None   # [B, L, V] winner logits of `canvas` for the rows this device owns (None: it owns none)
    owner = None    # [B] rank holding each row's logits, None = every rank (replicated)
    stale = True    # `canvas` has no logits yet: forward it alone first
    ledger = RowForwardLedger(torch.ones(B, dtype=torch.bool, device=dev))  # per-row forwards as if decoded alone

    for blk in range(config.num_blocks):
        start, end = P + blk * BL, P + (blk + 1) * BL
        in_block = (col >= start) & (col < end)
        block_mask_count = ((canvas == mask_id) & in_block).sum(-1)
        if config.stop_on_eos and bool(done.all()):
            break
        if int(block_mask_count.sum()) == 0:
            continue
        state = base.init_state(block_mask_count, S)
        ctx.set_block(start, end)
        s = 0
        while True:
            masked = canvas == mask_id
            maskable = masked & in_block
            has_maskable = maskable.any(-1)
            if not bool(has_maskable.any()):
                break
            if s >= BL:
                raise RuntimeError(f"strategy {label!r} did not finish block {blk} within {BL} iterations.")

            ledger.begin(has_maskable)
            # 1. logits of the current canvas: carried from the last verification, else one forward of it alone
            if stale:
                res = executor.verify(ctx, canvas[:, None], ones_b1, ones_b1.to(torch.float32))
                logits, owner, stale = res.logits, res.owner, False
                nfe += 1
                branch_forwards += 1

            # 2. the anchor fill (base rule) on this device's winner logits; noise drawn identically everywhere
            gumbel = noise.gumbel((B, L, engine_vocab(logits, engine))) if T > 0 else None
            uniform = noise.uniform((B, L)) if needs_uniform else None
            own = torch.ones(B, dtype=torch.bool, device=dev) if owner is None else owner == executor.rank
            if logits is not None:
                lg = logits
                if demote:
                    lg, gumbel = demote_candidates(lg, gumbel, T, demote)
                inp = StepInput(logits=lg, canvas=canvas, maskable=maskable, step=torch.tensor(s, device=dev),
                                steps_per_block=S, sampling=sampling, gumbel=gumbel, uniform=uniform)
                out = base.step(inp, state)
                commit = torch.as_tensor(out.commit, device=dev).bool()
                remask = torch.zeros_like(commit) if out.remask is None else \
                    torch.as_tensor(out.remask, device=dev).bool()
                tokens = torch.as_tensor(out.tokens, device=dev).long()
                committed_in_block = ~masked & in_block & gen_cols & ~done[:, None]
                o = own[:, None]
                engine._check_step(label, blk, commit & o, remask & o, tokens, maskable, committed_in_block,
                                   has_maskable & own, "dynamic", mask_id)
                if bool((remask & o).any()):
                    raise RuntimeError(f"strategy {label!r}: the base remasked positions; lookahead branches need "
                                       "a base that never remasks.")
                anchor = torch.where(commit, tokens, canvas)
                # 3. lookahead candidates: the block's remaining masks ranked by the branch score
                if K:
                    cand = (maskable & ~commit)[:, start:end]
                    sc = position_scores(lg[:, start:end], strategy.branch_score)
                    lpos, lvalid = lookahead_candidates(sc, cand, K)
                    lpos = lpos.long()
                    lcre = sc.gather(-1, lpos).float()
                    ltok = tokens[:, start:end].gather(-1, lpos)
                    lpos = lpos + start
                else:
                    lpos = ltok = torch.zeros((B, 0), dtype=torch.long, device=dev)
                    lvalid = torch.zeros((B, 0), dtype=torch.bool, device=dev)
                    lcre = torch.zeros((B, 0), dtype=torch.float32, device=dev)
                state = out.state
            else:  # this device holds no row's winner: contribute nothing to the exchange
                anchor = canvas
                lpos = ltok = torch.zeros((B, K), dtype=torch.long, device=dev)
                lvalid = torch.zeros((B, K), dtype=torch.bool, device=dev)
                lcre = torch.zeros((B, K), dtype=torch.float32, device=dev)
            # 4. every device learns each row's fill from the device that computed it (block slice + k-vectors)
            a_blk, lpos, ltok, lvalid, lcre = executor.share(owner, anchor[:, start:end], lpos, ltok, lvalid, lcre)
            anchor = torch.cat([canvas[:, :start], a_blk, canvas[:, end:]], dim=1)
            if not bool((anchor != canvas).any(-1)[has_maskable].all()):
                raise RuntimeError(f"dynamic strategy {label!r} committed nothing in a step although block {blk} "
                                   "still has masked positions.")

            # 5. verification: the anchor plus k' lookaheads in one batched forward
            k_eff = int(lvalid.sum(-1).max()) if K else 0
            if k_eff == 0:   # every row's block is full after its anchor (or k = 0): forward lazily next time
                new_canvas, logits, owner, stale = anchor, None, None, True
                ledger.skipped(has_maskable)
            else:
                branches = build_branches(anchor, ltok[:, :k_eff], lpos[:, :k_eff], lvalid[:, :k_eff])
                valid = torch.cat([ones_b1, lvalid[:, :k_eff]], dim=1)
                creation = torch.cat([torch.ones((B, 1), device=dev), lcre[:, :k_eff]], dim=1)
                res = executor.verify(ctx, branches, valid, creation)
                nfe += 1
                branch_forwards += k_eff + 1
                new_canvas = branches[rows, res.winner]
                logits, owner = res.logits, res.owner
                ledger.verified(has_maskable, lvalid[:, :k_eff])
            committed = new_canvas != canvas
            order = torch.where(committed, step, order)
            canvas = new_canvas
            if history is not None:
                history.append(canvas[:, P:].cpu())
            yield StepEvent(step=step, block=blk, step_in_block=s, committed=committed[:, P:],
                            remasked=torch.zeros_like(committed[:, P:]), tokens=canvas[:, P:], canvas=canvas,
                            nfe=nfe, prompt_length=P, row_forwards=ledger.forwards.cpu(),
                            row_branch_forwards=ledger.branches.cpu())
            s += 1
            step += 1

        if config.stop_on_eos and stop_ids:
            gen = canvas[:, P:]
            is_stop = torch.isin(gen, torch.tensor(stop_ids, device=dev)) & (col[P:] < end)
            newly = is_stop.any(-1) & ~done
            if bool(newly.any()):
                # rows that stop have no masks left, so their (now stale) carried logits are never read again
                first = torch.where(is_stop, torch.arange(G, device=dev), G).min(-1).values
                after = (torch.arange(G, device=dev)[None] > first[:, None]) & newly[:, None]
                gen = gen.masked_fill(after, eos_id)
                canvas = torch.cat([canvas[:, :P], gen], dim=1)
                order[:, P:] = order[:, P:].masked_fill(after, -1)
                done = done | newly

    return BatchResult(sequences=canvas[:, P:], canvas=canvas, prompt_length=P, decoding_order=order[:, P:],
                       nfe=nfe, steps=step, history=history, branch_forwards=branch_forwards)


def engine_vocab(logits, engine) -> int:
    """Vocabulary size of the logits (the noise shape), also on devices that hold no logits."""
    if logits is not None:
        return int(logits.shape[-1])
    return int(engine.vocab_size)
