#!/usr/bin/env bash
# Set up a virtualenv (CPU torch wheel first, so nothing pulls a CUDA build) and run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[torch,jax,bench,server,dev]'
exec .venv/bin/python -m pytest -q "$@"
