"""The session run loop with a scripted model: hand-offs, stops, usage, errors."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import pytest

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.errors import UnknownSessionError, UserInputError
from swarm.models.scripted import Script
from tests.fakes import FunctionModels, ScriptedModels, handoff

pytestmark = pytest.mark.anyio


async def run_script(settings: Any, entries: list[dict], task: str, capable: bool = True, **kw: Any) -> tuple[Engine, Any, Script]:
    script = Script(entries)
    engine = Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script, capable=capable))
    await engine.store.open()
    record = await engine.create(task, **kw)
    record = await engine.run(record.id)
    return engine, record, script


async def test_handoffs_between_agents_reach_the_final_answer(settings: Any) -> None:
    engine, record, script = await run_script(settings, [
        {"agent": "copilot_control", "handoff": "planner"},
        {"agent": "planner", "handoff": "controller"},
        {"agent": "controller", "handoff": "researcher"},
        {"agent": "researcher", "text": "Threads share memory; processes do not."},
    ], "Explain processes and threads, step by step")
    script.assert_exhausted()
    assert record.status == "completed"
    assert record.result == "Threads share memory; processes do not."
    assert record.total_rounds == 4
    events = await engine.transcript(record.id)
    hops = [(e.agent, e.content["target"]) for e in events if e.type == "handoff"]
    assert hops == [("copilot_control", "planner"), ("planner", "controller"), ("controller", "researcher")]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "message" and events[0].agent == "user"
    assert record.total_usage().total_tokens == 4 * 15
    calls = await engine.store.journal_entries(record.id)
    assert [c["agent"] for c in calls] == ["copilot_control", "planner", "controller", "researcher"]
    await engine.store.close()


async def test_offline_router_decides_without_a_model_call(settings: Any) -> None:
    engine, record, script = await run_script(settings, [
        {"agent": "engineer", "text": "def fib(n): ..."},
    ], "Write a Python function that returns the n-th Fibonacci number.", capable=False)
    script.assert_exhausted()
    assert record.status == "completed"
    assert record.meta["route"]["route"] == "one_shot" and record.meta["route"]["agent"] == "engineer"
    events = await engine.transcript(record.id)
    assert [e.content["target"] for e in events if e.type == "handoff"] == ["engineer"]
    await engine.store.close()


async def test_pause_at_max_rounds_then_continue(settings: Any) -> None:
    engine, record, script = await run_script(settings, [
        {"agent": "copilot_control", "handoff": "planner"},
        {"agent": "planner", "handoff": "controller"},
        {"agent": "controller", "handoff": "engineer"},
        {"agent": "engineer", "text": "done"},
    ], "Build it in steps", max_rounds=2)
    assert record.status == "paused" and record.rounds_used == 2
    assert len(script.calls) == 2
    assert record.total_usage().total_tokens == 2 * 15
    record = await engine.run(record.id, max_rounds=5)
    assert record.status == "completed" and record.result == "done"
    assert record.total_rounds == 4 and record.rounds_used == 2
    assert record.total_usage().total_tokens == 4 * 15  # replayed calls are not counted twice
    script.assert_exhausted()
    await engine.store.close()


async def test_clarifying_question_waits_for_the_user_then_resumes(settings: Any) -> None:
    engine, record, script = await run_script(settings, [
        {"agent": "copilot_control", "handoff": "assistant"},
        {"agent": "assistant", "text": "Which project do you mean?"},
        {"agent": "copilot_control", "handoff": "researcher"},
        {"agent": "researcher", "text": "Here is the summary of swarm-mcp."},
    ], "Help me with my project")
    assert record.status == "waiting_input"
    assert record.pending is not None and record.pending.message == "Which project do you mean?"
    with pytest.raises(UserInputError, match="waiting for your answer"):
        await engine.run(record.id)
    record = await engine.run(record.id, message="The swarm-mcp README")
    assert record.status == "completed" and record.pending is None
    script.assert_exhausted()
    assert any("swarm-mcp README" in text for text in script.calls[2]["recent"])
    kinds = [e.type for e in await engine.transcript(record.id)]
    assert "approval_request" in kinds
    await engine.store.close()


async def test_unknown_session_id_is_a_clear_error(settings: Any) -> None:
    engine = Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([])))
    async with engine:
        with pytest.raises(UnknownSessionError, match="unknown session id 's_nope'"):
            await engine.run("s_nope")
        with pytest.raises(UnknownSessionError):
            await engine.transcript("s_nope")


async def test_empty_task_and_bad_round_limit_are_rejected(settings: Any) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        with pytest.raises(UserInputError, match="non-empty"):
            await engine.create("   ")
        with pytest.raises(UserInputError, match="max_rounds"):
            await engine.create("do it", max_rounds=0)


async def test_provider_failure_fails_the_session_and_keeps_the_transcript(settings: Any) -> None:
    engine, record, script = await run_script(settings, [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "error": "auth"},
    ], "Compute 2+2 in Python")
    assert record.status == "failed"
    assert "401" in record.error and "provider" in record.error
    events = await engine.transcript(record.id)
    assert [e.type for e in events][:2] == ["message", "status"]
    assert any(e.type == "handoff" for e in events) and events[-2].type == "error"
    # the failed round is retried on continue; the completed routing call is not repeated
    script.entries.append({"agent": "engineer", "text": "4"})
    record = await engine.run(record.id)
    assert record.status == "completed" and record.result == "4"
    assert [c["agent"] for c in script.calls] == ["copilot_control", "engineer", "engineer"]
    await engine.store.close()


async def test_transient_provider_failures_are_retried_then_a_clear_session_error(settings: Any) -> None:
    from swarm.models.factory import ModelFactory

    script = Script([
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "error": "rate_limit"},
        {"agent": "engineer", "error": "server_error"},
        {"agent": "engineer", "text": "4"},
        *[{"agent": "engineer", "error": "timeout"} for _ in range(5)],
    ])
    scripted = settings.__class__(**{**settings.__dict__, "model": "scripted", "max_retries": 4})
    factory = ModelFactory(scripted, env={"SWARM_MCP_RETRY_BASE_DELAY": "0"}, script=script)
    async with Engine(scripted, tools=phase_tool_registry(), models=factory) as engine:
        record = await engine.create("Compute 2+2 in Python")
        record = await engine.run(record.id)
        assert record.status == "completed" and record.result == "4"  # 429 and 503 were retried
        assert [c["agent"] for c in script.calls] == ["copilot_control", "engineer", "engineer", "engineer"]

        record = await engine.run(record.id, message="And 3+3?")
        assert record.status == "failed"  # five timeouts: 1 call + 4 retries, then a clear error
        assert "model provider failed" in record.error and "5 attempts" in record.error, record.error
        script.assert_exhausted()
        events = await engine.transcript(record.id)
        assert events[-2].type == "error" and events[-1].content == {"status": "failed"}
        assert [e.content["text"] for e in events if e.type == "message" and e.agent == "user"] == ["Compute 2+2 in Python", "And 3+3?"]


@pytest.mark.parametrize("backend", ["sqlite+aiosqlite", "postgresql"])
async def test_pause_and_resume_on_the_async_backends(settings: Any, tmp_path: Any, backend: str) -> None:
    import os

    url = os.environ.get("SWARM_MCP_TEST_POSTGRES_URL") if backend == "postgresql" else f"{backend}:///{tmp_path / 'async.db'}"
    if not url:
        pytest.skip("set SWARM_MCP_TEST_POSTGRES_URL to run on PostgreSQL; .ci/run does")
    on_backend = settings.__class__(**{**settings.__dict__, "db_url": url})
    script = Script([
        {"agent": "copilot_control", "handoff": "planner"},
        {"agent": "planner", "handoff": "controller"},
        {"agent": "controller", "handoff": "engineer"},
        {"agent": "engineer", "text": "done"},
    ])
    async with Engine(on_backend, tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Build it in steps", max_rounds=2)
        record = await engine.run(record.id)
        assert record.status == "paused"
    async with Engine(on_backend, tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:  # a new engine on the same database
        record = await engine.run(record.id)
        assert record.status == "completed" and record.result == "done" and record.total_rounds == 4
        events = await engine.transcript(record.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
    script.assert_exhausted()


async def test_a_manifest_naming_an_unknown_tool_fails_at_start(settings: Any, tmp_path: Any) -> None:
    from swarm.errors import ManifestError

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "typist.yaml").write_text("name: typist\ndescription: types\nsystem_message: Type.\ntools: [exec_code]\n")
    broken = settings.__class__(**{**settings.__dict__, "agent_dirs": (agents,)})
    with pytest.raises(ManifestError, match=r"typist\.yaml: field 'tools'.*unknown 'exec_code'"):
        Engine(broken, tools=phase_tool_registry(), models=ScriptedModels(Script([])))


async def test_a_work_dir_that_cannot_be_made_fails_the_session_clearly_instead_of_leaving_it_running(settings: Any) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.work_root.write_text("a file where the sessions' directory should be")
    engine, record, script = await run_script(settings, [], "Say hello")
    assert record.status == "failed" and "cannot create the session's work dir" in (record.error or ""), record
    assert (await engine.get(record.id)).status == "failed"  # stored: a continue retries it once the directory is fixed
    await engine.store.close()


async def test_a_continue_starts_from_the_checkpoint_of_the_legs_before_it_not_from_the_first_round(settings: Any) -> None:
    """Resuming replays only the leg after the last checkpoint: the journal before it is not even read, and the
    conversation goes on exactly as a full replay would (each agent's context, the router's inputs, the rounds). A
    checkpoint that does not cover exactly the legs before the one being played is not used."""
    hops = [{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "handoff": "controller"},
            {"agent": "controller", "handoff": "researcher"}, {"agent": "researcher", "handoff": "controller"},
            {"agent": "controller", "handoff": "researcher"}, {"agent": "researcher", "text": "all done"}]
    engine, record, script = await run_script(settings, hops, "Plan it with the controller", max_rounds=2)
    loads: list[int] = []
    original = engine.store.journal_load

    async def journal_load(session_id: str, after_seq: int = 0) -> Any:
        loads.append(after_seq)
        return await original(session_id, after_seq)

    engine.store.journal_load = journal_load  # type: ignore[method-assign]
    record = await engine.run(record.id, max_rounds=2)
    assert record.status == "paused" and record.total_rounds == 4
    record = await engine.run(record.id, max_rounds=5)
    assert record.status == "completed" and record.result == "all done" and record.total_rounds == 6
    assert loads == [2, 4], loads  # each continue read the journal after the calls its checkpoint covers
    assert record.total_usage().total_tokens == 6 * 15
    script.assert_exhausted()
    legs, position, rounds, _ = await engine.store.checkpoint_get(record.id)
    assert (legs, position, rounds) == (3, 6, 6)
    await engine.store.close()


@pytest.mark.parametrize("durable", [False, True], ids=["inline", "durable"])
async def test_a_leg_that_ended_leaves_its_team_to_reference_counting(settings: Any, durable: bool,
                                                                      left_to_collector: Callable[[], list[Any]]) -> None:
    """autogen's runtime and a team's agents refer to each other, and so did the team and its runtime: each leg's team
    (11 agents with their model clients, contexts and tools, ~900 objects) waited for a full collection of the garbage
    collector, which in a server comes rarely (every ~55 legs in bench_paused_rss): the Python heap held tens of
    thousands of dead objects more than it needed, and grew its arenas for them."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.teams import Swarm

    def model(messages: Any, agent: str, tools: list[str]) -> Any:
        transfers = [t for t in tools if t.startswith("transfer_to_")]
        return handoff(transfers[0].removeprefix("transfer_to_")) if agent == "copilot_control" and transfers else "done"

    settings = dataclasses.replace(settings, durable=durable)
    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model)) as engine:
        first = await engine.go_on((await engine.create("Summarise the report", max_rounds=1)).id)
        second = await engine.go_on(first.id, message="Go on", max_rounds=2)  # a leg that replays from a checkpoint
        assert (first.status, second.status) == ("paused", "completed")
        left = [type(o).__name__ for o in left_to_collector() if isinstance(o, (Swarm, AssistantAgent))]
    assert left == []
