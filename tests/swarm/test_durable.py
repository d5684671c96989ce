"""Sessions run as DBOS workflows (in this process, SQLite): legs are workflows, rounds commit to the store (the
workflows of earlier versions, whose rounds were steps, still recover with them)."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest
from dbos import DBOS, SetWorkflowID

from phases import phase_tool_registry
from swarm.durable import session_work, workflow_id
from swarm.engine import Engine
from swarm.errors import UserInputError
from swarm.models.scripted import Script
from tests.fakes import GatedModels, ScriptedModels

pytestmark = pytest.mark.anyio

SCRIPT = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "text": "Threads share memory; processes do not."},
]


def durable(settings: Any, **kw: Any) -> Any:
    return dataclasses.replace(settings, durable=True, **kw)


def round_steps(steps: list[dict[str, Any]]) -> list[str]:
    return [s["function_name"] for s in steps if s["function_name"].startswith("round-")]


async def test_a_session_runs_as_a_workflow_whose_rounds_are_not_steps(settings: Any) -> None:
    script = Script(SCRIPT)
    async with Engine(durable(settings, executor_id="test-a"), tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        assert engine.durable.executor_id == "test-a"
        record = await engine.create("Explain processes and threads, step by step", max_rounds=2)
        updates: list[int] = []

        async def on_update(rec: Any, events: list[Any]) -> None:
            updates.append(rec.total_rounds)

        record = await engine.run(record.id, on_update=on_update)
        assert record.status == "paused" and record.total_rounds == 2
        assert updates[-1] == 2 and 1 in updates  # rounds reached the caller as they committed
        steps = await DBOS.list_workflow_steps_async(workflow_id(record.id, 0))
        # A round is one store transaction, not also two of DBOS's; the status is the store's, not also a workflow event.
        assert [s["function_name"] for s in steps] == ["DBOS.recv", "DBOS.sleep"]  # (looking for input sent meanwhile)

        record = await engine.run(record.id, message="go on")  # a continue is the next leg: a new workflow
        assert record.status == "completed" and record.total_rounds == 4
        steps = await DBOS.list_workflow_steps_async(workflow_id(record.id, 1))
        assert round_steps(steps) == []
        status = await DBOS.get_workflow_status_async(workflow_id(record.id, 1))
        assert status is not None and status.status == "SUCCESS"
        script.assert_exhausted()
        events = await engine.transcript(record.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        with pytest.raises(UserInputError, match="completed"):
            await engine.run(record.id)


async def test_a_leg_started_as_an_earlier_version_did_keeps_its_rounds_as_steps(settings: Any) -> None:
    """Workflows pending from a version whose rounds were DBOS steps (``swarm.session_work``) replay with the same
    steps: their recorded steps and the replay line up. The session's next leg runs as this version's workflow."""
    script = Script(SCRIPT)
    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Explain processes and threads, step by step", max_rounds=2)
        record = await engine.runner.prepare(record.id)
        with SetWorkflowID(engine.workflow_of(record)), anyio.fail_after(30):
            handle = await DBOS.start_workflow_async(session_work, "copilot", record.id)
            assert (await handle.get_result())["status"] == "paused"
        assert [s["function_name"] for s in await DBOS.list_workflow_steps_async(workflow_id(record.id, 0))] == [
            "DBOS.setEvent", "round-1", "round-2", "DBOS.recv", "DBOS.sleep", "DBOS.setEvent"]
        assert await DBOS.get_event_async(workflow_id(record.id, 0), "status") == "paused"
        with anyio.fail_after(30):
            record = await engine.run(record.id, message="go on")
        assert record.status == "completed" and record.total_rounds == 4
        assert round_steps(await DBOS.list_workflow_steps_async(workflow_id(record.id, 1))) == []
        script.assert_exhausted()
        events = await engine.transcript(record.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_leg_recovered_after_its_rounds_committed_repeats_nothing(settings: Any) -> None:
    script = Script(SCRIPT)
    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        assert engine.durable.executor_id == "local"
        record = await engine.create("Explain processes and threads, step by step")
        record = await engine.run(record.id)
        assert record.status == "completed"
        before = len(await engine.transcript(record.id))
        # Running the same leg's body again (as a recovery would) changes nothing and calls no model.
        again = await engine.runner.run_leg(record.id, 0)
        assert again.status == "completed" and len(await engine.transcript(record.id)) == before
        script.assert_exhausted()


async def test_a_second_durable_engine_in_one_process_is_refused(settings: Any, tmp_path: Any) -> None:
    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(Script([]))):
        other = dataclasses.replace(settings, durable=True, home=tmp_path / "other", db_url=f"sqlite:///{tmp_path / 'other.db'}")
        with pytest.raises(Exception, match="already running in this process"):
            async with Engine(other, tools=phase_tool_registry(), models=ScriptedModels(Script([]))):
                pass


async def test_a_leg_that_failed_in_its_first_round_runs_again_as_a_new_workflow(settings: Any) -> None:
    script = Script([{"agent": "copilot_control", "error": "auth"}, {"agent": "copilot_control", "text": "Hello."}])
    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Say hello")
        record = await engine.run(record.id)
        assert record.status == "failed" and "401" in (record.error or "")
        with anyio.fail_after(30):
            record = await engine.run(record.id)  # the key was fixed: the same leg again, as a workflow of its own
        assert record.status == "completed" and record.result == "Hello." and len(record.legs) == 1
        first = await DBOS.get_workflow_status_async(workflow_id(record.id, 0))
        again = await DBOS.get_workflow_status_async(workflow_id(record.id, 0, 1))
        assert first is not None and again is not None and again.status == "SUCCESS"
        script.assert_exhausted()


async def run_sending_midway(engine: Any, models: GatedModels, session_id: str, message: str) -> tuple[Any, str, str]:
    """Run the session; while its first model call is in flight, send it ``message``. Returns what the run returned,
    the input's id and how its delivery ended."""
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def first() -> None:
                results.append(await engine.run(session_id))

            tg.start_soon(first)
            await models.reached[0].wait()  # the session's first round is in flight
            input_id = await engine.durable.inputs.send(session_id, message)
            models.gates[0].set()
        delivery = await (await DBOS.retrieve_workflow_async(f"{session_id}.input.{input_id}")).get_result()
    return results[0], input_id, delivery


async def test_a_message_sent_while_the_session_runs_is_taken_by_its_leg_when_its_rounds_end(settings: Any) -> None:
    script = Script([
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "text": "6 * 7 = 42."},
        {"agent": "engineer", "expect": "negative numbers", "text": "-6 * 7 = -42 as well."},
    ])
    models = GatedModels(script, {0: anyio.Event()})  # the first model call waits for the test
    async with Engine(durable(settings), tools=phase_tool_registry(), models=models) as engine:
        record = await engine.create("Compute six times seven")
        done, input_id, delivery = await run_sending_midway(engine, models, record.id, "Show that it works for negative numbers too")
        assert done.status == "completed" and done.result == "-6 * 7 = -42 as well."  # the first caller saw it through
        assert delivery == "taken" and len(done.legs) == 2
        assert done.legs[1].workflow == workflow_id(record.id, 0) and done.legs[1].input_id == input_id
        steps = [s["function_name"] for s in await DBOS.list_workflow_steps_async(workflow_id(record.id, 0))]
        assert "take-input" in steps and not [s for s in steps if s.startswith("round-")]
        assert await DBOS.get_workflow_status_async(workflow_id(record.id, 1)) is None  # no second workflow
        events = await engine.transcript(record.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert any(e.type == "message" and e.agent == "user" and "negative" in e.content["text"] for e in events)
        script.assert_exhausted()


async def test_a_message_sent_as_the_legs_rounds_end_is_taken_by_that_leg_once(settings: Any) -> None:
    """Input sent after a leg's rounds ended (the session's status says completed) but before its workflow looked for
    input: the delivery took the session for stopped and opened a next leg of its own, whose workflow found the first
    leg's still executing ("already running") while that leg took the same input from its inbox."""
    script = Script([
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "text": "6 * 7 = 42."},
        {"agent": "engineer", "expect": "negative numbers", "text": "-6 * 7 = -42 as well."},
    ])
    held, release = anyio.Event(), anyio.Event()

    async def hold_at_the_end(rec: Any, events: list[Any]) -> None:
        if rec.status == "completed" and not held.is_set():  # saved; the leg's workflow has not looked for input yet
            held.set()
            await release.wait()

    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Compute six times seven")
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                results: list[Any] = []

                async def first() -> None:
                    results.append(await engine.run(record.id, on_update=hold_at_the_end))

                tg.start_soon(first)
                await held.wait()
                assert (await engine.store.get_session(record.id)).status == "completed"
                input_id = await engine.durable.inputs.send(record.id, "Show that it works for negative numbers too")
                delivery = DBOS.retrieve_workflow_async(f"{record.id}.input.{input_id}")
                release.set()
            delivery = await (await delivery).get_result()
        assert delivery == "taken"
        done = await engine.store.get_session(record.id)
        assert done.status == "completed" and done.result == "-6 * 7 = -42 as well." and len(done.legs) == 2
        assert done.legs[1].workflow == workflow_id(record.id, 0) and done.legs[1].input_id == input_id
        events = await engine.transcript(record.id)
        assert [e.content["text"] for e in events if e.type == "message" and e.agent == "user"][1:] == [
            "Show that it works for negative numbers too"]
        script.assert_exhausted()


async def test_a_message_its_leg_ended_without_taking_starts_the_next_leg(settings: Any) -> None:
    script = Script([
        {"agent": "copilot_control", "error": "auth"},  # the leg fails: a failed leg takes no input
        {"agent": "copilot_control", "expect": "try again", "text": "Hello."},
    ])
    models = GatedModels(script, {0: anyio.Event()})  # the first model call waits for the test
    async with Engine(durable(settings), tools=phase_tool_registry(), models=models) as engine:
        record = await engine.create("Say hello")
        _, input_id, delivery = await run_sending_midway(engine, models, record.id, "The key is fixed: try again")
        first_leg = await (await DBOS.retrieve_workflow_async(workflow_id(record.id, 0))).get_result()
        assert first_leg == {"status": "failed", "taken": []}
        assert delivery == "started"
        with anyio.fail_after(30):
            record = await engine.durable.watch(record.id)
        assert record.status == "completed" and record.result == "Hello."
        assert record.legs[-1].input_id == input_id and record.legs[-1].workflow is None
        script.assert_exhausted()


async def test_an_empty_message_for_a_running_session_is_refused(settings: Any) -> None:
    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        record = await engine.create("Say hello")
        with pytest.raises(UserInputError, match="empty"):
            await engine.durable.inputs.send(record.id, "  ")
        with pytest.raises(UserInputError, match="max_rounds"):
            await engine.durable.inputs.send(record.id, "go on", max_rounds=0)


async def test_cancel_stops_a_run_whose_workflow_is_queued_here_but_not_yet_executing(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between a run's workflow being started and its body registering as executing here, a cancel used to be taken
    for another replica's run: it cancelled the workflow, found nobody executing it and answered "requested" - and
    nobody ever recorded the session cancelled (it stayed running for good)."""
    from swarm.durable import DurableRuns

    release = anyio.Event()
    held = anyio.Event()
    execute = DurableRuns.execute

    async def held_execute(self: Any, kind: str, session_id: str) -> Any:
        held.set()
        await release.wait()
        return await execute(self, kind, session_id)

    monkeypatch.setattr(DurableRuns, "execute", held_execute)
    async with Engine(durable(settings, executor_id="test-window"), tools=phase_tool_registry(), models=ScriptedModels(Script(SCRIPT))) as engine:
        record = await engine.create("Explain processes and threads")
        with anyio.fail_after(30):
            await engine.live.start(engine, record.id, principal="local",
                                    go=lambda on_update, local: engine.go_on(record.id, on_update=on_update, local=local))
            await held.wait()  # the leg's workflow is dequeued here; its body has not begun
            cancelled, how = await engine.cancel_session(record.id, grace=2.0)
            assert (cancelled.status, how) == ("cancelled", "recorded"), (cancelled.status, how)
            release.set()  # the held body now finds the session cancelled and plays nothing
            run = engine.live.get(record.id)
            if run is not None and run.task is not None:
                await run.task
    async with Engine(durable(settings, executor_id="test-window"), tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        assert (await engine.get(record.id)).status == "cancelled"


async def test_a_burst_of_runs_starts_no_more_here_than_the_free_slots(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """SWARM_MCP_CONCURRENCY runs start in this process at once; the rest go to the shared queue. A burst of calls used
    to start every run here: each one found the slots free, since no run's body had begun executing yet."""
    from swarm.durable import DurableRuns

    release = anyio.Event()
    execute = DurableRuns.execute
    started: list[tuple[str, bool]] = []
    start = DurableRuns._start
    all_started = anyio.Event()

    async def held_execute(self: Any, kind: str, session_id: str) -> Any:
        await release.wait()
        return await execute(self, kind, session_id)

    async def counted_start(self: Any, kind: str, session_id: str, key: str, local: bool) -> Any:
        handle = await start(self, kind, session_id, key, local)
        started.append((session_id, local))
        if len(started) == 5:
            all_started.set()
        return handle

    monkeypatch.setattr(DurableRuns, "execute", held_execute)
    monkeypatch.setattr(DurableRuns, "_start", counted_start)
    async with Engine(durable(settings, executor_id="test-slots", concurrency=2), tools=phase_tool_registry(),
                      models=ScriptedModels(Script([]))) as engine:
        records = [await engine.create(f"task {i}") for i in range(5)]
        with anyio.fail_after(30):
            for record in records:
                await engine.live.start(engine, record.id, principal="local",
                                        go=lambda on_update, local, sid=record.id: engine.go_on(sid, on_update=on_update, local=local))
            await all_started.wait()
            assert sorted(local for _, local in started) == [False, False, False, True, True], started
            assert len(engine.durable._starting) == 2  # the two started here hold their slots until their bodies execute
            release.set()
            for record in records:
                await engine.cancel_session(record.id, grace=2.0)
            for record in records:
                run = engine.live.get(record.id)
                if run is not None and run.task is not None:
                    await run.task


async def test_a_start_that_executes_nothing_here_holds_no_slot(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DBOS answers the start of a workflow that exists already (ended, or running elsewhere) with a handle that only
    polls: nothing executes here, so the slot taken for it is given back at once (else it stayed taken for good)."""
    from swarm.durable import DurableRuns

    class Polling:
        workflow_id = "elsewhere"

    async def start_elsewhere(self: Any, kind: str, session_id: str, key: str, local: bool) -> Any:
        return Polling()

    async with Engine(durable(settings, executor_id="test-no-slot", concurrency=1), tools=phase_tool_registry(),
                      models=ScriptedModels(Script([]))) as engine:
        monkeypatch.setattr(DurableRuns, "_start", start_elsewhere)
        record = await engine.create("a task")
        await engine.durable.enqueue(record)
        assert engine.durable._starting == set()


async def test_the_sqlite_system_database_is_not_pinged_for_every_call(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DBOS tests a pooled connection with ``SELECT 1`` each time it takes one (its default, for servers that drop
    connections): on a SQLite file that was a query more for every one of its calls."""
    from sqlalchemy.engine.default import DefaultDialect

    pings: list[str] = []
    real = DefaultDialect.do_ping

    def counted(self: DefaultDialect, dbapi_connection: Any) -> bool:
        pings.append(self.name)
        return real(self, dbapi_connection)

    monkeypatch.setattr(DefaultDialect, "do_ping", counted)
    async with Engine(durable(settings), tools=phase_tool_registry(), models=ScriptedModels(Script(SCRIPT))) as engine:
        record = await engine.create("Explain processes and threads, step by step")
        with anyio.fail_after(30):
            record = await engine.run(record.id)
        assert record.status == "completed" and record.total_rounds == 4
    assert pings == []


async def test_the_heartbeat_finds_runs_cancelled_elsewhere_with_one_read(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel made on another replica reaches a run here through the heartbeat's sweep (rounds are not DBOS steps,
    which used to notice it). The sweep read each run's workflow on its own: two reads a run every second."""
    from swarm import durable as durable_module

    script = Script([{"agent": "copilot_control", "text": "Done."} for _ in range(3)])
    gate = anyio.Event()
    models = GatedModels(script, {0: gate})  # every session's first model call waits for the test (none ends before)
    async with Engine(durable(settings), tools=phase_tool_registry(), models=models) as engine:
        records = [await engine.create(f"Say it {i}") for i in range(3)]
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for record in records:
                    tg.start_soon(engine.run, record.id)
                await models.reached[0].wait()
                while len(engine.live.executing()) < 3:  # all three run here
                    await anyio.sleep(0.01)
                cancelled = records[1]
                await DBOS.cancel_workflow_async(workflow_id(cancelled.id, 0))  # as another replica's cancel_session does
                reads: list[list[str]] = []
                interrupted: list[str] = []
                real_list = DBOS.list_workflows_async

                async def listing(**kwargs: Any) -> Any:
                    reads.append(kwargs["workflow_ids"])
                    return await real_list(**kwargs)

                monkeypatch.setattr(DBOS, "list_workflows_async", listing)
                monkeypatch.setattr(engine.live, "interrupt", lambda sid, reason, note=None: interrupted.append(sid) or True)
                await engine.durable._stop_cancelled()
                monkeypatch.undo()
                assert interrupted == [cancelled.id]
                assert len(reads) == 1 and len(reads[0]) == durable_module.SWEEP_BATCH  # padded: one statement shape
                assert set(reads[0]) == {workflow_id(r.id, 0) for r in records}
                gate.set()
        statuses = {r.id: (await engine.get(r.id)).status for r in records}
        assert statuses[records[0].id] == statuses[records[2].id] == "completed"
