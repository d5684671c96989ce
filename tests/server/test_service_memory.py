"""A server process builds its agents' model clients and leaves what it holds once its engine is open out of the
garbage collector's scans, and runs the collector less often from its start; a process hosting other work (tests, the
Python API) is left alone."""

from __future__ import annotations

import dataclasses
import gc
from typing import Any, Iterator

import pytest

from server.service import SwarmService
from swarm.memory import COLLECTOR_THRESHOLDS

pytestmark = pytest.mark.anyio


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()  # (this test process goes on collecting everything, as often as before)
    gc.set_threshold(*thresholds)


async def open_engine(settings: Any, owns_process: bool | None) -> None:
    service = SwarmService(settings)
    if owns_process is not None:
        service.owns_process = owns_process
    async with service.serving():
        await service.engine()


async def test_a_server_freezes_its_lifetime_objects_when_its_engine_opens(settings: Any, unfrozen: None) -> None:
    """Before: each full collection walked the ~200,000 objects a server holds for its lifetime (~70 ms), now and then
    in the middle of a session's call (the slow tail of resume latency)."""
    await open_engine(settings, True)
    assert gc.get_freeze_count() > 50_000  # modules, classes, the engine


def test_serve_runs_the_collector_less_often_from_its_start(unfrozen: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: Python's default thresholds (700, 10, 10) spent 0.76 s of a server's ~6.5 s of CPU in collections under
    50 concurrent sessions (~90 middle collections, 9 full ones, in the middle of rounds), and ~4 full collections
    (~0.3 s) during its start's imports."""
    import server.app
    import server.cli

    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(server.app, "serve_stdio", lambda verbose=False: seen.append(gc.get_threshold()))
    gc.set_threshold(700, 10, 10)
    assert server.cli.main(["serve"]) == 0
    assert seen == [COLLECTOR_THRESHOLDS] and COLLECTOR_THRESHOLDS[0] >= 10 * 700


async def test_a_server_builds_its_agents_provider_clients_before_it_freezes(settings: Any, unfrozen: None) -> None:
    """The first session used to build them (and import their SDKs) after the freeze: ~225,000 objects every full
    collection then walked."""
    from swarm.models.factory import ModelFactory

    base = ModelFactory(dataclasses.replace(settings, model="openai:gpt-4o-mini"), env={"OPENAI_API_KEY": "sk-test-not-a-key"})
    service = SwarmService(settings, models=base)
    service.owns_process = True
    async with service.serving():
        engine = await service.engine()
        built = {agent for agent, spec in base._clients}
        assert built == set(engine.agents) and gc.get_freeze_count() > 50_000
        await base.aclose()


async def test_a_service_in_a_process_hosting_other_work_freezes_nothing(settings: Any, unfrozen: None) -> None:
    await open_engine(settings, None)  # the default
    assert gc.get_freeze_count() == 0


def test_the_serving_entry_points_turn_it_on() -> None:
    from server.app import build_server, process_server

    assert process_server(open_engine=None).swarm.owns_process is True  # serve_stdio's and serve_http's server
    assert build_server().swarm.owns_process is False
