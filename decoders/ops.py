"""Array-API helpers shared by the strategies (NumPy, torch and jax.numpy; fixed shapes, no host syncs).

Every function takes and returns arrays of one namespace (``array_api_compat.array_namespace``). Where the array
API has no portable spelling (``cummax``; ``take_along_axis`` index dtypes) a tiny dispatch shim lives here.

Conventions (B batch, L positions, V vocabulary):

* Scores are "higher = commit earlier". Ranks are 0-based among the *maskable* positions of a row, by descending
  score, ties broken by the **lower position index** (a stable sort), so every backend selects the same positions.
  Non-maskable positions get ranks ``>= count(maskable)``.
* ``precision`` strings ``"float32"`` / ``"float64"`` pick the dtype of a softmax (strategies.md quirk 14).
"""

from __future__ import annotations

from typing import Any, Optional

import array_api_compat as aac

__all__ = [
    "namespace",
    "device_of",
    "float_dtype",
    "take_last",
    "take_last_axis",
    "stable_argsort",
    "cumsum",
    "cummax",
    "count",
    "descending_rank",
    "descending_order",
    "ascending_rank",
    "topk_mask",
    "threshold_mask",
    "softmax",
    "log_softmax",
    "logsumexp",
    "prob_at",
    "entropy",
    "neg_entropy_eps",
    "margin",
    "propose",
    "filter_logits",
    "gumbel_from_uniform",
    "no_remask",
    "dream_timestep_ratios",
]


def namespace(*arrays: Any):
    """The array-API namespace of the given arrays (``None`` entries are skipped)."""
    return aac.array_namespace(*[a for a in arrays if a is not None])


def device_of(x: Any) -> Any:
    """Device of ``x``, or None where it is not defined (e.g. a JAX tracer)."""
    try:
        return aac.device(x)
    except Exception:
        return None


def float_dtype(xp, precision: str):
    """``xp.float32`` or ``xp.float64`` for a precision string."""
    if precision == "float64":
        return xp.float64
    if precision == "float32":
        return xp.float32
    raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}.")


def _as_index(xp, idx: Any) -> Any:
    # torch.gather wants int64 indices; NumPy and JAX accept any integer dtype (and JAX without x64 has no int64).
    if aac.is_torch_namespace(xp):
        return xp.astype(idx, xp.int64)
    return idx


def take_last(x: Any, idx: Any) -> Any:
    """``x[..., idx[...]]``: gather one entry per row along the last axis. ``x``: [..., V]; ``idx``: [...] int."""
    xp = namespace(x, idx)
    return xp.take_along_axis(x, _as_index(xp, idx)[..., None], axis=-1)[..., 0]


def take_last_axis(x: Any, idx: Any) -> Any:
    """``take_along_axis(x, idx, axis=-1)`` with ``idx`` of the same shape as ``x`` (any integer dtype)."""
    xp = namespace(x, idx)
    return xp.take_along_axis(x, _as_index(xp, idx), axis=-1)


def stable_argsort(x: Any, axis: int = -1) -> Any:
    """Ascending argsort that keeps the original order of equal values (lower index first)."""
    xp = namespace(x)
    return xp.argsort(x, axis=axis, stable=True)


def cumsum(x: Any, axis: int = -1) -> Any:
    xp = namespace(x)
    return xp.cumulative_sum(x, axis=axis)


def cummax(x: Any, axis: int = -1) -> Any:
    """Running maximum along ``axis`` (not in the array API: dispatch per backend)."""
    xp = namespace(x)
    if aac.is_torch_array(x):
        import torch

        return torch.cummax(x, dim=axis).values
    if aac.is_jax_array(x):
        import jax

        return jax.lax.cummax(x, axis=axis % x.ndim)
    if aac.is_numpy_array(x):
        import numpy as np

        return np.maximum.accumulate(x, axis=axis)
    # generic fallback: O(n^2) masked max, fine for the short axes used here
    n = x.shape[axis]
    x_ = xp.moveaxis(x, axis, -1)
    i = xp.arange(n, device=device_of(x))
    lower = i[None, :] <= i[:, None]  # [n, n] j <= i
    neg = -xp.inf if xp.isdtype(x.dtype, "real floating") else xp.iinfo(x.dtype).min
    out = xp.max(xp.where(lower, x_[..., None, :], neg), axis=-1)
    return xp.moveaxis(out, -1, axis)


def count(mask: Any, axis: int = -1) -> Any:
    """Number of True entries along ``axis`` (integer array)."""
    xp = namespace(mask)
    return xp.sum(xp.astype(mask, xp.int32), axis=axis)


def descending_rank(score: Any, maskable: Any) -> Any:
    """Rank of each position among the maskable positions of its row, by descending score.

    Args:
        score: ``[B, L]`` float, higher = earlier. ``+inf``/``-inf`` are allowed; NaN ranks last among maskable.
        maskable: ``[B, L]`` bool.

    Returns:
        ``[B, L]`` int: 0 for the best maskable position; ties go to the lower index; non-maskable positions get
        ranks ``>= count(maskable)``. Implemented as the inverse of a stable argsort of ``-score`` (two sorts), so
        torch, JAX and NumPy agree exactly.
    """
    return stable_argsort(descending_order(score, maskable), axis=-1)  # inverse permutation


def descending_order(score: Any, maskable: Any) -> Any:
    """Permutation ``[B, L]`` listing maskable positions by descending score (ties: lower index first), then the
    non-maskable ones in index order. ``descending_rank`` is its inverse."""
    xp = namespace(score, maskable)
    key = -score
    big = xp.finfo(key.dtype).max
    key = xp.where(xp.isnan(key) | (key > big), big, key)  # maskable keys stay below +inf
    key = xp.where(maskable, key, xp.inf)
    return stable_argsort(key, axis=-1)


def ascending_rank(score: Any, maskable: Any) -> Any:
    """Like ``descending_rank`` for "lower = earlier" scores (entropy, error proxies)."""
    return descending_rank(-score, maskable)


def topk_mask(score: Any, maskable: Any, k: Any, rank: Any = None) -> Any:
    """Top-k with a per-row quota: ``maskable & (rank < k_row)``.

    Args:
        score: ``[B, L]`` float; maskable: ``[B, L]`` bool; k: ``[B]`` int (or a Python int).
        rank: precomputed ``descending_rank(score, maskable)`` (optional).
    """
    if rank is None:
        rank = descending_rank(score, maskable)
    if isinstance(k, int):
        return maskable & (rank < k)
    return maskable & (rank < k[..., None])


def threshold_mask(score: Any, maskable: Any, tau: float, min_k: int = 1, rank: Any = None,
                   strict: bool = False) -> Any:
    """Threshold with a minimum: ``maskable & ((score >= tau) | (rank < min_k))`` (``>`` when ``strict``)."""
    if rank is None:
        rank = descending_rank(score, maskable)
    above = (score > tau) if strict else (score >= tau)
    return maskable & (above | (rank < min_k))


def softmax(logits: Any, dtype: Any) -> Any:
    """Softmax over the last axis computed in ``dtype`` (max-subtracted).

    On torch tensors this is ``torch.softmax`` itself, so confidences are bit-identical to the reference code on
    the same device; elsewhere the same formula in the array API (agreeing to an ulp or so).
    """
    xp = namespace(logits)
    x = xp.astype(logits, dtype)
    if aac.is_torch_array(x):
        import torch

        return torch.softmax(x, dim=-1)
    m = xp.max(x, axis=-1, keepdims=True)
    e = xp.exp(x - m)
    return e / xp.sum(e, axis=-1, keepdims=True)


def logsumexp(x: Any) -> Any:
    """``log(sum(exp(x)))`` over the last axis, keepdims (``torch.logsumexp`` on torch)."""
    xp = namespace(x)
    if aac.is_torch_array(x):
        import torch

        return torch.logsumexp(x, dim=-1, keepdim=True)
    m = xp.max(x, axis=-1, keepdims=True)
    m = xp.where(xp.isinf(m), xp.zeros_like(m), m)
    return m + xp.log(xp.sum(xp.exp(x - m), axis=-1, keepdims=True))


def log_softmax(logits: Any, dtype: Any) -> Any:
    """Log-softmax over the last axis computed in ``dtype`` (``l - logsumexp(l)``)."""
    xp = namespace(logits)
    x = xp.astype(logits, dtype)
    return x - logsumexp(x)


def prob_at(logits: Any, idx: Any, dtype: Any) -> Any:
    """``softmax(logits)[..., idx]`` in ``dtype`` (softmax, then gather, as the references do)."""
    return take_last(softmax(logits, dtype), idx)


def entropy(logits: Any, dtype: Any, eps: Optional[float] = None) -> Any:
    """Shannon entropy (nats) of ``softmax(logits)`` per position, in ``dtype``.

    ``eps=None``: the ``torch.distributions.Categorical(logits=l).entropy()`` arithmetic (used by EB-Sampler):
    ``logp = l - logsumexp(l)``, ``p = softmax(logp)``, ``-sum(max(logp, finfo.min) * p)``.
    ``eps`` given: ``-sum(p * log(p + eps))`` with ``p = softmax(l)`` (dParallel uses 1e-12, its Dream code 1e-8).
    """
    xp = namespace(logits)
    if eps is None:
        logp = log_softmax(logits, dtype)
        p = softmax(logp, dtype)
        lo = xp.finfo(dtype).min
        logp = xp.where(logp < lo, lo, logp)
        return -xp.sum(logp * p, axis=-1)
    p = softmax(logits, dtype)
    return -xp.sum(p * xp.log(p + eps), axis=-1)


def neg_entropy_eps(probs: Any, eps: float) -> Any:
    """``sum(p * log(p + eps))`` of an already computed distribution (Dream's ``entropy`` score, eps 1e-10)."""
    xp = namespace(probs)
    return xp.sum(probs * xp.log(probs + eps), axis=-1)


def margin(probs: Any) -> Any:
    """Top-1 minus top-2 probability per position (0 when the top value is tied). ``probs``: [..., V]."""
    xp = namespace(probs)
    top = xp.argmax(probs, axis=-1)
    p1 = xp.max(probs, axis=-1)
    v = xp.arange(probs.shape[-1], device=device_of(probs))
    p2 = xp.max(xp.where(v == top[..., None], -xp.inf, probs), axis=-1)
    return p1 - p2


def propose(logits: Any, temperature: float, gumbel: Any = None, keep: Any = None) -> Any:
    """Candidate tokens ``x_hat = argmax(l + T * g)`` (LLaDA's Gumbel-max in float64; strategies.md section 3).

    Args:
        logits: ``[B, L, V]`` raw logits.
        temperature: Python float. ``0`` returns ``argmax(l)`` (no noise; ``gumbel`` unused). Ties -> lowest id.
        gumbel: ``[B, L, V]`` standard Gumbel noise (float64), required when ``temperature > 0``.
        keep: optional ``[B, L, V]`` bool support restriction (top-p / top-k), applied when ``temperature > 0``
            (at ``T = 0`` the filters never remove the argmax).

    ``argmax(l + T g)`` equals LLaDA's ``argmax(exp(l) / (-log u)^T)`` with ``g = -log(-log u)`` and is
    ``argmax(l / T + g)``, a sample from ``softmax(l / T)``; the log form avoids the float64 ``exp`` overflow.
    """
    xp = namespace(logits)
    if temperature == 0:
        return xp.argmax(logits, axis=-1)
    if gumbel is None:
        raise ValueError(f"temperature {temperature!r} > 0 needs StepInput.gumbel noise, got None.")
    z = xp.astype(logits, xp.float64) + temperature * xp.astype(gumbel, xp.float64)
    if keep is not None:
        z = xp.where(keep, z, -xp.inf)
    return xp.argmax(z, axis=-1)


def filter_logits(logits: Any, temperature: float, top_p: Optional[float], top_k: Optional[int],
                  dtype: Any) -> tuple[Any, Any]:
    """Dream's sampling-distribution logits: temperature, then top-p, then top-k (``sample_tokens``).

    Args:
        logits: ``[B, L, V]``; temperature/top_p/top_k: Python values (``top_p`` None or >= 1 and ``top_k`` None
            or <= 0 disable the filters; they apply at any temperature, as in Dream).
        dtype: compute dtype.

    Returns:
        ``(z, keep)``: ``z`` = tempered logits with removed entries set to the dtype's minimum (Dream uses
        ``finfo.min``, not ``-inf``); ``keep`` = bool support ``[B, L, V]`` or None when nothing is filtered.

    Boundary ties are kept by value (``z >= kth value``); torch's scatter keeps exactly ``n`` of them in an
    unspecified order. Only exact float ties at the nucleus boundary differ.
    """
    xp = namespace(logits)
    z = xp.astype(logits, dtype)
    if temperature > 0:
        z = z / temperature
    neg = xp.finfo(dtype).min
    keep = None
    V = z.shape[-1]
    if top_p is not None and top_p < 1:
        s = -xp.sort(-z, axis=-1)  # descending values
        cp = cumsum(softmax(s, dtype), axis=-1)
        # a token is removed when the cumulative mass *before* it already exceeds top_p (the top-1 always stays)
        n_keep = 1 + count(cp[..., :-1] <= top_p)
        thr = take_last(s, n_keep - 1)
        keep = z >= thr[..., None]
        z = xp.where(keep, z, neg)
    if top_k is not None and top_k > 0:
        k = min(int(top_k), V)
        s = -xp.sort(-z, axis=-1)
        thr = s[..., k - 1]
        keep_k = z >= thr[..., None]
        z = xp.where(keep_k, z, neg)
        keep = keep_k if keep is None else (keep & keep_k)
    return z, keep


def gumbel_from_uniform(u: Any) -> Any:
    """Standard Gumbel noise ``-log(-log u)`` from U[0, 1) noise (``u = 0`` gives ``-inf``)."""
    xp = namespace(u)
    return -xp.log(-xp.log(u))


def no_remask(maskable: Any) -> Any:
    """All-False ``[B, L]`` bool (strategies that never remask)."""
    xp = namespace(maskable)
    return xp.zeros_like(maskable, dtype=xp.bool)


def dream_timestep_ratios(steps: int, eps: float):
    """Host-side float32 table ``r[i] = 1 - s/t`` of Dream's schedule, ``r[steps-1] = 1`` (commit all).

    ``t, s = timesteps[i], timesteps[i+1]`` of ``torch.linspace(1, eps, steps + 1)`` in float32. torch computes
    linspace as ``start + step * i`` for the first half and ``end - step * (n - 1 - i)`` for the rest with a
    fused multiply-add; that is emulated exactly here (tested against ``torch.linspace``), then ``s / t`` and
    ``1 - s/t`` are rounded to float32 like the reference.
    Returns a NumPy float32 array ``[steps]``.
    """
    import numpy as np
    from fractions import Fraction

    f32 = np.float32

    def fma32(a, b, c):  # correctly rounded float32 a*b + c
        exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
        r = f32(float(exact))  # may double-round: fix with the neighbours
        best = r
        for cand in (np.nextafter(r, f32(-np.inf)), np.nextafter(r, f32(np.inf))):
            d_best, d_c = abs(Fraction(float(best)) - exact), abs(Fraction(float(cand)) - exact)
            if d_c < d_best or (d_c == d_best and (int(cand.view(np.uint32)) & 1) == 0):
                best = cand
        return f32(best)

    n = steps + 1
    start, end = f32(1.0), f32(eps)
    step = f32((end - start) / f32(n - 1))
    half = n // 2
    ts = np.empty(n, f32)
    for i in range(n):
        ts[i] = fma32(step, f32(i), start) if i < half else fma32(-step, f32(n - i - 1), end)
    ratios = np.empty(steps, f32)
    for i in range(steps):
        ratios[i] = f32(1.0) - f32(ts[i + 1] / ts[i])
    ratios[steps - 1] = f32(1.0)
    return ratios
