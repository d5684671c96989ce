"""A server process leaves what it holds once its engine is open out of the garbage collector's scans; a process
hosting other work (tests, the Python API) is left alone."""

from __future__ import annotations

import gc
from typing import Any, Iterator

import pytest

from server.service import SwarmService

pytestmark = pytest.mark.anyio


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # (this test process goes on collecting everything)


async def open_engine(settings: Any, freeze: bool | None) -> None:
    service = SwarmService(settings)
    if freeze is not None:
        service.freeze_on_open = freeze
    async with service.serving():
        await service.engine()


async def test_a_server_freezes_its_lifetime_objects_when_its_engine_opens(settings: Any, unfrozen: None) -> None:
    """Before: each full collection walked the ~200,000 objects a server holds for its lifetime (~70 ms), now and then
    in the middle of a session's call (the slow tail of resume latency)."""
    await open_engine(settings, True)
    assert gc.get_freeze_count() > 50_000  # modules, classes, the engine


async def test_a_service_in_a_process_hosting_other_work_freezes_nothing(settings: Any, unfrozen: None) -> None:
    await open_engine(settings, None)  # the default
    assert gc.get_freeze_count() == 0


def test_the_serving_entry_points_turn_it_on() -> None:
    from server.app import build_server, process_server

    assert process_server(open_engine=None).swarm.freeze_on_open is True  # serve_stdio's and serve_http's server
    assert build_server().swarm.freeze_on_open is False
