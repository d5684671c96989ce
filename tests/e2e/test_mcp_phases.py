"""The phase tools through the real client: runs, structured output, approvals by elicitation and by tool."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.e2e.mcp_harness import Recorder, connect, data, era, make_server, text  # noqa: F401
from tests.phases.phase_helpers import plan

pytestmark = pytest.mark.anyio


def ideas(*titles: str) -> dict[str, Any]:
    return {"ideas": [{"title": t, "description": f"about {t}"} for t in titles]}


async def test_planning_then_control_in_the_same_session(settings: Any, era: str) -> None:
    the_plan = plan(("write the summary", "researcher"))
    server, script = make_server(settings, [
        {"agent": "planner", "json": the_plan},
        {"agent": "researcher", "text": "Threads share memory; processes do not."},
    ])
    async with connect(server, era) as client:
        planned = data(await client.call_tool("invoke_planning_phase", {"task": "Explain processes and threads", "n_plan_reviews": 0}))
        assert planned["status"] == "completed" and planned["kind"] == "phase:planning"
        assert planned["result"]["plan"] == the_plan
        done = data(await client.call_tool("invoke_control_phase", {"session_id": planned["session_id"]}))
        assert done["status"] == "completed" and done["session_id"] == planned["session_id"]
        assert done["result"]["steps"][0]["status"] == "completed"
        events = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)["events"]
        assert [e["content"]["phase"] for e in events if e["type"] == "phase_end"] == ["planning", "control"]
    script.assert_exhausted()


async def test_idea_generation_returns_ranked_ideas(settings: Any) -> None:
    server, script = make_server(settings, [
        {"agent": "idea_maker", "json": ideas("Solar", "Wind")},
        {"agent": "idea_hater", "json": {"critiques": [{"title": "Solar", "critique": "cloudy", "score": 4},
                                                       {"title": "Wind", "critique": "calm days", "score": 7}]}},
        {"agent": "idea_maker", "json": ideas("Solar", "Wind")},
    ])
    async with connect(server, "legacy") as client:
        result = data(await client.call_tool("invoke_idea_generation_phase", {"task": "Power a village", "n_ideas": 2}))
    assert [(i["rank"], i["title"]) for i in result["result"]["ideas"]] == [(1, "Wind"), (2, "Solar")]
    script.assert_exhausted()


async def test_hitl_planning_approved_through_elicitation(settings: Any, era: str) -> None:
    first, second = plan(("build it", "engineer")), plan(("build it", "engineer"), ("test it", "engineer"))
    server, script = make_server(settings, [
        {"agent": "planner", "json": first},
        {"agent": "planner", "json": second, "expect": "add a testing step"},
    ])
    rec = Recorder()
    rec.answers += [{"decision": "revise", "feedback": "add a testing step"}, {"decision": "approve", "feedback": ""}]
    async with connect(server, era, rec, elicit=True) as client:
        result = data(await client.call_tool("invoke_hitl_planning_phase", {"task": "Build a CLI", "n_plan_reviews": 0}))
    assert result["status"] == "completed" and result["result"]["plan"] == second
    assert len(rec.elicitations) == 2 and "Step 1 (engineer): build it" in rec.elicitations[0].message
    assert rec.elicitations[0].requested_schema["properties"]["decision"]["enum"] == ["approve", "revise", "reject"]
    script.assert_exhausted()


async def test_hitl_checkpoint_answered_with_resolve_approval_and_continue(settings: Any, era: str) -> None:
    server, _ = make_server(settings, [])
    async with connect(server, era) as client:
        waiting = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Deploy to production?", "checkpoint_type": "deploy"}))
        assert waiting["status"] == "waiting_input" and waiting["pending_approval"]["options"] == ["approve", "reject"]
        assert "resolve_approval" in waiting["next"]
        bad = await client.call_tool("resolve_approval", {"session_id": waiting["session_id"], "approval_id": waiting["pending_approval"]["id"],
                                                          "decision": "maybe"})
        assert bad.is_error and "approve" in text(bad)
        done = data(await client.call_tool("resolve_approval", {"session_id": waiting["session_id"], "approval_id": waiting["pending_approval"]["id"],
                                                                "decision": "accept", "feedback": "go"}))
        assert done["status"] == "completed" and done["result"]["decision"] == "approve"

        second = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship it?"}))
        finished = data(await client.call_tool("continue_copilot", {"session_id": second["session_id"], "message": "approve"}))
        assert finished["status"] == "completed"


async def test_phase_tool_errors_are_clear(settings: Any) -> None:
    server, _ = make_server(settings, [])
    async with connect(server, "legacy") as client:
        no_plan = await client.call_tool("invoke_control_phase", {})
        assert no_plan.is_error and "plan" in text(no_plan)
        unknown = await client.call_tool("invoke_hitl_control_phase", {"session_id": "s_doesnotexist"})
        assert unknown.is_error and "unknown session id 's_doesnotexist'" in text(unknown)
        agent = await client.call_tool("invoke_one_shot_phase", {"task": "x", "agent": "wizard"})
        assert agent.is_error and "'engineer', 'researcher'" in text(agent)
        steps = await client.call_tool("invoke_control_phase", {"plan": {"steps": [{"sub_task": "x", "agent": "cat"}]}})
        assert steps.is_error


async def test_a_cancelled_phase_call_pauses_the_phase_and_continue_resumes_it(settings: Any) -> None:
    server, script = make_server(settings, [
        {"agent": "planner", "hang": True},
        {"agent": "planner", "json": plan(("a", "engineer"))},
    ])
    rec = Recorder()
    async with connect(server, "legacy") as client:
        async with anyio.create_task_group() as tg:
            async def call() -> None:
                await client.call_tool("invoke_planning_phase", {"task": "Do a", "n_plan_reviews": 0}, progress_callback=rec.on_progress)

            tg.start_soon(call)
            while len(script.calls) < 1:
                await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        sid = rec.progress[0][2].split()[1]
        done = data(await client.call_tool("continue_copilot", {"session_id": sid}))
        assert done["status"] == "completed" and done["result"]["plan"] == plan(("a", "engineer"))
    script.assert_exhausted()
