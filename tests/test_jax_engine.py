"""JAX engine (``backend="jax"``): token parity with the torch engine for every registered strategy (greedy and with
the torch noise stream at T > 0), processors / CFG / EOS controls, no recompile on a hyperparameter sweep, step
events, contract errors, the step-driven fallback, the CLI, and a batch-sharded decode over 4 fake CPU devices (in
a subprocess).

Compiles dominate the run time (about 1 s each on a 1-layer model): every test reuses one tiny checkpoint per
layout and one set of shapes, and parity is checked in float32 (bf16 on either side could flip near-ties).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if "jax" not in sys.modules:  # the machine is shared: one thread per XLA CPU client (before the backend starts)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
torch = pytest.importorskip("torch")
decoders = pytest.importorskip("decoders")

import numpy as np  # noqa: E402

import dllm  # noqa: E402
from dllm import DecodeConfig  # noqa: E402
from dllm.jax_engine import JaxEngine, split_strategy, trace_count  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROWS = [[8, 9, 10, 11, 12, 13], [14, 15]]  # ragged: left padding and position ids are exercised everywhere
# The tiny random checkpoint predicts [MASK] at many slots, so most tests suppress it (the tests below named
# "mask_token" / "leftover" cover the default, reference-faithful mask-token candidates).
KW = dict(input_ids=ROWS, gen_length=8, block_length=4, steps=8, return_order=True, suppress_mask_token=True)
SMALL = dict(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=16)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    from dllm.testing import make_tiny_checkpoint

    return {layout: make_tiny_checkpoint(tmp_path_factory.mktemp(f"jx-{layout}"), layout,
                                         num_kv_heads=2 if layout == "llada" else 1, **SMALL)
            for layout in ("llada", "dream")}


@pytest.fixture(scope="session")
def pipes(tiny_dirs):
    """(torch pipeline, jax pipeline) per layout; the JAX one loaded from the same folder."""
    return {layout: (dllm.load(d, device="cpu"), dllm.load(d, backend="jax")) for layout, d in tiny_dirs.items()}


def _same(a, b, history=False):
    assert a.sequences == b.sequences
    assert a.nfe == b.nfe and a.steps == b.steps
    assert a.decoding_order == b.decoding_order
    assert a.texts == b.texts and a.num_answer_tokens == b.num_answer_tokens
    if history:
        assert a.history == b.history


NAMES = [r["name"] for r in decoders.list_strategies()]


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", NAMES)
def test_every_registered_strategy_matches_torch_greedy(pipes, name):
    tp, jp = pipes["llada"]
    a = dllm.generate(tp, strategy=name, **KW)
    b = dllm.generate(jp, strategy=name, **KW)
    _same(a, b)
    s = decoders.get_strategy(name)
    assert jp.engine.last_mode == ("lookahead" if getattr(s, "requires_branches", False) else "loop")
    # mask-token candidates (the default): the same tokens, or the same contract error, on both backends
    kw = dict(KW, suppress_mask_token=False)
    got = []
    for p in (tp, jp):
        try:
            o = dllm.generate(p, strategy=name, **kw)
            got.append((o.sequences, o.decoding_order, o.nfe, o.steps))
        except RuntimeError as e:
            got.append(str(e))
    assert got[0] == got[1]


@pytest.mark.parametrize("name,params", [("low_confidence", {}), ("random", {}), ("maskgit_plus", {"alg_temp": 0.5})])
def test_sampled_decoding_matches_torch_noise_stream(pipes, name, params):
    """T > 0 (and uniform noise): the JAX engine feeds the torch backend's CPU noise stream -> same tokens."""
    tp, jp = pipes["llada"]
    kw = dict(KW, strategy={"type": name, **params}, temperature=0.7, top_k=20, seed=5, return_history=True)
    a = dllm.generate(tp, **kw)
    b = dllm.generate(jp, **kw)
    _same(a, b, history=True)
    assert jp.engine.last_mode == "loop"
    assert dllm.generate(jp, **{**kw, "seed": 6}).sequences != b.sequences


def test_processors_cfg_eos_controls_match_torch_dream_layout(pipes):
    """Dream layout (GQA, biases, shifted logits) with CFG, confidence_eos_eot_inf, logits_eos_inf, top-p, T > 0."""
    tp, jp = pipes["dream"]
    kw = dict(KW, strategy="threshold", cfg_scale=1.5, temperature=0.5, top_p=0.9, confidence_eos_eot_inf=True,
              logits_eos_inf=True, seed=2)
    _same(dllm.generate(tp, **kw), dllm.generate(jp, **kw))


def test_stop_on_eos_matches_torch(pipes):
    tp, jp = pipes["llada"]
    kw = dict(input_ids=ROWS, gen_length=12, block_length=4, steps=12, strategy="low_confidence",
              return_order=True, suppress_mask_token=True)
    plain = dllm.generate(tp, **kw)
    eos = plain.sequences[0][1]  # a token row 0 generates in block 0: call it EOS
    a = dllm.generate(tp, **kw, stop_on_eos=True, eos_id=eos)
    b = dllm.generate(jp, **kw, stop_on_eos=True, eos_id=eos)
    _same(a, b)
    assert a.sequences[0][2:] == [eos] * 10 and -1 in a.decoding_order[0]


# ---------------------------------------------------------------------------------------------- mask-token candidates
def _gen(pipe, strategy, **kw):
    obj = None if isinstance(strategy, str) else strategy
    cfg = DecodeConfig(gen_length=8, block_length=4, steps=8, strategy=strategy if obj is None else "random", **kw)
    out = dllm.generate_from_config(pipe, cfg, input_ids=ROWS, strategy=obj, return_order=True)
    return out.sequences, out.decoding_order, out.nfe


def _outcome(pipe, strategy, **kw):
    """``_gen``'s result, or the RuntimeError's message."""
    try:
        return _gen(pipe, strategy, **kw)
    except RuntimeError as e:
        return str(e)


# (SVD direction k, its sign, quantile q, scale): where the mask id wins, see mask_winning_pipes
_MASK_WINS = {"mixed": (2, 1.0, 0.6, 1.0), "sticky": (0, -1.0, 0.3, 2.0)}


@pytest.fixture(scope="module")
def mask_winning_pipes(tiny_dirs):
    """Torch / JAX pipelines of the tiny checkpoint whose ``lm_head`` row of the mask id is the row of the usual
    winner plus a direction along which the hidden states vary (a principal direction of the generated slots'
    final hidden states in a suppressed decode), shifted so the mask id wins at some slots only: "mixed" -> a few
    masks left in blocks 0 and 1, the other slots decode; "sticky" -> the mask id keeps winning at the most
    confident slots, so a fixed schedule re-commits it there and never reaches other slots of the block."""
    tp = dllm.load(tiny_dirs["llada"], device="cpu")
    m = tp.model
    mid = m.config.mask_token_id
    hidden = []
    hook = m.final_norm.register_forward_hook(lambda mod, i, o: hidden.append(o.detach()))
    _gen(tp, "low_confidence", suppress_mask_token=True)
    hook.remove()
    P = max(map(len, ROWS))
    hs = torch.cat([h[:, P:].reshape(-1, h.shape[-1]) for h in hidden])
    mu = hs.mean(0)
    vh = torch.linalg.svd(hs - mu, full_matrices=False).Vh
    w = m.lm_head.weight.detach().clone()
    top = int((hs @ w.T).argmax(-1).mode().values)
    out = {}
    for case, (k, sign, q, scale) in _MASK_WINS.items():
        direction = sign * vh[k] * torch.sign(vh[k] @ (hs[0] - mu))  # the SVD's own sign is arbitrary: fix it
        thr = torch.quantile(hs @ direction, q)
        t = dllm.load(tiny_dirs["llada"], device="cpu")
        with torch.no_grad():
            t.model.lm_head.weight[mid] = w[top] + scale * (direction - thr * mu / (mu @ mu))
        out[case] = (t, t.with_backend("jax"))
    return out, mid


@pytest.mark.parametrize("case", list(_MASK_WINS))
@pytest.mark.parametrize("name", ["low_confidence", "threshold"])
def test_mask_token_candidates_match_torch(mask_winning_pipes, name, case):
    """suppress_mask_token=False (default): the mask id can win the argmax; committing it leaves the position
    masked with no decoding order; leftover masks stay candidates of later blocks; a block may end with masks where
    the mask id was committed. Same tokens / order / NFE (or the same error) as torch, fixed and dynamic."""
    pipes, mid = mask_winning_pipes
    tp, jp = pipes[case]
    a = _outcome(tp, name)
    assert a == _outcome(jp, name)
    if case == "sticky":  # slots never committed in their block: the same "left N masked" error on both
        assert isinstance(a, tuple) or ("left" in a and "masked position" in a), a
    else:
        seqs, order, nfe = (np.asarray(x) for x in a)
        masked = seqs == mid
        assert masked.any() and (~masked).any(), "the mask id should win at some positions but not all"
        assert masked[:, :4].any() and masked[:, 4:].any()  # masks left in block 0 (no error) and in block 1
        assert (order[masked] == -1).all() and (order[~masked] >= 0).all()
        assert nfe.tolist() == [8, 8]
    # suppressed: the mask id never wins, every block ends full; both backends agree
    c = _gen(tp, name, suppress_mask_token=True)
    assert c == _gen(jp, name, suppress_mask_token=True) and mid not in np.asarray(c[0])


@dataclasses.dataclass(frozen=True)
class _Leftover:
    """Commits every maskable position: the argmax (mask id excluded) except at column ``col``, which gets the mask
    id while at most ``block_length`` positions are maskable, i.e. in its own block; in the next block it is a
    leftover mask (maskable: before the block end) and gets a token. Array API: runs on torch and JAX."""

    mask_id: int
    col: int
    block_length: int = 4
    schedule: str = "fixed"

    def init_state(self, count, S):
        return ()

    def step(self, inp, state):
        import array_api_compat

        xp = array_api_compat.array_namespace(inp.logits)
        V = inp.logits.shape[-1]
        logits = xp.where(xp.arange(V) == self.mask_id, -xp.inf, inp.logits)
        tokens = xp.argmax(logits, axis=-1)
        n = xp.sum(xp.astype(inp.maskable, xp.int32), axis=-1, keepdims=True)
        at_col = (xp.arange(inp.canvas.shape[-1]) == self.col)[None, :] & (n <= self.block_length)
        tokens = xp.where(at_col, xp.asarray(self.mask_id, dtype=tokens.dtype), tokens)
        return decoders.StepOutput(tokens, inp.maskable, xp.zeros_like(inp.maskable), state)


@pytest.mark.parametrize("schedule,nfe", [("fixed", 8), ("dynamic", 5)])
def test_committed_mask_ids_and_leftover_masks_match_torch(pipes, schedule, nfe):
    tp, jp = pipes["llada"]
    mid = tp.model.config.mask_token_id
    P = max(map(len, ROWS))
    strat = _Leftover(mask_id=mid, col=P + 1, schedule=schedule)
    a = _gen(tp, strat)
    b = _gen(jp, strat)
    assert a == b
    seqs, order, got_nfe = (np.asarray(x) for x in a)
    assert mid not in seqs and (order[:, 1] == 4).all()  # column 1 filled in block 1's first step
    assert got_nfe.tolist() == [nfe, nfe]  # dynamic: block 0 runs to its cap of block_length = 4 steps
    ev = list(dllm.iterate(jp, input_ids=ROWS, gen_length=8, block_length=4, steps=8, strategy=strat))
    assert (ev[3].tokens[:, 1] == mid).all()  # block 0 ended with the leftover mask (step-driven loop too)
    msgs = []
    for p in (tp, jp):
        with pytest.raises(RuntimeError, match="committed the mask token itself") as e:
            _gen(p, strat, suppress_mask_token=True)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


# ---------------------------------------------------------------------------------------------- compilation
def test_threshold_sweep_does_not_recompile(pipes):
    tp, jp = pipes["llada"]
    dllm.generate(jp, strategy={"type": "threshold", "threshold": 0.5}, **KW)  # compiled (or cached) here
    before = trace_count()
    nfes = []
    for th in (0.0, 0.3, 1.0):
        s = {"type": "threshold", "threshold": th}
        b = dllm.generate(jp, strategy=s, **KW)
        _same(dllm.generate(tp, strategy=s, **KW), b)
        nfes.append(b.nfe[0])
    assert trace_count() == before, "a threshold sweep retraced the decode program"
    assert nfes[0] == 2 and nfes[-1] == 8  # tau = 0 fills a block per step, tau = 1 one token per step
    skeleton, hyper = split_strategy(decoders.get_strategy("threshold", threshold=0.3))
    assert hyper == {"threshold": 0.3} and skeleton == split_strategy(decoders.get_strategy("threshold"))[0]
    # Dream's eps indexes a host-side table: it stays static; alg_temp (Optional) too
    assert split_strategy(decoders.get_strategy("maskgit_plus", alg_temp=0.5))[1] == {}


def test_x64_is_scoped(pipes):
    dllm.generate(pipes["llada"][1], strategy="threshold", **KW)
    assert not jax.config.jax_enable_x64
    assert jax.numpy.zeros(1, dtype=float).dtype == np.float32


# ---------------------------------------------------------------------------------------------- events / API
def test_iterate_step_events_match_torch(pipes):
    tp, jp = pipes["llada"]
    kw = dict(input_ids=ROWS, gen_length=8, block_length=4, steps=8, strategy="random", seed=4,
              suppress_mask_token=True)
    et = list(dllm.iterate(tp, **kw))
    ej = list(dllm.iterate(jp, **kw))
    assert len(et) == len(ej) == 8
    for a, b in zip(et, ej):
        assert (a.step, a.block, a.step_in_block, a.nfe, a.prompt_length) == \
               (b.step, b.block, b.step_in_block, b.nfe, b.prompt_length)
        np.testing.assert_array_equal(a.tokens.numpy(), b.tokens)
        np.testing.assert_array_equal(a.committed.numpy(), b.committed)
        np.testing.assert_array_equal(a.canvas.numpy(), b.canvas)
    step_engine = JaxEngine(jp.model, compile_loop=False)
    res = step_engine.decode(ROWS, DecodeConfig(gen_length=8, block_length=4, steps=8, strategy="random", seed=4,
                                                suppress_mask_token=True))
    assert step_engine.last_mode == "step" and res.sequences.tolist() == ej[-1].tokens.tolist()


def test_lookahead_step_events_and_per_row_forwards_match_torch(pipes):
    """LoPA's step events on JAX: the torch loop's tokens, and its per-row forwards (``row_forwards``, what
    ``bench.runner.decode_batch`` charges each row), so the bench decodes lopa on either backend alike."""
    from bench.runner import decode_batch

    tp, jp = pipes["llada"]
    rows = ROWS + [[3]]  # ragged rows fill their blocks at different steps: their forwards differ
    cfg = DecodeConfig(gen_length=8, block_length=4, suppress_mask_token=True,
                       strategy={"type": "lopa", "num_lookahead": 3, "threshold": 0.3})
    kw = dict(input_ids=rows, gen_length=8, block_length=4, suppress_mask_token=True, strategy=cfg.strategy)
    et, ej = list(dllm.iterate(tp, **kw)), list(dllm.iterate(jp, **kw))
    assert jp.engine.last_mode == "lookahead" and len(et) == len(ej) > 0
    for a, b in zip(et, ej):
        assert (a.step, a.block, a.step_in_block, a.nfe) == (b.step, b.block, b.step_in_block, b.nfe)
        np.testing.assert_array_equal(a.tokens.numpy(), b.tokens)
        np.testing.assert_array_equal(a.row_forwards.numpy(), b.row_forwards)
        np.testing.assert_array_equal(a.row_branch_forwards.numpy(), b.row_branch_forwards)
    t, j = decode_batch(tp.engine, rows, cfg, cfg.strategy), decode_batch(jp.engine, rows, cfg, cfg.strategy)
    assert (j.sequences, j.nfe, j.nfe_batch) == (t.sequences, t.nfe, t.nfe_batch)
    alone = [dllm.generate(tp, **dict(kw, input_ids=[r])).nfe[0] for r in rows]
    assert j.nfe == alone


def test_backend_argument_and_conversion(pipes, tiny_dirs):
    tp, jp = pipes["llada"]
    a = dllm.generate(tp, strategy="low_confidence", **KW)
    b = dllm.generate(tp, strategy="low_confidence", backend="jax", **KW)  # torch weights converted in memory
    c = dllm.generate(str(tiny_dirs["llada"]), strategy="low_confidence", backend="jax", **KW)
    _same(a, b)
    _same(a, c)
    assert tp.with_backend("jax") is tp.with_backend("jax") and tp.with_backend("jax").backend == "jax"
    assert jp.with_backend(None) is jp


def test_cli_backend_jax(capsys, tiny_dirs):
    from dllm import cli

    args = ["generate", "--model", str(tiny_dirs["llada"]), "--input-ids", "8,9,10,11,12,13", "--input-ids",
            "14,15", "--gen-length", "8", "--block-length", "4", "--steps", "8", "--suppress-mask-token", "--json"]
    assert cli.main(args + ["--backend", "jax"]) == 0
    jx = json.loads(capsys.readouterr().out)
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out) == jx and jx["outputs"][0]["nfe"] == 8


# ---------------------------------------------------------------------------------------------- guards
@dataclasses.dataclass(frozen=True)
class _Trespasser:
    """Commits every position, prompt included (array API: runs on torch and JAX)."""

    schedule = "fixed"

    def init_state(self, count, S):
        return ()

    def step(self, inp, state):
        import array_api_compat

        xp = array_api_compat.array_namespace(inp.logits)
        commit = xp.ones_like(inp.maskable)
        return decoders.StepOutput(xp.argmax(inp.logits, axis=-1), commit, xp.zeros_like(commit), state)


@dataclasses.dataclass(frozen=True)
class _Stuck(_Trespasser):
    """A dynamic strategy that never commits."""

    schedule = "dynamic"

    def step(self, inp, state):
        out = super().step(inp, state)
        return out._replace(commit=out.remask)


@dataclasses.dataclass(frozen=True)
class _Idle(_Stuck):
    """A fixed strategy that never commits: its blocks end with masks that were never committed."""

    schedule = "fixed"


@pytest.mark.parametrize("strategy,match", [(_Trespasser(), "outside the maskable"), (_Stuck(), "committed nothing"),
                                            (_Idle(), "left 8 masked")])
def test_contract_errors_match_torch(pipes, strategy, match):
    tp, jp = pipes["llada"]
    msgs = []
    for p in (tp, jp):
        with pytest.raises(RuntimeError, match=match) as e:
            dllm.generate(p, strategy=strategy, **dict(KW, suppress_mask_token=False))  # also hold by default
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


@dataclasses.dataclass(frozen=True)
class _TorchOnly(_Trespasser):
    def step(self, inp, state):
        return super().step(inp._replace(logits=inp.logits.double()), state)  # .double(): a torch-only method


def test_torch_only_strategy_is_a_clear_error(pipes):
    from dllm.jax_engine import StrategyTraceError

    with pytest.raises(StrategyTraceError, match="cannot run on the JAX backend.*array API"):
        dllm.generate(pipes["llada"][1], strategy=_TorchOnly(), **KW)


@dataclasses.dataclass(frozen=True)
class _DriftingState:
    """low_confidence whose state changes dtype after the first step: no while-loop carry -> step-driven loop."""

    schedule = "fixed"
    inner: object = decoders.get_strategy("low_confidence")

    def init_state(self, count, S):
        return self.inner.init_state(count, S)

    def step(self, inp, state):
        out = self.inner.step(inp, state)
        import array_api_compat

        xp = array_api_compat.array_namespace(inp.logits)
        return out._replace(state=type(state)(xp.astype(state.block_mask_count, xp.float32)))


def test_state_changing_strategy_falls_back_to_step_loop(pipes):
    tp, jp = pipes["llada"]
    with pytest.warns(RuntimeWarning, match="step-driven"):
        b = dllm.generate(jp, strategy=_DriftingState(), **KW)
    assert jp.engine.last_mode == "step"
    _same(dllm.generate(tp, strategy="low_confidence", **KW), b)


# ---------------------------------------------------------------------------------------------- multi-device
_ROWS3 = [[8, 9, 10, 11, 12, 13], [14, 15], [16, 17, 18]]  # 3 rows on 4 devices -> one inert padding row
_SHARD_CASES = [(dict(strategy="threshold", temperature=0.7, seed=2), "jax", "loop"),  # jax.random: same draws
                (dict(strategy="random", seed=3), "torch", "step")]  # torch noise on a mesh: step-driven

_SHARDED = textwrap.dedent("""
    import json, sys
    import jax
    import dllm
    from dllm import DecodeConfig
    from dllm.jax_engine import JaxEngine
    assert len(jax.devices()) == 4, jax.devices()
    path, rows, cases, expected = sys.argv[1], *map(json.loads, sys.argv[2:])
    model = dllm.load(path, backend="jax").model
    mesh = jax.make_mesh((4,), ("batch",))
    for (kw, noise, mode), ref in zip(cases, expected):
        cfg = DecodeConfig(gen_length=8, block_length=4, steps=8, suppress_mask_token=True, **kw)
        eng = JaxEngine(model, noise=noise, mesh=mesh)
        four = eng.decode(rows, cfg)
        assert eng.last_mode == mode, (kw, eng.last_mode)
        got = [four.sequences.tolist(), four.decoding_order.tolist(), four.nfe]
        assert got == ref, (kw, got, ref)
        if noise == "jax":  # the same program through the API: dllm.load(mesh=...)
            pipe = dllm.load(path, backend="jax", mesh=mesh, engine_options={"noise": "jax"})
            out = dllm.generate_from_config(pipe, cfg, input_ids=rows)
            assert out.sequences == ref[0] and pipe.engine.num_shards == 4
    print("SHARDED-DECODE-OK")
""")


def test_sharded_decode_equals_unsharded_on_4_cpu_devices(pipes, tiny_dirs):
    model = pipes["llada"][1].model
    expected = []
    for kw, noise, _ in _SHARD_CASES:  # single-device references, computed here
        cfg = DecodeConfig(gen_length=8, block_length=4, steps=8, suppress_mask_token=True, **kw)
        r = JaxEngine(model, noise=noise).decode(_ROWS3, cfg)
        expected.append([r.sequences.tolist(), r.decoding_order.tolist(), r.nfe])
    env = dict(os.environ)
    env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false "
                        "intra_op_parallelism_threads=1")
    env["JAX_PLATFORMS"] = "cpu"
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    args = [json.dumps(x) for x in (_ROWS3, _SHARD_CASES, expected)]
    r = subprocess.run([sys.executable, "-c", _SHARDED, str(tiny_dirs["llada"]), *args], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and "SHARDED-DECODE-OK" in r.stdout, r.stdout[-2000:] + r.stderr[-4000:]


# ---------------------------------------------------------------------------------------------- benchmark
def test_backend_speed_smoke_and_gpu_script_error(tmp_path, capsys):
    from bench import backend_speed, gpu_backend_speed

    out = tmp_path / "speed.json"
    assert gpu_backend_speed.main(["--tiny", "--strategies", "low_confidence", "--no-sweep", "--forward-iters", "1",
                                   "--gen-length", "8", "--block-length", "8", "--steps", "8",
                                   "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {r["backend"] for r in doc["results"]} == {"torch", "jax"}
    for r in doc["results"]:
        assert r["nfe"] == 8 and r["decode_s"] > 0 and r["forward_s"] > 0 and r["outside_forward_share"] is not None
    assert doc["parity"]["low_confidence"]["same_tokens"] and "DLPack" in doc["meta"]["model"]["source"]
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs CUDA torch and CUDA jax"):
            gpu_backend_speed.main(["--out", str(tmp_path / "gpu.json")])
