"""Logits processors of the torch engine (strategies.md §2.1, §4, §7).

Pipeline order inside one step (vLLM-style, style.md §2.12)::

    model forward (aligned float32 logits; Dream shift already applied by the model)
    -> classifier-free guidance             l = l_u + (w + 1)(l_c - l_u)               [cfg_scale > 0]
    -> logits_eos_inf                       l[EOS] = -inf                              [argmax-changing]
    -> [MASK] suppression                   l[MASK] = -inf                             [on by default]
    -> noise drawn (Gumbel if T > 0, uniform if the strategy asks)
    -> confidence_eos_eot_inf               EOS/EoT candidates demoted (see below)     [argmax-invariant]
    -> strategy.step: temperature / top-k / top-p, proposal, score, selection

CFG runs before the ``-inf`` processors: ``-inf - -inf`` would give NaN in the guidance formula.
"""
from __future__ import annotations

import torch

# Logit given to the candidate in a "flat" row (see demote_candidates): small enough that the row's confidence
# ~1/V stays below any real row's, large enough to be the strict argmax in float32.
_FLAT_DELTA = 1e-6


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """LLaDA's unsupervised CFG: ``l_u + (w + 1)(l_c - l_u)`` (= ``l_c + w (l_c - l_u)``)."""
    return uncond + (scale + 1.0) * (cond - uncond)


def set_columns_to_neg_inf(logits: torch.Tensor, ids) -> torch.Tensor:
    """In place: ``logits[..., id] = -inf`` for every id in ``ids`` inside the vocabulary."""
    V = logits.shape[-1]
    ids = [int(i) for i in ids if i is not None and 0 <= int(i) < V]
    if ids:
        logits[..., ids] = float("-inf")
    return logits


def demote_candidates(logits: torch.Tensor, gumbel: torch.Tensor | None, temperature: float, ids) -> tuple:
    """``confidence_eos_eot_inf``: EOS / EoT candidates keep their token but get the lowest confidence.

    The reference first picks ``x̂ = argmax(l + T g)``, then sets the EOS / EoT columns to -inf and takes the
    confidence ``softmax(l)[x̂]``: a position whose candidate is EOS / EoT scores 0 (committed last), and every other
    position's confidence is renormalised without the EOS / EoT mass. Strategies only see logits (architecture.md
    §2), so the engine rewrites them to give the same candidates and the same ordering:

    * rows whose candidate is not demoted: the demoted columns become -inf (exactly the reference's renormalised
      softmax; the argmax is unchanged because the candidate is elsewhere);
    * rows whose candidate is demoted: a flat row (0 everywhere, ``1e-6`` at the candidate, existing -inf kept)
      and zero Gumbel noise there. Any proposer (argmax, Gumbel-max, top-k/top-p) then still picks the candidate,
      with confidence ≈ 1/V instead of the reference's exact 0 (below every non-flat row's), zero margin and
      maximal entropy, so confidence-, margin- and entropy-ranked strategies all commit it last.

    Args:
        logits: ``[B, L, V]`` float32 processed logits.
        gumbel: ``[B, L, V]`` float64 Gumbel noise or None (temperature 0).
        temperature: the sampling temperature (the candidate is ``argmax(l + T g)`` in float64, as LLaDA).
        ids: token ids to demote (:func:`dllm.decoding.demoted_ids`).

    Returns:
        ``(logits, gumbel)``, new tensors.
    """
    ids = [int(i) for i in ids if 0 <= int(i) < logits.shape[-1]]
    if not ids:
        return logits, gumbel
    if gumbel is not None and temperature > 0:
        cand = (logits.double() + temperature * gumbel).argmax(-1)
    else:
        cand = logits.argmax(-1)
    hit = torch.isin(cand, torch.tensor(ids, device=cand.device))  # [B, L] candidate is EOS / EoT
    out = set_columns_to_neg_inf(logits.clone(), ids)
    flat = torch.where(torch.isneginf(logits), float("-inf"), 0.0).to(logits.dtype)
    flat.scatter_(-1, cand[..., None], _FLAT_DELTA)
    out = torch.where(hit[..., None], flat, out)
    if gumbel is not None:
        gumbel = gumbel.masked_fill(hit[..., None], 0.0)
    return out, gumbel


__all__ = ["classifier_free_guidance", "set_columns_to_neg_inf", "demote_candidates"]
