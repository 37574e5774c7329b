"""distill.aux_tasks: the short train-only curriculum rows and their share of the training mixture."""
import json
import random

import pytest

from bench.tasks.registry import get_task
from distill import aux_tasks, lookup, reference


def test_copy_bare_prompt_is_only_the_list_and_the_answer_repeats_it():
    for seed in range(20):
        prompt, answer = aux_tasks.copy_bare_item(random.Random(seed))
        people = json.loads(prompt)
        assert prompt == answer + "\n" and 3 <= len(people) <= 6
        assert len({p.split()[0] for p in people}) == len(people) == len({p.split()[1] for p in people})


def test_copy_framed_puts_varied_lines_around_the_same_list(ref_tok):
    lines_before, lines_after = set(), set()
    for seed in range(60):
        prompt, answer = aux_tasks.copy_framed_item(random.Random(seed))
        bare_prompt, bare_answer = aux_tasks.copy_bare_item(random.Random(seed))
        assert answer == bare_answer and prompt.count(answer) == 1 and prompt.endswith("\n")
        before, after = prompt.split(answer)
        lines_before.add(before.count("\n"))
        lines_after.add(after.count("\n") - 1)  # the list's own line break
        ex = aux_tasks.AUX_TASKS["copy_framed"](ref_tok, random.Random(seed))
        assert ref_tok.unk_token_id not in ex.prompt_ids
    assert lines_before == {0, 1, 2, 3} and lines_after == {0, 1, 2}


def test_bare_lookup_has_the_two_lists_and_nothing_else():
    for seed in range(20):
        full_prompt, full_answer = lookup.lookup_item(random.Random(seed))
        prompt, answer = lookup.lookup_item(random.Random(seed), bare=True)
        people, asked = (json.loads(line) for line in prompt.splitlines())
        assert answer == full_answer and json.dumps(people) in full_prompt
        assert [a.split()[0] for a in json.loads(answer)] == asked


@pytest.mark.parametrize("kind", ["insert", "replace"])
def test_bare_insert_and_replace_put_the_quoted_new_name_at_the_stated_place(ref_tok, kind):
    lines = set()
    for seed in range(40):
        prompt, answer = aux_tasks.edit_bare_item(kind, random.Random(seed))
        line, listed, end = prompt.split("\n")
        people, target, word = json.loads(listed), json.loads(answer), line.split('"')[1]
        assert end == "" and word not in people and target.count(word) == 1
        assert {word.split()[0], word.split()[1]}.isdisjoint(w for p in people for w in p.split())
        index = target.index(word)
        assert target[:index] + target[index + 1:] == (people if kind == "insert" else people[:index] + people[index + 1:])
        assert len(target) == len(people) + (kind == "insert")
        if "position" in line and "random" not in line:  # the stated-index line
            assert f"position {index}:" in line or f"position {index} must" in line
        lines.add(line.replace(word, "W").split(" position")[0])
        ex = aux_tasks.AUX_TASKS[f"{kind}_bare"](ref_tok, random.Random(seed))
        assert ref_tok.unk_token_id not in ex.prompt_ids + ex.answer_ids
        assert ex.answer_ids[-1] == ref_tok.eos_token_id  # the longest answer still fits the 32-slot canvas
    assert len(lines) == 2  # both the stated-position and the random-position instruction
    sizes = {len(json.loads(aux_tasks.edit_bare_item(kind, random.Random(s), 1, 2)[0].split("\n")[1]))
             for s in range(20)}
    assert sizes == {1, 2}
    ex = aux_tasks.AUX_TASKS[f"{kind}_short"](ref_tok, random.Random(0))
    assert ref_tok.unk_token_id not in ex.prompt_ids + ex.answer_ids


@pytest.mark.parametrize("name, words_per_name", [("sort_bare", 2), ("sort_first", 1)])
def test_sort_rows_are_the_benchmark_string_sort_from_two_names_up(ref_tok, name, words_per_name):
    item = {"sort_bare": aux_tasks.sort_bare_item, "sort_first": aux_tasks.sort_first_item}[name]
    lengths = set()
    for seed in range(40):
        prompt, answer = item(random.Random(seed))
        line, listed, end = prompt.split("\n")
        people, target = json.loads(listed), json.loads(answer)
        assert end == "" and line == aux_tasks._instruction_line("waiting_line/sort") and "alphabetically" in line
        assert target == sorted(people) and len(set(people)) == len(people)
        assert {len(p.split()) for p in people} == {words_per_name}
        lengths.add(len(people))
        ex = aux_tasks.AUX_TASKS[name](ref_tok, random.Random(seed))
        assert ref_tok.unk_token_id not in ex.prompt_ids + ex.answer_ids
    assert lengths == {2, 3, 4, 5, 6}


def test_confusable_copy_rows_use_only_the_confusable_last_names_and_keep_copy_framed_unchanged():
    from bench.tasks.generators import name_population

    for seed in range(30):
        prompt, answer = aux_tasks.AUX_TASKS["copy_confusable"].item(random.Random(seed))
        people = json.loads(answer)
        assert f"{answer}\n" in prompt and {p.split(" ", 1)[1] for p in people} <= set(aux_tasks.CONFUSABLE_LAST_NAMES)
    assert set(aux_tasks.CONFUSABLE_LAST_NAMES) <= {n.split(" ", 1)[1] for n in name_population()}
    # the population argument must not change the rows of the recorded copy_framed stream
    assert aux_tasks.copy_framed_item(random.Random(7)) == aux_tasks.copy_framed_item(random.Random(7), name_population())


@pytest.mark.parametrize("name, sizes", [("bind", {3, 4, 5, 6}), ("bind_short", {2, 3})])
def test_bind_rows_give_the_answer_first_names_and_leave_the_last_names_to_find(ref_tok, name, sizes):
    orders, seen_sizes = set(), set()
    for seed in range(40):
        prompt, answer = aux_tasks.bind_item(random.Random(seed), min(sizes), max(sizes))
        line, listed, end = prompt.split("\n")
        people, target = json.loads(listed), json.loads(answer)
        assert line == aux_tasks._instruction_line("waiting_line/shuffle") and sorted(target) == sorted(people)
        orders.add(target == people)
        seen_sizes.add(len(people))
        ex = aux_tasks.AUX_TASKS[name](ref_tok, random.Random(seed))
        assert ex.task == f"aux/{name}"
        given = [ref_tok.decode([ex.answer_ids[j]]).strip() for j in ex.unmasked]
        assert given == [name.split(" ", 1)[0] for name in json.loads(ref_tok.decode(ex.answer_ids,
                                                                                     skip_special_tokens=True))]
    assert orders == {True, False}  # the order is drawn, so the input order is only sometimes the answer
    assert seen_sizes == sizes


@pytest.mark.parametrize("name", sorted(aux_tasks.AUX_TASKS))
def test_every_aux_task_encodes_without_unknowns_on_its_canvas(ref_tok, name):
    ex = aux_tasks.AUX_TASKS[name](ref_tok, random.Random(1))
    assert ex.task.startswith("aux/") and ref_tok.unk_token_id not in ex.prompt_ids + ex.answer_ids
    answer = [i for i in ex.answer_ids if i != ref_tok.eos_token_id]
    puzzle_canvas = {get_task(t).max_tokens for t in aux_tasks.PUZZLE_FILL_TASKS.values()}
    canvases = (aux_tasks.COPY_GEN_LENGTH, lookup.GEN_LENGTH, *puzzle_canvas)
    assert len(ex.answer_ids) in canvases and len(answer) < len(ex.answer_ids)
    if name in ("copy_bare", "copy_framed", "copy_short"):  # the answer is the prompt's list, token for token
        assert tuple(answer) == tuple(ex.prompt_ids[ex.prompt_ids.index(answer[0]):][:len(answer)])


@pytest.mark.parametrize("name", sorted(aux_tasks.PUZZLE_FILL_TASKS))
def test_puzzle_fill_rows_leave_a_few_cells_open_and_give_everything_else(ref_tok, name):
    from bench.scorers import latin_square_score

    separators = {ref_tok.convert_tokens_to_ids(t) for t in (",", "\u010a")}
    opened = set()
    for seed in range(30):
        ex = aux_tasks.AUX_TASKS[name](ref_tok, random.Random(seed))
        assert ex.task == f"aux/{name}"
        open_slots = sorted(set(range(len(ex.answer_ids))) - set(ex.unmasked))
        opened.add(len(open_slots))
        cells = aux_tasks.puzzle_cell_slots(ref_tok, ex.answer_ids)
        assert len(cells) == 16 and set(open_slots) <= set(cells)
        assert all(ex.answer_ids[i] not in separators | {ref_tok.eos_token_id} for i in open_slots)
        # the answer is a train-split solution, in the benchmark's own one-shot chat format
        text = ref_tok.decode(ex.answer_ids, skip_special_tokens=True)
        prompt = ref_tok.decode(ex.prompt_ids, skip_special_tokens=True)
        if name.startswith("latin"):
            symbols = prompt.rsplit("symbols [", 1)[1].split("]", 1)[0].split(", ")
            assert latin_square_score(text, {"symbols": symbols}) == 1.0
        else:
            grid = [[int(d) for d in row] for row in text.split("\n")]
            givens = prompt.rsplit("Input:\n", 1)[1].split("\nOutput:", 1)[0].split("\n")
            boxes = [[grid[r][c] for r in rs for c in cs] for rs in ((0, 1), (2, 3)) for cs in ((0, 1), (2, 3))]
            assert all(sorted(unit) == [1, 2, 3, 4] for unit in (*grid, *zip(*grid), *boxes))
            assert all(g in ("0", str(v)) for line, row in zip(givens, grid) for g, v in zip(line, row))
    assert opened == ({4, 5, 6} if name in ("latin_row_fill", "latin_col_fill") else set(range(1, 7)))


@pytest.mark.parametrize("spec, message", [
    ("copy_bare", "not NAME=FRACTION"), ("copy=0.5", "unknown task 'copy'"), ("copy_bare=x", "not a number"),
    ("copy_bare=1.5", r"in \[0, 1\]"), ("copy_bare=0.2,copy_bare=0.1", "given twice"),
    ("copy_bare=0.7,lookup_bare=0.5", "add up to 1.2"),
])
def test_bad_aux_specs_name_the_entry(spec, message):
    from distill.train import TrainConfig

    with pytest.raises(ValueError, match=message):
        aux_tasks.parse_aux_fractions(spec)
    with pytest.raises(ValueError, match="aux_tasks"):
        TrainConfig(aux_tasks=spec)


def test_pick_aux_task_splits_the_unit_interval_in_spec_order():
    fractions = aux_tasks.parse_aux_fractions("copy_bare=0.5, lookup_bare=0.25")
    assert [aux_tasks.pick_aux_task(fractions, u) for u in (0.0, 0.49, 0.5, 0.74, 0.75, 0.99)] == [
        "copy_bare", "copy_bare", "lookup_bare", "lookup_bare", None, None]
    assert aux_tasks.parse_aux_fractions("") == {}


def test_aux_rows_replace_some_rows_and_keep_the_others(ref_tok):
    plain = reference.example_maker(ref_tok, 0)
    mixed = reference.example_maker(ref_tok, 0, aux_tasks="copy_bare=0.3,lookup_bare=0.3")
    pairs = [(plain(random.Random(i)), mixed(random.Random(i))) for i in range(40)]
    tasks = {m.task for _, m in pairs}
    assert {"aux/copy_bare", "aux/lookup_bare"} <= tasks and any(not t.startswith("aux/") for t in tasks)
    assert all(p == m for p, m in pairs if not m.task.startswith("aux/"))
    again = reference.example_maker(ref_tok, 0, aux_tasks="copy_bare=0.3,lookup_bare=0.3")
    assert [again(random.Random(i)) for i in range(40)] == [m for _, m in pairs]  # a pure function of the seed


@pytest.mark.parametrize("name, line_of", [("latin_row_fill", lambda i: i // 4), ("latin_col_fill", lambda i: i % 4)])
def test_latin_line_fill_opens_one_whole_row_or_column(ref_tok, name, line_of):
    for seed in range(20):
        ex = aux_tasks.AUX_TASKS[name](ref_tok, random.Random(seed))
        cells = aux_tasks.puzzle_cell_slots(ref_tok, ex.answer_ids)
        open_slots = set(range(len(ex.answer_ids))) - set(ex.unmasked)
        lines_open = [k for k in range(4) if {c for i, c in enumerate(cells) if line_of(i) == k} <= open_slots]
        assert lines_open and len(open_slots) - 4 <= 2


def test_latin_row_fill_draws_are_unchanged_by_the_column_option(ref_tok):
    # the shipped recipe's latin_row_fill rows must replay bit for bit
    for seed in range(5):
        ex = aux_tasks.AUX_TASKS["latin_row_fill"](ref_tok, random.Random(seed))
        legacy_rng = random.Random(seed)
        item_seed = legacy_rng.getrandbits(32)
        row = legacy_rng.randrange(4)
        cells = aux_tasks.puzzle_cell_slots(ref_tok, ex.answer_ids)
        assert set(cells[4 * row:4 * row + 4]) <= set(range(len(ex.answer_ids))) - set(ex.unmasked), item_seed


def test_puzzle_fill_refuses_row_and_column_together(ref_tok):
    with pytest.raises(ValueError, match="whole_row and whole_column"):
        aux_tasks.puzzle_fill_example(ref_tok, random.Random(0), "latin_fill", whole_row=True, whole_column=True)


def test_sort_prefix_rows_put_first_names_sharing_an_initial_side_by_side(ref_tok):
    lengths, initials = set(), set()
    for seed in range(60):
        prompt, answer = aux_tasks.sort_prefix_item(random.Random(seed))
        line, listed, end = prompt.split("\n")
        people, target = json.loads(listed), json.loads(answer)
        assert end == "" and line == aux_tasks._instruction_line("waiting_line/sort")
        assert target == sorted(people) and 3 <= len(people) <= 6
        firsts = [p.split(" ", 1)[0] for p in people]
        lasts = [p.split(" ", 1)[1] for p in people]
        assert len(set(firsts)) == len(firsts) and len(set(lasts)) == len(lasts)
        shared = [c for c in {f[0] for f in firsts} if sum(f[0] == c for f in firsts) >= 2]
        assert shared, people
        initials.update(shared)
        lengths.add(len(people))
        ex = aux_tasks.AUX_TASKS["sort_prefix"](ref_tok, random.Random(seed))
        assert ref_tok.unk_token_id not in ex.prompt_ids + ex.answer_ids
    assert lengths == {3, 4, 5, 6} and len(initials) >= 5
