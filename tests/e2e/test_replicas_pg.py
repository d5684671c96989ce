"""Two `serve --transport http` replicas on one PostgreSQL: a session survives the SIGKILL of the replica that runs it,
and any replica reads, continues and cancels the sessions of the other.

Each test gets a database of its own (``CREATE DATABASE replicas_<hex>``, dropped WITH (FORCE) at the end): a durable
server adopts the sessions left ``running`` in its database, so replicas of other tests must not share it. Both
replicas share one scripted model (one script file, one call log): every model call, whichever replica makes it,
takes the next entry, so the log proves that no completed call ran twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest
from http_harness import READY, REPO, HttpServer, connect_http, script_calls, serve_env
from mcp_harness import data

PG_URL = os.environ.get("SWARM_MCP_TEST_POSTGRES_URL")
if not PG_URL:
    pytest.skip("set SWARM_MCP_TEST_POSTGRES_URL (postgresql+asyncpg://user@host:port/postgres) to run the replica tests on "
                "PostgreSQL; .ci/run does (scripts/postgres.sh start)", allow_module_level=True)

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPLICAS = ("replica-a", "replica-b")
POLL = 0.05
"""Polling a file or a table another process writes: there is no event to wait on."""


# ---- a fresh database per test ------------------------------------------------------------------


def _asyncpg_dsn(url: Any) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """The SQLAlchemy URL of a new, empty database on the test server; dropped (sessions forced out) afterwards."""
    admin = make_url(PG_URL)
    name = f"replicas_{os.urandom(6).hex()}"
    conn = await asyncpg.connect(_asyncpg_dsn(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(_asyncpg_dsn(admin))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def workflow_row(db_url: str, workflow_id: str) -> tuple[str, str | None] | None:
    """``(status, executor_id)`` of a DBOS workflow, from DBOS's system tables in the shared database."""
    conn = await asyncpg.connect(_asyncpg_dsn(make_url(db_url)))
    try:
        row = await conn.fetchrow("select status, executor_id from dbos.workflow_status where workflow_uuid = $1", workflow_id)
    finally:
        await conn.close()
    return None if row is None else (row["status"], row["executor_id"])


# ---- replicas: the http_harness server, keeping the Popen for a SIGKILL ------------------------


@asynccontextmanager
async def replica(tmp_path: Path, env: dict[str, str], executor_id: str) -> AsyncIterator[HttpServer]:
    """A `serve --transport http --port 0` replica with ``SWARM_MCP_EXECUTOR_ID=executor_id``, ready and with its
    durable engine launched (the server opens its engine on the first tool call); stopped with SIGTERM on exit
    unless the test killed it. Its stderr ends up in ``<tmp_path>/<executor_id>.stderr``."""
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--port", "0"],
                            env={**env, "SWARM_MCP_EXECUTOR_ID": executor_id}, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []
    ready: list[Any] = []
    seen = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            match = READY.search(line)
            if match and not ready:
                ready.append(match)
                seen.set()
        seen.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        await anyio.to_thread.run_sync(seen.wait, 60)
        if not ready:
            raise AssertionError(f"replica {executor_id} did not start (exit code {proc.poll()}):\n{''.join(lines)}")
        server = HttpServer(base=ready[0].group(1), proc=proc, stderr=lines)
        async with connect_http(server, "http-2026") as client:  # opens the engine: DBOS launches, heartbeats, dequeues
            warm = await client.call_tool("session_status", {"session_id": "s_warmup"})
            assert warm.is_error and "unknown session" in str(warm.content), warm.content
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await anyio.to_thread.run_sync(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            await anyio.to_thread.run_sync(proc.wait, 10)
        await anyio.to_thread.run_sync(reader.join, 10)
        (tmp_path / f"{executor_id}.stderr").write_text("".join(lines))


@asynccontextmanager
async def two_replicas(tmp_path: Path, db_url: str, script: list[dict[str, Any]]) -> AsyncIterator[dict[str, HttpServer]]:
    """replica-a and replica-b on one database, one SWARM_MCP_HOME and one script (written once, before either starts).
    Started one after the other: each launches DBOS (which creates its system tables) before the next one starts."""
    env = serve_env(tmp_path, script, SWARM_MCP_DB=db_url, SWARM_MCP_DURABLE="1", SWARM_MCP_TAKEOVER_SECONDS="2")
    async with AsyncExitStack() as stack:
        servers = {name: await stack.enter_async_context(replica(tmp_path, env, name)) for name in REPLICAS}
        yield servers


async def call(server: HttpServer, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """One tool call on its own short connection (a replica may be killed between calls)."""
    async with connect_http(server, "http-2026") as client:
        return data(await client.call_tool(tool, args))


async def transcript(server: HttpServer, sid: str) -> list[dict[str, Any]]:
    async with connect_http(server, "http-2026") as client:
        return json.loads((await client.read_resource(f"swarm://sessions/{sid}/transcript")).contents[0].text)["events"]


def logged(tmp_path: Path) -> list[int]:
    """The script indices of the model calls made so far, in order (both replicas append to one log)."""
    log = tmp_path / "script.json.log"
    return [json.loads(line)["index"] for line in log.read_text().splitlines()] if log.exists() else []


async def until(what: str, seconds: float, probe: Any, interval: float = POLL) -> Any:
    """Poll ``await probe()`` until it returns something truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await anyio.sleep(interval)


async def calls_above(tmp_path: Path, n: int) -> bool:
    return script_calls(tmp_path) > n


def logs(servers: dict[str, HttpServer]) -> str:
    return "\n".join(f"--- {name} (exit {s.proc.poll()}) ---\n{s.log()[-6000:]}" for name, s in servers.items())


# ---- a replica killed mid-session ---------------------------------------------------------------

HOPS = [  # every hand-off is legal (manifests/agents/*.yaml handoffs)
    ("copilot_control", "planner"), ("planner", "controller"), ("controller", "engineer"), ("engineer", "controller"),
    ("controller", "researcher"), ("researcher", "controller"), ("controller", "engineer"), ("engineer", "executor"),
    ("executor", "engineer"), ("engineer", "controller"), ("controller", "researcher"),
]
FINAL = "Finished by the surviving replica."
LONG = [{"agent": a, "handoff": t, "delay": 0.3} for a, t in HOPS] + [{"agent": "researcher", "text": FINAL, "delay": 0.3}]


async def test_a_replica_killed_mid_session_is_finished_by_the_other(tmp_path: Path, database: str) -> None:
    with anyio.fail_after(80):
        async with two_replicas(tmp_path, database, LONG) as servers:
            first = await call(servers["replica-a"], "copilot", {"task": "Plan and write a report in three steps", "wait_seconds": 0})
            sid = first["session_id"]
            assert first["status"] == "running", first

            async def executor() -> str | None:  # enqueue writes the enqueuer's id; a dequeue sets PENDING and the runner's id
                row = await workflow_row(database, f"{sid}.leg0")
                return row[1] if row is not None and row[0] == "PENDING" and row[1] in REPLICAS else None

            runner = await until("a replica to dequeue the session's leg", 15, executor)
            survivor = next(name for name in REPLICAS if name != runner)
            await until("2 model calls", 15, lambda: calls_above(tmp_path, 1), 0.02)
            # Kill between model calls: right after a call was logged it is journaled within milliseconds, and the next
            # one waits out its 0.3 s latency. (A call killed between its answer and its journal entry is not a completed
            # call: it runs again, at least once by design.)
            before = script_calls(tmp_path)
            await until("the next model call", 5, lambda: calls_above(tmp_path, before), 0.01)
            await anyio.sleep(0.1)
            at_kill = script_calls(tmp_path)
            assert at_kill < len(LONG) - 2, "the session almost finished before the kill: slow the script down"
            servers[runner].proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await anyio.to_thread.run_sync(servers[runner].proc.wait, 10)
            assert servers[runner].proc.returncode == -signal.SIGKILL

            try:
                await until(f"{survivor} to take over (a model call after the kill)", 30, lambda: calls_above(tmp_path, at_kill), 0.02)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs(servers)}") from None
            takeover = time.monotonic() - killed

            async def completed() -> dict[str, Any] | None:
                status = await call(servers[survivor], "session_status", {"session_id": sid})
                return status if status["status"] in ("completed", "failed", "cancelled") else None

            try:
                done = await until("the session to end on the surviving replica", 45, completed, 0.2)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs(servers)}") from None
            assert done["status"] == "completed" and done["result"] == FINAL, (done, logs(servers))
            events = await transcript(servers[survivor], sid)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            row = await workflow_row(database, f"{sid}.leg0")
            assert row is not None and row[0] == "SUCCESS" and row[1] == survivor, row
        # no completed model call ran twice: every entry once, in order, none left over
        assert logged(tmp_path) == list(range(len(LONG)))
        print(f"\n{runner} killed after {at_kill} model calls; {survivor} made the next call {takeover:.2f} s later "
              f"(its last heartbeat 2 s stale, seen by the survivor's 1 s sweep, + the entry's 0.3 s latency)")


# ---- replicas share sessions --------------------------------------------------------------------

READ = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "text": "Read from either replica."},
]
CONTINUED = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},  # max_rounds=2: paused here, on A
    {"agent": "controller", "handoff": "researcher"},  # continued through B
    {"agent": "researcher", "text": "Continued through the other replica."},
]
SLOW = [{"agent": a, "handoff": t, "delay": 0.4} for a, t in HOPS] + [{"agent": "researcher", "text": "Never reached.", "delay": 0.4}]


async def test_replicas_share_sessions(tmp_path: Path, database: str) -> None:
    with anyio.fail_after(80):
        async with two_replicas(tmp_path, database, READ + CONTINUED + SLOW) as servers:
            a, b = servers["replica-a"], servers["replica-b"]

            # a session run through A reads the same from B
            done = await call(a, "copilot", {"task": "Plan and write a report in three steps", "wait_seconds": 30})
            sid = done["session_id"]
            assert done["status"] == "completed" and done["result"] == "Read from either replica.", done
            seen = await call(b, "session_status", {"session_id": sid})
            assert (seen["status"], seen["result"], seen["live"]) == ("completed", done["result"], False)
            assert await transcript(b, sid) == await transcript(a, sid)
            assert script_calls(tmp_path) == len(READ)

            # a session paused at max_rounds on A, continued through B
            paused = await call(a, "copilot", {"task": "Plan and write a report in three steps", "max_rounds": 2, "wait_seconds": 30})
            sid = paused["session_id"]
            assert paused["status"] == "paused", paused
            assert (await call(b, "session_status", {"session_id": sid}))["status"] == "paused"
            done = await call(b, "continue_copilot", {"session_id": sid, "wait_seconds": 30})
            assert done["status"] == "completed" and done["result"] == "Continued through the other replica.", (done, logs(servers))
            assert (await call(a, "session_status", {"session_id": sid}))["status"] == "completed"
            continued_on = (await workflow_row(database, f"{sid}.leg1") or ("?", "?"))[1]
            events = await transcript(a, sid)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert logged(tmp_path) == list(range(len(READ) + len(CONTINUED)))

            # a session started through A and running there, cancelled through B. B is stopped (SIGSTOP) while the
            # session is enqueued, so that A dequeues it: B then holds neither its run nor its workflow. (Well under the
            # 2 s takeover: A does not presume B dead.)
            base = script_calls(tmp_path)
            b.proc.send_signal(signal.SIGSTOP)
            try:
                first = await call(a, "copilot", {"task": "Plan and write a report in three steps", "wait_seconds": 0})
                sid = first["session_id"]

                async def on_a() -> bool:
                    return await workflow_row(database, f"{sid}.leg0") == ("PENDING", "replica-a")

                await until("replica-a to dequeue the session's leg", 1.5, on_a, 0.02)
            finally:
                b.proc.send_signal(signal.SIGCONT)
            assert first["status"] == "running", first
            await until("2 model calls", 15, lambda: calls_above(tmp_path, base + 1))
            cancelled = await call(b, "cancel_session", {"session_id": sid})

            async def ended() -> dict[str, Any] | None:
                status = await call(b, "session_status", {"session_id": sid})
                return status if status["status"] != "running" else None

            status = cancelled if cancelled["status"] != "running" else await until("the session to stop", 15, ended, 0.1)
            assert status["status"] == "cancelled", (cancelled, status, logs(servers))
            at_cancel = script_calls(tmp_path)

            async def workflow_ended() -> tuple[str, str | None] | None:
                row = await workflow_row(database, f"{sid}.leg0")
                return row if row is not None and row[0] not in ("PENDING", "ENQUEUED") else None

            try:
                row = await until("the session's workflow to end", 10, workflow_ended, 0.1)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {await workflow_row(database, f'{sid}.leg0')}; model calls after the cancel: "
                                     f"{script_calls(tmp_path) - at_cancel}\n{logs(servers)}") from None
            assert row == ("CANCELLED", "replica-a"), row
            await anyio.sleep(2.5)  # six of the script's 0.4 s calls, were anything still running it
            after = script_calls(tmp_path)
            statuses = {s: (await call(server, "session_status", {"session_id": sid}))["status"] for s, server in servers.items()}
            # at most the one call that was in flight when the cancel landed; then nothing, on either replica
            assert after - at_cancel <= 1, (f"{after - at_cancel} model calls in the 2.5 s after the session was cancelled (script entries "
                                            f"{at_cancel}..{after - 1} of {base + len(SLOW)}); statuses now {statuses}\n{logs(servers)}")
            assert statuses == {"replica-a": "cancelled", "replica-b": "cancelled"}
            assert await transcript(a, sid) == await transcript(b, sid)
        print(f"\nleg 2 of the paused session (continued through replica-b) ran on {continued_on}; the session cancelled through "
              f"replica-b made {after - at_cancel} model call(s) after the cancel")
