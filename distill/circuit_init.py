"""Structured initialisation: start a fresh model with a previous-token layer and a content-matching layer.

Why (docs/reference_model.md, sessions 12–13): every list task whose answer order is not a fixed function of
position (sort, shuffle, the random edits) needs the *binding* step "find this first name in the prompt, write the
word after it". That is the induction-head circuit of Olsson et al. (2022, "In-context learning and induction
heads"): a head that copies each token's predecessor into its residual stream, then a head whose query (my
predecessor) matches the keys (their predecessor) by content and copies the matched token. Randomly initialised
6 × 192 models trained with the masked-diffusion loss never formed it: not from scratch in 1,000–1,750 steps of
binding rows, not from redrawn heads of the 31,000-step model, and only a few per cent of last names after 4,560
steps of a copy-first run. This module writes the circuit into the weights *before* training, in the spirit of
mimetic initialisation (Trockman & Kolter, 2023, "Mimetic initialization of self-attention layers": start the
attention products near the structure trained models end up with); training then keeps, sharpens or rewrites it.
The checkpoint layout is unchanged (plain LLaDA weights); only their starting values differ.

Layout of the residual stream at initialisation (``D = hidden_size``, ``T = D // 2 - 1``):

* dims ``[0, T)`` -- ``tok``: the token's identity, a random direction of norm ``sqrt(T)`` (zero elsewhere);
* dim ``T`` -- ``bias``: the same constant ``sqrt(T)`` in every embedding row, so attention can form a query and key
  that do not depend on the token (the LLaDA layout has no q/k bias);
* dims ``[T + 1, D)`` -- ``prev``: empty at the input; layer 0 writes the previous token's ``tok`` here.

Heads (``head_dim`` = ``d``; RoPE pairs ``(i, i + d/2)`` rotate at ``theta ** (-2i/d)``):

* layer 0, heads ``0 .. P-1`` (``P = ceil(T / d)``) -- previous-token heads: query and key read only ``bias`` and
  sit on the fast RoPE pairs, the key rotated one position ahead, so the score peaks at key = query - 1; the value
  reads a ``d``-wide slice of ``tok``, the output writes it to the same slice of ``prev``;
* layer 1, every head -- content-matching heads: query and key both read a slice of ``prev`` (head ``h``: ``prev``
  dims ``[k h, k h + k)``, ``k = d/2``) on the *slow* RoPE pairs only, so the score is a content match nearly
  independent of distance (use a large ``rope_theta``: at LLaDA's 500 000 the slow half of a 32-wide head turns by
  < 0.5 rad over 300 tokens); the value reads a slice of ``tok``, the output adds it back to ``tok``. At a masked
  last-name slot whose first name is ``F`` the query is ``F``, and the key of the prompt's last name after ``F``
  is ``F`` too: the head copies that last name;
* ``lm_head`` starts as the ``tok`` part of the embeddings times ``logit_scale``, so what layer 1 copies into
  ``tok`` is read out as that token.

Every other weight keeps its random draw. :func:`install_binding_circuit` raises if the model is too narrow for
the layout.
"""
from __future__ import annotations

import math

import torch

#: Default gains, chosen so the circuit is sharp at step 0 on the 6 x 192 reference architecture (measured with
#: ``python -m distill.monitor --aux bind --later-only`` on an untrained model; docs/reference_model.md, session 14).
PREV_QK_GAIN = 1.0
MATCH_QK_GAIN = 2.5
COPY_GAIN = 2.0
LOGIT_SCALE = 0.15


def residual_layout(hidden_size: int) -> tuple[slice, int, slice]:
    """``(tok, bias, prev)``: the residual dims the circuit uses (see the module docstring)."""
    t = hidden_size // 2 - 1
    return slice(0, t), t, slice(t + 1, hidden_size)


def _fast_pairs(head_dim: int, theta: float) -> list[int]:
    """RoPE pair indices that turn by at least 0.15 rad per position (they tell neighbours apart)."""
    return [i for i in range(head_dim // 2) if theta ** (-2 * i / head_dim) >= 0.15]


def _slow_pairs(head_dim: int) -> list[int]:
    """The slower half of the RoPE pairs (distance barely changes their score at a large ``rope_theta``)."""
    return list(range(head_dim // 4, head_dim // 2))


@torch.no_grad()
def install_binding_circuit(model, generator: torch.Generator | None = None, *, prev_qk_gain: float = PREV_QK_GAIN,
                            match_qk_gain: float = MATCH_QK_GAIN, copy_gain: float = COPY_GAIN,
                            logit_scale: float = LOGIT_SCALE) -> None:
    """Overwrite the embeddings, ``lm_head`` and attention of layers 0–1 of a freshly initialised
    :class:`~dllm.models.torch_model.DiffusionTransformer` with the previous-token / content-match circuit.

    Raises:
        ValueError: the model has fewer than 2 layers, GQA, a tied head, or too few heads for the layout.
    """
    cfg = model.config
    d, heads, hidden = cfg.head_dim, cfg.num_heads, cfg.hidden_size
    tok, bias, prev = residual_layout(hidden)
    n_tok = tok.stop
    n_prev_heads = math.ceil(n_tok / d)
    if cfg.num_layers < 2 or cfg.num_kv_heads != heads or model.lm_head is None:
        raise ValueError("the binding circuit needs >= 2 layers, num_kv_heads == num_heads and an untied lm_head; "
                         f"got {cfg.num_layers} layers, {cfg.num_kv_heads}/{heads} kv heads, "
                         f"tie_word_embeddings={cfg.tie_word_embeddings}")
    if n_prev_heads > heads or d % 4:
        raise ValueError(f"the binding circuit needs num_heads >= {n_prev_heads} (ceil(({hidden} // 2 - 1) / "
                         f"head_dim)) and head_dim divisible by 4; got {heads} heads of {d}")
    fast = _fast_pairs(d, cfg.rope_theta)
    if not fast:
        raise ValueError(f"rope_theta={cfg.rope_theta}: no RoPE pair of a {d}-wide head turns fast enough to tell "
                         "neighbouring positions apart")
    slow = _slow_pairs(d)
    half = d // 2

    # Embeddings: identity in tok, a constant in bias, nothing in prev.
    emb = model.embed.weight
    emb.zero_()
    # Every row has the same norm, so RMSNorm scales ``bias`` alike at every position (a zero mask row would double
    # it there and pull every previous-token query onto the masked slots).
    ident = torch.randn(emb.shape[0], n_tok, generator=generator)
    emb[:, tok] = ident * (math.sqrt(n_tok) / ident.norm(dim=-1, keepdim=True))
    emb[:, bias] = math.sqrt(n_tok)

    # Layer 0: previous-token heads. q = gain * bias * v on the fast pairs, k = the same vector turned by RoPE one
    # position ahead, so q_m . k_n = gain^2 bias^2 sum_i cos(w_i (m - n - 1)): largest at n = m - 1.
    layer0 = model.layers[0]
    v_q = torch.zeros(d)
    for i in fast:
        v_q[i] = 1.0
    angle = torch.zeros(d)
    freqs = cfg.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    angle[:half] = freqs.float()
    angle[half:] = freqs.float()
    rotated = torch.cat([-v_q[half:], v_q[:half]])
    v_k = v_q * angle.cos() + rotated * angle.sin()  # RoPE of v_q at position 1
    # Scale so the attention logit at n = m - 1 beats every other offset up to 1024 by 8 * prev_qk_gain nats.
    offsets = torch.arange(-1024, 1025, dtype=torch.float64)
    profile = torch.cos(freqs[fast][:, None] * (offsets[None] - 1)).sum(0)
    margin = float(profile[offsets == 1] - profile[offsets != 1].max())
    scale = prev_qk_gain * 8.0 * math.sqrt(d) / (margin * n_tok)
    for h in range(n_prev_heads):
        rows = slice(h * d, (h + 1) * d)
        src = slice(h * d, min((h + 1) * d, n_tok))
        width = src.stop - src.start
        for proj in (layer0.q_proj, layer0.k_proj, layer0.v_proj):
            proj.weight[rows] = 0.0
        layer0.q_proj.weight[rows, bias] = v_q * math.sqrt(scale)
        layer0.k_proj.weight[rows, bias] = v_k * math.sqrt(scale)
        layer0.v_proj.weight[rows.start + torch.arange(width), torch.arange(src.start, src.stop)] = 1.0
        layer0.o_proj.weight[:, rows] = 0.0
        layer0.o_proj.weight[prev.start + torch.arange(src.start, src.stop), rows.start + torch.arange(width)] = 1.0

    # Layer 1: content-matching heads on prev (query and key), copying tok.
    layer1 = model.layers[1]
    slow_dims = torch.tensor(slow + [i + half for i in slow])
    n_prev = prev.stop - prev.start
    k = len(slow_dims)
    for h in range(heads):
        rows = slice(h * d, (h + 1) * d)
        for proj in (layer1.q_proj, layer1.k_proj, layer1.v_proj):
            proj.weight[rows] = 0.0
        src = prev.start + (torch.arange(k) + h * k) % n_prev
        layer1.q_proj.weight[rows.start + slow_dims, src] = match_qk_gain
        layer1.k_proj.weight[rows.start + slow_dims, src] = match_qk_gain
        start = (h % n_prev_heads) * d
        width = min(d, n_tok - start)
        layer1.v_proj.weight[rows.start + torch.arange(width), start + torch.arange(width)] = 1.0
        layer1.o_proj.weight[:, rows] = 0.0
        layer1.o_proj.weight[start + torch.arange(width), rows.start + torch.arange(width)] = copy_gain

    model.lm_head.weight.zero_()
    model.lm_head.weight[:, tok] = emb[:, tok] * logit_scale
    model.lm_head.weight[cfg.mask_token_id] = 0.0  # a masked slot's own identity is never the answer
