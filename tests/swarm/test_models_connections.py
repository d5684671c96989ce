"""The provider SDKs' connection pools check an idle connection with one poll, and still see a closed one."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

from swarm.models import connections
from swarm.models.connections import CheapReadability, fast_readability
from swarm.models.providers import shared_http_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_each_sdks_shared_client_checks_connections_with_one_poll(kind: str) -> None:
    """Fails if the SDKs' httpx clients stop being built the way fast_readability reaches into (then the checks would
    silently go back to building anyio's whole attribute table, getpeername included, for every idle connection)."""
    client = shared_http_client(kind)
    try:
        assert isinstance(client._transport._pool._network_backend, CheapReadability)
    finally:
        await client.aclose()


async def test_a_connection_is_checked_without_getpeername_and_seen_closed_when_the_server_closes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai import DefaultAsyncHttpxClient

    peeked: list[int] = []
    original = socket.socket.getpeername

    def counting(self: socket.socket) -> Any:
        peeked.append(self.fileno())
        return original(self)

    accepted: list[Any] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client = DefaultAsyncHttpxClient()
    assert fast_readability(client) and fast_readability(client)  # (a second call wraps nothing twice)
    backend = client._transport._pool._network_backend
    assert isinstance(backend, CheapReadability) and not isinstance(backend.inner, CheapReadability)
    async with anyio.create_task_group() as tg:
        async def keep(stream: Any) -> None:
            accepted.append(stream)
            await anyio.sleep_forever()

        tg.start_soon(listener.serve, keep)
        with anyio.fail_after(10):
            stream = await backend.connect_tcp("127.0.0.1", port)
            while not accepted:
                await anyio.sleep(0.01)
            monkeypatch.setattr(socket.socket, "getpeername", counting)
            assert stream.get_extra_info("is_readable") is False  # idle, open
            assert peeked == []  # (anyio's own answer calls getpeername every time)
            monkeypatch.undo()
            await accepted[0].aclose()  # the server closes it: the next check must see it
            while not stream.get_extra_info("is_readable"):
                await anyio.sleep(0.01)
        assert stream.get_extra_info("server_addr")[1] == port  # everything else is the SDK stream's answer
        await stream.aclose()
        tg.cancel_scope.cancel()
    await client.aclose()


def test_where_there_is_no_poll_the_client_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai import DefaultAsyncHttpxClient

    monkeypatch.delattr(connections.select, "poll")
    client = DefaultAsyncHttpxClient()
    assert fast_readability(client) is False
    assert not isinstance(client._transport._pool._network_backend, CheapReadability)
