"""Task registry, generators, splits and ParallelBench file I/O (spec §1–§3)."""

import itertools
import json
import time
from pathlib import Path

import pytest
import yaml

from bench.scorers import latin_square_score, score_prediction
from bench.tasks import (
    BENCHMARK_TASKS,
    OFFLINE_TASKS,
    TASKS,
    ParallelBenchFormatError,
    TaskItem,
    all_sudoku_grids,
    count_sudoku_solutions,
    export_parallelbench,
    fill_prompt,
    generate,
    get_task,
    iter_train_items,
    load_parallelbench,
    load_task,
    name_population,
    render_word_list,
    reserved_keys,
    select_tasks,
    split_seed,
    str_to_seed,
)
from bench.tasks.parallelbench_io import _prompt_fields
from bench.tasks.splits import _train_stream

DATA = Path(__file__).resolve().parent.parent / "bench" / "data"
WAITING_LINE = [n for n in OFFLINE_TASKS if n.startswith("waiting_line/")]


@pytest.fixture(scope="module")
def test_items():
    return {name: load_task(name) for name in OFFLINE_TASKS}


def _names(rendered):
    return json.loads(rendered)


def _all_lists(item):
    """Every input list of an item and its shots."""
    for inp in [item.input] + [s["input"] for s in item.shots]:
        if "context" in inp:
            yield _names(inp["context"])


# --- registry ------------------------------------------------------------------------------------------


def test_registry_counts_and_order():
    assert len(BENCHMARK_TASKS) == 17
    assert len(OFFLINE_TASKS) == 12
    assert BENCHMARK_TASKS[0] == "waiting_line/copy" and BENCHMARK_TASKS[-1] == "puzzle/sudoku_n4_12"
    assert "waiting_line/sort_last_name" in TASKS and "waiting_line/sort_last_name" not in BENCHMARK_TASKS
    assert get_task("copy") is get_task("waiting_line/copy")
    assert get_task("text_writing/summarization").name == "paraphrase_summarize/samsum"
    assert get_task("sudoku").num_samples == 108
    assert {TASKS[n].max_tokens for n in WAITING_LINE} == {32}
    assert {TASKS[n].max_tokens for n in BENCHMARK_TASKS if n not in WAITING_LINE} == {64}
    with pytest.raises(KeyError, match="Unknown task"):
        get_task("nope")


def test_registry_prompts_and_seeds_come_from_the_verbatim_configs():
    wl = yaml.safe_load(open(DATA / "waiting_line" / "task_config.yaml"))
    for name in WAITING_LINE:
        assert TASKS[name].prompt == wl[name]["prompt"]
        assert TASKS[name].seed == wl[name]["seed"] == str_to_seed(TASKS[name].seed_name)
    assert TASKS["puzzle/latin_square_n4"].seed == 51291 == str_to_seed("latin_square_n4")
    assert TASKS["puzzle/sudoku_n4_12"].seed == 53963
    assert TASKS["paraphrase_summarize/samsum"].seed == 59102
    assert TASKS["paraphrase_summarize/chatgpt-paraphrases"].seed == 39617


def test_select_tasks_globs():
    assert select_tasks(["waiting_line/*"]) == WAITING_LINE
    assert len(select_tasks("waiting_line/*", include_extra=True)) == 11
    assert select_tasks(["waiting_line/*", "sudoku*"]) == WAITING_LINE + ["puzzle/sudoku_n4_12"]
    assert select_tasks("words_to_sentence/*") == [f"words_to_sentence/{x}" for x in ("easy", "medium", "hard")]
    assert select_tasks("all") == list(BENCHMARK_TASKS)
    assert select_tasks("offline") == list(OFFLINE_TASKS)
    assert select_tasks(["copy", "copy", "sort_last_name"]) == ["waiting_line/copy", "waiting_line/sort_last_name"]
    with pytest.raises(KeyError, match="matches no task"):
        select_tasks("nope*")


def test_name_population_is_first_major_with_repeats():
    first, last = yaml.safe_load(open(DATA / "first_last_names.yaml"))
    pop = name_population()
    assert (len(first), len(last)) == (92, 192)
    assert len(pop) == 17664 and len(set(pop)) == 17480
    assert pop[:2] == (f"{first[0]} {last[0]}", f"{first[0]} {last[1]}")
    assert pop[192] == f"{first[1]} {last[0]}"


# --- test split: fidelity and invariants ---------------------------------------------------------------

# Item 0 of each released file as printed in the paper's Table 3 (arXiv 2510.04767, appendix).
PAPER_TABLE_3 = {
    "copy": (
        {"context": '["Billy Ramos", "Alan Wells", "Grace Wright"]'},
        '["Billy Ramos", "Alan Wells", "Grace Wright"]',
    ),
    "sort": (
        {"context": '["David Lewis", "Patrick Tran", "Sean Diaz"]'},
        '["David Lewis", "Patrick Tran", "Sean Diaz"]',
    ),
    "reverse": (
        {"context": '["Mark Richardson", "Kevin Martinez", "Henry Young"]'},
        '["Henry Young", "Kevin Martinez", "Mark Richardson"]',
    ),
    "shuffle": (
        {"context": '["Paul Payne", "Robert Riley", "Peter Stone"]'},
        '["Robert Riley", "Paul Payne", "Peter Stone"]',
    ),
    "replace_index": (
        {"context": '["Patrick Morgan", "Eric King", "Joe Reed"]', "word": "Henry Warren", "index": 0},
        '["Henry Warren", "Eric King", "Joe Reed"]',
    ),
    "replace_random": (
        {"context": '["David Owens", "Kelly Payne", "Aaron Freeman"]', "word": "Juan Torres"},
        '["David Owens", "Kelly Payne", "Juan Torres"]',
    ),
    "insert_index": (
        {"context": '["Charlotte Chavez", "Grace Baker", "Keith Cooper"]', "word": "Aaron Stewart", "index": 2},
        '["Charlotte Chavez", "Grace Baker", "Aaron Stewart", "Keith Cooper"]',
    ),
    "insert_random": (
        {"context": '["Johnny Sullivan", "Ryan Baker", "Juan Wilson"]', "word": "Justin McDonald"},
        '["Justin McDonald", "Johnny Sullivan", "Ryan Baker", "Juan Wilson"]',
    ),
    "remove_index": (
        {"context": '["Sarah Robertson", "Maria Mitchell", "Donald Hughes"]', "index": 2},
        '["Sarah Robertson", "Maria Mitchell"]',
    ),
    "remove_random": ({"context": '["Karen Kim", "Jerry Hall", "Jose Marshall"]'}, '["Jerry Hall", "Jose Marshall"]'),
    "latin_square_n4": ({"size": 4, "symbols": "[H, 4, C, A]"}, "H,4,A,C\n4,C,H,A\nC,A,4,H\nA,H,C,4"),
}


@pytest.mark.parametrize("short", sorted(PAPER_TABLE_3))
def test_first_item_matches_the_paper(test_items, short):
    item = test_items[get_task(short).name][0]
    expected_input, expected_answer = PAPER_TABLE_3[short]
    assert item.input == expected_input
    assert item.target_text == expected_answer


def test_determinism(test_items):
    for name in ("waiting_line/shuffle", "puzzle/sudoku_n4_12"):
        assert load_task(name) == test_items[name]
    assert generate("copy", "train", n=50, seed=3) == generate("copy", "train", n=50, seed=3)
    assert generate("copy", "train", n=50, seed=3) != generate("copy", "train", n=50, seed=4)


@pytest.mark.parametrize("name", WAITING_LINE)
def test_length_buckets(test_items, name):
    items = test_items[name]
    assert [it.metadata["length"] for it in items] == [3] * 25 + [4] * 25 + [5] * 25 + [6] * 25
    assert [len(_names(it.input["context"])) for it in items] == [it.metadata["length"] for it in items]
    assert [it.index for it in items] == list(range(100))
    # shots are unbucketed: lengths uniform in [3, 6], not ordered
    shot_lengths = [s["metadata"]["length"] for it in items for s in it.shots]
    assert set(shot_lengths) <= {3, 4, 5, 6} and shot_lengths != sorted(shot_lengths)


@pytest.mark.parametrize("name", WAITING_LINE)
def test_waiting_line_invariants(test_items, name):
    spec = get_task(name)
    for item in test_items[name]:
        assert len(item.shots) == 1
        for names in _all_lists(item):
            firsts = [x.split(" ", 1)[0] for x in names]
            lasts = [x.split(" ", 1)[1] for x in names]
            assert len(set(firsts)) == len(names) and len(set(lasts)) == len(names)
        names = _names(item.input["context"])
        n = len(names)
        if spec.kind in ("insert", "replace"):
            word = item.metadata["word"]
            assert word not in names and word in name_population()
        index = item.metadata.get("index")
        if spec.random_index is False:
            assert item.input["index"] == index
            assert 0 <= index <= (n if spec.kind == "insert" else n - 1)
        if spec.random_index is True:
            assert "index" not in item.input and index is None
            assert item.reference["input"] == names
        if spec.kind == "shuffle":
            assert item.reference["input"] == names and _names(item.reference["example"]) != names
        if spec.kind == "sort":
            assert _names(item.reference) == sorted(names)


def test_index_tasks_are_zero_based_and_cover_the_range(test_items):
    inserts = {it.input["index"] for it in test_items["waiting_line/insert_index"]}
    removes = {it.input["index"] for it in test_items["waiting_line/remove_index"]}
    assert min(inserts) == 0 and max(inserts) == 6
    assert min(removes) == 0 and max(removes) == 5
    for item in test_items["waiting_line/remove_index"]:
        names = _names(item.input["context"])
        assert _names(item.reference) == names[: item.input["index"]] + names[item.input["index"] + 1 :]


def test_sort_reference_is_by_first_name_and_extra_task_by_last_name(test_items):
    differs = 0
    for item in test_items["waiting_line/sort"]:
        names = _names(item.input["context"])
        differs += sorted(names) != sorted(names, key=lambda x: x.split(" ", 1)[1])
    assert differs > 50  # the prompt's "by last name" disagrees with the reference for most items
    for item in load_task("sort_last_name"):
        names = _names(item.input["context"])
        assert _names(item.reference) == sorted(names, key=lambda x: x.split(" ", 1)[1])


def test_latin_square_references_are_valid(test_items):
    for item in test_items["puzzle/latin_square_n4"]:
        for inp, ans in [(item.input, item.reference)] + [(s["input"], s["answer"]) for s in item.shots]:
            symbols = ans["symbols"]
            assert len(set(symbols)) == 4 and inp == {"size": 4, "symbols": "[" + ", ".join(symbols) + "]"}
            rows = [r.split(",") for r in ans["example"].split("\n")]
            assert len(rows) == 4
            assert all(set(r) == set(symbols) for r in rows) and all(set(c) == set(symbols) for c in zip(*rows))
            assert latin_square_score(ans["example"], ans) == 1.0


def test_sudoku_grids_and_uniqueness(test_items):
    grids = all_sudoku_grids()
    assert len(grids) == 288 == len(set(grids))
    assert all(count_sudoku_solutions(list(g)) == 1 for g in grids[:20])
    items = test_items["puzzle/sudoku_n4_12"]
    assert len(items) == 108 and len({it.input["sudoku"] for it in items}) == 108
    for item in items:
        for puzzle, solution in [(item.input["sudoku"], item.reference)] + [
            (s["input"]["sudoku"], s["answer"]) for s in item.shots
        ]:
            cells = [int(c) for c in puzzle.replace("\n", "")]
            sol = [int(c) for c in solution.replace("\n", "")]
            assert len(puzzle.split("\n")) == 4 and cells.count(0) == 4  # 12 givens
            assert all(c in (0, s) for c, s in zip(cells, sol)) and tuple(sol) in set(grids)
            assert count_sudoku_solutions(cells) == 1
        assert item.metadata == {"length": 4, "num_holes": 4}


def test_count_sudoku_solutions_detects_ambiguity():
    # Blanking a 2x2 "deadly rectangle" (two values swappable) leaves two solutions.
    grid = list(all_sudoku_grids()[0])  # 1234/3412/2143/4321
    ambiguous = grid[:]
    for i in (0, 1, 8, 9):  # rows 0 and 2, columns 0 and 1: values 1,2 / 2,1
        ambiguous[i] = 0
    assert count_sudoku_solutions(ambiguous) == 2
    assert count_sudoku_solutions([1, 1] + [0] * 14) == 0


def test_messages_follow_parallelbench(test_items):
    for name, items in test_items.items():
        spec = get_task(name)
        for item in items[:5]:
            shot = item.shots[0]
            assert [m["role"] for m in item.messages] == ["user", "assistant", "user"]
            assert item.messages[0]["content"] == fill_prompt(spec.prompt, shot["input"])
            expected = shot["answer"] if isinstance(shot["answer"], str) else shot["answer"]["example"]
            assert item.messages[1]["content"] == expected
            assert item.prompt == spec.prompt.format(**item.input).replace("\\n", "\n")
            assert "\\n" not in item.prompt
    sudoku = test_items["puzzle/sudoku_n4_12"][0].prompt
    assert sudoku.endswith("\n\nInput:\n" + test_items["puzzle/sudoku_n4_12"][0].input["sudoku"] + "\nOutput:\n")
    copy = test_items["waiting_line/copy"][0].prompt
    assert copy.startswith("You are managing a waiting line at a customer service desk.\nYou need to record")
    assert '\n["Billy Ramos", "Alan Wells", "Grace Wright"]\n' in copy


def test_references_score_one_under_their_own_metric(test_items):
    items = [it for its in test_items.values() for it in its]
    items += [it for n in OFFLINE_TASKS for it in generate(n, "validation", n=20)]
    items += [it for n in OFFLINE_TASKS for it in generate(n, "train", n=20)]
    for item in items:
        for text, ref in [(item.target_text, item.reference)] + [
            (item.messages[1]["content"], s["answer"]) for s in item.shots
        ]:
            r = score_prediction(item.metric, text, ref)
            assert (r.score, r.score_strict) == (1.0, 1.0), (item.task, text)


# --- splits --------------------------------------------------------------------------------------------


def test_validation_and_train_are_disjoint_from_test():
    for name in OFFLINE_TASKS:
        test = {it.key for it in load_task(name)}
        val = generate(name, "validation")
        assert len(val) == get_task(name).num_samples
        val_keys = {it.key for it in val}
        assert not test & val_keys
        assert reserved_keys(name, "validation") == test | val_keys
        train = {it.key for it in generate(name, "train", n=300, seed=1)}
        assert not train & (test | val_keys)


def test_overlapping_items_are_dropped():
    # Validation generated with the *test* seed would reproduce the test items: all of them must be skipped.
    for name in ("waiting_line/copy", "puzzle/latin_square_n4", "puzzle/sudoku_n4_12"):
        spec = get_task(name)
        test_keys = reserved_keys(name, "test")
        val = generate(name, "validation", seed=spec.seed)
        assert len(val) == spec.num_samples and not {it.key for it in val} & test_keys
        # A train stream on the test seed starts with the first *drawn* test item (always kept by the
        # bucketing); with the held-out keys it must be skipped.
        unfiltered = next(_train_stream(spec, spec.seed, frozenset(), 0, None, None))
        assert unfiltered.key in test_keys
        train = list(itertools.islice(_train_stream(spec, spec.seed, test_keys, 0, None, None), 50))
        assert not {it.key for it in train} & test_keys


def test_train_exclude_argument():
    base = generate("reverse", "train", n=5, seed=9, shots=0)
    again = generate("reverse", "train", n=5, seed=9, shots=0, exclude=[base[0]])
    assert base[0].key not in {it.key for it in again}
    assert again[0].key == base[1].key
    it = iter_train_items("reverse", seed=9, shots=0, exclude=[base[0].key])
    assert next(it).key == base[1].key


def test_train_split_size_lengths_and_mixture():
    items = generate("insert_random", "train", n=3000, seed=0)
    assert len(items) == 3000 and {it.split for it in items} == {"train"}
    assert {it.metadata["length"] for it in items} == {3, 4, 5, 6}
    long = generate("copy", "train", n=50, min_length=10, max_length=16, shots=0)
    assert all(10 <= it.metadata["length"] <= 16 and len(it.messages) == 1 for it in long)
    mix = list(itertools.islice(iter_train_items(["waiting_line/*", "sudoku*"], seed=0), 600))
    assert {it.task for it in mix} == set(WAITING_LINE) | {"puzzle/sudoku_n4_12"}
    again = list(itertools.islice(iter_train_items(["waiting_line/*", "sudoku*"], seed=0), 600))
    assert mix == again
    with pytest.raises(ValueError, match="No generator"):
        next(iter_train_items(["samsum"]))


def test_train_generation_speed():
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        list(itertools.islice(iter_train_items("offline", seed=2), 3000))
        rates.append(3000 / (time.perf_counter() - start))
    assert max(rates) >= 5000, rates


def test_split_seeds_and_errors():
    assert split_seed("copy", "test") == 31940
    assert split_seed("copy", "train") == str_to_seed("copy", 123)
    assert len({split_seed("copy", s) for s in ("train", "validation", "test")}) == 3
    with pytest.raises(ValueError, match="Unknown split"):
        generate("copy", "dev")
    with pytest.raises(ValueError, match="has 100 items"):
        generate("copy", "test", n=101)
    with pytest.raises(ValueError, match="data_dir"):
        load_task("samsum")
    with pytest.raises(ValueError, match="no generator"):
        generate("words_to_sentence/easy", "train", n=1)
    assert len(load_task("copy", limit=7)) == 7


# --- ParallelBench files -------------------------------------------------------------------------------


def test_export_load_round_trip(tmp_path, test_items):
    items = [it for its in test_items.values() for it in its]
    written = export_parallelbench(items, tmp_path / "test")
    assert len(written) == 12
    assert (tmp_path / "test" / "waiting_line" / "copy.jsonl").is_file()
    config = yaml.safe_load(open(tmp_path / "test" / "waiting_line" / "task_config.yaml"))
    verbatim = yaml.safe_load(open(DATA / "waiting_line" / "task_config.yaml"))
    assert config["waiting_line/copy"] == verbatim["waiting_line/copy"]
    line = json.loads((tmp_path / "test" / "waiting_line" / "insert_random.jsonl").read_text().splitlines()[0])
    assert set(line) == {"input", "answer", "output_format", "metadata"}
    assert set(line["input"]) == {"context", "word", "icl_examples"}
    loaded = load_parallelbench(tmp_path / "test")
    assert list(loaded) == list(test_items) or set(loaded) == set(test_items)
    for name, its in test_items.items():
        assert loaded[name] == its
    # a group folder works too, and load_task routes data_dir
    assert load_parallelbench(tmp_path / "test" / "puzzle", ["sudoku"])["puzzle/sudoku_n4_12"] == test_items[
        "puzzle/sudoku_n4_12"
    ]
    assert load_task("copy", data_dir=tmp_path / "test", limit=3) == test_items["waiting_line/copy"][:3]


def _write(dir_, config, lines, file):
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "task_config.yaml").write_text(yaml.safe_dump(config))
    (dir_ / file).write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")


def test_load_text_writing_tasks(tmp_path):
    w2s = tmp_path / "words_to_sentence"
    cfg = {"words_to_sentence/easy": {"metric": "sentence_to_words_score", "prompt": get_task("w2s_easy").prompt}}
    _write(
        w2s,
        cfg,
        [
            {"input": {"words": "dog, park, ball, and throw"}, "answer": {"words": ["dog", "park", "ball", "throw"]}},
            "",
            {"input": {"words": ["apple", "river"]}, "label": {"words": ["apple", "river"]}},
        ],
        "easy.jsonl",
    )
    items = load_task("words_to_sentence/easy", data_dir=tmp_path)
    assert items[0].prompt == "Construct a single, coherent sentence using the words dog, park, ball, and throw."
    assert items[1].prompt.endswith("the words apple and river.") and items[1].input["words"] == ["apple", "river"]
    assert items[0].target_text is None and items[0].split == "external"
    r = score_prediction("list_match_score", '["a"]', '["a"]')  # sanity: registry usable alongside
    assert r.score == 1.0
    summ = tmp_path / "paraphrase_summarize"
    _write(
        summ,
        {"paraphrase_summarize/samsum": {"metric": "summary_score"}},  # prompt falls back to the registry
        [{"input": {"text": "Steve: Hi.\nRob: Hi!"}, "answer": {"text": "...", "summary": "They greet."}}],
        "samsum.jsonl",
    )
    item = load_task("samsum", data_dir=summ)[0]
    assert item.prompt == (
        "Summarize the following conversation. Only output the final result.\n\nSteve: Hi.\nRob: Hi!\n\nSummary:"
    )
    assert item.target_text == "They greet." and item.messages == [{"role": "user", "content": item.prompt}]
    assert render_word_list(["a"]) == "a"


def test_loader_tolerates_variants(tmp_path):
    sudoku = get_task("sudoku")
    shot = {"input": {"sudoku": "0143\n4301\n1034\n3410"}, "answer": "2143\n4321\n1234\n3412"}
    _write(
        tmp_path / "puzzle",
        {"puzzle/sudoku_n4_12": dict(sudoku.config)},  # name: puzzle/sudoku_4x4_4
        [
            {
                "input": {"sudoku": "4312\n0103\n3421\n1004"},
                "output": "4312\n2143\n3421\n1234",  # "output" instead of "answer"
                "icl_examples": [shot],  # top level instead of inside "input"
                "extra": 1,
            }
        ],
        "sudoku_4x4_4.jsonl",  # file named after the config's `name`
    )
    item = load_task("sudoku", data_dir=tmp_path)[0]
    assert item.task == "puzzle/sudoku_n4_12" and item.metadata == {}
    assert item.messages[1]["content"] == "2143\n4321\n1234\n3412"
    assert item.prompt.endswith("Input:\n4312\n0103\n3421\n1004\nOutput:\n")
    assert score_prediction(item.metric, item.target_text, item.reference).score == 1.0


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"answer": "[\\"A B\\"]"}', "'input'"),
        ('{"input": {"context": "[\\"A B\\"]"}}', "'answer'"),
        ('{"input": {"context": "[\\"A B\\"]"}, "answer": {"input": ["A B"]}}', "'answer' must be a string"),
        ('{"input": {}, "answer": "x"}', "'input.context'"),
        (
            '{"input": {"context": "x", "icl_examples": [{"input": {}, "answer": "y"}]}, "answer": "x"}',
            "'input.icl_examples[0].input.context'",
        ),
        (
            '{"input": {"context": "x", "icl_examples": [{"input": {"context": "z"}}]}, "answer": "x"}',
            "'input.icl_examples[0].answer'",
        ),
        ('{"input": {"context": "x"}, "answer": "x"', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_loader_errors_name_file_line_and_field(tmp_path, line, message):
    good = json.dumps({"input": {"context": '["A B"]'}, "answer": '["A B"]'})
    cfg = {"waiting_line/copy": {"prompt": "{context}", "metric": "list_match_score"}}
    _write(tmp_path / "waiting_line", cfg, [good, line], "copy.jsonl")
    with pytest.raises(ParallelBenchFormatError) as err:
        load_task("copy", data_dir=tmp_path)
    assert "copy.jsonl:2:" in str(err.value) and message in str(err.value)


def test_loader_checks_metric_specific_answer_fields(tmp_path):
    line = {"input": {"context": '["A B"]', "word": "C D"}, "answer": {"input": ["A B"], "example": '["C D", "A B"]'}}
    cfg = {"waiting_line/insert_random": dict(get_task("insert_random").config)}
    _write(tmp_path / "waiting_line", cfg, [line], "insert_random.jsonl")
    with pytest.raises(ParallelBenchFormatError, match=r"insert_random.jsonl:1: missing required field 'answer.word'"):
        load_parallelbench(tmp_path)


def test_loader_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="task_config.yaml"):
        load_parallelbench(tmp_path)
    (tmp_path / "task_config.yaml").write_text(yaml.safe_dump({"waiting_line/copy": {"prompt": "{context}"}}))
    assert load_parallelbench(tmp_path) == {}
    with pytest.raises(FileNotFoundError, match="no .jsonl"):
        load_parallelbench(tmp_path, ["copy"])


def test_task_item_key_and_prompt_fields():
    item = load_task("insert_index", limit=1)[0]
    assert isinstance(item, TaskItem)
    assert item.key == ("waiting_line/insert_index", json.dumps(item.input, sort_keys=True))
    assert _prompt_fields(get_task("replace_index").prompt) == ["index", "word", "context"]
