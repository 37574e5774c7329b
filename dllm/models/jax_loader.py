"""Load the JAX model from a checkpoint folder (the same folders the PyTorch backend reads).

Safetensors are read straight into jax arrays through the shared, validating reader
(:func:`dllm.models.checkpoint.read_tensors`, ``framework="flax"``): a missing, unexpected or mis-shaped tensor
raises the same ``ValueError`` as on the torch backend. Single-file and sharded (``model.safetensors.index.json``)
folders, fp32 / bf16 / fp16 storage; tensors are cast to the requested ``dtype`` as they are read.
"""
from __future__ import annotations

from pathlib import Path

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .checkpoint import read_tensors
from .config import DLLMConfig
from .jax_model import DiffusionTransformer, resolve_dtype

__all__ = ["load_jax_model", "read_jax_params"]


def read_jax_params(path: str | Path, cfg: DLLMConfig, dtype="float32", mesh: Mesh | None = None) -> dict:
    """Logical name -> jax array in ``dtype``; replicated over ``mesh`` when one is given (else default device)."""
    jdtype = resolve_dtype(dtype)
    sharding = NamedSharding(mesh, P()) if mesh is not None else None

    def convert(t):
        if t.dtype != jdtype:
            t = t.astype(jdtype)
        return jax.device_put(t, sharding) if sharding is not None else t

    return read_tensors(path, cfg, framework="flax", convert=convert)


def load_jax_model(path: str | Path, dtype="float32", mesh: Mesh | None = None,
                   attn_impl: str = "xla") -> DiffusionTransformer:
    """Build the model from ``config.json`` and load its safetensors (validated) in ``dtype``.

    Args:
        path: checkpoint folder (LLaDA or Dream layout).
        dtype: ``"float32"`` / ``"bfloat16"`` / ``"float16"`` (parameters and activations).
        mesh: optional ``jax.sharding.Mesh``; parameters are then replicated over its devices, ready for a
            batch-sharded forward (:func:`dllm.models.jax_model.shard_batch`).
        attn_impl: ``"xla"`` or ``"cudnn"`` (see :class:`~dllm.models.jax_model.DiffusionTransformer`).
    """
    cfg = DLLMConfig.from_pretrained(path)
    params = read_jax_params(path, cfg, dtype=dtype, mesh=mesh)
    return DiffusionTransformer(cfg, dtype=dtype, params=params, attn_impl=attn_impl)
