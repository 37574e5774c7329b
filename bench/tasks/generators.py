"""Item generators for the Waiting-Line lists and the two puzzles (spec §2).

Each generator is an infinite stream of *raw items* in ParallelBench's JSONL shape,
``{"input": {...}, "answer": ..., "metadata": {...}, "output_format": ...}``, drawing every random choice
from one ``random.Random``. Per item, the draw order follows v1: list length ``n = randint(min, max)``,
``sample(population, n)``, then the operation's own draws (new name, then position; or the reshuffles).

Deliberate differences from the v1 generator (documented in ``bench/tasks/__init__.py``):

* A sampled list whose first names or last names repeat is rejected and re-sampled with the same ``n``
  (the invariant of the released data, §2.6). The result is statistically equivalent to the released files,
  not byte-identical (the v1 generator does not reproduce them either).
* The new name for insert/replace consumes the RNG exactly like v1's ``choice(list_difference(...))`` but is
  found without building the 17k-name difference list (so list items match v1 until the first rejection).
* Sudoku: the 108 released puzzles come from the Dream authors' data; here a solution is drawn uniformly
  from the 288 4x4 grids and 4 blanks are drawn until the puzzle has a unique solution.
"""

from __future__ import annotations

import itertools
import random
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional

import yaml

from .core import TaskSpec, grid_to_str, latin_square_to_str, list_to_str, symbols_to_str

__all__ = [
    "DATA_DIR",
    "load_names",
    "name_population",
    "raw_item_stream",
    "all_sudoku_grids",
    "count_sudoku_solutions",
    "generate_latin_square",
    "LATIN_SYMBOLS",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MASK = "[MASK]"
#: Latin-square symbol alphabet: A–Z then 0–9 (v1 ``ALPHABET_CHARS + digits``).
LATIN_SYMBOLS = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [str(d) for d in range(10)]


@lru_cache(maxsize=None)
def load_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (first names, last names) of ``first_last_names.yaml`` (92 and 192, duplicates kept)."""
    with open(DATA_DIR / "first_last_names.yaml") as f:
        first, last = yaml.safe_load(f)
    return tuple(first), tuple(last)


@lru_cache(maxsize=None)
def name_population() -> tuple[str, ...]:
    """Full names, first-major Cartesian product: 17,664 strings including 184 repeats (§2.1)."""
    first, last = load_names()
    return tuple(f"{a} {b}" for a, b in itertools.product(first, last))


# ---------------------------------------------------------------------------------------------------------
# Waiting line
# ---------------------------------------------------------------------------------------------------------


def sample_names(rng: random.Random, population: tuple[str, ...], n: int) -> list[str]:
    """``rng.sample(population, n)``, re-drawn until first and last names are each pairwise distinct."""
    while True:
        names = rng.sample(population, n)
        parts = [x.split(" ", 1) for x in names]
        if len({p[0] for p in parts}) == n and len({p[1] for p in parts}) == n:
            return names


@lru_cache(maxsize=None)
def _positions() -> dict[str, tuple[int, ...]]:
    """Full name -> its indices in the population (two indices for the "Price"/"West" repeats)."""
    out: dict[str, list[int]] = {}
    for i, name in enumerate(name_population()):
        out.setdefault(name, []).append(i)
    return {k: tuple(v) for k, v in out.items()}


def _new_name(rng: random.Random, population: tuple[str, ...], current: list[str]) -> str:
    """v1's ``rng.choice(list_difference(population, current))`` in O(len(current)).

    The same single RNG draw picks the k-th population entry that is not in ``current``; the entry is found
    by skipping the excluded population indices, without building the 17k-name difference list.
    """
    positions = _positions()
    excluded = sorted(i for name in set(current) for i in positions.get(name, ()))
    k = rng.choice(range(len(population) - len(excluded)))
    for i in excluded:  # ascending: each excluded index at or before k shifts the target right
        if i <= k:
            k += 1
        else:
            break
    return population[k]


def _shuffle_different(rng: random.Random, names: list[str]) -> list[str]:
    """Reshuffle a copy until it differs from ``names`` (v1 ``_shuffle``)."""
    out = names[:]
    while out == names:
        rng.shuffle(out)
    return out


def _last_first(name: str) -> tuple[str, str]:
    first, last = name.split(" ", 1)
    return last, first


def _list_item(kind: str, rng: random.Random, names: list[str], population, random_index: bool) -> dict[str, Any]:
    n = len(names)
    context = list_to_str(names)
    meta: dict[str, Any] = {"length": n}
    if kind in ("copy", "sort", "sort_last_name", "reverse"):
        target = {
            "copy": lambda: names,
            "sort": lambda: sorted(names),  # plain string sort = by FIRST name (spec §8.1)
            "sort_last_name": lambda: sorted(names, key=_last_first),
            "reverse": lambda: names[::-1],
        }[kind]()
        return {"input": {"context": context}, "answer": list_to_str(target), "metadata": meta, "target": target}
    if kind == "shuffle":
        target = _shuffle_different(rng, names)
        answer = {"input": names, "example": list_to_str(target)}
        return {"input": {"context": context}, "answer": answer, "metadata": meta, "target": target}
    if kind in ("insert", "replace"):
        word = _new_name(rng, population, names)
        index = rng.randint(0, n) if kind == "insert" else rng.randint(0, n - 1)
        target = names[:]
        if kind == "insert":
            target.insert(index, word)
        else:
            target[index] = word
        fields = {"context": context, "word": word}
        if random_index:
            answer = {"input": names, "word": word, "example": list_to_str(target)}
            meta.update(index=None, word=word)
        else:
            fields["index"] = index
            answer = list_to_str(target)
            meta.update(index=index, word=word)
        return {"input": fields, "answer": answer, "metadata": meta, "target": target}
    if kind == "remove":
        index = rng.randint(0, n - 1)
        target = names[:index] + names[index + 1 :]
        fields = {"context": context}
        if random_index:
            answer = {"input": names, "example": list_to_str(target)}
            meta.update(index=None)
        else:
            fields["index"] = index
            answer = list_to_str(target)
            meta.update(index=index)
        return {"input": fields, "answer": answer, "metadata": meta, "target": target}
    raise ValueError(f"Unknown waiting-line generator kind {kind!r}.")


def _waiting_line_stream(spec: TaskSpec, rng: random.Random, min_length: int, max_length: int) -> Iterator[dict]:
    population = name_population()
    kind = spec.kind
    random_index = bool(spec.random_index)
    while True:
        n = rng.randint(min_length, max_length)
        names = sample_names(rng, population, n)
        item = _list_item(kind, rng, names, population, random_index)
        target = item.pop("target")
        item["output_format"] = list_to_str([MASK] * len(target))
        yield item


# ---------------------------------------------------------------------------------------------------------
# Latin square
# ---------------------------------------------------------------------------------------------------------


def generate_latin_square(rng: random.Random, symbols: list[str]) -> list[list[str]]:
    """Cyclic shifts of ``symbols``, then rows shuffled, then columns shuffled (v1 recipe)."""
    size = len(symbols)
    square = [symbols[i:] + symbols[:i] for i in range(size)]
    rng.shuffle(square)
    columns = list(zip(*square))
    rng.shuffle(columns)
    return [list(row) for row in zip(*columns)]


def _latin_square_stream(spec: TaskSpec, rng: random.Random) -> Iterator[dict]:
    size = spec.size or 4
    while True:
        symbols = rng.sample(LATIN_SYMBOLS, size)
        square = generate_latin_square(rng, symbols)
        yield {
            "input": {"size": size, "symbols": symbols_to_str(symbols)},
            "answer": {"symbols": symbols, "example": latin_square_to_str(square)},
            "metadata": {"length": size},
        }


# ---------------------------------------------------------------------------------------------------------
# Sudoku 4x4
# ---------------------------------------------------------------------------------------------------------

# Peers of each cell of a 4x4 sudoku: same row, column or 2x2 box.
_PEERS = [
    frozenset(
        j
        for j in range(16)
        if j != i and (j // 4 == i // 4 or j % 4 == i % 4 or (j // 8 == i // 8 and (j % 4) // 2 == (i % 4) // 2))
    )
    for i in range(16)
]


def count_sudoku_solutions(cells: list[int], limit: int = 2) -> int:
    """Number of completions of a flat 16-cell 4x4 grid (0 = blank), counting up to ``limit``."""
    cells = list(cells)
    for i, v in enumerate(cells):
        if v and any(cells[j] == v for j in _PEERS[i]):
            return 0  # the givens already conflict
    blanks = [i for i, v in enumerate(cells) if v == 0]

    def solve(k: int) -> int:
        if k == len(blanks):
            return 1
        i = blanks[k]
        used = {cells[j] for j in _PEERS[i]}
        found = 0
        for v in (1, 2, 3, 4):
            if v not in used:
                cells[i] = v
                found += solve(k + 1)
                cells[i] = 0
                if found >= limit:
                    break
        return found

    return solve(0)


@lru_cache(maxsize=None)
def all_sudoku_grids() -> tuple[tuple[int, ...], ...]:
    """All 288 valid 4x4 sudoku grids (flat, row-major), in lexicographic order."""
    grids = []
    cells = [0] * 16

    def fill(i: int) -> None:
        if i == 16:
            grids.append(tuple(cells))
            return
        used = {cells[j] for j in _PEERS[i] if j < i}
        for v in (1, 2, 3, 4):
            if v not in used:
                cells[i] = v
                fill(i + 1)
        cells[i] = 0

    fill(0)
    return tuple(grids)


def _sudoku_stream(spec: TaskSpec, rng: random.Random, givens: int = 12) -> Iterator[dict]:
    grids = all_sudoku_grids()
    holes = 16 - givens
    while True:
        solution = rng.choice(grids)
        while True:
            blanks = rng.sample(range(16), holes)
            puzzle = [0 if i in blanks else v for i, v in enumerate(solution)]
            if count_sudoku_solutions(puzzle, limit=2) == 1:
                break
        yield {
            "input": {"sudoku": grid_to_str([puzzle[r * 4 : r * 4 + 4] for r in range(4)])},
            "answer": grid_to_str([solution[r * 4 : r * 4 + 4] for r in range(4)]),
            "metadata": {"length": 4, "num_holes": holes},
        }


# ---------------------------------------------------------------------------------------------------------


def raw_item_stream(
    spec: TaskSpec,
    rng: random.Random,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
) -> Iterator[dict]:
    """Infinite stream of raw items for a generated task.

    Args:
        spec: the task (``spec.kind`` selects the generator).
        rng: the only source of randomness.
        min_length, max_length: override the list-length range of Waiting-Line tasks.

    Raises:
        ValueError: the task has no generator.
    """
    if spec.kind == "latin_square":
        return _latin_square_stream(spec, rng)
    if spec.kind == "sudoku":
        return _sudoku_stream(spec, rng)
    if spec.kind in ("copy", "sort", "sort_last_name", "reverse", "shuffle", "insert", "remove", "replace"):
        lo = spec.min_length if min_length is None else min_length
        hi = spec.max_length if max_length is None else max_length
        n_first = len(set(load_names()[0]))
        if not (2 <= lo <= hi <= n_first):
            raise ValueError(f"Need 2 <= min_length <= max_length <= {n_first}, got {lo} and {hi}.")
        return _waiting_line_stream(spec, rng, lo, hi)
    raise ValueError(f"Task {spec.name!r} has no generator; load its data with bench.tasks.load_parallelbench.")
