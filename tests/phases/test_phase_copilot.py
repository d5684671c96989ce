"""The copilot phase routes with the offline router; phases are tools of a swarm session."""

from __future__ import annotations

from typing import Any

import pytest

from phases import phase_tool_registry, resolve_approval, run_phase
from swarm.manifest import load_agents
from swarm.models.scripted import Script
from tests.phases.phase_helpers import code, phase_events, plan, scripted_engine

pytestmark = pytest.mark.anyio

SIMPLE = "Write a Python function that returns the n-th Fibonacci number."
COMPLEX = "Download the data, then clean it, then train a model, evaluate it and write up the results."


async def test_a_simple_task_goes_to_one_agent(settings: Any) -> None:
    script = Script([{"agent": "engineer", "json": code("def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\nprint(fib(10))"), "expect": "Fibonacci"}])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "copilot", {"task": SIMPLE})
        script.assert_exhausted()
        assert result.status == "completed"
        assert result.output["route"]["route"] == "one_shot" and result.output["route"]["agent"] == "engineer"
        assert "55" in result.output["answer"]
        events = await engine.transcript(result.session_id)
        assert phase_events(events) == [("phase_start", "copilot", None), ("phase_start", "one_shot", None),
                                        ("phase_end", "one_shot", "completed"), ("phase_end", "copilot", "completed")]


async def test_a_complex_task_is_planned_then_run_step_by_step(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "json": plan(("prepare the data", "engineer"), ("write up the results", "researcher")), "expect": "train a model"},
        {"agent": "engineer", "json": code("print('accuracy 0.91')")},
        {"agent": "researcher", "text": "The model reached 91% accuracy.", "expect": "accuracy 0.91"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "copilot", {"task": COMPLEX, "n_plan_reviews": 0})
        script.assert_exhausted()
        assert result.status == "completed" and result.output["route"]["route"] == "planning"
        assert [s["status"] for s in result.output["result"]["steps"]] == ["completed", "completed"]
        assert "91% accuracy" in result.output["answer"]
        events = await engine.transcript(result.session_id)
        assert [p for p in phase_events(events) if p[0] == "phase_end"] == [
            ("phase_end", "planning", "completed"), ("phase_end", "control", "completed"), ("phase_end", "copilot", "completed")]
        record = await engine.get(result.session_id)
        assert record.meta["route"]["route"] == "planning" and len(record.meta["step_results"]) == 2


async def test_a_vague_task_gets_a_clarifying_question_first(settings: Any) -> None:
    script = Script([
        {"agent": "assistant", "text": "What should I improve?"},
        {"agent": "researcher", "text": "## Install\n\nRun pip install swarm-mcp.", "expect": "explain how to install"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "copilot", {"task": "Make it better."})
        assert result.status == "waiting_input"
        assert result.pending_approval.kind == "question" and result.pending_approval.message == "What should I improve?"
    async with scripted_engine(settings, script) as engine:
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "The README: explain how to install the tool")
        script.assert_exhausted()
        assert result.status == "completed" and result.output["route"]["agent"] == "researcher"
        assert result.output["clarifications"] == [{"question": "What should I improve?", "answer": "The README: explain how to install the tool", "who": "user"}]


async def test_phases_are_tools_of_a_swarm_session(settings: Any) -> None:
    agents = load_agents()
    agents["researcher"] = agents["researcher"].model_copy(update={"tools": ["invoke_idea_generation_phase"]})
    script = Script([
        {"agent": "copilot_control", "handoff": "researcher"},
        {"agent": "researcher", "tool": "invoke_idea_generation_phase", "args": {"task": "Names for a cat", "n_ideas": 2, "n_reviews": 1}},
        {"agent": "idea_maker", "json": {"ideas": [{"title": "Tom"}, {"title": "Luna"}]}},
        {"agent": "idea_hater", "json": {"critiques": [{"title": "Tom", "critique": "common", "score": 3}, {"title": "Luna", "critique": "fine", "score": 8}]}},
        {"agent": "idea_maker", "json": {"ideas": [{"title": "Tom"}, {"title": "Luna"}]}},
        {"agent": "researcher", "text": "Luna ranks first.", "expect": "Luna"},
    ])
    async with scripted_engine(settings, script, agents=agents, tools=phase_tool_registry()) as engine:
        record = await engine.create("Suggest names for my cat and pick one")
        record = await engine.run(record.id)
        script.assert_exhausted()
        assert record.status == "completed" and record.result == "Luna ranks first."
        assert [i["title"] for i in record.meta["ideas"]] == ["Luna", "Tom"]
        assert record.total_usage().total_tokens == 6 * 15  # the phase's model calls are counted in the session
        events = await engine.transcript(record.id)
        assert phase_events(events) == [("phase_start", "idea_generation", None), ("phase_end", "idea_generation", "completed")]
        calls = await engine.store.journal_entries(record.id)
        assert [c["agent"] for c in calls] == ["copilot_control", "researcher", "researcher", "researcher"]  # the tool call in between
        phase_calls = await engine.store.journal_entries(f"{record.id}:t3")
        assert [c["agent"] for c in phase_calls] == ["idea_maker", "idea_hater", "idea_maker"]


async def test_an_interactive_phase_tool_waits_in_a_session_of_its_own(settings: Any) -> None:
    agents = load_agents()
    agents["researcher"] = agents["researcher"].model_copy(update={"tools": ["invoke_hitl_checkpoint_phase"]})
    script = Script([
        {"agent": "copilot_control", "handoff": "researcher"},
        {"agent": "researcher", "tool": "invoke_hitl_checkpoint_phase", "args": {"message": "Publish the summary?"}},
        {"agent": "researcher", "text": "Waiting for your approval of the summary.", "expect": "\"status\": \"waiting_input\""},
    ])
    async with scripted_engine(settings, script, agents=agents, tools=phase_tool_registry()) as engine:
        record = await engine.run((await engine.create("Summarize the report and publish it")).id)
        script.assert_exhausted()
        [child] = record.meta["phase_sessions"]
        gate = await engine.get(child["session_id"])
        assert gate.kind == "phase:hitl_checkpoint" and gate.status == "waiting_input" and gate.pending.message == "Publish the summary?"
        done = await resolve_approval(engine, gate.id, gate.pending.id, "approve")
        assert done.status == "completed" and done.output["decision"] == "approve"


async def test_copilot_control_calls_planning_then_control_as_tools(settings: Any) -> None:
    """The copilot swarm itself: copilot_control runs invoke_planning_phase, then invoke_control_phase, then answers."""
    script = Script([
        {"agent": "copilot_control", "tool": "invoke_planning_phase", "args": {"task": COMPLEX, "n_plan_reviews": 1, "max_plan_steps": 2}},
        {"agent": "planner", "json": plan(("compute the accuracy", "engineer")), "expect": "train a model"},
        {"agent": "plan_reviewer", "text": "Add a write-up step for the researcher."},
        {"agent": "planner", "json": plan(("compute the accuracy", "engineer"), ("write up the results", "researcher")), "expect": "write-up"},
        {"agent": "copilot_control", "tool": "invoke_control_phase", "args": {}, "expect": "write up the results"},
        {"agent": "engineer", "json": code("print('accuracy 0.91')")},
        {"agent": "researcher", "text": "The model reached 91% accuracy.", "expect": "accuracy 0.91"},
        {"agent": "copilot_control", "text": "Done: the model reached 91% accuracy.", "expect": "91% accuracy"},
    ])
    async with scripted_engine(settings, script) as engine:
        record = await engine.create(COMPLEX)
        record = await engine.run(record.id)
        script.assert_exhausted()
        assert record.status == "completed" and record.result == "Done: the model reached 91% accuracy."
        assert len(record.meta["plan"]["steps"]) == 2
        assert [s["status"] for s in record.meta["step_results"]] == ["completed", "completed"]
        events = await engine.transcript(record.id)
        assert phase_events(events) == [
            ("phase_start", "planning", None), ("phase_end", "planning", "completed"),
            ("phase_start", "control", None), ("phase_end", "control", "completed"),
        ]
        tools = [e.content["name"] for e in events if e.type == "tool_call"]
        assert tools[:2] == ["invoke_planning_phase", "invoke_control_phase"]
        assert record.total_usage().total_tokens == 8 * 15
