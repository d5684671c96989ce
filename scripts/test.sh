#!/usr/bin/env bash
# Set up, then run the whole test suite (offline; servers bind 127.0.0.1 only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest "$@"
