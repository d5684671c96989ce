"""Test-wide fixtures: the guards (no network but loopback, no real model provider keys) and settings.

The fakes (scripted and function-driven models, a fake provider endpoint) are in tests/fakes.py."""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _loopback(address):
        raise ConnectionRefusedError(f"network guard: tests may only connect to loopback, not {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _loopback(address):
        raise ConnectionRefusedError(f"network guard: tests may only connect to loopback, not {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a non-loopback address (a real model provider) fails the test."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "SWARM_MCP_MODEL", "SWARM_MCP_DB", "SWARM_MCP_TOKEN"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from swarm.config import Settings

    # In-process engines run without DBOS unless SWARM_MCP_TEST_DURABLE=1 (then every such test runs durably).
    durable = os.environ.get("SWARM_MCP_TEST_DURABLE", "0")
    return Settings.from_env({"SWARM_MCP_HOME": str(tmp_path / "home"), "SWARM_MCP_DURABLE": durable})


@pytest.fixture
def left_to_collector() -> Iterator[Callable[[], list[Any]]]:
    """The cyclic garbage collector off while the test runs; the fixture's value, called, returns what of the objects
    unreachable now only a collection would free (kept in cycles), and frees them."""
    gc.collect()
    gc.disable()

    def collect() -> list[Any]:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            return list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    try:
        yield collect
    finally:
        gc.enable()
