"""LoPA lookahead branches (strategy ``lopa``): config, pure helpers, the torch branch loop, branch parallelism.

Tiny random checkpoints (``conftest.py``). The multi-process / multi-device checks run in subprocesses:
torch with 2 gloo ranks (``torchrun``), JAX with 4 host devices.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dllm
import decoders
from decoders import SamplingParams, StepInput, coerce_params, get_strategy, strategy_from_dict
from decoders.lopa import (Lopa, branch_confidence, build_branches, future_confidence, lookahead_candidates,
                           position_scores, select_winner)
from dllm.engine import Engine
from dllm.lookahead import LocalBranches

ROOT = Path(__file__).resolve().parents[1]
IDS = [[8, 9, 10, 11], [12], [13, 14, 15, 16, 17, 18]]


# ================================================================================================ config
def test_defaults_and_flat_dict_round_trip():
    s = get_strategy("lopa")
    d = s.to_dict()
    assert d == {"type": "lopa", "base": "threshold", "num_lookahead": 3, "alpha": 0.0, "rho": 1.0,
                 "branch_score": "confidence", "branch_scope": "block", "threshold": 0.9, "precision": "float64"}
    assert s.num_branches == 4 and s.schedule == "dynamic" and s.requires_branches
    assert strategy_from_dict(d) == s and strategy_from_dict(json.loads(json.dumps(d))) == s
    assert decoders.Strategy.from_dict(d) == s and Lopa.from_dict(d) == s
    assert get_strategy("lookahead") == s  # alias
    assert pickle.loads(pickle.dumps(s)) == s and hash(s) == hash(get_strategy("lopa"))


@pytest.mark.parametrize("params", [
    {"base": "factor", "branches": 2, "factor": 1.5},
    {"base": "entropy_threshold", "num_lookahead": 5, "alpha": 0.25, "rho": 0.5, "threshold": 0.3},
    {"base": "eb_sampler", "gamma": 1.0, "units": "bits", "branch_score": "neg_entropy", "branch_scope": "suffix"},
    {"base": "low_confidence", "k": 2, "branch_score": "margin"},   # low_confidence with k > 0 is dynamic
    {"base": {"type": "confidence_threshold", "threshold": 0.7}},
    {"base": "threshold", "base_params": '{"threshold": 0.6}'},
])
def test_round_trip_through_cli_strings(params):
    s = get_strategy("lopa", **params)
    d = s.to_dict()
    as_str = {k: str(v) for k, v in d.items() if k != "type"}   # what --param key=value gives
    assert get_strategy("lopa", **coerce_params("lopa", as_str)) == s
    for k, v in d.items():  # one swept parameter at a time (bench sweeps coerce a single key)
        if k != "type":
            one = coerce_params("lopa", {k: str(v)})
            assert get_strategy({**d, **one}) == s
    assert s.base_strategy.to_dict() == {"type": s.base, **dict(s.base_params)}


def test_cli_spec_and_replace():
    from dllm.cli import _strategy_spec

    spec = _strategy_spec("lopa", ["base=threshold", "branches=4", "threshold=0.8", "alpha=0.1"])
    s = get_strategy(spec)
    assert (s.num_lookahead, s.alpha, s.base_strategy.threshold) == (4, 0.1, 0.8)
    assert s.replace(threshold=0.5).base_strategy.threshold == 0.5
    assert s.replace(branches=1).num_lookahead == 1
    r = s.replace(base="factor")
    assert r.base == "factor" and dict(r.base_params) == {"factor": 1.0, "precision": "float64"}
    assert {"threshold", "gamma", "factor", "branches", "num_lookahead"} <= set(Lopa.param_names())
    rec = next(r for r in decoders.list_strategies() if r["name"] == "lopa")
    json.dumps(rec)


@pytest.mark.parametrize("params,needle", [
    ({"base": "low_confidence"}, "dynamic"),
    ({"base": "lopa"}, "single-branch"),
    ({"gamma": 1.0}, "has no parameter 'gamma'"),
    ({"alpha": 1.5}, "'alpha'"),
    ({"rho": 0.0}, "'rho'"),
    ({"num_lookahead": -1}, "'num_lookahead'"),
    ({"branch_score": "foo"}, "'branch_score'"),
    ({"base": "nope"}, "unknown strategy"),
    ({"num_lookahead": 2, "branches": 3}, "once"),
    ({"thresh": 0.5}, "did you mean"),
])
def test_config_errors(params, needle):
    with pytest.raises(ValueError, match=needle):
        get_strategy("lopa", **params)


def test_step_is_the_base_anchor_rule():
    """``Lopa.step`` is the base's step on NumPy and torch (the generic conformance suite skips ``lopa``)."""
    rng = np.random.default_rng(0)
    B, L, V = 3, 10, 9
    logits = (rng.standard_normal((B, L, V)) * 2.5).astype(np.float32)
    maskable = rng.random((B, L)) < 0.6
    canvas = np.where(maskable, V, 0)
    for params in ({}, {"base": "factor"}, {"base": "eb_sampler", "gamma": 0.5}):
        s = get_strategy("lopa", **params)
        base = s.base_strategy
        for conv in (np.asarray, torch.from_numpy):
            inp = StepInput(conv(logits), conv(canvas), conv(maskable), conv(np.asarray(0)), 3, SamplingParams())
            a, b = s.step(inp, s.init_state(conv(maskable.sum(-1)), 3)), base.step(inp, base.init_state(
                conv(maskable.sum(-1)), 3))
            for x, y in zip(a[:3], b[:3]):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_generic_conformance_skips_branching_strategies():
    sys.path.insert(0, str(ROOT / "tests"))
    import test_conformance

    assert "lopa" not in test_conformance.NAMES and "threshold" in test_conformance.NAMES


# ================================================================================================ helpers
def _brute_future(score, masked, rho):
    out = []
    for s, m in zip(score.reshape(-1, score.shape[-1]), masked.reshape(-1, masked.shape[-1])):
        v = sorted(s[m].tolist())
        if not v:
            out.append(1.0)
            continue
        k = max(1, math.floor(rho * len(v)))
        out.append(sum(v[:k]) / k)
    return np.asarray(out).reshape(score.shape[:-1])


@pytest.mark.parametrize("rho", [1.0, 0.5, 0.3, 0.01])
@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_branch_confidence_formula(rho, alpha):
    rng = np.random.default_rng(1)
    score = rng.random((4, 3, 11)).astype(np.float32)
    masked = rng.random((4, 3, 11)) < 0.5
    masked[0, 0] = False                      # no masks: future = 1.0
    masked[1, 1] = False
    masked[1, 1, 4] = True                    # one mask: its score
    creation = rng.random((4, 3)).astype(np.float32)
    valid = np.ones((4, 3), bool)
    valid[2, 2] = False
    fut = _brute_future(score, masked, rho)
    assert fut[0, 0] == 1.0 and np.isclose(fut[1, 1], score[1, 1, 4])
    np.testing.assert_allclose(future_confidence(score, masked, rho), fut, rtol=1e-6)
    want = np.where(valid, alpha * creation + (1 - alpha) * fut, -np.inf)
    for conv in (np.asarray, torch.from_numpy):
        got = np.asarray(branch_confidence(conv(score), conv(masked), conv(creation), alpha, rho, conv(valid)))
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_select_winner_ties_go_to_lookaheads():
    s = np.array([[0.5, 0.5, 0.2], [0.9, 0.5, 0.5], [0.1, 0.3, 0.3], [0.4, -np.inf, -np.inf]], np.float32)
    for conv in (np.asarray, torch.from_numpy):
        assert np.asarray(select_winner(conv(s))).tolist() == [1, 0, 1, 0]
    assert np.asarray(select_winner(np.zeros((2, 1), np.float32))).tolist() == [0, 0]


def test_candidates_and_branch_construction():
    score = np.array([[0.1, 0.9, 0.5, 0.9, 0.3, 0.7], [0.2, 0.1, 0.3, 0.4, 0.5, 0.6]], np.float32)
    cand = np.array([[1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 0]], bool)
    pos, valid = lookahead_candidates(score, cand, 3)
    assert pos.tolist()[0] == [1, 3, 5] and valid.tolist() == [[True] * 3, [True, False, False]]
    assert pos.tolist()[1][0] == 4
    pos8, valid8 = lookahead_candidates(score, cand, 8)   # more branches than positions
    assert pos8.shape == (2, 8) and valid8.sum(-1).tolist() == [5, 1] and pos8.tolist()[0][:3] == [1, 3, 5]
    anchor = np.array([[7, 99, 7, 99, 99, 99], [7, 7, 7, 7, 99, 7]])
    tokens = np.arange(12).reshape(2, 6) + 20
    for conv in (np.asarray, torch.from_numpy):
        br = np.asarray(build_branches(conv(anchor), conv(tokens), conv(np.asarray(pos)), conv(np.asarray(valid))))
        assert br.shape == (2, 4, 6)
        assert (br[:, 0] == anchor).all()
        for j, p in enumerate([1, 3, 5]):
            diff = np.nonzero(br[0, j + 1] != anchor[0])[0].tolist()
            assert diff == [p] and br[0, j + 1, p] == tokens[0, p]
        assert (br[1, 1, 4] == tokens[1, 4]) and (br[1, 2] == anchor[1]).all() and (br[1, 3] == anchor[1]).all()


def test_helpers_numpy_torch_jax_jit_agree():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((2, 3, 7, 11)) * 3).astype(np.float32)
    masked = rng.random((2, 3, 7)) < 0.6
    creation = rng.random((2, 3)).astype(np.float32)
    valid = rng.random((2, 3)) < 0.8
    for kind in ("confidence", "margin", "neg_entropy"):
        def f(lg, m, c, v, kind=kind):
            sc = position_scores(lg, kind)
            bc = branch_confidence(sc, m, c, 0.3, 0.6, v)
            pos, val = lookahead_candidates(sc[:, 0], m[:, 0], 2)
            return sc, bc, select_winner(bc), pos, val

        ref = f(logits, masked, creation, valid)
        tor = f(*map(torch.from_numpy, (logits, masked, creation, valid)))
        jx = jax.jit(f)(*map(jnp.asarray, (logits, masked, creation, valid)))
        for a, b, c in zip(ref, tor, jx):
            np.testing.assert_allclose(np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64), rtol=1e-5)
            np.testing.assert_allclose(np.asarray(c, dtype=np.float64), np.asarray(a, dtype=np.float64), rtol=1e-5)


# ================================================================================================ torch loop
class Counting:
    """Model wrapper counting forwards and rows."""

    def __init__(self, model):
        self.model, self.config = model, model.config
        self.calls, self.rows = 0, 0

    def __call__(self, input_ids, attention_mask=None, position_ids=None):
        self.calls += 1
        self.rows += input_ids.shape[0]
        return self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids)


class Recorder(LocalBranches):
    def __init__(self, log):
        self.log = log

    def verify(self, ctx, branches, valid, creation):
        res = super().verify(ctx, branches, valid, creation)
        self.log.append(("verify", branches.clone(), valid.clone(), creation.clone(), res, ctx.scope))
        return res


class SpyBase:
    """Wraps a base strategy, logging every fill's inputs and outputs."""

    def __init__(self, base, log):
        self.base, self.log = base, log
        self.schedule = "dynamic"

    def __getattr__(self, name):
        return getattr(self.base, name)

    def step(self, inp, state):
        out = self.base.step(inp, state)
        self.log.append(("fill", inp, out))
        return out


class SpyLopa:
    requires_branches = True

    def __init__(self, lopa, log):
        self.lopa, self.base_strategy = lopa, SpyBase(lopa.base_strategy, log)

    def __getattr__(self, name):
        return getattr(self.lopa, name)


def _instrumented(pipe, strategy, **kw):
    log = []
    model = Counting(pipe.model)
    p = dllm.Pipeline(model=model)
    p._engine = Engine(model, branch_executor=Recorder(log))
    out = dllm.generate(p, strategy=SpyLopa(strategy, log), return_order=True, **kw)
    return out, log, model


def _fresh_logits(pipe, canvas):
    with torch.no_grad():
        lg = pipe.model(canvas[None]).float()[0]
    lg[..., pipe.config.mask_token_id] = float("-inf")
    return lg


@pytest.mark.parametrize("params", [{}, {"alpha": 0.3, "rho": 0.5, "branch_score": "margin"},
                                    {"branch_scope": "suffix", "branch_score": "neg_entropy"}])
def test_branches_scores_winner_and_logit_reuse(llada_pipe, params):
    """Anchor = base rule; branch j = anchor + the j-th best remaining position (the base's token); scores are
    Eq. 2 (with alpha / rho) on each branch's own logits; the winner's logits drive the next fill; one model call
    per NFE and B * branch_forwards rows in all."""
    s = get_strategy("lopa", num_lookahead=3, threshold=0.5, **params)
    out, log, model = _instrumented(llada_pipe, s, input_ids=[[8, 9, 10, 11]], gen_length=12, block_length=6)
    assert model.calls == out.nfe[0] and model.rows == out.branch_forwards[0]
    assert out.nfe[0] == sum(1 for e in log if e[0] == "verify")  # single forwards: start and new blocks
    kind, checked = s.branch_score, 0
    for i, e in enumerate(log):
        if e[0] != "verify" or e[1].shape[1] == 1:
            continue
        _, inp, o = log[i - 1]
        branches, valid, creation, res, (a, b) = e[1][0], e[2][0], e[3][0], e[4], e[5]
        canvas = inp.canvas[0]
        anchor = torch.where(o.commit[0], o.tokens[0], canvas)
        assert torch.equal(branches[0], anchor)
        remaining = inp.maskable[0] & ~o.commit[0]
        conf = position_scores(inp.logits[0], kind)
        ranked = sorted(torch.nonzero(remaining)[:, 0].tolist(), key=lambda p: (-float(conf[p]), p))
        for j in range(1, branches.shape[0]):
            diff = torch.nonzero(branches[j] != anchor)[:, 0].tolist()
            assert diff == [ranked[j - 1]] and int(branches[j, diff[0]]) == int(o.tokens[0, diff[0]])
            assert bool(valid[j]) and math.isclose(float(creation[j]), float(conf[diff[0]]), rel_tol=1e-6)
        # scores from fresh single-sequence forwards
        want = []
        for j in range(branches.shape[0]):
            sc = position_scores(_fresh_logits(llada_pipe, branches[j])[a:b], kind)
            m = branches[j, a:b] == llada_pipe.config.mask_token_id
            want.append(float(branch_confidence(sc[None], m[None], creation[j:j + 1], s.alpha, s.rho)[0]))
        np.testing.assert_allclose(res.scores[0].numpy(), want, rtol=1e-4, atol=1e-6)
        assert int(res.winner[0]) == int(select_winner(torch.tensor([want]))[0])
        # the next fill runs on the winner's canvas with the winner's logits (no extra forward)
        if i + 1 < len(log) and log[i + 1][0] == "fill":
            nxt = log[i + 1][1]
            assert torch.equal(nxt.canvas[0], branches[int(res.winner[0])])
            torch.testing.assert_close(nxt.logits[0], _fresh_logits(llada_pipe, nxt.canvas[0]), rtol=1e-4,
                                       atol=1e-4)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("base", ["threshold", "factor", "entropy_threshold", "eb_sampler"])
def test_zero_lookahead_is_the_base_strategy(pipe, base):
    kw = dict(input_ids=IDS, gen_length=12, block_length=6, temperature=0.7, seed=3, return_order=True)
    # lookahead never proposes the mask id (dllm.lookahead), so compare with the base under the same rule
    a = dllm.generate(pipe, strategy=base, suppress_mask_token=True, **kw)
    b = dllm.generate(pipe, strategy={"type": "lopa", "base": base, "num_lookahead": 0}, **kw)
    assert a.sequences == b.sequences and a.nfe == b.nfe == b.branch_forwards and a.steps == b.steps
    assert a.decoding_order == b.decoding_order


@pytest.mark.parametrize("options", [dict(cfg_scale=1.0), dict(stop_on_eos=True, eos_id=20),
                                     dict(confidence_eos_eot_inf=True, logits_eos_inf=False)])
def test_zero_lookahead_is_the_base_with_engine_options(llada_pipe, options):
    kw = dict(input_ids=IDS[:2], gen_length=12, block_length=4, temperature=0.5, seed=1, **options)
    a = dllm.generate(llada_pipe, strategy={"type": "threshold", "threshold": 0.3}, **kw)
    b = dllm.generate(llada_pipe, strategy={"type": "lopa", "branches": 0, "threshold": 0.3}, **kw)
    assert a.sequences == b.sequences and a.nfe == b.nfe
    c = dllm.generate(llada_pipe, strategy={"type": "lopa", "branches": 2, "threshold": 0.3}, **kw)
    assert all(llada_pipe.config.mask_token_id not in r for r in c.sequences)


def test_batch_of_prompts_padding_invariance(pipe):
    kw = dict(gen_length=12, block_length=6, strategy={"type": "lopa", "num_lookahead": 3, "threshold": 0.6})
    batch = dllm.generate(pipe, input_ids=IDS, **kw)
    for i, ids in enumerate(IDS):
        one = dllm.generate(pipe, input_ids=[ids], **kw)
        assert batch.sequences[i] == one.sequences[0]
        assert batch.nfe[0] >= one.nfe[0]


def test_more_lookaheads_than_block_positions(dream_pipe):
    out = dllm.generate(dream_pipe, input_ids=IDS[:2], gen_length=8, block_length=2,
                        strategy={"type": "lopa", "num_lookahead": 5})
    assert all(dream_pipe.config.mask_token_id not in r for r in out.sequences)
    assert out.branch_forwards[0] <= 2 * out.nfe[0]   # k' = min(k, remaining) = 1 at block size 2


def test_lookahead_saves_forwards_and_reports_branch_forwards(llada_pipe):
    kw = dict(input_ids=[[8, 9, 10, 11]], gen_length=16, block_length=8)
    base = dllm.generate(llada_pipe, strategy="threshold", **kw)
    out = dllm.generate(llada_pipe, strategy={"type": "lopa", "num_lookahead": 3}, **kw)
    assert out.nfe[0] < base.nfe[0]           # the tiny model commits one token per base step
    assert out.nfe[0] < out.branch_forwards[0] <= 4 * out.nfe[0]
    assert out.total_branch_forwards == out.branch_forwards[0] and base.branch_forwards == base.nfe
    assert out.to_dict()["branch_forwards"] == out.branch_forwards


def test_iterate_events_history_and_order(dream_pipe):
    s = {"type": "lopa", "num_lookahead": 2, "threshold": 0.5}
    G = 12
    events = list(dllm.iterate(dream_pipe, input_ids=IDS[:2], gen_length=G, block_length=4, strategy=s))
    out = dllm.generate(dream_pipe, input_ids=IDS[:2], gen_length=G, block_length=4, strategy=s,
                        return_order=True, return_history=True)
    assert [e.step for e in events] == list(range(len(events))) == list(range(out.steps[0]))
    assert int(sum(e.committed.sum() for e in events)) == 2 * G
    assert events[-1].tokens.tolist() == out.sequences and events[-1].nfe <= out.nfe[0]
    assert [e.nfe for e in events] == sorted(e.nfe for e in events)
    assert out.history[0][-1] == out.sequences[0] and len(out.history[0]) == out.steps[0]
    for r in range(2):
        assert sorted(set(out.decoding_order[r])) == sorted(set(out.decoding_order[r]) - {-1})
        for blk in range(G // 4 - 1):
            assert max(out.decoding_order[r][blk * 4:(blk + 1) * 4]) < min(out.decoding_order[r][(blk + 1) * 4:])


def test_guards(llada_pipe):
    from dllm.engine import NullCache

    class Cache(NullCache):
        pass

    eng = Engine(llada_pipe.model, cache=Cache())
    cfg = dllm.DecodeConfig(gen_length=4, strategy={"type": "lopa"})
    with pytest.raises(NotImplementedError, match="KV cache"):
        list(eng.run([[8, 9]], cfg))


def test_dllm_generate_cli_with_lopa(capsys, no_tokenizer_dir):
    from dllm.cli import main

    rc = main(["generate", "--model", str(no_tokenizer_dir), "--input-ids", "8,9,10", "--gen-length", "8",
               "--block-length", "4", "--strategy", "lopa", "--param", "base=threshold", "--param", "branches=2",
               "--param", "threshold=0.5", "--json"])
    assert rc == 0
    row = json.loads(capsys.readouterr().out)["outputs"][0]
    api = dllm.generate(str(no_tokenizer_dir), input_ids=[[8, 9, 10]], gen_length=8, block_length=4,
                        strategy={"type": "lopa", "branches": 2, "threshold": 0.5})
    assert row["output_ids"] == api.sequences[0] and row["nfe"] == api.nfe[0]


def test_bench_sweep_of_lopa():
    sweeps = pytest.importorskip("bench.sweeps")
    fams = sweeps.build_families([("lopa", {"base": "threshold", "alpha": "0.1"})],
                                 ["lopa:threshold=0.8,0.9", "lopa:branches=1,2"])
    settings = fams[0].settings
    assert len(settings) == 4
    objs = [get_strategy(dict(st.strategy)) for st in settings]
    assert {(o.num_lookahead, o.base_strategy.threshold) for o in objs} == {(1, 0.8), (2, 0.8), (1, 0.9), (2, 0.9)}


# ================================================================================================ latency script
def test_latency_script_tiny_smoke(tmp_path):
    out = tmp_path / "lat.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "lopa_latency.py"), "--tiny", "--branches", "1,2",
                        "--iters", "1", "--warmup", "0", "--gen-length", "8", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert [r["branches"] for r in doc["results"]] == [1, 2] and doc["shape"]["tiny"]
    assert all(r["verify_ms"]["median"] > 0 and r["iteration_ms"] > 0 for r in doc["results"])


# ================================================================================================ branch parallelism
_TORCH_SCRIPT = r"""
import json, sys
import torch
torch.set_num_threads(1)
import dllm
from dllm.distributed.torch_branches import branch_parallel, init_from_env, main
rank, world, _ = init_from_env()
cases = json.loads(sys.argv[1])
res = []
for c in cases:
    pipe = branch_parallel(dllm.load(c.pop("model"), device="cpu"))
    out = dllm.generate(pipe, **c)
    res.append({"sequences": out.sequences, "nfe": out.nfe, "branch_forwards": out.branch_forwards,
                "bytes": pipe.engine.branch_executor.bytes_exchanged})
if rank == 0:
    open(sys.argv[2], "w").write(json.dumps({"world": world, "results": res}))
sys.argv = ["x"] + json.loads(sys.argv[3])
raise SystemExit(main())   # the CLI entry point in the same process group (it tears the group down)
"""


def _torch_cases(llada_dir, dream_dir):
    return [
        dict(model=str(llada_dir), input_ids=IDS, gen_length=12, block_length=6,
             strategy={"type": "lopa", "num_lookahead": 3, "threshold": 0.6}),
        dict(model=str(dream_dir), input_ids=IDS[:2], gen_length=12, block_length=4, temperature=0.7, seed=5,
             cfg_scale=0.5, confidence_eos_eot_inf=True, stop_on_eos=True,
             strategy={"type": "lopa", "num_lookahead": 2, "base": "factor"}),
    ]


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not found")
def test_torch_gloo_ranks_equal_single_device(tmp_path, llada_dir, dream_dir):
    """3 gloo ranks: 4 branches split 2 + 2 + 0 and 3 branches 2 + 1 + 0 (uneven groups, a rank without
    branches), prompts x branches, both layouts, sampling with CFG and EOS options; plus the ``-m`` CLI."""
    script = tmp_path / "run.py"
    script.write_text(_TORCH_SCRIPT)
    cases = _torch_cases(llada_dir, dream_dir)
    cli = ["--model", str(llada_dir), "--input-ids", "8,9,10,11", "--input-ids", "12", "--gen-length", "8",
           "--block-length", "4", "--strategy", "lopa", "--param", "branches=3", "--param", "threshold=0.6",
           "--json"]
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([torchrun, "--standalone", "--nproc-per-node=3", str(script), json.dumps(cases),
                        str(tmp_path / "out.json"), json.dumps(cli)], capture_output=True, text=True, timeout=240,
                       env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["world"] == 3
    for c, r in zip(_torch_cases(llada_dir, dream_dir), doc["results"]):
        single = dllm.generate(dllm.load(c.pop("model"), device="cpu"), **c)
        assert r["sequences"] == single.sequences
        assert r["nfe"] == single.nfe and r["branch_forwards"] == single.branch_forwards
        assert 0 < r["bytes"] < 4096 * r["nfe"][0]   # scores and fills only, never logits
    row = json.loads(p.stdout.strip().splitlines()[-1])
    assert row["world_size"] == 3
    single = dllm.generate(str(llada_dir), input_ids=[[8, 9, 10, 11], [12]], gen_length=8, block_length=4,
                           strategy={"type": "lopa", "branches": 3, "threshold": 0.6})
    assert [o["output_ids"] for o in row["outputs"]] == single.sequences


_JAX_SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
import dllm
from dllm.distributed.jax_branches import JaxLookahead, make_mesh
assert jax.device_count() == 4
out = []
for model, meshes, cfg in json.loads(sys.argv[1]):
    ids = cfg.pop("input_ids")
    pipe = dllm.load(model, backend="jax")
    for n in meshes:
        r = JaxLookahead(pipe.model, mesh=make_mesh(n)).generate(ids, dllm.DecodeConfig(**cfg))
        out.append({"devices": n, "sequences": r.sequences.tolist(), "nfe": r.nfe,
                    "branch_forwards": r.branch_forwards})
print(json.dumps(out))
"""


def test_jax_four_host_devices_equal_single_device(tmp_path, llada_dir, dream_dir):
    pytest.importorskip("jax")
    c1 = dict(input_ids=IDS, gen_length=12, block_length=6, strategy={"type": "lopa", "num_lookahead": 3,
                                                                       "threshold": 0.6})
    c2 = dict(input_ids=IDS[:2], gen_length=12, block_length=4, temperature=0.7, seed=5, cfg_scale=0.5,
              confidence_eos_eot_inf=True, stop_on_eos=True,
              strategy={"type": "lopa", "num_lookahead": 2, "base": "factor"})
    script = tmp_path / "jrun.py"
    script.write_text(_JAX_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    p = subprocess.run([sys.executable, str(script), json.dumps([[str(llada_dir), [1, 4], dict(c1)],
                                                                 [str(dream_dir), [4], dict(c2)]])],
                       capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    one, four, dream4 = json.loads(p.stdout.strip().splitlines()[-1])
    assert (one["devices"], four["devices"]) == (1, 4)
    assert four["sequences"] == one["sequences"] and four["nfe"] == one["nfe"]
    # and the JAX loop decodes what the torch engine decodes (float64 thresholds on both; the torch noise stream)
    for res, d, c in ((one, llada_dir, c1), (dream4, dream_dir, c2)):
        t = dllm.generate(str(d), **c)
        assert res["sequences"] == t.sequences and res["nfe"] == t.nfe[0]
        assert res["branch_forwards"] == t.branch_forwards[0]
