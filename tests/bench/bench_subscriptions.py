"""What subscriptions cost a `serve --transport http` process, measured from its /proc/<pid>/status.

    python tests/bench/bench_subscriptions.py [--refused N] [--connections N]

Prints the server's RSS (MB) and threads:
- at the baseline (after a warm-up client);
- after N refused ``resources/subscribe`` requests (URIs naming no resource, like ``swarm://sessions//<id>``, and
  unknown sessions): they must cost nothing that stays (the issue measured +344 MB for 50,000 kept ones);
- after ``--connections`` 2025-11-25 connections each holding the most subscriptions one may (256), i.e.
  ~10,000 accepted subscriptions at the default, and the 257th refused on each;
- after those connections close (their subscriptions are released).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from mcp.shared.exceptions import MCPError  # noqa: E402

from server.notify import MAX_SUBSCRIPTIONS  # noqa: E402
from tests.e2e.http_harness import connect_http, serve_env, serve_process  # noqa: E402


def status(pid: int) -> tuple[float, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def show(label: str, pid: int, base: tuple[float, int] | None = None) -> tuple[float, int]:
    rss, threads = status(pid)
    delta = f"  ({rss - base[0]:+.1f} MB, {threads - base[1]:+d} threads)" if base else ""
    print(f"{label:<58} RSS {rss:7.1f} MB  threads {threads:3d}{delta}", flush=True)
    return rss, threads


async def main(refused: int, connections: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        async with serve_process(tmp_path, serve_env(tmp_path, [])) as server:
            pid = server.proc.pid
            async with connect_http(server, "http-2025") as client:
                sessions = []
                for _ in range((MAX_SUBSCRIPTIONS + 2) // 3):
                    result = await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "ok?", "wait_seconds": 0})
                    sessions.append(result.structured_content["session_id"])
            uris = ["swarm://sessions", "swarm://agents", "swarm://phases"]
            for sid in sessions:
                uris += [f"swarm://sessions/{sid}", f"swarm://sessions/{sid}/transcript", f"swarm://sessions/{sid}/transcript.md"]
            uris = uris[:MAX_SUBSCRIPTIONS + 1]
            base = show("baseline", pid)

            started = time.perf_counter()
            refusals = 0
            async with connect_http(server, "http-2025") as client:
                async def refuse(i: int) -> None:
                    nonlocal refusals
                    uri = f"swarm://sessions//{sessions[i % len(sessions)]}" if i % 2 else f"swarm://sessions/s_{i:016x}"
                    try:
                        await client.subscribe_resource(uri)
                    except MCPError:
                        refusals += 1

                for start in range(0, refused, 20):
                    async with anyio.create_task_group() as tg:
                        for i in range(start, min(start + 20, refused)):
                            tg.start_soon(refuse, i)
            took = time.perf_counter() - started
            show(f"after {refused:,} refused subscriptions ({refusals:,} refused, {took:.1f} s)", pid, base)

            async with AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(connect_http(server, "http-2025")) for _ in range(connections)]
                over = 0

                async def fill(client: object) -> None:  # one request at a time per connection, the connections at once
                    nonlocal over
                    for uri in uris[:MAX_SUBSCRIPTIONS]:
                        await client.subscribe_resource(uri)  # type: ignore[attr-defined]
                    try:
                        await client.subscribe_resource(uris[MAX_SUBSCRIPTIONS])  # type: ignore[attr-defined]
                    except MCPError:
                        over += 1

                async with anyio.create_task_group() as tg:
                    for client in clients:
                        tg.start_soon(fill, client)
                show(f"{connections} connections x {MAX_SUBSCRIPTIONS} = {connections * MAX_SUBSCRIPTIONS:,} held "
                     f"({over} refused at the cap)", pid, base)
            show("after those connections closed", pid, base)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refused", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=40)
    args = parser.parse_args()
    anyio.run(main, args.refused, args.connections)
