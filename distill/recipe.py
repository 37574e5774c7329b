"""Multi-phase training recipes: the whole history of a run as one file (``dllm train --recipe FILE``).

A long run changes its data mixture and learning-rate schedule along the way (curriculum phases, a
warmup-stable-decay anneal). A recipe records those phases so that the run is one command, reproducible from
step 0 and resumable anywhere::

    base:                    # TrainConfig fields every phase shares
      batch_size: 64
      lr: 1.0e-3
    phases:                  # in order; phase i trains steps [until of phase i-1, until)
      - until: 1440
        aux_tasks: copy_bare=1.0
      - until: 4138
        aux_tasks: copy_bare=0.4,lookup_bare=0.3
        zero_shot_fraction: 0.9

Each phase is the :class:`~distill.train.TrainConfig` ``TrainConfig(**defaults | base | phase, steps=until)``,
run by :func:`distill.train.train`, which resumes from the run folder's state; so a phase's schedule fields
(``lr``, ``min_lr_ratio``, ``decay_start``, ``warmup``) are read against absolute steps, exactly as the same flags
given to a resumed ``dllm train --steps UNTIL``. The run-environment fields (``out``, ``device``, ``threads``,
``save_every``, ``log_every``) come from the command line, never from a recipe.

A recipe that continues another one names it and lists only its new phases::

    extends: reference       # a shipped recipe's short name, or a path relative to this file
    phases:
      - until: 11000
        task_weights: puzzle/*=4,waiting_line/*=2

It is the parent's base with the parent's phases and then these, so a copy of the parent's finished run folder
resumes it at the parent's last step. It may not set ``base`` (that would change the parent's phases).

A probe that branches off an earlier point of a recipe that has since grown adds ``from_step: STEP``: only the
parent's phases up to STEP are kept (STEP must be where one of them ends), so the probe still reads as written
after later phases are appended to the parent.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .train import FIXED_FIELDS, TrainConfig

#: TrainConfig fields a recipe may not set: they describe where and how this machine runs, not the recipe.
ENVIRONMENT_FIELDS = ("out", "device", "threads", "save_every", "log_every", "steps")
#: Recipes shipped with the package, by short name (``dllm train --recipe reference``).
RECIPES_DIR = Path(__file__).parent / "recipes"

_RECIPE_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name not in ENVIRONMENT_FIELDS)


@dataclass(frozen=True)
class TrainRecipe:
    """``base`` (field -> value for every phase) and ``phases`` (each ``{"until": step, field: value, ...}``)."""

    base: Mapping[str, Any]
    phases: tuple[Mapping[str, Any], ...]

    def __post_init__(self):
        object.__setattr__(self, "base", dict(self.base))
        object.__setattr__(self, "phases", tuple(dict(p) for p in self.phases))
        _check_fields(self.base, "base")
        if not self.phases:
            raise ValueError("recipe has no phases: give at least one {until: STEP, ...}")
        previous = 0
        for i, phase in enumerate(self.phases):
            until = phase.get("until")
            if not isinstance(until, int) or isinstance(until, bool) or until <= previous:
                raise ValueError(f"recipe phases[{i}].until must be an integer step above the previous phase's "
                                 f"({previous}), got {until!r}")
            previous = until
            _check_fields({k: v for k, v in phase.items() if k != "until"}, f"phases[{i}]")
            for key in FIXED_FIELDS:
                if key in phase and phase[key] != self.base.get(key, getattr(TrainConfig, key)):
                    raise ValueError(f"recipe phases[{i}].{key}: {key} cannot change between phases (a resumed "
                                     f"run keeps it); set it in base")

    @property
    def steps(self) -> int:
        """The step the last phase ends at."""
        return self.phases[-1]["until"]

    def configs(self, **environment) -> list[TrainConfig]:
        """One TrainConfig per phase; ``environment`` sets the run-environment fields (``out``, ``device``, …).

        Raises:
            ValueError: a phase's values are invalid (the message names the phase), or ``environment`` holds a
                recipe field.
        """
        bad = sorted(k for k in environment if k not in ENVIRONMENT_FIELDS or k == "steps")
        if bad:
            raise ValueError(f"{bad} are not run-environment fields; set them in the recipe")
        out = []
        for i, phase in enumerate(self.phases):
            values = {**self.base, **{k: v for k, v in phase.items() if k != "until"}}
            try:
                out.append(TrainConfig(**values, **environment, steps=phase["until"]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"recipe phases[{i}] (until {phase['until']}): {e}") from None
        return out

    def to_dict(self) -> dict:
        return {"base": dict(self.base), "phases": [dict(p) for p in self.phases]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainRecipe":
        if not isinstance(data, Mapping):
            raise ValueError(f"a recipe is a mapping with 'base' and 'phases', got {type(data).__name__}")
        unknown = sorted(set(data) - {"base", "phases", "description", "extends", "from_step"})
        if unknown:
            raise ValueError(f"recipe has unknown top-level keys {unknown}; expected 'base', 'phases' "
                             f"(and an optional 'description', 'extends' and 'from_step')")
        if "from_step" in data and "extends" not in data:
            raise ValueError("'from_step' keeps the phases of an 'extends' parent up to that step; this recipe "
                             "has no 'extends'")
        phases = data.get("phases") or ()
        if not isinstance(phases, (list, tuple)) or not all(isinstance(p, Mapping) for p in phases):
            raise ValueError("recipe 'phases' must be a list of mappings, each with an 'until' step")
        return cls(base=data.get("base") or {}, phases=tuple(phases))


def _check_fields(values: Mapping[str, Any], where: str) -> None:
    for key in values:
        if key in ENVIRONMENT_FIELDS:
            hint = "phases end at their 'until'" if key == "steps" else "it comes from the command line"
            raise ValueError(f"recipe {where}.{key}: not a recipe field ({hint})")
        if key not in _RECIPE_FIELDS:
            raise ValueError(f"recipe {where}.{key}: unknown training field; known: {', '.join(_RECIPE_FIELDS)}")


def load_recipe(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> TrainRecipe:
    """A recipe from a YAML file, or a shipped one by short name (``reference`` → ``distill/recipes/reference.yaml``),
    with its ``extends`` chain resolved (see the module docstring).

    Raises:
        ValueError: no such file or shipped name, invalid YAML or fields, an ``extends`` cycle, or an extending
            recipe that sets ``base``; the message names the file.
    """
    import yaml

    path = Path(name_or_path)
    if not path.is_file():
        shipped = RECIPES_DIR / f"{name_or_path}.yaml"
        if not shipped.is_file():
            known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
            raise ValueError(f"--recipe {name_or_path!r}: no such file, and no shipped recipe of that name "
                             f"(shipped: {known})")
        path = shipped
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"--recipe {path}: not valid YAML ({e})") from None
    try:
        if isinstance(data, Mapping) and "extends" in data:
            return _extend(path, data, _seen)
        return TrainRecipe.from_dict(data)
    except ValueError as e:
        raise ValueError(f"--recipe {path}: {e}") from None


def _extend(path: Path, data: Mapping[str, Any], seen: tuple[Path, ...]) -> TrainRecipe:
    """The recipe ``data`` (read from ``path``) with its ``extends`` parent's base and phases before its own."""
    if "base" in data:
        raise ValueError("a recipe with 'extends' cannot set 'base' (it would change the parent's phases); "
                         "put the changed fields in its new phases")
    here = path.resolve()
    if here in seen:
        raise ValueError(f"'extends' cycle: {' -> '.join(str(p) for p in (*seen, here))}")
    parent_name = str(data["extends"])
    relative = path.parent / parent_name
    parent = load_recipe(relative if relative.is_file() else parent_name, (*seen, here))
    parent_phases = parent.phases
    if "from_step" in data:
        from_step = data["from_step"]
        ends = [p["until"] for p in parent.phases]
        if from_step not in ends:
            raise ValueError(f"from_step {from_step!r} is not where a phase of {parent_name!r} ends "
                             f"(phase ends: {ends})")
        parent_phases = parent.phases[:ends.index(from_step) + 1]
    own = TrainRecipe.from_dict({k: v for k, v in data.items() if k not in ("extends", "from_step")}
                                | {"base": parent.base})
    return TrainRecipe(base=parent.base, phases=parent_phases + own.phases)
