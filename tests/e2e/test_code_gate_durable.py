"""The remote-code gate survives a crash: a session started over HTTP (code off for remote callers) and resumed by a
restarted server after kill -9 still runs no code.

What a session may do is part of its durable record (``SessionRecord.grants``), so the run the new process recovers
at launch obeys the same gate as the one that was killed. The server is killed while the engineer's model call is in
flight: the restarted server makes that call again, and the engineer's ``execute_code`` is refused.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import anyio
import pytest

from tests.e2e.http_harness import connect_http, http_server, script_calls
from tests.e2e.mcp_harness import data

pytestmark = pytest.mark.anyio

MARK = "ran.txt"
SCRIPT = [
    {"agent": "copilot_control", "handoff": "engineer"},
    {"agent": "engineer", "delay": 2.0, "tool": "execute_code",
     "args": {"code": f"open({MARK!r}, 'w').write('code ran')\nprint(6 * 7)", "language": "python"}},
    {"agent": "engineer", "text": "I could not run the code."},
]


async def test_kill_9_mid_session_then_restart_runs_no_code_for_a_remote_caller(tmp_path: Path) -> None:
    env = dict(SWARM_MCP_EXECUTOR_ID="solo", SWARM_MCP_DURABLE="1")
    with anyio.fail_after(150):
        async with http_server(tmp_path, SCRIPT, **env) as server:
            async with connect_http(server, "http-2025") as client:
                first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 0}))
                sid = first["session_id"]
                deadline = time.monotonic() + 30
                while data(await client.call_tool("session_status", {"session_id": sid}))["total_rounds"] < 1:
                    assert time.monotonic() < deadline, server.log()  # copilot_control's round is committed: the engineer's
                    await anyio.sleep(0.05)                           # (slow) call is in flight
            server.proc.send_signal(signal.SIGKILL)
            await anyio.to_thread.run_sync(server.proc.wait, 10)
        assert script_calls(tmp_path) == 1, "the engineer's call finished before the kill; lengthen its delay"

        async with http_server(tmp_path, SCRIPT, **env) as server, connect_http(server, "http-2026") as client:
            deadline = time.monotonic() + 60
            while (status := data(await client.call_tool("session_status", {"session_id": sid})))["status"] == "running":
                assert time.monotonic() < deadline, f"the restarted server did not finish the session: {status}"
                await anyio.sleep(0.1)
            events = json.loads((await client.read_resource(f"swarm://sessions/{sid}/transcript")).contents[0].text)["events"]

    assert status["status"] == "completed" and status["result"] == "I could not run the code.", status
    [result] = [e for e in events if e["type"] == "tool_result" and e["content"].get("name") == "execute_code"]
    assert result["content"]["is_error"], result
    assert "SWARM_MCP_REMOTE_CODE=1" in json.dumps(result["content"]) and "exit_code" not in json.dumps(result["content"])
    home = tmp_path / "home"
    assert not list(home.rglob(MARK)), "the engineer's code ran after the restart"
    assert not list(home.rglob("code/*.py")), "the engineer's code was written to be run"
