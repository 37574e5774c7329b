"""LoPA lookahead on JAX, with the branch axis on a device mesh (``jax.shard_map`` over mesh axis ``"branch"``).

On a one-device mesh this is the single-device JAX lookahead loop; on N devices every device forwards its group
of ``g = ceil((k + 1) / N)`` branches of every prompt (branches padded to ``N g`` with invalid copies, so shapes
stay static: one compile per batch shape). Per step (lopa.md §5.3):

* ``verify`` (one ``shard_map``): each device builds its branch canvases from the replicated anchor and lookahead
  spec, forwards them, scores them (``decoders.lopa``), and ``all_gather`` of the ``[g, B]`` scores gives every
  device the same ``[B, N g]`` table and winners. Each device keeps the winner logits it holds (``[B, L, V]``,
  sharded ``[N, B, L, V]`` overall); logits never move.
* ``fill`` (one ``shard_map``): every device runs the base rule on its local logits, the owner of each prompt's
  winner contributes the result and a ``psum`` (a per-row broadcast) replicates the block's tokens plus the ``k``
  lookahead positions / tokens / validity / confidences.

Single-branch forwards (first step, block starts) run replicated on every device. The host drives the block loop
and reads back only small int arrays (the fill, the winners). Inputs are placed with
``jax.make_array_from_callback``, so the same code runs multi-host after :func:`initialize_distributed`
(``jax.distributed.initialize``; every process runs the same program on the same inputs).

>>> import dllm                                                                          # doctest: +SKIP
>>> from dllm.distributed.jax_branches import JaxLookahead, make_mesh                   # doctest: +SKIP
>>> runner = JaxLookahead(dllm.load(path, backend="jax").model, mesh=make_mesh(4))       # doctest: +SKIP
>>> out = runner.generate([[5, 6, 7]], dllm.DecodeConfig(gen_length=32, block_length=16,
...                       strategy={"type": "lopa", "num_lookahead": 3}))                # doctest: +SKIP

Every decoding option of the torch engine is supported: temperature / top-p / top-k (``noise="torch"``, the
default, replays the torch engine's CPU noise stream, so sampled tokens match it; ``noise="jax"`` draws on the
devices), ``cfg_scale``, ``logits_eos_inf``, ``confidence_eos_eot_inf``, ``stop_on_eos``; the mask id is always
suppressed here (like the torch lookahead loop, whatever ``suppress_mask_token`` says).
Strategies computing in float64 need x64 (``jax.enable_x64(True)``, as ``dllm.jax_engine`` scopes it).
Requirement: the base strategy's state must not change during a block (true of every registered ``dynamic`` one).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..decoding import run_to_end
from ..row_accounting import RowForwardLedger

__all__ = ["make_mesh", "initialize_distributed", "JaxLookahead", "LookaheadResult", "generate", "main"]

AXIS = "branch"


def initialize_distributed(**kwargs) -> bool:
    """``jax.distributed.initialize(**kwargs)`` for multi-host runs, when arguments are given or the usual
    coordinator variables (``JAX_COORDINATOR_ADDRESS``, or a cluster JAX auto-detects) are set. Call it before
    any other JAX call on every host. Returns whether it initialised."""
    import jax

    if kwargs or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize(**kwargs)
        return True
    return False


def make_mesh(num_devices: int | None = None, devices=None):
    """A 1-D mesh ``("branch",)`` over ``num_devices`` devices (default: all, across hosts)."""
    import jax

    devs = list(devices) if devices is not None else list(jax.devices())
    n = len(devs) if num_devices is None else int(num_devices)
    if n < 1 or n > len(devs):
        raise ValueError(f"num_devices must be in [1, {len(devs)}], got {num_devices!r}.")
    return jax.make_mesh((n,), (AXIS,), devices=devs[:n])


def _put(x, sharding):
    """A global array from a value that every process holds in full: ``device_put`` in one process (no copy for
    an array already placed so), ``make_array_from_callback`` across hosts."""
    import jax

    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    x = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _host(x) -> np.ndarray:
    """Host copy of a replicated global array (reads this process's first shard)."""
    return np.asarray(x.addressable_data(0))


@dataclass
class LookaheadResult:
    """Result of :meth:`JaxLookahead.generate` (one batch).

    Attributes:
        sequences: ``[B, G]`` int generated region.
        decoding_order: ``[B, G]`` iteration that committed each position (-1 never).
        nfe: batched forwards; steps: fills (iterations); branch_forwards: branches verified per prompt
            (``sum(k' + 1)``, as the torch engine counts); rows_forwarded: sequences actually forwarded per prompt,
            device padding included; history: generated region after every iteration, if asked.
    """

    sequences: np.ndarray
    decoding_order: np.ndarray
    nfe: int
    steps: int
    branch_forwards: int
    rows_forwarded: int
    wall_s: float = 0.0
    history: list | None = field(default=None, repr=False)


class JaxLookahead:
    """The LoPA loop for a JAX model on a ``"branch"`` mesh.

    Args:
        model: a ``dllm.models.jax_model.DiffusionTransformer`` (or a ``dllm.Pipeline`` holding one).
        mesh: a mesh with axis ``"branch"`` (default: a one-device mesh).
        mask_id / eos_id / eot_id / pad_id: defaults for the special ids (``None``: ``model.config``).
        noise: ``"torch"`` (default): the torch engine's noise stream (:class:`dllm.noise.NoiseSource`, a CPU
            ``torch.Generator`` seeded with ``DecodeConfig.seed``) drawn on the host in the torch lookahead loop's
            order and replicated to the devices, so sampled tokens equal the torch backend's on CPU; ``"jax"``:
            ``jax.random`` on the devices (``fold_in(key(seed), step)``), no host traffic. Greedy decoding draws
            nothing either way.
    """

    def __init__(self, model, mesh=None, *, mask_id: int | None = None, eos_id: int | None = None,
                 eot_id: int | None = None, pad_id: int | None = None, noise: str = "torch"):
        import jax
        from jax.sharding import NamedSharding, PartitionSpec as P

        from ..models.jax_model import make_forward_fn

        if noise not in ("torch", "jax"):
            raise ValueError(f"noise must be 'torch' or 'jax', got {noise!r}.")
        self.noise = noise
        model = getattr(model, "model", model)  # a Pipeline
        self.model = model
        self.mesh = mesh if mesh is not None else make_mesh(1)
        if AXIS not in self.mesh.axis_names:
            raise ValueError(f"the mesh needs an axis named {AXIS!r}, got axes {self.mesh.axis_names}.")
        self.n = int(self.mesh.shape[AXIS])
        cfg = model.config
        self.mask_id = cfg.mask_token_id if mask_id is None else mask_id
        self.eos_id = cfg.eos_token_id if eos_id is None else eos_id
        self.eot_id = getattr(cfg, "eot_token_id", None) if eot_id is None else eot_id
        self.pad_id = getattr(cfg, "pad_token_id", None) if pad_id is None else pad_id
        self.vocab_size = cfg.vocab_size
        self._forward, state = make_forward_fn(model, jit=False)
        self._rep = NamedSharding(self.mesh, P())
        self.params = jax.tree.map(lambda a: _put(a, self._rep), state)
        self._compiled: dict = {}

    # ------------------------------------------------------------------------------------------- compiled parts
    def _fns(self, key):
        if key not in self._compiled:
            self._compiled[key] = self._build(*key)
        return self._compiled[key]

    def _build(self, strategy, B, L, BL, S, sampling, cfg_scale, neg_inf_ids, demote_ids, host_noise, f64):
        import jax
        import jax.numpy as jnp
        from jax.sharding import PartitionSpec as P

        from decoders import StepInput
        from decoders.lopa import (build_branches, branch_confidence, lookahead_candidates, position_scores,
                                   select_winner)

        base = strategy.base_strategy
        K = int(strategy.num_lookahead)
        n = self.n
        K1 = K + 1
        g = math.ceil(K1 / n)
        fwd = self._forward
        mask_id = self.mask_id
        scope = strategy.branch_scope
        fdt = jnp.float64 if f64 else jnp.float32
        idt = jnp.int32
        neg = list(neg_inf_ids)
        V = self.vocab_size

        def logits_of(params, rows, attn, pos, pmask):
            if cfg_scale > 0:
                uncond = jnp.where(pmask, mask_id, rows)
                both = fwd(params, jnp.concatenate([rows, uncond]), jnp.concatenate([attn, attn]),
                           jnp.concatenate([pos, pos]))
                c, u = both[:rows.shape[0]], both[rows.shape[0]:]
                out = u + (cfg_scale + 1.0) * (c - u)
            else:
                out = fwd(params, rows, attn, pos)
            if neg:
                out = out.at[..., jnp.asarray(neg)].set(-jnp.inf)
            return out

        def single(params, canvas, attn, pos, pmask):
            return logits_of(params, canvas, attn, pos, pmask)[None]

        def verify(params, anchor, lpos, ltok, lvalid, lcre, attn, pos, pmask, start):
            r = jax.lax.axis_index(AXIS)
            j = r * g + jnp.arange(g)                                      # this device's branch ids [g]
            allb = build_branches(anchor, ltok, lpos, lvalid)              # [B, K1, L] (cheap int work)
            allv = jnp.concatenate([jnp.ones((B, 1), bool), lvalid], axis=1)
            allc = jnp.concatenate([jnp.ones((B, 1), jnp.float32), lcre], axis=1)
            jc = jnp.clip(j, 0, K1 - 1)
            mine = j < K1                                                  # device padding beyond k + 1
            br = jnp.take(allb, jc, axis=1)                                # [B, g, L]
            valid = jnp.take(allv, jc, axis=1) & mine[None, :]
            creation = jnp.take(allc, jc, axis=1)
            rows = jnp.transpose(br, (1, 0, 2)).reshape(g * B, L)
            tile = lambda x: jnp.tile(x, (g, 1))  # noqa: E731
            lg = logits_of(params, rows, tile(attn), tile(pos), tile(pmask)).reshape(g, B, L, V)
            lg = jnp.transpose(lg, (1, 0, 2, 3))                           # [B, g, L, V]
            if scope == "block":
                win = jax.lax.dynamic_slice_in_dim(lg, start, BL, axis=2)
                msk = jax.lax.dynamic_slice_in_dim(br, start, BL, axis=2) == mask_id
            else:
                win = lg
                msk = (br == mask_id) & (jnp.arange(L) >= start)[None, None, :]
            sc = position_scores(win, strategy.branch_score)
            local = branch_confidence(sc, msk, creation, strategy.alpha, strategy.rho, valid)   # [B, g]
            scores = jax.lax.all_gather(local, AXIS, axis=1, tiled=True)[:, :K1]                # [B, K1]
            winner = select_winner(scores)
            idx = jnp.clip(winner - r * g, 0, g - 1)
            wl = jnp.take_along_axis(lg, idx[:, None, None, None], axis=1)[:, 0]
            return winner, (winner // g).astype(idt), wl[None]

        T = float(sampling.temperature)
        dem = jnp.asarray(list(demote_ids), jnp.int32) if demote_ids else None

        def demote(lg, gumbel):
            """``confidence_eos_eot_inf``, as :func:`dllm.processors.demote_candidates`."""
            if gumbel is not None and T > 0:
                cand = jnp.argmax(lg.astype(fdt) + T * gumbel.astype(fdt), axis=-1)
            else:
                cand = jnp.argmax(lg, axis=-1)
            hit = jnp.isin(cand, dem)
            out = lg.at[..., dem].set(-jnp.inf)
            flat = jnp.where(jnp.isneginf(lg), -jnp.inf, 0.0).astype(lg.dtype)
            flat = jnp.where(jnp.arange(V) == cand[..., None], jnp.asarray(1e-6, lg.dtype), flat)
            out = jnp.where(hit[..., None], flat, out)
            if gumbel is not None:
                gumbel = jnp.where(hit[..., None], jnp.zeros_like(gumbel), gumbel)
            return out, gumbel

        def fill(logits, owner, canvas, maskable, s, state, key, start, noise):
            r = jax.lax.axis_index(AXIS)
            lg = logits[0]
            own = owner == r
            if host_noise:
                gumbel, uniform = noise
            else:
                kg, ku = jax.random.split(key)
                gumbel = jax.random.gumbel(kg, (B, L, V), fdt) if T > 0 else None
                uniform = jax.random.uniform(ku, (B, L), fdt) if base.needs_uniform_noise(sampling) else None
            if dem is not None:
                lg, gumbel = demote(lg, gumbel)
            inp = StepInput(lg, canvas, maskable, s, S, sampling, gumbel, uniform)
            out = base.step(inp, state)
            commit = out.commit
            tokens = out.tokens.astype(idt)
            anchor = jnp.where(commit, tokens, canvas)
            bad = (commit & ~maskable).any(-1) | (jnp.zeros_like(own) if out.remask is None else out.remask.any(-1))
            stuck = maskable.any(-1) & ~commit.any(-1)
            if K:
                cand = jax.lax.dynamic_slice_in_dim(maskable & ~commit, start, BL, axis=1)
                sc = position_scores(jax.lax.dynamic_slice_in_dim(lg, start, BL, axis=1), strategy.branch_score)
                lp, lv = lookahead_candidates(sc, cand, K)
                lp = lp.astype(idt)
                lc = jnp.take_along_axis(sc, lp, axis=-1).astype(jnp.float32)
                lt = jnp.take_along_axis(jax.lax.dynamic_slice_in_dim(tokens, start, BL, axis=1), lp, axis=-1)
                lp = lp + start
            else:
                lp = lt = jnp.zeros((B, 0), idt)
                lv = jnp.zeros((B, 0), bool)
                lc = jnp.zeros((B, 0), jnp.float32)
            a_blk = jax.lax.dynamic_slice_in_dim(anchor, start, BL, axis=1)
            o = own[:, None]
            z = lambda x: jnp.where(o, x, jnp.zeros_like(x))  # noqa: E731
            res = (z(a_blk), z(lp), z(lt), z(lv.astype(idt)), z(lc),
                   jnp.where(own, (bad | stuck).astype(idt), 0))
            a_blk, lp, lt, lv, lc, err = jax.lax.psum(res, AXIS)
            return a_blk, lp, lt, lv > 0, lc, err

        rep = P()

        def sm(f, i, o, check=True):
            return jax.jit(jax.shard_map(f, mesh=self.mesh, in_specs=i, out_specs=o, check_vma=check))

        return {
            "single": sm(single, (rep,) * 5, P(AXIS)),
            # scores / winners come out of an all_gather, identical on every device (the varying-axis checker
            # cannot infer that for all_gather, hence check_vma=False here only)
            "verify": sm(verify, (rep,) * 10, (rep, rep, P(AXIS)), check=False),
            "fill": sm(fill, (P(AXIS),) + (rep,) * 8, (rep,) * 6),
            "g": g,
        }

    # ------------------------------------------------------------------------------------------------- the loop
    def generate(self, input_ids: Sequence[Sequence[int]], config, strategy=None, *,
                 record_history: bool = False) -> LookaheadResult:
        """Decode one batch of prompts (ragged, left-padded) with LoPA; ``strategy`` defaults to
        ``config.strategy`` (a ``lopa`` dict / object). Every process of a multi-host run calls this alike."""
        return run_to_end(self.run(input_ids, config, strategy, record_history=record_history))

    def run(self, input_ids: Sequence[Sequence[int]], config, strategy=None, *, record_history: bool = False):
        """:meth:`generate` as a generator: yields a :class:`~dllm.outputs.StepEvent` (NumPy arrays) per
        iteration, like the torch engine's ``run``, and returns the :class:`LookaheadResult`."""
        import jax
        import jax.numpy as jnp

        from decoders import SamplingParams
        from decoders.lopa import is_branching

        from ..decoding import resolve_strategy
        from ..outputs import StepEvent
        from ..decoding import demoted_ids

        t0 = time.perf_counter()
        strategy = resolve_strategy(config.strategy if strategy is None else strategy)
        if not is_branching(strategy):
            raise ValueError(f"JaxLookahead runs strategy 'lopa', got {strategy!r}.")
        base = strategy.base_strategy
        K = int(strategy.num_lookahead)
        mask_id = config.mask_id if config.mask_id is not None else self.mask_id
        eos_id = config.eos_id if config.eos_id is not None else self.eos_id
        eot_id = config.eot_id if config.eot_id is not None else self.eot_id
        if mask_id is None:
            raise ValueError("no mask token id: the model config has no mask_token_id; pass mask_id.")
        if self.mask_id != mask_id:
            self.mask_id = mask_id
            self._compiled.clear()
        pad_id = next(i for i in (self.pad_id, eos_id, 0, 1) if i is not None and i != mask_id)
        G, BL, S = config.gen_length, config.block_len, config.steps_per_block
        sampling = SamplingParams(float(config.temperature), config.top_p, config.top_k)
        # The mask id is never a candidate here (whatever ``suppress_mask_token`` says), as in the torch lookahead
        # loop (dllm.lookahead): a branch that "commits" it would duplicate its parent; D2F never proposes it.
        neg = tuple(([eos_id] if config.logits_eos_inf else []) + [mask_id])
        if (config.logits_eos_inf or config.confidence_eos_eot_inf or config.stop_on_eos) and eos_id is None:
            raise ValueError("EOS controls need an EOS id: the model config has no eos_token_id; pass eos_id.")
        demote = tuple(demoted_ids(eos_id, eot_id, sampling.temperature, config.llada_eos_quirk)) \
            if config.confidence_eos_eot_inf else ()
        needs_uniform = bool(base.needs_uniform_noise(sampling))
        host_noise = self.noise == "torch" and (sampling.temperature > 0 or needs_uniform)
        f64 = bool(jax.config.jax_enable_x64)

        rows = [list(map(int, r)) for r in input_ids]
        if not rows:
            raise ValueError("no prompts given (input_ids is empty).")
        B, P = len(rows), max(len(r) for r in rows)
        L = P + G
        canvas = np.full((B, L), pad_id, np.int32)
        attn = np.zeros((B, L), bool)
        for i, r in enumerate(rows):
            if r:
                canvas[i, P - len(r):P] = r
            attn[i, P - len(r):] = True
        canvas[:, P:] = mask_id
        pos = np.maximum(np.cumsum(attn, -1) - 1, 0).astype(np.int32)
        col = np.arange(L)
        pmask = attn & (col < P)[None]
        fns = self._fns((strategy, B, L, BL, S, sampling, float(config.cfg_scale), neg, demote, host_noise, f64))
        torch_noise = None
        if host_noise:
            from ..noise import NoiseSource

            torch_noise = NoiseSource(config.seed, "cpu")
        rep = self._rep
        put = lambda x: _put(x, rep)  # noqa: E731
        attn_d, pos_d, pmask_d = put(attn), put(pos), put(pmask)
        key = jax.random.key(int(config.seed))
        order = np.full((B, L), -1, np.int64)
        done = np.zeros(B, bool)
        history = [] if record_history else None
        stop_ids = [i for i in (eos_id, eot_id) if i is not None]
        nfe = bf = rows_fw = step = 0
        logits = owner = None
        zeros_b = np.zeros(B, np.int32)
        ledger = RowForwardLedger(np.ones(B, bool))  # per-row forwards as if decoded alone, as in dllm.lookahead

        for blk in range(config.num_blocks):
            start, end = P + blk * BL, P + (blk + 1) * BL
            in_block = (col >= start) & (col < end)
            count = ((canvas == mask_id) & in_block).sum(-1)
            if config.stop_on_eos and done.all():
                break
            if count.sum() == 0:
                continue
            state = jax.tree.map(put, base.init_state(jnp.asarray(count.astype(np.int32)), S))
            s = 0
            while True:
                maskable = (canvas == mask_id) & in_block
                if not maskable.any():
                    break
                if s >= BL:
                    raise RuntimeError(f"lopa did not finish block {blk} within {BL} iterations.")
                has_maskable = maskable.any(-1)
                ledger.begin(has_maskable)
                if logits is None:
                    logits = fns["single"](self.params, put(canvas), attn_d, pos_d, pmask_d)
                    owner = put(zeros_b)
                    nfe += 1
                    bf += 1
                    rows_fw += 1
                sub = jax.random.fold_in(key, step)
                noise = (None, None)
                if torch_noise is not None:  # the torch loop's draws, in its order
                    gum = torch_noise.gumbel((B, L, self.vocab_size)).numpy() if sampling.temperature > 0 else None
                    uni = torch_noise.uniform((B, L)).numpy() if needs_uniform else None
                    noise = (None if gum is None else put(gum), None if uni is None else put(uni))
                a_blk, lp, lt, lv, lc, err = fns["fill"](logits, owner, put(canvas), put(maskable), put(np.int32(s)),
                                                         state, _put_key(sub, rep), put(np.int32(start)), noise)
                if _host(err).any():
                    raise RuntimeError("the lopa base strategy broke the step contract (committed outside the "
                                       "block, remasked, or committed nothing while masks remained).")
                anchor = canvas.copy()
                anchor[:, start:end] = _host(a_blk)
                lv_h = _host(lv)
                k_eff = int(lv_h.sum(-1).max()) if K else 0
                if k_eff == 0:
                    new, logits = anchor, None
                    ledger.skipped(has_maskable)
                else:
                    lp_h, lt_h = _host(lp), _host(lt)
                    winner, owner, logits = fns["verify"](self.params, put(anchor), lp, lt, lv, lc, attn_d, pos_d,
                                                          pmask_d, put(np.int32(start)))
                    nfe += 1
                    bf += k_eff + 1
                    rows_fw += self.n * fns["g"]
                    ledger.verified(has_maskable, lv_h[:, :k_eff])
                    w = _host(winner)
                    new = anchor.copy()
                    look = np.nonzero(w > 0)[0]
                    new[look, lp_h[look, w[look] - 1]] = lt_h[look, w[look] - 1]
                committed = new != canvas
                order[committed] = step
                canvas = new
                if history is not None:
                    history.append(canvas[:, P:].copy())
                yield StepEvent(step=step, block=blk, step_in_block=s, committed=committed[:, P:],
                                remasked=np.zeros_like(committed[:, P:]), tokens=canvas[:, P:].copy(),
                                canvas=canvas.copy(), nfe=nfe, prompt_length=P, row_forwards=ledger.forwards,
                                row_branch_forwards=ledger.branches)
                s += 1
                step += 1
            if config.stop_on_eos and stop_ids:
                gen = canvas[:, P:]
                is_stop = np.isin(gen, stop_ids) & (col[P:] < end)[None]
                newly = is_stop.any(-1) & ~done
                if newly.any():
                    first = np.where(is_stop, np.arange(G)[None], G).min(-1)
                    after = (np.arange(G)[None] > first[:, None]) & newly[:, None]
                    gen[after] = eos_id
                    canvas[:, P:] = gen
                    order[:, P:][after] = -1
                    done |= newly
        return LookaheadResult(sequences=canvas[:, P:].copy(), decoding_order=order[:, P:].copy(), nfe=nfe,
                               steps=step, branch_forwards=bf, rows_forwarded=rows_fw,
                               wall_s=time.perf_counter() - t0, history=history)


def _put_key(key, sharding):
    import jax

    data = np.asarray(jax.random.key_data(key))
    return jax.random.wrap_key_data(_put(data, sharding))


def generate(model_or_path, input_ids, config=None, *, mesh=None, num_devices: int | None = None, **decode):
    """One-call JAX lookahead: ``model_or_path`` a checkpoint folder, a JAX ``Pipeline`` or model; ``config`` a
    :class:`~dllm.DecodeConfig` (or ``DecodeConfig`` keywords in ``decode``). Returns a :class:`LookaheadResult`."""
    from ..config import DecodeConfig

    if isinstance(model_or_path, (str, os.PathLike)):
        from ..api import load

        model_or_path = load(model_or_path, backend="jax")
    cfg = config if config is not None else DecodeConfig(**decode)
    mesh = mesh if mesh is not None else make_mesh(num_devices)
    return JaxLookahead(model_or_path, mesh=mesh).generate(input_ids, cfg)


def main(argv=None) -> int:
    """``python -m dllm.distributed.jax_branches --model DIR --input-ids 1,2,3 --devices 4 [--cpu-devices 4]
    --strategy lopa --param branches=3 ...`` (the decoding flags of ``dllm generate``); prints JSON."""
    import argparse
    import json

    from ..cli import _parse_ids, _strategy_spec

    p = argparse.ArgumentParser(prog="python -m dllm.distributed.jax_branches",
                                description="LoPA lookahead on a JAX 'branch' mesh (prints one JSON object).")
    p.add_argument("--model", required=True)
    p.add_argument("--input-ids", action="append", required=True)
    p.add_argument("--gen-length", type=int, default=128)
    p.add_argument("--block-length", type=int, default=None)
    p.add_argument("--strategy", default="lopa")
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop-on-eos", action="store_true")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--devices", type=int, default=None, help="mesh size (default: all devices)")
    p.add_argument("--cpu-devices", type=int, default=None, help="fake CPU devices (testing; before JAX starts)")
    p.add_argument("--x64", action="store_true", help="enable jax_enable_x64 (float64 strategies)")
    args = p.parse_args(argv)
    import jax

    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    initialize_distributed()
    from .. import DecodeConfig
    from ..api import load

    cfg = DecodeConfig(gen_length=args.gen_length, block_length=args.block_length,
                       strategy=_strategy_spec(args.strategy, args.param), temperature=args.temperature,
                       seed=args.seed, stop_on_eos=args.stop_on_eos)
    pipe = load(args.model, backend="jax", dtype=args.dtype)
    res = JaxLookahead(pipe.model, mesh=make_mesh(args.devices)).generate([_parse_ids(s) for s in args.input_ids],
                                                                          cfg)
    if jax.process_index() == 0:
        print(json.dumps({"sequences": res.sequences.tolist(), "nfe": res.nfe, "steps": res.steps,
                          "branch_forwards": res.branch_forwards, "rows_forwarded": res.rows_forwarded,
                          "devices": int(jax.device_count())}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
