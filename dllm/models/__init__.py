"""Models: configuration, real checkpoint layouts, backends, tokenizer loading.

``load_model(path, backend="torch")`` returns an object following the model protocol of
``docs/architecture.md`` §1: ``model(input_ids, attention_mask, position_ids) -> aligned logits``.
"""
from __future__ import annotations

from pathlib import Path

from .config import DLLMConfig, LAYOUTS

BACKENDS = ("torch", "jax", "hf")


def load_model(path: str | Path, backend: str = "torch", dtype: str = "float32", device: str | None = None,
               trust_remote_code: bool = False):
    """Load a LLaDA- or Dream-layout checkpoint folder on the chosen backend.

    ``backend="hf"`` loads the checkpoint's own ``transformers`` model (remote code only with
    ``trust_remote_code``) behind :class:`~dllm.models.hf_adapter.HFModelAdapter`; it decodes on the torch engine.
    """
    if backend == "torch":
        from .torch_loader import load_torch_model

        return load_torch_model(path, dtype=dtype, device=device or "cpu")
    if backend == "hf":
        from .hf_adapter import load_hf_model
        from .torch_loader import resolve_dtype

        return load_hf_model(path, dtype=resolve_dtype(dtype), device=device or "cpu",
                             trust_remote_code=trust_remote_code)
    if backend == "jax":
        try:
            from .jax_loader import load_jax_model
        except ImportError as e:  # pragma: no cover - depends on extras
            raise ImportError(f"backend 'jax' needs the jax extra: pip install 'dllm[jax]' ({e})") from e
        return load_jax_model(path, dtype=dtype)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The checkpoint's tokenizer through ``transformers.AutoTokenizer``, or None if the folder has none.

    Dream's tokenizer needs ``trust_remote_code=True`` (its ``tokenization_dream.py``); only pass it for code you trust.
    """
    path = Path(path)
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


__all__ = ["DLLMConfig", "LAYOUTS", "BACKENDS", "load_model", "load_tokenizer"]
