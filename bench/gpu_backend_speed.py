"""JAX vs torch engine speed on one GPU with a random-weight LLaDA-8B-shape model (bf16, built on the device).

Usage::

    python -m bench.gpu_backend_speed --out results/backend_speed_gpu.json          # CUDA torch + CUDA jax
    python -m bench.gpu_backend_speed --tiny --out /tmp/gpu_backend_speed_smoke.json  # CPU smoke run (seconds)

It is :mod:`bench.backend_speed` with GPU defaults: ``--random-shape llada-8b --dtype bfloat16 --require-gpu``,
B = 1, a 64-token prompt, 256 generated tokens in blocks of 32 with 256 steps (LLaDA's GSM8K setting), strategies
``low_confidence`` (fixed, 256 forwards) and ``threshold`` 0.9 (dynamic; random weights are never confident, so it
also runs about one token per forward), 2 timed decodes each. The model (8.0 B parameters, hidden 4096, 32 layers,
32 heads, MLP 12288, vocab 126464) is allocated directly on the GPU by torch and shared with JAX through DLPack
(16 GB once; no checkpoint is written or read). JAX GPU memory preallocation is switched off so both frameworks fit.
Without CUDA torch and CUDA jax the script stops with an error naming what is missing. Any other
:mod:`bench.backend_speed` flag can be appended (``--batch-size 8``, ``--attn-impl cudnn``, ``--aot`` ...).
``--tiny`` swaps in a tiny random shape in float32 and small lengths and drops the GPU requirement.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GPU_DEFAULTS = ["--random-shape", "llada-8b", "--dtype", "bfloat16", "--require-gpu", "--batch-size", "1",
                "--prompt-len", "64", "--gen-length", "256", "--block-length", "32", "--steps", "256",
                "--repeats", "2", "--forward-iters", "16", "--out", "backend_speed_gpu.json"]
TINY_DEFAULTS = ["--random-shape", "tiny", "--dtype", "float32", "--batch-size", "2", "--prompt-len", "8",
                 "--gen-length", "16", "--block-length", "8", "--steps", "16", "--repeats", "1",
                 "--forward-iters", "4", "--out", "backend_speed_gpu_tiny.json"]


def main(argv=None) -> int:
    from bench import backend_speed

    argv = list(sys.argv[1:] if argv is None else argv)
    tiny = "--tiny" in argv
    argv = [a for a in argv if a != "--tiny"]
    # later flags win in argparse: user flags after the defaults
    return backend_speed.main((TINY_DEFAULTS if tiny else GPU_DEFAULTS) + argv)


if __name__ == "__main__":
    raise SystemExit(main())
