"""Splits of the generated tasks: ``test`` (the configs' seeds), ``validation`` and an unbounded ``train``.

* **test**: ``random.Random(config seed)``; items are drawn and kept by length bucket (25 per length for
  n = 3..6, then ordered by length), then the one-shot stream of ``num_samples`` items follows on the same
  RNG; the i-th shot belongs to the i-th item (§2.3, §2.4). Identical inputs are kept once.
* **validation**: the same procedure with seed ``str_to_seed(seed_name, 7)``; an item whose ``(task, input)``
  key is in the test split is skipped before it counts, so the split keeps its full size.
* **train**: seed ``str_to_seed(seed_name, 123)`` (ParallelBench's train offset) or derived from a user seed;
  an unbounded stream without bucketing (lengths uniform in [min, max]); each item's shots are the next
  items of the same stream; items whose key is in the test or validation split (or in ``exclude``) are
  skipped.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from functools import lru_cache
from typing import Iterable, Iterator, Optional, Sequence, Union

from .core import TaskItem, TaskSpec, answer_text, build_messages, item_key, str_to_seed
from .generators import raw_item_stream
from .registry import get_task, select_tasks

__all__ = ["SPLITS", "split_seed", "generate", "load_task", "iter_train_items", "reserved_keys"]

SPLITS = ("train", "validation", "test")
_SEED_OFFSETS = {"validation": 7, "train": 123}


def split_seed(task: Union[str, TaskSpec], split: str) -> int:
    """The default seed of a split: the config seed for ``test``, ``str_to_seed(seed_name, 7 | 123)`` else.

    Raises:
        ValueError: unknown split, or a test seed is requested for a task without one.
    """
    spec = get_task(task)
    if split == "test":
        if spec.seed is None:
            raise ValueError(f"Task {spec.name!r} has no test seed (its data must be loaded from files).")
        return spec.seed
    if split not in _SEED_OFFSETS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    return str_to_seed(spec.seed_name or spec.short_name, _SEED_OFFSETS[split])


def _make_item(spec: TaskSpec, index: int, raw: dict, shots: list, split: str) -> TaskItem:
    return TaskItem(
        task=spec.name,
        index=index,
        input=raw["input"],
        reference=raw["answer"],
        messages=build_messages(spec.prompt, raw["input"], shots),
        target_text=answer_text(raw["answer"]),
        metric=spec.metric,
        shots=shots,
        metadata=raw["metadata"],
        output_format=raw.get("output_format"),
        split=split,
    )


def _fixed_split(spec: TaskSpec, seed: int, exclude: frozenset) -> tuple[list[dict], list[list[dict]]]:
    """Raw items and per-item shots of a test-style split (bucketed stream, then the shot streams)."""
    rng = random.Random(seed)
    seen = set(exclude)

    def fresh() -> Iterator[dict]:
        for raw in raw_item_stream(spec, rng):
            key = item_key(spec.name, raw["input"])
            if key not in seen:
                seen.add(key)
                yield raw

    n = spec.num_samples
    if spec.samples_per_length:
        per = spec.samples_per_length
        if n % per:
            raise ValueError(f"num_samples ({n}) must be divisible by samples_per_length ({per}).")
        buckets: dict[int, list[dict]] = {}
        for raw in fresh():
            bucket = buckets.setdefault(raw["metadata"]["length"], [])
            if len(bucket) < per:
                bucket.append(raw)
            # Stop once n / per buckets are full; partially filled buckets are discarded.
            if sum(len(b) == per for b in buckets.values()) == n // per:
                break
        items = [raw for length in sorted(buckets) if len(buckets[length]) == per for raw in buckets[length]]
    else:
        items = list(itertools.islice(fresh(), n))
    # One shot stream of n items per shot, drawn from the same RNG after the test items (§2.4).
    shot_streams = [list(itertools.islice(raw_item_stream(spec, rng), n)) for _ in range(spec.shots)]
    shots = [[stream[i] for stream in shot_streams] for i in range(n)]
    return items, shots


def reserved_keys(task: Union[str, TaskSpec], split: str = "validation") -> frozenset:
    """Keys held out from later splits: ``test`` → the test keys; ``validation`` → test ∪ validation keys.

    Computed once per task and split (default seeds) and cached.
    """
    if split not in ("test", "validation"):
        raise ValueError(f"reserved_keys needs split 'test' or 'validation', got {split!r}.")
    return _reserved_keys(get_task(task).name, split)


@lru_cache(maxsize=None)
def _reserved_keys(name: str, split: str) -> frozenset:
    spec = get_task(name)
    if split == "test":
        items, _ = _fixed_split(spec, split_seed(spec, "test"), frozenset())
        return frozenset(item_key(spec.name, raw["input"]) for raw in items)
    test = _reserved_keys(name, "test")
    items, _ = _fixed_split(spec, split_seed(spec, "validation"), test)
    return test | frozenset(item_key(spec.name, raw["input"]) for raw in items)


def _train_stream(
    spec: TaskSpec,
    seed: int,
    exclude: frozenset,
    shots: int,
    min_length: Optional[int],
    max_length: Optional[int],
) -> Iterator[TaskItem]:
    rng = random.Random(seed)
    stream = raw_item_stream(spec, rng, min_length, max_length)
    name = spec.name
    for index in itertools.count():
        while True:
            raw = next(stream)
            if item_key(name, raw["input"]) not in exclude:
                break
        yield _make_item(spec, index, raw, [next(stream) for _ in range(shots)], "train")


def _train_seed(spec: TaskSpec, seed: Optional[int]) -> int:
    if seed is None:
        return split_seed(spec, "train")
    digest = hashlib.sha256(f"{spec.seed_name or spec.short_name}:train:{seed}".encode()).hexdigest()
    return int(digest, 16)


def _exclude_keys(spec: TaskSpec, exclude: Iterable) -> frozenset:
    extra = {x.key if isinstance(x, TaskItem) else tuple(x) for x in exclude}
    return reserved_keys(spec.name, "validation") | frozenset(extra)


def generate(
    task: Union[str, TaskSpec],
    split: str = "test",
    n: Optional[int] = None,
    seed: Optional[int] = None,
    *,
    shots: Optional[int] = None,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
    exclude: Iterable = (),
) -> list[TaskItem]:
    """Generate items of an offline task.

    Args:
        task: name, alias or spec.
        split: ``"test"``, ``"validation"`` or ``"train"``.
        n: number of items. For test/validation at most ``num_samples`` (the first ``n``); for train any
            number (default ``num_samples``).
        seed: override the split's default seed. Held-out keys are always those of the default splits.
        shots: train only: shots per item (default the task's ``shots``).
        min_length, max_length: train only: Waiting-Line list-length range (default the task's, 3..6).
        exclude: train only: extra items (TaskItem) or keys to keep out, e.g. released test items.

    Raises:
        ValueError: unknown split, a task without generator, ``n`` beyond a fixed split, or train-only
            arguments on a fixed split.
    """
    spec = get_task(task)
    if not spec.offline:
        raise ValueError(
            f"Task {spec.name!r} has no generator; load its ParallelBench files with "
            f"load_task({spec.name!r}, data_dir=...)."
        )
    if split == "train":
        count = spec.num_samples if n is None else n
        stream = _train_stream(
            spec,
            _train_seed(spec, seed),
            _exclude_keys(spec, exclude),
            spec.shots if shots is None else shots,
            min_length,
            max_length,
        )
        return list(itertools.islice(stream, count))
    if split not in ("test", "validation"):
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if shots is not None or min_length is not None or max_length is not None or tuple(exclude):
        raise ValueError("shots, min_length, max_length and exclude apply to split='train' only.")
    if n is not None and not 0 <= n <= spec.num_samples:
        raise ValueError(
            f"The {split} split of {spec.name!r} has {spec.num_samples} items, got n={n}; use split='train' "
            "for more."
        )
    exclude_keys = frozenset() if split == "test" else reserved_keys(spec.name, "test")
    items, shot_lists = _fixed_split(spec, split_seed(spec, split) if seed is None else seed, exclude_keys)
    count = len(items) if n is None else n
    return [_make_item(spec, i, items[i], shot_lists[i], split) for i in range(count)]


def load_task(
    name: Union[str, TaskSpec],
    split: str = "test",
    limit: Optional[int] = None,
    data_dir=None,
) -> list[TaskItem]:
    """Items of a task: generated (the 12 offline tasks) or read from ParallelBench files.

    Args:
        name: task name or alias.
        split: split to generate (ignored with ``data_dir``, whose files define the items).
        limit: keep the first ``limit`` items.
        data_dir: a ParallelBench folder (``.../output/test`` or one of its group folders) holding
            ``task_config.yaml`` and ``<task>.jsonl``; required for the text-writing tasks.

    Raises:
        ValueError: a text-writing task without ``data_dir``.
    """
    spec = get_task(name)
    if data_dir is not None:
        from .parallelbench_io import load_parallelbench_task

        items = load_parallelbench_task(data_dir, spec.name)
    elif spec.offline:
        items = generate(spec, split, n=None if limit is None else min(limit, spec.num_samples))
    else:
        raise ValueError(
            f"Task {spec.name!r} needs ParallelBench's data (no downloads here): pass data_dir= pointing at "
            f"the folder with task_config.yaml and {spec.short_name}.jsonl (e.g. "
            f"dataset/parallel_bench/data/output/test/{spec.group} of furiosa-ai/ParallelBench)."
        )
    return items if limit is None else items[:limit]


def iter_train_items(
    task_names: Union[str, Sequence[str]],
    seed: Optional[int] = None,
    *,
    weights: Optional[Sequence[float]] = None,
    shots: Optional[int] = None,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
    exclude: Iterable = (),
) -> Iterator[TaskItem]:
    """Unbounded stream of train items over one or more offline tasks (globs allowed).

    Each task has its own RNG stream (so adding a task does not change another's items); a separate RNG
    seeded by ``seed`` picks the task of each next item, uniformly or by ``weights``. Items never share a
    ``(task, input)`` key with the test or validation split, nor with ``exclude``.

    Example:
        >>> it = iter_train_items(["waiting_line/*"], seed=0)
        >>> next(it).task.startswith("waiting_line/")
        True
    """
    names = select_tasks(task_names)
    specs = [get_task(n) for n in names]
    offline = [s for s in specs if s.offline]
    if len(offline) != len(specs):
        missing = [s.name for s in specs if not s.offline]
        raise ValueError(f"No generator for {missing}; train streams exist only for {select_tasks('offline')}.")
    if weights is not None and len(weights) != len(specs):
        raise ValueError(f"Need one weight per task ({len(specs)}), got {len(weights)}.")
    exclude = list(exclude)
    streams = [
        _train_stream(
            s,
            _train_seed(s, seed),
            _exclude_keys(s, [x for x in exclude if (x.task if isinstance(x, TaskItem) else x[0]) == s.name]),
            s.shots if shots is None else shots,
            min_length,
            max_length,
        )
        for s in specs
    ]
    if len(streams) == 1:
        yield from streams[0]
        return
    picker = random.Random(f"task-mixture:{seed}")
    population = range(len(streams))
    while True:
        k = picker.choices(population, weights=weights)[0]
        yield next(streams[k])
