"""Branch parallelism for LoPA lookahead decoding (lopa.md §5): the branch axis spread over devices.

* :mod:`dllm.distributed.torch_branches`: one process per device with ``torch.distributed`` (gloo on CPU, NCCL on
  GPU), launched with ``torchrun --standalone --nproc-per-node=N -m dllm.distributed.torch_branches ...``.
* :mod:`dllm.distributed.jax_branches`: a JAX device mesh with a ``"branch"`` axis (``jax.shard_map``), multi-host
  through ``jax.distributed``; on a one-device mesh it is the single-device JAX lookahead loop.

Per step only what must move moves: each device forwards and scores its own group of branches, the branch scores
are all-gathered (``[B, k + 1]`` floats), every device picks the same winner, the device holding a prompt's
winner runs the next fill on its logits and the fill (the active block's tokens plus the ``k`` lookahead positions,
tokens and confidences, a few hundred bytes per prompt) is exchanged. Logits never move. There is no KV cache yet,
so no cache slices move either.

Submodules are imported lazily: importing this package pulls neither torch nor jax.
"""

__all__ = ["torch_branches", "jax_branches"]
