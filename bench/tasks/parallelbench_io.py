"""Read and write ParallelBench's own data files (the v1 ``dataset/parallel_bench/data/output/<split>/`` layout).

Assumed layout and schema (inferred from the v1 generator and dataset class; the released files are the
ground truth, see ``bench/data/README.md``)::

    <root>/                         e.g. dataset/parallel_bench/data/output/test
      <group>/task_config.yaml      {"<group>/<task>": {prompt, metric, icl_example_count, seed, type, ...}}
      <group>/<task>.jsonl          one JSON object per line (pandas ``to_json(orient="records", lines=True)``)

Each line::

    {"input": {<prompt fields>,                        # context/word/index, size/symbols, sudoku, text, words
               "icl_examples": [{"input": {...}, "answer": ..., "metadata": {...}}, ...]},   # optional
     "answer": <str | dict>,                           # the scorer's reference (see bench.scorers)
     "output_format": "[\\"[MASK]\\", ...]",           # optional, infill template
     "metadata": {"length": n, ...}}                   # optional

Required, with a clear error naming file, line and field: a JSON object per line; ``input`` (an object)
holding every ``{field}`` of the task's prompt; ``answer`` with the fields its metric reads (e.g.
``answer.input`` and ``answer.word`` for ``list_random_insert_score``, a string for ``list_match_score`` and
``sudoku_score``); every one-shot example with ``input`` (the same prompt fields) and an ``answer`` that has a
text (a string, or a dict with ``example``).

Tolerated: ``label`` or ``output`` instead of ``answer``; ``icl_examples`` at the top level instead of
inside ``input``; missing ``metadata``/``output_format``; unknown keys (ignored); blank lines; W2S ``words``
given as a list (rendered ``"a, b, c, and d"`` in the prompt, kept as a list in ``input``); the task's file
named after the config key (``sudoku_n4_12.jsonl``) or after its ``name`` field (``sudoku_4x4_4.jsonl``); a
config without ``prompt``/``metric`` for a task this package knows.

:func:`export_parallelbench` writes this layout (``output_format`` for every list task, where v1 wrote it
for copy/shuffle/insert/replace only; the verbatim config entry for the tasks of ``bench/data``).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import yaml

from .core import TaskItem, answer_text, build_messages, render_word_list
from .registry import TASKS, get_task

__all__ = [
    "ParallelBenchFormatError",
    "load_parallelbench",
    "load_parallelbench_task",
    "export_parallelbench",
    "REQUIRED_ANSWER_FIELDS",
]

PathLike = Union[str, Path]

#: metric -> required answer fields (``None``: the answer must be a string).
REQUIRED_ANSWER_FIELDS: dict[str, Optional[tuple[str, ...]]] = {
    "list_match_score": None,
    "sudoku_score": None,
    "list_shuffle_score": ("input",),
    "list_random_insert_score": ("input", "word"),
    "list_random_remove_score": ("input",),
    "list_random_replace_score": ("input", "word"),
    "latin_square_score": ("symbols",),
    "sentence_to_words_score": ("words",),
    "summary_score": ("summary",),
    "paraphrase_score": ("text",),
}
_ANSWER_KEYS = ("answer", "label", "output")
_SPLIT_NAMES = ("train", "validation", "test")


class ParallelBenchFormatError(ValueError):
    """A ParallelBench data file or config is malformed (the message names the file, line and field)."""


def _prompt_fields(prompt: str) -> list[str]:
    """The top-level ``{field}`` names of a format string."""
    names = []
    for _, field, _, _ in string.Formatter().parse(prompt):
        if field:
            name = field.split(".", 1)[0].split("[", 1)[0]
            if name not in names:
                names.append(name)
    return names


def _group_dirs(root: Path) -> list[Path]:
    if (root / "task_config.yaml").is_file():
        return [root]
    dirs = sorted(p.parent for p in root.glob("*/task_config.yaml"))
    if not dirs:
        raise FileNotFoundError(f"No task_config.yaml in {root} or its subfolders.")
    return dirs


def _read_config(path: Path) -> dict:
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict) or not all(isinstance(v, dict) for v in cfg.values()):
        raise ParallelBenchFormatError(f"{path}: expected a mapping of task name -> settings.")
    return cfg


def _canonical(name: str) -> str:
    try:
        return get_task(name).name
    except KeyError:
        return name


def _task_file(group_dir: Path, key: str, cfg: Mapping[str, Any]) -> Optional[Path]:
    for name in (key, cfg.get("name")):
        if name:
            path = group_dir / f"{name.split('/', 1)[-1]}.jsonl"
            if path.is_file():
                return path
    return None


class _Context:
    """Where we are, for error messages."""

    def __init__(self, path: Path, task: str, metric: str):
        self.path, self.task, self.metric = path, task, metric
        self.line = 0

    def fail(self, what: str) -> ParallelBenchFormatError:
        return ParallelBenchFormatError(
            f"{self.path}:{self.line}: {what} (task {self.task!r}, metric {self.metric!r})."
        )


def _get_answer(obj: Mapping[str, Any], ctx: _Context, where: str) -> Any:
    for key in _ANSWER_KEYS:
        if key in obj and obj[key] is not None:
            return obj[key]
    raise ctx.fail(f"missing required field '{where}answer' (also accepted: 'label', 'output')")


def _check_input(fields: Any, prompt_fields: Sequence[str], ctx: _Context, where: str) -> None:
    if not isinstance(fields, Mapping):
        raise ctx.fail(f"missing required field '{where}input' (an object with the prompt fields)")
    for name in prompt_fields:
        if name not in fields or fields[name] is None:
            raise ctx.fail(f"missing required field '{where}input.{name}' (used by the prompt)")


def _check_answer(answer: Any, ctx: _Context, where: str) -> None:
    required = REQUIRED_ANSWER_FIELDS.get(ctx.metric, ())
    if required is None:
        if not isinstance(answer, str):
            raise ctx.fail(f"field '{where}answer' must be a string for this metric, got {type(answer).__name__}")
        return
    if not required:
        return
    if not isinstance(answer, Mapping):
        raise ctx.fail(f"field '{where}answer' must be an object with {list(required)}, got {type(answer).__name__}")
    for name in required:
        if name not in answer or answer[name] is None:
            raise ctx.fail(f"missing required field '{where}answer.{name}'")


def _render_fields(metric: str, fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Prompt fields as the template expects them (W2S word lists rendered as text)."""
    if metric == "sentence_to_words_score" and isinstance(fields.get("words"), (list, tuple)):
        return {**fields, "words": render_word_list(fields["words"])}
    return fields


def _parse_line(obj: Any, ctx: _Context, prompt_fields: Sequence[str]) -> tuple[dict, Any, list, dict, Any]:
    if not isinstance(obj, Mapping):
        raise ctx.fail(f"expected a JSON object, got {type(obj).__name__}")
    fields = obj.get("input")
    _check_input(fields, prompt_fields, ctx, "")
    fields = dict(fields)
    answer = _get_answer(obj, ctx, "")
    _check_answer(answer, ctx, "")
    raw_shots = fields.pop("icl_examples", None)
    if raw_shots is None:
        raw_shots = obj.get("icl_examples") or []
    if not isinstance(raw_shots, list):
        raise ctx.fail("field 'input.icl_examples' must be a list")
    shots = []
    for k, shot in enumerate(raw_shots):
        where = f"input.icl_examples[{k}]."
        if not isinstance(shot, Mapping):
            raise ctx.fail(f"field '{where[:-1]}' must be an object")
        _check_input(shot.get("input"), prompt_fields, ctx, where)
        shot_answer = _get_answer(shot, ctx, where)
        _check_answer(shot_answer, ctx, where)
        if answer_text(shot_answer) is None:
            raise ctx.fail(f"field '{where}answer' has no text (a string, or an object with 'example')")
        shots.append({**shot, "answer": shot_answer})
    metadata = obj.get("metadata") or {}
    return fields, answer, shots, dict(metadata), obj.get("output_format")


def _load_file(path: Path, task: str, cfg: Mapping[str, Any], split: str) -> list[TaskItem]:
    known = TASKS.get(task)
    prompt = cfg.get("prompt") or (known.prompt if known else None)
    metric = cfg.get("metric") or (known.metric if known else None)
    if prompt is None or metric is None:
        missing = "prompt" if prompt is None else "metric"
        raise ParallelBenchFormatError(f"{path.parent / 'task_config.yaml'}: task {task!r} has no '{missing}'.")
    ctx = _Context(path, task, metric)
    prompt_fields = _prompt_fields(prompt)
    items = []
    with open(path, encoding="utf-8") as f:
        for ctx.line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ctx.fail(f"invalid JSON ({e.msg} at column {e.colno})") from None
            fields, answer, shots, metadata, output_format = _parse_line(obj, ctx, prompt_fields)
            shots_for_prompt = [{**s, "input": _render_fields(metric, s["input"])} for s in shots]
            items.append(
                TaskItem(
                    task=task,
                    index=len(items),
                    input=fields,
                    reference=answer,
                    messages=build_messages(prompt, _render_fields(metric, fields), shots_for_prompt),
                    target_text=answer_text(answer),
                    metric=metric,
                    shots=shots,
                    metadata=metadata,
                    output_format=output_format,
                    split=split,
                )
            )
    return items


def load_parallelbench(
    path: PathLike, tasks: Optional[Iterable[str]] = None, limit: Optional[int] = None
) -> dict[str, list[TaskItem]]:
    """Load ParallelBench task files.

    Args:
        path: a group folder (holding ``task_config.yaml``) or a split folder holding group folders.
        tasks: names or aliases to load (default: every config entry that has a ``.jsonl`` file).
        limit: keep the first ``limit`` items of each task.

    Returns:
        canonical task name -> items (``split`` = the folder name when it is ``test``/``train``/...,
        else ``"external"``).

    Raises:
        FileNotFoundError: no config, or a requested task without a file.
        ParallelBenchFormatError: malformed config or line (file, line and field are named).
    """
    root = Path(path)
    wanted = None if tasks is None else {_canonical(t) for t in tasks}
    out: dict[str, list[TaskItem]] = {}
    for group_dir in _group_dirs(root):
        split = next((p.name for p in (group_dir, group_dir.parent) if p.name in _SPLIT_NAMES), "external")
        for key, cfg in _read_config(group_dir / "task_config.yaml").items():
            task = _canonical(key)
            if wanted is not None and task not in wanted:
                continue
            file = _task_file(group_dir, key, cfg)
            if file is None:
                if wanted is not None:
                    raise FileNotFoundError(f"{group_dir}: task {key!r} is configured but has no .jsonl file.")
                continue
            items = _load_file(file, task, cfg, split)
            out[task] = items if limit is None else items[:limit]
    if wanted is not None and wanted - set(out):
        raise FileNotFoundError(f"Tasks {sorted(wanted - set(out))} not found under {root}.")
    return out


def load_parallelbench_task(path: PathLike, task: str, limit: Optional[int] = None) -> list[TaskItem]:
    """The items of one task from a ParallelBench folder (see :func:`load_parallelbench`)."""
    return load_parallelbench(path, [task], limit)[_canonical(task)]


def _config_entry(task: str, items: Sequence[TaskItem]) -> dict:
    spec = TASKS.get(task)
    if spec is None:
        raise ValueError(f"Cannot export unregistered task {task!r}: its prompt is unknown.")
    if spec.config:
        return dict(spec.config)  # the verbatim ParallelBench entry
    entry: dict[str, Any] = {
        "name": spec.name,
        "prompt": spec.prompt,
        "metric": spec.metric,
        "icl_example_count": spec.shots,
        "num_samples": spec.num_samples,
    }
    if spec.seed is not None:
        entry["seed"] = spec.seed
    if spec.kind is not None:
        entry["type"] = spec.kind
    for attr in ("min_length", "max_length", "samples_per_length", "random_index", "size"):
        if getattr(spec, attr) is not None:
            entry[attr] = getattr(spec, attr)
    return entry


def _line(item: TaskItem) -> dict:
    fields = dict(item.input)
    if item.shots:
        fields["icl_examples"] = [dict(s) for s in item.shots]
    obj: dict[str, Any] = {"input": fields, "answer": item.reference}
    if item.output_format is not None:
        obj["output_format"] = item.output_format
    obj["metadata"] = item.metadata
    return obj


def export_parallelbench(items: Iterable[TaskItem], out_dir: PathLike) -> list[Path]:
    """Write items in ParallelBench's layout: ``<out_dir>/<group>/<task>.jsonl`` + ``task_config.yaml``.

    Existing ``task_config.yaml`` entries of other tasks are kept (v1 behaviour); a task's ``.jsonl`` is
    overwritten. Items are written in the given order.

    Returns:
        The written ``.jsonl`` paths.
    """
    out_dir = Path(out_dir)
    by_task: dict[str, list[TaskItem]] = {}
    for item in items:
        by_task.setdefault(item.task, []).append(item)
    written = []
    for task, task_items in by_task.items():
        if "/" not in task:
            raise ValueError(f"Task name {task!r} needs a '<group>/<name>' form to be exported.")
        group, short = task.split("/", 1)
        group_dir = out_dir / group
        group_dir.mkdir(parents=True, exist_ok=True)
        config_path = group_dir / "task_config.yaml"
        config = _read_config(config_path) if config_path.exists() else {}
        config[task] = _config_entry(task, task_items)
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f, allow_unicode=True, sort_keys=True)
        path = group_dir / f"{short}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for item in task_items:
                f.write(json.dumps(_line(item), ensure_ascii=False) + "\n")
        written.append(path)
    return written
