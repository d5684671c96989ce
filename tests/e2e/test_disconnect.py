"""A client that goes away mid-call (its process killed: no cancel notification, the connection just drops) stops its
run at the next safe point, in both protocol eras, and the session is ``paused`` with one honest event: no ``failed``
on the way, no error, nothing left running, and ``continue_copilot`` resumes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from tests.e2e.http_harness import HERE, REPO, connect_http, http_server, script_calls
from tests.e2e.mcp_harness import data

pytestmark = pytest.mark.anyio

SCRIPT = [
    {"agent": "copilot_control", "handoff": "engineer"},
    {"agent": "engineer", "hang": True},
    {"agent": "engineer", "text": "Resumed and done."},
]

CLIENT = """
import sys, anyio
from tests.e2e.http_harness import HttpServer, connect_http

async def main() -> None:
    server = HttpServer(base=sys.argv[1], proc=None)
    async with connect_http(server, sys.argv[2]) as client:
        print("calling", flush=True)
        await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 600})

anyio.run(main)
"""


@pytest.mark.parametrize("transport", ["http-2025", "http-2026", "sse"])
async def test_a_client_killed_mid_call_leaves_the_session_paused_with_one_honest_event(tmp_path: Path, transport: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), str(HERE.parent)])}
    with anyio.fail_after(120):
        async with http_server(tmp_path, SCRIPT) as server:
            client = subprocess.Popen([sys.executable, "-c", CLIENT, server.base, transport], env=env, cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 60
                while script_calls(tmp_path) < 2:  # the engineer's model call hangs in the server
                    assert client.poll() is None, client.communicate()
                    assert time.monotonic() < deadline, "the session did not start"
                    await anyio.sleep(0.05)  # a file another process writes: no event to wait on
            finally:
                client.send_signal(signal.SIGKILL)
                await anyio.to_thread.run_sync(client.wait, 10)

            async with connect_http(server, "http-2026") as other:
                [session] = json.loads((await other.read_resource("swarm://sessions")).contents[0].text)
                sid = session["session_id"]
                deadline = time.monotonic() + 20
                while (status := data(await other.call_tool("session_status", {"session_id": sid})))["status"] == "running":
                    assert time.monotonic() < deadline, f"the run of the dropped call is still running 20 s later: {status}"
                    await anyio.sleep(0.1)
                assert status["status"] == "paused", status
                events = json.loads((await other.read_resource(f"swarm://sessions/{sid}/transcript")).contents[0].text)["events"]
                statuses = [e["content"]["status"] for e in events if e["type"] == "status"]
                assert statuses == ["running", "paused"], statuses
                assert not [e for e in events if e["type"] == "error"], "an interruption on purpose is no error"
                [paused] = [e for e in events if e["type"] == "status" and e["content"]["status"] == "paused"]
                assert "went away" in paused["content"]["reason"] or "cancelled" in paused["content"]["reason"], paused

                done = data(await other.call_tool("continue_copilot", {"session_id": sid}))
                assert done["status"] == "completed" and done["result"] == "Resumed and done.", done
    assert script_calls(tmp_path) == 3  # the hung call, then the resumed one: nothing else was called


async def test_a_2025_call_whose_connection_drops_stops_its_run_though_the_mcp_session_stays(tmp_path: Path) -> None:
    """The unlucky HTTP client: its POST's connection closes (a read timeout, a proxy) while its MCP session lives on."""
    import httpx2

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "copilot", "arguments": {"task": "Compute six times seven with Python", "wait_seconds": 600}}}
    with anyio.fail_after(120):
        async with http_server(tmp_path, SCRIPT) as server, httpx2.AsyncClient(timeout=30) as http:
            init = await http.post(server.url, headers=headers, content=json.dumps({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "unlucky", "version": "0"}}}))
            assert init.status_code == 200, init.text
            session = {**headers, "Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
            ack = await http.post(server.url, headers=session, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            assert ack.status_code == 202, ack.text
            async with http.stream("POST", server.url, headers=session, content=json.dumps(call)) as response:
                assert response.status_code == 200
                deadline = time.monotonic() + 60
                while script_calls(tmp_path) < 2:  # the engineer's model call hangs in the server
                    assert time.monotonic() < deadline, "the session did not start"
                    await anyio.sleep(0.05)  # a file another process writes: no event to wait on
            # the stream is closed: the connection is gone, the MCP session (Mcp-Session-Id) still exists

            async with connect_http(server, "http-2026") as other:
                [record] = json.loads((await other.read_resource("swarm://sessions")).contents[0].text)
                sid = record["session_id"]
                deadline = time.monotonic() + 20
                while (status := data(await other.call_tool("session_status", {"session_id": sid})))["status"] == "running":
                    assert time.monotonic() < deadline, f"the run of the dropped call is still running 20 s later: {status}"
                    await anyio.sleep(0.1)
                events = json.loads((await other.read_resource(f"swarm://sessions/{sid}/transcript")).contents[0].text)["events"]
    assert status["status"] == "paused", status
    assert [e["content"]["status"] for e in events if e["type"] == "status"] == ["running", "paused"]
    assert not [e for e in events if e["type"] == "error"]
    assert script_calls(tmp_path) == 2  # no model call after the drop
