"""Tiny random checkpoints for tests, examples and smoke runs.

:func:`make_tiny_checkpoint` writes a folder in exactly the format of the real checkpoints (``config.json`` in the
family's own format, safetensors under the real parameter names, single-file or sharded with an index) plus, if
asked, a real ``tokenizers`` WordLevel tokenizer with the family's special tokens and a chat template, so
everything that reads a real LLaDA / Dream folder can be exercised in milliseconds on a CPU.

>>> import tempfile, dllm
>>> from dllm.testing import make_tiny_checkpoint
>>> d = make_tiny_checkpoint(tempfile.mkdtemp(), layout="llada")
>>> out = dllm.generate(d, input_ids=[[5, 6, 7]], gen_length=8, steps=8)
>>> len(out.sequences[0])
8
"""
from __future__ import annotations

import json
from pathlib import Path

# Special tokens first (ids 0..), then plain words. Names follow LLaDA; Dream-style folders get Dream's names.
_LLADA_SPECIALS = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|unk|>"]
_DREAM_SPECIALS = ["<|pad|>", "<|beginoftext|>", "<|endoftext|>", "<|im_end|>", "<|mask|>",
                   "<|im_start|>", "<|unused|>", "<|unk|>"]
WORDS = ("the a an one two three four five six seven eight nine ten cat dog bird fish red green blue big small "
         "is are was and or not yes no what how why who user assistant system answer question : . , ? ! + = "
         "hello world sum of plus").split()

_LLADA_TEMPLATE = (
    "{{ '<|startoftext|>' }}{% for m in messages %}"
    "{{ '<|start_header_id|> ' + m['role'] + ' <|end_header_id|> ' + m['content'] + ' <|eot_id|> ' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|> assistant <|end_header_id|> ' }}{% endif %}"
)
_DREAM_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|> ' + m['role'] + ' ' + m['content'] + ' <|im_end|> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|> assistant ' }}{% endif %}"
)


def tiny_vocab(layout: str = "llada") -> dict[str, int]:
    """Token -> id of the tiny tokenizer (8 special tokens, then ``WORDS``)."""
    specials = _LLADA_SPECIALS if layout == "llada" else _DREAM_SPECIALS
    return {tok: i for i, tok in enumerate(specials + WORDS)}


def tiny_config(layout: str = "llada", vocab_size: int = 64, **overrides):
    """A :class:`~dllm.models.DLLMConfig` of a few thousand parameters with the tiny tokenizer's special ids.

    LLaDA: MHA, no bias. Dream: GQA (4 query heads on 2 kv heads) with q/k/v bias.
    """
    from .models import DLLMConfig

    vocab = tiny_vocab(layout)
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size must be >= {len(vocab)} (the tiny tokenizer's size), got {vocab_size}.")
    special = _LLADA_SPECIALS if layout == "llada" else _DREAM_SPECIALS
    kw = dict(
        layout=layout, vocab_size=vocab_size, hidden_size=32, num_layers=2, num_heads=4,
        num_kv_heads=4 if layout == "llada" else 2, intermediate_size=48, max_position_embeddings=512,
        rope_theta=10000.0, rms_norm_eps=1e-5 if layout == "llada" else 1e-6, qkv_bias=layout == "dream",
        mask_token_id=vocab[special[4]], eos_token_id=vocab[special[2]], pad_token_id=vocab[special[0]],
        bos_token_id=vocab[special[1]], eot_token_id=vocab[special[3]],
    )
    kw.update(overrides)
    return DLLMConfig(**kw)


def random_model(cfg, seed: int = 0, scale: float = 1.0):
    """A :class:`~dllm.models.torch_model.DiffusionTransformer` with every tensor random (norm gains and biases
    included, so a test notices any tensor that is ignored)."""
    import torch

    from .models.torch_model import DiffusionTransformer

    g = torch.Generator().manual_seed(seed)
    model = DiffusionTransformer(cfg)
    with torch.no_grad():
        for name, p in model.logical_state_dict().items():
            if name.endswith("norm"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name == "embed":
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # weights [out, in] and biases: ~ N(0, 1/fan_in) keeps activations O(1)
                fan_in = p.shape[-1] if p.ndim == 2 else 1
                p.copy_(scale * torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    return model.eval()


def save_tiny_tokenizer(path: str | Path, layout: str = "llada") -> None:
    """Write ``tokenizer.json`` (WordLevel, whitespace split), ``tokenizer_config.json`` (with a chat template)
    and ``special_tokens_map.json`` into ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab(layout)
    specials = _LLADA_SPECIALS if layout == "llada" else _DREAM_SPECIALS
    unk = specials[7]
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.add_special_tokens(specials)
    tok.save(str(path / "tokenizer.json"))
    names = {"pad_token": specials[0], "bos_token": specials[1], "eos_token": specials[2], "unk_token": unk,
             "mask_token": specials[4]}
    tcfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 512,
        "add_bos_token": False,
        "chat_template": _LLADA_TEMPLATE if layout == "llada" else _DREAM_TEMPLATE,
        "additional_special_tokens": [specials[3], specials[5], specials[6]],
        **names,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2))
    (path / "special_tokens_map.json").write_text(json.dumps(names, indent=2))


def make_tiny_checkpoint(path: str | Path, layout: str = "llada", *, sharded: bool = False, tokenizer: bool = True,
                         dtype: str | None = None, seed: int = 0, vocab_size: int = 64, **config_overrides) -> Path:
    """Write a tiny random checkpoint folder in the real ``layout`` format and return its path.

    Args:
        path: folder to create (may exist).
        layout: ``"llada"`` or ``"dream"``.
        sharded: write ``model-0000i-of-0000n.safetensors`` shards plus ``model.safetensors.index.json``.
        tokenizer: also write the tiny tokenizer files (otherwise the folder holds only weights and config).
        dtype: storage dtype (``"bfloat16"`` …); default float32.
        seed: weight seed.
    """
    from .models.torch_loader import save_torch_model

    path = Path(path)
    cfg = tiny_config(layout, vocab_size=vocab_size, **config_overrides)
    model = random_model(cfg, seed=seed)
    save_torch_model(model, path, max_shard_bytes=16_384 if sharded else None, dtype=dtype)
    if tokenizer:
        save_tiny_tokenizer(path, layout)
    return path


__all__ = ["WORDS", "tiny_vocab", "tiny_config", "random_model", "save_tiny_tokenizer", "make_tiny_checkpoint"]
