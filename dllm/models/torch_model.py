"""Bidirectional transformer for masked diffusion LMs, PyTorch backend.

One implementation covers both real layouts (see :mod:`dllm.models.config`):

* pre-norm blocks ``h = x + o(Attn(norm(x)))``, ``out = h + down(silu(gate(norm(h))) * up(norm(h)))``;
* RMSNorm; rotate-half RoPE computed in float32 (LLaDA ``rope_full_precision``);
* full (non-causal) attention with a key-padding mask; GQA when ``num_kv_heads < num_heads``;
* optional q/k/v bias (Dream), untied or tied head.

``forward(input_ids [B, L], attention_mask [B, L] bool | None, position_ids [B, L] | None) -> [B, L, V]``
returns *aligned* float32 logits: for the Dream layout the one-position right shift is applied here, once
(strategies.md §5), so the engine and strategies never see it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DLLMConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 as both references do, then cast back.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[B, L, head_dim]`` (float32) for rotate-half RoPE at the given positions."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim))
    freqs = position_ids.float()[..., None] * inv_freq  # [B, L, head_dim/2]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, L, D]; cos/sin: [B, L, D]. Rotation in float32, result in x.dtype."""
    xf = x.float()
    half = xf.shape[-1] // 2
    rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
    out = xf * cos[:, None] + rotated * sin[:, None]
    return out.to(x.dtype)


class Block(nn.Module):
    def __init__(self, cfg: DLLMConfig):
        super().__init__()
        h, kv = cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim
        self.cfg = cfg
        self.attn_norm = RMSNorm(h, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(h, h, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(h, kv, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(h, kv, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(h, h, bias=False)
        self.mlp_norm = RMSNorm(h, cfg.rms_norm_eps)
        self.gate_proj = nn.Linear(h, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(h, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, h, bias=False)

    def forward(self, x, cos, sin, attn_bias):
        cfg = self.cfg
        B, L, _ = x.shape
        hx = self.attn_norm(x)
        q = self.q_proj(hx).view(B, L, cfg.num_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(hx).view(B, L, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(hx).view(B, L, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cfg.num_kv_heads != cfg.num_heads:
            rep = cfg.num_heads // cfg.num_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, is_causal=False)
        x = x + self.o_proj(a.transpose(1, 2).reshape(B, L, cfg.hidden_size))
        hm = self.mlp_norm(x)
        return x + self.down_proj(F.silu(self.gate_proj(hm)) * self.up_proj(hm))


class DiffusionTransformer(nn.Module):
    """The model. Module names are the *logical* names of :mod:`dllm.models.layout`."""

    def __init__(self, cfg: DLLMConfig):
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.num_layers)])
        self.final_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @property
    def shift_logits(self) -> bool:
        return self.config.shift_logits

    def hidden_states(self, input_ids, attention_mask=None, position_ids=None) -> torch.Tensor:
        B, L = input_ids.shape
        if input_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"input_ids must be an integer tensor, got dtype {input_ids.dtype}.")
        if position_ids is None:
            position_ids = torch.arange(L, device=input_ids.device).expand(B, L)
        cos, sin = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        attn_bias = None
        if attention_mask is not None:
            if attention_mask.shape != (B, L):
                raise ValueError(f"attention_mask must have shape {(B, L)}, got {tuple(attention_mask.shape)}.")
            keep = attention_mask.bool()
            # Key-padding mask; a fully padded row still attends somewhere to avoid NaN (its outputs are unused).
            keep = keep | ~keep.any(-1, keepdim=True)
            attn_bias = keep[:, None, None, :]
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, attn_bias)
        return self.final_norm(x)

    def raw_logits(self, input_ids, attention_mask=None, position_ids=None) -> torch.Tensor:
        """Unshifted logits ``[B, L, V]`` in the parameter dtype (what training uses)."""
        h = self.hidden_states(input_ids, attention_mask, position_ids)
        w = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(h, w)

    def forward(self, input_ids, attention_mask=None, position_ids=None) -> torch.Tensor:
        logits = self.raw_logits(input_ids, attention_mask, position_ids).float()
        if self.config.shift_logits:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    # ---- logical-name state dict (used by the checkpoint loader) -----------------------------------------
    def logical_state_dict(self) -> dict[str, torch.Tensor]:
        out = {"embed": self.embed.weight, "final_norm": self.final_norm.weight}
        if self.lm_head is not None:
            out["lm_head"] = self.lm_head.weight
        for i, layer in enumerate(self.layers):
            p = f"layers.{i}."
            for leaf in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
                out[p + leaf] = getattr(layer, leaf).weight
            out[p + "attn_norm"] = layer.attn_norm.weight
            out[p + "mlp_norm"] = layer.mlp_norm.weight
            if self.config.qkv_bias:
                for leaf in ("q", "k", "v"):
                    out[p + f"{leaf}_bias"] = getattr(layer, f"{leaf}_proj").bias
        return out
