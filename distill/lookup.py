"""A train-only auxiliary task that can be solved only by an induction step: look up last names by first name.

The reference model copies first names but not last names (docs/reference_model.md, sessions 5–6): its last-layer
heads find the right *item* of the prompt list by position and read that item's first name, and no head carries
the last name. A positional copy never needs the step "the token after this first name in the prompt". Here it is
the only way: the prompt lists full names, then asks for some of them by first name in a random order::

    The following people are in the waiting line:
    ["Grace Griffin", "Jeremy Wells", "Lisa Hunt"]
    Please provide the list of the following people in the waiting line:
    ["Jeremy", "Grace"]
    Please provide only the final list.
    -> ["Jeremy Wells", "Grace Griffin"]

Names come from ParallelBench's population with the waiting-line rule (first and last names pairwise distinct),
and the text is made of words the reference tokenizer has, so every name is one token as in the real tasks. It is
never evaluated; ``dllm train --lookup-fraction`` mixes it in as a curriculum aid.
"""
from __future__ import annotations

import json
import random

from .data import Example, encode_text_example

TASK = "aux/lookup_last_name"
_INTRO = "You are managing a waiting line at a customer service desk.\nThe following people are in the waiting line:\n"
_ASK = "Please provide the list of the following people in the waiting line:\n"
_OUTRO = "Please provide only the final list.\n"
GEN_LENGTH = 16  # answer canvas: up to 3 names (12 tokens) + EOS; shorter than the list tasks' 32 so the few
# last-name slots are not drowned in the per-row mean over end-of-text padding


def lookup_item(rng: random.Random, min_people: int = 3, max_people: int = 8, max_queries: int = 3,
                bare: bool = False) -> tuple[str, str]:
    """``(prompt_text, answer_text)`` of one item: ``n`` people, ``1..min(n, max_queries)`` of them asked for.

    ``bare``: the prompt is only the two lists, one per line (no instruction text), for short curriculum rows.
    """
    from bench.tasks.generators import sample_names, name_population

    people = sample_names(rng, name_population(), rng.randint(min_people, max_people))
    asked = rng.sample(people, rng.randint(1, min(len(people), max_queries)))
    firsts = json.dumps([p.split(" ", 1)[0] for p in asked])
    if bare:
        return json.dumps(people) + "\n" + firsts + "\n", json.dumps(asked)
    return _INTRO + json.dumps(people) + "\n" + _ASK + firsts + "\n" + _OUTRO, json.dumps(asked)


def lookup_example(tokenizer, rng: random.Random, gen_length: int = GEN_LENGTH) -> Example:
    """One encoded :func:`lookup_item` (chat template, one user turn; answer padded with EOS to ``gen_length``).

    Raises:
        ValueError: the tokenizer maps part of the text to its unknown token (its vocabulary lacks a word).
    """
    prompt, answer = lookup_item(rng)
    return encode_text_example(tokenizer, TASK, prompt, answer, gen_length)
