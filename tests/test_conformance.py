"""Conformance suite over every registered strategy (new registrations are covered automatically).

Checks: config round trip; never commits a non-maskable position; remask is all False; dynamic strategies commit
>= 1 per step while anything is maskable; fixed strategies fill the block in exactly ``steps_per_block`` steps and
dynamic ones within ``m_b`` steps (driven by a tiny simulated loop); determinism for the same noise; shapes and
dtypes; NumPy == torch; and, if JAX is importable, NumPy == jax.jit.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
import zlib

import numpy as np
import pytest

import decoders
from decoders import SamplingParams, StepInput, get_strategy, list_strategies, strategy_from_dict
from decoders.base import _type_info

torch = pytest.importorskip("torch")

# Strategies that need the engine's branch loop (class flag ``requires_branches``, e.g. ``lopa``) are left out:
# their ``step`` is only the wrapped base's anchor rule (already covered here through the base) and their config is
# flat over the base's parameters, so ``set(to_dict()) != param_names()``. tests/test_lopa.py holds their
# conformance tests (round trips through dicts / JSON / CLI strings, step == base step, helpers on every backend).
NAMES = [r["name"] for r in list_strategies()
         if not getattr(decoders.resolve_name(r["name"]), "requires_branches", False)]

# extra hand-picked variants (only used when the strategy exists)
EXTRA = {
    "low_confidence": [{"k": 2}, {"precision": "float64"}],
    "random": [{"k": 3}],
    "topk": [{"k": 0}, {"k": 2, "score": "margin"}],
    "maskgit_plus": [{"alg_temp": 0.5}],
    "entropy": [{"alg_temp": 0.3}],
    "threshold": [{"threshold": 0.3}],
    "factor": [{"factor": 1.6}],
    "eb_sampler": [{"gamma": 1.0, "units": "bits"}],
    "left_to_right": [{"k": 3}],
}


def _variants(name: str) -> list[dict]:
    """Default config, one variant per non-default Literal choice, plus EXTRA."""
    cls = decoders.resolve_name(name)
    out: list[dict] = [{}]
    for f in dataclasses.fields(cls):
        tp = _type_info(cls)[f.name]
        if typing.get_origin(tp) is typing.Literal:
            out += [{f.name: c} for c in typing.get_args(tp) if c != f.default]
    out += EXTRA.get(name, [])
    return out


CONFIGS = [(n, v) for n in NAMES for v in _variants(n)]
CONFIG_IDS = [n + ("" if not v else "-" + ",".join(f"{k}={x}" for k, x in v.items())) for n, v in CONFIGS]

SAMPLINGS = [SamplingParams(0.0), SamplingParams(0.7, 0.9, 5)]


# ----------------------------------------------------------------------------- helpers
def _problem(seed: int, B: int = 4, L: int = 12, V: int = 9):
    """Random logits and a canvas whose block [2, 10) has a random masked pattern (row 1: nothing maskable)."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((B, L, V)) * 2.5).astype(np.float32)
    start, end = 2, 10
    in_block = np.zeros((B, L), bool)
    in_block[:, start:end] = True
    masked = rng.random((B, L)) < 0.7
    masked[:, :start] = False  # prompt
    masked[1] = False  # a row with nothing maskable
    masked[2, start:] = True  # a full row (block and beyond)
    return rng, logits, masked, in_block


def _noise(rng, s, sampling, B, L, V):
    gumbel = rng.gumbel(size=(B, L, V)) if sampling.temperature > 0 else None
    uniform = rng.random((B, L)) if s.needs_uniform_noise(sampling) else None
    return gumbel, uniform


def _to(backend: str, x):
    if x is None:
        return None
    if backend == "numpy":
        return np.asarray(x)
    if backend == "torch":
        return torch.from_numpy(np.asarray(x))
    raise ValueError(backend)


def _np(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _step(s, backend, logits, canvas, maskable, step, S, sampling, gumbel, uniform, count):
    state = s.init_state(_to(backend, count), S)
    inp = StepInput(_to(backend, logits), _to(backend, canvas), _to(backend, maskable), _to(backend, np.asarray(step)),
                    S, sampling, _to(backend, gumbel), _to(backend, uniform))
    return s.step(inp, state)


# ----------------------------------------------------------------------------- config round trip
@pytest.mark.parametrize("name,params", CONFIGS, ids=CONFIG_IDS)
def test_config_round_trip(name, params):
    s = get_strategy(name, **params)
    d = s.to_dict()
    assert d["type"] == name
    assert set(d) == {"type", *type(s).param_names()}
    assert strategy_from_dict(d) == s
    assert strategy_from_dict(json.loads(json.dumps(d))) == s  # JSON-safe
    assert decoders.Strategy.from_dict(d) == s
    assert type(s).from_dict(d) == s
    # string coercion (CLI) gives the same object
    as_str = {k: ("none" if v is None else str(v)) for k, v in d.items() if k != "type"}
    assert get_strategy(name, **decoders.coerce_params(name, as_str)) == s
    for alias in type(s).strategy_aliases:
        assert get_strategy(alias, **params) == s
    assert s.schedule in ("fixed", "dynamic")
    hash(s)  # frozen


# ----------------------------------------------------------------------------- simulated block loop
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "sampled"])
@pytest.mark.parametrize("name,params", CONFIGS, ids=CONFIG_IDS)
def test_simulated_block_loop(name, params, sampling):
    s = get_strategy(name, **params)
    rng, _, masked, in_block = _problem(seed=zlib.crc32(f"{name}{params}".encode()))
    B, L, V = masked.shape + (9,)
    mask_id = V  # never a candidate
    canvas = np.where(masked, mask_id, rng.integers(0, V, (B, L)))
    S = 3
    m_b = (masked & in_block).sum(-1)
    state = s.init_state(m_b, S)
    budget = S if s.schedule == "fixed" else int(m_b.max())
    steps = 0
    for step in range(budget):
        maskable = (canvas == mask_id) & in_block
        if s.schedule == "dynamic" and not maskable.any():
            break
        logits = (rng.standard_normal((B, L, V)) * 2.5).astype(np.float32)
        gumbel, uniform = _noise(rng, s, sampling, B, L, V)
        out = s.step(StepInput(logits, canvas, maskable, np.asarray(step), S, sampling, gumbel, uniform), state)
        tokens, commit, remask = map(np.asarray, out[:3])
        state = out.state
        assert tokens.shape == (B, L) and np.issubdtype(tokens.dtype, np.integer)
        assert commit.shape == (B, L) and commit.dtype == np.bool_
        assert remask.shape == (B, L) and remask.dtype == np.bool_
        assert not (commit & ~maskable).any(), "committed a non-maskable position"
        assert not remask.any()
        assert ((tokens >= 0) & (tokens < V)).all()
        if s.schedule == "dynamic":
            assert (commit.sum(-1) >= 1)[maskable.any(-1)].all(), "dynamic step committed nothing"
        canvas = np.where(commit, tokens, canvas)
        steps += 1
    assert not ((canvas == mask_id) & in_block).any(), f"block not finished within {budget} steps"
    assert ((canvas == mask_id) == (masked & ~in_block)).all(), "touched positions outside the block"
    if s.schedule == "fixed":
        assert steps == S


# ----------------------------------------------------------------------------- determinism and backends
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "sampled"])
@pytest.mark.parametrize("name,params", CONFIGS, ids=CONFIG_IDS)
def test_numpy_torch_identical_and_deterministic(name, params, sampling):
    s = get_strategy(name, **params)
    rng, logits, masked, in_block = _problem(seed=7)
    B, L, V = logits.shape
    maskable = masked & in_block
    canvas = np.where(masked, V, 0)
    gumbel, uniform = _noise(rng, s, sampling, B, L, V)
    count = maskable.sum(-1)
    for step in (0, 2):
        args = (logits, canvas, maskable, step, 3, sampling, gumbel, uniform, count)
        a = _step(s, "numpy", *args)
        a2 = _step(s, "numpy", *args)
        b = _step(s, "torch", *args)
        assert isinstance(b.commit, torch.Tensor) and b.commit.dtype == torch.bool
        for x, y, z in zip(a[:3], a2[:3], b[:3]):
            np.testing.assert_array_equal(_np(x), _np(y))
            np.testing.assert_array_equal(_np(x), _np(z))
            assert _np(x).dtype == _np(z).dtype or np.issubdtype(_np(x).dtype, np.integer)


@pytest.mark.parametrize("name", NAMES)
def test_missing_noise_raises(name):
    """A strategy asks for uniform noise when it reads it, and T > 0 needs Gumbel noise: a missing input raises."""
    s = get_strategy(name)
    rng, logits, masked, in_block = _problem(seed=3)
    maskable = masked & in_block
    canvas, count = masked.astype(np.int64), maskable.sum(-1)
    greedy, sampled = SAMPLINGS
    if s.needs_uniform_noise(greedy):
        with pytest.raises(ValueError):
            _step(s, "numpy", logits, canvas, maskable, 0, 3, greedy, None, None, count)
    with pytest.raises(ValueError):
        _step(s, "numpy", logits, canvas, maskable, 0, 3, sampled, None, rng.random(masked.shape), count)


# ----------------------------------------------------------------------------- JAX
@pytest.fixture(scope="module")
def jax_x64():
    jax = pytest.importorskip("jax")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", old)


JAX_CONFIGS = [(n, {}) for n in NAMES] + [
    (n, v) for n, v in [("low_confidence", {"k": 2}), ("maskgit_plus", {"alg_temp": 0.5}),
                        ("eb_sampler", {"error": "confidence"})] if n in NAMES]


@pytest.mark.parametrize("name,params", JAX_CONFIGS, ids=[n + str(v or "") for n, v in JAX_CONFIGS])
def test_jax_jit_matches_numpy(jax_x64, name, params):
    jax = jax_x64
    jnp = jax.numpy
    s = get_strategy(name, **params)
    rng, logits, masked, in_block = _problem(seed=11)
    B, L, V = logits.shape
    maskable = masked & in_block
    canvas = np.where(masked, V, 0)
    count = maskable.sum(-1)
    S = 3
    for sampling in SAMPLINGS:
        gumbel, uniform = _noise(rng, s, sampling, B, L, V)

        def f(lg, cv, mk, step, gb, un, state, sampling=sampling):
            # StepInput is built inside the traced function: steps_per_block and sampling stay static
            return s.step(StepInput(lg, cv, mk, step, S, sampling, gb, un), state)

        jitted = jax.jit(f)
        for step in (0, 1):
            ref = s.step(StepInput(logits, canvas, maskable, np.asarray(step), S, sampling, gumbel, uniform),
                         s.init_state(count, S))
            got = jitted(jnp.asarray(logits), jnp.asarray(canvas), jnp.asarray(maskable), jnp.asarray(step),
                         None if gumbel is None else jnp.asarray(gumbel),
                         None if uniform is None else jnp.asarray(uniform), s.init_state(jnp.asarray(count), S))
            for x, y in zip(ref[:3], got[:3]):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------- packaging
def test_import_does_not_pull_torch_or_jax():
    code = "import sys, decoders; decoders.list_strategies(); print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
