"""Model configuration shared by both backends.

One :class:`DLLMConfig` describes both real checkpoint layouts:

* ``layout="llada"`` — LLaDA-8B (OLMo-derived): MHA, SwiGLU, RMSNorm, RoPE, untied head, no logit shift,
  parameter names ``model.transformer.*`` (checkpoints.md §1).
* ``layout="dream"`` — Dream-v0-7B (Qwen2): GQA, q/k/v bias, logits shifted by one position,
  parameter names ``model.layers.*`` (checkpoints.md §2).

``from_hf_dict`` reads the ``config.json`` of either family; ``to_hf_dict`` writes one in that family's format,
so a saved folder loads exactly like the real checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYOUTS = ("llada", "dream")


@dataclass(frozen=True)
class DLLMConfig:
    layout: str = "llada"
    vocab_size: int = 126464
    hidden_size: int = 4096
    num_layers: int = 32
    num_heads: int = 32
    num_kv_heads: int = 32
    intermediate_size: int = 12288
    max_position_embeddings: int = 4096
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    qkv_bias: bool = False
    tie_word_embeddings: bool = False
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eot_token_id: int | None = None
    torch_dtype: str = "float32"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"config 'layout' must be one of {LAYOUTS}, got {self.layout!r}.")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"config 'hidden_size' ({self.hidden_size}) must be divisible by 'num_heads' ({self.num_heads})."
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"config 'num_heads' ({self.num_heads}) must be divisible by 'num_kv_heads' ({self.num_kv_heads})."
            )
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"head dim {self.hidden_size // self.num_heads} must be even for RoPE.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def shift_logits(self) -> bool:
        """Dream keeps the AR alignment of its Qwen2.5 init: output i-1 predicts token i (strategies.md §5)."""
        return self.layout == "dream"

    def replace(self, **changes) -> "DLLMConfig":
        return dataclasses.replace(self, **changes)

    # ---- HF config.json round trip -------------------------------------------------------------------
    def to_hf_dict(self) -> dict[str, Any]:
        if self.layout == "llada":
            d = {
                "architectures": ["LLaDAModelLM"],
                "model_type": "llada",
                "d_model": self.hidden_size,
                "n_layers": self.num_layers,
                "n_heads": self.num_heads,
                "n_kv_heads": self.num_kv_heads,
                "mlp_hidden_size": self.intermediate_size,
                "mlp_ratio": self.intermediate_size / self.hidden_size,
                "activation_type": "silu",
                "block_type": "llama",
                "vocab_size": self.vocab_size,
                "embedding_size": self.vocab_size,
                "max_sequence_length": self.max_position_embeddings,
                "rope": True,
                "rope_theta": self.rope_theta,
                "rope_full_precision": True,
                "layer_norm_type": "rms",
                "rms_norm_eps": self.rms_norm_eps,
                "include_bias": False,
                "include_qkv_bias": self.qkv_bias,
                "weight_tying": self.tie_word_embeddings,
                "mask_token_id": self.mask_token_id,
                "eos_token_id": self.eos_token_id,
                "pad_token_id": self.pad_token_id,
                "torch_dtype": self.torch_dtype,
            }
        else:
            d = {
                "architectures": ["DreamModel"],
                "model_type": "Dream",
                "hidden_size": self.hidden_size,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads,
                "num_key_value_heads": self.num_kv_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_act": "silu",
                "vocab_size": self.vocab_size,
                "max_position_embeddings": self.max_position_embeddings,
                "rope_theta": self.rope_theta,
                "rms_norm_eps": self.rms_norm_eps,
                "tie_word_embeddings": self.tie_word_embeddings,
                "mask_token_id": self.mask_token_id,
                "eos_token_id": self.eos_token_id,
                "pad_token_id": self.pad_token_id if self.pad_token_id is not None else self.eos_token_id,
                "bos_token_id": self.bos_token_id,
                "torch_dtype": self.torch_dtype,
            }
        if self.bos_token_id is not None:
            d["bos_token_id"] = self.bos_token_id
        if self.eot_token_id is not None:
            d["eot_token_id"] = self.eot_token_id
        d.update(self.extra)
        return d

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "DLLMConfig":
        model_type = str(d.get("model_type", "")).lower()
        archs = [a.lower() for a in d.get("architectures") or []]
        if model_type == "llada" or any("llada" in a for a in archs) or "d_model" in d:
            if not d.get("rope", True):
                raise ValueError("config.json: LLaDA layout without RoPE ('rope': false) is not supported.")
            hidden = _req(d, "d_model")
            n_heads = _req(d, "n_heads")
            inter = d.get("mlp_hidden_size") or int(d.get("mlp_ratio", 4) * hidden)
            return cls(
                layout="llada",
                vocab_size=int(d.get("embedding_size") or _req(d, "vocab_size")),
                hidden_size=hidden,
                num_layers=_req(d, "n_layers"),
                num_heads=n_heads,
                num_kv_heads=d.get("n_kv_heads") or n_heads,
                intermediate_size=inter,
                max_position_embeddings=d.get("max_sequence_length", 4096),
                rope_theta=float(d.get("rope_theta", 10000.0)),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-5)),
                qkv_bias=bool(d.get("include_qkv_bias", False) or d.get("include_bias", False)),
                tie_word_embeddings=bool(d.get("weight_tying", False)),
                mask_token_id=int(d.get("mask_token_id", 126336)),
                eos_token_id=int(d.get("eos_token_id", 126081)),
                pad_token_id=d.get("pad_token_id"),
                bos_token_id=d.get("bos_token_id"),
                eot_token_id=d.get("eot_token_id"),
                torch_dtype=str(d.get("torch_dtype", "float32")),
            )
        if model_type == "dream" or any("dream" in a for a in archs) or "num_hidden_layers" in d:
            n_heads = _req(d, "num_attention_heads")
            return cls(
                layout="dream",
                vocab_size=_req(d, "vocab_size"),
                hidden_size=_req(d, "hidden_size"),
                num_layers=_req(d, "num_hidden_layers"),
                num_heads=n_heads,
                num_kv_heads=d.get("num_key_value_heads") or n_heads,
                intermediate_size=_req(d, "intermediate_size"),
                max_position_embeddings=d.get("max_position_embeddings", 32768),
                rope_theta=float(d.get("rope_theta", 10000.0)),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                qkv_bias=True,
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                mask_token_id=int(d.get("mask_token_id", 151666)),
                eos_token_id=int(d.get("eos_token_id", 151643)),
                pad_token_id=d.get("pad_token_id"),
                bos_token_id=d.get("bos_token_id"),
                eot_token_id=d.get("eot_token_id"),
                torch_dtype=str(d.get("torch_dtype", "float32")),
            )
        raise ValueError(
            f"config.json: cannot tell the layout (model_type={d.get('model_type')!r}, "
            f"architectures={d.get('architectures')!r}); expected a LLaDA or Dream config."
        )

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "DLLMConfig":
        p = Path(path) / "config.json"
        if not p.is_file():
            raise FileNotFoundError(f"no config.json in model folder {str(path)!r}.")
        return cls.from_hf_dict(json.loads(p.read_text()))

    def save_pretrained(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text(json.dumps(self.to_hf_dict(), indent=2) + "\n")


def _req(d: dict, key: str):
    if key not in d or d[key] is None:
        raise ValueError(f"config.json is missing required field {key!r}.")
    return d[key]
