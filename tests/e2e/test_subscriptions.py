"""Subscriptions only to resources that exist and that the caller may read, at most MAX_SUBSCRIPTIONS per connection
(2025-11-25 ``resources/subscribe``) or per listen stream (2026-07-28 ``subscriptions/listen``), released when the
connection ends: in memory, over streamable HTTP and over SSE."""

from __future__ import annotations

import gc
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST

from server.http import HttpSettings, build_app
from server.notify import MAX_SUBSCRIPTIONS
from tests.e2e.http_harness import HttpServer, connect_http, serve_in_thread
from tests.e2e.mcp_harness import connect, data, make_server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:resources/.*subscribe is removed")]

LISTS = ["swarm://sessions", "swarm://agents", "swarm://phases"]
GARBAGE = ["", "x", "not a uri", "file:///etc/passwd", "swarm://sessions/", "swarm://sessions//", "swarm://Sessions",
           "swarm://agents/", "swarm://phases/planning/x", "swarm://sessions/s_x/transcript/more", "swarm://sessions/s_x/notes",
           "https://example.com/", "swarm://" + "x" * 100_000]


def session_uris(sid: str) -> list[str]:
    return [f"swarm://sessions/{sid}", f"swarm://sessions/{sid}/transcript", f"swarm://sessions/{sid}/transcript.md"]


def kept(notifier: Any) -> int:
    """Subscriptions the server keeps now (the notifier's table: URI -> subscribed connections)."""
    return sum(len(connections) for connections in notifier._subscribers.values())


def live_request_sessions() -> int:
    """The SDK's per-request ``ServerSession`` proxies alive now."""
    from mcp.server.session import ServerSession

    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is ServerSession)


async def refused(call: Any) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await call
    return caught.value


async def own_and_foreign(server: Any, client: Any) -> tuple[str, str]:
    """A session of the caller (principal ``local``) and one of ``user:bob``."""
    mine = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship it?", "wait_seconds": 0}))["session_id"]
    engine = await server.swarm.engine()
    theirs = (await engine.create("bob's secret task", principal="user:bob")).id
    return mine, theirs


async def test_subscribe_takes_only_resources_that_exist_and_the_caller_may_read(settings: Any) -> None:
    server, _ = make_server(settings, [])
    notifier = server.swarm.notifier
    async with connect(server, "legacy") as client:
        mine, theirs = await own_and_foreign(server, client)
        accepted = [*LISTS, *session_uris(mine), "swarm://agents/engineer", "swarm://phases/planning"]
        for uri in accepted:
            await client.subscribe_resource(uri)
        assert kept(notifier) == len(accepted)

        for uri in [*session_uris(theirs), *session_uris("s_doesnotexist")]:  # foreign = unknown: what a read says
            error = await refused(client.subscribe_resource(uri))
            read = await refused(client.read_resource(uri))
            assert (error.error.code, error.error.message) == (read.error.code, read.error.message)
            assert error.error.code == INVALID_PARAMS and "unknown session id" in error.error.message
        foreign = (await refused(client.subscribe_resource(f"swarm://sessions/{theirs}"))).error.message
        missing = (await refused(client.subscribe_resource("swarm://sessions/s_0000000000000000"))).error.message
        assert foreign.replace(theirs, "<id>") == missing.replace("s_0000000000000000", "<id>")  # nothing tells them apart

        for uri in [f"swarm://sessions//{theirs}", f"swarm://sessions//{theirs}/transcript", *GARBAGE]:
            error = (await refused(client.subscribe_resource(uri))).error
            assert error.code == INVALID_PARAMS and "it names no swarm-mcp resource" in error.message, (uri, error)
            assert "swarm://sessions/<session_id>/transcript" in error.message and len(error.message) < 1000
        for uri, says in (("swarm://agents/nobody", "unknown agent 'nobody'"), ("swarm://phases/nothing", "unknown phase 'nothing'")):
            error = (await refused(client.subscribe_resource(uri))).error
            assert error.code == INVALID_PARAMS and says in error.message, error
        assert kept(notifier) == len(accepted)  # nothing refused was kept
    assert kept(notifier) == 0  # released with the connection


async def test_a_connection_holds_at_most_max_subscriptions(settings: Any) -> None:
    server, _ = make_server(settings, [])
    notifier = server.swarm.notifier
    engine = await server.swarm.engine()
    uris = list(LISTS)
    while len(uris) < MAX_SUBSCRIPTIONS + 1:
        uris += session_uris((await engine.create("a task", principal="local")).id)
    async with connect(server, "legacy") as client, connect(server, "legacy") as other:
        requests_before = live_request_sessions()
        for uri in uris[:MAX_SUBSCRIPTIONS]:
            await client.subscribe_resource(uri)
        # a subscription keeps its connection's channel, not the request's session (which pinned the whole request)
        assert live_request_sessions() - requests_before < 10
        error = (await refused(client.subscribe_resource(uris[MAX_SUBSCRIPTIONS]))).error
        assert error.code == INVALID_REQUEST and f"already has {MAX_SUBSCRIPTIONS} subscriptions" in error.message
        assert "resources/unsubscribe" in error.message
        await client.subscribe_resource(uris[0])  # subscribing again to a URI it holds is no new subscription
        await client.unsubscribe_resource(uris[0])
        await client.subscribe_resource(uris[MAX_SUBSCRIPTIONS])  # room again
        await other.subscribe_resource(uris[0])  # the cap is per connection
        assert kept(notifier) == MAX_SUBSCRIPTIONS + 1
    assert kept(notifier) == 0


async def test_listen_takes_only_readable_resources_and_at_most_max_subscriptions(settings: Any) -> None:
    server, _ = make_server(settings, [])
    async with connect(server, "auto") as client:
        mine, theirs = await own_and_foreign(server, client)
        async with client.listen(resource_subscriptions=[*LISTS, *session_uris(mine), "swarm://agents/engineer"]):
            pass
        for uri in session_uris(theirs):
            error = (await refused(_listen(client, [f"swarm://sessions/{mine}", uri]))).error
            assert error.code == INVALID_PARAMS and "unknown session id" in error.message, error
        for uri in [f"swarm://sessions//{theirs}", *GARBAGE]:
            error = (await refused(_listen(client, [uri]))).error
            assert error.code == INVALID_PARAMS and "it names no swarm-mcp resource" in error.message, (uri, error)
        too_many = [f"swarm://sessions/s_{i:016x}" for i in range(MAX_SUBSCRIPTIONS + 1)]
        error = (await refused(_listen(client, too_many))).error
        assert error.code == INVALID_PARAMS and f"at most {MAX_SUBSCRIPTIONS} resources" in error.message
    assert server.swarm.notifier.bus._listeners == {}  # every listen stream, taken or refused, left nothing behind


async def _listen(client: Any, uris: list[str]) -> None:
    with anyio.fail_after(10):
        async with client.listen(resource_subscriptions=uris):
            pass


# ---- over HTTP: released when the connection ends ------------------------------------------------------------------


@asynccontextmanager
async def served(settings: Any) -> AsyncIterator[tuple[HttpServer, Any]]:
    """The production HTTP app (build_app) over a scripted server, on uvicorn in a thread on 127.0.0.1."""
    mcp, _ = make_server(settings, [])
    async with serve_in_thread(build_app(mcp, HttpSettings())) as base:
        yield HttpServer(base=base, proc=None), mcp  # type: ignore[arg-type]


async def released(notifier: Any, timeout: float = 10.0) -> int:
    """Poll the subscription count until it is 0 (the server releases them once it sees the connection end)."""
    deadline = time.monotonic() + timeout
    while kept(notifier) and time.monotonic() < deadline:
        await anyio.sleep(0.05)  # polling the server's table, bounded by the deadline
    return kept(notifier)


@pytest.mark.parametrize("transport", ["http-2025", "sse"])
async def test_subscriptions_are_released_when_an_http_connection_ends(settings: Any, transport: str) -> None:
    with anyio.fail_after(90):
        async with served(settings) as (server, mcp):
            notifier = mcp.swarm.notifier
            async with connect_http(server, transport) as client:
                sid = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship?", "wait_seconds": 0}))["session_id"]
                for uri in [*LISTS, *session_uris(sid)]:
                    await client.subscribe_resource(uri)
                assert kept(notifier) == 6
            assert await released(notifier) == 0
