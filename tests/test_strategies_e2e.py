"""Whole-generation parity (greedy) against loop transcriptions of the published samplers, on a toy model.

The toy "model" is a deterministic function of the canvas (position bias + left/right neighbour embeddings),
so a wrong commit anywhere changes later logits and the final sequence. ``_drive`` is a minimal engine: blocks,
``init_state`` per block, ``steps_per_block`` steps for fixed schedules, until-empty for dynamic ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from decoders import SamplingParams, StepInput, get_strategy

torch = pytest.importorskip("torch")
F = torch.nn.functional

V = 11  # real tokens 0..V-1; the mask id is V (never predicted: the model emits V logits)
MASK = V
P, GEN = 3, 16


class ToyModel:
    def __init__(self, seed: int, scale: float = 2.0):
        g = torch.Generator().manual_seed(seed)
        self.pos = torch.randn(P + GEN, V, generator=g, dtype=torch.float64) * scale
        self.left = torch.randn(V + 1, V, generator=g, dtype=torch.float64) * scale
        self.right = torch.randn(V + 1, V, generator=g, dtype=torch.float64) * scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        left = torch.cat([torch.full_like(x[:, :1], MASK), x[:, :-1]], 1)
        right = torch.cat([x[:, 1:], torch.full_like(x[:, :1], MASK)], 1)
        return (self.pos[None] + self.left[left] + self.right[right]).to(torch.float32)


def _prompt(B: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, V, (B, P)))


def _drive(strategy, model, prompt, steps, block_length):
    """Minimal engine around the strategy contract (torch tensors, so softmaxes are torch's own kernels)."""
    B = prompt.shape[0]
    x = torch.cat([prompt, torch.full((B, GEN), MASK)], 1)
    nblocks = GEN // block_length
    S = steps // nblocks
    nfe = 0
    for b in range(nblocks):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        in_block = torch.zeros_like(x, dtype=torch.bool)
        in_block[:, lo:hi] = True
        state = strategy.init_state(((x == MASK) & in_block).sum(-1), S)
        step = 0
        while True:
            maskable = (x == MASK) & in_block
            if strategy.schedule == "fixed" and step == S:
                break
            if strategy.schedule == "dynamic" and not bool(maskable.any()):
                break
            logits = model(x)
            nfe += 1
            out = strategy.step(StepInput(logits, x, maskable, torch.tensor(step), S, SamplingParams(0.0)), state)
            state = out.state
            x = torch.where(out.commit, out.tokens, x)
            step += 1
    assert not (x == MASK).any()
    return x.numpy(), nfe


# ----------------------------------------------------------------------------- transcriptions
def _transfer_counts(block_mask, steps):
    n = block_mask.sum(1, keepdim=True)
    out = torch.zeros(n.shape[0], steps, dtype=torch.int64) + n // steps
    for i in range(n.shape[0]):
        out[i, : int(n[i] % steps)] += 1
    return out


def _ref_llada(model, prompt, steps, block_length):
    """LLaDA generate.py (low_confidence, T = 0, no CFG)."""
    x = torch.cat([prompt, torch.full((prompt.shape[0], GEN), MASK)], 1)
    nb = GEN // block_length
    S = steps // nb
    for b in range(nb):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        counts = _transfer_counts(x[:, lo:hi] == MASK, S)
        for i in range(S):
            mask_index = x == MASK
            logits = model(x)
            x0 = logits.argmax(-1)
            x0_p = torch.gather(F.softmax(logits, dim=-1), -1, x0[..., None])[..., 0]
            x0_p[:, hi:] = -np.inf
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, x0_p, -np.inf)
            sel_mask = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(conf.shape[0]):
                _, sel = torch.topk(conf[j], k=int(counts[j, i]))
                sel_mask[j, sel] = True
            x[sel_mask] = x0[sel_mask]
    return x.numpy()


def _ref_fast_dllm(model, prompt, block_length, threshold=None, factor=None, entropy_tau=None):
    """Fast-dLLM generate (no cache) with get_transfer_index / _dynamic; dParallel's entropy variant."""
    x = torch.cat([prompt, torch.full((prompt.shape[0], GEN), MASK)], 1)
    nfe = 0
    for b in range(GEN // block_length):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        while True:
            nfe += 1
            mask_index = x == MASK
            logits = model(x)
            mask_index[:, hi:] = False
            x0 = logits.argmax(-1)
            p = F.softmax(logits.to(torch.float64), dim=-1)
            if entropy_tau is not None:
                score = -torch.sum(p * torch.log(p + 1e-12), -1)
                score = torch.where(mask_index, -score, -np.inf)  # lowest entropy first
            else:
                score = torch.where(mask_index, torch.gather(p, -1, x0[..., None])[..., 0], -np.inf)
            x0 = torch.where(mask_index, x0, x)
            sel_mask = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(x.shape[0]):
                M = int(mask_index[j].sum())
                if M == 0:
                    continue
                if factor is not None:
                    th = [1 - factor / (n + 1) for n in range(1, M + 1)]
                    th[0] = -1
                    srt = torch.sort(score[j][mask_index[j]], descending=True)[0]
                    for top_i in range(M):
                        if srt[top_i] < th[top_i]:
                            break
                    if top_i == 0 or top_i == M - 1:
                        top_i += 1
                    _, sel = torch.topk(score[j], k=top_i)
                    sel_mask[j, sel] = True
                    continue
                _, sel = torch.topk(score[j], k=M)
                sel_mask[j, sel] = True
                for k in range(1, M):
                    if entropy_tau is not None and -score[j, sel[k]] > entropy_tau:
                        sel_mask[j, sel[k]] = False
                    if threshold is not None and score[j, sel[k]] < threshold:
                        sel_mask[j, sel[k]] = False
            x[sel_mask] = x0[sel_mask]
            if (x[:, lo:hi] == MASK).sum() == 0:
                break
    return x.numpy(), nfe


def _ref_dream(model, prompt, steps, alg, eps=1e-3):
    """Dream _sample (no blocks, T = 0, alg_temp None); batch-averaged k (rows have equal mask counts)."""
    x = torch.cat([prompt, torch.full((prompt.shape[0], GEN), MASK)], 1)
    ts = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == MASK
        logits = model(x)
        probs = torch.softmax(logits[mask_index], -1)
        conf, x0 = probs.max(-1)
        if alg == "topk_margin":
            sp = torch.sort(probs, -1, descending=True)[0]
            conf = sp[:, 0] - sp[:, 1]
        elif alg == "entropy":
            conf = torch.sum(probs * torch.log(probs + 1e-10), -1)
        n_mask = mask_index.sum() / mask_index.shape[0]
        k = int(n_mask * (1 - ts[i + 1] / ts[i])) if i < steps - 1 else int(n_mask)
        full = torch.full_like(x, -torch.inf, dtype=logits.dtype)
        full[mask_index] = conf
        if k > 0:
            _, sel = torch.topk(full, k)
            x_ = torch.full_like(x, MASK)
            x_[mask_index] = x0
            rows = torch.arange(x.shape[0])[:, None].expand_as(sel)
            x[rows, sel] = x_[rows, sel]
    return x.numpy()


def _ref_eb(model, prompt, gamma):
    x = torch.cat([prompt, torch.full((prompt.shape[0], GEN), MASK)], 1)
    nfe = 0
    while (x == MASK).any():
        nfe += 1
        logits = model(x)
        x0 = logits.argmax(-1)
        for j in range(x.shape[0]):
            idx = torch.nonzero(x[j] == MASK)[:, 0]
            if len(idx) == 0:
                continue
            err = torch.distributions.Categorical(logits=logits[j, idx]).entropy()
            order = torch.argsort(err)
            srt = err[order]
            k = int((torch.cumsum(srt, 0) - torch.cummax(srt, 0).values <= gamma).sum())
            k = max(1, min(k, len(idx)))
            x[j, idx[order[:k]]] = x0[j, idx[order[:k]]]
    return x.numpy(), nfe


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("steps,block_length", [(16, 16), (8, 4), (12, 8)])
@pytest.mark.parametrize("seed", [0, 1])
def test_llada_low_confidence_generation(seed, steps, block_length):
    model, prompt = ToyModel(seed), _prompt(3, seed)
    got, nfe = _drive(get_strategy("low_confidence"), model, prompt, steps, block_length)
    np.testing.assert_array_equal(got, _ref_llada(model, prompt, steps, block_length))
    assert nfe == steps


@pytest.mark.parametrize("name,kw,ref_kw", [
    ("threshold", {"threshold": 0.9}, {"threshold": 0.9}),
    ("threshold", {"threshold": 0.5}, {"threshold": 0.5}),
    ("factor", {"factor": 1.0}, {"factor": 1.0}),
    ("factor", {"factor": 1.9}, {"factor": 1.9}),
    ("entropy_threshold", {"threshold": 0.5}, {"entropy_tau": 0.5}),
    ("entropy_threshold", {"threshold": 1.2}, {"entropy_tau": 1.2}),
])
@pytest.mark.parametrize("block_length", [4, 16])
def test_dynamic_generation(name, kw, ref_kw, block_length):
    model, prompt = ToyModel(3, scale=3.0), _prompt(2, 3)
    got, nfe = _drive(get_strategy(name, **kw), model, prompt, GEN, block_length)
    want, want_nfe = _ref_fast_dllm(model, prompt, block_length, **ref_kw)
    np.testing.assert_array_equal(got, want)
    assert nfe == want_nfe


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
@pytest.mark.parametrize("steps", [16, 5])
def test_dream_generation(alg, steps):
    model, prompt = ToyModel(4), _prompt(2, 4)
    got, nfe = _drive(get_strategy(alg), model, prompt, steps, GEN)
    np.testing.assert_array_equal(got, _ref_dream(model, prompt, steps, alg))
    assert nfe == steps


@pytest.mark.parametrize("gamma", [0.01, 1.0])
def test_eb_sampler_generation(gamma):
    model, prompt = ToyModel(5, scale=3.0), _prompt(1, 5)  # the reference loops until the whole batch is done
    got, nfe = _drive(get_strategy("eb_sampler", gamma=gamma), model, prompt, GEN, GEN)
    want, want_nfe = _ref_eb(model, prompt, gamma)
    np.testing.assert_array_equal(got, want)
    assert nfe == want_nfe
