"""distill.lookup: the train-only last-name lookup task and its share of the training mixture."""
import json
import random

import pytest

from distill import lookup, reference


def test_items_ask_listed_people_by_first_name_and_answer_their_full_names():
    for seed in range(30):
        prompt, answer = lookup.lookup_item(random.Random(seed))
        lines = prompt.splitlines()
        people, asked_first, full = json.loads(lines[2]), json.loads(lines[4]), json.loads(answer)
        assert 3 <= len(people) <= 8 and 1 <= len(full) <= 3
        assert len({p.split()[0] for p in people}) == len(people) == len({p.split()[1] for p in people})
        assert [f.split()[0] for f in full] == asked_first and set(full) <= set(people)


def test_examples_tokenize_without_unknowns_and_one_token_per_name(ref_tok):
    ex = lookup.lookup_example(ref_tok, random.Random(3))
    assert ex.task == lookup.TASK and len(ex.answer_ids) == lookup.GEN_LENGTH
    answer = json.loads(ref_tok.decode([i for i in ex.answer_ids if i != ref_tok.eos_token_id]))
    assert len([i for i in ex.answer_ids if i != ref_tok.eos_token_id]) == 1 + 4 * len(answer) - 1  # ["A B", "C D"]
    assert ref_tok.unk_token_id not in ex.prompt_ids


def test_a_tokenizer_without_the_words_is_named():
    class NoWords:
        unk_token_id = 0

        def encode(self, text, add_special_tokens=False):
            return [0, 5]

    with pytest.raises(ValueError, match=lookup.TASK):
        lookup.lookup_example(NoWords(), random.Random(0))


def test_lookup_fraction_replaces_some_rows_and_keeps_the_others(ref_tok):
    from distill.train import TrainConfig

    plain, mixed = reference.example_maker(ref_tok, 0), reference.example_maker(ref_tok, 0, lookup_fraction=0.5)
    pairs = [(plain(random.Random(i)), mixed(random.Random(i))) for i in range(24)]
    replaced = [m for p, m in pairs if m.task == lookup.TASK]
    assert 0 < len(replaced) < len(pairs)
    assert all(p == m for p, m in pairs if m.task != lookup.TASK)
    with pytest.raises(ValueError, match="lookup_fraction"):
        TrainConfig(lookup_fraction=-0.1)
