"""Noise for the torch backend, drawn from one explicit ``torch.Generator`` (style.md §2.3).

Strategies never draw random numbers: the engine draws them here and passes them in ``StepInput``, so a
strategy is a deterministic function of its inputs (Torch, JAX and NumPy implementations can be compared
exactly by feeding the same noise).

* Gumbel ``[B, L, V]`` float64, only when temperature > 0: ``g = -log(-log u)``, ``u ~ U[0, 1)``. LLaDA's
  ``argmax(exp(l) / (-log u)^T)`` equals ``argmax(l + T g)`` (strategies.md §3). The draw is one
  ``torch.rand((B, L, V), dtype=float64)`` per step, the same stream as LLaDA's ``rand_like`` on float64 logits,
  so a seeded generator reproduces the reference's noise. (``u = 0`` gives ``g = -inf``: never sampled.)
* Uniform ``[B, L]`` float64 in ``[0, 1)`` when the strategy asks (``needs_uniform_noise``).

Noise of a row depends on the batch it is decoded in (its index and the padded canvas length), as in the
reference samplers; greedy decoding (temperature 0 and no uniform noise) does not.
"""
from __future__ import annotations

import torch


class NoiseSource:
    """Seeded noise on one device.

    Args:
        seed: generator seed.
        device: where the noise is drawn (the model's device; no host->device copies of ``[B, L, V]`` tensors).
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def uniform(self, shape) -> torch.Tensor:
        """``U[0, 1)`` float64 of ``shape``."""
        return torch.rand(tuple(shape), dtype=torch.float64, generator=self.generator, device=self.device)

    def gumbel(self, shape) -> torch.Tensor:
        """Standard Gumbel float64 of ``shape``: ``-log(-log u)``."""
        # in place: one [B, L, V] float64 buffer instead of four
        return self.uniform(shape).log_().neg_().log_().neg_()


__all__ = ["NoiseSource"]
