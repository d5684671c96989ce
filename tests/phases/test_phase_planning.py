"""Planning: planner <-> plan_reviewer, validated structured plans, and the phase's record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phases import get_phase, phase_tool_registry, run_phase
from swarm.engine import Engine
from swarm.errors import UserInputError
from swarm.models.scripted import Script, ScriptedModelClient
from tests.fakes import ScriptedModels
from tests.phases.phase_helpers import phase_events, plan, scripted_engine

pytestmark = pytest.mark.anyio


async def test_plan_is_reviewed_and_revised_n_times(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "json": plan(("write code", "engineer")), "expect": "Propose a plan"},
        {"agent": "plan_reviewer", "text": "1. Add a report step.", "expect": "Step 1 (engineer): write code"},
        {"agent": "planner", "json": plan(("write code", "engineer"), ("write report", "researcher")), "expect": "Add a report step"},
        {"agent": "plan_reviewer", "text": "1. Name the output file."},
        {"agent": "planner", "json": plan(("write code to out.csv", "engineer"), ("write report", "researcher")), "expect": "Name the output file"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "planning", {"task": "Analyse the sales data", "n_plan_reviews": 2})
        script.assert_exhausted()
        assert result.status == "completed", result.error
        assert [c["agent"] for c in script.calls] == ["planner", "plan_reviewer", "planner", "plan_reviewer", "planner"]
        steps = result.output["plan"]["steps"]
        assert [s["sub_task"] for s in steps] == ["write code to out.csv", "write report"]
        assert result.output["reviews"] == ["1. Add a report step.", "1. Name the output file."]
        record = await engine.get(result.session_id)
        assert record.kind == "phase:planning" and record.meta["plan"]["steps"] == steps
        assert json.loads((Path(result.work_dir) / "plan.json").read_text())["steps"] == steps
        assert "plan.json" in result.output["files"]
        assert result.total_tokens == 5 * 15 and record.total_usage().total_tokens == 5 * 15
        events = await engine.transcript(result.session_id)
        assert phase_events(events) == [("phase_start", "planning", None), ("phase_end", "planning", "completed")]
        start = next(e for e in events if e.type == "phase_start")
        end = next(e for e in events if e.type == "phase_end")
        assert start.content["inputs"] == {"task": "Analyse the sales data", "max_plan_steps": 3, "n_plan_reviews": 2, "improve_task": False}
        assert end.content["output"]["plan"]["steps"] == steps and end.content["usage"] == {"scripted": {"prompt_tokens": 50, "completion_tokens": 25}}
        assert [e.agent for e in events if e.type == "message" and e.agent != "user"] == ["planner", "plan_reviewer", "planner", "plan_reviewer", "planner"]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_plan_with_too_many_steps_is_rejected_then_retried(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "json": plan(("a", "engineer"), ("b", "engineer"), ("c", "researcher"))},
        {"agent": "planner", "json": {"steps": []}, "expect": "has 3 steps but at most 2 are allowed"},
        {"agent": "planner", "json": plan(("a and b", "engineer"), ("c", "researcher")), "expect": "no steps"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "planning", {"task": "Do a, b and c", "max_plan_steps": 2, "n_plan_reviews": 0})
        script.assert_exhausted()
        assert result.status == "completed"
        assert len(result.output["plan"]["steps"]) == 2
        errors = [e.content for e in await engine.transcript(result.session_id) if e.type == "error"]
        assert [e["retrying"] for e in errors] == [True, True] and "at most 2" in errors[0]["error"]


async def test_malformed_plans_fail_the_phase_after_the_retries(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "text": "Here is my plan: first do it."},
        {"agent": "planner", "json": {"steps": [{"sub_task": "x", "agent": "wizard"}]}, "expect": "not valid JSON"},
        {"agent": "planner", "json": plan(("a", "engineer"), ("b", "engineer"))},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "planning", {"task": "Do it", "max_plan_steps": 1, "n_plan_reviews": 0})
        script.assert_exhausted()
        assert result.status == "failed"
        assert "planner gave no usable answer in 3 attempts" in result.error and "at most 1" in result.error
        record = await engine.get(result.session_id)
        assert record.status == "failed" and "plan" not in record.meta
        events = await engine.transcript(result.session_id)
        assert phase_events(events)[-1] == ("phase_end", "planning", "failed")
        assert events[-1].content["status"] == "failed" and events[-2].type == "error"


async def test_bad_parameters_name_the_parameter_and_what_is_allowed(settings: Any) -> None:
    async with scripted_engine(settings, Script([])) as engine:
        with pytest.raises(UserInputError, match="planning: parameter 'max_plan_steps': Input should be less than or equal to 10, got 50"):
            await run_phase(engine, "planning", {"task": "x", "max_plan_steps": 50})
        with pytest.raises(UserInputError, match=r"unknown parameter 'steps'; the parameters are \['improve_task', 'max_plan_steps', 'n_plan_reviews', 'task'\]"):
            await run_phase(engine, "planning", {"task": "x", "steps": 2})
        with pytest.raises(UserInputError, match="parameter 'task' is required"):
            await run_phase(engine, "planning", {})
        with pytest.raises(UserInputError, match="parameter 'agent'.*'engineer' or 'researcher'"):
            await run_phase(engine, "one_shot", {"task": "x", "agent": "poet"})
        with pytest.raises(UserInputError, match="unknown phase 'plan'; the phases are"):
            await run_phase(engine, "plan", {"task": "x"})
        assert await engine.list() == []
    assert get_phase("planning").tool_name == "invoke_planning_phase"


class _NoStructuredOutput(ScriptedModelClient):
    @property
    def model_info(self) -> Any:  # like Anthropic's clients: JSON mode only, no schema-constrained output
        return {**super().model_info, "structured_output": False}


class _PlainModels(ScriptedModels):
    def client_for(self, agent: str, tier: str) -> ScriptedModelClient:
        return _NoStructuredOutput(self.script, agent)


async def test_a_model_without_structured_output_answers_json_in_text(settings: Any) -> None:
    script = Script([{"agent": "planner", "text": "Here it is:\n```json\n" + json.dumps(plan(("a", "researcher"))) + "\n```"}])
    async with Engine(settings, tools=phase_tool_registry(), models=_PlainModels(script)) as engine:
        result = await run_phase(engine, "planning", {"task": "Do a", "n_plan_reviews": 0})
        script.assert_exhausted()
        assert result.status == "completed" and result.output["plan"]["steps"][0]["agent"] == "researcher"
