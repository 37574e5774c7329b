"""ParallelBench scorers (v1 ``dataset/parallel_bench/metrics.py`` semantics, written from the spec).

Reference: ``reference/parallelbench.md`` §4 (Kang et al., "ParallelBench", arXiv 2510.04767).

Every scorer takes the raw model output ``prediction`` (a string) and the item's ``reference``, which is
ParallelBench's ``answer`` field verbatim:

=============================  ==========================================================================
metric                         ``reference``
=============================  ==========================================================================
``list_match_score``           the answer list rendered as ``["A B", "C D"]`` (parsed leniently)
``list_shuffle_score``         ``{"input": [names...], "example": "[...]"}``
``list_random_insert_score``   ``{"input": [names...], "word": "New Name", "example": "[...]"}``
``list_random_remove_score``   ``{"input": [names...], "example": "[...]"}``
``list_random_replace_score``  ``{"input": [names...], "word": "New Name", "example": "[...]"}``
``latin_square_score``         ``{"symbols": ["H", "4", "C", "A"], "example": "H,4,C,A\\n..."}``
``sudoku_score``               the unique solution, 4 lines of 4 digits (parsed strictly)
``sentence_to_words_score``    ``{"words": ["dog", "park", ...]}``
``summary_score``              ``{"text": dialogue, "summary": reference summary}``
``paraphrase_score``           ``{"text": source sentence, "examples": [...]}``
=============================  ==========================================================================

The low-level functions keep v1's signature ``f(prediction, reference, strict=False) -> float``. The
registry (:data:`SCORERS`, :func:`get_scorer`, :func:`score_prediction`) returns a :class:`ScoreResult`
with the lenient ``score``, the ``score_strict`` and the leniently ``parsed`` prediction.

Text-writing metrics return dicts and have no strict variant (``score_strict == score``). Their heavy parts
are optional and imported lazily; a missing piece raises :class:`MissingDependencyError` that says what to
install:

* grammar: ``pip install language-tool-python`` plus **Java >= 17**; the LanguageTool server (~250 MB) is
  downloaded on first use (or point ``LTP_PATH`` at an unpacked copy).
* ROUGE: ``pip install rouge-score`` (the package that HF ``evaluate("rouge")`` wraps; used directly, so no
  Hub download is needed; single-pair F-measures are identical).
* BLEU: ``pip install evaluate`` (``evaluate.load("bleu")`` fetches the metric script from the HF Hub once).
* BERTScore: ``pip install evaluate bert-score torch``; the first call downloads ``roberta-large`` weights
  (~1.4 GB) from the HF Hub.

Example:
    >>> list_match_score('["Ann Lee", "Bo Kim"]', '["Ann Lee", "Bo Kim"]')
    1.0
    >>> score_prediction("list_shuffle_score", '["B C", "A D"]', {"input": ["A D", "B C"]}).score
    1.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

__all__ = [
    "MissingDependencyError",
    "ScoreResult",
    "SCORERS",
    "FLOAT_METRICS",
    "TEXT_METRICS",
    "register_scorer",
    "get_scorer",
    "score_prediction",
    "aggregate",
    "parse_list",
    "parse_sudoku",
    "parse_latin_square",
    "list_match_score",
    "list_shuffle_score",
    "list_random_insert_score",
    "list_random_remove_score",
    "list_random_replace_score",
    "latin_square_score",
    "sudoku_score",
    "inclusion_score",
    "languagetool_grammar_check",
    "SentenceToWordsScore",
    "SummaryScore",
    "ParaphraseScore",
]


class MissingDependencyError(ImportError):
    """An optional scorer dependency (package, Java, model weights) is not available."""


@dataclass(frozen=True)
class ScoreResult:
    """Per-sample result of a scorer.

    Attributes:
        score: lenient score in [0, 1] (v1 ``score``).
        score_strict: strict-format score in [0, 1] (v1 ``score_strict``); equals ``score`` for metrics
            without a strict variant (latin square, text writing).
        parsed: the leniently parsed prediction (list of names, rows of a square, sudoku grid) or None
            when parsing failed / the metric has no parse.
        details: extra per-sample metrics (text-writing dict keys such as ``grammar_score``).
    """

    score: float
    score_strict: float
    parsed: Any = None
    details: Mapping[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# List parsing (§4.1)
# ---------------------------------------------------------------------------------------------------------


def parse_list(text: str, strict: bool = False) -> Optional[list[str]]:
    """Parse a list answer such as ``["Ann Lee", "Bo Kim"]``.

    Lenient: keep the text after the last ``[`` (if any) and before the first following ``]`` (if any),
    strip leftover brackets at the ends, split on ``,``, strip ``"`` and spaces from both ends of each item.
    Items that are whitespace-only *before* the quote strip are dropped (v1 semantics), so ``""`` survives
    as an empty-string item. Newlines/tabs are not stripped. Text without brackets is parsed as-is.

    Strict: both brackets must occur; the inside must split on exactly ``", "`` into items that start and
    end with ``"`` and contain no other ``"``; an empty list fails.

    Args:
        text: model output.
        strict: use the strict format check.

    Returns:
        The list of item strings, or None when the strict check fails.
    """
    if "[" in text:
        text = text.rsplit("[", 1)[1]
    elif strict:
        return None
    if "]" in text:
        text = text.split("]", 1)[0]
    elif strict:
        return None
    if not strict:
        return [item.strip('" ') for item in text.strip("[]").split(",") if item.strip()]
    items = []
    for item in text.split(", "):
        # Each item must be exactly one quoted string: "...", with no quote inside.
        if len(item) < 2 or not (item.startswith('"') and item.endswith('"')):
            return None
        inner = item[1:-1]
        if '"' in inner:
            return None
        items.append(inner)
    return items


def _ref_list(reference: Any) -> list[str]:
    """The reference list: a rendered string (parsed leniently) or an already-parsed list."""
    if isinstance(reference, str):
        return parse_list(reference)
    return list(reference)


# ---------------------------------------------------------------------------------------------------------
# Waiting-line metrics (§4.2)
# ---------------------------------------------------------------------------------------------------------


def list_match_score(prediction: str, reference: Any, strict: bool = False) -> float:
    """1.0 iff the parsed prediction equals the reference list (order and exact strings)."""
    pred = parse_list(prediction, strict)
    if pred is None:
        return 0.0
    return float(pred == _ref_list(reference))


def list_shuffle_score(prediction: str, reference: Mapping[str, Any], strict: bool = False) -> float:
    """1.0 iff the prediction is a permutation of ``reference["input"]`` that differs from it."""
    pred = parse_list(prediction, strict)
    if pred is None:
        return 0.0
    inp = list(reference["input"])
    return float(sorted(pred) == sorted(inp) and pred != inp)


def list_random_insert_score(prediction: str, reference: Mapping[str, Any], strict: bool = False) -> float:
    """1.0 iff ``reference["word"]`` occurs in the prediction and removing its first occurrence gives the input."""
    pred = parse_list(prediction, strict)
    if pred is None:
        return 0.0
    word = reference["word"]
    if word not in pred:
        return 0.0
    pred = pred[:]
    pred.remove(word)
    return float(pred == list(reference["input"]))


def list_random_remove_score(prediction: str, reference: Mapping[str, Any], strict: bool = False) -> float:
    """1.0 iff exactly one distinct name of the input is missing and the input minus it equals the prediction."""
    pred = parse_list(prediction, strict)
    if pred is None:
        return 0.0
    inp = list(reference["input"])
    if len(pred) != len(inp) - 1:
        return 0.0
    missing = set(inp) - set(pred)
    if len(missing) != 1:
        return 0.0
    inp.remove(next(iter(missing)))  # first occurrence only
    return float(pred == inp)


def list_random_replace_score(prediction: str, reference: Mapping[str, Any], strict: bool = False) -> float:
    """1.0 iff the new word occurs in the prediction at j and the input with position j replaced equals it."""
    pred = parse_list(prediction, strict)
    if pred is None:
        return 0.0
    inp = list(reference["input"])
    if len(pred) != len(inp):
        return 0.0
    word = reference["word"]
    if word not in pred:
        return 0.0
    inp[pred.index(word)] = word
    return float(pred == inp)


# ---------------------------------------------------------------------------------------------------------
# Puzzles (§4.2)
# ---------------------------------------------------------------------------------------------------------


def parse_latin_square(text: str, symbols: Iterable[str]) -> Optional[list[list[str]]]:
    """Rows of a comma-separated square: the first ``len(set(symbols))`` non-empty lines whose stripped
    cell set equals the symbol set; None when there are fewer such lines."""
    symbol_set = set(symbols)
    size = len(symbol_set)
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    rows = [[cell.strip() for cell in line.split(",")] for line in lines]
    rows = [row for row in rows if set(row) == symbol_set]
    if len(rows) < size:
        return None
    return rows[:size]


def latin_square_score(prediction: str, reference: Mapping[str, Any], strict: bool = False) -> float:
    """1.0 iff the parsed square's every row and column contains all symbols (strict = lenient).

    ``reference["first_row"]``, when present, must also equal the first row (a v1 option).
    """
    del strict  # the v1 metric has no strict variant
    symbols = set(reference["symbols"])
    rows = parse_latin_square(prediction, symbols)
    if rows is None:
        return 0.0
    if any(set(row) != symbols for row in rows) or any(set(col) != symbols for col in zip(*rows)):
        return 0.0
    first_row = reference.get("first_row")
    if first_row is not None and rows[0] != list(first_row):
        return 0.0
    return 1.0


def parse_sudoku(text: str, n: int = 4, strict: bool = False) -> Optional[list[list[int]]]:
    """Parse an ``n``×``n`` grid of digits.

    Lenient: drop spaces and commas, keep lines with exactly ``n`` digits; exactly ``n`` such lines.
    Strict: exactly ``n`` non-empty lines of exactly ``n`` digit characters.
    """
    text = text.strip()
    if not strict:
        text = text.replace(" ", "").replace(",", "")
        grid = []
        for line in text.split("\n"):
            row = [int(d) for d in re.findall(r"\d", line)]
            if line.strip() and len(row) == n:
                grid.append(row)
        return grid if len(grid) == n else None
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) != n:
        return None
    grid = []
    for line in lines:
        if len(line) != n:
            return None
        try:
            grid.append([int(c) for c in line])
        except ValueError:
            return None
    return grid


def sudoku_score(prediction: str, reference: str, strict: bool = False) -> float:
    """1.0 iff the parsed grid equals the (unique) solution ``reference`` (parsed strictly)."""
    pred = parse_sudoku(prediction, strict=strict)
    if pred is None:
        return 0.0
    return float(pred == parse_sudoku(reference, strict=True))


# ---------------------------------------------------------------------------------------------------------
# Text writing (§4.3)
# ---------------------------------------------------------------------------------------------------------

_LANGUAGE_TOOL = None


def languagetool_grammar_check(text: str) -> bool:
    """True iff LanguageTool (en-US) reports zero matches of any rule on the stripped text; empty fails.

    Raises:
        MissingDependencyError: ``language_tool_python`` or Java is missing, or the server cannot start.
    """
    global _LANGUAGE_TOOL
    text = text.strip()
    if not text:
        return False
    if _LANGUAGE_TOOL is None:
        try:
            import language_tool_python
        except ImportError as e:
            raise MissingDependencyError(
                "The grammar check needs `pip install language-tool-python` and Java >= 17 on PATH; the "
                "LanguageTool server (~250 MB) is downloaded on first use (set LTP_PATH to a pre-downloaded "
                "copy when offline)."
            ) from e
        try:
            _LANGUAGE_TOOL = language_tool_python.LanguageTool("en-US")
        except Exception as e:  # Java missing / too old, download blocked, server failed to start
            raise MissingDependencyError(
                f"Could not start LanguageTool ({type(e).__name__}: {e}). It needs Java >= 17 on PATH and "
                "downloads the LanguageTool server on first use (set LTP_PATH to a pre-downloaded copy when "
                "offline)."
            ) from e
    return len(_LANGUAGE_TOOL.check(text)) == 0


def inclusion_score(prediction: str, words: Iterable[str]) -> float:
    """1.0 iff every requested word is a case-sensitive substring of the prediction ("throwing" ⊇ "throw")."""
    return float(all(word in prediction for word in words))


class SentenceToWordsScore:
    """Words-to-sentence metric: ``inclusion_score``, ``grammar_score`` and ``score`` = their conjunction.

    Args:
        grammar_check: ``str -> bool``; defaults to :func:`languagetool_grammar_check`. Pass another
            callable (e.g. a remote LanguageTool) to avoid the local Java dependency.
    """

    def __init__(self, grammar_check: Optional[Callable[[str], bool]] = None):
        self.grammar_check = grammar_check or languagetool_grammar_check

    def __call__(self, prediction: str, reference: Mapping[str, Any]) -> dict[str, float]:
        inclusion = inclusion_score(prediction, reference["words"])
        grammar = float(self.grammar_check(prediction))
        return {"inclusion_score": inclusion, "grammar_score": grammar, "score": float(inclusion and grammar)}


def _rouge_scorer():
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise MissingDependencyError(
            "summary_score needs ROUGE: `pip install rouge-score` (it pulls nltk for the Porter stemmer)."
        ) from e
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


class SummaryScore:
    """Summarization metric: ROUGE-1/2/L F (stemmed) vs ``reference["summary"]``, grammar, and
    ``score`` = ROUGE-L × grammar. An empty output gets grammar 0."""

    def __init__(self, grammar_check: Optional[Callable[[str], bool]] = None):
        self.grammar_check = grammar_check or languagetool_grammar_check
        self._rouge = None

    def __call__(self, prediction: str, reference: Mapping[str, Any]) -> dict[str, float]:
        if self._rouge is None:
            self._rouge = _rouge_scorer()
        prediction = prediction.strip()
        rouge = self._rouge.score(reference["summary"].strip(), prediction)  # (target, prediction)
        grammar = float(self.grammar_check(prediction)) if prediction else 0.0
        return {
            "rouge1_score": float(rouge["rouge1"].fmeasure),
            "rouge2_score": float(rouge["rouge2"].fmeasure),
            "rougeL_score": float(rouge["rougeL"].fmeasure),
            "grammar_score": grammar,
            "score": float(rouge["rougeL"].fmeasure) * grammar,
        }


def _load_evaluate_metric(name: str, extra: str):
    try:
        import evaluate
    except ImportError as e:
        raise MissingDependencyError(f"paraphrase_score needs `pip install evaluate{extra}`.") from e
    try:
        return evaluate.load(name)
    except Exception as e:
        raise MissingDependencyError(
            f"evaluate.load({name!r}) failed ({type(e).__name__}: {e}). It fetches the metric script from the "
            "HF Hub on first use (and BERTScore downloads roberta-large weights, ~1.4 GB); run once with "
            "network access or set HF_HUB_OFFLINE=1 with a warm cache."
        ) from e


class ParaphraseScore:
    """Paraphrase metric: ``inv_bleu`` = 1 − BLEU(pred, [source]), BERTScore F1 vs the source (lang="en"),
    grammar, and ``score`` = their product. An empty output scores 0 on all parts.

    Args:
        grammar_check: ``str -> bool`` (default LanguageTool).
        bleu: ``(prediction, source) -> float`` BLEU in [0, 1] (default HF ``evaluate`` "bleu").
        bertscore: ``(prediction, source) -> float`` F1 (default HF ``evaluate`` "bertscore", roberta-large).
    """

    def __init__(
        self,
        grammar_check: Optional[Callable[[str], bool]] = None,
        bleu: Optional[Callable[[str, str], float]] = None,
        bertscore: Optional[Callable[[str, str], float]] = None,
    ):
        self.grammar_check = grammar_check or languagetool_grammar_check
        self._bleu = bleu
        self._bertscore = bertscore

    def _bleu_fn(self) -> Callable[[str, str], float]:
        if self._bleu is None:
            metric = _load_evaluate_metric("bleu", "")
            self._bleu = lambda p, s: metric.compute(predictions=[p], references=[[s]])["bleu"]
        return self._bleu

    def _bertscore_fn(self) -> Callable[[str, str], float]:
        if self._bertscore is None:
            try:
                import bert_score  # noqa: F401
            except ImportError as e:
                raise MissingDependencyError(
                    "paraphrase_score needs BERTScore: `pip install evaluate bert-score torch`; the first call "
                    "downloads roberta-large weights (~1.4 GB) from the HF Hub."
                ) from e
            metric = _load_evaluate_metric("bertscore", " bert-score torch")
            self._bertscore = lambda p, s: metric.compute(predictions=[p], references=[s], lang="en")["f1"][0]
        return self._bertscore

    def __call__(self, prediction: str, reference: Mapping[str, Any]) -> dict[str, float]:
        prediction = prediction.strip()
        if not prediction:
            return {"inv_bleu_score": 0.0, "bertscore_score": 0.0, "grammar_score": 0.0, "score": 0.0}
        source = reference["text"]
        inv_bleu = 1.0 - float(self._bleu_fn()(prediction, source))
        bert = float(self._bertscore_fn()(prediction, source))
        grammar = float(self.grammar_check(prediction))
        return {
            "inv_bleu_score": inv_bleu,
            "bertscore_score": bert,
            "grammar_score": grammar,
            "score": inv_bleu * bert * grammar,
        }


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------

Scorer = Callable[[str, Any], ScoreResult]

#: metric name -> scorer ``(prediction, reference) -> ScoreResult``.
SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    """Decorator registering ``fn(prediction, reference) -> ScoreResult`` under ``name``."""

    def deco(fn: Scorer) -> Scorer:
        SCORERS[name] = fn
        return fn

    return deco


def _float_metric(name: str, fn: Callable[..., float], parse: Callable[[str, Any], Any]) -> None:
    def scorer(prediction: str, reference: Any) -> ScoreResult:
        return ScoreResult(
            score=fn(prediction, reference, strict=False),
            score_strict=fn(prediction, reference, strict=True),
            parsed=parse(prediction, reference),
        )

    scorer.__name__ = name
    scorer.__doc__ = fn.__doc__
    SCORERS[name] = scorer


_parse_lenient_list = lambda prediction, reference: parse_list(prediction)  # noqa: E731

#: float-valued metrics with lenient and strict variants (v1 ``score`` / ``score_strict``).
FLOAT_METRICS = {
    "list_match_score": (list_match_score, _parse_lenient_list),
    "list_shuffle_score": (list_shuffle_score, _parse_lenient_list),
    "list_random_insert_score": (list_random_insert_score, _parse_lenient_list),
    "list_random_remove_score": (list_random_remove_score, _parse_lenient_list),
    "list_random_replace_score": (list_random_replace_score, _parse_lenient_list),
    "latin_square_score": (latin_square_score, lambda p, r: parse_latin_square(p, r["symbols"])),
    "sudoku_score": (sudoku_score, lambda p, r: parse_sudoku(p)),
}
for _name, (_fn, _parse) in FLOAT_METRICS.items():
    _float_metric(_name, _fn, _parse)

#: dict-valued text-writing metrics (factories, so optional dependencies load on first use).
TEXT_METRICS: dict[str, Callable[[], Callable[[str, Any], dict]]] = {
    "sentence_to_words_score": SentenceToWordsScore,
    "summary_score": SummaryScore,
    "paraphrase_score": ParaphraseScore,
}


def _dict_metric(name: str, factory: Callable[[], Callable[[str, Any], dict]]) -> None:
    instance = None

    def scorer(prediction: str, reference: Any) -> ScoreResult:
        nonlocal instance
        if instance is None:
            instance = factory()
        d = instance(prediction, reference)
        return ScoreResult(score=d["score"], score_strict=d["score"], parsed=None, details=d)

    scorer.__name__ = name
    SCORERS[name] = scorer


for _name, _factory in TEXT_METRICS.items():
    _dict_metric(_name, _factory)


def get_scorer(metric: str) -> Scorer:
    """The registered scorer for ``metric``.

    Raises:
        KeyError: unknown metric (the message lists the known ones).
    """
    try:
        return SCORERS[metric]
    except KeyError:
        raise KeyError(f"Unknown metric {metric!r}; known: {sorted(SCORERS)}.") from None


def score_prediction(metric: str, prediction: str, reference: Any) -> ScoreResult:
    """Score one prediction with the named metric; see the module docstring for ``reference`` shapes."""
    return get_scorer(metric)(prediction, reference)


def aggregate(results: Iterable[ScoreResult]) -> dict[str, float]:
    """Average every key over samples and multiply by 100 (v1 ``compute_metrics``).

    Returns ``score``, ``score_strict`` and every ``details`` key (averaged over the samples that have it),
    plus ``n`` (the number of samples, not scaled).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    n = 0
    for r in results:
        n += 1
        values = {"score": r.score, "score_strict": r.score_strict, **{k: v for k, v in r.details.items()}}
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    out = {k: 100.0 * sums[k] / counts[k] for k in sums}
    out["n"] = n
    return out
