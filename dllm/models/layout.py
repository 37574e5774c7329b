"""Parameter-name tables of the real checkpoint layouts (checkpoints.md §1.3, §2.3).

Both backends build their modules with *logical* names (``embed``, ``layers.{i}.q_proj`` …) and use
:func:`checkpoint_names` to translate to and from the names inside the safetensors files, so one table serves
loading, saving, LoRA target mapping and the JAX backend.

Weights are stored as in PyTorch ``nn.Linear``: ``[out_features, in_features]``.
"""
from __future__ import annotations

from .config import DLLMConfig

_LLADA_LAYER = {
    "attn_norm": "attn_norm.weight",
    "q_proj": "q_proj.weight",
    "k_proj": "k_proj.weight",
    "v_proj": "v_proj.weight",
    "q_bias": "q_proj.bias",
    "k_bias": "k_proj.bias",
    "v_bias": "v_proj.bias",
    "o_proj": "attn_out.weight",
    "mlp_norm": "ff_norm.weight",
    "gate_proj": "ff_proj.weight",
    "up_proj": "up_proj.weight",
    "down_proj": "ff_out.weight",
}
_DREAM_LAYER = {
    "attn_norm": "input_layernorm.weight",
    "q_proj": "self_attn.q_proj.weight",
    "k_proj": "self_attn.k_proj.weight",
    "v_proj": "self_attn.v_proj.weight",
    "q_bias": "self_attn.q_proj.bias",
    "k_bias": "self_attn.k_proj.bias",
    "v_bias": "self_attn.v_proj.bias",
    "o_proj": "self_attn.o_proj.weight",
    "mlp_norm": "post_attention_layernorm.weight",
    "gate_proj": "mlp.gate_proj.weight",
    "up_proj": "mlp.up_proj.weight",
    "down_proj": "mlp.down_proj.weight",
}


def logical_shapes(cfg: DLLMConfig) -> dict[str, tuple[int, ...]]:
    """Logical parameter name -> shape, for every tensor the checkpoint must hold."""
    h, kv = cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim
    shapes: dict[str, tuple[int, ...]] = {"embed": (cfg.vocab_size, h), "final_norm": (h,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head"] = (cfg.vocab_size, h)
    for i in range(cfg.num_layers):
        p = f"layers.{i}."
        shapes.update({
            p + "attn_norm": (h,),
            p + "q_proj": (h, h),
            p + "k_proj": (kv, h),
            p + "v_proj": (kv, h),
            p + "o_proj": (h, h),
            p + "mlp_norm": (h,),
            p + "gate_proj": (cfg.intermediate_size, h),
            p + "up_proj": (cfg.intermediate_size, h),
            p + "down_proj": (h, cfg.intermediate_size),
        })
        if cfg.qkv_bias:
            shapes.update({p + "q_bias": (h,), p + "k_bias": (kv,), p + "v_bias": (kv,)})
    return shapes


def checkpoint_names(cfg: DLLMConfig) -> dict[str, str]:
    """Logical name -> name inside the safetensors files of the real checkpoint family."""
    if cfg.layout == "llada":
        top = {
            "embed": "model.transformer.wte.weight",
            "final_norm": "model.transformer.ln_f.weight",
            "lm_head": "model.transformer.ff_out.weight",
        }
        layer_prefix, table = "model.transformer.blocks.{i}.", _LLADA_LAYER
    else:
        top = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "lm_head": "lm_head.weight"}
        layer_prefix, table = "model.layers.{i}.", _DREAM_LAYER
    out = {}
    for name in logical_shapes(cfg):
        if name.startswith("layers."):
            _, i, leaf = name.split(".", 2)
            out[name] = layer_prefix.format(i=i) + table[leaf]
        else:
            out[name] = top[name]
    return out

