"""`swarm-mcp serve` as a subprocess, driven over stdio by the SDK's real client, in both protocol eras."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.e2e.http_harness import script_calls, serve_env
from tests.e2e.mcp_harness import Recorder, data, era, text  # noqa: F401

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def serve(tmp_path: Path, script: list[dict[str, Any]], mode: str, rec: Recorder | None = None) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve"], env=serve_env(tmp_path, script), cwd=str(REPO))
    rec = rec or Recorder()
    with (tmp_path / "server.stderr").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode, message_handler=rec.on_message) as client:
            yield client


SCRIPT = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "text": "All three steps are done."},
]


async def test_stdio_session_pause_continue_transcript_and_progress(tmp_path: Path, era: str) -> None:
    rec = Recorder()
    with anyio.fail_after(120):
        async with serve(tmp_path, SCRIPT, era, rec) as client:
            tools = (await client.list_tools()).tools
            assert len(tools) == 13 and all(t.description and t.output_schema for t in tools)
            first = data(await client.call_tool("copilot", {"task": "Plan and write a report in three steps", "max_rounds": 2},
                                                progress_callback=rec.on_progress))
            assert first["status"] == "paused"
            assert [m for _, _, m in rec.progress][0].startswith(f"session {first['session_id']} started (model: scripted)")
            assert any("round 2: planner -> controller" in m for _, _, m in rec.progress)
            done = data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
            assert done["status"] == "completed" and done["result"] == "All three steps are done."
            transcript = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)
            assert [e["content"]["target"] for e in transcript["events"] if e["type"] == "handoff"] == ["planner", "controller", "researcher"]
            bad = await client.call_tool("session_status", {"session_id": "s_doesnotexist"})
            assert bad.is_error and "unknown session id 's_doesnotexist'" in text(bad)
    assert script_calls(tmp_path) == 4


async def test_stdio_cancellation_mid_call_leaves_the_server_healthy_and_the_session_resumable(tmp_path: Path, era: str) -> None:
    script = [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "hang": True},
        {"agent": "engineer", "text": "Resumed and done."},
    ]
    rec = Recorder()
    with anyio.fail_after(120):
        async with serve(tmp_path, script, era) as client:
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    await client.call_tool("copilot", {"task": "Compute six times seven with Python"}, progress_callback=rec.on_progress)

                tg.start_soon(call)
                while script_calls(tmp_path) < 2:  # the engineer's model call hangs in the server
                    await anyio.sleep(0.05)  # polling a file written by another process: no event to wait on
                tg.cancel_scope.cancel()
            sid = rec.progress[0][2].split()[1]
            done = data(await client.call_tool("continue_copilot", {"session_id": sid}))
            assert done["status"] == "completed" and done["result"] == "Resumed and done."
    assert script_calls(tmp_path) == 3


async def test_stdio_resource_updated_notifications(tmp_path: Path) -> None:
    rec = Recorder()
    with anyio.fail_after(120):
        async with serve(tmp_path, SCRIPT, "legacy", rec) as client:
            first = data(await client.call_tool("copilot", {"task": "Plan and write a report in three steps", "max_rounds": 1}))
            await client.subscribe_resource(first["transcript_uri"])
            data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
            await rec.updated.wait()
    assert any(isinstance(n, types.ResourceUpdatedNotification) and n.params.uri == first["transcript_uri"] for n in rec.notifications)


def test_serve_writes_only_protocol_messages_to_stdout(tmp_path: Path) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve"], input=json.dumps(request) + "\n", capture_output=True, text=True,
                          env=serve_env(tmp_path, []), cwd=REPO, timeout=60)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    reply = json.loads(lines[0])
    assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "swarm-mcp"
    assert reply["result"]["capabilities"]["resources"]["subscribe"] is True


async def test_stdio_shutdown_pauses_a_detached_run_and_a_new_server_resumes_it(tmp_path: Path) -> None:
    script = [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "hang": True},
        {"agent": "engineer", "text": "Resumed after a restart."},
    ]
    with anyio.fail_after(120):
        async with serve(tmp_path, script, "legacy") as client:
            first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 0}))
            assert first["status"] == "running"
            while script_calls(tmp_path) < 2:  # the run goes on detached, into the hanging model call
                await anyio.sleep(0.05)  # polling a file written by another process: no event to wait on
        # the client went away: the server shut down and recorded the session paused
        async with serve(tmp_path, script, "legacy") as client:
            status = data(await client.call_tool("session_status", {"session_id": first["session_id"]}))
            assert status["status"] == "paused" and status["live"] is False
            done = data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
    assert done["status"] == "completed" and done["result"] == "Resumed after a restart."
