"""Model loading and forward, checked against an independent NumPy computation over the raw safetensors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dllm.models import DLLMConfig, load_model
from dllm.testing import tiny_config


# ---------------------------------------------------------------------------------------------- reference forward
def _read_named_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder by its real name, as float64 NumPy arrays (single file or shards)."""
    index = path / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() \
        else ["model.safetensors"]
    out = {}
    for f in files:
        for k, v in load_file(str(path / f)).items():
            out[k] = v.double().numpy()
    return out


def reference_logits(path: Path, ids, positions=None, key_mask=None) -> np.ndarray:
    """Unshifted logits ``[L, V]`` of one row, written from the checkpoint format alone (not the model code).

    Pre-norm blocks, RMSNorm, rotate-half RoPE, full attention with GQA head sharing (query head h reads kv
    head h // (H / H_kv)), SwiGLU, untied head. Hyperparameters come from the raw config.json keys.
    """
    raw = json.loads((path / "config.json").read_text())
    W = _read_named_tensors(path)
    if "d_model" in raw:  # LLaDA / OLMo naming
        D, H, Hkv, n = raw["d_model"], raw["n_heads"], raw["n_kv_heads"], raw["n_layers"]
        pre = "model.transformer."
        emb, lnf, head = W[pre + "wte.weight"], W[pre + "ln_f.weight"], W[pre + "ff_out.weight"]

        def layer(i, leaf):
            names = {"an": "attn_norm.weight", "q": "q_proj.weight", "k": "k_proj.weight", "v": "v_proj.weight",
                     "o": "attn_out.weight", "mn": "ff_norm.weight", "g": "ff_proj.weight", "u": "up_proj.weight",
                     "d": "ff_out.weight", "qb": "q_proj.bias", "kb": "k_proj.bias", "vb": "v_proj.bias"}
            return W.get(f"{pre}blocks.{i}.{names[leaf]}")
    else:  # Dream / Qwen2 naming
        D, H, Hkv, n = (raw["hidden_size"], raw["num_attention_heads"], raw["num_key_value_heads"],
                        raw["num_hidden_layers"])
        emb, lnf, head = W["model.embed_tokens.weight"], W["model.norm.weight"], W["lm_head.weight"]

        def layer(i, leaf):
            names = {"an": "input_layernorm.weight", "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
                     "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight",
                     "mn": "post_attention_layernorm.weight", "g": "mlp.gate_proj.weight",
                     "u": "mlp.up_proj.weight", "d": "mlp.down_proj.weight", "qb": "self_attn.q_proj.bias",
                     "kb": "self_attn.k_proj.bias", "vb": "self_attn.v_proj.bias"}
            return W.get(f"model.layers.{i}.{names[leaf]}")
    eps, theta = raw["rms_norm_eps"], raw["rope_theta"]
    hd = D // H
    L = len(ids)
    pos = np.arange(L) if positions is None else np.asarray(positions, dtype=np.float64)
    keep = np.ones(L, bool) if key_mask is None else np.asarray(key_mask, bool)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = np.concatenate([pos[:, None] * inv[None]] * 2, axis=-1)          # [L, hd]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):                                                            # x [heads, L, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    def lin(x, w, b=None):
        return x @ w.T + (0 if b is None else b)

    x = emb[np.asarray(ids)]
    for i in range(n):
        h = rms(x, layer(i, "an"))
        q = lin(h, layer(i, "q"), layer(i, "qb")).reshape(L, H, hd).transpose(1, 0, 2)
        k = lin(h, layer(i, "k"), layer(i, "kb")).reshape(L, Hkv, hd).transpose(1, 0, 2)
        v = lin(h, layer(i, "v"), layer(i, "vb")).reshape(L, Hkv, hd).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        heads = []
        for hh in range(H):
            kv = hh // (H // Hkv)
            s = q[hh] @ k[kv].T / np.sqrt(hd)
            s = np.where(keep[None, :], s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            heads.append(p @ v[kv])
        x = x + lin(np.concatenate(heads, -1), layer(i, "o"))
        h = rms(x, layer(i, "mn"))
        g = lin(h, layer(i, "g"))
        x = x + lin(g / (1 + np.exp(-g)) * lin(h, layer(i, "u")), layer(i, "d"))
    return lin(rms(x, lnf), head)


def _ids(n, seed, vocab=64, low=8):
    return torch.randint(low, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


# ---------------------------------------------------------------------------------------------- tests
@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("layout", ["llada", "dream"])
@pytest.mark.parametrize("sharded", [False, True])
def test_logits_match_independent_reference(make_checkpoint, layout, sharded):
    path = make_checkpoint(layout, sharded=sharded)
    if sharded:
        assert (path / "model.safetensors.index.json").exists() and len(list(path.glob("model-*.safetensors"))) > 1
    else:
        assert (path / "model.safetensors").exists()
    model = load_model(path)
    ids = _ids(11, seed=1)
    got = model(torch.tensor([ids]))[0].numpy()
    ref = reference_logits(path, ids)
    if layout == "dream":  # output i-1 predicts token i: aligned = [l_0, l_0, l_1, ..., l_{L-2}]
        ref = np.concatenate([ref[:1], ref[:-1]], 0)
    assert got.dtype == np.float32 and got.shape == (11, 64)
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=1e-4)


def test_dream_shift_and_llada_alignment(llada_dir, dream_dir):
    ids = torch.tensor([_ids(9, seed=2)])
    dream, llada = load_model(dream_dir), load_model(llada_dir)
    assert dream.config.shift_logits and not llada.config.shift_logits
    raw = dream.raw_logits(ids)
    aligned = dream(ids)
    torch.testing.assert_close(aligned[:, 0], raw[:, 0])
    torch.testing.assert_close(aligned[:, 1:], raw[:, :-1])
    torch.testing.assert_close(llada(ids), llada.raw_logits(ids))


def test_configs_read_back_in_family_format(llada_dir, dream_dir):
    raw_l = json.loads((llada_dir / "config.json").read_text())
    raw_d = json.loads((dream_dir / "config.json").read_text())
    assert raw_l["model_type"] == "llada" and "d_model" in raw_l
    assert raw_d["model_type"] == "Dream" and raw_d["num_key_value_heads"] == 2
    assert DLLMConfig.from_pretrained(llada_dir) == tiny_config("llada")
    assert DLLMConfig.from_pretrained(dream_dir) == tiny_config("dream")


@pytest.mark.parametrize("layout", ["llada", "dream"])
def test_left_padding_is_invisible(make_checkpoint, layout):
    path = make_checkpoint(layout)
    model = load_model(path)
    rows = [_ids(12, seed=3), _ids(5, seed=4), _ids(9, seed=5)]
    L = max(map(len, rows))
    pad = 0
    ids = torch.full((3, L), pad)
    mask = torch.zeros((3, L), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, L - len(r):] = torch.tensor(r)
        mask[i, L - len(r):] = True
    pos = (mask.long().cumsum(-1) - 1).clamp_min(0)
    batched = model(ids, attention_mask=mask, position_ids=pos)
    # Dream: a left-padded row's first real token takes its (shifted) logits from a pad position; it is prompt and
    # never predicted, so compare from the second real token on.
    skip = 1 if layout == "dream" else 0
    for i, r in enumerate(rows):
        alone = model(torch.tensor([r]))[0]
        torch.testing.assert_close(batched[i, L - len(r) + skip:], alone[skip:], atol=1e-5, rtol=1e-5)
    # and against the independent computation with explicit positions / key mask
    ref = reference_logits(path, ids[1].tolist(), positions=pos[1].tolist(), key_mask=mask[1].tolist())
    if layout == "dream":
        ref = np.concatenate([ref[:1], ref[:-1]], 0)
    np.testing.assert_allclose(batched[1, L - 5 + 1:].numpy(), ref[L - 5 + 1:], atol=2e-4, rtol=1e-4)


def _rewrite(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_missing_tensor_is_named(llada_dir, tmp_path):
    name = "model.transformer.blocks.1.up_proj.weight"
    bad = _rewrite(llada_dir, tmp_path / "m", lambda t: t.pop(name))
    with pytest.raises(ValueError, match="missing") as e:
        load_model(bad)
    assert name in str(e.value)


def test_unexpected_tensor_is_named(dream_dir, tmp_path):
    name = "model.layers.0.self_attn.extra.weight"
    bad = _rewrite(dream_dir, tmp_path / "u", lambda t: t.__setitem__(name, torch.zeros(3)))
    with pytest.raises(ValueError, match="unexpected") as e:
        load_model(bad)
    assert name in str(e.value)


def test_misshaped_tensor_is_named(dream_dir, tmp_path):
    name = "model.layers.1.self_attn.k_proj.weight"
    bad = _rewrite(dream_dir, tmp_path / "s", lambda t: t.__setitem__(name, torch.zeros(7, 32)))
    with pytest.raises(ValueError, match="mis-shaped") as e:
        load_model(bad)
    assert name in str(e.value) and "(7, 32)" in str(e.value)


def test_missing_shard_and_config_errors(llada_sharded_dir, tmp_path):
    bad = tmp_path / "sh"
    shutil.copytree(llada_sharded_dir, bad)
    victim = sorted(bad.glob("model-*.safetensors"))[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "nothing-here")


def test_bf16_load(llada_dir, make_checkpoint):
    f32 = load_model(llada_dir)
    bf = load_model(llada_dir, dtype="bfloat16")
    assert {p.dtype for p in bf.parameters()} == {torch.bfloat16}
    ids = torch.tensor([_ids(10, seed=6)])
    out = bf(ids)
    assert out.dtype == torch.float32  # aligned logits are float32 whatever the weights
    ref = f32(ids)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
    # a checkpoint stored in bfloat16 loads in float32 too
    stored_bf = make_checkpoint("dream", dtype="bfloat16")
    assert json.loads((stored_bf / "config.json").read_text())["torch_dtype"] == "bfloat16"
    m = load_model(stored_bf)
    assert {p.dtype for p in m.parameters()} == {torch.float32}
    assert torch.isfinite(m(ids)).all()
