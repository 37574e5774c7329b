"""Hand-written cases for the ParallelBench scorers (spec §4)."""

import sys

import pytest

from bench import scorers
from bench.scorers import (
    SCORERS,
    MissingDependencyError,
    ParaphraseScore,
    ScoreResult,
    SentenceToWordsScore,
    SummaryScore,
    aggregate,
    get_scorer,
    inclusion_score,
    latin_square_score,
    list_match_score,
    list_random_insert_score,
    list_random_remove_score,
    list_random_replace_score,
    list_shuffle_score,
    parse_list,
    parse_sudoku,
    score_prediction,
    sudoku_score,
)

REF = '["Ann Lee", "Bo Kim", "Cy Poe"]'
INP = ["Ann Lee", "Bo Kim", "Cy Poe"]


# --- parse_list ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, lenient, strict",
    [
        ('["Ann Lee", "Bo Kim"]', ["Ann Lee", "Bo Kim"], ["Ann Lee", "Bo Kim"]),
        ("Ann Lee, Bo Kim", ["Ann Lee", "Bo Kim"], None),  # no brackets
        ('Sure! ["Ann Lee", "Bo Kim"] Done.', ["Ann Lee", "Bo Kim"], ["Ann Lee", "Bo Kim"]),
        ('[x] then ["Ann Lee", "Bo Kim"]', ["Ann Lee", "Bo Kim"], ["Ann Lee", "Bo Kim"]),  # last "["
        ('["Ann Lee"] and ["Bo Kim"]', ["Bo Kim"], ["Bo Kim"]),
        ('["Ann Lee", "Bo Kim"', ["Ann Lee", "Bo Kim"], None),  # unbalanced: no "]"
        ('"Ann Lee", "Bo Kim"]', ["Ann Lee", "Bo Kim"], None),  # unbalanced: no "["
        ("['Ann Lee', 'Bo Kim']", ["'Ann Lee'", "'Bo Kim'"], None),  # wrong quotes
        ("[]", [], None),  # empty list
        ('[ "Ann Lee" ,  "Bo Kim" ]', ["Ann Lee", "Bo Kim"], None),  # extra whitespace
        ('["Ann Lee","Bo Kim"]', ["Ann Lee", "Bo Kim"], None),  # missing space after comma
        ('["Ann Lee", ]', ["Ann Lee"], None),  # trailing comma
        ('["Ann "Lee" Kim"]', ["Ann \"Lee\" Kim"], None),  # inner quotes
        ('[""]', [""], [""]),  # quotes-only item survives (v1: dropped only if whitespace before stripping)
        ('["Ann Lee", "Ann Lee"]', ["Ann Lee", "Ann Lee"], ["Ann Lee", "Ann Lee"]),  # duplicates kept
        ('["]', [""], None),  # a lone quote is not a quoted item strictly
    ],
)
def test_parse_list(text, lenient, strict):
    assert parse_list(text) == lenient
    assert parse_list(text, strict=True) == strict


def test_parse_list_does_not_strip_newlines():
    # v1 strips only '"' and ' ' around items, so a list spread over lines does not parse cleanly.
    assert parse_list('[\n"Ann Lee",\n"Bo Kim"\n]') == ['\n"Ann Lee', '\n"Bo Kim"\n']
    assert list_match_score('[\n"Ann Lee",\n"Bo Kim"\n]', '["Ann Lee", "Bo Kim"]') == 0.0


# --- list metrics --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred, lenient, strict",
    [
        (REF, 1.0, 1.0),
        ("Answer: " + REF + "\n", 1.0, 1.0),
        ('[ "Ann Lee" , "Bo Kim" , "Cy Poe" ]', 1.0, 0.0),
        ('["Ann Lee", "Bo Kim", "Cy Poe"', 1.0, 0.0),
        ("Ann Lee, Bo Kim, Cy Poe", 1.0, 0.0),
        ("['Ann Lee', 'Bo Kim', 'Cy Poe']", 0.0, 0.0),
        ('["Ann Lee", "Cy Poe", "Bo Kim"]', 0.0, 0.0),
        ('["Ann Lee", "Bo Kim", "Bo Kim", "Cy Poe"]', 0.0, 0.0),
        ('["Ann Lee", "Bo Kim"]', 0.0, 0.0),
        ("[]", 0.0, 0.0),
        ("", 0.0, 0.0),
        ('["ann lee", "Bo Kim", "Cy Poe"]', 0.0, 0.0),
    ],
)
def test_list_match_score(pred, lenient, strict):
    assert list_match_score(pred, REF) == lenient
    assert list_match_score(pred, REF, strict=True) == strict


def test_list_match_reference_is_parsed_leniently():
    assert list_match_score('["A B", "C D"]', "[A B, C D]") == 1.0
    assert list_match_score('["A B", "C D"]', ["A B", "C D"]) == 1.0


@pytest.mark.parametrize(
    "pred, lenient, strict",
    [
        ('["Bo Kim", "Ann Lee", "Cy Poe"]', 1.0, 1.0),
        ('["Cy Poe", "Bo Kim", "Ann Lee"]', 1.0, 1.0),
        (REF, 0.0, 0.0),  # identical to the input
        ('["Bo Kim", "Ann Lee"]', 0.0, 0.0),  # missing one
        ('["Bo Kim", "Bo Kim", "Ann Lee", "Cy Poe"]', 0.0, 0.0),  # duplicate
        ('["Bo Kim", "Bo Kim", "Cy Poe"]', 0.0, 0.0),  # duplicate replacing one
        ('["Bo Kim","Ann Lee","Cy Poe"]', 1.0, 0.0),  # format only leniently valid
        ("Bo Kim, Ann Lee, Cy Poe", 1.0, 0.0),
        ("[]", 0.0, 0.0),
    ],
)
def test_list_shuffle_score(pred, lenient, strict):
    ref = {"input": INP, "example": '["Bo Kim", "Ann Lee", "Cy Poe"]'}
    assert list_shuffle_score(pred, ref) == lenient
    assert list_shuffle_score(pred, ref, strict=True) == strict


@pytest.mark.parametrize(
    "pred, expected",
    [
        ('["New One", "Ann Lee", "Bo Kim", "Cy Poe"]', 1.0),
        ('["Ann Lee", "New One", "Bo Kim", "Cy Poe"]', 1.0),
        ('["Ann Lee", "Bo Kim", "Cy Poe", "New One"]', 1.0),
        (REF, 0.0),  # not inserted
        ('["Ann Lee", "Bo Kim", "Cy Poe", "Other"]', 0.0),  # wrong name
        ('["New One", "Ann Lee", "Bo Kim", "Cy Poe", "New One"]', 0.0),  # inserted twice
        ('["New One", "Bo Kim", "Ann Lee", "Cy Poe"]', 0.0),  # order changed
        ('["New One", "Ann Lee", "Cy Poe"]', 0.0),  # replaced instead of inserted
        ("[]", 0.0),
    ],
)
def test_list_random_insert_score(pred, expected):
    ref = {"input": INP, "word": "New One", "example": '["New One", "Ann Lee", "Bo Kim", "Cy Poe"]'}
    assert list_random_insert_score(pred, ref) == expected
    assert list_random_insert_score(pred, ref, strict=True) == expected
    assert list_random_insert_score(pred.replace(", ", ","), ref, strict=True) == 0.0


@pytest.mark.parametrize(
    "pred, expected",
    [
        ('["Bo Kim", "Cy Poe"]', 1.0),
        ('["Ann Lee", "Cy Poe"]', 1.0),
        ('["Ann Lee", "Bo Kim"]', 1.0),
        (REF, 0.0),  # nothing removed
        ('["Ann Lee"]', 0.0),  # two removed
        ('["Cy Poe", "Bo Kim"]', 0.0),  # order changed
        ('["Ann Lee", "Ann Lee"]', 0.0),  # duplicate fills the gap
        ('["Ann Lee", "New One"]', 0.0),  # foreign name
        ("[]", 0.0),
    ],
)
def test_list_random_remove_score(pred, expected):
    ref = {"input": INP, "example": '["Bo Kim", "Cy Poe"]'}
    assert list_random_remove_score(pred, ref) == expected
    assert list_random_remove_score(pred, ref, strict=True) == expected


def test_list_random_remove_with_repeated_input_name():
    ref = {"input": ["A B", "C D", "A B"]}
    assert list_random_remove_score('["A B", "A B"]', ref) == 1.0
    assert list_random_remove_score('["C D", "A B"]', ref) == 0.0  # A B still present: nothing "missing"


@pytest.mark.parametrize(
    "pred, expected",
    [
        ('["New One", "Bo Kim", "Cy Poe"]', 1.0),
        ('["Ann Lee", "New One", "Cy Poe"]', 1.0),
        ('["Ann Lee", "Bo Kim", "New One"]', 1.0),
        (REF, 0.0),  # nothing replaced
        ('["New One", "New One", "Cy Poe"]', 0.0),  # two replaced
        ('["Other", "Bo Kim", "Cy Poe"]', 0.0),  # wrong name
        ('["New One", "Ann Lee", "Bo Kim", "Cy Poe"]', 0.0),  # inserted
        ('["New One", "Cy Poe", "Bo Kim"]', 0.0),  # reordered
        ("[]", 0.0),
    ],
)
def test_list_random_replace_score(pred, expected):
    ref = {"input": INP, "word": "New One", "example": '["New One", "Bo Kim", "Cy Poe"]'}
    assert list_random_replace_score(pred, ref) == expected
    assert list_random_replace_score(pred, ref, strict=True) == expected


# --- puzzles -------------------------------------------------------------------------------------------

LATIN = {"symbols": ["H", "4", "C", "A"], "example": "H,4,A,C\n4,C,H,A\nC,A,4,H\nA,H,C,4"}


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("H,4,A,C\n4,C,H,A\nC,A,4,H\nA,H,C,4", 1.0),
        ("H, 4, A, C\n4, C, H, A\nC, A, 4, H\nA, H, C, 4", 1.0),  # spaces after commas
        ("Here it is:\n\nH,4,A,C\n4,C,H,A\n\nC,A,4,H\nA,H,C,4\nDone.", 1.0),  # chatter and blank lines
        ("4,C,H,A\nH,4,A,C\nA,H,C,4\nC,A,4,H", 1.0),  # a different valid square
        ("H,4,A,C\nH,4,A,C\nC,A,4,H\nA,H,C,4", 0.0),  # column repeats
        ("H,4,A,C\n4,C,H,A\nC,A,4,H", 0.0),  # 3 rows
        ("H,4,A,C\n4,C,H,A\nC,A,4,H\nA,H,C,C", 0.0),  # bad last row is filtered -> 3 rows
        ("H 4 A C\n4 C H A\nC A 4 H\nA H C 4", 0.0),  # not CSV
        ("", 0.0),
    ],
)
def test_latin_square_score(pred, expected):
    assert latin_square_score(pred, LATIN) == expected
    assert latin_square_score(pred, LATIN, strict=True) == expected


def test_latin_square_first_row_option():
    ref = {**LATIN, "first_row": ["4", "C", "H", "A"]}
    assert latin_square_score("H,4,A,C\n4,C,H,A\nC,A,4,H\nA,H,C,4", ref) == 0.0
    assert latin_square_score("4,C,H,A\nH,4,A,C\nA,H,C,4\nC,A,4,H", ref) == 1.0


SOLUTION = "2143\n4321\n1234\n3412"


@pytest.mark.parametrize(
    "pred, lenient, strict",
    [
        (SOLUTION, 1.0, 1.0),
        ("\n" + SOLUTION + "\n\n", 1.0, 1.0),
        ("2 1 4 3\n4 3 2 1\n1 2 3 4\n3 4 1 2", 1.0, 0.0),
        ("2,1,4,3\n4,3,2,1\n1,2,3,4\n3,4,1,2", 1.0, 0.0),
        ("Output:\n" + SOLUTION, 1.0, 0.0),  # a digit-free line is skipped leniently
        ("[2, 1, 4, 3]\n[4, 3, 2, 1]\n[1, 2, 3, 4]\n[3, 4, 1, 2]", 1.0, 0.0),
        ("2143\n4321\n1234\n3421", 0.0, 0.0),  # wrong
        ("2143\n4321\n1234", 0.0, 0.0),  # 3 rows
        (SOLUTION + "\n1234", 0.0, 0.0),  # 5 digit rows
        ("2143432112343412", 0.0, 0.0),  # one line
        ("0143\n4301\n1034\n3410", 0.0, 0.0),  # the puzzle itself
        ("", 0.0, 0.0),
    ],
)
def test_sudoku_score(pred, lenient, strict):
    assert sudoku_score(pred, SOLUTION) == lenient
    assert sudoku_score(pred, SOLUTION, strict=True) == strict


def test_parse_sudoku():
    assert parse_sudoku(SOLUTION, strict=True) == [[2, 1, 4, 3], [4, 3, 2, 1], [1, 2, 3, 4], [3, 4, 1, 2]]
    assert parse_sudoku("21a3\n4321\n1234\n3412", strict=True) is None
    assert parse_sudoku("21 43\n4321\n1234\n3412", strict=True) is None


# --- registry ------------------------------------------------------------------------------------------


def test_registry_returns_both_variants_and_parse():
    r = score_prediction("list_match_score", '[ "Ann Lee", "Bo Kim", "Cy Poe" ]', REF)
    assert isinstance(r, ScoreResult)
    assert (r.score, r.score_strict, r.parsed) == (1.0, 0.0, INP)
    r = score_prediction("sudoku_score", "2 1 4 3\n4 3 2 1\n1 2 3 4\n3 4 1 2", SOLUTION)
    assert (r.score, r.score_strict) == (1.0, 0.0)
    assert r.parsed[0] == [2, 1, 4, 3]
    r = score_prediction("latin_square_score", LATIN["example"], LATIN)
    assert r.parsed[0] == ["H", "4", "A", "C"]


def test_registry_names_and_unknown_metric():
    from bench.tasks import TASKS

    assert {spec.metric for spec in TASKS.values()} <= set(SCORERS)
    with pytest.raises(KeyError, match="Unknown metric 'nope'"):
        get_scorer("nope")


def test_aggregate_scales_by_100():
    results = [ScoreResult(1.0, 0.0), ScoreResult(0.0, 0.0), ScoreResult(1.0, 1.0), ScoreResult(1.0, 1.0)]
    assert aggregate(results) == {"score": 75.0, "score_strict": 50.0, "n": 4}
    text = [
        ScoreResult(1.0, 1.0, details={"grammar_score": 1.0}),
        ScoreResult(0.0, 0.0, details={"grammar_score": 0.0}),
    ]
    assert aggregate(text)["grammar_score"] == 50.0


# --- text writing --------------------------------------------------------------------------------------


def test_inclusion_score_is_case_sensitive_substring():
    words = ["dog", "park", "ball", "throw"]
    assert inclusion_score("I love throwing the ball for my dog at the park.", words) == 1.0
    assert inclusion_score("Dog and ball in the park, throw!", words) == 0.0
    assert inclusion_score("", words) == 0.0


def test_sentence_to_words_with_injected_grammar_check():
    metric = SentenceToWordsScore(grammar_check=lambda text: text.endswith("."))
    ref = {"words": ["dog", "park"]}
    assert metric("The dog ran in the park.", ref) == {"inclusion_score": 1.0, "grammar_score": 1.0, "score": 1.0}
    assert metric("The dog ran in the park", ref)["score"] == 0.0
    assert metric("The cat sat.", ref) == {"inclusion_score": 0.0, "grammar_score": 1.0, "score": 0.0}


def test_paraphrase_with_injected_parts_and_empty_output():
    calls = []
    metric = ParaphraseScore(
        grammar_check=lambda t: True,
        bleu=lambda p, s: calls.append("bleu") or 0.25,
        bertscore=lambda p, s: 0.8,
    )
    d = metric("A different sentence.", {"text": "Any idea of what sweater this is?"})
    assert d == pytest.approx({"inv_bleu_score": 0.75, "bertscore_score": 0.8, "grammar_score": 1.0, "score": 0.6})
    zeros = {"inv_bleu_score": 0.0, "bertscore_score": 0.0, "grammar_score": 0.0, "score": 0.0}
    assert metric("   ", {"text": "x"}) == zeros
    assert calls == ["bleu"]


def test_missing_languagetool_names_java(monkeypatch):
    monkeypatch.setitem(sys.modules, "language_tool_python", None)
    monkeypatch.setattr(scorers, "_LANGUAGE_TOOL", None)
    with pytest.raises(MissingDependencyError, match="language-tool-python.*Java >= 17"):
        SentenceToWordsScore()("The dog ran.", {"words": ["dog"]})
    assert scorers.languagetool_grammar_check("   ") is False  # empty text fails without loading anything


def test_missing_rouge_names_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(MissingDependencyError, match="pip install rouge-score"):
        SummaryScore(grammar_check=lambda t: True)("Steve and Rob talk.", {"summary": "They talk."})


def test_missing_evaluate_and_bertscore_name_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "evaluate", None)
    with pytest.raises(MissingDependencyError, match="pip install evaluate"):
        ParaphraseScore(grammar_check=lambda t: True)("Some text.", {"text": "Other text."})
    monkeypatch.setitem(sys.modules, "bert_score", None)
    metric = ParaphraseScore(grammar_check=lambda t: True, bleu=lambda p, s: 0.0)
    with pytest.raises(MissingDependencyError, match="bert-score.*roberta-large"):
        metric("Some text.", {"text": "Other text."})


def test_registry_text_metric_error_is_lazy(monkeypatch):
    # Registering never imports optional packages; the error comes on first use.
    monkeypatch.setitem(sys.modules, "language_tool_python", None)
    monkeypatch.setattr(scorers, "_LANGUAGE_TOOL", None)
    with pytest.raises(MissingDependencyError):
        score_prediction("sentence_to_words_score", "The dog.", {"words": ["dog"]})
