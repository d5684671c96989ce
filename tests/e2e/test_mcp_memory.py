"""The real server through the SDK's real client, in memory, in both protocol eras."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
import pytest

from tests.e2e.mcp_harness import Recorder, connect, data, era, make_server, text  # noqa: F401

pytestmark = pytest.mark.anyio

TOOLS = {
    "copilot", "continue_copilot", "invoke_planning_phase", "invoke_control_phase", "invoke_one_shot_phase",
    "invoke_hitl_planning_phase", "invoke_hitl_control_phase", "invoke_hitl_checkpoint_phase", "invoke_idea_generation_phase",
    "invoke_copilot_phase", "session_status", "cancel_session", "resolve_approval",
}

FOUR_HOPS = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "text": "All three steps are done."},
]

QUESTION = [
    {"agent": "copilot_control", "handoff": "assistant"},
    {"agent": "assistant", "text": "Which project do you mean?"},
    {"agent": "copilot_control", "handoff": "researcher", "expect": "swarm-mcp README"},
    {"agent": "researcher", "text": "Here is the summary of the swarm-mcp README."},
]


async def test_all_tools_are_listed_with_descriptions_and_schemas(settings: Any, era: str) -> None:
    server, _ = make_server(settings, [])
    async with connect(server, era) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.output_schema is not None and "session_id" in tool.output_schema["properties"], tool.name
        assert "additionalProperties" not in tool.input_schema, tool.name  # left out; the server refuses unknown arguments
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    assert set(tools["copilot"].input_schema["required"]) == {"task"}
    assert tools["session_status"].annotations.read_only_hint is True


async def test_copilot_pauses_then_continues_with_progress_and_transcript(settings: Any, era: str) -> None:
    server, script = make_server(settings, FOUR_HOPS)
    rec = Recorder()
    async with connect(server, era, rec) as client:
        first = data(await client.call_tool("copilot", {"task": "Plan and write a report in three steps", "max_rounds": 2},
                                            progress_callback=rec.on_progress))
        assert first["status"] == "paused" and first["rounds_used"] == 2 and first["live"] is False
        assert "continue_copilot" in first["next"]
        sid = first["session_id"]
        messages = [m for _, _, m in rec.progress]
        assert messages[0].startswith(f"session {sid} started")
        assert any("round 1: copilot_control -> planner" in m for m in messages)
        values = [v for v, _, _ in rec.progress]
        assert values == sorted(values) and len(set(values)) == len(values)

        second = data(await client.call_tool("continue_copilot", {"session_id": sid}))
        assert second["status"] == "completed" and second["result"] == "All three steps are done."
        assert second["total_rounds"] == 4 and second["usage"]["total"]["total_tokens"] == 4 * 15
        assert second["transcript_uri"] == f"swarm://sessions/{sid}/transcript"

        transcript = json.loads((await client.read_resource(second["transcript_uri"])).contents[0].text)
        events = transcript["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["content"]["target"] for e in events if e["type"] == "handoff"] == ["planner", "controller", "researcher"]
        markdown = (await client.read_resource(f"swarm://sessions/{sid}/transcript.md")).contents[0].text
        assert markdown.startswith(f"# Session {sid}") and "All three steps are done." in markdown
        status = json.loads((await client.read_resource(f"swarm://sessions/{sid}")).contents[0].text)
        assert status["status"] == "completed"
        index = json.loads((await client.read_resource("swarm://sessions")).contents[0].text)
        assert [s["session_id"] for s in index] == [sid]
    script.assert_exhausted()


async def test_clarifying_question_answered_through_elicitation(settings: Any, era: str) -> None:
    server, script = make_server(settings, QUESTION)
    rec = Recorder()
    rec.answers.append({"answer": "The swarm-mcp README"})
    async with connect(server, era, rec, elicit=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Help me with my project"}))
    assert result["status"] == "completed", result
    assert result["result"] == "Here is the summary of the swarm-mcp README."
    assert len(rec.elicitations) == 1 and "Which project do you mean?" in rec.elicitations[0].message
    script.assert_exhausted()


async def test_declined_elicitation_returns_the_question_then_continue_answers_it(settings: Any, era: str) -> None:
    server, script = make_server(settings, QUESTION)
    rec = Recorder()
    rec.answers.append(None)  # the user declines
    async with connect(server, era, rec, elicit=True) as client:
        waiting = data(await client.call_tool("copilot", {"task": "Help me with my project"}))
        assert waiting["status"] == "waiting_input"
        assert waiting["pending_approval"]["message"] == "Which project do you mean?"
        assert waiting["pending_approval"]["options"] == ["answer"]
        done = data(await client.call_tool("continue_copilot", {"session_id": waiting["session_id"], "message": "The swarm-mcp README"}))
    assert done["status"] == "completed"
    script.assert_exhausted()


async def test_question_answered_with_resolve_approval_without_elicitation(settings: Any, era: str) -> None:
    server, script = make_server(settings, QUESTION)
    async with connect(server, era) as client:
        waiting = data(await client.call_tool("copilot", {"task": "Help me with my project"}))
        assert waiting["status"] == "waiting_input"
        approval = waiting["pending_approval"]
        wrong = await client.call_tool("resolve_approval", {"session_id": waiting["session_id"], "approval_id": "q_nope", "decision": "answer",
                                                            "feedback": "x"})
        assert wrong.is_error and approval["id"] in text(wrong)
        done = data(await client.call_tool("resolve_approval", {"session_id": waiting["session_id"], "approval_id": approval["id"],
                                                                "decision": "answer", "feedback": "The swarm-mcp README"}))
    assert done["status"] == "completed"
    script.assert_exhausted()


async def test_bad_arguments_and_unknown_sessions_are_clear_errors(settings: Any, era: str) -> None:
    server, _ = make_server(settings, [])
    async with connect(server, era) as client:
        bad = await client.call_tool("copilot", {"task": "x", "max_rounds": "5", "colour": "red"})
        assert bad.is_error
        assert "'max_rounds' must be an integer from 1 to 500, got '5'" in text(bad)
        assert "unknown argument 'colour'" in text(bad)
        missing = await client.call_tool("copilot", {})
        assert missing.is_error and "missing required argument 'task'" in text(missing)
        zero = await client.call_tool("copilot", {"task": "x", "max_rounds": 0})
        assert zero.is_error and "from 1 to 500, got 0" in text(zero)
        boolean = await client.call_tool("session_status", {"session_id": True})
        assert boolean.is_error and "'session_id' must be a string" in text(boolean)
        mode = await client.call_tool("invoke_hitl_control_phase", {"session_id": "s_x", "approval_mode": "sometimes"})
        assert mode.is_error and "'before_step'" in text(mode)
        for tool in ("session_status", "cancel_session", "continue_copilot"):
            unknown = await client.call_tool(tool, {"session_id": "s_doesnotexist"})
            assert unknown.is_error and "unknown session id 's_doesnotexist'" in text(unknown)
            assert unknown.meta["swarm-mcp/error-kind"] == "unknown_session"
        with pytest.raises(Exception):
            await client.read_resource("swarm://sessions/s_doesnotexist")


async def test_resource_updated_notifications_as_the_transcript_grows(settings: Any) -> None:
    """2025-11-25: resources/subscribe; 2026-07-28: subscriptions/listen."""
    server, _ = make_server(settings, FOUR_HOPS[:1] + [{"agent": "planner", "text": "Plan done."}])
    rec = Recorder()
    async with connect(server, "legacy", rec) as client:
        first = data(await client.call_tool("copilot", {"task": "Plan the work", "max_rounds": 1}))
        uri = first["transcript_uri"]
        await client.subscribe_resource(uri)
        data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
        with anyio.fail_after(5):
            await rec.updated.wait()
    updated = [n.params.uri for n in rec.notifications if isinstance(n, types.ResourceUpdatedNotification)]
    assert uri in updated

    server, _ = make_server(settings, FOUR_HOPS[:1] + [{"agent": "planner", "text": "Plan done."}])
    async with connect(server, "auto") as client:
        first = data(await client.call_tool("copilot", {"task": "Plan the work", "max_rounds": 1}))
        uri = first["transcript_uri"]
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
            with anyio.fail_after(5):
                async for event in subscription:
                    assert event.uri == uri
                    break


async def test_agents_phases_completion_prompts_and_logging(settings: Any) -> None:
    server, _ = make_server(settings, FOUR_HOPS)
    sid = ""
    async with connect(server, "legacy") as client:
        agents = json.loads((await client.read_resource("swarm://agents")).contents[0].text)
        assert {"copilot_control", "engineer", "planner"} <= {a["name"] for a in agents}
        engineer = json.loads((await client.read_resource("swarm://agents/engineer")).contents[0].text)
        assert engineer["name"] == "engineer" and engineer["system_message"]
        phases = json.loads((await client.read_resource("swarm://phases")).contents[0].text)
        assert {p["tool"] for p in phases} == {t for t in TOOLS if t.startswith("invoke_")}
        assert all(p["parameters"]["properties"] for p in phases)
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "swarm://sessions/{session_id}/transcript" in templates and "swarm://agents/{name}" in templates

        sid = data(await client.call_tool("copilot", {"task": "Plan the work", "max_rounds": 1}))["session_id"]
        ref = types.ResourceTemplateReference(type="ref/resource", uri="swarm://sessions/{session_id}")
        assert (await client.complete(ref, {"name": "session_id", "value": "s_"})).completion.values == [sid]
        agent_ref = types.ResourceTemplateReference(type="ref/resource", uri="swarm://agents/{name}")
        assert (await client.complete(agent_ref, {"name": "name", "value": "eng"})).completion.values == ["engineer"]
        phase_ref = types.ResourceTemplateReference(type="ref/resource", uri="swarm://phases/{name}")
        assert (await client.complete(phase_ref, {"name": "name", "value": "hitl"})).completion.values == [
            "hitl_checkpoint", "hitl_control", "hitl_planning"]
        planning = json.loads((await client.read_resource("swarm://phases/planning")).contents[0].text)
        assert planning["tool"] == "invoke_planning_phase" and "max_plan_steps" in planning["parameters"]["properties"]

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"start_swarm", "review_session"}
        prompt = await client.get_prompt("start_swarm", {"task": "Write a haiku"})
        assert "copilot" in prompt.messages[0].content.text and "Write a haiku" in prompt.messages[0].content.text
        review = await client.get_prompt("review_session", {"session_id": sid})
        assert review.messages[0].content.resource.uri == f"swarm://sessions/{sid}/transcript.md"

    rec = Recorder()
    async with connect(server, "legacy", rec) as client:
        assert client.server_capabilities.logging is not None
        assert not (await client.call_tool("continue_copilot", {"session_id": sid, "max_rounds": 1})).is_error
        assert rec.logs == []  # nothing before the client asks for a level
        await client.set_logging_level("info")
        assert not (await client.call_tool("continue_copilot", {"session_id": sid, "max_rounds": 1})).is_error
    assert [log.data for log in rec.logs] == [f"session {sid}: paused"]
