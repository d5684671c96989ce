"""Server memory held by paused sessions: RSS with 1,000 paused sessions against the same server with 0.

Issue 12 target: RSS flat in the number of paused sessions (1,000 paused within 5 MB of 0 paused).

Path: ``serve --transport http`` (durable on, ``openai:gpt-4o-mini`` at a local fake endpoint that answers at once:
copilot_control hands off, the other agents answer, speed_harness.py), streamable HTTP 2025-11-25. Warm-up:
``--warmup`` sessions played to completion (2 rounds each, ``--parallel`` calls in flight: imports, caches, pools
reach their steady size), so the server holds 0 paused sessions; its RSS (/proc/<pid>/status VmRSS, the median of 5
readings 0.2 s apart after a 2 s settle) is the baseline. Then ``--sessions`` sessions are started with
``copilot(max_rounds=1)`` (each pauses after its first round), ``--parallel`` calls in flight, and the RSS is read the
same way at the half and at the end. The slope between the half and the end separates memory kept per paused session
from one-off growth.

The warm-up is short (30 sessions): what a server keeps of the sessions it ran must not depend on how many it ran
before. The caches that fill as a server runs sessions are native and were far from full after 30 (this bench's
default was 400 for a while): SQLite's prepared statements on each of DBOS's pooled connections (including the queue's
``IN (?, ...)`` variants, one per dequeued batch size) and its page caches, and the allocator's free lists (glibc's
arenas, up to 8 a core). They are bounded now (swarm/memory.py, swarm/system_db.py, swarm/store.py): 256 kB of pages a
connection, 32 prepared statements on each of DBOS's 4 connections, 2 arenas whose free pages go back to the system when
the process goes idle. And the Python heap's arenas grew to hold dead agent teams: each finished leg left its team in
reference cycles, freed only by a full collection (one every ~55 legs here, after gc.freeze); a team and its run
are freed when they end now (swarm/team.py release_team, swarm/live.py).

    python tests/bench/bench_paused_rss.py [--sessions 1000] [--parallel 16] [--warmup 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from tests.bench.speed_harness import endpoint, log, rss_bytes, swarm_server, verdict  # noqa: E402

TARGET_MB = 5.0
MB = 1024 * 1024
TASK = "rss bench session {label}-{i}"
"""Each session's task. The fake endpoint hands off from copilot_control (so that ``max_rounds=1`` pauses the session)
only when it is offered the researcher and the planner, i.e. when the router ranks both among its candidates for the
text ("rss bench b {i}" stopped being one: its sessions completed in one round)."""


async def settled_rss(pid: int) -> int:
    await asyncio.sleep(2)
    readings = []
    for _ in range(5):
        readings.append(rss_bytes(pid))
        await asyncio.sleep(0.2)
    return int(statistics.median(readings))


async def measure(sessions: int, parallel: int, warmup: int) -> dict[str, Any]:
    from mcp import Client

    with tempfile.TemporaryDirectory(prefix="bench-rss-") as t:
        tmp = Path(t)
        async with endpoint(tmp, mode="answer") as ep, swarm_server(tmp, ep.url) as server:
            pid = server.proc.pid
            async with AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(Client(server.url, mode="legacy")) for _ in range(parallel)]

                async def play(count: int, max_rounds: int, expect: str, label: str) -> float:
                    todo = iter(range(count))
                    start = time.monotonic()

                    async def worker(client: Any) -> None:
                        for i in todo:
                            result = await client.call_tool("copilot", {"task": TASK.format(label=label, i=i), "max_rounds": max_rounds})
                            out = result.structured_content or {}
                            assert not result.is_error and out.get("status") == expect, (
                                f"{out} (the fake endpoint hands off from copilot_control only when it is offered the researcher and "
                                "the planner: TASK must be a text the router ranks them first for)")

                    await asyncio.gather(*(worker(c) for c in clients))
                    return time.monotonic() - start

                log(f"warm-up: {warmup} sessions to completion")
                await play(warmup, 2, "completed", "warm-up")
                base = await settled_rss(pid)
                half = sessions // 2
                log(f"{half} paused sessions")
                took = await play(half, 1, "paused", "a")
                mid = await settled_rss(pid)
                log(f"{sessions} paused sessions")
                took += await play(sessions - half, 1, "paused", "b")
                end = await settled_rss(pid)
    return {"base": base, "mid": mid, "end": end, "half": half, "sessions": sessions, "took": took}


def report(sessions: int = 1000, parallel: int = 16, warmup: int = 30) -> float:
    r = asyncio.run(measure(sessions, parallel, warmup))
    delta = (r["end"] - r["base"]) / MB
    slope = (r["end"] - r["mid"]) / max(r["sessions"] - r["half"], 1) / 1024
    print(f"server RSS with paused sessions (HTTP, durable, openai client): 0 paused {r['base'] / MB:.1f} MB, "
          f"{r['half']} paused {r['mid'] / MB:.1f} MB, {r['sessions']} paused {r['end'] / MB:.1f} MB -> {delta:+.1f} MB "
          f"(target within {TARGET_MB:.0f} MB of 0 paused: {verdict(abs(delta) <= TARGET_MB)})")
    print(f"    {slope:.1f} kB per paused session between {r['half']} and {r['sessions']} "
          f"({(r['end'] - r['base']) / r['sessions'] / 1024:.1f} kB on average from 0); "
          f"{r['sessions'] / r['took']:.0f} sessions/s started with {parallel} calls in flight")
    return delta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000, help="paused sessions at the end (default 1000)")
    parser.add_argument("--parallel", type=int, default=16, help="copilot calls in flight while creating them (default 16)")
    parser.add_argument("--warmup", type=int, default=30, help="sessions played to completion before the baseline (default 30)")
    args = parser.parse_args(argv)
    report(args.sessions, args.parallel, args.warmup)


if __name__ == "__main__":
    main()
