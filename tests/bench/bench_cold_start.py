"""Cold start to the first ``copilot`` call answered over stdio, against a bare MCP server's cold start to its first
tool call.

Issue 12 target: <= 1.5x the bare server (the SDK's ``MCPServer`` with one echo tool, bench_mcp.py's BARE_SERVER).

Path: ``swarm-mcp serve`` (stdio) spawned by the SDK's stdio client on a fresh home, with the user's defaults:
durable sessions on, ``openai:gpt-4o-mini`` with OPENAI_BASE_URL at a local fake endpoint that answers at once
(copilot_control hands off to researcher, who answers: the call completes in 2 rounds, speed_harness.py). Timed:
spawn -> ``copilot(task, max_rounds=3)`` answered (completed), against spawn -> ``echo`` answered on the bare server;
``--runs`` of each, interleaved (the order alternates every run), medians. Also printed: spawn -> initialize answered
for both, and the swarm's first call on its own.

    python tests/bench/bench_cold_start.py [--runs 5] [--era legacy|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from tests.bench.bench_mcp import BARE_SERVER  # noqa: E402 - the sibling bench's bare server
from tests.bench.speed_harness import endpoint, log, median, swarm_env, verdict  # noqa: E402

TARGET_RATIO = 1.5
ERAS = {"legacy": "2025-11-25", "auto": "2026-07-28"}


async def cold_start(kind: str, era: str, home: Path, base_url: str) -> dict[str, float]:
    """Spawn the server (stdio) and call its first tool; spawn -> initialized, spawn -> the call answered."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    home.mkdir(parents=True)
    env = swarm_env(home, base_url)
    args = ["-c", BARE_SERVER] if kind == "bare" else ["-m", "server.cli", "serve"]
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(REPO))
    name, arguments = ("echo", {"text": "hello"}) if kind == "bare" else ("copilot", {"task": "Say ok", "max_rounds": 3})
    with open(home / "stderr.log", "w") as errlog:
        start = time.monotonic()
        async with Client(stdio_client(params, errlog=errlog), mode=era) as client:
            initialized = time.monotonic()
            result = await client.call_tool(name, arguments)
            answered = time.monotonic()
    assert not result.is_error, result
    status = (result.structured_content or {}).get("status", "completed")
    if status != "completed":  # reported, not timed: the server answered before the session ended
        log(f"{kind} cold start: the first copilot call answered {status!r}, not 'completed': "
            f"{(result.structured_content or {}).get('next')}\n--- its server's stderr:\n{(home / 'stderr.log').read_text()[-3000:]}")
    return {"init": initialized - start, "answered": answered - start, "call": answered - initialized, "ok": status == "completed"}


async def measure(runs: int, era: str) -> dict[str, list[dict[str, float]]]:
    times: dict[str, list[dict[str, float]]] = {"bare": [], "swarm": []}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as t:
        tmp = Path(t)
        async with endpoint(tmp, mode="answer") as ep:
            for package in ("swarm", "server", "phases"):  # bytecode, as an installed package has it (pip writes it; an
                compileall.compile_dir(REPO / package, quiet=1)  # editable install under PYTHONDONTWRITEBYTECODE has none)
            for kind in ("bare", "swarm"):  # warm-up: the OS file cache
                await cold_start(kind, era, tmp / f"warm-{kind}", ep.url)
            for i in range(runs):  # a swarm run whose first call did not complete is reported, not timed
                log(f"run {i + 1}/{runs}")
                for kind in ("bare", "swarm") if i % 2 == 0 else ("swarm", "bare"):
                    got = await cold_start(kind, era, tmp / f"{kind}-{i}", ep.url)
                    (times[kind] if got["ok"] else times.setdefault(f"{kind}-failed", [])).append(got)
    return times


def report(runs: int = 5, era: str = "legacy") -> float:
    times = asyncio.run(measure(runs, era))
    m = lambda kind, key: median([t[key] for t in times[kind]]) * 1000  # noqa: E731
    ratio = m("swarm", "answered") / m("bare", "answered")
    print(f"cold start to the first tool call answered (stdio {ERAS[era]}, median of {runs}): bare MCPServer echo "
          f"{m('bare', 'answered'):.0f} ms, swarm-mcp copilot (durable, openai client, instant endpoint) {m('swarm', 'answered'):.0f} ms "
          f"-> {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict(ratio <= TARGET_RATIO)})")
    print(f"    spawn -> initialize answered: bare {m('bare', 'init'):.0f} ms, swarm-mcp {m('swarm', 'init'):.0f} ms; "
          f"the first call itself: bare {m('bare', 'call'):.0f} ms, swarm-mcp copilot {m('swarm', 'call'):.0f} ms")
    failed = len(times.get("swarm-failed", []))
    if failed:
        print(f"    WARNING: {failed} of {runs + failed} swarm-mcp cold starts answered the first copilot call before the session "
              "ended (status running, 'interrupted (no run of it is live in this server)'): not timed; details on stderr")
    return ratio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts of each server (default 5)")
    parser.add_argument("--era", choices=sorted(ERAS), default="legacy", help="protocol era: legacy = 2025-11-25, auto = 2026-07-28")
    args = parser.parse_args(argv)
    report(args.runs, args.era)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
