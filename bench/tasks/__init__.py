"""ParallelBench-style tasks: registry, deterministic generators, splits and ParallelBench file I/O.

Reference: ``reference/parallelbench.md`` (Kang et al., "ParallelBench", arXiv 2510.04767; v1 harness
``furiosa-ai/ParallelBench`` commit 72de8f7). The vocabulary and the Waiting-Line / Puzzle task configs are
verbatim package data in ``bench/data``.

Quick start::

    from bench.tasks import load_task, select_tasks, iter_train_items
    from bench.scorers import score_prediction

    items = load_task("waiting_line/copy")               # 100 test items, 25 per length n = 3..6
    item = items[0]
    item.messages        # [user(shot prompt), assistant(shot answer), user(test prompt)]
    item.target_text     # '["Billy Ramos", "Alan Wells", "Grace Wright"]' (the paper's Table 3 example)
    score_prediction(item.metric, item.target_text, item.reference).score   # 1.0
    select_tasks(["waiting_line/*", "sudoku*"])           # 11 canonical names
    train = iter_train_items(select_tasks("offline"), seed=0)   # unbounded, disjoint from test/validation

Answer renderings (``target_text``, identical to the official answers and one-shot assistant turns):

* lists: ``["A B", "C D"]`` (items joined by ``", "`` inside ``["`` … ``"]``); for the ``*_random`` tasks and
  Shuffle the reference is a dict and ``target_text`` its ``example``.
* Latin square: one row per line, cells joined by ``","`` without spaces (``H,4,C,A``), v1's
  ``latin_square_to_str``. The prompt's "as CSV" is satisfied; the scorer also accepts ``H, 4, C, A``.
  The prompt lists the symbols as ``[H, 4, C, A]``.
* Sudoku: 4 lines of 4 digits, no separators; the puzzle input uses ``0`` for the 4 blanks.

Documented inconsistencies and choices:

1. **Not byte-identical.** The released JSONL files cannot be regenerated (§2.6); these generators follow
   the v1 procedure with the configs' seeds and additionally reject lists with repeated first or last
   names (the released-data invariant, re-drawn with the same length), so the items are *statistically
   equivalent*. Load the released files with ``load_task(name, data_dir=...)`` for comparable numbers.
2. **Sort** says "alphabetically by last name" but the reference is Python's ``sorted`` of the full names,
   i.e. by *first* name (v1 behaviour, kept). ``waiting_line/sort_last_name`` (extra, not among the 17)
   has the by-last-name reference.
3. **Positions are 0-based** (insert in [0, n], remove/replace in [0, n-1]) as in the released data.
4. **Prompts** are the verbatim v1 config strings loaded with PyYAML: paragraphs are separated by a
   single newline (v2 uses blank lines); some end with a newline, Replace Random does not.
5. **Sudoku** (``puzzle/sudoku_n4_12``): the released 108 puzzles are external (Dream authors' data) and
   the config has no seed; here 108 puzzles with 12 givens and a unique solution are generated with seed
   ``str_to_seed("sudoku_n4_12") = 53963``, each with its own one-shot example (v1 layout; v2 uses one
   fixed shot).
6. **One-shot examples** of test/validation come after the test items from the same RNG (the i-th shot
   for the i-th item); train items take their shots from the next items of their own stream.
7. **Splits** (see :mod:`bench.tasks.splits`): validation and train skip any item whose ``(task, input)``
   key is in the test (and validation) split; validation uses ``str_to_seed(old short name, 7)``, train
   ParallelBench's train offset 123.
8. **Text writing** (paraphrase, summarization, W2S) has no generator and no downloads here: supply
   ParallelBench's files via ``data_dir``; their grammar/ROUGE/BLEU/BERTScore parts are optional imports.
"""

from .core import (
    TaskItem,
    TaskSpec,
    answer_text,
    build_messages,
    fill_prompt,
    grid_to_str,
    item_key,
    latin_square_to_str,
    list_to_str,
    render_word_list,
    str_to_seed,
    symbols_to_str,
)
from .generators import all_sudoku_grids, count_sudoku_solutions, name_population
from .parallelbench_io import (
    ParallelBenchFormatError,
    export_parallelbench,
    load_parallelbench,
    load_parallelbench_task,
)
from .registry import BENCHMARK_TASKS, EXTRA_TASKS, OFFLINE_TASKS, TASKS, get_task, register_task, select_tasks
from .splits import SPLITS, generate, iter_train_items, load_task, reserved_keys, split_seed

__all__ = [
    "TaskItem",
    "TaskSpec",
    "TASKS",
    "BENCHMARK_TASKS",
    "OFFLINE_TASKS",
    "EXTRA_TASKS",
    "SPLITS",
    "get_task",
    "register_task",
    "select_tasks",
    "load_task",
    "generate",
    "iter_train_items",
    "split_seed",
    "reserved_keys",
    "load_parallelbench",
    "load_parallelbench_task",
    "export_parallelbench",
    "ParallelBenchFormatError",
    "answer_text",
    "build_messages",
    "fill_prompt",
    "list_to_str",
    "symbols_to_str",
    "latin_square_to_str",
    "grid_to_str",
    "render_word_list",
    "str_to_seed",
    "item_key",
    "name_population",
    "all_sudoku_grids",
    "count_sudoku_solutions",
]
