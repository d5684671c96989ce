"""A full-profile copilot session over MCP asks before running code: approved, the code runs; rejected, it does not;
both answers are recorded with the principal who gave them and the channel they came through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.auth import token_subject
from tests.e2e.http_harness import connect_http, http_server
from tests.e2e.mcp_harness import Recorder, connect, data, era, make_server  # noqa: F401

pytestmark = pytest.mark.anyio

TOKEN = "static-token-for-tests-approvals-0123"
CODE = {"code": "open('proof.txt', 'w').write('ran')\nprint('ran')", "language": "python"}


def code_script(final: str) -> list[dict[str, Any]]:
    return [{"agent": "copilot_control", "handoff": "engineer"}, {"agent": "engineer", "tool": "execute_code", "args": CODE},
            {"agent": "engineer", "text": final}]


async def transcript(client: Any, sid: str) -> list[dict[str, Any]]:
    return json.loads((await client.read_resource(f"swarm://sessions/{sid}/transcript")).contents[0].text)["events"]


def resolved(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "approval_resolved"]


async def test_approved_through_elicitation_the_code_runs(settings: Any, era: str) -> None:
    server, script = make_server(settings, code_script("proof.txt written"))
    rec = Recorder()
    rec.answers.append({"decision": "approve"})
    async with connect(server, era, rec, elicit=True) as client:
        done = data(await client.call_tool("copilot", {"task": "Write proof.txt with a program", "profile": "full"}))
        events = await transcript(client, done["session_id"])
    assert done["status"] == "completed" and done["result"] == "proof.txt written", done
    assert len(rec.elicitations) == 1 and "open('proof.txt', 'w')" in rec.elicitations[0].message
    assert (settings.work_root / done["session_id"] / "proof.txt").read_text() == "ran"
    [answer] = resolved(events)
    assert (answer["agent"], answer["content"]["decision"], answer["content"]["channel"], answer["content"]["kind"]) == (
        "local", "approve", "elicitation", "code")
    [run] = [e for e in events if e["type"] == "tool_result" and e["content"].get("name") == "execute_code"]
    assert "exit_code: 0" in json.dumps(run["content"])
    script.assert_exhausted()


async def test_over_http_a_rejected_run_does_not_happen_and_an_approved_one_does(tmp_path: Path) -> None:
    script = code_script("I did not run it.") + code_script("proof.txt written")
    principal = f"user:{token_subject(TOKEN)}"
    async with http_server(tmp_path, script, SWARM_MCP_TOKEN=TOKEN, SWARM_MCP_REMOTE_CODE="1") as server:
        async with connect_http(server, "http-2025", token=TOKEN) as client:
            waiting = data(await client.call_tool("copilot", {"task": "Write proof.txt with a program", "profile": "full"}))
            assert waiting["status"] == "waiting_input" and waiting["pending_approval"]["kind"] == "code", waiting
            assert waiting["pending_approval"]["options"] == ["approve", "reject", "revise"]
            sid, approval = waiting["session_id"], waiting["pending_approval"]["id"]
            done = data(await client.call_tool("resolve_approval", {"session_id": sid, "approval_id": approval, "decision": "reject",
                                                                    "feedback": "not today"}))
            assert done["status"] == "completed" and done["result"] == "I did not run it."
            refused = await transcript(client, sid)

            waiting = data(await client.call_tool("copilot", {"task": "Write proof.txt with a program", "profile": "full"}))
            sid2 = waiting["session_id"]
            done = data(await client.call_tool("continue_copilot", {"session_id": sid2, "message": "approve"}))
            assert done["status"] == "completed" and done["result"] == "proof.txt written"
            approved = await transcript(client, sid2)
    home = tmp_path / "home" / "sessions"
    assert not (home / sid / "proof.txt").exists()
    assert (home / sid2 / "proof.txt").read_text() == "ran"
    [no] = resolved(refused)
    assert (no["agent"], no["content"]["decision"], no["content"]["feedback"], no["content"]["channel"]) == (
        principal, "reject", "not today", "resolve_approval")
    [result] = [e for e in refused if e["type"] == "tool_result" and e["content"].get("name") == "execute_code"]
    assert f"{principal} rejected running this code: not today" in json.dumps(result["content"])
    [yes] = resolved(approved)
    assert (yes["agent"], yes["content"]["decision"], yes["content"]["channel"]) == (principal, "approve", "continue_copilot")


async def test_as_an_mcp_task_the_code_approval_is_the_tasks_input_required(tmp_path: Path) -> None:
    import anyio

    from tests.e2e.test_mcp_tasks import Modern

    async with http_server(tmp_path, code_script("proof.txt written"), SWARM_MCP_REMOTE_CODE="1") as server:
        client = Modern(server.url)
        with anyio.fail_after(60):
            handle = await client.request("tools/call", {"name": "copilot", "arguments": {"task": "Write proof.txt", "profile": "full"}})
            waiting = await client.poll(handle["taskId"], until=("input_required", "completed", "failed", "cancelled"))
            assert waiting["status"] == "input_required", waiting
            [(key, request)] = waiting["inputRequests"].items()
            assert "open('proof.txt', 'w')" in request["params"]["message"]
            await client.request("tasks/update", {"taskId": handle["taskId"], "inputResponses": {
                key: {"action": "accept", "content": {"decision": "approve"}}}})
            done = await client.poll(handle["taskId"])
            assert done["status"] == "completed" and done["result"]["structuredContent"]["result"] == "proof.txt written", done
            sid = done["result"]["structuredContent"]["session_id"]
            transcript = await client.request("resources/read", {"uri": f"swarm://sessions/{sid}/transcript"})
    assert (tmp_path / "home" / "sessions" / sid / "proof.txt").read_text() == "ran"
    [answer] = resolved(json.loads(transcript["contents"][0]["text"])["events"])
    assert (answer["agent"], answer["content"]["decision"], answer["content"]["channel"]) == ("local", "approve", "tasks")
