"""The provider SDKs' connection pools: a connection's readability check at the cost of one poll.

Each time a request starts or a response ends, httpcore's connection pool asks every idle connection whether the
server has closed it (``get_extra_info("is_readable")``). Its anyio streams answer by building their whole table of
socket attributes (a ``getpeername`` system call included) before they poll the socket: with 50 sessions in flight,
~30 such checks a request, ~10% of a busy server's main thread. ``CheapReadability`` wraps a pool's network backend
so that each connection keeps its socket and answers with the poll alone; everything else goes to the SDK's own
stream. httpcore has no public way to hand its pool a backend through httpx, hence ``fast_readability`` reaching for
``client._transport._pool._network_backend`` (tests/swarm/test_models_connections.py fails if that path goes away).
"""

from __future__ import annotations

import logging
import select
from typing import Any

log = logging.getLogger("swarm.models")


def readable(sock: Any) -> bool:
    """Whether a read on ``sock`` would return at once (data, or the end of a connection the server closed); a closed
    socket counts as readable, as httpcore counts it."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class CheapStream:
    """A connection's stream that answers ``is_readable`` by polling the socket it kept."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> "CheapStream":
        return CheapStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return readable(self._socket)
        return self._inner.get_extra_info(info)


class CheapReadability:
    """A connection pool's network backend whose streams are ``CheapStream``s."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> CheapStream:
        return CheapStream(await self.inner.connect_tcp(host, port, timeout=timeout, local_address=local_address, socket_options=socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> CheapStream:
        return CheapStream(await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def fast_readability(client: Any) -> bool:
    """Have the connection pools of ``client`` (an httpx client an SDK made) check idle connections with one poll;
    False (the client unchanged) where there is no ``select.poll`` or the client is not built the way it expects."""
    if not hasattr(select, "poll"):
        return False
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    pools = [getattr(t, "_pool", None) for t in transports if t is not None]
    if not pools or any(p is None or not hasattr(p, "_network_backend") for p in pools):
        log.debug("the HTTP client %s is not built as expected: its connection checks stay the SDK's", type(client).__name__)
        return False
    for pool in pools:
        if not isinstance(pool._network_backend, CheapReadability):
            pool._network_backend = CheapReadability(pool._network_backend)
    return True
