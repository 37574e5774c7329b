"""Strategy sweeps for ``dllm bench``: ``--strategy``/``--param``/``--sweep`` flags and ``--config`` YAML files.

A **family** is one strategy as the user named it (``--strategy NAME`` plus its fixed ``--param`` values); a
**setting** is one point of a family's sweep (a full strategy dict plus the engine's ``block_length`` / ``steps``).
One accuracy-vs-speed curve, one PBx value and one oracle are computed per family.

Sweep syntax (``--sweep`` on the command line, or the ``sweep:`` list of a ``--config`` file)::

    [STRATEGY:]PARAM=VALUES
    VALUES = START:STOP:STEP      inclusive range in exact decimal arithmetic (0.5:1.0:0.05 -> 11 values)
           | V1,V2,...            explicit list (1,2,4,8)

Binding rule: an unprefixed sweep applies to **every** family whose strategy has ``PARAM`` (e.g. ``k`` for
``low_confidence``, ``random``, ``topk`` and ``left_to_right``), and it is an error when none has it; a
``STRATEGY:`` prefix (a registered name or alias) restricts it to the families of that strategy, and it is an
error when no such family was given or the strategy has no ``PARAM``. ``block_length`` and ``steps`` are engine
settings that every family has. Several sweeps on one family give the Cartesian product. A parameter may not be
both fixed (``--param``) and swept in the same family, nor swept twice.

Example:
    >>> fams = build_families([("low_confidence", {}), ("threshold", {})], ["threshold=0.5:0.6:0.05"])
    >>> [s.label for f in fams for s in f.settings]
    ['low_confidence', 'threshold(threshold=0.5)', 'threshold(threshold=0.55)', 'threshold(threshold=0.6)']
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["ENGINE_PARAMS", "MAX_SWEEP_VALUES", "SweepError", "Sweep", "Setting", "Family", "parse_values",
           "parse_sweep", "parse_param", "build_families", "load_sweep_config", "strategy_param_names"]

#: Decoding settings owned by the engine that can be swept for every strategy (None = the task default).
ENGINE_PARAMS = ("block_length", "steps")
#: Guard against typos such as ``0:1:0.0001``.
MAX_SWEEP_VALUES = 1000


class SweepError(ValueError):
    """A malformed ``--strategy`` / ``--param`` / ``--sweep`` / ``--config`` specification."""


@dataclass(frozen=True)
class Sweep:
    """One ``[STRATEGY:]PARAM=VALUES`` sweep: ``values`` are strings (CLI) or typed values (YAML lists)."""

    param: str
    values: tuple
    strategy: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Setting:
    """One decoding setting: the full strategy dict (``Strategy.to_dict()``) and the engine's block/steps
    (None = the task's default). ``label`` names it in tables and plots; ``swept`` holds the swept values."""

    strategy: Mapping[str, Any]
    block_length: int | None = None
    steps: int | None = None
    label: str = ""
    swept: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Canonical JSON identity (same strategy dict and engine settings = same setting)."""
        return json.dumps({"strategy": dict(self.strategy), "block_length": self.block_length,
                           "steps": self.steps}, sort_keys=True)


@dataclass(frozen=True)
class Family:
    """A strategy as named by the user, with the settings of its sweep (in sweep order)."""

    label: str
    type: str
    params: Mapping[str, Any]
    settings: tuple[Setting, ...]


# ------------------------------------------------------------------------------------------------- parsing
def _decimal(text: str, what: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise SweepError(f"{what} must be a number, got {text!r}.") from None
    if not d.is_finite():
        raise SweepError(f"{what} must be a finite number, got {text!r}.")
    return d


def _fmt(d: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros (``1.00`` -> ``1``, ``0.50`` -> ``0.5``)."""
    return format(d.normalize(), "f")


def parse_values(text: str) -> list[str]:
    """The values of a sweep: ``START:STOP:STEP`` (inclusive, exact decimals) or ``V1,V2,...``.

    Range values are computed as ``START + i * STEP`` in decimal arithmetic, so ``0.5:1.0:0.05`` gives exactly
    ``0.5, 0.55, ..., 1.0`` (11 values, no float drift); a descending range needs a negative step. Values are
    returned as text, converted to each strategy's parameter type later.

    >>> parse_values("0.5:0.6:0.05"), parse_values("1,2, 4")
    (['0.5', '0.55', '0.6'], ['1', '2', '4'])

    Raises:
        SweepError: empty list item, non-numeric range bound, zero step, a step pointing away from STOP, or more
            than ``MAX_SWEEP_VALUES`` values.
    """
    if not isinstance(text, str) or not text.strip():
        raise SweepError(f"sweep values are empty, got {text!r}.")
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise SweepError(f"a sweep range must be START:STOP:STEP, got {text!r}.")
        start, stop, step = (_decimal(p, name) for p, name in zip(parts, ("range start", "range stop",
                                                                             "range step")))
        if step == 0:
            raise SweepError(f"range step must not be 0, got {text!r}.")
        if (stop - start) * step < 0:
            raise SweepError(f"range step {parts[2]!r} points away from STOP (use a "
                             f"{'negative' if stop < start else 'positive'} step), got {text!r}.")
        count = int((stop - start) / step) + 1  # exact: Decimal division of exact decimals
        if count > MAX_SWEEP_VALUES:
            raise SweepError(f"range {text!r} has {count} values (more than {MAX_SWEEP_VALUES}).")
        return [_fmt(start + i * step) for i in range(count)]  # exact decimal arithmetic: no drift
    items = [v.strip() for v in text.split(",")]
    if any(not v for v in items):
        raise SweepError(f"sweep list has an empty item, got {text!r}.")
    if len(items) > MAX_SWEEP_VALUES:
        raise SweepError(f"sweep list {text!r} has more than {MAX_SWEEP_VALUES} values.")
    return items


def parse_sweep(text: str) -> Sweep:
    """``[STRATEGY:]PARAM=VALUES`` -> :class:`Sweep`.

    >>> parse_sweep("threshold:threshold=0.8,0.9")
    Sweep(param='threshold', values=('0.8', '0.9'), strategy='threshold', text='threshold:threshold=0.8,0.9')
    """
    if not isinstance(text, str):
        raise SweepError(f"--sweep must be text like 'threshold=0.5:1.0:0.05', got {text!r}.")
    lhs, sep, rhs = text.partition("=")
    if not sep:
        raise SweepError(f"--sweep must look like [STRATEGY:]PARAM=VALUES (e.g. threshold=0.5:1.0:0.05 or "
                         f"k=1,2,4,8), got {text!r}.")
    strategy, colon, param = lhs.strip().rpartition(":")
    if colon and not strategy.strip():
        raise SweepError(f"--sweep has an empty strategy name before ':', got {text!r}.")
    param = param.strip()
    if not param:
        raise SweepError(f"--sweep has no parameter name, got {text!r}.")
    return Sweep(param=param, values=tuple(parse_values(rhs)), strategy=strategy.strip() or None, text=text)


def parse_param(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(key, value)``."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise SweepError(f"--param must look like KEY=VALUE, got {text!r}.")
    return key.strip(), value.strip()


# ------------------------------------------------------------------------------------------------- building
def _decoders():
    try:
        import decoders
    except ImportError as e:  # pragma: no cover - decoders is part of the project
        raise SweepError(f"the 'decoders' package is not importable ({e}).") from e
    return decoders


def _canonical(name: str) -> str:
    cls = _decoders().resolve_name(name)
    return cls.strategy_name or f"{cls.__module__}:{cls.__qualname__}"


def strategy_param_names(name: str) -> tuple[str, ...]:
    """Parameter names of a registered strategy."""
    return tuple(_decoders().resolve_name(name).param_names())


def _fmt_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _coerce_engine(param: str, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "default", "")):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not f.is_integer() or f < 1:
        raise SweepError(f"{param} must be a positive integer (or 'none' for the task default), got {value!r}.")
    return int(f)


def _check_param(strategy: str, sw: Sweep) -> None:
    if sw.param not in ENGINE_PARAMS and sw.param not in strategy_param_names(strategy):
        raise SweepError(f"--sweep {sw.text or sw.param!r}: strategy {strategy!r} has no parameter {sw.param!r}; "
                         f"parameters: {', '.join(strategy_param_names(strategy)) or '(none)'} (and the engine's "
                         f"{', '.join(ENGINE_PARAMS)}).")


def _bind(fam: dict, sw: Sweep) -> None:
    if sw.param in fam["params"] or sw.param in fam["engine"]:
        raise SweepError(f"parameter {sw.param!r} of {fam['label']!r} is both fixed (--param) and swept "
                         f"(--sweep {sw.text or sw.param!r}).")
    if any(s.param == sw.param for s in fam["sweeps"]):
        raise SweepError(f"parameter {sw.param!r} of {fam['label']!r} is swept twice.")
    fam["sweeps"].append(sw)


def build_families(strategies: Sequence[tuple], sweeps: Iterable[str | Sweep] = (),
                   block_length: int | None = None, steps: int | None = None) -> list[Family]:
    """Families and their settings from ``(name, fixed params[, own sweeps])`` entries and sweep specs.

    Args:
        strategies: ``[(name_or_alias, {param: value-or-text}), ...]`` in the order given; params may include
            ``block_length`` / ``steps`` (engine settings of this family only). An optional third element lists
            sweeps bound to this entry alone (``--config`` files' per-strategy ``sweep:``).
        sweeps: ``[STRATEGY:]PARAM=VALUES`` texts or :class:`Sweep` objects (see the module docstring).
        block_length, steps: run-wide engine defaults (None = the task's ``max_tokens``).

    Raises:
        SweepError / ValueError: unknown strategy or parameter, unbound sweep, bad value, duplicate family.
    """
    dec = _decoders()
    sweeps = [s if isinstance(s, Sweep) else parse_sweep(s) for s in sweeps]
    fams: list[dict] = []
    for entry in strategies:
        name, params = entry[0], dict(entry[1])
        own = list(entry[2]) if len(entry) > 2 else []
        canon = _canonical(name)
        engine = {k: _coerce_engine(k, params.pop(k)) for k in ENGINE_PARAMS if k in params}
        text = {k: v for k, v in params.items() if isinstance(v, str)}
        strat_params = {**params, **(dec.coerce_params(canon, text) if text else {})}
        dec.strategy_from_dict({"type": canon, **strat_params})  # validate now, with the strategy's own message
        shown = {**strat_params, **engine}
        label = canon + ("[" + ",".join(f"{k}={_fmt_value(v)}" for k, v in shown.items()) + "]" if shown else "")
        if any(f["label"] == label for f in fams):
            raise SweepError(f"strategy {label!r} is given twice.")
        fam = {"label": label, "type": canon, "params": strat_params, "engine": engine, "sweeps": []}
        fams.append(fam)
        for sw in own:
            sw = sw if isinstance(sw, Sweep) else parse_sweep(sw)
            _check_param(canon, sw)
            _bind(fam, sw)
    if not fams:
        raise SweepError("no strategy given.")
    for sw in sweeps:
        if sw.strategy is not None:
            target = _canonical(sw.strategy)
            chosen = [f for f in fams if f["type"] == target]
            if not chosen:
                raise SweepError(f"--sweep {sw.text or sw.param!r} names strategy {sw.strategy!r}, which is not "
                                 f"among the strategies of this run ({', '.join(f['label'] for f in fams)}).")
            _check_param(target, sw)
        else:
            chosen = [f for f in fams if sw.param in ENGINE_PARAMS or sw.param in strategy_param_names(f["type"])]
            if not chosen:
                have = "; ".join(f"{f['type']}: {', '.join(strategy_param_names(f['type'])) or '(none)'}"
                                 for f in fams)
                raise SweepError(f"--sweep {sw.text or sw.param!r}: no strategy of this run has a parameter "
                                 f"{sw.param!r} ({have}; every strategy also has {', '.join(ENGINE_PARAMS)}).")
        for f in chosen:
            _bind(f, sw)

    out = []
    for f in fams:
        axes = [[(sw.param, v) for v in sw.values] for sw in f["sweeps"]]
        settings: list[Setting] = []
        seen = set()
        for combo in itertools.product(*axes):
            strat, engine, swept = dict(f["params"]), dict(f["engine"]), {}
            for param, value in combo:
                if param in ENGINE_PARAMS:
                    engine[param] = _coerce_engine(param, value)
                    swept[param] = engine[param]
                else:
                    typed = dec.coerce_params(f["type"], {param: value})[param] if isinstance(value, str) else value
                    strat[param] = typed
                    swept[param] = typed
            obj = dec.strategy_from_dict({"type": f["type"], **strat})
            label = f["label"] + ("(" + ", ".join(f"{k}={_fmt_value(v)}" for k, v in swept.items()) + ")"
                                  if swept else "")
            s = Setting(strategy=obj.to_dict(), block_length=engine.get("block_length", block_length),
                        steps=engine.get("steps", steps), label=label, swept=swept)
            if s.key not in seen:
                seen.add(s.key)
                settings.append(s)
        out.append(Family(label=f["label"], type=f["type"], params=dict(f["params"]), settings=tuple(settings)))
    return out


# ------------------------------------------------------------------------------------------------- YAML
def load_sweep_config(path: str | Path) -> tuple[list[tuple], list[Sweep]]:
    """Read a ``--config`` sweep file.

    Layout (YAML; the strategy dicts are the ``{"type": ..., ...params}`` form used everywhere)::

        strategies:
          - {type: low_confidence}
          - {type: topk, score: margin, sweep: {k: [1, 2, 4, 8]}}     # per-strategy sweeps
          - {type: threshold, sweep: {threshold: "0.5:1.0:0.05"}}
        sweep:                                                         # optional, same as --sweep
          - "block_length=8,32"

    A bare list of strategy dicts is accepted too. Returns ``(strategies, sweeps)`` for :func:`build_families`
    (each strategy entry is ``(type, params, own sweeps)``).
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"--config file {str(path)!r} does not exist.") from None
    except yaml.YAMLError as e:
        raise SweepError(f"--config file {str(path)!r} is not valid YAML: {e}") from None
    if isinstance(doc, list):
        doc = {"strategies": doc}
    if not isinstance(doc, dict):
        raise SweepError(f"--config {str(path)!r}: expected a mapping with 'strategies' (and optionally 'sweep'), "
                         f"got {type(doc).__name__}.")
    unknown = sorted(set(doc) - {"strategies", "sweep"})
    if unknown:
        raise SweepError(f"--config {str(path)!r}: unknown key(s) {unknown}; expected 'strategies' and 'sweep'.")
    strategies: list[tuple] = []
    sweeps: list[Sweep] = []
    raw = doc.get("strategies") or []
    if not isinstance(raw, list):
        raise SweepError(f"--config {str(path)!r}: 'strategies' must be a list of {{type: ..., ...}} dicts.")
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {"type": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise SweepError(f"--config {str(path)!r}: strategies[{i}] must be a dict with a string 'type', "
                             f"got {entry!r}.")
        entry = dict(entry)
        name = entry.pop("type")
        local = entry.pop("sweep", None) or {}
        if not isinstance(local, dict):
            raise SweepError(f"--config {str(path)!r}: strategies[{i}].sweep must map PARAM -> values "
                             f"(a list or 'START:STOP:STEP'), got {local!r}.")
        own: list[Sweep] = []
        for param, values in local.items():
            if isinstance(values, str):
                vals = tuple(parse_values(values))
            elif isinstance(values, (list, tuple)) and values:
                vals = tuple(values)
            else:
                raise SweepError(f"--config {str(path)!r}: strategies[{i}].sweep.{param} must be a non-empty list "
                                 f"or 'START:STOP:STEP', got {values!r}.")
            own.append(Sweep(param=str(param), values=vals, strategy=None, text=f"{name}:{param} (config)"))
        strategies.append((name, entry, own))
    glob = doc.get("sweep") or []
    if isinstance(glob, str):
        glob = [glob]
    if not isinstance(glob, list):
        raise SweepError(f"--config {str(path)!r}: 'sweep' must be a list of '[STRATEGY:]PARAM=VALUES' texts.")
    sweeps.extend(parse_sweep(s) for s in glob)
    return strategies, sweeps
