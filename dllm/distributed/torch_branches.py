"""LoPA branch parallelism with ``torch.distributed``: one process per device, branches split over the ranks.

Launch (every rank loads the model; rank 0 prints the result)::

    torchrun --standalone --nproc-per-node=4 -m dllm.distributed.torch_branches --model DIR \\
        --input-ids 5,6,7 --gen-length 64 --block-length 32 --strategy lopa --param branches=3 --json

The flags are ``dllm generate``'s (``--strategy`` defaults to ``lopa`` here). The process group is created only
when torchrun's ``RANK`` / ``WORLD_SIZE`` are set (NCCL on GPU with ``device_id`` for eager init, gloo on CPU), so
the same command also runs as one plain process. From Python, inside an initialised process group::

    pipe = branch_parallel(dllm.load(path, device=f"cuda:{local_rank}"))
    out = dllm.generate(pipe, input_ids=ids, strategy={"type": "lopa", "num_lookahead": 7})   # same on all ranks

How a step is split (``k' + 1`` branches this step, ``W`` ranks, ``g = ceil((k' + 1) / W)``): rank r forwards and
scores branches ``[r g, (r + 1) g)`` of every prompt (a rank whose group is empty or all-invalid skips its
forward), ``all_gather`` of the ``[B, g]`` float scores gives every rank the same ``[B, k' + 1]`` table and the same
winners (``decoders.lopa.select_winner``). The rank holding a prompt's winner runs the next anchor fill on its
logits; one ``all_reduce`` (sum over a buffer in which only the owner's row is non-zero: a per-row broadcast from
the winner's rank) shares the active block's tokens plus the lookahead positions / tokens / validity /
confidences, ``B * (block + 4 k)`` int64. The replicated single-branch forwards (first step, block starts) run on
every rank, with nothing to exchange. All noise is drawn from the same seeded generator on every rank, so the
tokens equal single-device lookahead's (up to float differences between batch shapes of the forward, which the
tests show to be nil on the tiny CPU models).

Requirements: the base strategy's state must not change during a block (true of every registered ``dynamic``
strategy); branch-aware KV caches do not exist yet.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Sequence

import torch
import torch.distributed as dist

from ..lookahead import BranchContext, LocalBranches, Verified

__all__ = ["TorchBranchGroup", "init_from_env", "branch_parallel", "main"]


def init_from_env(backend: str | None = None) -> tuple[int, int, int]:
    """Initialise the default process group when launched by torchrun (``RANK`` and ``WORLD_SIZE`` set).

    Args:
        backend: ``"nccl"`` / ``"gloo"`` / ``"cpu:gloo,cuda:nccl"``; default NCCL when CUDA is available, else gloo.

    Returns:
        ``(rank, world_size, local_rank)``; ``(0, 1, 0)`` when not launched by torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    kw = {}
    if cuda and "nccl" in backend:
        torch.cuda.set_device(local_rank)
        kw["device_id"] = torch.device("cuda", local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world, **kw)
    return rank, world, local_rank


class TorchBranchGroup:
    """Branch executor over the ranks of a ``torch.distributed`` group (see the module docstring).

    Args:
        group: process group (default: the default group). Without an initialised group it is one rank, i.e.
            :class:`~dllm.lookahead.LocalBranches`.
    """

    def __init__(self, group=None):
        self.group = group
        if dist.is_available() and dist.is_initialized():
            self.rank = dist.get_rank(group)
            self.world_size = dist.get_world_size(group)
        else:
            self.rank, self.world_size = 0, 1
        self._local = LocalBranches()
        #: bytes moved by this rank's collectives so far (scores + fills), for measurements
        self.bytes_exchanged = 0

    def span(self, num_branches: int) -> tuple[int, int, int]:
        """``(g, lo, hi)``: this rank's branches ``[lo, hi)`` of ``num_branches``, ``g`` per rank."""
        g = math.ceil(num_branches / self.world_size)
        lo = min(self.rank * g, num_branches)
        return g, lo, min(lo + g, num_branches)

    def verify(self, ctx: BranchContext, branches: torch.Tensor, valid: torch.Tensor,
               creation: torch.Tensor) -> Verified:
        B, K1, L = branches.shape
        if K1 == 1 or self.world_size == 1:  # replicated: every rank forwards the same canvas
            return self._local.verify(ctx, branches, valid, creation)
        from decoders.lopa import select_winner

        g, lo, hi = self.span(K1)
        n_valid = int(valid.sum(-1).max())  # validity is a per-row prefix; identical on every rank
        hi_eff = min(hi, n_valid)
        dev = branches.device
        local = torch.full((B, g), float("-inf"), dtype=torch.float32, device=dev)
        logits = None
        if hi_eff > lo:
            sub = branches[:, lo:hi_eff]
            n = hi_eff - lo
            row_of = torch.arange(B, device=dev).repeat_interleave(n)
            logits = ctx.forward(sub.reshape(B * n, L), row_of)
            logits = logits.view(B, n, L, logits.shape[-1])
            local[:, :n] = ctx.branch_scores(logits, sub, valid[:, lo:hi_eff], creation[:, lo:hi_eff]).float()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local, group=self.group)
        self.bytes_exchanged += local.numel() * local.element_size() * self.world_size
        scores = torch.cat(parts, dim=1)[:, :K1]
        winner = select_winner(scores)
        owner = torch.div(winner, g, rounding_mode="floor")
        win_logits = None
        if logits is not None:
            idx = (winner - lo).clamp(0, logits.shape[1] - 1)
            win_logits = logits[torch.arange(B, device=dev), idx]
        return Verified(scores, winner, win_logits, owner)

    def share(self, owner, *tensors):
        """Each row of every tensor from its owner rank (one ``all_reduce`` of a packed int64 buffer)."""
        if owner is None or self.world_size == 1:
            return tensors
        B = owner.shape[0]
        mine = owner == self.rank
        packed, meta = [], []
        for t in tensors:
            flat = t.reshape(B, -1)
            if t.dtype == torch.bool:
                x = flat.long()
            elif t.dtype == torch.float32:
                x = flat.view(torch.int32).long()
            elif t.dtype in (torch.int64, torch.int32):
                x = flat.long()
            else:
                raise TypeError(f"cannot exchange a {t.dtype} tensor.")
            packed.append(x)
            meta.append((t.dtype, t.shape, x.shape[1]))
        buf = torch.cat(packed, dim=1) if packed else torch.zeros((B, 0), dtype=torch.long, device=owner.device)
        buf = torch.where(mine[:, None], buf, torch.zeros_like(buf))
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=self.group)
        self.bytes_exchanged += buf.numel() * buf.element_size()
        out, i = [], 0
        for dtype, shape, n in meta:
            x = buf[:, i:i + n]
            i += n
            if dtype == torch.bool:
                y = x != 0
            elif dtype == torch.float32:
                y = x.int().view(torch.float32)
            else:
                y = x.to(dtype)
            out.append(y.reshape(shape))
        return tuple(out)


def branch_parallel(pipe, group=None):
    """Give ``pipe`` (a :class:`dllm.Pipeline` on this rank's device) an engine whose lookahead branches are spread
    over the ranks of ``group``; returns ``pipe``. Other strategies run unchanged (replicated on every rank)."""
    from ..engine import Engine

    if pipe.backend != "torch":
        raise ValueError(f"torch branch parallelism needs a torch pipeline, got backend {pipe.backend!r}.")
    pipe._engine = Engine(pipe.model, eot_id=pipe.eot_id, branch_executor=TorchBranchGroup(group))
    return pipe


# ================================================================================================ CLI
def build_parser() -> argparse.ArgumentParser:
    from ..cli import add_generate_parser

    p = argparse.ArgumentParser(
        prog="torchrun --standalone --nproc-per-node=N -m dllm.distributed.torch_branches",
        description="LoPA lookahead with its branches spread over torch.distributed ranks (rank 0 prints). "
                    "Same flags as `dllm generate`.")
    add_generate_parser(p)
    p.add_argument("--dist-backend", default=None, help="process-group backend (default: nccl on GPU, else gloo)")
    p.set_defaults(func=None, strategy="lopa")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import dllm
    from ..cli import CLIError, _parse_ids, decode_config_from_args

    args = build_parser().parse_args(argv)
    try:
        if args.backend != "torch":
            raise CLIError("torch branch parallelism needs --backend torch (use dllm.distributed.jax_branches for "
                           "JAX).")
        if bool(args.prompt) == bool(args.input_ids):
            raise CLIError("give either --prompt TEXT or --input-ids 1,2,3 (repeatable).")
        cfg = decode_config_from_args(args)
        ids = [_parse_ids(s) for s in args.input_ids]
    except (CLIError, ValueError) as e:
        print(f"dllm: error: {e}", file=sys.stderr)
        return 2
    rank, world, local_rank = init_from_env(args.dist_backend)
    try:
        device = args.device or (f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
        pipe = branch_parallel(dllm.load(args.model, dtype=args.dtype, device=device))
        kw = dict(apply_chat_template=not args.no_chat_template, batch_size=args.batch_size)
        if ids:
            out = dllm.generate_from_config(pipe, cfg, input_ids=ids, **kw)
        else:
            out = dllm.generate_from_config(pipe, cfg, prompts=list(args.prompt), **kw)
        ex = pipe.engine.branch_executor
        if rank == 0:
            if args.json:
                rows = [{"output_ids": s, "text": t, "nfe": n, "steps": st, "branch_forwards": b}
                        for s, t, n, st, b in zip(out.sequences, out.texts, out.nfe, out.steps, out.branch_forwards)]
                sys.stdout.write(json.dumps({"outputs": rows, "world_size": world,
                                             "bytes_exchanged_rank0": ex.bytes_exchanged}) + "\n")
            else:
                for i, s in enumerate(out.sequences):
                    body = out.texts[i] if pipe.tokenizer is not None else " ".join(map(str, s))
                    print(f"[{i}] {body}")
                    print(f"    NFE {out.nfe[i]} | branch forwards {out.branch_forwards[i]} | ranks {world}")
            sys.stdout.flush()
        if world > 1:
            # every rank reaches here before any tears the group down: destroying it while a peer still has gloo
            # work in flight aborts that peer ("terminate called without an active exception")
            dist.barrier()
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
