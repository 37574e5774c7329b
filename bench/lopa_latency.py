"""Step latency of LoPA lookahead against the branch count, on one GPU, with a random-weight LLaDA-8B-shape model.

Usage::

    python bench/lopa_latency.py --branches 1,2,4,8 --out lopa_latency.json                # CUDA GPU
    python bench/lopa_latency.py --tiny --branches 1,2 --iters 1 --out /tmp/lat.json       # CPU smoke run

The model has LLaDA-8B's shape (hidden 4096, 32 layers, 32 heads, MLP 12288, vocab 126464; 8.0 B parameters),
is built directly on the GPU in bf16 with random weights (no checkpoint, nothing downloaded) and runs the project's
torch engine (SDPA, no KV cache: every forward covers prompt + generation). For every branch count ``K1 = k + 1``
it measures, on the same canvas:

* ``forward_ms``: the batched forward of ``B * K1`` sequences alone;
* ``verify_ms``: ``dllm.lookahead.LocalBranches.verify`` = that forward + the ``-inf`` processors + branch scores +
  winner selection + the winner's logits (what one lookahead iteration adds to a fill);
* ``iteration_ms``: end to end, ``dllm.generate``-style decoding of ``--gen-length`` tokens with
  ``{"type": "lopa", "num_lookahead": K1 - 1}`` (base ``threshold``), wall time / NFE, i.e. the real cost of one
  iteration (fill + verification + host syncs); ``tokens_per_forward`` is what random weights give (not a quality
  number: random models are never confident, so the anchor commits one token per step).

Timings are medians over ``--iters`` runs after ``--warmup`` (CUDA-synchronised). Output: one JSON file (and a short
table on stdout). Without CUDA the script stops with an error unless ``--tiny`` (a small shape on CPU) is given.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LLADA_8B = dict(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=32, intermediate_size=12288,
                vocab_size=126464)
TINY = dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4, intermediate_size=128, vocab_size=512)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--branches", default="1,2,4,8", help="comma-separated branch counts K1 = k + 1 (default 1,2,4,8)")
    p.add_argument("--batch", type=int, default=1, help="prompts per batch B (default 1)")
    p.add_argument("--prompt-len", type=int, default=448, help="prompt tokens (default 448)")
    p.add_argument("--gen-length", type=int, default=64, help="generated slots (default 64; seq = prompt + gen)")
    p.add_argument("--block-length", type=int, default=32, help="semi-AR block (default 32)")
    p.add_argument("--iters", type=int, default=10, help="timed repetitions (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up repetitions (default 3)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end decoding runs")
    p.add_argument("--tiny", action="store_true", help="tiny model shape (smoke test; runs on CPU)")
    p.add_argument("--device", default=None, help="torch device (default: cuda, or cpu with --tiny)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="lopa_latency.json", help="JSON output file (default lopa_latency.json)")
    args = p.parse_args(argv)
    try:
        args.branch_counts = [int(x) for x in args.branches.split(",") if x.strip()]
    except ValueError:
        p.error(f"--branches must be comma-separated integers, got {args.branches!r}.")
    if not args.branch_counts or min(args.branch_counts) < 1:
        p.error(f"--branches must list positive integers, got {args.branches!r}.")
    if args.gen_length % args.block_length and args.gen_length > args.block_length:
        p.error(f"--block-length must divide --gen-length, got {args.block_length} and {args.gen_length}.")
    return args


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time(fn, dev, iters: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    _sync(dev)
    ts = []
    for _ in range(max(1, iters)):
        t = time.perf_counter()
        fn()
        _sync(dev)
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    q = lambda f: ts[min(len(ts) - 1, int(f * len(ts)))]  # noqa: E731
    return {"median": statistics.median(ts), "p10": q(0.1), "p90": q(0.9), "n": len(ts)}


def build_model(shape: dict, dtype, dev):
    """A random-weight model built directly on ``dev`` in ``dtype`` (default ``nn.Linear`` / embedding init)."""
    import torch

    from dllm.models.config import DLLMConfig
    from dllm.models.torch_model import DiffusionTransformer

    cfg = DLLMConfig(layout="llada", mask_token_id=shape["vocab_size"] - 2, eos_token_id=shape["vocab_size"] - 3,
                     **shape)
    old = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(dev):
            model = DiffusionTransformer(cfg)
    finally:
        torch.set_default_dtype(old)
    return model.eval().requires_grad_(False), cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.device is None:
        if torch.cuda.is_available():
            args.device = "cuda"
        elif args.tiny:
            args.device = "cpu"
        else:
            print("bench/lopa_latency.py: error: needs a CUDA GPU (torch.cuda.is_available() is False); pass --tiny "
                  "for a small CPU smoke run.", file=sys.stderr)
            return 2
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"bench/lopa_latency.py: error: --device {args.device} but CUDA is not available.", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    shape = TINY if args.tiny else LLADA_8B

    import dllm
    from decoders import get_strategy
    from dllm.decoding import run_to_end
    from dllm.engine import Engine
    from dllm.lookahead import BranchContext, LocalBranches

    t0 = time.perf_counter()
    model, cfg = build_model(shape, dtype, dev)
    _sync(dev)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    engine = Engine(model)
    B, P, G = args.batch, args.prompt_len, args.gen_length
    L = P + G
    BL = min(args.block_length, G)
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    prompts = torch.randint(0, cfg.vocab_size - 8, (B, P), generator=g).tolist()
    mask_id = cfg.mask_token_id
    canvas = torch.full((B, L), mask_id, dtype=torch.long)
    canvas[:, :P] = torch.tensor(prompts)
    canvas[:, P:P + BL // 2] = torch.randint(0, cfg.vocab_size - 8, (B, BL // 2), generator=g)  # half a block done
    canvas = canvas.to(dev)
    dconf = dllm.DecodeConfig(gen_length=G, block_length=BL, strategy="threshold")
    prompt_mask = torch.zeros((B, L), dtype=torch.bool, device=dev)
    prompt_mask[:, :P] = True

    results = []
    for K1 in args.branch_counts:
        strat = get_strategy("lopa", num_lookahead=K1 - 1)
        ctx = BranchContext(engine, strat, None, None, prompt_mask, dconf, mask_id, [mask_id])
        ctx.set_block(P, P + BL)
        branches = canvas[:, None].repeat(1, K1, 1)
        for j in range(1, K1):  # lookahead j fills one more position of the block
            branches[:, j, P + BL // 2 + j - 1] = 7
        valid = torch.ones((B, K1), dtype=torch.bool, device=dev)
        creation = torch.ones((B, K1), device=dev)
        flat = branches.reshape(B * K1, L)
        ex = LocalBranches()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        fwd = _time(lambda: engine._forward(flat, None, None), dev, args.iters, args.warmup)
        ver = _time(lambda: ex.verify(ctx, branches, valid, creation), dev, args.iters, args.warmup)
        rec = {"branches": K1, "num_lookahead": K1 - 1, "forward_ms": fwd, "verify_ms": ver}
        if dev.type == "cuda":
            rec["peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
        if not args.no_e2e:
            dc = dllm.DecodeConfig(gen_length=G, block_length=BL, strategy=strat.to_dict())
            t = time.perf_counter()
            res = run_to_end(engine.run(prompts, dc))
            _sync(dev)
            wall = time.perf_counter() - t
            rec["iteration_ms"] = wall * 1e3 / max(1, res.nfe)
            rec["e2e"] = {"nfe": res.nfe, "steps": res.steps, "branch_forwards": res.branch_forwards,
                          "wall_s": wall, "tokens_per_forward": G / max(1, res.nfe)}
        results.append(rec)
        del branches, flat
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    ref = results[0]["verify_ms"]["median"] if results else 1.0
    for r in results:
        r["verify_relative_to_first"] = r["verify_ms"]["median"] / ref
    doc = {
        "script": "bench/lopa_latency.py",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__, "dtype": args.dtype,
        "shape": {**shape, "params": n_params, "tiny": bool(args.tiny)},
        "batch": B, "prompt_len": P, "gen_length": G, "seq_len": L, "block_length": BL,
        "iters": args.iters, "warmup": args.warmup, "model_build_s": build_s,
        "results": results,
        "notes": "random weights; no KV cache (each forward covers prompt + generation); verify = batched forward "
                 "+ scoring + winner; iteration = end-to-end lookahead decoding wall time / NFE",
    }
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(f"device {doc['device']} | {n_params / 1e9:.2f} B params {args.dtype} | B={B} L={L} block={BL}")
    print("branches | forward ms | verify ms | x first | iteration ms")
    for r in results:
        it = f"{r['iteration_ms']:.1f}" if "iteration_ms" in r else "-"
        print(f"{r['branches']:8d} | {r['forward_ms']['median']:10.2f} | {r['verify_ms']['median']:9.2f} | "
              f"{r['verify_relative_to_first']:7.2f} | {it}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
