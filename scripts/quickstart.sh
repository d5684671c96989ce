#!/usr/bin/env bash
# Set up, then run one end-to-end copilot session on the embedded offline model (no key, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export SWARM_MCP_MODEL="${SWARM_MCP_MODEL:-local}"
TASK="${1:-Write a Python program that prints the squares of the numbers 1 to 5.}"
swarm-mcp run "$TASK" --max-rounds "${MAX_ROUNDS:-8}"
