"""The ``dllm`` CLI: the generate JSON contract (subprocess, folder without tokenizer), strategies, errors."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dllm
from dllm import cli

ROOT = Path(__file__).resolve().parents[1]
needs_decoders = pytest.mark.skipif(importlib.util.find_spec("decoders") is None,
                                    reason="decoders package not importable")


def _run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dllm", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@needs_decoders
def test_generate_json_contract_without_tokenizer(no_tokenizer_dir):
    assert not list(no_tokenizer_dir.glob("tokenizer*"))
    p = _run_module("generate", "--model", str(no_tokenizer_dir), "--input-ids", "8,9,10,11", "--input-ids",
                    "12,13", "--gen-length", "8", "--block-length", "4", "--steps", "8", "--strategy",
                    "low_confidence", "--temperature", "0", "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert list(doc) == ["outputs"] and len(doc["outputs"]) == 2
    for row in doc["outputs"]:
        assert set(row) == {"output_ids", "text", "nfe", "steps"}
        assert len(row["output_ids"]) == 8 and all(isinstance(t, int) for t in row["output_ids"])
        assert row["text"] == "" and row["nfe"] == 8 and row["steps"] == 8
    api = dllm.generate(str(no_tokenizer_dir), input_ids=[[8, 9, 10, 11], [12, 13]], gen_length=8,
                        block_length=4, steps=8)
    assert [r["output_ids"] for r in doc["outputs"]] == api.sequences


@needs_decoders
def test_strategies_json():
    p = _run_module("strategies", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    names = {r["name"] for r in doc["strategies"]}
    assert {"low_confidence", "threshold"} <= names
    rec = next(r for r in doc["strategies"] if r["name"] == "low_confidence")
    assert rec["schedule"] == "fixed" and "parameters" in rec and rec["reproduces"]


@needs_decoders
def test_generate_in_process_params_and_human_output(capsys, llada_dir):
    rc = cli.main(["generate", "--model", str(llada_dir), "--prompt", "hello world", "--gen-length", "8",
                   "--block-length", "4", "--steps", "4", "--strategy", "threshold", "--param", "threshold=0.5",
                   "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and isinstance(out["outputs"][0]["text"], str) and out["outputs"][0]["nfe"] >= 2
    rc = cli.main(["generate", "--model", str(llada_dir), "--prompt", "hello", "--gen-length", "8", "--steps", "8",
                   "--no-chat-template", "--seed", "3", "--temperature", "0.5", "--top-k", "5", "--stop-on-eos"])
    text = capsys.readouterr().out
    assert rc == 0 and "NFE 8" in text and "tokens per forward" in text


@pytest.mark.parametrize("args,needle", [
    (["--gen-length", "8", "--block-length", "3"], "block_length"),
    (["--gen-length", "8", "--block-length", "4", "--steps", "3"], "steps"),
    (["--strategy", "no_such_strategy"], "no_such_strategy"),
    (["--param", "oops"], "key=value"),
    (["--prompt", "hello"], "tokenizer"),
])
def test_errors_are_one_line_exit_2(capsys, no_tokenizer_dir, args, needle):
    base = ["generate", "--model", str(no_tokenizer_dir)]
    if "--prompt" not in args:
        base += ["--input-ids", "8,9"]
    rc = cli.main(base + args)
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dllm: error:") and needle in lines[0], err
    assert "Traceback" not in err


def test_missing_model_and_debug(capsys, tmp_path):
    assert cli.main(["generate", "--model", str(tmp_path / "nope"), "--input-ids", "1,2"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        cli.main(["generate", "--model", str(tmp_path / "nope"), "--input-ids", "1,2", "--debug"])
    assert cli.main(["generate", "--model", str(tmp_path), "--input-ids", "1,x"]) == 2
    assert "--input-ids" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse usage errors also exit 2
        cli.main(["generate", "--gen-length"])
    assert e.value.code == 2


def test_help_lists_only_implemented_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "generate" in out and "strategies" in out
    for name, sc in cli.SUBCOMMANDS.items():
        if not sc.module_available():
            assert f"    {name}" not in out


def test_register_subcommand_hook(capsys):
    def add(parser):
        parser.add_argument("--who", default="world")
        parser.set_defaults(func=lambda a: print(f"hello {a.who}") or 0)

    cli.register_subcommand("hello-test", add, "say hello")
    try:
        assert cli.main(["hello-test", "--who", "dllm"]) == 0
        assert capsys.readouterr().out.strip() == "hello dllm"
    finally:
        cli.SUBCOMMANDS.pop("hello-test")
    cli.register_subcommand("broken-test", "no_such_module_xyz:add_parser", "not there")
    try:
        assert cli.main(["broken-test"]) == 2
        assert "not available" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        assert "broken-test" not in capsys.readouterr().out
    finally:
        cli.SUBCOMMANDS.pop("broken-test")
