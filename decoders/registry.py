"""Strategy registry: short names and aliases, ``{"type": name, **params}`` configs, CLI string coercion.

>>> from decoders import get_strategy, strategy_from_dict
>>> s = get_strategy("threshold", threshold=0.8)
>>> strategy_from_dict(s.to_dict()) == s
True

Lookup order for a name: the in-tree registry (names and aliases, case-insensitive, ``-`` == ``_``), then the
``"package.module:Class"`` escape hatch, then the ``decoders.strategies`` entry-point group (third-party plug-ins,
loaded on first miss).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import typing
from typing import Any, Callable, Iterable, Optional, TypeVar

from .base import Strategy, _type_info, describe_type

__all__ = [
    "register",
    "get_strategy",
    "strategy_from_dict",
    "list_strategies",
    "coerce_params",
    "resolve_name",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "decoders.strategies"

_REGISTRY: dict[str, type[Strategy]] = {}  # canonical name -> class
_ALIASES: dict[str, str] = {}  # normalised name or alias -> canonical name
_ENTRY_POINTS_LOADED = False

S = TypeVar("S", bound=type)


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(name: str, *, aliases: Iterable[str] = (), reproduces: Optional[str] = None) -> Callable[[S], S]:
    """Class decorator registering a ``Strategy`` dataclass under ``name`` and ``aliases``.

    Args:
        name: canonical short name (what ``to_dict()["type"]`` writes).
        aliases: other accepted names (names users know from the reference code).
        reproduces: the published method reproduced (``"owner/repo path::function"``); defaults to the class's
            ``reproduces`` attribute.
    """

    def deco(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, Strategy) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"@register({name!r}) expects a Strategy dataclass, got {cls!r}.")
        canon = _norm(name)
        keys = [canon] + [_norm(a) for a in aliases]
        for k in keys:
            owner = _ALIASES.get(k)
            if owner is not None and _REGISTRY[owner] is not cls:
                raise ValueError(f"strategy name {k!r} is already registered by {_REGISTRY[owner].__name__}.")
        cls.strategy_name = canon
        cls.strategy_aliases = tuple(keys[1:])
        if reproduces is not None:
            cls.reproduces = reproduces
        _REGISTRY[canon] = cls
        for k in keys:
            _ALIASES[k] = canon
        return cls

    return deco


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    try:
        from importlib.metadata import entry_points

        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata must not break lookups
        return
    for ep in eps:
        try:
            obj = ep.load()
        except Exception:  # pragma: no cover
            continue
        if isinstance(obj, type) and issubclass(obj, Strategy) and _norm(ep.name) not in _ALIASES:
            if obj.strategy_name and obj.strategy_name in _REGISTRY:
                _ALIASES[_norm(ep.name)] = obj.strategy_name
            else:
                register(ep.name)(obj)


def _import_class(spec: str) -> type[Strategy]:
    module, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import strategy {spec!r}: {e}.") from e
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ValueError(f"{spec!r} is not a decoders.Strategy subclass, got {obj!r}.")
    return obj


def resolve_name(name: str, missing_ok: bool = False) -> Optional[type[Strategy]]:
    """The strategy class for a registered name, alias, or ``"module:Class"`` spec."""
    if not isinstance(name, str):
        raise ValueError(f"strategy name must be a str, got {name!r}.")
    if ":" in name:
        return _import_class(name)
    key = _norm(name)
    if key not in _ALIASES:
        _load_entry_points()
    canon = _ALIASES.get(key)
    if canon is None:
        if missing_ok:
            return None
        known = sorted(_ALIASES)
        close = difflib.get_close_matches(key, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown strategy {name!r}.{hint} Known strategies: {', '.join(sorted(_REGISTRY))} "
                         f"(aliases: {', '.join(k for k in known if k not in _REGISTRY)}).")
    return _REGISTRY[canon]


def _check_params(cls: type[Strategy], params: dict[str, Any]) -> None:
    names = cls.param_names()
    for p in params:
        if p not in names:
            close = difflib.get_close_matches(p, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"strategy {cls.strategy_name or cls.__name__!r} has no parameter {p!r}{hint}; "
                             f"parameters: {', '.join(names) if names else '(none)'}.")


def get_strategy(name: Any, **params: Any) -> Strategy:
    """Build a strategy.

    Args:
        name: a registered name or alias (``"low_confidence"``, ``"confidence_threshold"``, ...), a
            ``"package.module:Class"`` spec, a ``{"type": name, **params}`` dict, or a ``Strategy`` (returned,
            with ``params`` applied through ``replace``).
        **params: hyperparameters (typed values; see ``coerce_params`` for strings from a CLI).

    Raises:
        ValueError: unknown name, unknown parameter, or invalid value (the message names it).
    """
    if isinstance(name, Strategy):
        return name.replace(**params) if params else name
    if isinstance(name, dict):
        return strategy_from_dict({**name, **params})
    cls = resolve_name(name)
    _check_params(cls, params)
    return cls(**params)


def strategy_from_dict(d: dict[str, Any]) -> Strategy:
    """``{"type": name, **params}`` -> Strategy (the inverse of ``Strategy.to_dict``)."""
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"a strategy config must be a dict with a 'type' key, got {d!r}.")
    params = dict(d)
    return get_strategy(params.pop("type"), **params)


_TRUE = {"1", "true", "yes", "y", "on", "t"}
_FALSE = {"0", "false", "no", "n", "off", "f"}
_NONE = {"none", "null", "~", ""}


def _coerce_one(owner: str, field: str, tp: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    s = value.strip()
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if type(None) in typing.get_args(tp) and s.lower() in _NONE:
            return None
        for a in args:
            try:
                return _coerce_one(owner, field, a, s)
            except ValueError:
                continue
        raise ValueError(f"{owner}: cannot convert {value!r} for parameter {field!r} to {describe_type(tp)}.")
    if origin is typing.Literal:
        for c in typing.get_args(tp):
            if str(c) == s or (isinstance(c, str) and c.lower() == s.lower()):
                return c
        return s  # validation reports the allowed choices
    try:
        if tp is float:
            return float(s)
        if tp is int:
            f = float(s)
            if not f.is_integer():
                raise ValueError
            return int(f)
    except ValueError:
        raise ValueError(f"{owner}: cannot convert {value!r} for parameter {field!r} to "
                         f"{describe_type(tp)}.") from None
    if tp is bool:
        if s.lower() in _TRUE:
            return True
        if s.lower() in _FALSE:
            return False
        raise ValueError(f"{owner}: cannot convert {value!r} for parameter {field!r} to bool.")
    return s


def coerce_params(cls: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Convert string values (from a CLI / query string) to the field types of a strategy.

    Args:
        cls: a Strategy class, instance, or a registered name.
        params: ``{"threshold": "0.9", "alg_temp": "none"}``; non-string values pass through.

    Returns:
        a new dict with converted values (``"none"``/``"null"`` -> None for optional fields).
    """
    if isinstance(cls, str):
        cls = resolve_name(cls)
    elif isinstance(cls, Strategy):
        cls = type(cls)
    _check_params(cls, params)
    types = _type_info(cls)
    owner = f"strategy {cls.strategy_name or cls.__name__!r}"
    out = {}
    for k, v in params.items():
        if isinstance(v, str) and v.strip().lower() in _NONE and k in cls.none_means:
            out[k] = cls.none_means[k]
        else:
            out[k] = _coerce_one(owner, k, types[k], v)
    return out


def list_strategies() -> list[dict[str, Any]]:
    """One record per registered strategy, sorted by name.

    Each record: ``name``, ``aliases``, ``schedule`` (of the default instance), ``reproduces``, ``summary``
    (first docstring line), ``remasks`` and ``parameters`` (list of ``{"name", "type", "default"}``,
    plus ``"choices"`` for enumerations).
    """
    _load_entry_points()
    out = []
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        types = _type_info(cls)
        params = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            rec = {"name": f.name, "type": describe_type(types[f.name]), "default": default}
            tp = types[f.name]
            if typing.get_origin(tp) is typing.Literal:
                rec["choices"] = list(typing.get_args(tp))
            params.append(rec)
        try:
            schedule = cls().schedule
        except Exception:  # pragma: no cover - a strategy without defaults
            schedule = getattr(cls, "schedule", "dynamic")
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append({
            "name": name,
            "aliases": list(cls.strategy_aliases),
            "schedule": schedule,
            "reproduces": cls.reproduces,
            "summary": doc[0] if doc else "",
            "remasks": False,
            "parameters": params,
        })
    return out
