"""The decoding loop on JAX (``backend="jax"``): same strategies, processors, noise and results as the torch
engine (:mod:`dllm.engine`), compiled with XLA.

::

    pipe = dllm.load(path, backend="jax")                       # flax.nnx model (dllm.models.jax_model)
    out = dllm.generate(pipe, input_ids=[[5, 6, 7]], gen_length=64, block_length=32, steps=64,
                        strategy={"type": "threshold", "threshold": 0.9})
    out = dllm.generate(path, ..., backend="jax")               # load + decode in one call
    out = dllm.generate(torch_pipe, ..., backend="jax")         # same weights, converted in memory (cached)
    mesh = jax.make_mesh((4,), ("batch",))
    pipe = dllm.load(path, backend="jax", mesh=mesh)            # batch axis sharded over 4 devices

The loop is the torch engine's, step for step (architecture.md §3, :mod:`dllm.engine`): left-padded canvas,
``position_ids = cumsum(mask) - 1``, semi-AR blocks, CFG as one batched forward of 2B rows, ``logits_eos_inf`` /
[MASK] suppression / ``confidence_eos_eot_inf`` processors, the strategy's ``step`` (the same source, through
``array_api_compat``), contract checks, ``stop_on_eos``, NFE and decoding-order accounting. Mask-token candidates
too (``suppress_mask_token=False``, the default): a committed mask id leaves its position masked (no decoding
order), leftover masks of earlier blocks stay maskable, a block may end with masks where the mask id was committed
(never with slots it did not commit), and a dynamic block stops at its step cap (see :mod:`dllm.engine`).

Compilation
-----------
* :meth:`JaxEngine.decode` (what ``dllm.generate`` calls) compiles the **whole decode loop** into one XLA program:
  a ``lax.while_loop`` over blocks around a ``lax.while_loop`` over steps (forward, processors, noise, strategy,
  write, checks), with the strategy state in the carry. Every registered strategy has fixed shapes (the strategy
  contract), so every one of them runs this way, "fixed" (exactly S steps) and "dynamic" (until the block is full)
  alike. Contract violations are recorded as error bits in the carry and raised afterwards with the torch engine's
  messages.
* :meth:`JaxEngine.run` (what ``dllm.iterate`` calls, one :class:`~dllm.outputs.StepEvent` per step) runs the same
  step function jitted once, driven from Python; it is also the fallback when the whole loop cannot be compiled
  (a strategy whose state changes structure between steps; the torch-stream noise on a multi-device mesh).

No recompiles on a sweep
------------------------
A strategy is split into a hashable **skeleton** (static structure: the dataclass with its swept float fields set to
``None``) and a dict of **float hyperparameters** passed as traced, weakly typed scalars. Sweeping
``threshold`` / ``factor`` / ``gamma`` / ``cfg_scale`` / the seed therefore reuses the compiled program (see
:func:`trace_count`). A float field is traced when the strategy's ``step`` traces with it abstract (checked once per
strategy class and static configuration with ``jax.eval_shape``); fields read as Python numbers (Dream's ``eps``,
which indexes a host-side table) and ``Optional`` floats whose None-ness picks a code path (``alg_temp``) stay static.
Weak typing keeps the torch arithmetic: a float32 confidence is compared with ``float32(threshold)``, as
``tensor_f32 >= 0.9`` does in torch. Nothing in ``decoders`` was changed for this.

Float64
-------
The engine runs inside the **scoped** ``jax.enable_x64(True)`` context (never the process-wide flag): Gumbel-max
proposals, float64 softmaxes (Fast-dLLM, dParallel) and the uniform noise are computed in float64 like on torch,
while the user's other JAX code keeps its dtypes. Results come back as NumPy arrays / Python lists.

Noise (``noise=`` option)
-------------------------
* ``"torch"`` (default): the torch backend's exact stream, :class:`dllm.noise.NoiseSource` (a CPU
  ``torch.Generator`` seeded with ``DecodeConfig.seed``), drawn on the host in the same order (Gumbel ``[B, L, V]``
  float64 then uniform ``[B, L]`` per step) and fed to the device, so the same seed gives the same noise as the torch
  backend on CPU (a CUDA torch run draws from a CUDA generator: a different stream). In the compiled loop the
  host draw is a ``jax.pure_callback`` indexed by the global step; on a multi-device mesh the step-driven loop
  is used instead (callbacks inside sharded while-loops deadlock on CPU). Only needed when temperature > 0 or the
  strategy reads uniform noise (``random``, ``origin``, Dream ``alg_temp > 0``); greedy decoding draws nothing.
* ``"jax"``: ``jax.random`` on the device (``fold_in(key(seed), step)``): no host traffic, a different (but
  seeded, sharding-invariant) stream. Use it for speed at T > 0 on large vocabularies.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import threading
import typing
import warnings
from collections import Counter
from typing import Any, Generator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .config import DecodeConfig
from .decoding import demoted_ids, prompt_rows, resolve_strategy, run_to_end, special_ids, strategy_label
from .outputs import StepEvent

from decoders import SamplingParams, StepInput  # the strategy contract types (architecture.md §2)

__all__ = ["JaxEngine", "BatchResult", "NOISE_MODES", "StrategyTraceError", "split_strategy", "trace_count",
           "jax_model_from_torch"]

NOISE_MODES = ("torch", "jax")
_FLAT_DELTA = 1e-6  # dllm.processors._FLAT_DELTA (kept equal; not imported: that module imports torch)

# error bits recorded in the carry (first failing step only), raised on the host with the torch engine's messages
_E_COMMIT, _E_REMASK, _E_TOKEN, _E_STUCK, _E_OVERFLOW, _E_LEFT = 1, 2, 4, 8, 16, 32

#: number of times each engine program was traced (a retrace = a recompile); see :func:`trace_count`.
_TRACES: Counter = Counter()


def trace_count(kind: str | None = None) -> int:
    """How many times the engine's programs were traced (``kind``: ``"decode"`` whole loops, ``"step"`` step
    functions, None: all). Unchanged across two calls = nothing was recompiled."""
    return sum(_TRACES.values()) if kind is None else _TRACES[kind]


class StrategyTraceError(TypeError):
    """A strategy's ``init_state`` / ``step`` could not be traced by JAX (torch-only code, host syncs, ...)."""


class BatchResult(NamedTuple):
    """What :meth:`JaxEngine.decode` returns for one batch (the torch engine's fields, NumPy arrays)."""

    sequences: np.ndarray          # [B, G] generated region
    canvas: np.ndarray             # [B, P + G] final canvas
    prompt_length: int             # P
    decoding_order: np.ndarray     # [B, G] step of the final commit, -1 never
    nfe: int                       # forwards of this batch
    steps: int                     # strategy steps of this batch
    history: list | None           # list over steps of [B, G] arrays
    branch_forwards: int | None = None  # sequences forwarded per prompt (= nfe without lookahead branches)


# ================================================================================================ strategies
def _float_fields(strategy) -> tuple[str, ...]:
    """Dataclass fields annotated exactly ``float`` (Optional floats pick code paths by None-ness: static)."""
    if not dataclasses.is_dataclass(strategy):
        return ()
    try:
        hints = typing.get_type_hints(type(strategy))
    except Exception:  # noqa: BLE001 - unresolvable annotations: treat everything as static
        return ()
    return tuple(f.name for f in dataclasses.fields(strategy)
                 if hints.get(f.name) is float and isinstance(getattr(strategy, f.name), float))


def _with_fields(skeleton, values: dict):
    """A copy of the frozen strategy with some fields replaced (no validation: values may be tracers)."""
    if not values:
        return skeleton
    s = copy.copy(skeleton)
    for k, v in values.items():
        object.__setattr__(s, k, v)
    return s


_TRACEABLE: dict = {}


def _traceable(skeleton, names: tuple[str, ...], sampling: SamplingParams, S: int, needs_uniform: bool,
               values: tuple[float, ...]) -> bool:
    """Whether ``init_state`` and ``step`` trace with the fields ``names`` abstract (``jax.eval_shape``, once per
    skeleton and static configuration; the values only seed the probe)."""
    key = (skeleton, names, sampling, S, needs_uniform)
    if key not in _TRACEABLE:
        _TRACEABLE[key] = _probe(skeleton, names, sampling, S, needs_uniform, values)
    return _TRACEABLE[key]


def _probe(skeleton, names, sampling, S, needs_uniform, values) -> bool:
    B, L, V = 2, 4, 8

    def f(hyper):
        s = _with_fields(skeleton, hyper)
        state = s.init_state(jnp.full((B,), 2, jnp.int32), S)
        inp = StepInput(jnp.zeros((B, L, V), jnp.float32), jnp.zeros((B, L), jnp.int32), jnp.ones((B, L), bool),
                        jnp.asarray(0, jnp.int32), S, sampling,
                        jnp.zeros((B, L, V), jnp.float64) if sampling.temperature > 0 else None,
                        jnp.full((B, L), 0.5, jnp.float64) if needs_uniform else None)
        return s.step(inp, state)

    try:
        with jax.enable_x64(True):
            jax.eval_shape(f, dict(zip(names, values)))
        return True
    except Exception:  # noqa: BLE001 - any tracing problem: keep the field static
        return False


def split_strategy(strategy, sampling: SamplingParams = SamplingParams(), steps_per_block: int = 1,
                   needs_uniform: bool = False) -> tuple[Any, dict[str, float]]:
    """``(skeleton, hyper)``: the strategy with its traceable float fields set to None (hashable, equal across a
    sweep of those fields) and those fields' values (passed to the compiled program as traced scalars).

    Fields are traced when ``init_state`` / ``step`` trace with them abstract; otherwise they stay in the skeleton.
    """
    names = _float_fields(strategy)
    if not names:
        return strategy, {}
    values = {n: getattr(strategy, n) for n in names}
    skel_all = _with_fields(strategy, {n: None for n in names})
    key = (sampling, int(steps_per_block), bool(needs_uniform))
    try:
        hash(skel_all)
    except TypeError:
        return strategy, {}
    if _traceable(skel_all, names, *key, tuple(values[n] for n in names)):
        return skel_all, values
    keep = tuple(n for n in names
                 if _traceable(_with_fields(strategy, {n: None}), (n,), *key, (values[n],)))
    return _with_fields(strategy, {n: None for n in keep}), {n: values[n] for n in keep}


# ================================================================================================ models
def jax_model_from_torch(torch_model, dtype=None):
    """A :class:`dllm.models.jax_model.DiffusionTransformer` with the weights of a torch
    :class:`~dllm.models.torch_model.DiffusionTransformer` (same config; ``dtype``: default the torch dtype)."""
    from .models.jax_model import DiffusionTransformer

    sd = torch_model.logical_state_dict()
    if dtype is None:
        dtype = str(next(iter(sd.values())).dtype).removeprefix("torch.")
    params = {k: np.asarray(v.detach().float().cpu().numpy()) for k, v in sd.items()}
    return DiffusionTransformer(torch_model.config, dtype=dtype, params=params)


def is_jax_model(model) -> bool:
    return isinstance(model, nnx.Module)


# ================================================================================================ host noise
class _HostNoise:
    """The torch backend's noise stream (dllm.noise.NoiseSource on CPU), drawn step by step on the host.

    ``get(i)`` returns the noise of global step ``i`` (drawn in order, Gumbel then uniform, exactly as the torch
    engine does), padded with inert rows to the (device-padded) batch.
    """

    def __init__(self, seed: int, B_real: int, B: int, L: int, V: int, gumbel: bool, uniform: bool):
        try:
            from .noise import NoiseSource
        except ImportError as e:  # pragma: no cover - torch missing
            raise ImportError(f"noise='torch' draws the torch backend's noise stream and needs torch ({e}); "
                              "pass noise='jax' (JaxEngine / engine_options) to draw it with jax.random.") from e
        self.src = NoiseSource(seed, "cpu")
        self.B_real, self.B, self.L, self.V = B_real, B, L, V
        self.need_g, self.need_u = gumbel, uniform
        self.next = 0
        self.cache: dict[int, tuple] = {}
        self.lock = threading.Lock()

    def _draw(self):
        g = u = None
        if self.need_g:
            g = self.src.gumbel((self.B_real, self.L, self.V)).numpy()
            if self.B > self.B_real:
                g = np.concatenate([g, np.zeros((self.B - self.B_real, self.L, self.V))])
        if self.need_u:
            u = self.src.uniform((self.B_real, self.L)).numpy()
            if self.B > self.B_real:
                u = np.concatenate([u, np.full((self.B - self.B_real, self.L), 0.5)])
        return g, u

    def get(self, i: int):
        with self.lock:
            if i < self.next and i not in self.cache:
                raise RuntimeError(f"host noise of step {i} was requested after later steps were drawn.")
            while self.next <= i:
                self.cache[self.next] = self._draw()
                self.next += 1
            for k in [k for k in self.cache if k < i]:  # steps are consumed in order
                del self.cache[k]
            return self.cache[i]


_STREAMS: dict[int, _HostNoise] = {}
_STREAM_IDS = itertools.count(1)


def _host_noise_callback(stream_id, step):
    # float64 travels as uint32 pairs: the callback's results are dtype-canonicalised on a thread that does not see
    # the scoped x64 flag (float64 would arrive as float32); the program bit-casts them back.
    g, u = _STREAMS[int(stream_id)].get(int(step))
    return tuple(np.ascontiguousarray(x, np.float64).view(np.uint32).reshape(*x.shape, 2)
                 for x in (g, u) if x is not None)


# ================================================================================================ the program
@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything static about one decode (hashable: the key of the compiled programs)."""

    graphdef: Any
    strategy: Any          # skeleton
    schedule: str
    L: int
    P: int
    G: int
    BL: int
    num_blocks: int
    S: int
    post_edit: int
    max_steps: int          # per block
    V: int
    mask_id: int
    allow_mask_commits: bool  # not suppress_mask_token: the mask id may be committed (the position stays masked)
    eos_id: int | None
    stop_ids: tuple
    neg_inf_ids: tuple
    demote_ids: tuple
    sampling: SamplingParams
    needs_uniform: bool
    noise: str              # "none" | "torch" (callback) | "jax" | "arg" (passed per step)
    noise_shapes: tuple     # ((B, L, V) | None, (B, L) | None)
    cfg: bool
    padded: bool
    stop_on_eos: bool
    history: bool
    hist_len: int


def _build(plan: _Plan):
    """The engine's pure functions for one plan: ``init``, ``outer_cond``, ``begin``, ``inner_cond``, ``step``,
    ``end``, ``decode`` (the whole loop). ``consts``: params, masks, hyperparameters; ``c``: the carry (a dict)."""
    from .models.jax_model import forward

    p = plan
    fixed = p.schedule == "fixed"
    T = float(p.sampling.temperature)

    def strategy(consts):
        return _with_fields(p.strategy, consts["hyper"])

    def cols():
        return jnp.arange(p.L)

    def in_block_of(blk):
        start = p.P + blk * p.BL
        col = cols()
        return (col >= start) & (col < start + p.BL)

    def before_end_of(blk):
        # generated columns before the block end: masks left over in earlier blocks (re-committed mask ids) stay
        # candidates, as in the references (which blank only the scores after the current block)
        col = cols()
        return (col >= p.P) & (col < p.P + (blk + 1) * p.BL)

    def init(consts, canvas, done):
        B = canvas.shape[0]
        c = dict(canvas=canvas, order=jnp.full(canvas.shape, -1, jnp.int32), done=done,
                 state=strategy(consts).init_state(jnp.zeros((B,), jnp.int32), p.S),
                 nfe=jnp.int32(0), step=jnp.int32(0), s=jnp.int32(0), blk=jnp.int32(0),
                 edits=jnp.int32(p.post_edit), changed=jnp.bool_(True), active=jnp.bool_(False),
                 recommitted=jnp.zeros(canvas.shape, bool),
                 err=jnp.int32(0), err_blk=jnp.int32(0), err_s=jnp.int32(0), err_n=jnp.int32(0))
        if p.history:
            c["hist"] = jnp.full((p.hist_len, B, p.G), p.mask_id, jnp.int32)
        return c

    def outer_cond(c):
        go = (c["blk"] < p.num_blocks) & (c["err"] == 0)
        if p.stop_on_eos:
            go = go & ~jnp.all(c["done"])
        return go

    def begin(consts, c):
        in_block = in_block_of(c["blk"])
        count = jnp.sum((c["canvas"] == p.mask_id) & in_block, axis=-1, dtype=jnp.int32)
        return {**c, "state": strategy(consts).init_state(count, p.S), "s": jnp.int32(0),
                "edits": jnp.int32(p.post_edit), "changed": jnp.bool_(True), "active": jnp.sum(count) > 0,
                "recommitted": jnp.zeros_like(c["recommitted"])}

    def want_more(c, maskable):
        if fixed:
            return c["s"] < p.S
        return jnp.any(maskable) | ((c["edits"] > 0) & c["changed"])

    def inner_cond(consts, c):
        maskable = (c["canvas"] == p.mask_id) & in_block_of(c["blk"])
        return want_more(c, maskable) & (c["s"] < p.max_steps) & c["active"] & (c["err"] == 0)

    def model_logits(consts, canvas):
        params = consts["params"]
        if p.cfg:
            B = canvas.shape[0]
            uncond = jnp.where(consts["prompt_mask"], p.mask_id, canvas)
            attn = None if consts["attn"] is None else jnp.concatenate([consts["attn"], consts["attn"]])
            pos = None if consts["pos"] is None else jnp.concatenate([consts["pos"], consts["pos"]])
            both = forward(p.graphdef, params, jnp.concatenate([canvas, uncond]), attn, pos).astype(jnp.float32)
            cond, unc = both[:B], both[B:]
            return unc + (consts["cfg_scale"] + 1.0) * (cond - unc)
        return forward(p.graphdef, params, canvas, consts["attn"], consts["pos"]).astype(jnp.float32)

    def draw_noise(consts, step):
        gshape, ushape = p.noise_shapes
        if p.noise == "jax":
            kg, ku = jax.random.split(jax.random.fold_in(jax.random.key(consts["seed"]), step))
            g = None if gshape is None else jax.random.gumbel(kg, gshape, jnp.float64)
            u = None if ushape is None else jax.random.uniform(ku, ushape, jnp.float64)
            return g, u
        if p.noise == "torch":
            shapes = tuple(jax.ShapeDtypeStruct((*s, 2), jnp.uint32) for s in (gshape, ushape) if s is not None)
            out = [lax.bitcast_convert_type(x, jnp.float64)
                   for x in jax.pure_callback(_host_noise_callback, shapes, consts["stream"], step)]
            g = out.pop(0) if gshape is not None else None
            u = out.pop(0) if ushape is not None else None
            return g, u
        return None, None

    def demote(logits, gumbel):
        ids = jnp.asarray(p.demote_ids)
        if gumbel is not None and T > 0:
            cand = jnp.argmax(logits.astype(jnp.float64) + T * gumbel, axis=-1)
        else:
            cand = jnp.argmax(logits, axis=-1)
        hit = jnp.any(cand[..., None] == ids, axis=-1)
        out = logits.at[..., ids].set(-jnp.inf)
        flat = jnp.where(jnp.isneginf(logits), -jnp.inf, 0.0).astype(logits.dtype)
        flat = jnp.where(jnp.arange(p.V) == cand[..., None], jnp.asarray(_FLAT_DELTA, logits.dtype), flat)
        out = jnp.where(hit[..., None], flat, out)
        if gumbel is not None:
            gumbel = jnp.where(hit[..., None], 0.0, gumbel)
        return out, gumbel

    def step(consts, c, noise=None):
        """One engine step (forward = one NFE). ``noise``: ``(gumbel, uniform)`` given by the caller, else drawn."""
        canvas, blk, s = c["canvas"], c["blk"], c["s"]
        in_block = in_block_of(blk)
        gen_cols = cols() >= p.P
        masked = canvas == p.mask_id
        maskable = masked & before_end_of(blk)           # masked ∧ generated ∧ before the block end
        has_maskable = jnp.any(masked & in_block, axis=-1)  # [B] the current block still has masks
        edits = c["edits"]
        if not fixed:
            edits = jnp.where(jnp.any(has_maskable), edits, edits - 1)
        # 1. forward (CFG: one batched forward of 2B rows)
        logits = model_logits(consts, canvas)
        # 2. processors
        if p.neg_inf_ids:
            logits = logits.at[..., jnp.asarray(p.neg_inf_ids)].set(-jnp.inf)
        # 3. noise
        gumbel, uniform = noise if noise is not None else draw_noise(consts, c["step"])
        if p.demote_ids:
            logits, gumbel = demote(logits, gumbel)
        # 4. strategy
        inp = StepInput(logits=logits, canvas=canvas, maskable=maskable, step=s, steps_per_block=p.S,
                        sampling=p.sampling, gumbel=gumbel, uniform=uniform)
        try:
            out = strategy(consts).step(inp, c["state"])
        except Exception as e:  # noqa: BLE001 - name the strategy and the contract
            raise StrategyTraceError(
                f"strategy {strategy_label(p.strategy)!r} cannot run on the JAX backend: its step() failed under "
                f"jax tracing ({type(e).__name__}: {e}). Strategies must use the array API on their inputs "
                "(no torch-only calls, no .item()/bool() of arrays, fixed shapes); see docs/architecture.md §2."
            ) from e
        commit = jnp.asarray(out.commit).astype(bool)
        remask = jnp.zeros_like(commit) if out.remask is None else jnp.asarray(out.remask).astype(bool)
        tokens = jnp.asarray(out.tokens).astype(jnp.int32)
        # 5. contract checks (architecture.md §2), then write
        committed_in_block = ~masked & in_block & gen_cols & ~c["done"][:, None]
        bits = (jnp.where(jnp.any(commit & ~(maskable | committed_in_block)), _E_COMMIT, 0)
                | jnp.where(jnp.any(remask & ~(committed_in_block | commit)), _E_REMASK, 0))
        if not p.allow_mask_commits:
            bits = bits | jnp.where(jnp.any(commit & (tokens == p.mask_id)), _E_TOKEN, 0)
        if not fixed:
            stuck = jnp.any(jnp.any(maskable, axis=-1) & ~jnp.any(commit & maskable, axis=-1))
            bits = bits | jnp.where(stuck, _E_STUCK, 0)
        first = (c["err"] == 0) & (bits != 0)
        new = jnp.where(remask, p.mask_id, jnp.where(commit, tokens, canvas))
        # a committed mask id leaves the position masked: no decoding order for it
        order = jnp.where(remask, -1, jnp.where(commit & (new != p.mask_id), c["step"], c["order"]))
        recommitted = c["recommitted"] | (commit & (new == p.mask_id))  # slots where the mask id was "committed"
        nc = {**c, "canvas": new, "order": order, "recommitted": recommitted, "state": out.state,
              "nfe": c["nfe"] + 1, "step": c["step"] + 1, "s": s + 1, "edits": edits, "changed": jnp.any(new != canvas),
              "err": jnp.where(first, bits, c["err"]), "err_blk": jnp.where(first, blk, c["err_blk"])}
        if p.history:
            nc["hist"] = lax.dynamic_update_index_in_dim(c["hist"], new[:, p.P:], c["step"], 0)
        return nc, commit, remask

    def end(consts, c):
        canvas, blk = c["canvas"], c["blk"]
        in_block = in_block_of(blk)
        maskable = (canvas == p.mask_id) & in_block
        ok = c["active"] & (c["err"] == 0)
        err = c["err"]
        # with mask-token candidates, a dynamic block that hits its cap just ends (only re-committed mask ids can
        # keep it open) and a row that committed the mask id may end its block with masks
        if not fixed and not p.allow_mask_commits:
            overflow = ok & want_more(c, maskable) & (c["s"] >= p.max_steps)
            err = jnp.where(overflow, _E_OVERFLOW, err)
            ok = ok & ~overflow
        # a row may end its block with masks only if it "committed" the mask id in this block (the reference
        # then spends its quota on that slot and leaves others masked); a row that did not must end full
        row_recommitted = jnp.any(c["recommitted"], axis=-1, keepdims=True)
        n_left = jnp.sum(maskable & ~row_recommitted, dtype=jnp.int32)
        left = ok & (n_left > 0)
        err = jnp.where(left, _E_LEFT, err)
        ok = ok & ~left
        failed = err != c["err"]
        nc = {**c, "err": err, "err_blk": jnp.where(failed, blk, c["err_blk"]),
              "err_s": jnp.where(failed, c["s"], c["err_s"]), "err_n": jnp.where(failed, n_left, c["err_n"]),
              "blk": blk + 1}
        if p.stop_on_eos and p.stop_ids:
            end_col = p.P + (blk + 1) * p.BL
            gen = canvas[:, p.P:]
            g_idx = jnp.arange(p.G)
            is_stop = jnp.any(gen[..., None] == jnp.asarray(p.stop_ids), axis=-1) & (g_idx + p.P < end_col)
            newly = jnp.any(is_stop, axis=-1) & ~c["done"] & ok
            first = jnp.min(jnp.where(is_stop, g_idx, p.G), axis=-1)
            after = (g_idx[None] > first[:, None]) & newly[:, None]
            gen = jnp.where(after, p.eos_id, gen)
            nc["canvas"] = jnp.concatenate([canvas[:, :p.P], gen], axis=1)
            nc["order"] = c["order"].at[:, p.P:].set(jnp.where(after, -1, c["order"][:, p.P:]))
            nc["done"] = c["done"] | newly
        return nc

    def decode(consts, canvas, done):
        _TRACES["decode"] += 1

        def block(c):
            c = begin(consts, c)
            c = lax.while_loop(functools.partial(inner_cond, consts), lambda c: step(consts, c)[0], c)
            return end(consts, c)

        return lax.while_loop(outer_cond, block, init(consts, canvas, done))

    def traced_step(consts, c, gumbel, uniform):
        _TRACES["step"] += 1
        noise = (gumbel, uniform) if p.noise == "arg" else None
        return step(consts, c, noise)

    return dict(init=jax.jit(init), outer_cond=jax.jit(outer_cond), begin=jax.jit(begin),
                inner_cond=jax.jit(inner_cond), step=jax.jit(traced_step), end=jax.jit(end), decode=jax.jit(decode))


@functools.lru_cache(maxsize=64)
def _cached_programs(plan: _Plan) -> dict:
    return _build(plan)


def _programs(plan: _Plan) -> dict:
    """The compiled programs of a plan, shared by every engine (and model with an equal graph definition)."""
    try:
        hash(plan)
    except TypeError:  # an unhashable strategy object: programs are rebuilt (and recompiled) per call
        return _build(plan)
    return _cached_programs(plan)


# ================================================================================================ the engine
class JaxEngine:
    """Runs decoding strategies on a JAX :class:`~dllm.models.jax_model.DiffusionTransformer`.

    Args:
        model: the flax.nnx model (``dllm.load(path, backend="jax").model``).
        mask_id / eos_id / eot_id / pad_id: defaults for the special ids (``None``: from ``model.config``).
        mesh: optional ``jax.sharding.Mesh``; the batch axis of the canvas (and of every per-row array) is sharded
            over its axis ``batch_axis`` and the parameters are replicated. The batch is padded with inert rows to
            a multiple of that axis' size (the padding rows are done from the start and dropped from the results).
        batch_axis: the mesh axis name for the batch (default ``"batch"``).
        noise: ``"torch"`` (default: the torch backend's CPU noise stream, exact parity at T > 0) or ``"jax"``
            (``jax.random`` on the device). See the module docstring.
        compile_loop: compile the whole decode loop in :meth:`decode` (default). False: the step-driven loop.
    """

    def __init__(self, model, *, mask_id: int | None = None, eos_id: int | None = None, eot_id: int | None = None,
                 pad_id: int | None = None, mesh: Mesh | None = None, batch_axis: str = "batch",
                 noise: str = "torch", compile_loop: bool = True):
        if not is_jax_model(model):
            raise TypeError(f"JaxEngine needs the JAX model (flax.nnx DiffusionTransformer, "
                            f"dllm.load(path, backend='jax')), got {type(model).__name__}.")
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}.")
        self.model = model
        mc = model.config
        self.mask_id = mask_id if mask_id is not None else getattr(mc, "mask_token_id", None)
        self.eos_id = eos_id if eos_id is not None else getattr(mc, "eos_token_id", None)
        self.eot_id = eot_id if eot_id is not None else getattr(mc, "eot_token_id", None)
        self.pad_id = pad_id if pad_id is not None else getattr(mc, "pad_token_id", None)
        self.vocab_size = mc.vocab_size
        self.noise = noise
        self.compile_loop = compile_loop
        self.mesh = mesh
        self.batch_axis = batch_axis
        self.graphdef, params = nnx.split(model)
        if mesh is not None:
            if batch_axis not in mesh.axis_names:
                raise ValueError(f"batch_axis {batch_axis!r} is not an axis of the mesh {mesh.axis_names}.")
            params = jax.device_put(params, NamedSharding(mesh, P()))
        self.params = params
        self.last_mode: str | None = None  # "loop" / "step" / "lookahead": how the last decode ran
        self._branches = None

    # ---- inputs -------------------------------------------------------------------------------------------------
    @property
    def num_shards(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.shape[self.batch_axis])

    def _special_ids(self, config: DecodeConfig):
        return special_ids(config, self.mask_id, self.eos_id, self.eot_id, self.pad_id, self.vocab_size)

    def prepare(self, input_ids: Sequence[Sequence[int]], gen_length: int, mask_id: int, pad_id: int):
        """NumPy ``(canvas [B, L] int32, attn [B, L] bool | None, pos | None, real [B, L] bool, done [B] bool, P,
        B_real)``; rows beyond ``B_real`` are inert padding rows for the mesh (done, nothing masked)."""
        rows = prompt_rows(input_ids, self.vocab_size)
        B_real, P = len(rows), max(len(r) for r in rows)
        B = B_real + (-B_real) % self.num_shards
        L = P + gen_length
        canvas = np.full((B, L), pad_id, np.int32)
        attn = np.ones((B, L), bool)
        for i, r in enumerate(rows):
            canvas[i, P:] = mask_id
            attn[i, :P - len(r)] = False
            if r:
                canvas[i, P - len(r):P] = r
        done = np.arange(B) >= B_real
        padded = any(len(r) != P for r in rows)
        pos = np.clip(np.cumsum(attn, -1) - 1, 0, None).astype(np.int32) if padded else None
        return canvas, (attn if padded else None), pos, attn, done, P, B_real

    def _setup(self, input_ids, config: DecodeConfig, strategy, record_history: bool, mode: str):
        strategy = resolve_strategy(config.strategy if strategy is None else strategy)
        label = strategy_label(strategy)
        schedule = getattr(strategy, "schedule", "fixed")
        if schedule not in ("fixed", "dynamic"):
            raise ValueError(f"strategy {label!r} has schedule {schedule!r}; expected 'fixed' or 'dynamic'.")
        mask_id, eos_id, eot_id, pad_id = self._special_ids(config)
        G, BL, S, nb = config.gen_length, config.block_len, config.steps_per_block, config.num_blocks
        T = float(config.temperature)
        sampling = SamplingParams(temperature=T, top_p=config.top_p, top_k=config.top_k)
        needs_uniform = bool(getattr(strategy, "needs_uniform_noise", lambda s: False)(sampling))
        post_edit = int(getattr(strategy, "max_post_edit_steps", 0) or 0)
        V = self.vocab_size
        in_vocab = lambda ids: tuple(sorted({int(i) for i in ids if i is not None and 0 <= int(i) < V}))  # noqa
        if config.confidence_eos_eot_inf:
            demote = in_vocab(demoted_ids(eos_id, eot_id, T, config.llada_eos_quirk))
        else:
            demote = ()
        neg_inf = [eos_id] if config.logits_eos_inf else []
        neg_inf += [mask_id] if config.suppress_mask_token else []
        neg_inf_ids = tuple(i for i in dict.fromkeys(int(i) for i in neg_inf) if 0 <= i < V)
        canvas, attn, pos, real, done, P, B_real = self.prepare(input_ids, G, mask_id, pad_id)
        B, L = canvas.shape
        need_g = T > 0
        if not (need_g or needs_uniform):
            noise = "none"
        elif self.noise == "jax":
            noise = "jax"
        elif mode == "loop":
            noise = "torch"
        else:
            noise = "arg"
        skeleton, hyper = split_strategy(strategy, sampling, S, needs_uniform)
        max_steps = S if schedule == "fixed" else BL + post_edit
        plan = _Plan(graphdef=self.graphdef, strategy=skeleton, schedule=schedule, L=L, P=P, G=G, BL=BL,
                     num_blocks=nb, S=S, post_edit=post_edit, max_steps=max_steps, V=V, mask_id=mask_id,
                     allow_mask_commits=not config.suppress_mask_token,
                     eos_id=eos_id, stop_ids=in_vocab([eos_id, eot_id]), neg_inf_ids=neg_inf_ids,
                     demote_ids=demote, sampling=sampling, needs_uniform=needs_uniform, noise=noise,
                     noise_shapes=((B, L, V) if need_g else None, (B, L) if needs_uniform else None),
                     cfg=config.cfg_scale > 0, padded=attn is not None, stop_on_eos=config.stop_on_eos,
                     history=record_history and mode == "loop", hist_len=nb * max_steps)
        gen_cols = np.arange(L) >= P
        host = dict(attn=attn, pos=pos, prompt_mask=real & ~gen_cols)
        batch = dict(canvas=canvas, done=done)
        consts = dict(params=self.params, hyper=hyper, cfg_scale=float(config.cfg_scale), seed=int(config.seed),
                      stream=0)
        with jax.enable_x64(True):
            put = self._put
            consts.update({k: put(v) for k, v in host.items()})
            batch = {k: put(v) for k, v in batch.items()}
        host_noise = None
        if noise in ("torch", "arg"):
            host_noise = _HostNoise(config.seed, B_real, B, L, V, need_g, needs_uniform)
        return dict(plan=plan, consts=consts, batch=batch, label=label, B_real=B_real, P=P, host_noise=host_noise,
                    strategy=strategy)

    def _put(self, x):
        if x is None:
            return None
        if self.mesh is None:
            return jnp.asarray(x)
        return jax.device_put(jnp.asarray(x), NamedSharding(self.mesh, P(self.batch_axis)))

    # ---- errors -------------------------------------------------------------------------------------------------
    @staticmethod
    def _raise(c, label: str, plan: _Plan):
        err = int(c["err"])
        if not err:
            return
        blk, s, n = int(c["err_blk"]), int(c["err_s"]), int(c["err_n"])
        if err & _E_COMMIT:
            raise RuntimeError(f"strategy {label!r} committed position(s) outside the maskable set of block {blk} "
                               "(prompt, padding or another block).")
        if err & _E_REMASK:
            raise RuntimeError(f"strategy {label!r} remasked position(s) that are not committed generated tokens "
                               f"of block {blk}.")
        if err & _E_TOKEN:
            raise RuntimeError(f"strategy {label!r} committed the mask token itself.")
        if err & _E_STUCK:
            raise RuntimeError(f"dynamic strategy {label!r} committed nothing in a step although block {blk} still "
                               "has masked positions; a dynamic strategy must commit at least one per step.")
        if err & _E_OVERFLOW:
            raise RuntimeError(f"strategy {label!r} did not finish block {blk} within {plan.max_steps} steps "
                               f"(block_length {plan.BL} + {plan.post_edit} post-edit steps).")
        raise RuntimeError(f"strategy {label!r} left {n} masked position(s) in block {blk} after its "
                           f"{s} steps; a 'fixed' strategy must fill its block within steps_per_block={plan.S}.")

    def _result(self, c, setup, history) -> BatchResult:
        P, Br = setup["P"], setup["B_real"]
        canvas = np.asarray(c["canvas"])[:Br].astype(np.int64)  # a writable copy
        steps = int(c["step"])
        if history is None and "hist" in c:
            h = np.asarray(c["hist"])[:steps, :Br]
            history = [h[i] for i in range(steps)]
        return BatchResult(sequences=canvas[:, P:], canvas=canvas, prompt_length=P,
                           decoding_order=np.asarray(c["order"])[:Br, P:].astype(np.int64), nfe=int(c["nfe"]),
                           steps=steps, history=history, branch_forwards=int(c["nfe"]))

    # ---- the whole loop, compiled ------------------------------------------------------------------------------
    def decode(self, input_ids: Sequence[Sequence[int]], config: DecodeConfig, strategy=None, *,
               record_history: bool = False) -> BatchResult:
        """Decode one batch with the whole loop compiled (one XLA program; no host sync until the end).

        Falls back to the step-driven loop of :meth:`run` when ``compile_loop=False``, when the torch noise
        stream is needed on a multi-device mesh, or when the strategy's state does not keep one structure.
        """
        s = resolve_strategy(config.strategy if strategy is None else strategy)
        if getattr(s, "requires_branches", False):
            return self._lookahead(input_ids, config, s, record_history)
        use_loop = self.compile_loop
        if use_loop and self.num_shards > 1 and self.noise == "torch":
            sp = SamplingParams(float(config.temperature), config.top_p, config.top_k)
            if config.temperature > 0 or getattr(s, "needs_uniform_noise", lambda _: False)(sp):
                use_loop = False  # host noise callbacks inside sharded while-loops are not supported
        if use_loop:
            setup = self._setup(input_ids, config, strategy, record_history, "loop")
            try:
                return self._decode_loop(setup)
            except StrategyTraceError:
                raise
            except TypeError as e:  # carry structure / dtype changed across steps: drive the steps from Python
                if not any(w in str(e) for w in ("while_loop", "carry", "body_fun")):
                    raise
                warnings.warn(f"strategy {setup['label']!r} cannot run in a compiled while-loop ({e}); "
                              "using the step-driven loop.", RuntimeWarning, stacklevel=2)
        return run_to_end(self.run(input_ids, config, strategy, record_history=record_history))

    def _lookahead(self, input_ids, config, strategy, record_history) -> BatchResult:
        """LoPA lookahead branches (``requires_branches``): the JAX branch loop of
        :mod:`dllm.distributed.jax_branches` (its noise is ``jax.random``; its own mesh axis ``"branch"``)."""
        return run_to_end(self._lookahead_run(input_ids, config, strategy, record_history))

    def _lookahead_run(self, input_ids, config, strategy, record_history) -> Generator[StepEvent, None, BatchResult]:
        """:meth:`_lookahead` step by step: the branch loop's :class:`StepEvent` s (with per-row
        ``row_forwards``), then its result as a :class:`BatchResult`."""
        from .distributed.jax_branches import JaxLookahead

        if self._branches is None:
            self._branches = JaxLookahead(self.model, mask_id=self.mask_id, eos_id=self.eos_id, eot_id=self.eot_id,
                                          pad_id=self.pad_id)
        self.last_mode = "lookahead"
        gen = self._branches.run(input_ids, config, strategy, record_history=record_history)
        while True:
            with jax.enable_x64(True):
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    r = stop.value
                    break
            yield ev
        seqs = np.asarray(r.sequences)
        return BatchResult(sequences=seqs, canvas=seqs, prompt_length=0, decoding_order=np.asarray(r.decoding_order),
                           nfe=int(r.nfe), steps=int(r.steps), history=r.history,
                           branch_forwards=int(r.branch_forwards))

    def _decode_loop(self, setup) -> BatchResult:
        plan, consts, batch = setup["plan"], setup["consts"], setup["batch"]
        fn = _programs(plan)["decode"]
        sid = None
        if setup["host_noise"] is not None:
            sid = next(_STREAM_IDS)
            _STREAMS[sid] = setup["host_noise"]
            consts = {**consts, "stream": sid}
        try:
            with jax.enable_x64(True):
                c = fn(consts, batch["canvas"], batch["done"])
                c = jax.device_get(c)
        finally:
            if sid is not None:
                _STREAMS.pop(sid, None)
        self.last_mode = "loop"
        self._raise(c, setup["label"], plan)
        return self._result(c, setup, None)

    def lower(self, input_ids, config: DecodeConfig, strategy=None):
        """``(jax.stages.Lowered, args)`` of the whole-loop program for these inputs (for AOT compile timing:
        ``lowered.compile()(*args)``). Only for decodes that draw no host noise."""
        setup = self._setup(input_ids, config, strategy, False, "loop")
        if setup["host_noise"] is not None:
            raise ValueError("lower() is for decodes without host noise (greedy, or noise='jax').")
        fn = _programs(setup["plan"])["decode"]
        args = (setup["consts"], setup["batch"]["canvas"], setup["batch"]["done"])
        with jax.enable_x64(True):
            return fn.lower(*args), args

    # ---- step-driven loop (events) ------------------------------------------------------------------------------
    def run(self, input_ids: Sequence[Sequence[int]], config: DecodeConfig, strategy=None, *,
            record_history: bool = False) -> Generator[StepEvent, None, BatchResult]:
        """Decode one batch yielding a :class:`~dllm.outputs.StepEvent` per step (NumPy arrays), like
        :meth:`dllm.engine.Engine.run`; returns a :class:`BatchResult`. One jitted step function (forward,
        processors, noise, strategy, write, checks) driven from Python, one host sync per step."""
        resolved = resolve_strategy(config.strategy if strategy is None else strategy)
        if getattr(resolved, "requires_branches", False):
            return (yield from self._lookahead_run(input_ids, config, resolved, record_history))
        setup = self._setup(input_ids, config, strategy, record_history, "step")
        plan, consts = setup["plan"], setup["consts"]
        fns = _programs(plan)
        x64 = jax.enable_x64
        P, Br = setup["P"], setup["B_real"]
        hn = setup["host_noise"]
        history = [] if record_history else None
        self.last_mode = "step"
        with x64(True):
            c = fns["init"](consts, setup["batch"]["canvas"], setup["batch"]["done"])
        while True:
            with x64(True):
                if not bool(fns["outer_cond"](c)):
                    break
                c = fns["begin"](consts, c)
                blk = int(c["blk"])
            while True:
                with x64(True):
                    if not bool(fns["inner_cond"](consts, c)):
                        break
                    g = u = None
                    if hn is not None:
                        g, u = hn.get(int(c["step"]))
                        g, u = self._put(g), self._put(u)
                    c, commit, remask = fns["step"](consts, c, g, u)
                    self._raise(c, setup["label"], plan)
                    canvas = np.asarray(c["canvas"])[:Br].astype(np.int64)  # host first: may be sharded
                    ev = StepEvent(step=int(c["step"]) - 1, block=blk, step_in_block=int(c["s"]) - 1,
                                   committed=np.asarray(commit)[:Br, P:], remasked=np.asarray(remask)[:Br, P:],
                                   tokens=canvas[:, P:], canvas=canvas, nfe=int(c["nfe"]), prompt_length=P)
                if history is not None:
                    history.append(canvas[:, P:].copy())
                yield ev
            with x64(True):
                c = fns["end"](consts, c)
                c_host = jax.device_get({k: c[k] for k in ("err", "err_blk", "err_s", "err_n")})
            self._raise(c_host, setup["label"], plan)
        with x64(True):
            c = jax.device_get(c)
        return self._result(c, setup, history)
