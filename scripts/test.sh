#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh) and run the default test suite (slow tests are excluded; run them with -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
