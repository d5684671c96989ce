"""Standalone phase runs: failures are resumed from the journal; the registry and the tool seam."""

from __future__ import annotations

from typing import Any

import pytest

from phases import PHASES, describe_phases, phase_tool_registry, resume_phase, run_phase
from swarm.engine import Engine
from swarm.errors import UserInputError
from swarm.models.scripted import Script
from swarm.tools import default_registry
from tests.fakes import ScriptedModels
from tests.phases.phase_helpers import phase_events, plan, scripted_engine

pytestmark = pytest.mark.anyio


async def test_a_provider_failure_fails_the_run_and_resuming_repeats_no_completed_call(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "json": plan(("a", "engineer"))},
        {"agent": "plan_reviewer", "error": "auth"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "planning", {"task": "Do a"})
        assert result.status == "failed" and result.error.startswith("model provider failed: 401")
        events = await engine.transcript(result.session_id)
        assert events[-2].type == "error" and events[-2].content["kind"] == "ProviderError"
    script.entries += [{"agent": "plan_reviewer", "text": "Looks fine."}, {"agent": "planner", "json": plan(("a", "engineer"))}]
    async with scripted_engine(settings, script) as engine:
        with pytest.raises(UserInputError, match="no interrupted phase run"):
            await resume_phase(engine, (await engine.create("other")).id)
        again = await run_phase(engine, "planning", {"task": "Do a"}, session_id=result.session_id)  # same phase and params: resumed
        script.assert_exhausted()
        assert again.status == "completed" and again.session_id == result.session_id
        assert [c["agent"] for c in script.calls] == ["planner", "plan_reviewer", "plan_reviewer", "planner"]
        record = await engine.get(result.session_id)
        assert len(record.meta["phase_runs"]) == 1 and record.total_usage().total_tokens == 3 * 15
        events = await engine.transcript(result.session_id)
        assert phase_events(events) == [("phase_start", "planning", None), ("phase_end", "planning", "failed"), ("phase_end", "planning", "completed")]
        said = [e.agent for e in events if e.type == "message" and e.agent != "user"]
        assert said == ["planner", "plan_reviewer", "planner"]  # the replayed first answer is not written twice


async def test_the_registry_lists_every_phase_with_a_schema() -> None:
    assert sorted(PHASES) == ["control", "copilot", "hitl_checkpoint", "hitl_control", "hitl_planning", "idea_generation", "one_shot", "planning"]
    described = {d["name"]: d for d in describe_phases()}
    assert described["planning"]["parameters"]["properties"]["max_plan_steps"]["default"] == 3
    assert described["hitl_control"]["interactive"] and not described["control"]["interactive"]
    registry = phase_tool_registry(default_registry())
    assert registry.names() == sorted(["execute_code"] + [f"invoke_{n}_phase" for n in PHASES])
    assert registry.get("invoke_one_shot_phase").description.startswith("One agent")


async def test_a_phase_run_in_a_swarm_session_adds_to_its_rounds_and_usage(settings: Any) -> None:
    script = Script([
        {"agent": "copilot_control", "handoff": "researcher"},
        {"agent": "researcher", "text": "Processes do not share memory."},
        {"agent": "planner", "json": plan(("compare them in code", "engineer"))},
    ])
    async with scripted_engine(settings, script) as engine:
        record = await engine.run((await engine.create("Explain processes")).id)
        assert record.total_rounds == 2
        result = await run_phase(engine, "planning", {"task": "Compare processes and threads", "n_plan_reviews": 0}, session_id=record.id)
        script.assert_exhausted()
        record = await engine.get(record.id)
        assert record.kind == "copilot" and record.meta["plan"] == result.output["plan"] and record.meta["route"]["route"] == "one_shot"
        assert record.total_rounds == 3 and record.total_usage().total_tokens == 3 * 15
        events = await engine.transcript(record.id)
        assert next(e for e in events if e.type == "phase_start").round == 2


async def test_a_work_dir_that_cannot_be_made_fails_the_phase_run_clearly(settings: Any) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.work_root.write_text("a file where the sessions' directory should be")
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        result = await run_phase(engine, "planning", {"task": "Plan a launch"})
        assert result.status == "failed" and "cannot create the session's work dir" in (result.error or ""), result
        assert (await engine.get(result.session_id)).status == "failed"
