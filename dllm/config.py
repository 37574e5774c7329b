"""``DecodeConfig``: every decoding parameter in one frozen, validated, dict-round-tripping dataclass.

It plays the role of HF ``GenerationConfig`` (strategies.md §9 names): the engine, the Python API, the CLI, the
benchmark's result records and server requests all speak it.

>>> from dllm import DecodeConfig
>>> c = DecodeConfig(gen_length=64, block_length=16, steps=32, strategy={"type": "threshold", "threshold": 0.9})
>>> c.num_blocks, c.steps_per_block
(4, 8)
>>> DecodeConfig.from_dict(c.to_dict()) == c
True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class DecodeConfig:
    """Decoding parameters (defaults are LLaDA's ``generate.py`` ones, strategies.md §2 row 1).

    Args:
        gen_length: number of generated slots L appended to each prompt as ``[MASK]``.
        block_length: semi-autoregressive block size; must divide ``gen_length``. ``None`` = ``gen_length``
            (one block: pure diffusion).
        steps: total step budget; must be a multiple of the number of blocks. ``None`` = ``gen_length``.
            A "fixed" strategy runs exactly ``steps / num_blocks`` steps per block (so NFE == steps); a "dynamic"
            one runs until each block is full and only uses ``steps`` for its fallback schedule (strategies.md §6.3).
        strategy: registered strategy name, or its ``{"type": name, **params}`` dict (``decoders``).
        temperature: Gumbel-max sampling temperature; 0 = greedy (no noise is drawn).
        top_p / top_k: nucleus / top-k filtering, passed to the strategy's proposer (``None`` = off).
        cfg_scale: LLaDA unsupervised classifier-free guidance weight w (0 = off), strategies.md §4.
        mask_id / eos_id / eot_id: override the checkpoint's special ids (``None`` = from ``config.json``).
        logits_eos_inf: never generate EOS (its logit is set to −∞ before sampling), strategies.md §7.
        confidence_eos_eot_inf: candidates that are EOS / EoT get (near-)zero confidence, so they are committed last.
        llada_eos_quirk: with ``confidence_eos_eot_inf`` at temperature > 0, reproduce the reference's
            chained-assignment behaviour (only EoT is demoted, EOS keeps its confidence). Off = both are demoted at
            every temperature (the documented intent). At temperature 0 both behave the same.
        suppress_mask_token: set the ``[MASK]`` logit to −∞ so the mask token is never a candidate. Off by
            default, as in the LLaDA / Fast-dLLM / Dream samplers: there the mask id can win the argmax, and
            "committing" it leaves the position masked (see :mod:`dllm.engine`, "mask-token candidates").
        stop_on_eos: after a block whose committed tokens contain EOS/EoT, fill the rest of the row with EOS and
            stop decoding it; the batch stops when every row has stopped (dInfer early stop, §7). Off in LLaDA.
        seed: seed of the engine's ``torch.Generator`` (all Gumbel / uniform noise comes from it).
    """

    gen_length: int = 128
    block_length: int | None = None
    steps: int | None = None
    strategy: Any = "low_confidence"
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    cfg_scale: float = 0.0
    mask_id: int | None = None
    eos_id: int | None = None
    eot_id: int | None = None
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    llada_eos_quirk: bool = False
    suppress_mask_token: bool = False
    stop_on_eos: bool = False
    seed: int = 0

    def __post_init__(self):
        if not _is_int(self.gen_length) or self.gen_length < 1:
            raise ValueError(f"gen_length must be a positive integer, got {self.gen_length!r}.")
        if self.block_length is not None:
            if not _is_int(self.block_length) or self.block_length < 1:
                raise ValueError(f"block_length must be a positive integer or None, got {self.block_length!r}.")
            if self.gen_length % self.block_length:
                raise ValueError(f"block_length ({self.block_length}) must divide gen_length ({self.gen_length}), "
                                 f"got block_length={self.block_length!r}.")
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer or None, got {self.steps!r}.")
        if self.total_steps % self.num_blocks:
            raise ValueError(
                f"steps ({self.total_steps}) must be a multiple of the number of blocks ({self.num_blocks} = "
                f"gen_length {self.gen_length} / block_length {self.block_len}), got steps={self.total_steps!r}.")
        if not _is_real(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}.")
        if self.top_p is not None and (not _is_real(self.top_p) or not 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1] or None, got {self.top_p!r}.")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k!r}.")
        if not _is_real(self.cfg_scale) or self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be a finite number >= 0, got {self.cfg_scale!r}.")
        for name in ("mask_id", "eos_id", "eot_id"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {v!r}.")
        for name in ("logits_eos_inf", "confidence_eos_eot_inf", "llada_eos_quirk", "suppress_mask_token",
                     "stop_on_eos"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}.")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}.")
        # A strategy object is stored as its dict form so the config stays plain data.
        s = self.strategy
        if not isinstance(s, (str, dict)) and hasattr(s, "to_dict"):
            object.__setattr__(self, "strategy", s.to_dict())
            s = self.strategy
        if isinstance(s, dict):
            if not isinstance(s.get("type"), str):
                raise ValueError(f"strategy dict needs a string 'type' key, got {s!r}.")
            object.__setattr__(self, "strategy", dict(s))
        elif not isinstance(s, str) or not s:
            raise ValueError(f"strategy must be a registered name, a {{'type': name, ...}} dict or a strategy "
                             f"object with to_dict(), got {s!r}.")

    # ---- resolved schedule -------------------------------------------------------------------------------
    @property
    def block_len(self) -> int:
        """``block_length`` with ``None`` resolved to ``gen_length``."""
        return self.gen_length if self.block_length is None else self.block_length

    @property
    def total_steps(self) -> int:
        """``steps`` with ``None`` resolved to ``gen_length``."""
        return self.gen_length if self.steps is None else self.steps

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_len

    @property
    def steps_per_block(self) -> int:
        return self.total_steps // self.num_blocks

    @property
    def strategy_name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else self.strategy["type"]

    # ---- round trip ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.strategy, dict):
            d["strategy"] = dict(self.strategy)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecodeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DecodeConfig field(s) {unknown}; known fields are {sorted(known)}.")
        return cls(**d)

    def replace(self, **changes) -> "DecodeConfig":
        return dataclasses.replace(self, **changes)


__all__ = ["DecodeConfig"]
