"""``python -m distill.monitor``: per-task masked-slot CE and content accuracy of a checkpoint."""
import pytest
import torch

from distill import monitor
from distill.reference import build_reference_tokenizer
from distill.train import TrainConfig, build_model

TASKS = ["waiting_line/copy", "puzzle/sudoku_n4_12"]


@pytest.fixture(scope="module")
def tiny():
    tok = build_reference_tokenizer()
    cfg = TrainConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return build_model(cfg, tok).eval(), tok


class _Oracle(torch.nn.Module):
    """Knows the answer: logits peak at whichever token the monitor is scoring (read from a side channel)."""

    def __init__(self, config, vocab):
        super().__init__()
        self.config, self.vocab, self.truth = config, vocab, None

    def raw_logits(self, ids, attention_mask, position_ids):
        return torch.nn.functional.one_hot(self.truth, self.vocab).float() * 50


def test_rows_cover_each_task_with_finite_scores(tiny):
    model, tok = tiny
    rows = monitor.score_tasks(model, tok, TASKS, per_task=3, t=0.5)
    assert [r["task"] for r in rows] == TASKS
    for r in rows:
        assert r["n"] == 3 and r["t"] == 0.5 and 0 < r["masked_ce"] < 20 and 0 <= r["content_acc"] <= 1


def test_a_model_that_knows_the_answer_scores_perfectly_and_one_that_echoes_masks_scores_zero(tiny, leak_collate):
    model, tok = tiny
    oracle = _Oracle(model.config, len(tok))
    leak_collate(monitor, oracle)
    for r in monitor.score_tasks(oracle, tok, TASKS, per_task=2, t=1.0):
        assert r["content_acc"] == 1.0 and r["masked_ce"] < 1e-6
        assert r["item_acc"] == (1.0 if r["task"].startswith("waiting_line") else None)  # 4x4 grids: all shared

    # Right framing, wrong names: every alphabetic (name) token is replaced by another one.
    is_name = torch.tensor([tok.convert_ids_to_tokens(i).lstrip("Ġ").isalpha() and i >= 8 for i in range(len(tok))])

    class Corrupting(_Oracle):
        """Knows the answer except on the tokens flagged in ``self.wrong_on [V]``, where it names the next id."""

        def raw_logits(self, ids, attention_mask, position_ids):
            wrong = torch.where(self.wrong_on[self.truth], (self.truth + 1) % self.vocab, self.truth)
            return torch.nn.functional.one_hot(wrong, self.vocab).float() * 50

    oracle.__class__, oracle.wrong_on = Corrupting, is_name
    row = monitor.score_tasks(oracle, tok, ["waiting_line/copy"], per_task=2, t=1.0)[0]
    assert row["item_acc"] == 0.0 and 0.3 < row["content_acc"] < 0.7

    # First names right, last names (the tokens after a first name) wrong.
    is_last = torch.tensor([tok.convert_ids_to_tokens(i).startswith("Ġ") and tok.convert_ids_to_tokens(i)[1:].isalpha()
                            for i in range(len(tok))])

    oracle.wrong_on = is_last
    row = monitor.score_tasks(oracle, tok, ["waiting_line/copy"], per_task=2, t=1.0)[0]
    assert row["item_first_acc"] == 1.0 and row["item_later_acc"] == 0.0 and 0.4 < row["item_acc"] < 0.6
    # --later-only masks the last names alone: no first-name slot is scored, and the bind rows' given first
    # names are never masked either
    for row in (monitor.score_tasks(oracle, tok, ["waiting_line/copy"], per_task=2, t=1.0, later_only=True)[0],
                monitor.score_aux_tasks(oracle, tok, ["bind"], per_task=2, t=1.0, later_only=True)[0]):
        assert row["later_only"] and row["item_first_acc"] is None and row["item_later_acc"] == 0.0
        assert row["item_acc"] == 0.0 and row["content_acc"] == 0.0
    bind = monitor.score_aux_tasks(oracle, tok, ["bind"], per_task=2, t=1.0)[0]
    assert bind["item_first_acc"] is None and bind["item_later_acc"] == 0.0  # its first names are given

    class Echo(_Oracle):
        def raw_logits(self, ids, attention_mask, position_ids):
            return torch.nn.functional.one_hot(ids, self.vocab).float() * 50

    for r in monitor.score_tasks(Echo(model.config, len(tok)), tok, TASKS, per_task=2, t=1.0):
        assert r["content_acc"] == 0.0 and r["masked_ce"] > 10 and r["item_acc"] in (0.0, None)


def test_bad_settings_are_named(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="t .*masking rate"):
        monitor.score_tasks(model, tok, TASKS, per_task=2, t=0.0)
    with pytest.raises(ValueError, match="per_task"):
        monitor.score_tasks(model, tok, TASKS, per_task=0, t=0.5)


def test_cli_scores_the_shipped_model_as_json_lines(capsys):
    import json

    from dllm.api import default_model_path

    assert monitor.main(["--model", str(default_model_path()), "--per-task", "1", "--t", "0.5", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 12 and {r["t"] for r in rows} == {0.5} and all(r["n"] == 1 for r in rows)


def test_zero_shot_prompts_drop_the_example_turn_and_keep_the_masks(tiny, monkeypatch):
    model, tok = tiny
    seen = []

    class Spy(_Oracle):
        def raw_logits(self, ids, attention_mask, position_ids):
            seen.append(ids.clone())
            return model.raw_logits(ids, attention_mask, position_ids)

    spy = Spy(model.config, len(tok))
    one = monitor.score_tasks(spy, tok, ["waiting_line/copy"], per_task=3, t=0.5)[0]
    zero = monitor.score_tasks(spy, tok, ["waiting_line/copy"], per_task=3, t=0.5, zero_shot=True)[0]
    assert zero["zero_shot"] is True and "zero_shot" not in one
    assert seen[1].shape[1] < seen[0].shape[1]                       # the one-shot turn is gone
    mask_id = model.config.mask_token_id
    assert torch.equal(seen[0][:, -32:] == mask_id, seen[1][:, -32:] == mask_id)  # same answer slots masked
    assert (seen[1] == mask_id).any()


def test_aux_rows_score_fresh_items_and_an_oracle_perfectly(tiny, leak_collate):
    model, tok = tiny
    rows = monitor.score_aux_tasks(model, tok, ["copy_bare", "lookup_bare"], per_task=3, t=0.5)
    assert [r["task"] for r in rows] == ["aux/copy_bare", "aux/lookup_bare"]
    assert all(r["n"] == 3 and 0 < r["masked_ce"] < 20 for r in rows)

    oracle = _Oracle(model.config, len(tok))
    leak_collate(monitor, oracle)
    (row,) = monitor.score_aux_tasks(oracle, tok, ["copy_bare"], per_task=2, t=1.0)
    assert row["item_later_acc"] == 1.0 and row["content_acc"] == 1.0
    # Rows with one input list are also scored against it copied: the new name of insert_bare is "novel".
    bare, lookup = monitor.score_aux_tasks(oracle, tok, ["insert_bare", "lookup_bare"], per_task=4, t=1.0)
    assert bare["edit_acc"] == bare["novel_acc"] == 1.0 and lookup["novel_acc"] is None


def test_unknown_aux_task_is_named(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="nope"):
        monitor.score_aux_tasks(model, tok, ["nope"], per_task=1, t=0.5)


def test_cli_takes_comma_separated_tasks_and_aux_rows(capsys):
    import json

    from dllm.api import default_model_path

    argv = ["--model", str(default_model_path()), "--per-task", "1", "--t", "0.5", "--json",
            "--tasks", "waiting_line/copy, puzzle/sudoku_n4_12", "--aux", "copy_bare"]
    assert monitor.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["task"] for r in rows] == ["waiting_line/copy", "puzzle/sudoku_n4_12", "aux/copy_bare"]


def test_copy_by_frame_rows_split_items_by_lines_around_the_list(tiny):
    model, tok = tiny
    rows = monitor.score_copy_by_frame(model, tok, n_items=40, t=0.5)
    keys = [(r["lines_before"], r["lines_after"]) for r in rows]
    assert keys == sorted(set(keys)) and len(keys) > 4
    assert sum(r["n"] for r in rows) == 40
    assert all(r["task"] == f"aux/copy_framed[before={b},after={a}]" for r, (b, a) in zip(rows, keys))


def test_edit_slots_separate_doing_the_task_from_copying_the_input(tiny, leak_collate):
    from bench.tasks.registry import get_task
    from bench.tasks.splits import load_task
    from distill.data import encode_example

    model, tok = tiny
    name = "waiting_line/replace_index"
    oracle = _Oracle(model.config, len(tok))
    leak_collate(monitor, oracle)
    truth = monitor.score_tasks(oracle, tok, [name, "waiting_line/copy", "puzzle/sudoku_n4_12"], per_task=3, t=1.0)
    assert [r["edit_acc"] for r in truth] == [1.0, None, None]  # copy: nothing differs; puzzles: no input list
    assert [r["novel_acc"] for r in truth] == [1.0, None, None]

    gen_len = get_task(name).max_tokens
    copies = torch.tensor([encode_example(tok, name, it.messages, it.input["context"], gen_len).answer_ids
                           for it in load_task(name, split="validation", limit=3)])

    class Copier(_Oracle):
        """Answers with the input list unchanged, whatever the instruction says."""

        def raw_logits(self, ids, attention_mask, position_ids):
            guess = self.truth.clone()
            guess[:, -gen_len:] = copies
            return torch.nn.functional.one_hot(guess, self.vocab).float() * 50

    oracle.__class__ = Copier
    row = monitor.score_tasks(oracle, tok, [name], per_task=3, t=1.0)[0]
    assert row["edit_acc"] == row["novel_acc"] == 0.0 and row["item_acc"] > 0.4  # most names are copies


def test_list_punctuation_never_counts_as_a_name_in_short_rows(tiny, leak_collate):
    """A model right on every separator and end-of-text but wrong on every name scores 0 on the name slots of the
    1–2-name rows, where a 2-name row's separators are not shared by the whole batch."""
    from distill.data import list_punctuation_ids

    model, tok = tiny
    punctuation = torch.tensor(sorted(list_punctuation_ids(tok) | {tok.eos_token_id}))

    class PunctuationOnly(_Oracle):
        def raw_logits(self, ids, attention_mask, position_ids):
            right = torch.isin(self.truth, punctuation)
            guess = torch.where(right, self.truth, (self.truth + 1) % self.vocab)
            return torch.nn.functional.one_hot(guess, self.vocab).float() * 50

    oracle = PunctuationOnly(model.config, len(tok))
    leak_collate(monitor, oracle)
    copy_short, insert_short = monitor.score_aux_tasks(oracle, tok, ["copy_short", "insert_short"], per_task=16,
                                                       t=1.0)
    for row in (copy_short, insert_short):
        assert row["content_acc"] > 0.3 and row["item_acc"] == row["item_later_acc"] == 0.0
    assert insert_short["novel_acc"] == 0.0
