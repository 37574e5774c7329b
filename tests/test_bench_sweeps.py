"""bench.sweeps: range/list parsing without float drift, sweep binding rules, YAML sweep files, errors."""
from __future__ import annotations

import pytest

from bench.sweeps import SweepError, build_families, load_sweep_config, parse_sweep, parse_values

pytest.importorskip("decoders")


def test_range_has_no_float_drift():
    vals = parse_values("0.5:1.0:0.05")
    assert len(vals) == 11
    assert [float(v) for v in vals] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    assert float(vals[-1]) == 1.0
    assert parse_values("0.1:0.3:0.1") == ["0.1", "0.2", "0.3"]        # float arithmetic would stop at 0.2
    assert parse_values("1.0:0.5:-0.25") == ["1", "0.75", "0.5"]       # descending
    assert parse_values("0:1:0.3") == ["0", "0.3", "0.6", "0.9"]        # stop not on the grid: not exceeded
    assert parse_values("2:2:1") == ["2"]
    assert parse_values("1:8:1") == [str(i) for i in range(1, 9)]


def test_lists():
    assert parse_values("1,2,4,8") == ["1", "2", "4", "8"]
    assert parse_values(" 0.9 ") == ["0.9"]


@pytest.mark.parametrize("bad", ["", "1,,2", "0:1", "0:1:0", "1:0:0.1", "0:1:-0.1", "a:1:0.1", "0:1:1e-6",
                                 "0:inf:1"])
def test_bad_values(bad):
    with pytest.raises(SweepError):
        parse_values(bad)


def test_parse_sweep():
    sw = parse_sweep("threshold=0.5:1.0:0.05")
    assert sw.strategy is None and sw.param == "threshold" and len(sw.values) == 11
    sw = parse_sweep("low_confidence:k=1,2")
    assert sw.strategy == "low_confidence" and sw.param == "k" and sw.values == ("1", "2")
    for bad in ("threshold", "=0.5", ":k=1", "k="):
        with pytest.raises(SweepError):
            parse_sweep(bad)


def test_unprefixed_sweep_binds_to_every_strategy_having_the_param():
    fams = build_families([("low_confidence", {}), ("threshold", {})], ["threshold=0.5:1.0:0.05"])
    assert [f.label for f in fams] == ["low_confidence", "threshold"]
    assert len(fams[0].settings) == 1 and len(fams[1].settings) == 11
    s = fams[1].settings[-1]
    assert s.strategy["type"] == "threshold" and s.strategy["threshold"] == 1.0
    assert s.label == "threshold(threshold=1.0)"
    # k (fixed tokens per step) is a parameter of low_confidence, random, topk, left_to_right
    fams = build_families([("low_confidence", {}), ("threshold", {}), ("random", {})], ["k=1,2,4,8"])
    assert [len(f.settings) for f in fams] == [4, 1, 4]
    assert [s.strategy["k"] for s in fams[0].settings] == [1, 2, 4, 8]
    assert all(isinstance(s.strategy["k"], int) for s in fams[0].settings)


def test_prefixed_sweep_binds_only_to_that_strategy_and_aliases_resolve():
    fams = build_families([("confidence_topk", {}), ("random", {})], ["low_confidence:k=2,4"])
    assert fams[0].type == "low_confidence" and len(fams[0].settings) == 2 and len(fams[1].settings) == 1


def test_grid_engine_params_and_fixed_params():
    fams = build_families([("topk", {"score": "margin"})], ["k=1,2", "block_length=8,none"], steps=16)
    f = fams[0]
    assert f.label == "topk[score=margin]"
    assert [(s.strategy["k"], s.block_length, s.steps) for s in f.settings] == [
        (1, 8, 16), (1, None, 16), (2, 8, 16), (2, None, 16)]
    assert all(s.strategy["score"] == "margin" for s in f.settings)
    # two families of one strategy with different fixed params; duplicates collapse
    fams = build_families([("topk", {"score": "margin"}), ("topk", {"score": "entropy"})], ["k=1,1.0"])
    assert [len(f.settings) for f in fams] == [1, 1]


@pytest.mark.parametrize("strategies,sweeps,match", [
    ([("low_confidence", {})], ["threshold=0.5,0.9"], "no strategy of this run has a parameter 'threshold'"),
    ([("low_confidence", {})], ["threshold:threshold=0.9"], "not among the strategies"),
    ([("threshold", {})], ["threshold:k=1"], "has no parameter 'k'"),
    ([("threshold", {"threshold": "0.9"})], ["threshold=0.5"], "both fixed"),
    ([("threshold", {})], ["threshold=0.5", "threshold:threshold=0.6"], "swept twice"),
    ([("threshold", {}), ("threshold", {})], [], "given twice"),
    ([("no_such_strategy", {})], [], "unknown strategy"),
    ([("threshold", {"bogus": "1"})], [], "no parameter 'bogus'"),
    ([("low_confidence", {})], ["k=1,x"], "cannot convert"),
    ([("low_confidence", {})], ["steps=0"], "positive integer"),
    ([], [], "no strategy"),
])
def test_binding_errors(strategies, sweeps, match):
    with pytest.raises(ValueError, match=match):
        build_families(strategies, sweeps)


def test_yaml_config(tmp_path):
    p = tmp_path / "sweep.yaml"
    p.write_text("strategies:\n"
                 "  - {type: low_confidence}\n"
                 "  - {type: topk, score: margin, sweep: {k: [1, 2]}}\n"
                 "  - type: threshold\n"
                 "    sweep: {threshold: '0.8:0.9:0.05'}\n"
                 "sweep: ['block_length=16']\n")
    strategies, sweeps = load_sweep_config(p)
    fams = build_families(strategies, sweeps)
    assert [f.label for f in fams] == ["low_confidence", "topk[score=margin]", "threshold"]
    assert [len(f.settings) for f in fams] == [1, 2, 3]
    assert all(s.block_length == 16 for f in fams for s in f.settings)
    assert [s.strategy["threshold"] for s in fams[2].settings] == [0.8, 0.85, 0.9]
    (tmp_path / "bad.yaml").write_text("strategies: [{threshold: 0.9}]\n")
    with pytest.raises(SweepError, match="'type'"):
        load_sweep_config(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("strategy: []\n")
    with pytest.raises(SweepError, match="unknown key"):
        load_sweep_config(tmp_path / "bad2.yaml")
    with pytest.raises(SweepError, match="does not exist"):
        load_sweep_config(tmp_path / "missing.yaml")
