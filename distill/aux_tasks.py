"""Train-only auxiliary tasks: short rows that each teach one mechanism the list tasks need (curriculum aids).

The reference run learned to find list items by position but never to read a last name (docs/reference_model.md,
sessions 5–7), and a fresh model trained on the real copy task alone stayed on the "marginal names" plateau for
2,000 steps, while the synthetic copy probe of the same shape (rows of ~40 tokens, no instruction text) copied
within ~1,500. These tasks keep the real vocabulary, names and list format but drop the instruction text, so a
row is as short as the probe's:

* ``copy_bare``: the prompt is just a list of 3–6 full names, the answer is the same list;
* ``copy_framed``: the same list between 0–3 lines before and 0–2 after, each a line of the copy task's own
  instructions or a shuffle of their words. A model trained on ``copy_bare`` alone learned a copy tied to the list's
  place in the row: any line before or after it took accuracy on the copied names from ~80 % to ~1 % (session 8,
  docs/reference_model.md); varying the frame leaves finding the list by its content as the only way;
* ``copy_confusable`` (session 12): ``copy_framed`` rows whose names all have one of the 25 last names the model
  confused with each other (:data:`CONFUSABLE_LAST_NAMES`; mined from the step-26,200 model, hard-example
  style), so the confused pairs meet in the same list;
* ``insert_bare`` / ``replace_bare`` (session 11): the insert or replace task's own instruction line (with the new
  name in quotes; half of the rows say "at position I", half "at a random position") and the list, nothing else.
  At step 21,629 the reference model copied the input list in every insert/replace answer and never wrote the new
  name (``python -m distill.monitor``'s ``novel_acc``: 0 %); these short rows make the quoted name the only
  source of the missing slot; ``insert_short`` / ``replace_short`` are the same with 1–2 names, where the new
  name is half or all of the answer, so copying the list cannot hide its loss (the 3–6-name rows did not move
  ``novel_acc`` in their first 1,000 steps);
* ``sort_bare`` (session 11): the sort task's first instruction line and a list of 2–6 names, the answer the
  plain string sort (the benchmark's semantics: by first name, although the line says "by last name"); two-name
  lists make the comparison itself a whole row;
* ``sort_first`` (session 12): the same line with 2–6 first names only (one token each). ``sort_bare`` rows got
  the first names of the answer in order on 35 % of the slots after 3,000 steps (``distill.monitor``, t = 1), so
  the model had not learned the order of the 92 first names, which it sees only as opaque word tokens; these rows
  ask for that order and nothing else (no last name to bind);
* ``bind`` (session 12): the shuffle task's instruction line and 3–6 names; the answer is a random order of them
  whose first names are given (:attr:`~distill.data.Example.unmasked`: never masked, no loss), so every loss slot
  is a last name that only the first name just before it identifies. With the answer's first names visible the
  step-26,200 model got 94 % of the last names on copy and 88 % on reverse (found by position) but 19 % on sort
  and shuffle: it had no "find this first name in the list, read the next word" step, which every task whose
  order is not a fixed function of position needs;
* ``copy_short`` / ``bind_short`` (session 13): ``copy_bare`` with 1–2 names and ``bind`` with 2–3, for runs from
  scratch: the shortest rows in which a name must be copied or bound (they did not leave the marginal-names plateau
  within 1,750 steps either; docs/reference_model.md, session 13);
* ``latin_fill`` / ``sudoku_fill`` (session 16): a real train item of the puzzle (one-shot prompt, the train
  split's answer) whose answer cells are all given (:attr:`~distill.data.Example.unmasked`) except 1–6, so every
  loss slot is an exclusion step: the symbol its row or column (and, for Sudoku, its box) lacks. At step 10,908
  the model filled such open Latin cells with the right symbol 58 % of the time (``python -m distill.monitor
  --aux latin_fill --t 1.0``; Sudoku's 98 %), though it never wrote a symbol outside the item's four: the plain
  objective spends most of a Latin row's loss on cells that any of the four symbols could fill;
* ``latin_row_fill`` (session 16): ``latin_fill`` rows whose open cells are a whole row plus 0–2 others. All 41
  Latin squares the step-14,000 model got wrong on the test split had valid rows and a repeated symbol in a
  column; a cell of a wholly open row can only be read off its column; ``latin_col_fill`` (session 17) opens a
  whole column instead (row exclusion: five of the step-16,300 model's nine Latin misses repeat a symbol in a row);
  in the shipped recipe since session 18;
* ``sort_prefix`` (session 17): ``sort_bare`` rows of 3–6 full names, 2 or more of whose first names share their
  initial. All 6 sort errors of the step-14,000 model on the test split swapped two such names (Stephen before
  Sean, Carol before Carl);
* ``lookup``: :mod:`distill.lookup` with its instructions (last names found by first name);
* ``lookup_bare``: the same lookup with only the two lists in the prompt.

Answers are padded with end-of-text to the list tasks' 32-slot canvas (``copy_bare``) or the lookup's 16.
``dllm train --aux-tasks "copy_bare=0.6,lookup_bare=0.2"`` replaces those fractions of the rows; none is ever
evaluated.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

from .data import Example, encode_text_example, list_opener_ids, name_positions
from .lookup import GEN_LENGTH as LOOKUP_GEN_LENGTH
from .lookup import lookup_example, lookup_item

COPY_GEN_LENGTH = 32  # the list tasks' canvas


def copy_bare_item(rng: random.Random, min_people: int = 3, max_people: int = 6,
                   population: tuple[str, ...] | None = None) -> tuple[str, str]:
    """``(prompt_text, answer_text)``: a JSON list of full names (from ``population``, default all of the
    benchmark's), and the same list."""
    from bench.tasks.generators import sample_names, name_population

    people = json.dumps(sample_names(rng, population or name_population(), rng.randint(min_people, max_people)))
    return people + "\n", people


# Lines of the copy task's prompt and of the lookup's: all say "copy this list", so a frame never contradicts the
# answer, and every word is in the reference tokenizer's vocabulary.
_FRAME_LINES = (
    "You are managing a waiting line at a customer service desk.",
    "You need to record the following people in the order they arrived:",
    "The following people are in the waiting line:",
    "Please copy the list exactly and provide only the final list.",
    "Please provide only the final list.",
)
# The word tokenizer knows a word after a space or at a line start only where the task text has it there.
_FRAME_FIRST_WORDS = tuple(sorted({line.split()[0] for line in _FRAME_LINES}))
_FRAME_WORDS = tuple(sorted({w for line in _FRAME_LINES for w in line.rstrip(".:").split()[1:]}))


def _frame_line(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_FRAME_LINES)
    words = [rng.choice(_FRAME_WORDS) for _ in range(rng.randint(1, 11))]
    return " ".join([rng.choice(_FRAME_FIRST_WORDS), *words])


def copy_framed_item(rng: random.Random, population: tuple[str, ...] | None = None) -> tuple[str, str]:
    """``(prompt_text, answer_text)``: :func:`copy_bare_item`'s list with 0–3 frame lines before it and 0–2 after."""
    people, answer = copy_bare_item(rng, population=population)
    before = "".join(_frame_line(rng) + "\n" for _ in range(rng.randint(0, 3)))
    after = "".join(_frame_line(rng) + "\n" for _ in range(rng.randint(0, 2)))
    return before + people + after, answer


# The last names the step-26,200 reference model copied wrongly, mostly as each other (Harris <-> Rogers,
# Morris <-> Jenkins, Simpson <-> Peterson, Payne -> Walker, Black -> Boyd, ...): the 24 below 95 % in
# `python -m distill.name_confusions --model <that model> --rows 2560` plus Boyd (92 % in a first run; Black's sink);
# the other 165 are at >= 98 % (session 12, docs/reference_model.md). Lists drawn from them alone put the confused
# pairs side by side.
CONFUSABLE_LAST_NAMES = (
    "Lewis", "Freeman", "Simpson", "Black", "Hughes", "Morris", "Taylor", "Walsh", "Wagner", "Tran", "Nguyen",
    "Payne", "Rogers", "Harris", "Burke", "Russell", "Jenkins", "Burns", "Kim", "Peterson", "Fisher", "Davis",
    "Walker", "Johnston", "Boyd",
)


@lru_cache(maxsize=None)
def confusable_population() -> tuple[str, ...]:
    """The benchmark's full names whose last name is in :data:`CONFUSABLE_LAST_NAMES`."""
    from bench.tasks.generators import name_population

    return tuple(n for n in name_population() if n.split(" ", 1)[1] in CONFUSABLE_LAST_NAMES)


def _instruction_line(task: str) -> str:
    """The instruction line (second prompt line, placeholders kept) of a waiting-line task's config template."""
    from bench.tasks.registry import get_task

    return get_task(task).prompt.splitlines()[1]


def edit_bare_item(kind: str, rng: random.Random, min_people: int = 3, max_people: int = 6) -> tuple[str, str]:
    """``(prompt_text, answer_text)`` for ``kind`` ``"insert"`` or ``"replace"``: the task's instruction line with a
    new name (first and last name both unused in the list) and a list of ``min_people``–``max_people`` names; the
    answer inserts it at, or replaces the name at, the stated (or, for the random-position line, a drawn) 0-based
    index."""
    from bench.tasks.generators import list_to_str, name_population, sample_names

    n = rng.randint(min_people, max_people)
    *people, word = sample_names(rng, name_population(), n + 1)
    index = rng.randint(0, n) if kind == "insert" else rng.randint(0, n - 1)
    at_random = rng.random() < 0.5
    line = _instruction_line(f"waiting_line/{kind}_{'random' if at_random else 'index'}").format(word=word, index=index)
    target = people[:index] + [word] + people[index + (kind == "replace"):]
    return f"{line}\n{list_to_str(people)}\n", list_to_str(target)


def sort_bare_item(rng: random.Random) -> tuple[str, str]:
    """``(prompt_text, answer_text)``: the sort task's instruction line and 2–6 names; the answer is ``sorted``."""
    from bench.tasks.generators import list_to_str, name_population, sample_names

    people = sample_names(rng, name_population(), rng.randint(2, 6))
    return f"{_instruction_line('waiting_line/sort')}\n{list_to_str(people)}\n", list_to_str(sorted(people))


def sort_first_item(rng: random.Random) -> tuple[str, str]:
    """``(prompt_text, answer_text)``: the sort task's instruction line and 2–6 distinct first names, sorted."""
    from bench.tasks.generators import list_to_str, name_population, sample_names

    firsts = [name.split(" ", 1)[0] for name in sample_names(rng, name_population(), rng.randint(2, 6))]
    return f"{_instruction_line('waiting_line/sort')}\n{list_to_str(firsts)}\n", list_to_str(sorted(firsts))


@lru_cache(maxsize=None)
def _distinct_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (first, last) names of the benchmark, each sorted and without repeats (the released last names repeat
    two)."""
    from bench.tasks.generators import load_names

    firsts, lasts = load_names()
    return tuple(sorted(set(firsts))), tuple(sorted(set(lasts)))


@lru_cache(maxsize=None)
def _first_names_by_initial() -> dict[str, tuple[str, ...]]:
    """First names grouped by their first letter, groups of two or more only (``{"S": ("Sarah", ...), ...}``)."""
    from bench.tasks.generators import load_names

    groups: dict[str, list[str]] = {}
    for first in load_names()[0]:
        groups.setdefault(first[0], []).append(first)
    return {k: tuple(v) for k, v in sorted(groups.items()) if len(v) >= 2}


def sort_prefix_item(rng: random.Random) -> tuple[str, str]:
    """``(prompt_text, answer_text)``: the sort task's line and 3–6 full names, 2 or more of whose first names share
    their first letter (Sean / Stephen, Carl / Carol), in random order; the answer is ``sorted``.

    Every sort error of the step-14,000 model on the test split ordered two such names (session 17); in the
    benchmark's random lists a same-initial pair decides the order in only a few rows of each batch."""
    from bench.tasks.generators import list_to_str

    groups = _first_names_by_initial()
    initial = rng.choice(sorted(groups))
    n = rng.randint(3, 6)
    shared = rng.sample(groups[initial], rng.randint(2, min(n, len(groups[initial]))))
    firsts_all, lasts_all = _distinct_names()
    firsts = shared + rng.sample([f for f in firsts_all if f not in shared], n - len(shared))
    lasts = rng.sample(lasts_all, n)
    people = [f"{a} {b}" for a, b in zip(firsts, lasts)]
    rng.shuffle(people)
    return f"{_instruction_line('waiting_line/sort')}\n{list_to_str(people)}\n", list_to_str(sorted(people))


def bind_item(rng: random.Random, min_people: int = 3, max_people: int = 6) -> tuple[str, str]:
    """``(prompt_text, answer_text)``: the shuffle task's instruction line and ``min_people``–``max_people`` names,
    and a random order of them."""
    from bench.tasks.generators import list_to_str, name_population, sample_names

    people = sample_names(rng, name_population(), rng.randint(min_people, max_people))
    return f"{_instruction_line('waiting_line/shuffle')}\n{list_to_str(people)}\n", list_to_str(
        rng.sample(people, len(people)))


def bind_example(tokenizer, rng: random.Random, min_people: int = 3, max_people: int = 6,
                 task: str = "aux/bind") -> Example:
    """A :func:`bind_item` row whose answer first names (the slot after each ``["`` / ``Ġ"`` list opener) are
    :attr:`~distill.data.Example.unmasked`.

    Raises:
        ValueError: the tokenizer has no single token for the list openers (not the word-level tokenizer).
    """
    openers = list_opener_ids(tokenizer, required_by="aux/bind")
    ex = encode_text_example(tokenizer, task, *bind_item(rng, min_people, max_people), COPY_GEN_LENGTH)
    return replace(ex, unmasked=tuple(first for first, _ in name_positions(ex.answer_ids, openers)))


#: The puzzles whose ``<name>_fill`` rows :func:`puzzle_fill_example` makes, by benchmark task.
PUZZLE_FILL_TASKS = {"latin_fill": "puzzle/latin_square_n4", "sudoku_fill": "puzzle/sudoku_n4_12",
                     "latin_row_fill": "puzzle/latin_square_n4", "latin_col_fill": "puzzle/latin_square_n4"}


def puzzle_cell_slots(tokenizer, answer_ids) -> list[int]:
    """The answer slots of a puzzle answer that hold a cell: content tokens (before the first end-of-text) other
    than the ``,`` and line-break separators."""
    separators = {tokenizer.convert_tokens_to_ids(t) for t in (",", "\u010a")}
    slots = []
    for i, tok in enumerate(answer_ids):
        if tok == tokenizer.eos_token_id:
            break
        if tok not in separators:
            slots.append(i)
    return slots


def puzzle_fill_example(tokenizer, rng: random.Random, aux_name: str, min_open: int = 1,
                        max_open: int = 6, whole_row: bool = False, whole_column: bool = False) -> Example:
    """A train item of the puzzle :data:`PUZZLE_FILL_TASKS` maps ``aux_name`` to, encoded as the benchmark row,
    with every answer slot given except ``min_open``–``max_open`` random cells (task ``"aux/<aux_name>"``).

    ``whole_row``: the open cells are one whole row of the 4×4 grid plus ``min_open``–``max_open`` random others,
    so each cell of that row is fixed by its column alone (the column exclusion the step-14,000 model lacked);
    ``whole_column`` the same with one whole column (each of its cells fixed by its row alone)."""
    if whole_row and whole_column:
        raise ValueError("puzzle_fill_example: whole_row and whole_column are exclusive; pick one.")
    from bench.tasks.registry import get_task
    from bench.tasks.splits import iter_train_items

    from .data import encode_example

    task = PUZZLE_FILL_TASKS[aux_name]
    item = next(iter_train_items([task], seed=rng.getrandbits(32)))
    ex = encode_example(tokenizer, f"aux/{aux_name}", item.messages, item.target_text, get_task(task).max_tokens)
    cells = puzzle_cell_slots(tokenizer, ex.answer_ids)
    if whole_row or whole_column:
        line = rng.randrange(4)  # the grid is row-major: cell i is at row i // 4, column i % 4
        in_line = (lambda i: i // 4 == line) if whole_row else (lambda i: i % 4 == line)
        others = [c for i, c in enumerate(cells) if not in_line(i)]
        open_cells = ({c for i, c in enumerate(cells) if in_line(i)}
                      | set(rng.sample(others, rng.randint(min_open, max_open))))
    else:
        open_cells = set(rng.sample(cells, min(len(cells), rng.randint(min_open, max_open))))
    return replace(ex, unmasked=tuple(i for i in range(len(ex.answer_ids)) if i not in open_cells))


@dataclass(frozen=True)
class TextAuxTask:
    """An aux task whose rows are plain text: ``item(rng)`` draws ``(prompt_text, answer_text)``, ``encode`` turns
    that into the train :class:`Example` (task ``"aux/NAME"``, ``gen_length`` answer slots); calling it does both."""

    name: str
    item: Callable[[random.Random], tuple[str, str]]
    gen_length: int

    def encode(self, tokenizer, prompt: str, answer: str) -> Example:
        return encode_text_example(tokenizer, f"aux/{self.name}", prompt, answer, self.gen_length)

    def __call__(self, tokenizer, rng: random.Random) -> Example:
        return self.encode(tokenizer, *self.item(rng))


AUX_TASKS: dict[str, Callable[..., Example]] = {
    "copy_bare": TextAuxTask("copy_bare", copy_bare_item, COPY_GEN_LENGTH),
    "copy_framed": TextAuxTask("copy_framed", copy_framed_item, COPY_GEN_LENGTH),
    "copy_confusable": TextAuxTask("copy_confusable", lambda rng: copy_framed_item(rng, confusable_population()),
                                   COPY_GEN_LENGTH),
    "insert_bare": TextAuxTask("insert_bare", lambda rng: edit_bare_item("insert", rng), COPY_GEN_LENGTH),
    "replace_bare": TextAuxTask("replace_bare", lambda rng: edit_bare_item("replace", rng), COPY_GEN_LENGTH),
    "insert_short": TextAuxTask("insert_short", lambda rng: edit_bare_item("insert", rng, 1, 2), COPY_GEN_LENGTH),
    "replace_short": TextAuxTask("replace_short", lambda rng: edit_bare_item("replace", rng, 1, 2), COPY_GEN_LENGTH),
    "sort_bare": TextAuxTask("sort_bare", sort_bare_item, COPY_GEN_LENGTH),
    "sort_first": TextAuxTask("sort_first", sort_first_item, COPY_GEN_LENGTH),
    "sort_prefix": TextAuxTask("sort_prefix", sort_prefix_item, COPY_GEN_LENGTH),
    "copy_short": TextAuxTask("copy_short", lambda rng: copy_bare_item(rng, 1, 2), COPY_GEN_LENGTH),
    "bind": bind_example,
    "bind_short": lambda tokenizer, rng: bind_example(tokenizer, rng, 2, 3, task="aux/bind_short"),
    "lookup": lookup_example,
    "latin_fill": lambda tokenizer, rng: puzzle_fill_example(tokenizer, rng, "latin_fill"),
    "sudoku_fill": lambda tokenizer, rng: puzzle_fill_example(tokenizer, rng, "sudoku_fill"),
    "latin_row_fill": lambda tokenizer, rng: puzzle_fill_example(tokenizer, rng, "latin_row_fill", 0, 2,
                                                                 whole_row=True),
    "latin_col_fill": lambda tokenizer, rng: puzzle_fill_example(tokenizer, rng, "latin_col_fill", 0, 2,
                                                                 whole_column=True),
    "lookup_bare": TextAuxTask("lookup_bare", lambda rng: lookup_item(rng, bare=True), LOOKUP_GEN_LENGTH),
}


def parse_aux_fractions(spec: str) -> dict[str, float]:
    """``{"copy_bare": 0.6, ...}`` from ``"NAME=FRACTION,..."`` (``{}`` for ``""``).

    Raises:
        ValueError: a malformed entry, an unknown task name, a fraction outside [0, 1], a repeated name, or
            fractions that add up to more than 1; the message names the entry (or the spec).
    """
    from .reference import parse_spec_entry

    out: dict[str, float] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, fraction = parse_spec_entry(entry, "aux_tasks", "NAME", "fraction")
        name = name.strip()
        if name not in AUX_TASKS:
            raise ValueError(f"aux_tasks entry {entry!r}: unknown task {name!r}; known: {sorted(AUX_TASKS)}")
        if name in out:
            raise ValueError(f"aux_tasks entry {entry!r}: {name!r} is given twice")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"aux_tasks entry {entry!r}: fraction must be in [0, 1]")
        out[name] = fraction
    if sum(out.values()) > 1.0 + 1e-9:
        raise ValueError(f"aux_tasks {spec!r}: fractions add up to {sum(out.values()):g} > 1")
    return out


def pick_aux_task(fractions: dict[str, float], u: float) -> str | None:
    """The aux task a row with uniform draw ``u`` in [0, 1) becomes, or ``None`` (the row stays a real task)."""
    edge = 0.0
    for name, fraction in fractions.items():
        edge += fraction
        if u < edge:
            return name
    return None
