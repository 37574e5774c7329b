"""dllm: fast parallel decoding of masked diffusion language models (LLaDA, Dream).

>>> import dllm                                                     # doctest: +SKIP
>>> out = dllm.generate("path/to/checkpoint", "What is 2 + 2?", gen_length=64, steps=64)  # doctest: +SKIP

Public API: :func:`load`, :func:`generate`, :func:`iterate`, :class:`DecodeConfig`, :class:`GenerationOutput`,
:class:`StepEvent`, :class:`Pipeline`. torch is imported only when a model is loaded or decoded.
"""
from __future__ import annotations

from .api import (DEFAULT_MODEL_DIR, LoadedModel, Pipeline, generate, generate_from_config, iterate, load)
from .config import DecodeConfig
from .outputs import GenerationOutput, StepEvent

__version__ = "0.1.0"


def __getattr__(name):  # lazy: the engine imports torch
    if name in ("Engine", "NullCache"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'dllm' has no attribute {name!r}")


__all__ = ["load", "generate", "generate_from_config", "iterate", "DecodeConfig", "GenerationOutput", "StepEvent",
           "Pipeline", "LoadedModel", "DEFAULT_MODEL_DIR", "Engine", "NullCache", "__version__"]
