"""Word-level tokenizer for the reference model, built with HF ``tokenizers`` and saved as ``tokenizer.json``.

Pre-tokenisation: every digit is its own token, then GPT-2 byte-level splitting (a leading space is part of the
word, ``Ġ``; a newline is ``Ċ``), so decoding is lossless. Each pre-token is one vocabulary entry (WordLevel):
a full name is two tokens, ``["`` / ``",`` / ``Ġ"`` / ``"]`` frame the list items. Special tokens follow LLaDA's
names; the chat template is LLaDA's Llama-3-style one.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

SPECIAL_TOKENS = {
    "pad_token": "<|pad|>",
    "unk_token": "<|unk|>",
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "eot_token": "<|eot_id|>",
    "start_header": "<|start_header_id|>",
    "end_header": "<|end_header_id|>",
    "mask_token": "<|mdm_mask|>",
}

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def _pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def build_word_tokenizer(texts: Iterable[str], min_frequency: int = 1):
    """Build a ``transformers.PreTrainedTokenizerFast`` whose vocabulary is every pre-token seen in ``texts``.

    Special tokens take ids 0..7 in the order of :data:`SPECIAL_TOKENS`; words follow by decreasing frequency
    (ties alphabetically), so the build is deterministic.
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tok for tok, _ in pre.pre_tokenize_str(text))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_frequency and word not in vocab:
            vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS.values()))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL_TOKENS["bos_token"],
        eos_token=SPECIAL_TOKENS["eos_token"],
        unk_token=SPECIAL_TOKENS["unk_token"],
        pad_token=SPECIAL_TOKENS["pad_token"],
        mask_token=SPECIAL_TOKENS["mask_token"],
        additional_special_tokens=[SPECIAL_TOKENS[k] for k in ("eot_token", "start_header", "end_header")],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tokenizer(tokenizer, path: str | Path) -> None:
    tokenizer.save_pretrained(str(path))


def special_ids(tokenizer) -> dict[str, int]:
    """Ids of the special tokens by role (mask, eos, eot, pad, bos, unk)."""
    return {k.removesuffix("_token"): tokenizer.convert_tokens_to_ids(v) for k, v in SPECIAL_TOKENS.items()}
