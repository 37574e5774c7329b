"""JAX backend: same logits as the torch backend on tiny checkpoints of both layouts, loading, dtypes, padding,
errors from the shared loader, and a batch-sharded forward over 4 fake CPU devices (in a subprocess).

Compiles are kept few: every comparison runs the jitted ``forward_fn`` on one padded ``[2, 12]`` batch, and
models with the same config share the compiled function.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from dllm.models import load_model  # noqa: E402
from dllm.models.jax_loader import load_jax_model  # noqa: E402
from dllm.models.jax_model import DiffusionTransformer, make_forward_fn  # noqa: E402
from dllm.models.layout import logical_shapes  # noqa: E402
from dllm.models.torch_loader import load_torch_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
L = 12
SHORT = 7  # length of the left-padded second row


def _batch(vocab: int = 64):
    """Row 0: 12 real tokens; row 1: 7 real tokens left-padded with 0; cumsum positions, pads clamped to 0."""
    rng = np.random.default_rng(1)
    ids = rng.integers(8, vocab, size=(2, L)).astype(np.int32)
    ids[1, : L - SHORT] = 0
    mask = np.ones((2, L), bool)
    mask[1, : L - SHORT] = False
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None).astype(np.int32)
    return ids, mask, pos


def _torch_logits(model, ids, mask=None, pos=None) -> np.ndarray:
    t = lambda a: None if a is None else torch.from_numpy(np.asarray(a)).long()  # noqa: E731
    with torch.no_grad():
        return model(t(ids), None if mask is None else torch.from_numpy(mask), t(pos)).float().numpy()


def _jax_logits(model, ids, mask=None, pos=None) -> np.ndarray:
    fn, state = make_forward_fn(model)
    out = fn(state, ids, mask, pos)
    assert out.dtype == jnp.float32 and out.shape == (*np.shape(ids), model.config.vocab_size)
    return np.asarray(out)


@pytest.mark.parametrize("layout", ["llada", "dream"])
def test_logits_match_torch(make_checkpoint, layout):
    path = make_checkpoint(layout)
    tm, jm = load_torch_model(path), load_jax_model(path)
    assert jm.config == tm.config and jm.shift_logits == (layout == "dream")
    if layout == "dream":  # the GQA + bias path is really exercised
        assert jm.config.num_kv_heads < jm.config.num_heads and jm.config.qkv_bias
    ids, mask, pos = _batch(jm.config.vocab_size)
    np.testing.assert_allclose(_jax_logits(jm, ids, mask, pos), _torch_logits(tm, ids, mask, pos),
                               atol=1e-4, rtol=1e-4)


def test_defaults_eager_call_and_names(make_checkpoint):
    """``model(ids)`` eagerly with default mask / positions == torch; logical names == the layout table."""
    path = make_checkpoint("llada")
    tm, jm = load_torch_model(path), load_jax_model(path)
    ids = _batch()[0][:1, :5]
    out = jm(jnp.asarray(ids))  # eager NNX call, int32 ids, no mask / positions
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), _torch_logits(tm, ids), atol=1e-4, rtol=1e-4)
    sd = jm.logical_state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == logical_shapes(jm.config)
    ref = {k: v.detach().numpy() for k, v in tm.logical_state_dict().items()}
    assert all(np.array_equal(np.asarray(sd[k]), ref[k]) for k in ref)
    # load_model dispatches to this backend; a random-init model has the same structure
    assert isinstance(load_model(path, backend="jax"), DiffusionTransformer)
    rnd = DiffusionTransformer(jm.config)
    assert {k: v.shape for k, v in rnd.logical_state_dict().items()} == {k: v.shape for k, v in sd.items()}


@pytest.mark.parametrize("layout", ["llada", "dream"])
def test_left_padding_is_invisible(make_checkpoint, layout):
    jm = load_jax_model(make_checkpoint(layout))
    ids, mask, pos = _batch(jm.config.vocab_size)
    batched = _jax_logits(jm, ids, mask, pos)
    alone = _jax_logits(jm, ids[1:, L - SHORT:])[0]
    # Dream: the first real token's (shifted) logits come from a pad position; it is prompt, never predicted.
    skip = 1 if layout == "dream" else 0
    np.testing.assert_allclose(batched[1, L - SHORT + skip:], alone[skip:], atol=1e-5, rtol=1e-5)
    assert np.isfinite(batched).all()


def test_sharded_folder_loads(make_checkpoint):
    single, sharded = make_checkpoint("dream"), make_checkpoint("dream", sharded=True)
    assert (sharded / "model.safetensors.index.json").is_file()
    a, b = load_jax_model(single), load_jax_model(sharded)
    sa, sb = a.logical_state_dict(), b.logical_state_dict()
    assert sa.keys() == sb.keys() and all(np.array_equal(np.asarray(sa[k]), np.asarray(sb[k])) for k in sa)
    ids, mask, pos = _batch()
    ref = _torch_logits(load_torch_model(sharded), ids, mask, pos)
    np.testing.assert_allclose(_jax_logits(b, ids, mask, pos), ref, atol=1e-4, rtol=1e-4)


def test_bf16(make_checkpoint):
    path = make_checkpoint("llada")
    jm = load_jax_model(path, dtype="bfloat16")
    assert {v.dtype for v in jm.logical_state_dict().values()} == {jnp.dtype(jnp.bfloat16)}
    ids, mask, pos = _batch()
    out = _jax_logits(jm, ids, mask, pos)  # float32 logits whatever the weights
    ref32 = _torch_logits(load_torch_model(path), ids, mask, pos)
    ref16 = _torch_logits(load_torch_model(path, dtype="bfloat16"), ids, mask, pos)
    assert np.isfinite(out).all()
    scale = np.abs(ref32).max()
    assert np.abs(out - ref32).max() < 0.1 * scale
    assert np.abs(out - ref16).max() < 0.1 * scale
    # a checkpoint stored in bf16 loads in float32 and matches torch loading it the same way
    stored = make_checkpoint("dream", dtype="bfloat16")
    jm32 = load_jax_model(stored)
    assert {v.dtype for v in jm32.logical_state_dict().values()} == {jnp.dtype(jnp.float32)}
    ref = _torch_logits(load_torch_model(stored), ids, mask, pos)
    np.testing.assert_allclose(_jax_logits(jm32, ids, mask, pos), ref, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- loader errors
def _rewrite(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_loader_errors_name_the_tensor(make_checkpoint, tmp_path):
    llada, dream = make_checkpoint("llada"), make_checkpoint("dream")
    name = "model.transformer.blocks.1.up_proj.weight"
    with pytest.raises(ValueError, match="missing") as e:
        load_jax_model(_rewrite(llada, tmp_path / "m", lambda t: t.pop(name)))
    assert name in str(e.value)
    name = "model.layers.1.self_attn.k_proj.weight"
    with pytest.raises(ValueError, match="mis-shaped") as e:
        load_jax_model(_rewrite(dream, tmp_path / "s", lambda t: t.__setitem__(name, torch.zeros(7, 32))))
    assert name in str(e.value) and "(7, 32)" in str(e.value)
    name = "model.layers.0.self_attn.extra.weight"
    with pytest.raises(ValueError, match="unexpected") as e:
        load_jax_model(_rewrite(dream, tmp_path / "u", lambda t: t.__setitem__(name, torch.zeros(3))))
    assert name in str(e.value)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_jax_model(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="dtype"):
        load_jax_model(llada, dtype="int8")


# ---------------------------------------------------------------------------------------------- multi-device
_SHARDED_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import jax
    from jax.sharding import AxisType
    from dllm.models.jax_loader import load_jax_model
    from dllm.models.jax_model import make_forward_fn, shard_batch

    assert jax.device_count() == 4, jax.devices()
    path = sys.argv[1]
    rng = np.random.default_rng(0)
    ids = rng.integers(8, 64, size=(4, 10)).astype(np.int32)
    mask = np.ones((4, 10), bool)
    mask[1, :3] = mask[3, :6] = False
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None).astype(np.int32)
    ref_fn, ref_state = make_forward_fn(load_jax_model(path))
    ref = np.asarray(ref_fn(ref_state, ids, mask, pos))
    for types in [None, (AxisType.Auto,)]:  # default (Explicit in jax 0.10) and Auto meshes
        mesh = jax.make_mesh((4,), ("batch",), axis_types=types)
        fn, state = make_forward_fn(load_jax_model(path, mesh=mesh))
        assert all(len(x.sharding.device_set) == 4 for x in jax.tree.leaves(state))
        out = fn(state, *shard_batch(mesh, ids, mask, pos))
        assert out.sharding.spec[0] == "batch", out.sharding
        assert len(out.addressable_shards) == 4 and out.addressable_shards[0].data.shape == (1, 10, 64)
        np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5, rtol=1e-5)
    print("SHARDED-OK")
""")


def test_batch_sharded_forward_on_4_cpu_devices(make_checkpoint):
    path = make_checkpoint("dream")
    env = dict(os.environ)
    env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false "
                        "intra_op_parallelism_threads=1")
    env["JAX_PLATFORMS"] = "cpu"
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT, str(path)], env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0 and "SHARDED-OK" in r.stdout, r.stdout[-2000:] + r.stderr[-4000:]


def test_reference_model_logits_match_torch():
    """The shipped reference model: JAX logits == torch logits (fp32) on a real benchmark prompt."""
    import dllm

    if not (dllm.DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("no reference model in dllm/reference_model/")
    from bench.tasks import load_task

    tp = dllm.load(None, device="cpu")
    ids = tp.encode([load_task("waiting_line/copy", split="test", limit=1)[0].messages])[0]
    canvas = ids + [tp.config.mask_token_id] * 32
    t_logits = tp.model(torch.tensor([canvas])).numpy()
    j_logits = np.asarray(dllm.load(None, backend="jax").model(np.asarray([canvas], np.int32)))
    # fp32 summation order differs between XLA and torch; the error grows with the activations, so the tolerance is
    # relative to the logit scale (a trained model's logits reach ~40 in magnitude).
    scale = float(np.abs(t_logits).max())
    np.testing.assert_allclose(j_logits, t_logits, atol=2e-5 * scale, rtol=2e-4)
    # greedy decoding commits the argmax, so the two backends must pick the same token everywhere
    assert (j_logits.argmax(-1) == t_logits.argmax(-1)).all()
