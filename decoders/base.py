"""Strategy base class and the step I/O types (docs/architecture.md, section 2).

A strategy is a frozen dataclass of hyperparameters plus pure functions written against the array API, so the
same source runs on NumPy arrays, torch tensors and JAX arrays (also under ``jax.jit``). Per block the engine calls::

    state = strategy.init_state(block_mask_count, steps_per_block)     # block_mask_count: [B] int
    out = strategy.step(StepInput(...), state)                          # -> StepOutput
    canvas = where(out.commit, out.tokens, canvas); canvas = where(out.remask, mask_id, canvas)

``strategy.schedule`` says how many steps a block takes:

* ``"fixed"``: exactly ``steps_per_block`` steps; after the last one the block has no masks.
* ``"dynamic"``: run until the block has no masks; every step commits at least one maskable position.

Noise is drawn by the engine from an explicit RNG and passed in (``StepInput.gumbel`` when
``sampling.temperature > 0``, ``StepInput.uniform`` when ``strategy.needs_uniform_noise(sampling)``), so a strategy
is a deterministic function of its inputs.

Under ``jax.jit`` build the ``StepInput`` *inside* the traced function (close over ``steps_per_block`` and
``sampling``): both must stay Python values, they select code paths and static shapes. Strategies that compute in
float64 (``precision="float64"``, Gumbel proposals) need ``jax_enable_x64``; without it JAX silently computes in float32.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, NamedTuple, Optional

__all__ = ["SamplingParams", "StepInput", "StepOutput", "EmptyState", "Strategy"]


class SamplingParams(NamedTuple):
    """Token sampling controls (static Python values).

    Args:
        temperature: 0 means greedy (argmax, no noise); > 0 samples with the engine's Gumbel noise.
        top_p: nucleus filter on the tempered distribution; ``None`` or ``>= 1`` disables it.
        top_k: keep the ``top_k`` largest logits; ``None`` or ``<= 0`` disables it.
    """

    temperature: float = 0.0
    top_p: Optional[float] = None
    top_k: Optional[int] = None


class StepInput(NamedTuple):
    """Inputs of one strategy step (shapes: B batch, L canvas length, V vocabulary).

    Args:
        logits: ``[B, L, V]`` float32 aligned logits after CFG and EOS processors (raw, untempered).
        canvas: ``[B, L]`` int current tokens (mask id where masked).
        maskable: ``[B, L]`` bool, masked and inside the current block and not prompt and not padding.
        step: 0-d int array, step index inside the current block (0-based).
        steps_per_block: Python int (static), the schedule length S.
        sampling: ``SamplingParams`` (static).
        gumbel: ``[B, L, V]`` float64 standard Gumbel noise, or None (required when temperature > 0).
        uniform: ``[B, L]`` float64 U[0, 1) noise, or None (required when ``needs_uniform_noise``).
    """

    logits: Any
    canvas: Any
    maskable: Any
    step: Any
    steps_per_block: int
    sampling: SamplingParams = SamplingParams()
    gumbel: Any = None
    uniform: Any = None


class StepOutput(NamedTuple):
    """Outputs of one strategy step.

    Args:
        tokens: ``[B, L]`` int candidate token at every position (only read where ``commit``).
        commit: ``[B, L]`` bool, a subset of ``maskable``.
        remask: ``[B, L]`` bool, committed generated positions to turn back into the mask (all False here).
        state: the updated strategy state (a pytree).
    """

    tokens: Any
    commit: Any
    remask: Any
    state: Any


class EmptyState(NamedTuple):
    """State of strategies that keep nothing between steps (an empty pytree)."""


def _type_info(cls) -> dict[str, Any]:
    """Resolved annotations of the dataclass fields of ``cls`` (cached on the class)."""
    cache = cls.__dict__.get("_decoders_type_cache")
    if cache is None:
        hints = typing.get_type_hints(cls)
        cache = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}
        setattr(cls, "_decoders_type_cache", cache)  # plain class attribute, not a dataclass field
    return cache


def describe_type(tp: Any) -> str:
    """Human readable name of a field type: ``float``, ``int``, ``float | None``, ``'a' | 'b'``."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        return " | ".join("None" if a is type(None) else describe_type(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def check_value(owner: str, field: str, tp: Any, value: Any) -> Any:
    """Type-check ``value`` for a field of type ``tp``; return it normalised (int -> float for float fields)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(owner, field, a, value)
            except ValueError as e:
                errors.append(e)
        raise errors[0] if errors else ValueError(f"{owner}: parameter {field!r} got {value!r}.")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"{owner}: parameter {field!r} must be one of {', '.join(map(repr, choices))}; "
                             f"got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or isinstance(value, complex):
            if hasattr(value, "__float__") and not isinstance(value, (str, bytes, bool)):
                value = float(value)  # numpy scalars
            else:
                raise ValueError(f"{owner}: parameter {field!r} must be a float, got {value!r} "
                                 f"({type(value).__name__}); use decoders.coerce_params for strings.")
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"{owner}: parameter {field!r} must not be NaN, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{owner}: parameter {field!r} must be an int, got {value!r}.")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            if hasattr(value, "__index__") and not isinstance(value, str):
                return int(value.__index__())  # numpy ints
            raise ValueError(f"{owner}: parameter {field!r} must be an int, got {value!r} "
                             f"({type(value).__name__}); use decoders.coerce_params for strings.")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{owner}: parameter {field!r} must be a bool, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{owner}: parameter {field!r} must be a str, got {value!r}.")
        return value
    return value


@dataclasses.dataclass(frozen=True)
class Strategy:
    """Base class of all decoding strategies (a frozen dataclass of hyperparameters).

    Subclasses are dataclasses registered with ``@decoders.register(name, aliases=...)``. They implement
    ``step`` (and ``init_state`` / ``needs_uniform_noise`` when needed) and may override ``_validate`` to check
    ranges. Class attributes:

    * ``strategy_name`` / ``strategy_aliases``: set by ``register``.
    * ``reproduces``: the published method reproduced (repository + function).
    * ``schedule``: ``"fixed"`` or ``"dynamic"`` (a property where it depends on the parameters).
    """

    strategy_name: ClassVar[str] = ""
    strategy_aliases: ClassVar[tuple[str, ...]] = ()
    reproduces: ClassVar[str] = ""
    schedule: ClassVar[str] = "dynamic"
    # fields where None is accepted as a synonym of a value (e.g. {"k": 0}: "no fixed k")
    none_means: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        owner = f"strategy {self.type_name!r}"
        for name, tp in _type_info(type(self)).items():
            value = getattr(self, name)
            if value is None and name in self.none_means:
                value = self.none_means[name]
            value = check_value(owner, name, tp, value)
            object.__setattr__(self, name, value)
        self._validate()

    def _validate(self) -> None:
        """Range checks of the subclass; raise ``ValueError(f"... got {value!r}.")``."""

    def _fail(self, field: str, requirement: str) -> None:
        raise ValueError(f"strategy {self.type_name!r}: parameter {field!r} {requirement}, "
                         f"got {getattr(self, field)!r}.")

    # ------------------------------------------------------------------ config round trip
    @property
    def type_name(self) -> str:
        """The registered name, or ``"module:Class"`` for an unregistered class (so ``to_dict`` round-trips)."""
        cls = type(self)
        return cls.__dict__.get("strategy_name") or f"{cls.__module__}:{cls.__qualname__}"

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """``{"type": name, **all fields}`` (JSON-serialisable)."""
        d: dict[str, Any] = {"type": self.type_name}
        for f in dataclasses.fields(self):
            d[f.name] = getattr(self, f.name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Strategy":
        """Inverse of ``to_dict``. On ``Strategy`` itself it dispatches on ``d["type"]`` through the registry."""
        from .registry import strategy_from_dict, resolve_name

        if cls is Strategy:
            return strategy_from_dict(d)
        d = dict(d)
        t = d.pop("type", None)
        if t is not None and resolve_name(t, missing_ok=True) is not cls:
            raise ValueError(f"{cls.__name__}.from_dict: type {t!r} does not name strategy {cls.strategy_name!r}.")
        from .registry import _check_params

        _check_params(cls, d)
        return cls(**d)

    def replace(self, **changes: Any) -> "Strategy":
        """A copy with some parameters changed (validated)."""
        from .registry import _check_params

        _check_params(type(self), changes)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ the step contract
    def needs_uniform_noise(self, sampling: SamplingParams) -> bool:
        """Whether ``step`` reads ``StepInput.uniform`` ([B, L] float64 U[0, 1))."""
        return False

    def needs_gumbel_noise(self, sampling: SamplingParams) -> bool:
        """Whether ``step`` reads ``StepInput.gumbel`` (always ``temperature > 0``)."""
        return sampling.temperature > 0

    def init_state(self, block_mask_count: Any, steps_per_block: int) -> Any:
        """State at the start of a block. ``block_mask_count``: ``[B]`` int masks in the block."""
        return EmptyState()

    def step(self, inp: StepInput, state: Any) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, inp: StepInput, state: Any) -> StepOutput:
        return self.step(inp, state)
