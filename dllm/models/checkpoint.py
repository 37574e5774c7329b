"""Reading and writing checkpoint folders exactly as LLaDA / Dream ship them.

A folder holds ``config.json``, either ``model.safetensors`` or shards listed in ``model.safetensors.index.json``,
and (optionally) tokenizer files. Names inside the safetensors files are the real family names
(:func:`dllm.models.layout.checkpoint_names`). Loading checks every tensor: a missing, unexpected or mis-shaped
one raises a ``ValueError`` that names it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from .config import DLLMConfig
from .layout import checkpoint_names, logical_shapes

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Buffers some exports carry that are recomputed at load time.
_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")


def checkpoint_files(path: str | Path) -> list[Path]:
    """The safetensors files of a folder (one file, or the shards named by the index)."""
    path = Path(path)
    if (path / INDEX_FILE).is_file():
        index = json.loads((path / INDEX_FILE).read_text())
        if "weight_map" not in index:
            raise ValueError(f"{path / INDEX_FILE}: missing 'weight_map'.")
        files = sorted(set(index["weight_map"].values()))
        missing = [f for f in files if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: shard files named by {INDEX_FILE} are missing: {missing}.")
        return [path / f for f in files]
    if (path / SINGLE_FILE).is_file():
        return [path / SINGLE_FILE]
    found = sorted(p.name for p in path.glob("*.safetensors"))
    if found:
        return [path / f for f in found]
    raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in model folder {str(path)!r}.")


def read_tensors(path: str | Path, cfg: DLLMConfig, framework: str = "pt",
                 convert: Callable | None = None) -> dict[str, object]:
    """Read every weight of a folder into a dict keyed by *logical* name, validating names and shapes.

    Args:
        framework: ``"pt"`` (torch tensors), ``"numpy"`` or ``"flax"`` (jax arrays), as ``safetensors.safe_open``.
        convert: optional function applied to each tensor as it is read (e.g. a dtype cast).
    """
    from safetensors import safe_open

    names = checkpoint_names(cfg)
    expected_shapes = logical_shapes(cfg)
    by_ckpt = {v: k for k, v in names.items()}
    out: dict[str, object] = {}
    unexpected: list[str] = []
    misshaped: list[str] = []
    for file in checkpoint_files(path):
        with safe_open(str(file), framework=framework) as f:
            for key in f.keys():
                if key not in by_ckpt:
                    if not _IGNORED.match(key):
                        unexpected.append(key)
                    continue
                logical = by_ckpt[key]
                shape = tuple(f.get_slice(key).get_shape())
                if shape != expected_shapes[logical]:
                    misshaped.append(f"{key}: checkpoint {shape} vs config {expected_shapes[logical]}")
                    continue
                t = f.get_tensor(key)
                out[logical] = convert(t) if convert else t
    missing = [names[k] for k in names if k not in out and not any(m.startswith(names[k] + ":") for m in misshaped)]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing[:8]}{' …' if len(missing) > 8 else ''} ({len(missing)} in all)")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:8]}{' …' if len(unexpected) > 8 else ''} ({len(unexpected)} in all)")
    if misshaped:
        problems.append(f"mis-shaped tensors {misshaped[:8]}")
    if problems:
        raise ValueError(f"checkpoint {str(path)!r} does not match its config.json ({cfg.layout} layout): "
                         + "; ".join(problems) + ".")
    return out


def write_tensors(path: str | Path, cfg: DLLMConfig, tensors: dict[str, "object"],
                  max_shard_bytes: int | None = None) -> None:
    """Write logical-name torch tensors under their real checkpoint names (sharded with an index if asked)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    names = checkpoint_names(cfg)
    named = {names[k]: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"format": "pt"}
    if not max_shard_bytes:
        save_file(named, str(path / SINGLE_FILE), metadata=meta)
        return
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in named.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    weight_map = {}
    n = len(shards)
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{n:05d}.safetensors"
        save_file(shard, str(path / fname), metadata=meta)
        weight_map.update({k: fname for k in shard})
    total = sum(v.numel() * v.element_size() for v in named.values())
    (path / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
