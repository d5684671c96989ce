"""Tasks read from the session's transcript (swarm/tasks.py): how a task goes from working to input_required to its end,
that a later continue of the session does not change how it ended, that a change of grants is not a transition, who may
see it, its ttl, and listing a page at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import swarm.tasks as tasks_module
from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.errors import UnknownTaskError, UserInputError
from swarm.events import now
from swarm.models.scripted import Script
from swarm.session import PendingApproval
from swarm.status import Completed, Paused, Running, Waiting, transition
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.anyio


async def test_a_task_follows_its_session_to_the_first_stop_and_keeps_that_end(settings: Any) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        record = await engine.create("Do it", principal="ann")
        task = await engine.open_task(record.id, "ann", start_seq=record.last_seq, tool="copilot")
        assert (await engine.task(task.id, "ann")).phase == "working"

        await engine.store.save(record, [transition(record, Running())])
        await engine.store.save(record, [transition(record, Waiting(PendingApproval(id="q1", message="Which one?", options=["answer"], kind="question")))])
        state = await engine.task(task.id, "ann")
        assert state.phase == "input_required" and state.record.pending.id == "q1"

        await engine.store.save(record, [transition(record, Running())])  # answered: the same task goes on
        assert (await engine.task(task.id, "ann")).phase == "working"
        await engine.store.save(record, [transition(record, Completed("the answer"))])
        state = await engine.task(task.id, "ann")
        assert (state.phase, state.stop, state.current) == ("ended", "completed", True)
        assert state.updated_at >= task.created_at

        later = await engine.open_task(record.id, "ann", start_seq=record.last_seq, tool="continue_copilot")
        await engine.store.save(record, [transition(record, Running())])
        await engine.store.save(record, [transition(record, Paused("round limit"))])
        first, second = await engine.task(task.id, "ann"), await engine.task(later.id, "ann")
        assert (first.stop, first.current) == ("completed", False)  # the session went on since: its end stays
        assert (second.stop, second.current) == ("paused", True)


async def test_a_narrowing_of_grants_is_not_a_transition_and_others_cannot_see_the_task(settings: Any) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        record = await engine.create("Do it", principal="ann")
        await engine.store.save(record, [transition(record, Paused("round limit"))])
        task = await engine.open_task(record.id, "ann", start_seq=record.last_seq, tool="continue_copilot")
        await engine.admit(record.id, "ann", "remote")  # writes a status event naming the session's (paused) status
        assert (await engine.task(task.id, "ann")).phase == "working"
        with pytest.raises(UnknownTaskError):
            await engine.task(task.id, "bob")
        with pytest.raises(UserInputError):  # a task is opened only on the caller's own session
            await engine.open_task(record.id, "bob", start_seq=0, tool="copilot")


async def test_a_task_is_forgotten_after_its_ttl_and_tasks_are_listed_a_page_at_a_time(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        record = await engine.create("Do it", principal="ann")
        made = [await engine.open_task(record.id, "ann", start_seq=0, tool="copilot", ttl_ms=60_000) for _ in range(5)]
        short = await engine.open_task(record.id, "ann", start_seq=0, tool="copilot", ttl_ms=1_000)
        with pytest.raises(UserInputError):
            await engine.open_task(record.id, "ann", start_seq=0, tool="copilot", ttl_ms=0)

        seen: list[str] = []
        cursor = None
        while True:
            found, cursor = await engine.tasks.page("ann", cursor, limit=2)
            seen += [t.id for t in found]
            if cursor is None:
                break
        assert sorted(seen) == sorted([t.id for t in made] + [short.id]) and len(seen) == len(set(seen))
        assert (await engine.tasks.page("bob"))[0] == []
        with pytest.raises(UserInputError):
            await engine.tasks.page("ann", "not-a-cursor")

        later = now() + timedelta(seconds=2)
        monkeypatch.setattr(tasks_module, "now", lambda: later)
        with pytest.raises(UnknownTaskError):
            await engine.task(short.id, "ann")
        assert (await engine.task(made[0].id, "ann")).phase == "working"
        assert short.id not in [t.id for t in (await engine.tasks.page("ann"))[0]]


async def test_a_session_that_ends_while_its_task_is_read_shows_its_result(settings: Any) -> None:
    """The session completes (on another replica) between the reads that make up a task's state: the task must not end
    with the record from before (status running, no result). The task's record is read after its transcript."""
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        record = await engine.create("Do it", principal="ann")
        await engine.store.save(record, [transition(record, Running())])
        task = await engine.open_task(record.id, "ann", start_seq=record.last_seq, tool="copilot")
        store, finish = engine.store, transition
        real_tx = store._tx
        done = []

        async def tx_while_the_session_completes(op: Any, *args: Any, **kw: Any) -> Any:
            if not done and getattr(op, "__module__", "") == "swarm.tasks":  # the transcript's read: the other replica commits the end now
                done.append(True)
                other = await store.get_session(record.id)
                await store.save(other, [finish(other, Completed("the answer"))])
            return await real_tx(op, *args, **kw)

        held = await engine.tasks.get(task.id, "ann")
        store._tx = tx_while_the_session_completes  # type: ignore[method-assign]
        try:
            state = await engine.tasks.state(held)
        finally:
            del store._tx
        assert (state.phase, state.stop, state.current) == ("ended", "completed", True)
        assert (state.record.status, state.record.result) == ("completed", "the answer")
