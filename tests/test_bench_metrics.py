"""bench.metrics on hand-made records: TPF without EOS padding, aggregation, PBx interpolation, oracle."""
from __future__ import annotations

import math

import pytest

from bench import metrics
from bench.metrics import aggregate, answer_length, oracle_choice, oracle_curve, oracle_records, pbx, summarize


def rec(index, score, nfe, answer_tokens, gen_length=32, score_strict=None, wall_s=0.5, **kw):
    return {"index": index, "score": score, "score_strict": score if score_strict is None else score_strict,
            "nfe": nfe, "answer_tokens": answer_tokens, "gen_length": gen_length, "wall_s": wall_s, **kw}


# ------------------------------------------------------------------------------------------- speed, aggregation
def test_answer_length_stops_at_first_eos_or_eot():
    assert answer_length([7, 8, 9, 2, 2, 2], [2, 3]) == 3
    assert answer_length([7, 3, 9, 2], [2, 3]) == 1          # EoT also stops
    assert answer_length([7, 8, 9], [2, None]) == 3          # no stop token: everything counts
    assert answer_length([2, 2], [2]) == 0


def test_tpf_excludes_eos_padding_tps_includes_it():
    # 32 slots, 8 real tokens then EOS padding, 4 forwards: TPF = 8/4, ParallelBench TPS = 32/4
    ids = [10] * 8 + [2] * 24
    n = answer_length(ids, [2, 3])
    assert metrics.sample_speed(n, 4, 32) == (2.0, 8.0)
    agg = aggregate([rec(0, 1.0, 4, n), rec(1, 0.0, 8, 16)])
    assert agg["tokens_per_forward"] == pytest.approx((2.0 + 2.0) / 2)
    assert agg["tokens_per_step"] == pytest.approx((8.0 + 4.0) / 2)
    assert agg["answer_tokens"] == 12


def test_aggregate_means_and_throughput():
    recs = [rec(0, 1.0, 4, 8, score_strict=0.0, wall_s=1.0), rec(1, 0.0, 8, 16, wall_s=3.0),
            rec(2, 1.0, 2, 4, wall_s=0.0, details={"grammar_score": 1.0, "note": "x"})]
    agg = aggregate(recs)
    assert agg["n"] == 3
    assert agg["accuracy"] == pytest.approx(2 / 3) and agg["accuracy_strict"] == pytest.approx(1 / 3)
    assert agg["nfe"] == pytest.approx(14 / 3)
    assert agg["wall_s"] == pytest.approx(4 / 3) and agg["wall_s_total"] == pytest.approx(4.0)
    assert agg["tokens_per_second"] == pytest.approx(28 / 4.0)
    assert agg["details"] == {"grammar_score": 1.0}
    assert aggregate([])["n"] == 0 and math.isnan(aggregate([])["accuracy"])


def test_task_average_is_unweighted():
    a = {"n": 10, **{k: 1.0 for k in metrics.METRIC_KEYS}}
    b = {"n": 2, **{k: 0.0 for k in metrics.METRIC_KEYS}}
    avg = metrics.task_average([a, b])
    assert avg["n_tasks"] == 2 and avg["n"] == 12 and avg["accuracy"] == 0.5


# ------------------------------------------------------------------------------------------- PBx
def test_pbx_parallelbench_example():
    # LLaDA 1.5 threshold (reference/parallelbench.md §7): PB80 = 3.42 + (83.8-80)/(83.8-77.5)*(4.53-3.42)
    pts = [(1.33, .864), (3.42, .838), (4.53, .775), (5.62, .683), (6.55, .579), (8.27, .472)]
    out = pbx(pts, [90, 80, 70])
    assert out["PB80"] == pytest.approx(3.42 + (83.8 - 80) / (83.8 - 77.5) * (4.53 - 3.42))
    assert round(out["PB80"], 2) == 4.09
    assert out["PB70"] == pytest.approx(4.53 + (77.5 - 70) / (77.5 - 68.3) * (5.62 - 4.53))
    assert out["PB90"] is None                                    # no point reaches 90 %
    assert pbx(reversed(pts), [80]) == {"PB80": out["PB80"]}    # sweep order does not matter


def test_pbx_edges():
    assert pbx([(1.0, 0.95), (2.0, 0.92)], [90]) == {"PB90": 2.0}   # never crosses: the fastest point
    assert pbx([(3.0, 0.5)], [90, 40]) == {"PB90": None, "PB40": 3.0}
    assert pbx([], [80]) == {"PB80": None}
    assert pbx([(1.0, 0.8)], [80]) == {"PB80": 1.0}                   # exactly at x counts
    # non-monotone curve: the highest speed of any segment above x wins
    out = pbx([(1.0, 0.9), (2.0, 0.7), (3.0, 0.85), (4.0, 0.75)], [80])
    assert out["PB80"] == pytest.approx(3.5)
    assert pbx([(1.0, 0.9), (float("nan"), 0.9)], [80]) == {"PB80": 1.0}  # NaN points are skipped


# ------------------------------------------------------------------------------------------- oracle
def test_oracle_choice_fastest_solved():
    cands = [rec(0, 1.0, 32, 16), rec(0, 1.0, 4, 16), rec(0, 0.0, 2, 16)]
    assert oracle_choice(cands, [0.9, 0.5, 0.1]) == 1    # the fastest that scored 1, not the fastest overall


def test_oracle_choice_none_solved_falls_back_to_best_score_then_task_accuracy():
    cands = [rec(0, 0.0, 32, 16), rec(0, 0.0, 4, 16), rec(0, 0.0, 2, 16)]
    assert oracle_choice(cands, [0.9, 0.5, 0.1]) == 0    # all failed: the setting with the best task accuracy
    cands = [rec(0, 0.2, 32, 16), rec(0, 0.6, 4, 16), rec(0, 0.0, 2, 16)]
    assert oracle_choice(cands, [0.9, 0.5, 0.1]) == 1    # partial scores: the highest score
    with pytest.raises(ValueError):
        oracle_choice([], [])


def test_oracle_records_and_curve():
    slow = {0: rec(0, 1.0, 32, 16), 1: rec(1, 1.0, 32, 16), 2: rec(2, 0.0, 32, 16)}
    fast = {0: rec(0, 1.0, 4, 16), 1: rec(1, 0.0, 4, 16), 2: rec(2, 0.0, 4, 16), 3: rec(3, 1.0, 4, 16)}
    chosen = oracle_records([slow, fast])
    assert [r["nfe"] for r in chosen] == [4, 32, 32]        # item 3 is not under every setting: skipped
    curve = oracle_curve({"t": [slow, fast]}, order=[0, 1])
    assert [p["settings"] for p in curve] == [1, 2]
    first, full = curve[0]["average"], curve[1]["average"]
    assert first["accuracy"] == pytest.approx(2 / 3) and first["tokens_per_forward"] == pytest.approx(0.5)
    assert full["accuracy"] == pytest.approx(2 / 3)
    assert full["tokens_per_forward"] == pytest.approx((4.0 + 0.5 + 0.5) / 3)


def test_summarize_layout():
    def group(scores, nfe):
        return [rec(i, s, nfe, 16) for i, s in enumerate(scores)]

    groups = {("a", "th(0.9)"): group([1, 1], 16), ("b", "th(0.9)"): group([1, 0], 16),
              ("a", "th(0.5)"): group([1, 0], 4), ("b", "th(0.5)"): group([0, 0], 4),
              ("a", "lc"): group([1, 1], 32), ("b", "lc"): group([1, 1], 32)}
    settings = {lab: {"strategy": {"type": lab[:2]}} for lab in ("lc", "th(0.9)", "th(0.5)")}
    s = summarize(groups, ["a", "b"], {"lc": ["lc"], "th": ["th(0.9)", "th(0.5)"]}, settings, xs=[90, 50])
    assert len(s["results"]) == 6 and len(s["averages"]) == 3
    r = s["results"][0]
    assert {"task", "strategy", "n", "accuracy", "accuracy_strict", "nfe", "tokens_per_forward",
            "tokens_per_step", "wall_s"} <= set(r)
    avg = {a["setting"]: a for a in s["averages"]}
    assert avg["th(0.9)"]["accuracy"] == 0.75 and avg["th(0.5)"]["tokens_per_forward"] == 4.0
    # th: (1.0, 75 %) and (4.0, 25 %): PB50 interpolates to 1 + (75-50)/(75-25) * 3 = 2.5
    assert s["pbx"]["th"]["PB50"] == pytest.approx(2.5) and s["pbx"]["th"]["PB90"] is None
    assert s["pbx"]["th"]["tokens_per_step"]["PB50"] == pytest.approx(2 + 0.5 * 6)
    assert s["pbx"]["lc"] == {"PB90": 0.5, "PB50": 0.5, "tokens_per_step": {"PB90": 1.0, "PB50": 1.0}}
    assert "oracle:lc" not in s["pbx"] and "oracle:th" in s["pbx"] and "oracle:all" in s["pbx"]
    orc = {(o["family"], o["task"]): o for o in s["oracle"]}
    assert orc["th", "a"]["accuracy"] == 1.0 and orc["th", "a"]["tokens_per_forward"] == pytest.approx(2.5)
    assert orc["all", "b"]["accuracy"] == 1.0
    assert len(s["oracle_curves"]["th"]) == 2
