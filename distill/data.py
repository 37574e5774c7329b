"""Turning benchmark items into masked-diffusion training examples.

An example is ``(prompt_ids, answer_ids)``: the chat-templated prompt (one-shot turn + test turn + generation
header), and the answer tokens followed by end-of-text padding up to the task's ``gen_length`` — the same canvas
the engine decodes (LLaDA SFT pads answers with EOS the same way).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch


@dataclass(frozen=True)
class Example:
    task: str
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]  # exactly gen_length ids: answer then EOS padding
    # answer slots (0-based) shown to the model in training, never masked and never scored (a curriculum row's
    # given part, e.g. the first names of distill.aux_tasks' "bind" rows); () for every benchmark row
    unmasked: tuple[int, ...] = ()


def prompt_ids_for(tokenizer, messages: list[dict]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def encode_example(tokenizer, task: str, messages: list[dict], target_text: str, gen_length: int) -> Example:
    answer = tokenizer.encode(target_text, add_special_tokens=False)
    if len(answer) > gen_length:
        raise ValueError(f"task {task!r}: answer of {len(answer)} tokens does not fit gen_length={gen_length}.")
    answer = answer + [tokenizer.eos_token_id] * (gen_length - len(answer))
    return Example(task, tuple(prompt_ids_for(tokenizer, messages)), tuple(answer))


def encode_text_example(tokenizer, task: str, prompt: str, answer: str, gen_length: int) -> Example:
    """:func:`encode_example` of a one-turn chat ``prompt -> answer`` made of words the tokenizer must know.

    Raises:
        ValueError: the tokenizer maps part of the text to its unknown token; the message names ``task``.
    """
    unk = tokenizer.unk_token_id
    if unk is not None and unk in tokenizer.encode(prompt + answer, add_special_tokens=False):
        raise ValueError(f"{task}: the tokenizer has no token for part of {prompt + answer!r}")
    return encode_example(tokenizer, task, [{"role": "user", "content": prompt}], answer, gen_length)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad ``prompt ++ answer`` rows to one length.

    Returns ``input_ids [B, T]``, ``attention_mask [B, T]`` bool, ``position_ids [B, T]`` (cumsum - 1, as the
    engine builds them), ``answer_mask [B, T]`` bool (the answer canvas) and ``answer_unmasked [B, T]`` bool (its
    :attr:`Example.unmasked` slots: never masked, no loss; the masked slots are ``answer_mask & ~answer_unmasked``).
    """
    T = max(len(e.prompt_ids) + len(e.answer_ids) for e in examples)
    B = len(examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.bool)
    ans = torch.zeros((B, T), dtype=torch.bool)
    given = torch.zeros((B, T), dtype=torch.bool)
    for b, e in enumerate(examples):
        row = list(e.prompt_ids) + list(e.answer_ids)
        ids[b, T - len(row):] = torch.tensor(row)
        attn[b, T - len(row):] = True
        ans[b, T - len(e.answer_ids):] = True
        if e.unmasked:
            given[b, torch.tensor(e.unmasked) + T - len(e.answer_ids)] = True
    pos = (attn.long().cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": attn, "position_ids": pos, "answer_mask": ans,
            "answer_unmasked": given}


# The word-level tokenizer's list openers (``["`` and ``Ġ"``): a name's first token follows one, its last name next.
LIST_OPENERS = ('["', '\u0120"')
# All of its list punctuation (openers, then the item and list closers): never part of a name.
LIST_PUNCTUATION = LIST_OPENERS + ('",', '"]')


def list_opener_ids(tokenizer, required_by: str | None = None) -> set[int]:
    """The ids of :data:`LIST_OPENERS` the tokenizer has as single tokens.

    Raises:
        ValueError: ``required_by`` (a caller's name) is given and the tokenizer lacks one of them (it is not the
            word-level reference tokenizer).
    """
    ids = {tokenizer.convert_tokens_to_ids(t) for t in LIST_OPENERS} - {tokenizer.unk_token_id, None}
    if required_by and len(ids) < len(LIST_OPENERS):
        raise ValueError(f"{required_by} needs the word-level tokenizer (list openers '[\"' and ' \"' as tokens)")
    return ids


def list_punctuation_ids(tokenizer) -> set[int]:
    """The ids of :data:`LIST_PUNCTUATION` the tokenizer has as single tokens (empty for other tokenizers)."""
    return {tokenizer.convert_tokens_to_ids(t) for t in LIST_PUNCTUATION} - {tokenizer.unk_token_id, None}


def name_positions(ids: Sequence[int], openers: set[int]) -> list[tuple[int, int]]:
    """``(first, last)`` token positions of each ``"First Last"`` item: the two tokens after a list/item opener."""
    return [(i + 1, i + 2) for i in range(len(ids) - 2) if ids[i] in openers]


def batch_for_step(make_example, step: int, batch_size: int, seed: int) -> list[Example]:
    """The batch of a given optimizer step, a pure function of (seed, step): resuming reproduces the data order."""
    rng = random.Random(f"{seed}:{step}")
    return [make_example(rng) for _ in range(batch_size)]


def endless(make_example, seed: int) -> Iterator[Example]:
    rng = random.Random(seed)
    while True:
        yield make_example(rng)
