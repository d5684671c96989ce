"""Security of `serve --transport http`: Host/Origin validation, bearer tokens, principals, remote code execution.

"Off loopback" is simulated honestly: every server here listens on 127.0.0.1 only. The remote configuration is the
production app (``build_app``) built for a non-loopback bind (``host="0.0.0.0"``) and served by uvicorn on a
127.0.0.1 socket in a thread; requests name the public host in their Host header, as a client reaching the server
by its name would. What differs off loopback is decided by that configuration alone (the token requirement, the
allowed hosts), so the traffic never has to leave the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.auth import token_subject
from server.http import HttpSettings, build_app
from swarm.errors import ConfigError
from tests.e2e.http_harness import INITIALIZE, REPO, TRANSPORTS, HttpServer, connect_http, get, http_server, post, serve_env, serve_in_thread
from tests.e2e.http_verifier import ALICE, BOB
from tests.e2e.mcp_harness import data, text

pytestmark = pytest.mark.anyio

TOKEN = "static-token-for-tests-0123456789"
TWO_HOPS = [{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "ok"}]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


# ---- Host and Origin ------------------------------------------------------------------------------------


async def test_bad_origin_gets_403_and_bad_host_421_on_every_transport(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with http_server(tmp_path, []) as server:
            port = server.base.rsplit(":", 1)[1]
            assert (await post(server.url, INITIALIZE, Origin="http://evil.example")).status_code == 403
            assert (await post(server.url, INITIALIZE, Host="evil.example")).status_code == 421
            assert (await post(server.url, INITIALIZE, Host=f"evil.example:{port}")).status_code == 421
            assert (await get(server.sse_url, Origin="http://evil.example")).status_code == 403
            assert (await get(server.sse_url, Host="evil.example")).status_code == 421
            assert (await post(f"{server.base}/messages/?session_id=x", {}, Host="evil.example")).status_code == 421
            ok = await post(server.url, INITIALIZE, Origin=f"http://localhost:{port}", Host=f"localhost:{port}")
            assert ok.status_code == 200 and ok.headers.get("mcp-session-id")
            assert (await get(f"{server.base}/healthz", Host="probe.internal")).status_code == 200  # probes: no Host check


# ---- bearer tokens ------------------------------------------------------------------------------------


def sessions_in_store(tmp_path: Path) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "server.cli", "sessions", "--json"], env=serve_env(tmp_path, []), cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_a_configured_token_is_required_on_loopback_too(tmp_path: Path, transport: str) -> None:
    with anyio.fail_after(120):
        async with http_server(tmp_path, TWO_HOPS, SWARM_MCP_TOKEN=TOKEN) as server:
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
                refused = await post(server.url, INITIALIZE, **headers)
                assert refused.status_code == 401, headers
                assert refused.headers["www-authenticate"].startswith("Bearer ")
                assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            assert (await get(server.sse_url)).status_code == 401
            assert (await post(f"{server.base}/messages/?session_id=x", {})).status_code == 401
            assert (await get(f"{server.base}/healthz")).status_code == 200
            async with connect_http(server, transport, token=TOKEN) as client:
                assert len((await client.list_tools()).tools) == 13
                done = data(await client.call_tool("copilot", {"task": "Say ok"}))
                assert done["status"] == "completed"
    [record] = sessions_in_store(tmp_path)
    assert record["id"] == done["session_id"] and record["principal"] == f"user:{token_subject(TOKEN)}"
    assert TOKEN not in json.dumps(record)


async def test_a_token_subject_names_the_principal(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with http_server(tmp_path, TWO_HOPS, SWARM_MCP_TOKEN=TOKEN, SWARM_MCP_TOKEN_SUBJECT="ci-bot") as server:
            async with connect_http(server, "http-2026", token=TOKEN) as client:
                done = data(await client.call_tool("copilot", {"task": "Say ok"}))
    [record] = sessions_in_store(tmp_path)
    assert record["id"] == done["session_id"] and record["principal"] == "user:ci-bot"


# ---- the remote configuration (a non-loopback bind), served on 127.0.0.1 -----------------------------


def remote_app(tmp_path: Path, **settings: Any) -> Any:
    from server.app import build_server
    from swarm.config import Settings

    mcp = build_server(Settings.from_env({"SWARM_MCP_HOME": str(tmp_path / "home"), "SWARM_MCP_MODEL": "scripted",
                                          "SWARM_MCP_SCRIPT": str(tmp_path / "script.json")}))
    return build_app(mcp, HttpSettings(host="0.0.0.0", **settings))


def test_off_loopback_the_server_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refusing to serve on '0.0.0.0' without authentication.*SWARM_MCP_TOKEN"):
        remote_app(tmp_path, allowed_hosts=["mcp.example.test"])
    with pytest.raises(ConfigError, match="SWARM_MCP_ALLOWED_HOSTS"):  # a wildcard bind needs the names clients use
        remote_app(tmp_path, token=TOKEN)


async def test_off_loopback_requests_need_the_token_and_a_public_host_name(tmp_path: Path) -> None:
    (tmp_path / "script.json").write_text("[]")
    app = remote_app(tmp_path, token=TOKEN, allowed_hosts=["mcp.example.test"], allowed_origins=["https://app.example.test"])
    with anyio.fail_after(60):
        async with serve_in_thread(app) as base:
            port = base.rsplit(":", 1)[1]
            public = {"Host": f"mcp.example.test:{port}"}
            unauthorized = await post(f"{base}/mcp", INITIALIZE, **public)
            assert unauthorized.status_code == 401 and unauthorized.headers["www-authenticate"].startswith("Bearer ")
            assert (await post(f"{base}/mcp", INITIALIZE, Authorization=f"Bearer {TOKEN}")).status_code == 421  # Host 127.0.0.1
            assert (await post(f"{base}/mcp", INITIALIZE, Authorization=f"Bearer {TOKEN}", Origin="http://localhost:3000",
                               **public)).status_code == 403
            ok = await post(f"{base}/mcp", INITIALIZE, Authorization=f"Bearer {TOKEN}", Origin="https://app.example.test", **public)
            assert ok.status_code == 200
            async with connect_http(HttpServer(base=base, proc=None), "http-2026", token=TOKEN, headers=public) as client:  # type: ignore[arg-type]
                assert len((await client.list_tools()).tools) == 13


# ---- principals ----------------------------------------------------------------------------------------


async def test_a_second_principal_cannot_read_list_continue_cancel_or_answer_the_first_ones_sessions(tmp_path: Path, transport: str) -> None:
    script = [{"agent": "copilot_control", "handoff": "planner"}, {"agent": "planner", "handoff": "controller"},
              {"agent": "controller", "handoff": "researcher"}, {"agent": "researcher", "text": "Alice's report."}]
    with anyio.fail_after(120):
        async with http_server(tmp_path, script, SWARM_MCP_TOKEN_VERIFIER="http_verifier:TwoUsers") as server:
            async with connect_http(server, "http-2025", token=ALICE) as alice:
                paused = data(await alice.call_tool("copilot", {"task": "Write a report", "max_rounds": 1}))
                waiting = data(await alice.call_tool("invoke_hitl_checkpoint_phase", {"message": "Deploy?"}))
                assert paused["status"] == "paused" and waiting["status"] == "waiting_input"
            sid, gate = paused["session_id"], waiting["session_id"]
            async with connect_http(server, transport, token=BOB) as bob:
                calls = [
                    ("session_status", {"session_id": sid}),
                    ("continue_copilot", {"session_id": sid}),
                    ("continue_copilot", {"session_id": gate, "message": "approve"}),
                    ("copilot", {"task": "hijack", "session_id": sid}),
                    ("cancel_session", {"session_id": sid}),
                    ("resolve_approval", {"session_id": gate, "approval_id": waiting["pending_approval"]["id"], "decision": "approve"}),
                    ("invoke_control_phase", {"session_id": sid}),
                    ("invoke_hitl_control_phase", {"session_id": sid}),
                ]
                for name, args in calls:
                    result = await bob.call_tool(name, args)
                    assert result.is_error and "unknown session id" in text(result), (name, text(result))
                    assert result.meta["swarm-mcp/error-kind"] == "unknown_session"
                for uri in (f"swarm://sessions/{sid}", f"swarm://sessions/{sid}/transcript", f"swarm://sessions/{gate}/transcript.md"):
                    with pytest.raises(Exception, match="unknown session id"):
                        await bob.read_resource(uri)
                assert json.loads((await bob.read_resource("swarm://sessions")).contents[0].text) == []
                import mcp_types as types

                completion = await bob.complete(types.ResourceTemplateReference(type="ref/resource", uri="swarm://sessions/{session_id}"),
                                                {"name": "session_id", "value": "s_"})
                assert completion.completion.values == []
                if transport != "http-2026":  # resources/subscribe is a 2025-11-25 method
                    with pytest.raises(Exception, match="unknown session id"):
                        await bob.subscribe_resource(f"swarm://sessions/{sid}/transcript")
            async with connect_http(server, "http-2026", token=ALICE) as alice:  # untouched: alice goes on
                assert data(await alice.call_tool("session_status", {"session_id": gate}))["status"] == "waiting_input"
                done = data(await alice.call_tool("continue_copilot", {"session_id": sid, "max_rounds": 10}))
                assert done["status"] == "completed" and done["result"] == "Alice's report."
                index = json.loads((await alice.read_resource("swarm://sessions")).contents[0].text)
                assert {s["session_id"] for s in index} == {sid, gate}
    principals = {r["id"]: r["principal"] for r in sessions_in_store(tmp_path)}
    assert principals == {sid: "user:alice", gate: "user:alice"}


# ---- code execution ------------------------------------------------------------------------------------

RUN_CODE = [
    {"agent": "copilot_control", "handoff": "engineer"},
    {"agent": "engineer", "tool": "execute_code", "args": {"code": "print(6 * 7)", "language": "python"}},
]


async def test_code_execution_is_off_for_http_callers_by_default(tmp_path: Path) -> None:
    script = [*RUN_CODE, {"agent": "engineer", "expect": "turned off for remote (HTTP) callers", "text": "I could not run the code."}]
    with anyio.fail_after(120):
        async with http_server(tmp_path, script) as server, connect_http(server, "http-2025") as client:
            done = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python"}))
            assert done["status"] == "completed" and done["result"] == "I could not run the code."
            events = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)["events"]
            [result] = [e for e in events if e["type"] == "tool_result" and e["content"].get("name") == "execute_code"]
            assert result["content"]["is_error"] and "SWARM_MCP_REMOTE_CODE=1" in json.dumps(result["content"])
            refused = await client.call_tool("invoke_one_shot_phase", {"task": "Compute six times seven with Python"})
            assert refused.is_error and refused.meta["swarm-mcp/error-kind"] == "config"
            assert "code execution is turned off for remote (HTTP) callers" in text(refused)
            plan = {"steps": [{"sub_task": "Compute it", "agent": "engineer"}]}
            assert (await client.call_tool("invoke_control_phase", {"plan": plan})).is_error
    assert not list((tmp_path / "home").rglob("code/*.py"))  # nothing was written to run, let alone run


async def test_code_execution_for_http_callers_when_enabled(tmp_path: Path) -> None:
    script = [*RUN_CODE, {"agent": "engineer", "expect": "42", "text": "The answer is 42."}]
    with anyio.fail_after(120):
        async with http_server(tmp_path, script, SWARM_MCP_REMOTE_CODE="1") as server, connect_http(server, "http-2026") as client:
            done = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python"}))
    assert done["status"] == "completed" and done["result"] == "The answer is 42."
