"""Load / save the PyTorch model from / to a checkpoint folder."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import read_tensors, write_tensors
from .config import DLLMConfig
from .torch_model import DiffusionTransformer

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    return DTYPES[dtype]


def load_torch_model(path: str | Path, dtype="float32", device: str | torch.device = "cpu") -> DiffusionTransformer:
    """Build the model from ``config.json`` and load its safetensors (validated) in ``dtype`` on ``device``."""
    cfg = DLLMConfig.from_pretrained(path)
    torch_dtype = resolve_dtype(dtype)
    with torch.device("meta"):
        model = DiffusionTransformer(cfg).to(torch_dtype)  # meta params in the target dtype: no fp32 copy later
    tensors = read_tensors(path, cfg, framework="pt", convert=lambda t: t.to(torch_dtype))
    # Re-materialise on the target device from the checkpoint tensors (no random init of 8B weights).
    model = model.to_empty(device=device)
    params = model.logical_state_dict()
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name])
    # loaded for inference: no autograd graphs (a trainer enables grads on what it trains)
    return model.to(torch_dtype).eval().requires_grad_(False)


def save_torch_model(model: DiffusionTransformer, path: str | Path, max_shard_bytes: int | None = None,
                     dtype=None) -> None:
    """Write ``config.json`` + safetensors under the real family names."""
    cfg = model.config
    if dtype is not None:
        cfg = cfg.replace(torch_dtype=str(resolve_dtype(dtype)).removeprefix("torch."))
    tensors = model.logical_state_dict()
    if dtype is not None:
        tensors = {k: v.to(resolve_dtype(dtype)) for k, v in tensors.items()}
    cfg.save_pretrained(path)
    write_tensors(path, cfg, tensors, max_shard_bytes=max_shard_bytes)
