"""The process's registry of live runs (swarm/live.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from typing import Any, Callable

import anyio
import pytest

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.live import LiveRun
from tests.fakes import FunctionModels, handoff

pytestmark = pytest.mark.anyio


def hand_off_or_answer(messages: Any, agent: str, tools: list[str]) -> Any:
    transfers = [t for t in tools if t.startswith("transfer_to_")]
    return handoff(transfers[0].removeprefix("transfer_to_")) if agent == "copilot_control" and transfers else "done"


@pytest.mark.parametrize("durable", [False, True], ids=["inline", "durable"])
async def test_a_run_that_ended_is_freed_without_the_garbage_collector(settings: Any, durable: bool,
                                                                       left_to_collector: Callable[[], list[Any]]) -> None:
    """A run's task runs in a context that holds the run (``current_run``), and the run holds that task (``task``) and
    the task its work executed in (``ended_by``: a durable workflow's, or the run's own): each ended run stayed in
    memory, with its record and recent events, until a full collection of the garbage collector, which in a server
    comes rarely (every ~55 legs in bench_paused_rss)."""
    settings = dataclasses.replace(settings, durable=durable)
    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(hand_off_or_answer)) as engine:
        record = await engine.create("Summarise the report", max_rounds=1)
        with anyio.fail_after(60):
            run = await engine.live.start(engine, record.id, principal="local",
                                          go=lambda on_update, local: engine.go_on(record.id, on_update=on_update, local=local))
            assert (await run.task).status == "paused"
        freed = asyncio.Event()
        weakref.finalize(run, asyncio.get_running_loop().call_soon_threadsafe, freed.set)
        del run
        try:
            # (its last holder may be a call of DBOS's still running on a thread in the run's context: a poll, 0.25 s)
            with anyio.fail_after(10):
                await freed.wait()
        except TimeoutError:
            cycles = sum(isinstance(o, LiveRun) for o in left_to_collector())
            pytest.fail(f"the ended run is still in memory; {cycles} run(s) only a garbage collection would free")
