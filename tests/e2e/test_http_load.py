"""200 concurrent HTTP clients in each protocol era against one real `serve --transport http`: no errors, and the
server's threads and memory go back near their baseline after the burst.

Each client is the SDK's real client over streamable HTTP: it connects (2025-11-25: initialize; 2026-07-28:
stateless), lists the tools, starts a session (an approval checkpoint: it waits for input without any model call),
reads the session's resource, answers the approval (the session completes) and asks its status. Starting and
answering a session goes through DBOS, whose blocking calls run on its thread pool: the defect this guards against
is that pool growing by a thread per concurrent call and never shrinking (8 -> 39 threads after one burst).

Threads and RSS come from ``/proc/<pid>/status``. The thread baseline is the idle server's, before any client; the
RSS baseline is taken after a small warm-up of both eras (so lazily imported code and caches are in it). The peak
is sampled while the clients run, and the recovery polled for at most ``RECOVERY_SECONDS`` after the last client is
done. RSS does not fall back all the way: CPython's allocator keeps the arenas a burst fragmented (measured: live
Python objects +5 MB, arenas +74 MB; three more bursts added 0-6 MB), so it is bounded rather than restored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.e2e.http_harness import HttpServer, connect_http, serve_env, serve_process
from tests.e2e.mcp_harness import connect, data, make_server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CLIENTS = 200
"""Concurrent clients per era."""
WARM_UP = 8
"""Clients per era run before the baseline is taken."""
RECOVERY_SECONDS = 30.0
"""Threads must be back near the baseline this long after the burst (idle pool threads exit after 5 s)."""
THREAD_MARGIN = 4
"""Threads "near the baseline": at most this many above it."""
PEAK_THREADS = 16 + 8
"""At most this many threads above the baseline while the clients run: DBOS's pool is bounded at 16."""
RSS_MARGIN_MB = 120
"""RSS after the burst at most this much above the baseline (400 sessions were created and completed meanwhile)."""


def proc_status(pid: int) -> tuple[int, int]:
    """(threads, RSS in MB) of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024


async def one_client(server: HttpServer, transport: str, errors: list[str]) -> None:
    try:
        async with connect_http(server, transport) as client:
            assert len((await client.list_tools()).tools) == 13
            waiting = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship it?", "wait_seconds": 30}))
            assert waiting["status"] == "waiting_input", waiting
            sid, approval = waiting["session_id"], waiting["pending_approval"]["id"]
            assert sid in (await client.read_resource(f"swarm://sessions/{sid}")).contents[0].text
            if transport == "http-2025":
                await client.subscribe_resource(f"swarm://sessions/{sid}/transcript")  # released when the client leaves
            done = data(await client.call_tool("resolve_approval", {"session_id": sid, "approval_id": approval, "decision": "approve"}))
            assert done["status"] == "completed", done
            assert data(await client.call_tool("session_status", {"session_id": sid}))["status"] == "completed"
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        errors.append(f"{transport}: {_leaf(exc)}"[:500])


def _leaf(exc: BaseException) -> str:
    """The innermost exception of an exception group (what actually went wrong), as text."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def burst(server: HttpServer, transport: str, clients: int, peak: list[int] | None = None) -> list[str]:
    """``clients`` clients at once; returns their errors. ``peak``: [threads, rss] maxima seen meanwhile."""
    errors: list[str] = []
    async with anyio.create_task_group() as watchers:
        if peak is not None:
            async def watch() -> None:
                while True:
                    threads, rss = proc_status(server.proc.pid)
                    peak[0], peak[1] = max(peak[0], threads), max(peak[1], rss)
                    await anyio.sleep(0.1)  # a sampling period, not a wait for an event

            watchers.start_soon(watch)
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(one_client, server, transport, errors)
        watchers.cancel_scope.cancel()
    return errors


async def test_200_concurrent_clients_per_era_no_errors_and_threads_return_to_baseline(tmp_path: Path) -> None:
    with anyio.fail_after(240):
        async with serve_process(tmp_path, serve_env(tmp_path, [])) as server:
            pid = server.proc.pid
            base_threads = proc_status(pid)[0]
            for transport in ("http-2025", "http-2026"):
                assert await burst(server, transport, WARM_UP) == []
            base_rss = proc_status(pid)[1]
            peak = [base_threads, base_rss]
            started = time.monotonic()
            errors = [*await burst(server, "http-2025", CLIENTS, peak), *await burst(server, "http-2026", CLIENTS, peak)]
            took = time.monotonic() - started
            end_threads, end_rss = proc_status(pid)
            ended = time.monotonic()
            threads, rss = end_threads, end_rss
            while threads > base_threads + THREAD_MARGIN and time.monotonic() < ended + RECOVERY_SECONDS:
                await anyio.sleep(0.25)  # polling the process's thread count, bounded by the deadline
                threads, rss = proc_status(pid)
            recovered = time.monotonic() - ended
            report = (f"{2 * CLIENTS} clients in {took:.1f} s; threads {base_threads} -> peak {peak[0]} -> {end_threads} at the end "
                      f"-> {threads} {recovered:.1f} s later; RSS {base_rss} -> peak {peak[1]} -> {rss} MB")
            print(report)
            assert errors == [], f"{len(errors)} of {2 * CLIENTS} clients failed; first ones:\n" + "\n".join(errors[:5])
            assert threads <= base_threads + THREAD_MARGIN, f"threads did not come back near the baseline: {report}"
            assert peak[0] <= base_threads + PEAK_THREADS, f"threads grew past the pool's bound: {report}"
            assert rss <= base_rss + RSS_MARGIN_MB, f"RSS stayed high: {report}"
            assert server.proc.poll() is None, server.log()


async def test_reading_resources_takes_no_worker_thread(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK hands a template resource's text to a worker thread to return it; ours are served without that hop
    (one hop per read had left up to 40 anyio worker threads behind after a burst)."""
    import anyio.to_thread

    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await run_sync(fn, *args, **kwargs)

    server, _ = make_server(settings, [])
    async with connect(server, "legacy") as client:
        sid = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship it?", "wait_seconds": 0}))["session_id"]
        uris = [f"swarm://sessions/{sid}", f"swarm://sessions/{sid}/transcript", f"swarm://sessions/{sid}/transcript.md",
                "swarm://sessions", "swarm://agents", "swarm://agents/engineer", "swarm://phases", "swarm://phases/planning"]
        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        async with anyio.create_task_group() as tg:
            for uri in uris * 5:
                tg.start_soon(client.read_resource, uri)
    assert hops == []
