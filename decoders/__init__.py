"""Decoding strategies for masked diffusion LMs: registry, frozen dataclass configs, pure array-API steps.

>>> from decoders import get_strategy, list_strategies
>>> s = get_strategy("threshold", threshold=0.9)
>>> s.schedule
'dynamic'

Importing this package imports neither torch nor jax; the step functions work on whatever array type they
are given (NumPy, torch, jax.numpy) through ``array_api_compat``. See docs/architecture.md section 2.
"""

from .base import EmptyState, SamplingParams, StepInput, StepOutput, Strategy
from .registry import (
    ENTRY_POINT_GROUP,
    coerce_params,
    get_strategy,
    list_strategies,
    register,
    resolve_name,
    strategy_from_dict,
)

# built-in strategies (registration happens on import)
from .llada import LowConfidence, RandomOrder, TopK
from .dream import DreamEntropy, DreamMaskGITPlus, DreamOrigin, DreamTopKMargin
from .fast_dllm import ConfidenceFactor, ConfidenceThreshold
from .dparallel import EntropyThreshold, EntropyThresholdDream
from .eb_sampler import EBSampler
from .left_to_right import LeftToRight
from .lopa import Lopa  # wraps the strategies above (registered last)

__all__ = [
    "Strategy",
    "StepInput",
    "StepOutput",
    "SamplingParams",
    "EmptyState",
    "register",
    "get_strategy",
    "strategy_from_dict",
    "list_strategies",
    "coerce_params",
    "resolve_name",
    "ENTRY_POINT_GROUP",
    "LowConfidence",
    "RandomOrder",
    "TopK",
    "DreamOrigin",
    "DreamMaskGITPlus",
    "DreamTopKMargin",
    "DreamEntropy",
    "ConfidenceThreshold",
    "ConfidenceFactor",
    "EntropyThreshold",
    "EntropyThresholdDream",
    "EBSampler",
    "LeftToRight",
    "Lopa",
]
