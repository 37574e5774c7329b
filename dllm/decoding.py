"""Backend-neutral pieces every engine shares (torch, JAX, lookahead): resolving strategies, the special-id rules
and the EOS/EoT demotion set. No torch or jax import, so the JAX engine can use them without torch."""
from __future__ import annotations

from typing import Any

from .config import DecodeConfig


def resolve_strategy(strategy) -> Any:
    """A strategy object from a registered name, a ``{"type": name, ...}`` dict, or a strategy object."""
    if hasattr(strategy, "step") and hasattr(strategy, "init_state"):
        return strategy
    if isinstance(strategy, (str, dict)):
        import decoders

        if isinstance(strategy, str):
            return decoders.get_strategy(strategy)
        return decoders.strategy_from_dict(dict(strategy))
    raise ValueError(f"strategy must be a registered name, a {{'type': name, ...}} dict or an object with "
                     f"init_state() and step(), got {strategy!r}.")


def strategy_label(strategy) -> str:
    """The strategy's registered name (its class name for unregistered objects)."""
    name = getattr(strategy, "type_name", None) or getattr(strategy, "strategy_name", None)
    if not name and hasattr(strategy, "to_dict"):
        try:
            name = strategy.to_dict().get("type")
        except Exception:  # noqa: BLE001 - a label must never fail
            name = None
    return str(name or type(strategy).__name__)


def special_ids(config: DecodeConfig, mask_id: int | None, eos_id: int | None, eot_id: int | None,
                pad_id: int | None, vocab_size: int | None) -> tuple[int, int | None, int | None, int]:
    """``(mask_id, eos_id, eot_id, pad_id)``: the config's overrides, else the model's ids, validated."""
    mask_id = config.mask_id if config.mask_id is not None else mask_id
    eos_id = config.eos_id if config.eos_id is not None else eos_id
    eot_id = config.eot_id if config.eot_id is not None else eot_id
    if mask_id is None:
        raise ValueError("no mask token id: the model config has no mask_token_id; pass mask_id.")
    if vocab_size is not None and mask_id >= vocab_size:
        raise ValueError(f"mask_id must be < vocab_size ({vocab_size}), got {mask_id}.")
    if eos_id is None and (config.logits_eos_inf or config.confidence_eos_eot_inf or config.stop_on_eos):
        raise ValueError("EOS controls need an EOS id: the model config has no eos_token_id; pass eos_id.")
    if eos_id is not None and eos_id == mask_id:
        raise ValueError(f"eos_id must differ from mask_id, got {eos_id}.")
    # Padding is masked out of attention and never written, so any id other than the mask works.
    pad_id = next(i for i in (pad_id, eos_id, 0, 1) if i is not None and i != mask_id)
    return mask_id, eos_id, eot_id, pad_id


def run_to_end(gen):
    """Drain a decoding generator (``Engine.run`` and friends) and return its return value, the batch result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def prompt_rows(input_ids, vocab_size: int | None) -> list[list[int]]:
    """The prompts as lists of ints, checked: at least one, every id in ``[0, vocab_size)``."""
    rows = [list(map(int, r)) for r in input_ids]
    if not rows:
        raise ValueError("no prompts given (input_ids is empty).")
    for i, r in enumerate(rows):
        bad = [t for t in r if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            raise ValueError(f"prompt {i} has token ids outside [0, vocab_size={vocab_size}): {bad[:5]}.")
    return rows


def demoted_ids(eos_id, eot_id, temperature: float, llada_eos_quirk: bool) -> list[int]:
    """Token ids whose candidates ``confidence_eos_eot_inf`` demotes.

    LLaDA's reference writes ``logits_with_noise[:, :, EOS] = logits[:, :, EoT] = -inf`` after choosing the
    candidate (a chained assignment). At T = 0 ``logits_with_noise`` *is* ``logits``, so both EOS and EoT get
    confidence 0; at T > 0 only EoT does. ``llada_eos_quirk=True`` reproduces that; ``False`` demotes both at
    every temperature (the documented intent).
    """
    ids = [eot_id] if (llada_eos_quirk and temperature > 0) else [eos_id, eot_id]
    return sorted({int(i) for i in ids if i is not None})
