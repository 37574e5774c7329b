"""Per-strategy rules on hand-made logits, plus parity with loop-style transcriptions of the published code.

The ``_ref_*`` helpers restate the reference algorithms (per-row Python loops with ``torch.topk`` / ``torch.sort``,
as the originals are written) so the vectorised strategies can be compared token-for-token on random logits
(continuous random values: no ties, where the references' tie order is unspecified).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import decoders
from decoders import SamplingParams, StepInput, get_strategy, ops

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _logits_for_probs(rows):
    """float32 logits whose softmax is ``rows`` (a list of probability lists; zeros -> -inf)."""
    p = np.asarray(rows, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p).astype(np.float32)


def _run(s, logits, maskable, step=0, S=1, sampling=SamplingParams(), gumbel=None, uniform=None, count=None):
    logits = np.asarray(logits, np.float32)
    maskable = np.asarray(maskable, bool)
    if count is None:
        count = maskable.sum(-1)
    canvas = np.where(maskable, 10**6, 0)
    state = s.init_state(count, S)
    out = s.step(StepInput(logits, canvas, maskable, np.asarray(step), S, sampling, gumbel, uniform), state)
    return np.asarray(out.tokens), np.asarray(out.commit)


def _rand(seed, B=3, L=16, V=12, scale=3.0):
    rng = np.random.default_rng(seed)
    return rng, (rng.standard_normal((B, L, V)) * scale).astype(np.float32)


# ============================================================================ ops
def test_rank_ties_lower_index_first_and_maskable_only():
    score = np.array([[0.5, 0.9, 0.5, 0.9, -np.inf, np.nan]])
    maskable = np.array([[True, True, True, False, True, True]])
    rank = np.asarray(ops.descending_rank(score, maskable))
    # maskable by descending score: idx1 (0.9), idx0 (0.5, lower index), idx2 (0.5), idx4 (-inf), idx5 (nan)
    assert rank[0, [1, 0, 2, 4, 5]].tolist() == [0, 1, 2, 3, 4]
    assert rank[0, 3] >= 5  # non-maskable ranks after every maskable one
    t = ops.descending_rank(torch.from_numpy(score), torch.from_numpy(maskable)).numpy()
    np.testing.assert_array_equal(rank, t)


def test_topk_mask_and_threshold_mask():
    score = np.array([[0.1, 0.7, 0.7, 0.2], [0.3, 0.3, 0.3, 0.3]])
    maskable = np.array([[True, True, True, True], [False, True, True, True]])
    k = np.array([2, 1])
    np.testing.assert_array_equal(ops.topk_mask(score, maskable, k), [[0, 1, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(ops.threshold_mask(score, maskable, 0.7), [[0, 1, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(ops.threshold_mask(score, maskable, 0.7, strict=True), [[0, 1, 0, 0], [0, 1, 0, 0]])


def test_softmax_precision_and_entropy():
    _, lg = _rand(0, B=2, L=3, V=7)
    p32 = np.asarray(ops.softmax(lg, np.float32))
    p64 = np.asarray(ops.softmax(lg, np.float64))
    assert p32.dtype == np.float32 and p64.dtype == np.float64
    np.testing.assert_allclose(p64, torch.softmax(torch.from_numpy(lg).double(), -1).numpy(), rtol=1e-12)
    h = np.asarray(ops.entropy(lg, np.float64))
    ref = torch.distributions.Categorical(logits=torch.from_numpy(lg).double()).entropy().numpy()
    np.testing.assert_allclose(h, ref, rtol=1e-12)
    h_eps = np.asarray(ops.entropy(lg, np.float64, eps=1e-12))
    np.testing.assert_allclose(h_eps, -(p64 * np.log(p64 + 1e-12)).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ops.margin(p64)), np.sort(p64, -1)[..., -1] - np.sort(p64, -1)[..., -2])


def test_cummax_shim_all_backends():
    x = np.array([[0.1, 0.5, 0.2, 0.7, 0.3]])
    want = [[0.1, 0.5, 0.5, 0.7, 0.7]]
    np.testing.assert_array_equal(ops.cummax(x), want)
    np.testing.assert_array_equal(ops.cummax(torch.from_numpy(x)).numpy(), want)


def test_gumbel_proposal_is_argmax_at_zero_temperature_and_llada_form_otherwise():
    rng, lg = _rand(1, B=2, L=4, V=6)
    np.testing.assert_array_equal(ops.propose(lg, 0.0), lg.argmax(-1))
    u = rng.random(lg.shape)
    g = -np.log(-np.log(u))
    T = 0.8
    # LLaDA: argmax(exp(l) / (-log u)^T) in float64
    ref = (np.exp(lg.astype(np.float64)) / (-np.log(u)) ** T).argmax(-1)
    np.testing.assert_array_equal(ops.propose(lg, T, g), ref)


def test_filter_logits_matches_dream_top_p_top_k():
    _, lg = _rand(2, B=2, L=5, V=30)
    T, top_p, top_k = 0.7, 0.8, 6
    z, keep = ops.filter_logits(lg, T, top_p, top_k, np.float32)
    # transcription of Dream's sample_tokens filters (sort + scatter, finfo.min fill)
    x = torch.from_numpy(lg) / T
    srt, idx = torch.sort(x, descending=True)
    cum = torch.cumsum(F.softmax(srt, dim=-1), dim=-1)
    rm = cum > top_p
    rm[..., 1:] = rm[..., :-1].clone()
    rm[..., 0] = False
    x = x.masked_fill(torch.zeros_like(x, dtype=torch.bool).scatter_(-1, idx, rm), torch.finfo(x.dtype).min)
    x = x.masked_fill(x < torch.topk(x, top_k)[0][..., -1, None], torch.finfo(x.dtype).min)
    np.testing.assert_array_equal(np.asarray(z), x.numpy())
    np.testing.assert_array_equal(np.asarray(keep), x.numpy() > torch.finfo(x.dtype).min)


# ============================================================================ LLaDA
def _ref_llada(logits, maskable, quota, score="confidence", uniform=None):
    """LLaDA generate.py step: x0 = argmax, x0_p = softmax(logits)[x0] (float32), per-row torch.topk."""
    lg = torch.from_numpy(logits)
    x0 = lg.argmax(-1)
    if score == "confidence":
        x0_p = torch.gather(F.softmax(lg, dim=-1), -1, x0[..., None])[..., 0]
    else:
        x0_p = torch.from_numpy(uniform)
    conf = torch.where(torch.from_numpy(maskable), x0_p, -torch.inf)
    commit = torch.zeros_like(conf, dtype=torch.bool)
    for j in range(conf.shape[0]):
        _, sel = torch.topk(conf[j], k=int(quota[j]))
        commit[j, sel] = True
    return x0.numpy(), (commit & torch.from_numpy(maskable)).numpy()


def test_llada_schedule_remainder_first():
    m = np.array([10, 3, 0, 8])
    S = 4
    got = np.stack([np.asarray(decoders.llada.llada_schedule_quota(m, np.asarray(s), S)) for s in range(S)], 1)
    assert got.tolist() == [[3, 3, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0], [2, 2, 2, 2]]
    # driven through the strategy: per-step commit counts follow the schedule and the block fills up
    s = get_strategy("low_confidence")
    rng, lg = _rand(3, B=1, L=10, V=5)
    maskable = np.ones((1, 10), bool)
    state = s.init_state(np.array([10]), S)
    counts = []
    for step in range(S):
        out = s.step(StepInput(lg, np.zeros((1, 10), int), maskable, np.asarray(step), S), state)
        counts.append(int(np.asarray(out.commit).sum()))
        maskable = maskable & ~np.asarray(out.commit)
    assert counts == [3, 3, 2, 2] and not maskable.any()


@pytest.mark.parametrize("seed", range(4))
def test_low_confidence_matches_reference_step(seed):
    rng, lg = _rand(10 + seed)
    maskable = rng.random(lg.shape[:2]) < 0.6
    S, step = 3, seed % 3
    m_b = maskable.sum(-1) + rng.integers(0, 3, lg.shape[0])  # block count at start (some already committed)
    quota = m_b // S + (step < m_b % S)
    quota = np.minimum(quota, maskable.sum(-1))
    tokens, commit = _run(get_strategy("low_confidence"), lg, maskable, step=step, S=S, count=m_b)
    rt, rc = _ref_llada(lg, maskable, quota)
    np.testing.assert_array_equal(tokens, rt)
    np.testing.assert_array_equal(commit, rc)


def test_low_confidence_confidence_is_untempered_and_ties_go_left():
    # equal logits everywhere: every position has the same confidence -> the leftmost maskable ones win
    lg = np.zeros((1, 6, 4), np.float32)
    maskable = np.array([[False, True, True, True, False, True]])
    _, commit = _run(get_strategy("low_confidence"), lg, maskable, S=2)  # quota ceil(4/2) = 2
    assert commit.tolist() == [[False, True, True, False, False, False]]
    # scores ignore the temperature: same selection with any Gumbel draw of the (only) candidate token
    lg = _logits_for_probs([[[0.97, 0.01, 0.01, 0.01], [0.6, 0.4, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0]]])
    g = np.zeros((1, 3, 4))
    g[..., 0] = 50.0  # the sampled candidate is token 0 everywhere
    _, commit = _run(get_strategy("low_confidence", k=1), lg, np.ones((1, 3), bool),
                     sampling=SamplingParams(5.0), gumbel=g)
    assert commit.tolist() == [[True, False, False]]


def test_random_commits_top_uniform():
    rng, lg = _rand(4, B=2, L=8, V=5)
    maskable = np.ones((2, 8), bool)
    maskable[1, :3] = False
    u = rng.random((2, 8))
    s = get_strategy("random")
    tokens, commit = _run(s, lg, maskable, S=4, uniform=u)
    quota = np.array([2, 2])  # 8/4, 5/4 -> 1 + remainder at step 0
    rt, rc = _ref_llada(lg, maskable, quota, score="random", uniform=u)
    np.testing.assert_array_equal(commit, rc)
    np.testing.assert_array_equal(tokens, rt)


def test_topk_dynamic_k_and_scores():
    s = get_strategy("topk", k=2)
    assert s.schedule == "dynamic" and get_strategy("topk", k=0).schedule == "fixed"
    assert get_strategy("low_confidence", k=3).schedule == "dynamic"
    # remaining < k -> commit what remains
    _, commit = _run(s, np.zeros((1, 4, 3), np.float32), np.array([[False, False, True, False]]))
    assert commit.sum() == 1
    # margin vs confidence ordering differ on a crafted example
    probs = [[[0.5, 0.5, 0.0], [0.45, 0.1, 0.45], [0.4, 0.3, 0.3]]]
    lg = _logits_for_probs(probs)
    m = np.ones((1, 3), bool)
    _, c_conf = _run(get_strategy("topk", k=1, score="confidence"), lg, m)
    _, c_marg = _run(get_strategy("topk", k=1, score="margin"), lg, m)
    _, c_ent = _run(get_strategy("topk", k=1, score="entropy"), lg, m)
    assert c_conf.tolist() == [[True, False, False]]  # 0.5 (lower index on the 0.5 tie)
    assert c_marg.tolist() == [[False, False, True]]  # margins 0, 0, 0.1
    assert c_ent.tolist() == [[True, False, False]]  # entropy ln 2 is the smallest


def test_left_to_right():
    rng, lg = _rand(5, B=2, L=8, V=5)
    maskable = np.array([[0, 0, 1, 1, 0, 1, 1, 1], [1, 0, 0, 0, 0, 0, 0, 1]], bool)
    _, commit = _run(get_strategy("left_to_right", k=2), lg, maskable)
    assert commit.astype(int).tolist() == [[0, 0, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 1]]
    _, commit = _run(get_strategy("left_to_right"), lg, maskable)
    assert commit.sum(-1).tolist() == [1, 1] and commit[0, 2] and commit[1, 0]


# ============================================================================ Fast-dLLM
def _ref_fast_dllm_threshold(logits, maskable, tau):
    lg = torch.from_numpy(logits)
    x0 = lg.argmax(-1)
    p = F.softmax(lg.to(torch.float64), dim=-1)
    conf = torch.where(torch.from_numpy(maskable), torch.gather(p, -1, x0[..., None])[..., 0], -torch.inf)
    commit = torch.zeros_like(conf, dtype=torch.bool)
    n = torch.from_numpy(maskable).sum(1)
    for j in range(conf.shape[0]):
        _, sel = torch.topk(conf[j], k=int(n[j]))
        commit[j, sel] = True
        for k in range(1, int(n[j])):
            if conf[j, sel[k]] < tau:
                commit[j, sel[k]] = False
    return x0.numpy(), commit.numpy()


def _ref_fast_dllm_factor(logits, maskable, factor):
    lg = torch.from_numpy(logits)
    mk = torch.from_numpy(maskable)
    x0 = lg.argmax(-1)
    p = F.softmax(lg.to(torch.float64), dim=-1)
    conf = torch.where(mk, torch.gather(p, -1, x0[..., None])[..., 0], -torch.inf)
    commit = torch.zeros_like(conf, dtype=torch.bool)
    for j in range(conf.shape[0]):
        M = int(mk[j].sum())
        if M == 0:
            continue
        threshs = [1 - factor / (n + 1) for n in range(1, M + 1)]
        threshs[0] = -1
        srt = torch.sort(conf[j][mk[j]], descending=True)[0]
        for top_i in range(M):
            if srt[top_i] < threshs[top_i]:
                break
        if top_i == 0 or top_i == M - 1:
            top_i += 1
        _, sel = torch.topk(conf[j], k=top_i)
        commit[j, sel] = True
    return x0.numpy(), commit.numpy()


def test_threshold_is_greater_equal_and_always_top1():
    # p = 0.5 exactly (two equal logits): committed at tau = 0.5 (>=), not above
    lg = _logits_for_probs([[[0.5, 0.5, 0.0], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]]])
    m = np.ones((1, 3), bool)
    _, c = _run(get_strategy("threshold", threshold=0.5), lg, m)
    assert c.tolist() == [[True, False, True]]
    _, c = _run(get_strategy("threshold", threshold=0.95), lg, m)
    assert c.tolist() == [[False, False, True]]  # nothing passes: the best (0.6) is still committed


@pytest.mark.parametrize("tau", [0.3, 0.6, 0.9])
def test_threshold_matches_reference(tau):
    rng, lg = _rand(20, B=4, L=24, V=6, scale=4.0)
    maskable = rng.random(lg.shape[:2]) < 0.7
    maskable[3] = False
    tokens, commit = _run(get_strategy("threshold", threshold=tau), lg, maskable)
    rt, rc = _ref_fast_dllm_threshold(lg, maskable, tau)
    np.testing.assert_array_equal(commit, rc)
    np.testing.assert_array_equal(tokens, rt)


def test_factor_quirk_first_failure_at_last_rank_commits_all():
    V = 20

    def row(c):
        return [c] + [(1 - c) / (V - 1)] * (V - 1)

    s = get_strategy("factor", factor=1.0)
    # thresholds for ranks 2, 3, 4: 1 - 1/3, 1 - 1/4, 1 - 1/5
    lg = _logits_for_probs([[row(0.9), row(0.8), row(0.1)]])
    _, c = _run(s, lg, np.ones((1, 3), bool))
    assert c.tolist() == [[True, True, True]]  # fails only at the last rank -> all (quirk)
    lg = _logits_for_probs([[row(0.9), row(0.8), row(0.1), row(0.05)]])
    _, c = _run(s, lg, np.ones((1, 4), bool))
    assert c.tolist() == [[True, True, False, False]]  # fails at rank 3 of 4 -> 2
    lg = _logits_for_probs([[row(0.2), row(0.1), row(0.1), row(0.05)]])
    _, c = _run(s, lg, np.ones((1, 4), bool))
    assert c.tolist() == [[True, False, False, False]]  # rank 1 always passes
    _, c = _run(s, lg[:, :1], np.ones((1, 1), bool))
    assert c.tolist() == [[True]]


@pytest.mark.parametrize("factor", [0.7, 1.0, 1.9])
def test_factor_matches_reference(factor):
    for seed in range(3):
        rng, lg = _rand(30 + seed, B=4, L=10, V=5, scale=4.0)
        maskable = rng.random(lg.shape[:2]) < 0.8
        maskable[0] = False
        tokens, commit = _run(get_strategy("factor", factor=factor), lg, maskable)
        rt, rc = _ref_fast_dllm_factor(lg, maskable, factor)
        np.testing.assert_array_equal(commit, rc)


# ============================================================================ dParallel
def _ref_dparallel(logits, maskable, tau):
    lg = torch.from_numpy(logits)
    mk = torch.from_numpy(maskable)
    p = F.softmax(lg.to(torch.float64), dim=-1)
    ent = -torch.sum(p * torch.log(p + 1e-12), dim=-1)
    sel_ent = torch.where(mk, ent, torch.inf)
    commit = torch.zeros_like(mk)
    n = mk.sum(1)
    for j in range(lg.shape[0]):
        _, sel = torch.topk(sel_ent[j], k=int(n[j]), largest=False)
        commit[j, sel] = True
        for k in range(1, int(n[j])):
            if ent[j, sel[k]] > tau:
                commit[j, sel[k]] = False
    return commit.numpy()


def test_entropy_threshold_rule():
    V = 8
    peaked = [0.999] + [0.001 / (V - 1)] * (V - 1)  # H ~ 0.01
    flat = [1.0 / V] * V  # H = ln 8 = 2.08
    half = [0.5, 0.5] + [0.0] * (V - 2)  # H = ln 2 = 0.693
    lg = _logits_for_probs([[flat, half, peaked, flat]])
    m = np.ones((1, 4), bool)
    _, c = _run(get_strategy("entropy_threshold"), lg, m)
    assert c.tolist() == [[False, False, True, False]]
    _, c = _run(get_strategy("dparallel", threshold=0.7), lg, m)
    assert c.tolist() == [[False, True, True, False]]
    m[0, 2] = False  # the min-entropy maskable position is committed even above tau
    _, c = _run(get_strategy("entropy_threshold"), lg, m)
    assert c.tolist() == [[False, True, False, False]]
    assert get_strategy("dparallel").threshold == 0.5


@pytest.mark.parametrize("tau", [0.45, 0.5, 1.5])
def test_entropy_threshold_matches_reference(tau):
    rng, lg = _rand(40, B=4, L=16, V=6, scale=5.0)
    maskable = rng.random(lg.shape[:2]) < 0.7
    _, commit = _run(get_strategy("entropy_threshold", threshold=tau), lg, maskable)
    np.testing.assert_array_equal(commit, _ref_dparallel(lg, maskable, tau))


# ============================================================================ EB-Sampler
def _ref_eb(logits, maskable, gamma):
    lg = torch.from_numpy(logits)
    commit = np.zeros(maskable.shape, bool)
    for j in range(lg.shape[0]):
        idx = np.nonzero(maskable[j])[0]
        if len(idx) == 0:
            continue
        err = torch.distributions.Categorical(logits=lg[j, idx]).entropy()
        order = torch.argsort(err)
        srt = err[order]
        k = int((torch.cumsum(srt, 0) - torch.cummax(srt, 0).values <= gamma).sum())
        k = max(1, min(k, len(idx)))
        commit[j, idx[order[:k].numpy()]] = True
    return commit


def test_eb_sampler_bound():
    V = 6

    def near_onehot(h_target):
        # two-point distribution with a small entropy; solved numerically
        lo, hi = 1e-9, 0.5
        for _ in range(100):
            e = (lo + hi) / 2
            h = -(1 - e) * math.log(1 - e) - e * math.log(e)
            lo, hi = (e, hi) if h < h_target else (lo, e)
        return [1 - e, e] + [0.0] * (V - 2)

    rows = [near_onehot(0.001), near_onehot(0.002), near_onehot(0.003), [0.5, 0.5] + [0.0] * 4, [1 / 3] * 3 + [0] * 3]
    lg = _logits_for_probs([rows])
    m = np.ones((1, 5), bool)
    # sorted H: .001 .002 .003 .693 1.099 -> sum - max: 0, .001, .003, .006, .699
    _, c = _run(get_strategy("eb_sampler", gamma=0.01), lg, m)
    assert c.tolist() == [[True, True, True, True, False]]
    _, c = _run(get_strategy("eb_sampler", gamma=0.002), lg, m)
    assert c.tolist() == [[True, True, False, False, False]]
    _, c = _run(get_strategy("eb_sampler", gamma=0.0), lg[:, 3:], m[:, 3:])
    assert c.tolist() == [[True, False]]  # at least one
    # bits: the same budget in bits is ln 2 times smaller in nats
    _, c = _run(get_strategy("eb_sampler", gamma=0.006 / math.log(2) + 1e-6, units="bits"), lg, m)
    assert c.tolist() == [[True, True, True, True, False]]


@pytest.mark.parametrize("gamma", [0.01, 0.5, 2.0])
def test_eb_sampler_matches_reference(gamma):
    rng, lg = _rand(50, B=3, L=16, V=6, scale=5.0)
    maskable = rng.random(lg.shape[:2]) < 0.7
    _, commit = _run(get_strategy("eb_sampler", gamma=gamma), lg, maskable)
    np.testing.assert_array_equal(commit, _ref_eb(lg, maskable, gamma))


def test_eb_sampler_confidence_order_uses_running_max():
    V = 4
    # confidence order: pos0 (0.9), pos1 (0.6, H large), pos2 (0.55, H small)
    lg = _logits_for_probs([[[0.9, 0.1, 0, 0], [0.6, 0.2, 0.1, 0.1], [0.55, 0.45, 0, 0]]])
    h = np.asarray(ops.entropy(lg, np.float32))[0]
    gamma = h[0] + 1e-4  # admits {pos0, pos1}: sum - max = H0; adding pos2 gives H0 + H2 > gamma
    _, c = _run(get_strategy("eb_sampler", gamma=float(gamma), error="confidence"), lg, np.ones((1, 3), bool))
    assert c.tolist() == [[True, True, False]]


# ============================================================================ Dream
def test_dream_ratio_table_matches_torch_linspace():
    for eps in (1e-3, 1e-2):
        for S in list(range(1, 140)) + [256, 512, 1024]:
            ts = torch.linspace(1, eps, S + 1)
            ref = torch.stack([1 - ts[i + 1] / ts[i] for i in range(S - 1)]).numpy() if S > 1 else np.zeros(0)
            table = ops.dream_timestep_ratios(S, eps)
            np.testing.assert_array_equal(table[:-1], ref.astype(np.float32), err_msg=f"S={S} eps={eps}")
            assert table[-1] == 1.0


def test_dream_zero_token_first_step_32_tokens_32_steps():
    s = get_strategy("maskgit_plus")
    rng = np.random.default_rng(6)
    L, S = 32, 32
    maskable = np.ones((2, L), bool)
    counts = []
    for step in range(S):
        lg = (rng.standard_normal((2, L, 7)) * 2).astype(np.float32)
        _, c = _run(s, lg, maskable, step=step, S=S)
        assert (c.sum(-1) == c[0].sum()).all()
        counts.append(int(c[0].sum()))
        maskable &= ~c
    assert counts == [0] + [1] * 30 + [2]
    assert not maskable.any()


def test_dream_quota_matches_reference_formula():
    # k = int(M * (1 - s/t)) with float32 tensors, last step int(M); per row M
    for S in (5, 13, 64):
        ts = torch.linspace(1, 1e-3, S + 1)
        for M in (1, 7, 31, 100):
            for i in range(S):
                ref = int(torch.tensor(float(M)) * (1 - ts[i + 1] / ts[i])) if i < S - 1 else M
                _, c = _run(get_strategy("entropy"), np.zeros((1, M, 3), np.float32), np.ones((1, M), bool),
                            step=i, S=S)
                assert c.sum() == ref, (S, M, i)


def _ref_dream_scores(logits, alg, T=0.0, top_p=None, top_k=None):
    """Dream sample_tokens at T = 0 on the masked rows: (confidence, x0)."""
    x = torch.from_numpy(logits).reshape(-1, logits.shape[-1])
    if T > 0:
        x = x / T
    if top_p is not None and top_p < 1:
        srt, idx = torch.sort(x, descending=True)
        rm = torch.cumsum(F.softmax(srt, -1), -1) > top_p
        rm[..., 1:] = rm[..., :-1].clone()
        rm[..., 0] = False
        x = x.masked_fill(torch.zeros_like(x, dtype=torch.bool).scatter_(-1, idx, rm), torch.finfo(x.dtype).min)
    if top_k is not None:
        x = x.masked_fill(x < torch.topk(x, top_k)[0][..., -1, None], torch.finfo(x.dtype).min)
    probs = torch.softmax(x, -1)
    conf, x0 = probs.max(-1)
    if alg == "topk_margin":
        sp = torch.sort(probs, -1, descending=True)[0]
        conf = sp[:, 0] - sp[:, 1]
    if alg == "entropy":
        conf = torch.sum(probs * torch.log(probs + 1e-10), -1)
    return conf.reshape(logits.shape[:2]).numpy(), x0.reshape(logits.shape[:2]).numpy()


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
@pytest.mark.parametrize("filters", [(None, None), (0.9, None), (0.8, 4)])
def test_dream_topk_matches_reference(alg, filters):
    top_p, top_k = filters
    rng, lg = _rand(60, B=2, L=20, V=9, scale=2.0)
    maskable = np.ones(lg.shape[:2], bool)
    maskable[:, :4] = False  # prompt
    S, step = 8, 3
    conf, x0 = _ref_dream_scores(lg, alg, 0.0, top_p, top_k)
    ts = torch.linspace(1, 1e-3, S + 1)
    k = int(torch.tensor(16.0) * (1 - ts[step + 1] / ts[step]))
    full = torch.where(torch.from_numpy(maskable), torch.from_numpy(conf), -torch.inf)
    _, sel = torch.topk(full, k, dim=-1)
    ref_commit = torch.zeros_like(full, dtype=torch.bool).scatter_(-1, sel, True).numpy()
    tokens, commit = _run(get_strategy(alg), lg, maskable, step=step, S=S,
                          sampling=SamplingParams(0.0, top_p, top_k))
    for j in range(lg.shape[0]):
        # top-p can leave one token (q = 1 exactly): ties, where torch.topk's order is unspecified -> compare
        # the selected scores, and positions exactly when the row has no tied scores
        np.testing.assert_array_equal(np.sort(conf[j][commit[j]]), np.sort(conf[j][ref_commit[j]]))
        if len(np.unique(conf[j][maskable[j]])) == maskable[j].sum():
            np.testing.assert_array_equal(commit[j], ref_commit[j])
    np.testing.assert_array_equal(tokens[maskable], x0[maskable])


def test_dream_origin_bernoulli_and_last_step():
    s = get_strategy("origin")
    assert s.needs_uniform_noise(SamplingParams())
    rng, lg = _rand(7, B=2, L=10, V=5)
    m = np.ones((2, 10), bool)
    S = 4
    u = rng.random((2, 10))
    r = ops.dream_timestep_ratios(S, 1e-3)
    _, c = _run(s, lg, m, step=1, S=S, uniform=u)
    np.testing.assert_array_equal(c, u < r[1])
    _, c = _run(s, lg, m, step=S - 1, S=S, uniform=u)
    assert c.all()


def test_dream_alg_temp_samples_proportional_to_softmax():
    # k = 1 of 3 positions: frequencies follow softmax(c / alg_temp), c = maskgit confidence
    B = 4000
    s = get_strategy("maskgit_plus", alg_temp=0.5)
    assert s.needs_uniform_noise(SamplingParams()) and not get_strategy("maskgit_plus").needs_uniform_noise(
        SamplingParams())
    probs = [[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.4, 0.3, 0.3]]
    lg = np.repeat(_logits_for_probs([probs]), B, axis=0)
    m = np.ones((B, 3), bool)
    u = np.random.default_rng(8).random((B, 3))
    _, c = _run(s, lg, m, step=0, S=2, uniform=u)  # S=2: r_0 = 0.4995 -> k = int(3 * 0.4995) = 1
    assert (c.sum(-1) == 1).all()
    want = np.exp(np.array([0.9, 0.6, 0.4]) / 0.5)
    want /= want.sum()
    np.testing.assert_allclose(c.mean(0), want, atol=0.03)
    # a tiny alg_temp is the deterministic top-k
    _, c = _run(get_strategy("maskgit_plus", alg_temp=1e-6), lg[:5], m[:5], step=0, S=2, uniform=u[:5])
    assert c[:, 0].all() and c.sum() == 5


def test_dream_sampling_confidence_from_tempered_distribution():
    # A = [.6 .2 .2] and B = [.65 .35 0]: untempered B wins (.65 > .6); at T = 0.5 A wins (.818 > .775)
    lg = _logits_for_probs([[[0.6, 0.2, 0.2], [0.65, 0.35, 0.0], [0.4, 0.3, 0.3]]])
    m = np.ones((1, 3), bool)
    g = np.zeros((1, 3, 3))  # Gumbel draw that keeps the argmax as the sample
    s = get_strategy("maskgit_plus")
    # S = 2, step 0: k = int(3 * 0.4995) = 1
    tokens, c = _run(s, lg, m, step=0, S=2, sampling=SamplingParams(0.5), gumbel=g)
    assert tokens.tolist() == [[0, 0, 0]] and c.tolist() == [[True, False, False]]
    _, c = _run(s, lg, m, step=0, S=2)
    assert c.tolist() == [[False, True, False]]
    # LLaDA scores stay untempered whatever the temperature
    _, c = _run(get_strategy("low_confidence", k=1), lg, m, sampling=SamplingParams(0.5), gumbel=g)
    assert c.tolist() == [[False, True, False]]


# ============================================================================ registry
def test_registry_errors_and_aliases():
    with pytest.raises(ValueError, match="unknown strategy 'thresold'.*'threshold'"):
        get_strategy("thresold")
    with pytest.raises(ValueError, match=r"strategy 'threshold' has no parameter 'thresh'.*parameters: threshold"):
        get_strategy("threshold", thresh=0.9)
    with pytest.raises(ValueError, match=r"'threshold'.*got 1\.5"):
        get_strategy("threshold", threshold=1.5)
    with pytest.raises(ValueError, match="got 'abc'"):
        get_strategy("maskgit_plus", precision="abc")
    with pytest.raises(ValueError, match="coerce_params"):
        get_strategy("threshold", threshold="0.9")
    with pytest.raises(ValueError, match="got -1"):
        get_strategy("left_to_right", k=-1)
    assert type(get_strategy("confidence_threshold")) is type(get_strategy("fast_dllm_threshold"))
    assert get_strategy("Confidence-Factor", factor=2).factor == 2.0
    assert get_strategy("confidence_topk", k=4) == get_strategy("low_confidence", k=4)
    assert get_strategy("dparallel").to_dict()["type"] == "entropy_threshold"
    assert get_strategy("decoders.fast_dllm:ConfidenceThreshold", threshold=0.8).threshold == 0.8
    with pytest.raises(ValueError, match="cannot import"):
        get_strategy("decoders.nope:Thing")
    s = get_strategy("threshold")
    assert get_strategy(s) is s and get_strategy(s, threshold=0.7).threshold == 0.7
    assert get_strategy({"type": "factor", "factor": 1.3}).factor == 1.3


def test_coerce_params():
    assert decoders.coerce_params("threshold", {"threshold": "0.9"}) == {"threshold": 0.9}
    assert decoders.coerce_params("maskgit_plus", {"alg_temp": "none", "eps": "1e-3"}) == {"alg_temp": None,
                                                                                         "eps": 1e-3}
    assert decoders.coerce_params("low_confidence", {"k": "4"}) == {"k": 4}
    assert decoders.coerce_params("entropy_threshold", {"strict": "true"}) == {"strict": True}
    with pytest.raises(ValueError, match="cannot convert 'x'"):
        decoders.coerce_params("threshold", {"threshold": "x"})
    with pytest.raises(ValueError, match="no parameter 'bogus'"):
        decoders.coerce_params("threshold", {"bogus": "1"})


def test_list_strategies_records():
    recs = {r["name"]: r for r in decoders.list_strategies()}
    expected = {"low_confidence", "random", "topk", "origin", "maskgit_plus", "topk_margin", "entropy", "threshold",
                "factor", "entropy_threshold", "entropy_threshold_dream", "eb_sampler", "left_to_right"}
    assert expected <= set(recs)
    assert recs["low_confidence"]["schedule"] == "fixed" and recs["threshold"]["schedule"] == "dynamic"
    assert "confidence_topk" in recs["low_confidence"]["aliases"]
    assert "ML-GSAI/LLaDA" in recs["low_confidence"]["reproduces"]
    p = {q["name"]: q for q in recs["threshold"]["parameters"]}
    assert p["threshold"]["default"] == 0.9 and p["threshold"]["type"] == "float"
    assert p["precision"]["choices"] == ["float32", "float64"]
    for r in recs.values():
        assert r["reproduces"] and r["summary"]


def test_register_rejects_name_clash():
    from dataclasses import dataclass

    with pytest.raises(ValueError, match="already registered"):
        @decoders.register("my_test_strategy", aliases=("threshold",))
        @dataclass(frozen=True)
        class Clash(decoders.Strategy):
            pass


def test_k_none_means_schedule_and_unregistered_round_trip():
    import sys
    import types
    from dataclasses import dataclass

    assert get_strategy("low_confidence", k=None) == get_strategy("low_confidence")
    assert decoders.coerce_params("low_confidence", {"k": "none"}) == {"k": 0}

    mod = types.ModuleType("_decoders_test_plugin")

    @dataclass(frozen=True)
    class Plugin(decoders.LeftToRight):
        """A third-party strategy that is not registered."""

    Plugin.__module__ = mod.__name__
    Plugin.__qualname__ = "Plugin"
    mod.Plugin = Plugin
    sys.modules[mod.__name__] = mod
    try:
        s = get_strategy("_decoders_test_plugin:Plugin", k=2)
        d = s.to_dict()
        assert d == {"type": "_decoders_test_plugin:Plugin", "k": 2}
        assert decoders.strategy_from_dict(d) == s and type(decoders.strategy_from_dict(d)) is Plugin
    finally:
        del sys.modules[mod.__name__]
