#!/usr/bin/env bash
# Create .venv and install dllm with all extras. The CPU torch wheel is installed first and pinned, so nothing
# can pull a CUDA build of torch on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[torch,jax,bench,dev]'
