"""`swarm-mcp serve --transport http` as a subprocess, driven by the SDK's real clients over streamable HTTP
(2025-11-25 and 2026-07-28) and legacy SSE."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from tests.e2e.http_harness import TRANSPORTS, connect_http, get, http_server, script_calls
from tests.e2e.mcp_harness import Recorder, data, text

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


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_http_session_pause_continue_transcript_and_progress(tmp_path: Path, transport: str) -> None:
    rec = Recorder()
    with anyio.fail_after(120):
        async with http_server(tmp_path, FOUR_HOPS) as server, connect_http(server, transport, rec) as client:
            tools = (await client.list_tools()).tools
            assert {t.name for t in tools} == TOOLS and all(t.description and t.output_schema for t in tools)
            first = data(await client.call_tool("copilot", {"task": "Plan and write a report in three steps", "max_rounds": 2},
                                                progress_callback=rec.on_progress))
            assert first["status"] == "paused" and first["rounds_used"] == 2
            sid = first["session_id"]
            messages = [m for _, _, m in rec.progress]
            assert messages[0].startswith(f"session {sid} started (model: scripted)")
            assert any("round 2: planner -> controller" in m for m in messages)
            done = data(await client.call_tool("continue_copilot", {"session_id": sid}))
            assert done["status"] == "completed" and done["result"] == "All three steps are done."
            transcript = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)
            assert [e["content"]["target"] for e in transcript["events"] if e["type"] == "handoff"] == ["planner", "controller", "researcher"]
            index = json.loads((await client.read_resource("swarm://sessions")).contents[0].text)
            assert [s["session_id"] for s in index] == [sid]
            assert (await get(f"{server.base}/healthz")).json() == {"status": "ok"}
    assert script_calls(tmp_path) == 4


async def test_http_approvals_by_elicitation_and_by_resolve_approval(tmp_path: Path, transport: str) -> None:
    rec = Recorder()
    rec.answers.append({"decision": "approve", "feedback": "ship it"})
    with anyio.fail_after(120):
        async with http_server(tmp_path, []) as server:
            async with connect_http(server, transport, rec, elicit=True) as client:
                approved = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Deploy to production?"}))
            assert approved["status"] == "completed" and len(rec.elicitations) == 1
            assert "Deploy to production?" in rec.elicitations[0].message
            async with connect_http(server, transport) as client:  # no elicitation: the call returns the question
                waiting = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship it?"}))
                assert waiting["status"] == "waiting_input" and "resolve_approval" in waiting["next"]
                pending = waiting["pending_approval"]
                done = data(await client.call_tool("resolve_approval", {"session_id": waiting["session_id"], "approval_id": pending["id"],
                                                                        "decision": "approve", "feedback": "go"}))
                assert done["status"] == "completed" and done["result"]["decision"] == "approve"
                transcript = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)
                assert any(e["type"] == "approval_resolved" for e in transcript["events"])


async def test_http_cancellation_mid_call_leaves_the_server_healthy_and_the_session_resumable(tmp_path: Path, transport: str) -> None:
    script = [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "hang": True},
        {"agent": "engineer", "text": "Resumed and done."},
    ]
    rec = Recorder()
    with anyio.fail_after(120):
        async with http_server(tmp_path, script) as server:
            async with connect_http(server, transport, rec) as client:
                async with anyio.create_task_group() as tg:
                    async def call() -> None:
                        await client.call_tool("copilot", {"task": "Compute six times seven with Python"}, progress_callback=rec.on_progress)

                    tg.start_soon(call)
                    while script_calls(tmp_path) < 2:  # the engineer's model call hangs in the server
                        await anyio.sleep(0.05)  # polling a file written by another process: no event to wait on
                    tg.cancel_scope.cancel()
                sid = rec.progress[0][2].split()[1]
                assert (await get(f"{server.base}/healthz")).status_code == 200
                status = data(await client.call_tool("session_status", {"session_id": sid}))
                assert status["status"] == "paused" or status["live"]  # paused once the interrupted round has unwound
            async with connect_http(server, transport) as client:  # a new connection picks the session up
                done = data(await client.call_tool("continue_copilot", {"session_id": sid}))
                assert done["status"] == "completed" and done["result"] == "Resumed and done."
    assert script_calls(tmp_path) == 3


async def test_http_resource_updated_notifications(tmp_path: Path) -> None:
    rec = Recorder()
    with anyio.fail_after(120):
        async with http_server(tmp_path, FOUR_HOPS) as server, connect_http(server, "http-2025", rec) as client:
            first = data(await client.call_tool("copilot", {"task": "Plan and write a report in three steps", "max_rounds": 1}))
            await client.subscribe_resource(first["transcript_uri"])
            data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
            await rec.updated.wait()  # sent on the standalone GET stream
    assert any(isinstance(n, types.ResourceUpdatedNotification) and n.params.uri == first["transcript_uri"] for n in rec.notifications)


async def test_http_unknown_session_is_an_error_result(tmp_path: Path, transport: str) -> None:
    with anyio.fail_after(60):
        async with http_server(tmp_path, []) as server, connect_http(server, transport) as client:
            bad = await client.call_tool("session_status", {"session_id": "s_doesnotexist"})
            assert bad.is_error and "unknown session id 's_doesnotexist'" in text(bad)


async def test_http_shutdown_pauses_a_detached_run_and_a_new_server_resumes_it(tmp_path: Path) -> None:
    script = [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "hang": True},
        {"agent": "engineer", "text": "Resumed after a restart."},
    ]
    with anyio.fail_after(120):
        async with http_server(tmp_path, script) as server:
            async with connect_http(server, "http-2026") as client:
                first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 0}))
                assert first["status"] == "running"
            # the client is gone; the run goes on detached, into the hanging model call
            while script_calls(tmp_path) < 2:
                await anyio.sleep(0.05)  # polling a file written by another process: no event to wait on
            assert (await get(f"{server.base}/healthz")).status_code == 200
        # SIGTERM: a graceful shutdown (uvicorn exits by the signal it caught) that recorded the session paused
        assert server.proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in server.log()
        async with http_server(tmp_path, script) as server, connect_http(server, "http-2025") as client:
            status = data(await client.call_tool("session_status", {"session_id": first["session_id"]}))
            assert status["status"] == "paused" and status["live"] is False
            done = data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
    assert done["status"] == "completed" and done["result"] == "Resumed after a restart."
