"""``dllm bench`` end to end on a tiny random checkpoint: run folder layout and schema, resume, config check,
``--tasks-from`` on exported ParallelBench files, per-row NFE accounting in batches, CLI errors."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dllm import cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("decoders") is None or
                                importlib.util.find_spec("matplotlib") is None,
                                reason="needs the decoders package and matplotlib (the bench extra)")

RESULT_KEYS = {"task": str, "strategy": dict, "n": int, "accuracy": float, "accuracy_strict": float, "nfe": float,
               "tokens_per_forward": float, "tokens_per_step": float, "wall_s": float}
SAMPLE_KEYS = {"task", "index", "strategy", "setting", "gen_length", "block_length", "steps", "prompt", "output",
               "parsed", "score", "score_strict", "nfe", "nfe_batch", "answer_tokens", "tokens_per_forward",
               "tokens_per_step", "order", "wall_s", "output_ids"}
TIMING = {"wall_s", "wall_s_total", "tokens_per_second"}


def bench_args(model, out, *extra):
    return ["bench", "--model", str(model), "--tasks", "copy", "reverse", "--limit", "2", "--batch-size", "2",
            "--strategy", "low_confidence", "--strategy", "threshold", "--sweep", "threshold=0.05,0.1",
            "--no-progress", "--out", str(out), *extra]


def read_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def strip_timing(obj):
    if isinstance(obj, dict):
        return {k: strip_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [strip_timing(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, llada_dir):
    out = tmp_path_factory.mktemp("bench") / "run"
    assert cli.main(bench_args(llada_dir, out)) == 0
    return out


def test_run_folder_layout_and_schema(first_run, llada_dir):
    out = first_run
    summary = json.loads((out / "summary.json").read_text())
    # --- the contract: results per (task, strategy setting)
    assert len(summary["results"]) == 2 * 3
    for r in summary["results"]:
        for key, tp in RESULT_KEYS.items():
            assert isinstance(r[key], tp), (key, r[key])
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["accuracy_strict"] <= 1.0
        assert r["strategy"]["type"] in ("low_confidence", "threshold") and r["n"] == 2
        assert r["gen_length"] == 32 and r["block_length"] == 32 and r["steps"] == 32   # lists: max_tokens 32
        assert r["tokens_per_forward"] <= r["tokens_per_step"] + 1e-9
    assert {r["task"] for r in summary["results"]} == {"waiting_line/copy", "waiting_line/reverse"}
    assert {r["strategy"].get("threshold") for r in summary["results"]} == {None, 0.05, 0.1}
    assert set(summary["pbx"]) >= {"low_confidence", "threshold", "oracle:threshold", "oracle:all"}
    assert set(summary["pbx"]["threshold"]) == {"PB90", "PB80", "PB70", "tokens_per_step"}
    assert len(summary["averages"]) == 3 and all(a["n_tasks"] == 2 for a in summary["averages"])
    assert summary["families"]["threshold"] == ["threshold(threshold=0.05)", "threshold(threshold=0.1)"]
    assert summary["run"]["model"]["path"] == str(Path(llada_dir).resolve())
    # --- per-sample JSONL
    lines = read_lines(out / "samples.jsonl")
    assert len(lines) == 2 * 2 * 3
    for rec in lines:
        assert SAMPLE_KEYS <= set(rec)
        assert len(rec["order"]) == 32 and len(rec["output_ids"]) == 32
        assert rec["tokens_per_forward"] == pytest.approx(rec["answer_tokens"] / rec["nfe"])
        assert rec["tokens_per_step"] == pytest.approx(32 / rec["nfe"])
        assert max(rec["order"]) == rec["nfe"] - 1 and min(rec["order"]) >= 0   # own-forward step indices
        assert rec["prompt"].startswith("<|startoftext|>")                      # chat template applied
        if rec["strategy"]["type"] == "low_confidence":
            assert rec["nfe"] == 32                                             # one token per step
    # --- Markdown and plots
    md = (out / "results.md").read_text()
    assert "## Task averages" in md and "## PBx" in md and "## Oracle" in md and "waiting_line/copy" in md
    for name in ("plot_average.png", "plot_waiting_line_copy.png", "plot_waiting_line_reverse.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "run.json").read_text())["config"]["decode"]["temperature"] == 0.0


def test_resume_computes_only_missing_samples(first_run, llada_dir, tmp_path, monkeypatch):
    import shutil

    import bench.runner as runner

    out = tmp_path / "resume"
    shutil.copytree(first_run, out)
    before = json.loads((out / "summary.json").read_text())
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    half = len(lines) // 2
    # keep half, plus a line cut mid-write (a hard kill): it must be dropped and recomputed
    (out / "samples.jsonl").write_text("".join(lines[:half]) + lines[half][:25])
    (out / "summary.json").unlink()
    computed = []
    real = runner.decode_batch

    def counting(engine, rows, config, strategy):
        computed.append(len(rows))
        return real(engine, rows, config, strategy)

    monkeypatch.setattr(runner, "decode_batch", counting)
    assert cli.main(bench_args(llada_dir, out)) == 0
    assert sum(computed) == len(lines) - half
    after_lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    assert after_lines[:half] == lines[:half] and len(after_lines) == len(lines)
    after = json.loads((out / "summary.json").read_text())
    assert strip_timing(after) == strip_timing(before)
    # nothing left to do: no decoding at all
    computed.clear()
    assert cli.main(bench_args(llada_dir, out)) == 0
    assert computed == []


def test_rerun_with_other_settings_is_refused(first_run, llada_dir, capsys):
    assert cli.main(bench_args(llada_dir, first_run, "--temperature", "0.5")) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "temperature" in err


def test_tasks_from_exported_parallelbench_folder(first_run, llada_dir, tmp_path):
    from bench.tasks import export_parallelbench, load_task

    data = tmp_path / "pb"
    export_parallelbench(load_task("waiting_line/copy", limit=2) + load_task("waiting_line/reverse", limit=2), data)
    group = data / "waiting_line"
    assert (group / "task_config.yaml").is_file() and (group / "copy.jsonl").is_file()
    out = tmp_path / "from_files"
    assert cli.main(["bench", "--model", str(llada_dir), "--tasks-from", str(group), "--tasks", "copy",
                     "--strategy", "low_confidence", "--no-progress", "--no-plots", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["task"], r["strategy"]["type"], r["n"]) for r in summary["results"]] == [
        ("waiting_line/copy", "low_confidence", 2)]
    assert summary["run"]["data"]["tasks_from"] == str(group.resolve())
    # same items, same model, same decoding: the same outputs as the generated-task run
    ref = {r["index"]: r for r in read_lines(first_run / "samples.jsonl")
           if r["task"] == "waiting_line/copy" and r["strategy"]["type"] == "low_confidence"}
    for rec in read_lines(out / "samples.jsonl"):
        assert rec["prompt"] == ref[rec["index"]]["prompt"]
        assert rec["output_ids"] == ref[rec["index"]]["output_ids"]
    assert not list(out.glob("*.png"))


def test_decode_batch_charges_each_row_its_own_forwards(llada_pipe):
    import dllm
    from bench.runner import decode_batch
    from dllm.engine import resolve_strategy

    rows = [[8, 9, 10, 11, 12, 13], [14, 15], [20, 21, 22, 23]]
    for strategy in ({"type": "threshold", "threshold": 0.1}, {"type": "low_confidence", "k": 3},
                     {"type": "low_confidence"}):
        cfg = dllm.DecodeConfig(gen_length=16, block_length=8, steps=8, strategy=strategy)
        s = resolve_strategy(cfg.strategy)
        batch = decode_batch(llada_pipe.engine, rows, cfg, s)
        alone = [decode_batch(llada_pipe.engine, [r], cfg, s) for r in rows]
        assert batch.nfe == [a.nfe[0] for a in alone], strategy
        assert batch.order == [a.order[0] for a in alone], strategy
        assert batch.sequences == [a.sequences[0] for a in alone]
        assert batch.nfe_batch == max(batch.nfe)
    assert batch.nfe == [8, 8, 8]  # fixed schedule: steps


def test_decode_batch_counts_every_lookahead_forward(llada_pipe):
    """A lookahead step may run two forwards (the bare canvas, then the branches): a row alone is charged all."""
    import dllm
    from bench.runner import decode_batch
    from dllm.engine import resolve_strategy

    cfg = dllm.DecodeConfig(gen_length=16, block_length=8, strategy={"type": "lopa", "branches": 2,
                                                                     "threshold": 0.6})
    alone = decode_batch(llada_pipe.engine, [[8, 9, 10, 11]], cfg, resolve_strategy(cfg.strategy))
    assert alone.nfe == [alone.nfe_batch] == dllm.generate(llada_pipe, input_ids=[[8, 9, 10, 11]], gen_length=16,
                                                           block_length=8, strategy=cfg.strategy).nfe


def test_decode_batch_charges_lookahead_rows_their_own_forwards(llada_pipe):
    """In a batch, a row whose anchor fills its block still rides along in the others' verification forward; it is
    charged only what it would have run alone (greedy), for every threshold, so some rows finish early."""
    import dllm
    from bench.runner import decode_batch
    from dllm.engine import resolve_strategy

    rows = [[8, 9, 10, 11, 12, 13], [14, 15], [20, 21, 22, 23], [30, 31, 32]]
    differed = False
    for threshold in (0.02, 0.05, 0.1, 0.3, 0.6):
        cfg = dllm.DecodeConfig(gen_length=16, block_length=8, strategy={"type": "lopa", "branches": 2,
                                                                         "threshold": threshold})
        s = resolve_strategy(cfg.strategy)
        batch = decode_batch(llada_pipe.engine, rows, cfg, s)
        alone = [decode_batch(llada_pipe.engine, [r], cfg, s) for r in rows]
        assert batch.sequences == [a.sequences[0] for a in alone], threshold
        assert batch.nfe == [a.nfe[0] for a in alone], threshold
        assert batch.order == [a.order[0] for a in alone], threshold
        # and the sequences it would forward alone (bare canvas + anchor + its own lookaheads), not the batch's
        assert batch.row_branch_forwards == [a.branch_forwards for a in alone], threshold
        differed |= len(set(batch.nfe)) > 1
    assert differed  # the case this test is about: rows of one batch finishing at different forwards


def test_jax_backend_writes_the_torch_samples(llada_dir, tmp_path, capsys):
    """``--backend jax``: the same tokens, scores and per-row forwards as torch (LoPA's included), and a run folder
    of one backend is not resumed with the other."""
    pytest.importorskip("jax")
    args = ["bench", "--model", str(llada_dir), "--tasks", "copy", "--limit", "3", "--batch-size", "3",
            "--strategy", "low_confidence", "--strategy", "lopa", "--param", "branches=3", "--gen-length", "8",
            "--block-length", "4", "--no-progress", "--no-plots"]
    torch_out, jax_out = tmp_path / "torch", tmp_path / "jax"
    assert cli.main([*args, "--out", str(torch_out)]) == 0
    assert cli.main([*args, "--backend", "jax", "--out", str(jax_out)]) == 0
    t, j = read_lines(torch_out / "samples.jsonl"), read_lines(jax_out / "samples.jsonl")
    assert len(t) == len(j) == 6 and any(r["strategy"]["type"] == "lopa" for r in j)
    assert strip_timing(j) == strip_timing(t)
    capsys.readouterr()
    assert cli.main([*args, "--backend", "jax", "--out", str(torch_out)]) == 2
    assert "backend" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*args, "--backend", "tpu", "--out", str(tmp_path / "x")])
    assert "--backend" in capsys.readouterr().err


def test_cli_errors(llada_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):  # argparse: --param without a --strategy before it
        cli.main(["bench", "--param", "threshold=0.9", "--out", str(tmp_path / "x")])
    assert "must follow a --strategy" in capsys.readouterr().err
    assert cli.main(["bench", "--model", str(llada_dir), "--tasks", "nonexistent_task", "--out",
                     str(tmp_path / "y"), "--dry-run"]) == 2
    assert "matches no task" in capsys.readouterr().err
    assert cli.main(["bench", "--model", str(llada_dir), "--tasks", "copy", "--strategy", "low_confidence",
                     "--sweep", "threshold=0.9", "--out", str(tmp_path / "z"), "--dry-run"]) == 2
    assert "no strategy of this run has a parameter 'threshold'" in capsys.readouterr().err
    assert cli.main(["bench", "--tasks", "copy", "--block-length", "5", "--out", str(tmp_path / "w"),
                     "--dry-run"]) == 2
    assert "block_length" in capsys.readouterr().err


def test_python_dash_m_bench_dry_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "bench", "--tasks", "waiting_line/*", "--limit", "3", "--strategy",
                        "low_confidence", "--sweep", "k=1,2,4,8", "--out", str(tmp_path / "dry"), "--dry-run"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "10 task(s) x 4 setting(s); 120 of 120 samples to compute" in p.stderr
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing


def test_ctrl_c_leaves_a_valid_partial_jsonl_and_resumes(llada_dir, tmp_path, monkeypatch, capsys):
    import bench.runner as runner

    out = tmp_path / "interrupted"
    args = ["bench", "--model", str(llada_dir), "--tasks", "copy", "reverse", "--limit", "2", "--batch-size", "1",
            "--strategy", "low_confidence", "--gen-length", "8", "--no-progress", "--no-plots", "--out", str(out)]
    real = runner.decode_batch
    calls = []

    def interrupt_third(*a):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(runner, "decode_batch", interrupt_third)
    assert cli.main(args) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err.lower()
    assert len(read_lines(out / "samples.jsonl")) == 2 and not (out / "summary.json").exists()
    monkeypatch.setattr(runner, "decode_batch", real)
    assert cli.main(args) == 0
    lines = read_lines(out / "samples.jsonl")
    assert sorted((r["task"], r["index"]) for r in lines) == [
        ("waiting_line/copy", 0), ("waiting_line/copy", 1), ("waiting_line/reverse", 0), ("waiting_line/reverse", 1)]
    assert all(r["gen_length"] == 8 and len(r["order"]) == 8 for r in lines)
