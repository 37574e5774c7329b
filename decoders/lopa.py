"""LoPA lookahead branch decoding: the ``lopa`` strategy config and the pure branch-scoring helpers.

Published method: Xu et al., "LoPA" (arXiv 2512.16229, Alg. 1 and Eq. 2); code ``zhijie-group/LoPA``
(``scale_dream_d2f/scale_dream_d2f.py``, ``lopa_dist_nv/generate_branch_parallel.py``). The toolkit's restatement
is ``lopa.md`` §3; this module holds only backend-neutral pieces. The loop that owns the model lives in the
engines (``dllm.lookahead`` for torch, ``dllm.distributed.jax_branches`` for JAX, with branch parallelism in
``dllm.distributed``).

One **iteration** (one batched forward) with ``k = num_lookahead``::

    logits (of the current canvas, from the previous forward)
      -> anchor  B0 = base rule applied to the canvas        (base.step: threshold / factor / entropy / EB ...)
      -> lookahead B_j = B0 + one more position p_j          (p_1..p_k: top-k of the block's remaining masks
                                                              by branch_score, token = the base's proposal)
      -> ONE forward of the k + 1 branch canvases            (rows of one batch, or spread over devices)
      -> C(B_j) = alpha * creation_conf_j + (1 - alpha) * mean(lowest max(1, floor(rho * n)) scores over the
                  n masked positions of B_j's scope, from B_j's own logits)      (Eq. 2 at alpha=0, rho=1)
      -> winner = argmax_j C(B_j) (ties: lookaheads before the anchor); its logits drive the next fill.

Defaults and why:

* ``base="threshold"`` (Fast-dLLM's tau = 0.9 ``>=``; LoPA's anchor is D2F's tau_conf = 0.9 fill, lopa.md §2.4).
* ``num_lookahead=3``: k + 1 = 4 sequences per forward. The released Dream script sweeps 2-4 branches
  (lopa.md §3.7) and 4 branches cost 1.1-1.45x one branch on one H100 (checkpoints.md §6.2). Also accepted as
  ``branches`` (the number of *lookahead* branches, as ``branching_factor`` in ``scale_dream_d2f.py``).
* ``alpha=0.0``, ``rho=1.0``: the released scripts' settings, which are exactly Eq. 2 (mean confidence of all
  remaining masks). The reference *constructors* default to 0.5 / 0.5; those are not paper settings (lopa.md §3.3).
* ``branch_score="confidence"``: max-probability ``Conf(i)`` of Eq. 2 (the DiffuCoder code); the Dream scripts use
  ``"neg_entropy"`` (``sum p log p <= 0``), ``"margin"`` is top-1 minus top-2. The score ranks the lookahead
  candidates and scores the branches; the anchor's acceptance rule is always the base's own.
* ``branch_scope="block"``: a branch's "remaining masks" are those of the active semi-AR block (the positions the
  next fill acts on; the counterpart of D2F's active-block window). ``"suffix"`` also counts every later masked
  position of the generation. A branch with no masks in scope scores ``future = 1.0`` (lopa.md §3.3).

``Lopa.step`` is the **anchor rule** (the base strategy's step), so a loop that does not know about branches
degrades to the base strategy; engines check the class flag ``requires_branches`` and run the lookahead loop.

Config form (flat, so every value round-trips through ``--param key=value`` strings and sweeps)::

    {"type": "lopa", "base": "threshold", "num_lookahead": 3, "alpha": 0.0, "rho": 1.0,
     "branch_score": "confidence", "branch_scope": "block", "threshold": 0.9, "precision": "float64"}

The base's parameters sit next to LoPA's own (LoPA's names never collide with a base's); a nested
``base_params={...}`` (dict or JSON text) and a ``base={"type": ..., ...}`` dict are accepted as input too.

>>> from decoders import get_strategy
>>> s = get_strategy("lopa", base="factor", branches=2, factor=1.5)
>>> s.num_lookahead, s.num_branches, s.base_strategy.factor
(2, 3, 1.5)
>>> get_strategy(s.to_dict()) == s
True
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from . import ops
from .base import StepInput, StepOutput, Strategy
from .registry import register

__all__ = [
    "Lopa",
    "BRANCH_SCORES",
    "position_scores",
    "lookahead_candidates",
    "build_branches",
    "future_confidence",
    "branch_confidence",
    "select_winner",
    "is_branching",
]

BRANCH_SCORES = ("confidence", "margin", "neg_entropy")

#: LoPA's own parameters (a base strategy may use any other name).
_OWN = ("base", "num_lookahead", "alpha", "rho", "branch_score", "branch_scope", "base_params")
#: Input synonyms of LoPA's own parameters.
_ALIASES = {"branches": "num_lookahead"}
_UNSET: Any = object()


def is_branching(strategy: Any) -> bool:
    """Whether ``strategy`` (object or class) needs the lookahead loop (class flag ``requires_branches``)."""
    return bool(getattr(strategy, "requires_branches", False))


class _FieldTypes(dict):
    """Field types of ``Lopa`` for ``coerce_params``: unknown keys (a base's parameters) are ``Any``, so CLI text
    passes through unchanged and is converted against the chosen base when the strategy is built."""

    def __missing__(self, key):
        return Any


def _registered_base_param_names() -> list[str]:
    from .registry import _REGISTRY

    names: list[str] = []
    for cls in list(_REGISTRY.values()):
        if is_branching(cls):
            continue
        for n in cls.param_names():
            if n not in names:
                names.append(n)
    return names


def _parse_base_params(value: Any) -> dict[str, Any]:
    if value is None or value == "" or value == ():
        return {}
    if isinstance(value, str):
        s = value.strip()
        if s.lower() in ("none", "null", "{}"):
            return {}
        try:
            value = json.loads(s)
        except ValueError:
            raise ValueError(f"strategy 'lopa': parameter 'base_params' must be a dict or JSON object text, "
                             f"got {value!r}.") from None
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (tuple, list)) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in value):
        return {str(k): v for k, v in value}
    raise ValueError(f"strategy 'lopa': parameter 'base_params' must be a dict, got {value!r}.")


@register("lopa", aliases=("lookahead", "lopa_lookahead"),
          reproduces="zhijie-group/LoPA scale_dream_d2f/scale_dream_d2f.py (LoPA, arXiv 2512.16229 Alg. 1, Eq. 2)")
@dataclass(frozen=True, init=False)
class Lopa(Strategy):
    """LoPA lookahead: anchor = base rule, k lookaheads commit one more top position each, best branch wins.

    Args:
        base: a threshold-style (``"dynamic"``) strategy name: ``threshold`` (default), ``factor``,
            ``entropy_threshold``, ``entropy_threshold_dream``, ``eb_sampler``, ``topk``, ``left_to_right`` ...;
            also a ``{"type": ..., ...}`` dict or a strategy object.
        num_lookahead: k lookahead branches (k + 1 sequences per forward; alias ``branches``). 0 = the base.
        alpha: weight of the branch's creation confidence (the anchor's is 1.0), in [0, 1].
        rho: fraction of the lowest confidences averaged for the future confidence, in (0, 1].
        branch_score: ``"confidence"`` | ``"margin"`` | ``"neg_entropy"``, per-position score for ranking the
            lookahead positions and scoring branches (softmax in float32).
        branch_scope: ``"block"`` (masks of the active block) | ``"suffix"`` (plus every later masked position).
        base_params: the base's parameters (filled in from the flat keys; ``to_dict`` writes them flat).
        **base_kwargs: the base's parameters given flat, e.g. ``threshold=0.8``.

    Raises:
        ValueError: unknown base or base parameter, a base that is not ``"dynamic"``, out-of-range values.
    """

    base: str = "threshold"
    num_lookahead: int = 3
    alpha: float = 0.0
    rho: float = 1.0
    branch_score: Literal["confidence", "margin", "neg_entropy"] = "confidence"
    branch_scope: Literal["block", "suffix"] = "block"
    base_params: tuple = ()

    requires_branches: ClassVar[bool] = True
    schedule = "dynamic"  # type: ignore[misc]

    def __init__(self, base: Any = "threshold", num_lookahead: Any = _UNSET, alpha: Any = 0.0, rho: Any = 1.0,
                 branch_score: Any = "confidence", branch_scope: Any = "block", base_params: Any = (),
                 **base_kwargs: Any):
        from .registry import _coerce_one, coerce_params, get_strategy, resolve_name

        own = {"num_lookahead": 3 if num_lookahead is _UNSET else num_lookahead, "alpha": alpha, "rho": rho,
               "branch_score": branch_score, "branch_scope": branch_scope}
        for alias, target in _ALIASES.items():
            if alias in base_kwargs:
                value = base_kwargs.pop(alias)
                if num_lookahead is not _UNSET and value != num_lookahead:
                    raise ValueError(f"strategy 'lopa': give the number of lookahead branches once (got "
                                     f"{target}={num_lookahead!r} and {alias}={value!r}).")
                own[target] = value
        types = _type_info_lopa()
        for name, value in own.items():  # CLI text -> typed values (aliases arrive as text through coerce_params)
            if isinstance(value, str):
                own[name] = _coerce_one("strategy 'lopa'", name, types[name], value)

        # ---- the base strategy
        params = _parse_base_params(base_params)
        if isinstance(base, Strategy):
            base_obj_params = base.to_dict()
            base_name = base_obj_params.pop("type")
            params = {**base_obj_params, **params}
        elif isinstance(base, dict):
            d = dict(base)
            if not isinstance(d.get("type"), str):
                raise ValueError(f"strategy 'lopa': a base dict needs a string 'type', got {base!r}.")
            base_name = d.pop("type")
            params = {**d, **params}
        elif isinstance(base, str) and base.strip():
            base_name = base.strip()
        else:
            raise ValueError(f"strategy 'lopa': parameter 'base' must be a strategy name, got {base!r}.")
        params.update(base_kwargs)
        cls = resolve_name(base_name)
        if is_branching(cls):
            raise ValueError(f"strategy 'lopa': the base must be a single-branch strategy, got {base_name!r}.")
        canon = cls.strategy_name or f"{cls.__module__}:{cls.__qualname__}"
        try:
            text = {k: v for k, v in params.items() if isinstance(v, str)}
            typed = {**params, **(coerce_params(cls, text) if text else {})}
            base_obj = get_strategy(canon, **typed)
        except ValueError as e:
            raise ValueError(f"strategy 'lopa' (base {canon!r}): {e}") from None
        if base_obj.schedule != "dynamic":
            raise ValueError(f"strategy 'lopa': the base must be a threshold-style ('dynamic') strategy that commits "
                             f">= 1 position per step until the block is empty (threshold, factor, "
                             f"entropy_threshold, eb_sampler, ...), got {canon!r} with schedule "
                             f"{base_obj.schedule!r}.")
        if int(getattr(base_obj, "max_post_edit_steps", 0) or 0):
            raise ValueError(f"strategy 'lopa': bases with post-edit steps are not supported, got {canon!r}.")
        full = base_obj.to_dict()
        full.pop("type")
        collide = sorted(set(full) & (set(_OWN) | set(_ALIASES)))
        if collide:  # pragma: no cover - no registered strategy uses these names
            raise ValueError(f"strategy 'lopa': base {canon!r} has parameters {collide} that clash with LoPA's own.")
        object.__setattr__(self, "base", canon)
        for name, value in own.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "base_params", tuple(full.items()))
        object.__setattr__(self, "_base", base_obj)
        self.__post_init__()

    def _validate(self) -> None:
        if self.num_lookahead < 0:
            self._fail("num_lookahead", "must be >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            self._fail("alpha", "must be in [0, 1]")
        if not 0.0 < self.rho <= 1.0:
            self._fail("rho", "must be in (0, 1]")

    # ------------------------------------------------------------------ config
    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """LoPA's own parameters, the alias ``branches``, and every parameter name of the registered
        single-branch strategies (a base's parameters are given flat)."""
        extra = [n for n in _registered_base_param_names() if n not in _OWN]
        return _OWN + tuple(_ALIASES) + tuple(extra)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "lopa", base, num_lookahead, alpha, rho, branch_score, branch_scope, **base parameters}``."""
        d: dict[str, Any] = {"type": self.type_name}
        for name in _OWN[:-1]:
            d[name] = getattr(self, name)
        d.update(dict(self.base_params))
        return d

    def replace(self, **changes: Any) -> "Lopa":
        """A copy with some parameters changed; changing ``base`` drops the old base's parameters."""
        from .registry import _check_params

        _check_params(type(self), changes)
        d = self.to_dict()
        d.pop("type")
        if "base" in changes:
            for k, _ in self.base_params:
                d.pop(k, None)
        for alias, target in _ALIASES.items():
            if alias in changes:
                changes[target] = changes.pop(alias)
        d.update(changes)
        return type(self)(**d)

    def __reduce__(self):
        d = self.to_dict()
        d.pop("type")
        return (_rebuild, (d,))

    # ------------------------------------------------------------------ derived
    @property
    def base_strategy(self) -> Strategy:
        """The wrapped base strategy object (the anchor rule)."""
        return self._base  # type: ignore[attr-defined]

    @property
    def num_branches(self) -> int:
        """k + 1: the anchor plus the lookaheads."""
        return self.num_lookahead + 1

    # ------------------------------------------------------------------ the anchor rule (base strategy)
    def needs_uniform_noise(self, sampling) -> bool:
        return self.base_strategy.needs_uniform_noise(sampling)

    def needs_gumbel_noise(self, sampling) -> bool:
        return self.base_strategy.needs_gumbel_noise(sampling)

    def init_state(self, block_mask_count: Any, steps_per_block: int) -> Any:
        return self.base_strategy.init_state(block_mask_count, steps_per_block)

    def step(self, inp: StepInput, state: Any) -> StepOutput:
        """The anchor fill (the base's rule). The lookahead itself needs the engine's branch loop."""
        return self.base_strategy.step(inp, state)


def _rebuild(d: dict) -> Lopa:
    return Lopa(**d)


def _type_info_lopa() -> dict:
    cache = Lopa.__dict__.get("_decoders_type_cache")
    if not isinstance(cache, _FieldTypes):
        hints = typing.get_type_hints(Lopa)
        cache = _FieldTypes({f.name: hints.get(f.name, Any) for f in dataclasses.fields(Lopa)})
        cache["base_params"] = Any
        setattr(Lopa, "_decoders_type_cache", cache)
    return cache


_type_info_lopa()


# ================================================================================================ pure helpers
# Array-API functions (NumPy, torch, jax.numpy; fixed shapes, no host syncs, jit-able) shared by the torch and
# JAX branch loops. Shapes: B prompts, K1 = k + 1 branches (anchor first), L positions, V vocabulary.

def position_scores(logits: Any, kind: str = "confidence", dtype: Any = None) -> Any:
    """Per-position score ``[..., L]`` of ``[..., L, V]`` logits (higher = more confident).

    Args:
        logits: aligned, processed logits (``-inf`` columns allowed).
        kind: ``"confidence"`` (max softmax probability), ``"margin"`` (top-1 minus top-2 probability) or
            ``"neg_entropy"`` (``sum p log p``, ``<= 0``).
        dtype: softmax dtype (default float32 of the logits' namespace).
    """
    xp = ops.namespace(logits)
    dtype = xp.float32 if dtype is None else dtype
    if kind == "confidence":
        return xp.max(ops.softmax(logits, dtype), axis=-1)
    if kind == "margin":
        return ops.margin(ops.softmax(logits, dtype))
    if kind == "neg_entropy":
        return -ops.entropy(logits, dtype)
    raise ValueError(f"branch_score must be one of {BRANCH_SCORES}, got {kind!r}.")


def lookahead_candidates(score: Any, candidates: Any, k: int) -> tuple[Any, Any]:
    """The top-``k`` candidate positions of each row by descending score (ties: lower index).

    Args:
        score: ``[B, L]`` position scores of the current (winner's) logits.
        candidates: ``[B, L]`` bool, the block's masked positions the anchor left masked.
        k: static number of lookahead branches.

    Returns:
        ``(positions [B, k] int, valid [B, k] bool)``; ``valid[b, j]`` is False when row b has ``<= j`` candidates
        (that branch is a copy of the anchor and must not win).
    """
    xp = ops.namespace(score, candidates)
    order = ops.descending_order(score, candidates)[..., :k]
    L = score.shape[-1]
    if k > L:  # more branches than positions: the extra ones are never valid
        order = xp.concat([order, xp.zeros((order.shape[0], k - L), dtype=order.dtype,
                                           device=ops.device_of(order))], axis=-1)
    n = ops.count(candidates)
    j = xp.arange(k, device=ops.device_of(score))
    return order, j[None, :] < xp.astype(n, j.dtype)[:, None]


def build_branches(anchor: Any, tokens: Any, positions: Any, valid: Any) -> Any:
    """Branch canvases ``[B, k + 1, L]``: branch 0 is the anchor, branch j also writes ``tokens`` at
    ``positions[:, j - 1]`` (only where ``valid``; an invalid branch stays a copy of the anchor).

    Args:
        anchor: ``[B, L]`` int, the canvas after the base rule.
        tokens: ``[B, L]`` int, the proposal at every position (or ``[B, k]`` tokens at ``positions``).
        positions / valid: from :func:`lookahead_candidates`.
    """
    xp = ops.namespace(anchor, tokens, positions, valid)
    L = anchor.shape[-1]
    if tokens.shape[-1] == L and positions.shape[-1] != L:
        tok = xp.take_along_axis(tokens, ops._as_index(xp, positions), axis=-1)
    else:
        tok = tokens
    tok = xp.astype(tok, anchor.dtype)
    col = xp.arange(L, device=ops.device_of(anchor))
    hit = (col[None, None, :] == xp.astype(positions, col.dtype)[:, :, None]) & valid[:, :, None]
    look = xp.where(hit, tok[:, :, None], anchor[:, None, :])
    return xp.concat([anchor[:, None, :], look], axis=1)


def future_confidence(score: Any, masked: Any, rho: float = 1.0) -> Any:
    """Mean of the lowest ``max(1, floor(rho * n))`` scores over the ``n`` masked positions (1.0 when n = 0).

    Args:
        score: ``[..., L]`` float; masked: ``[..., L]`` bool; rho: Python float in (0, 1].

    Returns:
        ``[...]`` float (the dtype of ``score``).
    """
    xp = ops.namespace(score, masked)
    n = ops.count(masked)
    if rho >= 1.0:  # Eq. 2: the plain mean (no sort)
        total = xp.sum(xp.where(masked, score, xp.zeros_like(score)), axis=-1)
        m = n
    else:
        s = xp.sort(xp.where(masked, score, xp.inf), axis=-1)  # ascending, masked entries first
        m = xp.astype(xp.floor(rho * xp.astype(n, xp.float64 if _has_f64(xp) else xp.float32)), n.dtype)
        m = xp.where(m < 1, xp.ones_like(m), m)
        j = xp.arange(score.shape[-1], device=ops.device_of(score))
        total = xp.sum(xp.where(j < m[..., None], s, xp.zeros_like(s)), axis=-1)
    denom = xp.astype(xp.where(n > 0, m, xp.ones_like(m)), score.dtype)
    return xp.where(n > 0, total / denom, xp.ones_like(total))


def _has_f64(xp) -> bool:
    try:
        import array_api_compat as aac

        if aac.is_jax_namespace(xp):
            import jax

            return bool(jax.config.jax_enable_x64)
    except Exception:  # pragma: no cover
        pass
    return True


def branch_confidence(score: Any, masked: Any, creation: Any, alpha: float = 0.0, rho: float = 1.0,
                      valid: Any = None) -> Any:
    """``C(B) = alpha * creation + (1 - alpha) * future_confidence(score, masked, rho)``; ``-inf`` where not
    ``valid``.

    Args:
        score: ``[..., L]`` position scores from each branch's **own** logits.
        masked: ``[..., L]`` bool, the branch's masked positions in scope.
        creation: ``[...]`` creation confidence (anchor: 1.0; lookahead: the score of its extra position).
        alpha, rho: Python floats. valid: ``[...]`` bool or None.
    """
    xp = ops.namespace(score, masked)
    fut = future_confidence(score, masked, rho)
    c = alpha * xp.astype(creation, fut.dtype) + (1.0 - alpha) * fut if alpha else fut
    if valid is not None:
        c = xp.where(valid, c, -xp.inf)
    return c


def select_winner(scores: Any) -> Any:
    """Winning branch ``[B]`` of ``scores [B, K1]`` (anchor at index 0): the highest score; ties go to the
    lookahead with the lowest index, the anchor only wins when strictly best (the reference's stable sort over
    ``[lookaheads..., anchor]``)."""
    xp = ops.namespace(scores)
    K1 = scores.shape[-1]
    if K1 == 1:
        return xp.argmax(scores, axis=-1)
    rolled = xp.concat([scores[..., 1:], scores[..., :1]], axis=-1)
    i = xp.argmax(rolled, axis=-1)
    return (i + 1) % K1
