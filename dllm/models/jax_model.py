"""Bidirectional transformer for masked diffusion LMs, JAX backend (``flax.nnx``).

The same model as :mod:`dllm.models.torch_model`, for both layouts (LLaDA: MHA, no bias; Dream: GQA, q/k/v bias,
shifted logits), with the same numerics: RMSNorm and RoPE in float32 and cast back, attention softmax in float32,
the LM head accumulated in float32.

Parameters keep the checkpoint layout — linear weights are ``[out_features, in_features]`` as in ``nn.Linear`` —
and the *logical* names of :mod:`dllm.models.layout` (``embed``, ``layers.{i}.q_proj``, ``final_norm``, …), so the
safetensors tensors go into the module without transposes or renaming and one table serves both backends.

Two ways to run it:

* ``model(input_ids, attention_mask=None, position_ids=None) -> [B, L, V] float32`` aligned logits (the Dream shift
  is applied inside, once). This is ordinary NNX code: it composes with ``nnx.jit`` / ``nnx.grad`` and runs eagerly
  when called outside a transform.
* For hot loops, the pure function of split state::

      forward_fn, state = make_forward_fn(model)          # graphdef closed over, jitted
      logits = forward_fn(state, input_ids, attention_mask, position_ids)

  ``forward_fn`` touches no Python object graph per call (unlike ``nnx.jit``); pass ``jit=False`` to get the
  un-jitted function for use inside a larger ``jax.jit`` / ``lax.while_loop``.

Multi-device: parameters are replicated and the batch axis is sharded (:func:`replicate`, :func:`shard_batch`);
``jax.jit`` partitions the forward automatically and the logits come back sharded over the batch axis.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .config import DLLMConfig
from .layout import logical_shapes

__all__ = [
    "DTYPES", "ATTN_IMPLS", "resolve_dtype", "DiffusionTransformer", "make_forward_fn", "forward",
    "rms_norm", "rope_cos_sin", "apply_rope", "attention",
    "replicate", "shard_batch", "batch_sharding",
]

DTYPES = {"float32": jnp.float32, "fp32": jnp.float32, "bfloat16": jnp.bfloat16, "bf16": jnp.bfloat16,
          "float16": jnp.float16, "fp16": jnp.float16}
ATTN_IMPLS = ("xla", "cudnn")


def resolve_dtype(dtype) -> jnp.dtype:
    """``"float32" | "bfloat16" | "float16"`` (or short forms, or a dtype) -> a jnp dtype."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
        return jnp.dtype(DTYPES[dtype])
    d = jnp.dtype(dtype)
    if d not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {d}.")
    return d


# ---- pure building blocks ------------------------------------------------------------------------------------
def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """RMSNorm computed in float32, result in ``x.dtype`` (as both references do)."""
    xf = x.astype(jnp.float32)
    xf = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
    return (xf * weight.astype(jnp.float32)).astype(x.dtype)


def rope_cos_sin(position_ids: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """cos/sin tables ``[B, L, head_dim]`` (float32) for rotate-half RoPE at the given positions."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    freqs = position_ids.astype(jnp.float32)[..., None] * inv_freq  # [B, L, head_dim/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x: ``[B, L, H, D]``; cos/sin: ``[B, L, D]``. Rotation in float32, result in ``x.dtype``."""
    xf = x.astype(jnp.float32)
    half = xf.shape[-1] // 2
    rotated = jnp.concatenate([-xf[..., half:], xf[..., :half]], axis=-1)
    out = xf * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return out.astype(x.dtype)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, keep: jax.Array | None, impl: str = "xla") -> jax.Array:
    """Full (non-causal) attention with a key-padding mask; GQA without materialising repeated K/V.

    q: ``[B, L, H, D]``; k, v: ``[B, S, KV, D]`` with ``H % KV == 0`` (query head ``h`` reads kv head
    ``h // (H // KV)``, as ``repeat_interleave``); keep: ``[B, S]`` bool or None. Returns ``[B, L, H, D]``.
    """
    B, L, H, D = q.shape
    KV = k.shape[2]
    if impl == "cudnn":
        mask = None if keep is None else keep[:, None, None, :]
        return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="cudnn")
    R = H // KV
    qg = q.reshape(B, L, KV, R, D)
    scores = jnp.einsum("blgrd,bsgd->bgrls", qg, k, preferred_element_type=jnp.float32) * (D ** -0.5)
    if keep is not None:
        scores = jnp.where(keep[:, None, None, None, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bgrls,bsgd->blgrd", probs, v)
    return out.reshape(B, L, H, D)


def embed_lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """``table[ids]`` (``[V, H]``, ``[B, L]`` -> ``[B, L, H]``); under an explicit-sharding mesh the output keeps
    the sharding of ``ids`` (JAX cannot infer a gather's output sharding on its own)."""
    sharding = getattr(jax.typeof(ids), "sharding", None)
    spec = getattr(sharding, "spec", None)
    if spec is not None and any(ax is not None for ax in spec):
        out = NamedSharding(sharding.mesh, P(*spec, *([None] * (ids.ndim + 1 - len(spec)))))
        return table.at[ids].get(out_sharding=out)
    return jnp.take(table, ids, axis=0)


def _linear(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """``x @ w.T (+ b)`` with ``w`` in ``nn.Linear`` layout ``[out, in]``."""
    y = jnp.einsum("...i,oi->...o", x, w)
    return y if b is None else y + b


# ---- modules -------------------------------------------------------------------------------------------------
def _param(params: dict | None, name: str, shape: tuple[int, ...], dtype, init: Callable[[], jax.Array]) -> nnx.Param:
    if params is None:
        return nnx.Param(init().astype(dtype))
    if name not in params:
        raise ValueError(f"parameter {name!r} missing from the given params.")
    t = jnp.asarray(params[name])
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"parameter {name!r} has shape {tuple(t.shape)}, expected {tuple(shape)}.")
    return nnx.Param(t if t.dtype == dtype else t.astype(dtype))


class Block(nnx.Module):
    """One pre-norm transformer block. Attribute names are the logical leaf names of :mod:`..layout`."""

    def __init__(self, cfg: DLLMConfig, index: int, *, dtype, params: dict | None, rngs: nnx.Rngs | None,
                 attn_impl: str, shapes: dict[str, tuple[int, ...]]):
        self.config = cfg
        self.attn_impl = attn_impl
        p = f"layers.{index}."

        def normal(shape):
            fan_in = shape[-1] if len(shape) == 2 else 1
            return lambda: jax.random.normal(rngs.params(), shape, jnp.float32) / fan_in ** 0.5

        def ones(shape):
            return lambda: jnp.ones(shape, jnp.float32)

        def zeros(shape):
            return lambda: jnp.zeros(shape, jnp.float32)

        def mk(leaf, init):
            shape = shapes[p + leaf]
            return _param(params, p + leaf, shape, dtype, init(shape))

        self.attn_norm = mk("attn_norm", ones)
        self.q_proj = mk("q_proj", normal)
        self.k_proj = mk("k_proj", normal)
        self.v_proj = mk("v_proj", normal)
        if cfg.qkv_bias:
            self.q_bias = mk("q_bias", zeros)
            self.k_bias = mk("k_bias", zeros)
            self.v_bias = mk("v_bias", zeros)
        else:
            self.q_bias = self.k_bias = self.v_bias = None
        self.o_proj = mk("o_proj", normal)
        self.mlp_norm = mk("mlp_norm", ones)
        self.gate_proj = mk("gate_proj", normal)
        self.up_proj = mk("up_proj", normal)
        self.down_proj = mk("down_proj", normal)

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, keep: jax.Array | None) -> jax.Array:
        cfg = self.config
        B, L, _ = x.shape
        val = lambda v: None if v is None else v[...]  # noqa: E731
        hx = rms_norm(x, self.attn_norm[...], cfg.rms_norm_eps)
        q = _linear(hx, self.q_proj[...], val(self.q_bias)).reshape(B, L, cfg.num_heads, cfg.head_dim)
        k = _linear(hx, self.k_proj[...], val(self.k_bias)).reshape(B, L, cfg.num_kv_heads, cfg.head_dim)
        v = _linear(hx, self.v_proj[...], val(self.v_bias)).reshape(B, L, cfg.num_kv_heads, cfg.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = attention(q, k, v, keep, self.attn_impl).reshape(B, L, cfg.hidden_size)
        x = x + _linear(a, self.o_proj[...])
        hm = rms_norm(x, self.mlp_norm[...], cfg.rms_norm_eps)
        return x + _linear(jax.nn.silu(_linear(hm, self.gate_proj[...])) * _linear(hm, self.up_proj[...]),
                           self.down_proj[...])


class DiffusionTransformer(nnx.Module):
    """The model (JAX). Attribute names are the *logical* names of :mod:`dllm.models.layout`.

    Args:
        cfg: the shared :class:`~dllm.models.config.DLLMConfig`.
        dtype: parameter and activation dtype (``"float32"``, ``"bfloat16"``, ``"float16"`` or a dtype).
        params: logical name -> array (e.g. from :func:`dllm.models.checkpoint.read_tensors`); every tensor of
            :func:`~dllm.models.layout.logical_shapes` must be present with its shape. ``None``: random init.
        rngs: random init only (default ``nnx.Rngs(0)``).
        attn_impl: ``"xla"`` (explicit einsum attention, float32 softmax; any dtype / device) or ``"cudnn"``
            (``jax.nn.dot_product_attention`` flash kernel; GPU, bf16/fp16 only).
    """

    def __init__(self, cfg: DLLMConfig, *, dtype="float32", params: dict[str, Any] | None = None,
                 rngs: nnx.Rngs | None = None, attn_impl: str = "xla"):
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}.")
        dtype = resolve_dtype(dtype)
        shapes = logical_shapes(cfg)
        if params is not None:
            extra = sorted(set(params) - set(shapes))
            if extra:
                raise ValueError(f"unexpected parameters {extra[:8]} for the {cfg.layout} layout config.")
        elif rngs is None:
            rngs = nnx.Rngs(0)
        self.config = cfg
        self.dtype = dtype
        self.attn_impl = attn_impl
        V, h = cfg.vocab_size, cfg.hidden_size
        self.embed = _param(params, "embed", (V, h), dtype,
                            lambda: jax.random.normal(rngs.params(), (V, h), jnp.float32))
        self.layers = nnx.List([
            Block(cfg, i, dtype=dtype, params=params, rngs=rngs, attn_impl=attn_impl, shapes=shapes)
            for i in range(cfg.num_layers)
        ])
        self.final_norm = _param(params, "final_norm", (h,), dtype, lambda: jnp.ones((h,), jnp.float32))
        if cfg.tie_word_embeddings:
            self.lm_head = None
        else:
            self.lm_head = _param(params, "lm_head", (V, h), dtype,
                                  lambda: jax.random.normal(rngs.params(), (V, h), jnp.float32) / h ** 0.5)

    @property
    def shift_logits(self) -> bool:
        return self.config.shift_logits

    def hidden_states(self, input_ids, attention_mask=None, position_ids=None) -> jax.Array:
        input_ids = jnp.asarray(input_ids)
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape [B, L], got {tuple(input_ids.shape)}.")
        if not jnp.issubdtype(input_ids.dtype, jnp.integer):
            raise ValueError(f"input_ids must be an integer array, got dtype {input_ids.dtype}.")
        B, L = input_ids.shape
        cfg = self.config
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
        else:
            position_ids = jnp.asarray(position_ids)
            if position_ids.shape != (B, L):
                raise ValueError(f"position_ids must have shape {(B, L)}, got {tuple(position_ids.shape)}.")
        cos, sin = rope_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta)
        keep = None
        if attention_mask is not None:
            attention_mask = jnp.asarray(attention_mask)
            if attention_mask.shape != (B, L):
                raise ValueError(f"attention_mask must have shape {(B, L)}, got {tuple(attention_mask.shape)}.")
            keep = attention_mask.astype(bool)
            # Key-padding mask; a fully padded row still attends somewhere to avoid NaN (its outputs are unused).
            keep = keep | ~jnp.any(keep, axis=-1, keepdims=True)
        x = embed_lookup(self.embed[...], input_ids.astype(jnp.int32))
        for layer in self.layers:
            x = layer(x, cos, sin, keep)
        return rms_norm(x, self.final_norm[...], cfg.rms_norm_eps)

    def raw_logits(self, input_ids, attention_mask=None, position_ids=None) -> jax.Array:
        """Unshifted float32 logits ``[B, L, V]`` (head accumulated in float32)."""
        h = self.hidden_states(input_ids, attention_mask, position_ids)
        w = self.embed[...] if self.lm_head is None else self.lm_head[...]
        return jnp.einsum("bld,vd->blv", h, w, preferred_element_type=jnp.float32)

    def __call__(self, input_ids, attention_mask=None, position_ids=None) -> jax.Array:
        """Aligned float32 logits ``[B, L, V]``: row ``i`` predicts token ``i`` (Dream shift applied here)."""
        logits = self.raw_logits(input_ids, attention_mask, position_ids).astype(jnp.float32)
        if self.config.shift_logits:
            logits = jnp.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
        return logits

    # ---- logical-name views ---------------------------------------------------------------------------------
    def logical_state_dict(self) -> dict[str, jax.Array]:
        """Logical name -> parameter array (the names of :func:`~dllm.models.layout.logical_shapes`)."""
        out = {"embed": self.embed[...], "final_norm": self.final_norm[...]}
        if self.lm_head is not None:
            out["lm_head"] = self.lm_head[...]
        for i, layer in enumerate(self.layers):
            for leaf in ("attn_norm", "q_proj", "k_proj", "v_proj", "o_proj", "mlp_norm", "gate_proj", "up_proj",
                         "down_proj", "q_bias", "k_bias", "v_bias"):
                var = getattr(layer, leaf)
                if var is not None:
                    out[f"layers.{i}.{leaf}"] = var[...]
        return out

    def forward_fn(self, jit: bool = True):
        """Shorthand for :func:`make_forward_fn` ``(self, jit)`` -> ``(forward_fn, state)``."""
        return make_forward_fn(self, jit=jit)


# ---- functional API ------------------------------------------------------------------------------------------
def forward(graphdef, state, input_ids, attention_mask=None, position_ids=None) -> jax.Array:
    """Pure forward of split state (``graphdef, state = nnx.split(model)``); ``graphdef`` must be static under jit."""
    return nnx.merge(graphdef, state)(input_ids, attention_mask, position_ids)


def make_forward_fn(model: DiffusionTransformer, jit: bool = True):
    """Split ``model`` and return ``(forward_fn, state)`` with ``forward_fn(state, input_ids, attention_mask=None,
    position_ids=None) -> [B, L, V] float32`` aligned logits.

    The graph definition is closed over, so ``forward_fn`` is a pure function of arrays: with ``jit=True`` it is
    ``jax.jit``-compiled (one compile per input shape / dtype / sharding and per None-or-array pattern of the
    optional arguments; models with equal graph definitions — same config, dtype, attention — share the compiled
    function); with ``jit=False`` it is meant to be called inside a caller's own ``jax.jit`` / ``lax`` loop.
    """
    graphdef, state = nnx.split(model)
    return (_jitted_forward(graphdef) if jit else _pure_forward(graphdef)), state


def _pure_forward(graphdef):
    def forward_fn(state, input_ids, attention_mask=None, position_ids=None):
        return forward(graphdef, state, input_ids, attention_mask, position_ids)

    return forward_fn


@functools.lru_cache(maxsize=32)
def _jitted_forward(graphdef):
    return jax.jit(_pure_forward(graphdef))


# ---- multi-device helpers ------------------------------------------------------------------------------------
def batch_sharding(mesh: Mesh, axis: str = "batch") -> NamedSharding:
    """``NamedSharding(mesh, P(axis))``: leading (batch) axis split over ``axis``, the rest replicated."""
    return NamedSharding(mesh, P(axis))


def shard_batch(mesh: Mesh, *arrays, axis: str = "batch"):
    """Place ``[B, ...]`` arrays with the batch axis sharded over ``mesh`` axis ``axis`` (None passes through).

    ``B`` must be divisible by the mesh axis size. Returns one array or a tuple.
    """
    s = batch_sharding(mesh, axis)
    out = tuple(None if a is None else jax.device_put(jnp.asarray(a), s) for a in arrays)
    return out[0] if len(out) == 1 else out


def replicate(tree, mesh: Mesh):
    """Replicate every array of a pytree (e.g. the split ``state``) over all devices of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, P()))
