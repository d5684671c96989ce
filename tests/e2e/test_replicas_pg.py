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
import time
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import mcp_types as types
import pytest

from tests.e2e.http_harness import HttpServer, connect_http, script_calls, serve_env, serve_process
from tests.e2e.http_harness import logged_indices as logged  # the script indices of the calls (both replicas log to one file)
from tests.e2e.mcp_harness import Recorder, data

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


async def session_row(db_url: str, session_id: str) -> tuple[str, int] | None:
    """``(status, last_seq)`` of a session in the shared store (the engine's ``sessions`` table)."""
    conn = await asyncpg.connect(_asyncpg_dsn(make_url(db_url)))
    try:
        row = await conn.fetchrow("select status, last_seq from sessions where id = $1", session_id)
    finally:
        await conn.close()
    return None if row is None else (row["status"], row["last_seq"])


# ---- replicas: the http_harness server, keeping the Popen for a SIGKILL ------------------------


@asynccontextmanager
async def replica(tmp_path: Path, env: dict[str, str], executor_id: str) -> AsyncIterator[HttpServer]:
    """A replica with ``SWARM_MCP_EXECUTOR_ID=executor_id``: ready means its durable engine is launched (heartbeats,
    dequeues, takes over). Its stderr ends up in ``<tmp_path>/<executor_id>.stderr``."""
    async with serve_process(tmp_path, {**env, "SWARM_MCP_EXECUTOR_ID": executor_id}, name=executor_id) as server:
        yield server


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


async def start_on_a(servers: dict[str, HttpServer], db_url: str, args: dict[str, Any]) -> dict[str, Any]:
    """``copilot(**args, wait_seconds=0)`` through replica-a, run by replica-a: replica-b is stopped (SIGSTOP) while the
    session is enqueued, so that A dequeues it and B holds neither its run nor its workflow (well under the 2 s
    takeover: A does not presume B dead). Returns the copilot call's result."""
    b = servers["replica-b"]
    b.proc.send_signal(signal.SIGSTOP)
    try:
        first = await call(servers["replica-a"], "copilot", {**args, "wait_seconds": 0})
        sid = first["session_id"]

        async def on_a() -> bool:
            return await workflow_row(db_url, f"{sid}.leg0") == ("PENDING", "replica-a")

        await until("replica-a to dequeue the session's leg", 1.5, on_a, 0.02)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    return first


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
TOLD = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "text": "A plan in five steps.", "delay": 3},  # in flight on A while B passes on the message
    {"agent": "planner", "expect": "in one line", "text": "The plan in one line."},
]
SLOW = [{"agent": a, "handoff": t, "delay": 0.4} for a, t in HOPS] + [{"agent": "researcher", "text": "Never reached.", "delay": 0.4}]


async def test_replicas_share_sessions(tmp_path: Path, database: str) -> None:
    with anyio.fail_after(80):
        async with two_replicas(tmp_path, database, READ + CONTINUED + TOLD + SLOW) as servers:
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

            # a session running on A, given a message through B: A's run takes it when its rounds end
            base = script_calls(tmp_path)
            first = await start_on_a(servers, database, {"task": "Plan and write a report in three steps"})
            sid = first["session_id"]
            await until("the first model call", 15, lambda: calls_above(tmp_path, base))
            queued = await call(b, "continue_copilot", {"session_id": sid, "message": "Now say it in one line", "wait_seconds": 0})
            assert queued["status"] == "running" and queued["live"] is True, queued
            done = await call(b, "continue_copilot", {"session_id": sid, "wait_seconds": 30})
            assert done["status"] == "completed" and done["result"] == "The plan in one line.", (done, logs(servers))
            assert await workflow_row(database, f"{sid}.leg0") == ("SUCCESS", "replica-a")
            assert await workflow_row(database, f"{sid}.leg1") is None  # taken by the running leg: no second run
            assert logged(tmp_path)[-len(TOLD):] == list(range(base, base + len(TOLD)))

            # a session started through A and running there, cancelled through B
            base = script_calls(tmp_path)
            first = await start_on_a(servers, database, {"task": "Plan and write a report in three steps"})
            sid = first["session_id"]
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


# ---- resource-updated notifications across replicas ---------------------------------------------

HEARD = "Heard of on the other replica."
WATCHED = [{"agent": a, "handoff": t, "delay": 0.3} for a, t in HOPS] + [{"agent": "researcher", "text": HEARD, "delay": 0.3}]
ERAS = ("2025-11-25", "2026-07-28")


class Heard(Recorder):
    """What replica-b's clients heard about one resource: each ``notifications/resources/updated`` of ``uri`` on the
    2025-11-25 client's subscription and each listen event of ``uri`` on the 2026-07-28 client's stream, with the
    session's ``(status, last_seq)`` in the shared store read as it arrived: "heard while the session was running" and
    "heard after it completed" need no clock."""

    def __init__(self, db_url: str, session_id: str, uri: str) -> None:
        super().__init__()
        self.db_url, self.session_id, self.uri = db_url, session_id, uri
        self.heard: list[tuple[str, str, int]] = []
        """``(era, status, last_seq)``, in the order heard."""
        self._news = anyio.Event()

    async def on_message(self, message: Any) -> None:
        await super().on_message(message)
        if isinstance(message, types.ResourceUpdatedNotification) and str(message.params.uri) == self.uri:
            await self.note("2025-11-25")

    async def note(self, era: str) -> None:
        row = await session_row(self.db_url, self.session_id)
        assert row is not None
        self.heard.append((era, *row))
        self._news.set()
        self._news = anyio.Event()

    async def wait_for(self, era: str, status: str, seconds: float) -> None:
        """Until an update heard on ``era`` arrived while the session was ``status`` in the store; fail after ``seconds``."""
        with anyio.move_on_after(seconds):
            while not any(e == era and s == status for e, s, _ in self.heard):
                await self._news.wait()
            return
        raise AssertionError(f"timed out after {seconds} s: no {era} update of {self.uri} heard on replica-b while the session "
                             f"was {status}; heard (era, status, last_seq): {self.heard}")


async def test_a_subscriber_on_another_replica_hears_of_the_session(tmp_path: Path, database: str) -> None:
    """A session runs on replica-a; clients of replica-b (a 2025-11-25 resources/subscribe, a 2026-07-28
    subscriptions/listen) hear of its transcript while it runs and once it completed (replica-b's watch of the shared
    store: nothing runs it there)."""
    with anyio.fail_after(80):
        async with two_replicas(tmp_path, database, WATCHED) as servers:
            a, b = servers["replica-a"], servers["replica-b"]
            first = await start_on_a(servers, database, {"task": "Plan and write a report in three steps"})
            sid, uri = first["session_id"], first["transcript_uri"]
            assert first["status"] == "running" and uri == f"swarm://sessions/{sid}/transcript", first
            heard = Heard(database, sid, uri)
            async with connect_http(b, "http-2025", heard) as subscriber, connect_http(b, "http-2026") as listener:
                await subscriber.subscribe_resource(uri)
                async with listener.listen(resource_subscriptions=[uri]) as subscription, anyio.create_task_group() as tg:
                    assert uri in (subscription.honored.resource_subscriptions or []), subscription.honored

                    async def follow() -> None:
                        async for event in subscription:
                            if getattr(event, "uri", None) == uri:
                                await heard.note("2026-07-28")

                    tg.start_soon(follow)
                    subscribed = await session_row(database, sid)
                    assert subscribed is not None and subscribed[0] == "running", \
                        f"the session ended before replica-b's clients subscribed ({subscribed}): slow the script down"
                    try:
                        for era in ERAS:
                            await heard.wait_for(era, "running", 10)
                        for era in ERAS:
                            await heard.wait_for(era, "completed", 20)
                    except AssertionError as exc:
                        raise AssertionError(f"{exc}\n{logs(servers)}") from None
                    tg.cancel_scope.cancel()
            status = await call(b, "session_status", {"session_id": sid})
            assert (status["status"], status["result"], status["live"]) == ("completed", HEARD, False), status
            events = await transcript(b, sid)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["type"] == "status" and events[-1]["content"]["status"] == "completed", events[-1]
            final = {(era, seq) for era, s, seq in heard.heard if s == "completed"}
            assert final == {(era, len(events)) for era in ERAS}, heard.heard  # by then the store held the whole transcript
            assert events == await transcript(a, sid)
            assert await workflow_row(database, f"{sid}.leg0") == ("SUCCESS", "replica-a")  # run by A, start to end
        assert logged(tmp_path) == list(range(len(WATCHED)))
        print(f"\nreplica-b's clients heard (era, status, last_seq) while replica-a ran {sid}: {heard.heard}")


async def test_a_task_made_on_one_replica_is_followed_to_its_end_on_the_other(tmp_path: Path, database: str) -> None:
    """An MCP task (2026-07-28) is a session seen through the tasks protocol: replica-b answers tasks/get for a task
    replica-a made, while the work goes on wherever it runs, up to the tool's result inline; a cancel through replica-b
    of another task stops it on replica-a."""
    from tests.e2e.test_mcp_tasks import Modern

    script = [{"agent": "copilot_control", "handoff": "researcher", "delay": 0.2}, {"agent": "researcher", "text": "Done on a replica.", "delay": 0.2}]
    script += [{"agent": "copilot_control", "hang": True}]
    with anyio.fail_after(80):
        async with two_replicas(tmp_path, database, script) as servers:
            a, b = Modern(servers["replica-a"].url), Modern(servers["replica-b"].url)
            handle = await a.request("tools/call", {"name": "copilot", "arguments": {"task": "Say it from a replica"}})
            done = await b.poll(handle["taskId"], timeout=60)
            assert done["status"] == "completed", done
            assert done["result"]["structuredContent"]["result"] == "Done on a replica."
            hung = await a.request("tools/call", {"name": "copilot", "arguments": {"task": "Think forever"}})
            while not logged(tmp_path)[2:]:  # its model call is in flight somewhere
                await anyio.sleep(POLL)
            assert (await b.request("tasks/cancel", {"taskId": hung["taskId"]}))["resultType"] == "complete"
            stopped = await a.poll(hung["taskId"], timeout=30)
            assert stopped["status"] == "cancelled", stopped
