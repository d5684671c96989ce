"""Nothing stays in memory for a paused session (issue 12: server memory flat in the number of paused sessions).

The real server, durable (DBOS on SQLite), through the SDK's real client in memory. Each session is started with
``max_rounds=1``: copilot_control hands off, and the session pauses after that first round. After a warm-up, the Python
heap (tracemalloc) may grow by at most ``PER_SESSION`` bytes a session from ``N`` to ``2 N`` and from ``2 N`` to ``3 N`` paused
sessions (the smaller of the two: a bounded pool or cache fuller at one snapshot moves one interval by up to ~100 kB): what
the libraries' bounded caches take while they fill (pydantic-core's string cache keeps short strings such as session
ids, SQLAlchemy its compiled statements): measured ~0 here (-0.2 kB), ~0.9 kB on the HTTP server with 16 calls in
flight, while keeping each run's registry entry, or each session's records and events, leaves ~22 kB a session. The
process's live-run registry, the subscriptions and the asyncio tasks are back to their size with no session paused.

The RSS growth tests/bench/bench_paused_rss.py measured was not live Python objects: SQLite's prepared statements on
each connection DBOS keeps to its system database (bounded by swarm.system_db.SQLITE_POOL: the second test), the
page caches, the allocator's free lists; sessions that complete grew it as much. The caches are small now and the free
lists go back to the system when the process goes idle (tests/swarm/test_memory.py). The Python heap's arenas grew too,
to hold the teams of finished legs waiting in reference cycles for a full collection (the snapshots here collect
first): a team and its run are freed when they end now (tests/swarm/test_runner.py, tests/swarm/test_live.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import tracemalloc
from typing import Any

import anyio
import pytest

from server.app import build_server
from swarm.system_db import SQLITE_POOL
from tests.e2e.mcp_harness import connect, data
from tests.fakes import FunctionModels, handoff

pytestmark = pytest.mark.anyio

WARM_UP = 20
N = 40
PER_SESSION = 2048
"""Bytes of Python heap a paused session may leave behind, on average over N sessions."""


def hand_off_or_answer(messages: Any, agent: str, tools: list[str]) -> Any:
    """copilot_control hands off to the first agent it is offered; any other agent answers."""
    transfers = [t for t in tools if t.startswith("transfer_to_")]
    return handoff(transfers[0].removeprefix("transfer_to_")) if agent == "copilot_control" and transfers else "done"


async def test_paused_sessions_leave_nothing_behind(settings: Any) -> None:
    server = build_server(dataclasses.replace(settings, durable=True), models=FunctionModels(hand_off_or_answer))
    service = server.swarm
    async with connect(server, "legacy") as client:

        async def pause(count: int, label: str) -> None:
            for i in range(count):
                out = data(await client.call_tool("copilot", {"task": f"Summarise report {label}-{i}", "max_rounds": 1}))
                assert out["status"] == "paused" and out["live"] is False, out

        def heap() -> tracemalloc.Snapshot:
            gc.collect()
            return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])

        with anyio.fail_after(300):
            await pause(WARM_UP, "warm-up")
            tasks = len(asyncio.all_tasks())
            tracemalloc.start(1)
            try:
                await pause(N, "a")
                first = heap()
                await pause(N, "b")
                second = heap()
                await pause(N, "c")
                third = heap()
            finally:
                tracemalloc.stop()

        assert len(service.runs) == 0  # the live-run registry: no entry outlives its run
        assert service.notifier.subscription_count() == 0
        assert len(asyncio.all_tasks()) <= tasks
        size = lambda snapshot: sum(t.size for t in snapshot.traces)  # noqa: E731
        # What N more paused sessions add, in the smaller of two intervals: memory a paused session keeps shows in both;
        # a bounded pool or cache that happened to be fuller at one snapshot (+-100 kB over 40 sessions) in one only.
        grown, later, earlier = min((size(second) - size(first), second, first), (size(third) - size(second), third, second), key=lambda g: g[0])
        top = "\n".join(str(s) for s in later.compare_to(earlier, "lineno")[:8])
        assert grown / N <= PER_SESSION, f"{grown / N:.0f} bytes of Python heap kept per paused session; grown most:\n{top}"


async def test_a_burst_of_sessions_leaves_few_connections_to_dbos_sqlite_database(settings: Any) -> None:
    """Each connection DBOS keeps to its SQLite system database caches its own prepared statements (0.4-0.5 MB once
    warm): after a burst of concurrent sessions at most ``SQLITE_POOL`` stay open (with DBOS's default of 20, 17 did),
    4 (8 grew 1.6 MB of statements over the 1,000 paused sessions of bench_paused_rss after its warm-up; 4 grow 0.7)."""
    from dbos._dbos import _get_dbos_instance

    server = build_server(dataclasses.replace(settings, durable=True), models=FunctionModels(hand_off_or_answer))
    async with connect(server, "legacy") as client:

        async def pause(i: int) -> None:
            out = data(await client.call_tool("copilot", {"task": f"Summarise report {i}", "max_rounds": 1}))
            assert out["status"] == "paused", out

        with anyio.fail_after(300):
            async with anyio.create_task_group() as group:
                for i in range(32):
                    group.start_soon(pause, i)
        pool = _get_dbos_instance()._sys_db.engine.pool
        assert pool.checkedin() + pool.checkedout() <= SQLITE_POOL <= 4
