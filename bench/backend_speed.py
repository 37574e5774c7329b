"""Backend speed: the JAX engine (whole decode loop compiled) against the torch engine, same model, prompts, config.

Usage::

    # CPU, the project's reference model (or any checkpoint folder)
    python -m bench.backend_speed --model runs/reference/model --out results/backend_speed_cpu.json
    # GPU, random-weight LLaDA-8B shape in bf16, built on the device (needs CUDA torch + CUDA jax)
    python -m bench.gpu_backend_speed --out results/backend_speed_gpu.json
    #   (= python -m bench.backend_speed --random-shape llada-8b --dtype bfloat16 --require-gpu ...)
    # smoke runs (seconds): a tiny random model on CPU
    python -m bench.backend_speed --random-shape tiny --gen-length 16 --block-length 8 --steps 16 --repeats 1 \\
        --out /tmp/backend_speed_smoke.json
    python -m bench.gpu_backend_speed --tiny --out /tmp/gpu_backend_speed_smoke.json

Measured per backend and strategy (greedy; the same prompts and :class:`dllm.DecodeConfig` on both backends):

* ``decode_s``: wall time of one decode of the whole batch, results on the host (median of ``--repeats`` warm runs;
  ``decode_runs_s`` lists them). torch: ``dllm.engine.Engine.run`` drained; JAX: ``dllm.jax_engine.JaxEngine.decode``.
* ``cold_s``: the first decode; ``compile_s = cold_s - decode_s`` (JAX: tracing + XLA compile; torch: warm-up only).
  ``--aot`` times ``lower()`` (trace) and ``compile()`` (XLA) of the JAX program first (``aot_lower_s``,
  ``aot_compile_s``); that fills JAX's compile cache, so then ``compile_s = aot_lower_s + aot_compile_s`` and
  ``cold_s`` is a warm-ish first run (``compile_method`` says which).
* ``nfe`` / ``steps``: model forwards of the decode.
* ``forward_s``: one model forward of the same ``[B, P + G]`` canvas, measured alone (a loop of ``--forward-iters``
  forwards after a warm-up, median of ``--repeats``; JAX: the jitted ``forward_fn``, asynchronously dispatched,
  synchronised at the end; torch: ``no_grad``, CUDA-synchronised).
* ``outside_forward_s = decode_s - nfe * forward_s`` and ``outside_forward_share`` (its share of ``decode_s``):
  everything besides the model: processors, noise, strategy, writes, contract checks, host syncs and Python.
  The forward is timed separately, so small negative values mean "within timing noise" (XLA may also fuse the
  forward with the step's work inside the compiled loop).
* ``tokens_per_s = B * gen_length / decode_s``; ``ms_per_step = decode_s / nfe``.

Also written: ``parity`` (per strategy: whether both backends produced the same tokens, and the fraction of equal
tokens; bf16 runs can flip near-ties, so this is reported, not asserted) and ``sweep`` (JAX only: a ``threshold``
sweep re-run with other values; ``retraced`` must be false: swept floats are traced values, nothing recompiles).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPES = {
    # LLaDA-8B (GSAI-ML/LLaDA-8B-Instruct config.json): 8.0 B parameters
    "llada-8b": dict(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=32, intermediate_size=12288,
                     vocab_size=126464, mask_token_id=126336, eos_token_id=126081, eot_token_id=126348,
                     pad_token_id=126081, bos_token_id=126080, rope_theta=500000.0),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4, intermediate_size=128, vocab_size=512,
                 mask_token_id=511, eos_token_id=2, eot_token_id=3, pad_token_id=0, bos_token_id=1),
}
DEFAULT_STRATEGIES = "low_confidence;threshold:threshold=0.9"
SWEEP_VALUES = (0.7, 0.95)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.backend_speed", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("model (one of)")
    m.add_argument("--model", metavar="DIR", help="checkpoint folder (default: the reference model)")
    m.add_argument("--random-shape", choices=sorted(SHAPES), default=None,
                   help="random weights built directly on the device: llada-8b (GPU) or tiny (smoke)")
    m.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights / activations (default float32; bfloat16 with --random-shape llada-8b)")
    m.add_argument("--attn-impl", default="xla", choices=("xla", "cudnn"), help="JAX attention (default xla)")
    d = p.add_argument_group("decoding")
    d.add_argument("--batch-size", type=int, default=4, help="prompts per batch B (default 4)")
    d.add_argument("--prompt-len", type=int, default=32, help="prompt tokens P (random ids; default 32)")
    d.add_argument("--gen-length", type=int, default=128, help="generated slots G (default 128)")
    d.add_argument("--block-length", type=int, default=32, help="semi-AR block (default 32)")
    d.add_argument("--steps", type=int, default=None, help="step budget (default: = gen length)")
    d.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                   help="';'-separated NAME[:k=v,k=v] (default %(default)r)")
    r = p.add_argument_group("run")
    r.add_argument("--backends", default="torch,jax", help="comma-separated (default torch,jax)")
    r.add_argument("--repeats", type=int, default=3, help="timed warm decodes / forward loops (default 3)")
    r.add_argument("--forward-iters", type=int, default=32, help="forwards per forward-only loop (default 32)")
    r.add_argument("--threads", type=int, default=None,
                   help="CPU threads: torch.set_num_threads; 1 also makes XLA single-threaded (default: all)")
    r.add_argument("--no-sweep", action="store_true", help="skip the JAX threshold sweep")
    r.add_argument("--aot", action="store_true", help="also time the JAX lower() / compile() separately")
    r.add_argument("--require-gpu", action="store_true",
                   help="fail unless CUDA torch and CUDA jax are both available (the GPU benchmark)")
    r.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    r.add_argument("--seed", type=int, default=0, help="prompt / weight seed")
    r.add_argument("--out", default="backend_speed.json", help="JSON output (default backend_speed.json)")
    args = p.parse_args(argv)
    if args.model and args.random_shape:
        p.error("give --model or --random-shape, not both.")
    if args.dtype is None:
        args.dtype = "bfloat16" if args.random_shape == "llada-8b" else "float32"
    args.backend_list = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in args.backend_list if b not in ("torch", "jax")]
    if bad or not args.backend_list:
        p.error(f"--backends must list torch and/or jax, got {args.backends!r}.")
    return args


def parse_strategies(spec: str) -> list[dict]:
    """``"low_confidence;threshold:threshold=0.9"`` -> ``[{"type": "low_confidence"}, {"type": "threshold",
    "threshold": 0.9}]`` (values coerced with the strategy's field types)."""
    from decoders import coerce_params, get_strategy

    out = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        name, _, rest = item.partition(":")
        raw = dict(kv.split("=", 1) for kv in rest.split(",") if kv.strip())
        d = {"type": name.strip(), **coerce_params(name.strip(), {k.strip(): v for k, v in raw.items()})}
        get_strategy(dict(d))  # validate early
        out.append(d)
    return out


# ================================================================================================ environment
def setup_environment(args) -> None:
    """Before jax / torch start: no JAX GPU memory preallocation (torch shares the GPU), thread limits."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def check_gpu() -> dict:
    """CUDA torch + CUDA jax, or a clear error."""
    import jax
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append(f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False; "
                        "install a CUDA build of torch)")
    if jax.default_backend() != "gpu":
        problems.append(f"jax {jax.__version__} runs on {jax.default_backend()!r}, not 'gpu' (install "
                        "jax[cuda12] / jax[cuda13])")
    if problems:
        raise SystemExit("backend_speed: the GPU benchmark needs CUDA torch and CUDA jax on one machine: "
                         + "; ".join(problems) + ". (Use --random-shape tiny without --require-gpu for a CPU smoke "
                         "run.)")
    return {"torch_device": torch.cuda.get_device_name(0), "jax_devices": [str(d) for d in jax.devices()]}


# ================================================================================================ models
def build_models(args):
    """``(torch_model | None, jax_model | None, cfg, weights_note)``: from a folder, or random on the device."""
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    want_t, want_j = "torch" in args.backend_list, "jax" in args.backend_list
    if not args.random_shape:
        from dllm.api import default_model_path
        from dllm.models.jax_loader import load_jax_model
        from dllm.models.torch_loader import load_torch_model

        path = Path(args.model) if args.model else default_model_path()
        tm = load_torch_model(path, dtype=args.dtype, device=device) if want_t else None
        jm = load_jax_model(path, dtype=args.dtype, attn_impl=args.attn_impl) if want_j else None
        cfg = (tm or jm).config
        return tm, jm, cfg, f"checkpoint {path}", device
    from dllm.models.config import DLLMConfig
    from dllm.models.torch_loader import resolve_dtype
    from dllm.models.torch_model import DiffusionTransformer

    cfg = DLLMConfig(layout="llada", **SHAPES[args.random_shape])
    # torch: parameters allocated on the device in the target dtype (meta -> to_empty), then random in place
    with torch.device("meta"):
        tm = DiffusionTransformer(cfg).to(resolve_dtype(args.dtype))
    tm = tm.to_empty(device=device).eval()
    g = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        for name, p in tm.logical_state_dict().items():
            if name.endswith("norm"):
                p.fill_(1.0)
            elif name == "embed":
                p.normal_(0.0, 1.0, generator=g)
            else:  # weights [out, in] and biases: N(0, 1/fan_in) keeps activations O(1) through 32 layers
                p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
    jm, note = None, "random (torch generator on the device)"
    if want_j:
        jm, how = jax_from_torch_on_device(tm, cfg, args)
        note += f"; JAX weights: {how}"
    return (tm if want_t else None), jm, cfg, note, device


def jax_from_torch_on_device(tm, cfg, args):
    """The JAX model with the torch model's weights, shared through DLPack (no copy, no host round trip); falls
    back to an independent ``jax.random`` draw on the device (then the backends' tokens are not comparable)."""
    import jax
    import jax.numpy as jnp

    from dllm.models.jax_model import DiffusionTransformer, resolve_dtype

    try:
        params = {k: jax.dlpack.from_dlpack(v.detach().contiguous()) for k, v in tm.logical_state_dict().items()}
        return DiffusionTransformer(cfg, dtype=args.dtype, params=params, attn_impl=args.attn_impl), "shared (DLPack)"
    except Exception as e:  # noqa: BLE001 - DLPack between these builds not available: independent weights
        why = f"{type(e).__name__}: {e}"
    dt = resolve_dtype(args.dtype)
    key = jax.random.key(args.seed)
    params = {}
    for i, (k, v) in enumerate(tm.logical_state_dict().items()):
        shape = tuple(v.shape)
        if k.endswith("norm"):
            params[k] = jnp.ones(shape, dt)
        else:
            std = 1.0 if k == "embed" else shape[-1] ** -0.5
            params[k] = (jax.random.normal(jax.random.fold_in(key, i), shape, dt) * std).astype(dt)
    return (DiffusionTransformer(cfg, dtype=args.dtype, params=params, attn_impl=args.attn_impl),
            f"independent jax.random draw (DLPack failed: {why})")


def make_prompts(cfg, args) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(args.seed)
    special = {cfg.mask_token_id, cfg.eos_token_id, cfg.eot_token_id, cfg.pad_token_id, cfg.bos_token_id}
    lo = min(16, cfg.vocab_size // 4)
    pool = np.array([t for t in range(lo, cfg.vocab_size) if t not in special])
    return rng.choice(pool, size=(args.batch_size, args.prompt_len)).tolist()


# ================================================================================================ timing
def _median(xs):
    return float(statistics.median(xs))


def time_torch(model, rows, cfg_dec, strategy, args, device) -> dict:
    import torch

    from dllm.decoding import run_to_end
    from dllm.engine import Engine

    eng = Engine(model)
    sync = (lambda: torch.cuda.synchronize()) if str(device).startswith("cuda") else (lambda: None)

    def decode():
        sync()
        t = time.perf_counter()
        res = run_to_end(eng.run(rows, cfg_dec, strategy))
        seqs = res.sequences.cpu().tolist()
        sync()
        return time.perf_counter() - t, res, seqs

    cold, res, seqs = decode()
    runs = [decode()[0] for _ in range(args.repeats)]
    mask_id, _, _, pad_id = eng._special_ids(cfg_dec)
    canvas, attn, pos, _, _ = eng.prepare(rows, cfg_dec.gen_length, mask_id, pad_id)
    with torch.no_grad():
        model(canvas, attention_mask=attn, position_ids=pos)  # warm-up

        def fwd_loop():
            sync()
            t = time.perf_counter()
            for _ in range(args.forward_iters):
                model(canvas, attention_mask=attn, position_ids=pos)
            sync()
            return (time.perf_counter() - t) / args.forward_iters

        fwd = [fwd_loop() for _ in range(args.repeats)]
    return dict(nfe=res.nfe, steps=res.steps, cold_s=cold, decode_runs_s=runs, forward_runs_s=fwd, mode="eager",
                sequences=seqs)


def time_jax(model, rows, cfg_dec, strategy, args) -> dict:
    import jax

    from dllm.jax_engine import JaxEngine
    from dllm.models.jax_model import make_forward_fn

    eng = JaxEngine(model, noise="jax")
    out = {}
    if args.aot:
        t = time.perf_counter()
        lowered, _ = eng.lower(rows, cfg_dec, strategy)
        t1 = time.perf_counter()
        lowered.compile()
        out.update(aot_lower_s=t1 - t, aot_compile_s=time.perf_counter() - t1)

    def decode():
        t = time.perf_counter()
        res = eng.decode(rows, cfg_dec, strategy)  # NumPy results: synchronised
        return time.perf_counter() - t, res

    cold, res = decode()
    runs = [decode()[0] for _ in range(args.repeats)]
    mask_id, _, _, pad_id = eng._special_ids(cfg_dec)
    canvas, attn, pos, _, _, _, _ = eng.prepare(rows, cfg_dec.gen_length, mask_id, pad_id)
    fn, state = make_forward_fn(model)
    jax.block_until_ready(fn(state, canvas, attn, pos))  # compile + warm-up

    def fwd_loop():
        t = time.perf_counter()
        outs = [fn(state, canvas, attn, pos) for _ in range(args.forward_iters)]
        jax.block_until_ready(outs)
        return (time.perf_counter() - t) / args.forward_iters

    fwd = [fwd_loop() for _ in range(args.repeats)]
    out.update(nfe=res.nfe, steps=res.steps, cold_s=cold, decode_runs_s=runs, forward_runs_s=fwd,
               mode=eng.last_mode, sequences=res.sequences.tolist())
    return out


def summarize(backend: str, strategy: dict, m: dict, B: int, G: int) -> dict:
    decode_s = _median(m["decode_runs_s"])
    fwd = _median(m["forward_runs_s"])
    outside = decode_s - m["nfe"] * fwd
    if "aot_compile_s" in m:
        compile_s, method = m["aot_lower_s"] + m["aot_compile_s"], "aot lower + compile"
    else:
        compile_s, method = max(0.0, m["cold_s"] - decode_s), "cold_s - decode_s"
    rec = dict(backend=backend, strategy=strategy, mode=m["mode"], nfe=m["nfe"], steps=m["steps"],
               decode_s=decode_s, decode_runs_s=m["decode_runs_s"], cold_s=m["cold_s"],
               compile_s=compile_s, compile_method=method, forward_s=fwd, forward_runs_s=m["forward_runs_s"],
               forward_total_s=m["nfe"] * fwd, outside_forward_s=outside,
               outside_forward_share=outside / decode_s if decode_s > 0 else None,
               ms_per_step=1e3 * decode_s / max(1, m["nfe"]), tokens_per_s=B * G / decode_s if decode_s else None)
    for k in ("aot_lower_s", "aot_compile_s"):
        if k in m:
            rec[k] = m[k]
    return rec


def threshold_sweep(model, rows, cfg_dec, args) -> dict:
    from dllm.jax_engine import JaxEngine, trace_count

    eng = JaxEngine(model, noise="jax")
    base = {"type": "threshold", "threshold": 0.9}
    eng.decode(rows, cfg_dec, base)  # compiled (usually cached from the main run)
    before = trace_count()
    runs = []
    for v in SWEEP_VALUES:
        t = time.perf_counter()
        res = eng.decode(rows, cfg_dec, {"type": "threshold", "threshold": v})
        runs.append(dict(threshold=v, decode_s=time.perf_counter() - t, nfe=res.nfe))
    return dict(strategy="threshold", runs=runs, retraced=trace_count() != before)


# ================================================================================================ main
def run(args) -> dict:
    setup_environment(args)
    import jax
    import torch

    from dllm import DecodeConfig
    from dllm.jax_engine import resolve_strategy

    gpu = check_gpu() if args.require_gpu else None
    strategies = parse_strategies(args.strategies)
    t = time.perf_counter()
    tm, jm, cfg, weights, device = build_models(args)
    build_s = time.perf_counter() - t
    rows = make_prompts(cfg, args)
    results, seqs = [], {}
    for sd in strategies:
        dc = DecodeConfig(gen_length=args.gen_length, block_length=args.block_length, steps=args.steps,
                          strategy=sd, seed=args.seed)
        strat = resolve_strategy(sd)
        for backend in args.backend_list:
            if backend == "torch":
                m = time_torch(tm, rows, dc, strat, args, device)
            else:
                m = time_jax(jm, rows, dc, strat, args)
            seqs[(sd["type"], backend)] = m.pop("sequences")
            rec = summarize(backend, sd, m, args.batch_size, args.gen_length)
            results.append(rec)
            print(f"{backend:>5} {sd['type']:<16} nfe {rec['nfe']:>4}  decode {rec['decode_s']:8.3f}s  "
                  f"compile {rec['compile_s']:7.3f}s  forward {1e3 * rec['forward_s']:8.2f}ms  "
                  f"outside-forward {100 * (rec['outside_forward_share'] or 0):5.1f}%  [{rec['mode']}]", flush=True)
    parity = {}
    if {"torch", "jax"} <= set(args.backend_list):
        for sd in strategies:
            a, b = seqs[(sd["type"], "torch")], seqs[(sd["type"], "jax")]
            eq = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb))
            parity[sd["type"]] = dict(same_tokens=a == b, token_agreement=eq / max(1, sum(map(len, a))))
    sweep = None
    if "jax" in args.backend_list and not args.no_sweep:
        dc = DecodeConfig(gen_length=args.gen_length, block_length=args.block_length, steps=args.steps,
                          strategy="threshold", seed=args.seed)
        sweep = threshold_sweep(jm, rows, dc, args)
    n_params = sum(int(v.numel()) for v in tm.logical_state_dict().values()) if tm is not None else None
    meta = dict(
        python=platform.python_version(), platform=platform.platform(), torch=torch.__version__, jax=jax.__version__,
        torch_device=str(device), jax_backend=jax.default_backend(), jax_devices=[str(d) for d in jax.devices()],
        cpu_count=os.cpu_count(), threads=args.threads, gpu=gpu, xla_flags=os.environ.get("XLA_FLAGS", ""),
        model=dict(source=weights, layout=cfg.layout, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                   num_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size, vocab_size=cfg.vocab_size,
                   parameters=n_params, dtype=args.dtype, jax_attn_impl=args.attn_impl),
        model_build_s=build_s,
        notes=["JAX decodes with noise='jax' (greedy runs draw no noise at all)",
               "JAX programs are cached per shape / strategy skeleton: swept floats reuse them"])
    config = dict(batch_size=args.batch_size, prompt_len=args.prompt_len, gen_length=args.gen_length,
                  block_length=args.block_length, steps=args.steps or args.gen_length, repeats=args.repeats,
                  forward_iters=args.forward_iters, temperature=0.0)
    return dict(meta=meta, config=config, results=results, parity=parity, sweep=sweep)


def main(argv=None) -> int:
    args = parse_args(argv)
    doc = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if doc["parity"]:
        print("parity (same tokens):", {k: v["same_tokens"] for k, v in doc["parity"].items()})
    if doc["sweep"]:
        print("threshold sweep retraced:", doc["sweep"]["retraced"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
