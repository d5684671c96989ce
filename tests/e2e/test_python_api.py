"""A session started from Python continues over MCP and back: the Python API and the real server (through the SDK's
real client, in memory) on one data directory, their results the same fields."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.app import build_server
from swarm import ApprovalRequest, SwarmConfig, SwarmOrchestrator, acontinue_copilot, acopilot, afull_swarm, model_source
from swarm.models.scripted import Script
from tests.e2e.mcp_harness import connect, data
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]

SIX_HOPS = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "text": "All steps are done."},
]


def code(name: str) -> dict[str, str]:
    return {"code": f"open({name!r}, 'w').write('ran')\nprint('wrote {name}')", "language": "python"}


def python_config(settings: Any) -> SwarmConfig:
    """The Python API on the server's data directory (and durability), answering nothing on the console."""
    return SwarmConfig(work_dir=settings.home, durable=settings.durable, interactive=False)


@pytest.fixture(params=["volatile", "durable"])
def shared(request: pytest.FixtureRequest, settings: Any) -> Any:
    """The server's settings, also as a durable engine's (as both run by default)."""
    return dataclasses.replace(settings, durable=request.param == "durable")


async def test_started_in_python_continued_over_mcp_and_back(shared: Any) -> None:
    script = Script(SIX_HOPS)
    config = python_config(shared)
    with anyio.fail_after(120), model_source(ScriptedModels(script)):
        first = await acopilot("Plan and write a report in steps", max_rounds=2, config=config)
        assert first["status"] == "paused" and first["rounds_used"] == 2
        sid = first["session_id"]

        async with connect(build_server(shared, models=ScriptedModels(script)), "auto") as client:
            status = data(await client.call_tool("session_status", {"session_id": sid}))
            assert {k: v for k, v in status.items() if k != "next"} == {k: v for k, v in first.model_dump(mode="json").items() if k != "next"}
            second = data(await client.call_tool("continue_copilot", {"session_id": sid, "max_rounds": 2}))
            assert second["status"] == "paused" and second["total_rounds"] == 4

        third = await acontinue_copilot(sid, config=config)
        assert third["status"] == "completed" and third["result"] == "All steps are done." and third["total_rounds"] == 6
        assert third["usage"]["total"]["total_tokens"] == 6 * 15  # every call once, whoever ran the leg

        async with connect(build_server(shared, models=ScriptedModels(script)), "legacy") as client:
            final = data(await client.call_tool("session_status", {"session_id": sid}))
            events = json.loads((await client.read_resource(third["transcript_uri"])).contents[0].text)["events"]
    script.assert_exhausted()
    assert final == third.model_dump(mode="json") | {"next": final["next"]}
    assert list(final) == third.keys()
    assert [e["content"]["target"] for e in events if e["type"] == "handoff"] == ["planner", "controller", "researcher", "controller", "researcher"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_an_approval_asked_in_python_is_answered_over_mcp_and_back(settings: Any) -> None:
    script = Script([
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "tool": "execute_code", "args": code("a.txt")},
        {"agent": "engineer", "tool": "execute_code", "args": code("b.txt")},
        {"agent": "engineer", "text": "Wrote a.txt; b.txt was refused."},
    ])
    asked: list[ApprovalRequest] = []

    def reject(request: ApprovalRequest) -> tuple[str, str]:
        asked.append(request)
        return "reject", "one file is enough"

    config = python_config(settings)
    with anyio.fail_after(120), model_source(ScriptedModels(script)):
        waiting = await afull_swarm("Write two files with programs", config=config)  # no manager, no console: it waits
        assert waiting["status"] == "waiting_input" and waiting["pending_approval"]["kind"] == "code"
        sid, first = waiting["session_id"], waiting["pending_approval"]["id"]

        async with connect(build_server(settings, models=ScriptedModels(script)), "auto") as client:
            second = data(await client.call_tool("resolve_approval", {"session_id": sid, "approval_id": first, "decision": "approve"}))
            assert second["status"] == "waiting_input" and "b.txt" in second["pending_approval"]["message"]

        done = await acontinue_copilot(sid, approval_manager=reject, config=config)
        async with SwarmOrchestrator(config) as swarm:
            events = await swarm.engine.transcript(sid)
    script.assert_exhausted()
    assert done["status"] == "completed" and done["result"] == "Wrote a.txt; b.txt was refused."
    assert [r.approval_id for r in asked] == [second["pending_approval"]["id"]]
    work = settings.home / "sessions" / sid
    assert (work / "a.txt").read_text() == "ran" and not (work / "b.txt").exists()
    answers = [(e.content["decision"], e.content["channel"]) for e in events if e.type == "approval_resolved"]
    assert answers == [("approve", "resolve_approval"), ("reject", "python")]


async def test_the_cli_runs_a_profile_through_mcp_and_python_reads_the_session(tmp_path: Path) -> None:
    """``swarm-mcp run TASK --profile quick`` (a real MCP client of a ``serve`` it spawns) on the data directory the
    Python API then reads the session from."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "Quick answer."}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    env.update(SWARM_MCP_HOME=str(tmp_path / "home"), SWARM_MCP_MODEL="scripted", SWARM_MCP_SCRIPT=str(script), PYTHONPATH=str(REPO))
    run = await anyio.run_process([sys.executable, "-m", "server.cli", "run", "Explain DNS briefly", "--profile", "quick", "--json"],
                                  env=env, cwd=REPO, check=False)
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout)
    assert result["status"] == "completed" and result["result"] == "Quick answer." and result["max_rounds"] == 8

    async with SwarmOrchestrator(SwarmConfig(work_dir=tmp_path / "home", interactive=False)) as swarm:
        status = await swarm.status(result["session_id"])
        record = await swarm.engine.get(result["session_id"])
    assert status.model_dump(mode="json") == result | {"next": status.next}
    assert record.profile is not None and record.profile.name == "quick" and record.profile.phase_tools is False
