"""Plug a Hugging Face ``transformers`` model into the engine (the model protocol of docs/architecture.md §1).

For checkpoints whose modelling code is not re-implemented here (or to check our implementation against the
original remote code), load the model with ``transformers`` and wrap it::

    from transformers import AutoModel
    hf = AutoModel.from_pretrained(path, trust_remote_code=True, torch_dtype="bfloat16")   # only trusted code
    model = HFModelAdapter(hf)                     # or: dllm.load(path, backend="hf", trust_remote_code=True)

``HFModelAdapter(input_ids [B, L], attention_mask [B, L] | None, position_ids [B, L] | None) -> [B, L, V]`` float32
aligned logits: the Dream-family one-position shift is applied when ``shift_logits`` (default: the config's
``model_type`` is ``dream``). ``position_ids`` are passed only if the wrapped ``forward`` accepts them; LLaDA's
remote code does not, so a left-padded row there sees shifted RoPE positions (strategies.md quirk 4) — decode
such models one row at a time when exact parity matters.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class AdapterConfig:
    """The ids and sizes the engine reads from ``model.config``."""

    vocab_size: int
    mask_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None = None
    eot_token_id: int | None = None
    shift_logits: bool = False


def _first(*values):
    return next((v for v in values if v is not None), None)


class HFModelAdapter(torch.nn.Module):
    """Wrap a ``transformers`` model (anything returning ``.logits`` or a tuple with logits first)."""

    def __init__(self, hf_model, *, shift_logits: bool | None = None, mask_token_id: int | None = None,
                 eos_token_id: int | None = None):
        super().__init__()
        self.hf_model = hf_model
        hc = getattr(hf_model, "config", None)
        vocab = _first(getattr(hc, "embedding_size", None), getattr(hc, "vocab_size", None))
        if vocab is None:
            raise ValueError("the wrapped model's config has no vocab_size; cannot size the logits.")
        model_type = str(getattr(hc, "model_type", "")).lower()
        eos = _first(eos_token_id, getattr(hc, "eos_token_id", None))
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        self.config = AdapterConfig(
            vocab_size=int(vocab),
            mask_token_id=_first(mask_token_id, getattr(hc, "mask_token_id", None)),
            eos_token_id=eos,
            pad_token_id=getattr(hc, "pad_token_id", None),
            eot_token_id=getattr(hc, "eot_token_id", None),
            shift_logits=(model_type == "dream") if shift_logits is None else bool(shift_logits),
        )
        if self.config.mask_token_id is None:
            raise ValueError("the wrapped model's config has no mask_token_id; pass mask_token_id=.")
        params = inspect.signature(hf_model.forward).parameters
        self._takes_positions = "position_ids" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    @property
    def shift_logits(self) -> bool:
        return self.config.shift_logits

    def forward(self, input_ids, attention_mask=None, position_ids=None) -> torch.Tensor:
        kwargs = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.long()
        if position_ids is not None and self._takes_positions:
            kwargs["position_ids"] = position_ids
        out = self.hf_model(input_ids=input_ids, **kwargs)
        logits = (out.logits if hasattr(out, "logits") else out[0]).float()
        if self.config.shift_logits:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits


def load_hf_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu",
                  trust_remote_code: bool = False) -> HFModelAdapter:
    """``AutoModel.from_pretrained`` (remote code only with ``trust_remote_code``) wrapped in the adapter."""
    from transformers import AutoModel

    try:
        hf = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code, torch_dtype=dtype)
    except ValueError as e:
        if not trust_remote_code and "trust_remote_code" in str(e):
            raise ValueError(f"{path}: this checkpoint ships its own modelling code; pass trust_remote_code=True "
                             f"(--trust-remote-code) if you trust it, or use backend 'torch'.") from e
        raise
    return HFModelAdapter(hf.to(device).eval())
