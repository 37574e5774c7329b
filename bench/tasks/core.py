"""Task and item dataclasses, answer rendering and ParallelBench's message construction (spec §2.5, §3)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

__all__ = [
    "TaskSpec",
    "TaskItem",
    "list_to_str",
    "symbols_to_str",
    "latin_square_to_str",
    "grid_to_str",
    "render_word_list",
    "fill_prompt",
    "answer_text",
    "build_messages",
    "str_to_seed",
    "item_key",
]


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task.

    Attributes:
        name: canonical v1 id, e.g. ``"waiting_line/copy"``.
        group: the folder of ParallelBench's ``output/<split>/`` that holds it (``waiting_line``, ``puzzle``,
            ``paraphrase_summarize``, ``words_to_sentence``).
        metric: scorer name in :data:`bench.scorers.SCORERS`.
        prompt: template; ``{context}``, ``{word}``, ``{index}``, ``{size}``, ``{symbols}``, ``{sudoku}``,
            ``{text}``, ``{words}`` are filled from the item's input, then literal ``\\n`` becomes a newline.
        max_tokens: generation budget used by the paper (32 for lists, 64 otherwise).
        shots: one-shot example count (``icl_example_count``).
        num_samples: items in the test split.
        seed: the final ``random.Random`` seed of the test split (None: data must be supplied).
        seed_name: the old short name whose SHA-256 derives the train/validation seeds (§2.2).
        kind: generator type (``copy``, ``sort``, ``insert``, ``latin_square``, ``sudoku``, ...); None for
            tasks whose data must come from ParallelBench's files.
        min_length, max_length, samples_per_length: list-length range and bucket size (§2.3).
        random_index: for insert/remove/replace: position hidden (True) or stated in the prompt (False).
        size: latin-square size.
        aliases: other accepted names (short names, v2 names).
        benchmark: one of the 17 ParallelBench tasks (False for extras such as ``sort_last_name``).
        config: the raw ``task_config.yaml`` entry (verbatim) when the task came from one.
    """

    name: str
    group: str
    metric: str
    prompt: str
    max_tokens: int
    shots: int = 0
    num_samples: int = 100
    seed: Optional[int] = None
    seed_name: Optional[str] = None
    kind: Optional[str] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    samples_per_length: Optional[int] = None
    random_index: Optional[bool] = None
    size: Optional[int] = None
    aliases: tuple[str, ...] = ()
    benchmark: bool = True
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def offline(self) -> bool:
        """True when the items can be generated here (no external data needed)."""
        return self.kind is not None

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[-1]


@dataclass(frozen=True)
class TaskItem:
    """One benchmark item, ready for a chat model.

    Attributes:
        task: canonical task name.
        index: position within its split.
        input: the prompt fields (ParallelBench ``input`` without ``icl_examples``).
        reference: ParallelBench's ``answer`` verbatim, what the scorer takes (a rendered list string, a
            dict such as ``{"input": [...], "word": ..., "example": ...}``, or the sudoku solution).
        messages: the chat: for each shot a user turn (the shot's own prompt) and an assistant turn (its
            answer text), then the user turn of this item.
        target_text: the answer text a model is trained on: the reference string, or the reference's
            ``"example"`` (the same text a one-shot assistant turn shows); None when there is none (W2S).
        metric: scorer name.
        shots: the one-shot examples, each ``{"input": ..., "answer": ..., "metadata": ...}``.
        metadata: ``{"length": n, "index": ..., "word": ...}`` etc.
        output_format: infill template (``["[MASK]", "[MASK]"]``) for list answers, else None.
        split: ``"test"``, ``"validation"``, ``"train"`` or ``"external"`` (loaded from files).
    """

    task: str
    index: int
    input: dict
    reference: Any
    messages: list
    target_text: Optional[str] = None
    metric: str = ""
    shots: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    output_format: Optional[str] = None
    split: str = "test"

    @property
    def prompt(self) -> str:
        """The last user turn (the test prompt)."""
        return self.messages[-1]["content"]

    @property
    def key(self) -> tuple[str, str]:
        """``(task, canonical JSON of input)``; equal keys mean the same question (used for split disjointness)."""
        return item_key(self.task, self.input)


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------


def list_to_str(items: Iterable[Any]) -> str:
    """Render a list JSON-like: ``["A B", "C D"]`` (items joined by ``", "``, wrapped in ``["`` … ``"]``)."""
    return '["' + '", "'.join(str(x) for x in items) + '"]'


def symbols_to_str(symbols: Iterable[str]) -> str:
    """Latin-square symbols as they appear in the prompt: ``[H, 4, C, A]`` (no quotes)."""
    return "[" + ", ".join(str(s) for s in symbols) + "]"


def latin_square_to_str(square: Sequence[Sequence[str]]) -> str:
    """The official Latin-square answer rendering: one row per line, cells joined by ``","`` (no space)."""
    return "\n".join(",".join(str(c) for c in row) for row in square)


def grid_to_str(grid: Sequence[Sequence[int]]) -> str:
    """A sudoku grid as lines of digits, blanks as ``0``: ``"1234\\n3412\\n..."``."""
    return "\n".join("".join(str(d) for d in row) for row in grid)


def render_word_list(words: Sequence[str]) -> str:
    """W2S word rendering: ``"dog, park, ball, and throw"`` (``"a and b"`` for two, ``"a"`` for one)."""
    words = [str(w) for w in words]
    if len(words) <= 1:
        return "".join(words)
    if len(words) == 2:
        return f"{words[0]} and {words[1]}"
    return ", ".join(words[:-1]) + ", and " + words[-1]


def fill_prompt(prompt: str, fields: Mapping[str, Any]) -> str:
    """``prompt.format(**fields)`` then literal ``\\n`` → newline (ParallelBench's ``__getitem__``)."""
    return prompt.format(**fields).replace("\\n", "\n")


def answer_text(answer: Any) -> Optional[str]:
    """The text of a ParallelBench answer: the string itself, else its ``example`` (one-shot assistant
    turn), else ``summary`` or the first of ``examples``; None when the answer has no text (W2S)."""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, Mapping):
        if "example" in answer:
            return answer["example"]
        if "summary" in answer:
            return answer["summary"]
        examples = answer.get("examples")
        if examples:
            return examples[0]
    return None


def build_messages(prompt: str, fields: Mapping[str, Any], shots: Sequence[Mapping[str, Any]] = ()) -> list[dict]:
    """The chat for one item: ``[user(shot), assistant(shot answer)]*`` + ``[user(item)]``."""
    messages: list[dict] = []
    for shot in shots:
        messages.append({"role": "user", "content": fill_prompt(prompt, shot["input"])})
        messages.append({"role": "assistant", "content": answer_text(shot["answer"])})
    messages.append({"role": "user", "content": fill_prompt(prompt, fields)})
    return messages


def str_to_seed(name: str, offset: int = 42) -> int:
    """ParallelBench's seed: ``(int(sha256(name)) + offset) mod 65535`` (§2.2)."""
    return (int(hashlib.sha256(name.encode()).hexdigest(), 16) + offset) % 65535


def item_key(task: str, fields: Mapping[str, Any]) -> tuple[str, str]:
    """Hashable identity of a question: the task and the canonical JSON of its input fields."""
    return task, json.dumps({k: v for k, v in fields.items() if k != "icl_examples"}, sort_keys=True)
