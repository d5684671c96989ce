"""The Python API (swarm/api.py): the original system's usage, as written, on a scripted model; its config, approval
managers, plugins and the cheap ``import swarm``."""

from __future__ import annotations

import ast
import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm import (ApprovalDecision, ApprovalRequest, SwarmConfig, SwarmOrchestrator, acopilot, continue_copilot, copilot,
                   full_swarm, model_source, quick_swarm)
from swarm.approval_manager import ConsoleApprovals, decision_of
from swarm.api import provider_env
from swarm.models.scripted import Script
from tests.fakes import ScriptedModels

REPO = Path(__file__).resolve().parents[2]
RESULT_FIELDS = ["session_id", "kind", "status", "rounds_used", "total_rounds", "max_rounds", "result", "error",
                 "pending_approval", "usage", "transcript_uri", "live", "next"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data directory of the API's default settings (as the server's: SWARM_MCP_HOME)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SWARM_MCP_HOME", str(home))
    monkeypatch.setenv("SWARM_MCP_DURABLE", os.environ.get("SWARM_MCP_TEST_DURABLE", "0"))
    return home


def ping_pong(rounds: int, answer: str) -> list[dict[str, Any]]:
    """``rounds`` agent turns: the router hands to the researcher, which hands back and forth with the controller until
    the last turn answers."""
    entries: list[dict[str, Any]] = [{"agent": "copilot_control", "handoff": "researcher"}]
    agent = "researcher"
    for _ in range(rounds - 2):
        other = "controller" if agent == "researcher" else "researcher"
        entries.append({"agent": agent, "handoff": other})
        agent = other
    return [*entries, {"agent": agent, "text": answer}]


def code(name: str) -> dict[str, str]:
    return {"code": f"open({name!r}, 'w').write('ran')\nprint('wrote {name}')", "language": "python"}


APPROVED_AND_REJECTED = [
    {"agent": "copilot_control", "handoff": "engineer"},
    {"agent": "engineer", "tool": "execute_code", "args": code("a.txt")},
    {"agent": "engineer", "tool": "execute_code", "args": code("b.txt")},
    {"agent": "engineer", "text": "Wrote a.txt; b.txt was refused."},
]


async def transcript(session_id: str) -> list[Any]:
    async with SwarmOrchestrator() as swarm:
        return await swarm.engine.transcript(session_id)


def test_the_original_usage_runs_as_written(home: Path) -> None:
    script = Script([
        *ping_pong(103, "The REST API is built."),
        *APPROVED_AND_REJECTED,
        {"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "Simple answer."},
        {"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "Task done."},
    ])
    asked: list[ApprovalRequest] = []

    def hitl_manager(request: ApprovalRequest) -> Any:
        asked.append(request)
        return "approve" if len(asked) == 1 else ("reject", "not this one")

    api_keys = {"OPENAI": None}
    work_dir = home
    with model_source(ScriptedModels(script)):
        # -- as the original system was used --
        result = copilot("Build a REST API", max_rounds=100)
        paused = result
        if result["status"] == "paused":
            result = continue_copilot(result["session_id"])
        continued = result
        result = full_swarm("Complex multi-agent task", approval_manager=hitl_manager)   # all agents, approvals
        full = result
        result = quick_swarm("Simple task")                                              # lightweight, unattended
        quick = result
        config = SwarmConfig(max_rounds=50, enable_phase_tools=True, use_copilot_control=True)

        async def main() -> Any:
            swarm = SwarmOrchestrator(config); await swarm.initialize(api_keys, work_dir); result = await swarm.run("Task")  # noqa: E702
            await swarm.close()
            return result

        result = asyncio.run(main())
    script.assert_exhausted()

    assert paused["status"] == "paused" and paused["rounds_used"] == 100 and paused["max_rounds"] == 100
    assert "continue_copilot" in paused["next"] and paused.get("error") is None and "usage" in paused
    assert list(paused.keys()) == RESULT_FIELDS
    assert continued["status"] == "completed" and continued["session_id"] == paused["session_id"]
    assert continued["result"] == "The REST API is built." and continued["rounds_used"] == 3 and continued["total_rounds"] == 103
    assert continued["usage"]["total"]["total_tokens"] == 103 * 15

    assert full["status"] == "completed" and full["result"] == "Wrote a.txt; b.txt was refused.", full
    assert [(r.kind, r.agent, r.options) for r in asked] == [("code", "engineer", ("approve", "reject", "revise"))] * 2
    assert all(r.session_id == full["session_id"] for r in asked) and "a.txt" in asked[0].message and "b.txt" in asked[1].message
    work = home / "sessions" / full["session_id"]
    assert (work / "a.txt").read_text() == "ran" and not (work / "b.txt").exists()
    events = asyncio.run(transcript(full["session_id"]))
    answers = [(e.agent, e.content["decision"], e.content.get("channel")) for e in events if e.type == "approval_resolved"]
    assert answers == [("local", "approve", "python"), ("local", "reject", "python")]

    assert quick["status"] == "completed" and quick["result"] == "Simple answer." and quick["max_rounds"] == 8
    assert result["status"] == "completed" and result["result"] == "Task done." and result["max_rounds"] == 50


def test_sessions_keep_their_profile_and_the_config_maps_onto_it(home: Path) -> None:
    script = Script([{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "ok"}] * 2)

    async def main() -> tuple[Any, Any]:
        config = SwarmConfig(profile="full", enable_phase_tools=False, max_tokens=5000, max_seconds=60)
        async with SwarmOrchestrator(config, models=ScriptedModels(script)) as swarm:
            first = await swarm.run("Explain DNS")
            record = await swarm.engine.get(first.session_id)
            assert record.profile is not None and record.profile.name == "full" and record.profile.phase_tools is False
            assert record.profile.approvals.before_code and record.profile.budget.tokens == 5000 and record.max_rounds == 50
            second = await swarm.run("Explain TCP", profile="quick", max_rounds=3)
            record = await swarm.engine.get(second.session_id)
            assert record.profile.name == "quick" and record.max_rounds == 3
            return first, await swarm.status(second.session_id)

    first, second = asyncio.run(main())
    assert first.status == second["status"] == "completed" and second.live is False
    with pytest.raises(ValueError, match="use_copilot_control=False cannot be honoured"):
        SwarmConfig(use_copilot_control=False)


def test_api_keys_reach_the_model_backends_only(home: Path) -> None:
    assert provider_env({"OPENAI": "sk-1", "anthropic_api_key": "a-2", "GEMINI": None, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) == {
        "OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "a-2", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    with pytest.raises(ValueError, match="unknown key 'MISTRAL'"):
        provider_env({"MISTRAL": "m-3"})

    async def main() -> str:
        async with SwarmOrchestrator() as swarm:
            assert swarm.engine.models.spec_for("default") == "local"  # no key in the environment
        swarm = SwarmOrchestrator()
        await swarm.initialize(api_keys={"openai": "sk-test"})
        try:
            return swarm.engine.models.spec_for("default")
        finally:
            await swarm.close()

    assert asyncio.run(main()) == "openai:gpt-4o-mini"
    assert "OPENAI_API_KEY" not in os.environ


def test_a_question_goes_to_the_manager_or_ends_the_call_waiting(home: Path) -> None:
    script = Script([
        {"agent": "copilot_control", "handoff": "assistant"},
        {"agent": "assistant", "text": "Which project do you mean?"},
        {"agent": "copilot_control", "handoff": "researcher", "expect": "the swarm-mcp README"},
        {"agent": "researcher", "text": "Summary of the README."},
    ] * 2)
    with model_source(ScriptedModels(script)):
        result = copilot("Help me with my project", config=SwarmConfig(interactive=False))
        assert result["status"] == "waiting_input" and result["pending_approval"]["kind"] == "question"
        assert result["pending_approval"]["options"] == ["answer"] and "resolve_approval" in result["next"]
        result = continue_copilot(result["session_id"], "the swarm-mcp README")
        assert result["status"] == "completed"

        async def manager(request: ApprovalRequest) -> str:
            assert request.kind == "question" and request.message == "Which project do you mean?"
            return "the swarm-mcp README"

        result = copilot("Help me with my project", approval_manager=manager)
    assert result["status"] == "completed" and result["result"] == "Summary of the README."
    script.assert_exhausted()


@pytest.mark.anyio
async def test_sync_forms_refuse_a_running_event_loop(home: Path) -> None:
    with pytest.raises(RuntimeError, match=r"use `await acopilot\(\.\.\.\)` instead"):
        copilot("Build a REST API")
    with pytest.raises(RuntimeError, match="acontinue_copilot"):
        continue_copilot("s_x")
    script = Script([{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "async ok"}])
    with model_source(ScriptedModels(script)):
        result = await acopilot("Explain DNS", max_rounds=5)
    assert result["status"] == "completed" and result["result"] == "async ok"


@pytest.mark.anyio
async def test_an_approval_manager_answers_a_phase_session(home: Path) -> None:
    """Any session's approvals: a human-in-the-loop planning phase, revised then approved by an async manager."""
    from phases import run_phase
    from tests.phases.phase_helpers import plan

    first, second = plan(("build it", "engineer")), plan(("build it", "engineer"), ("test it", "engineer"))
    script = Script([{"agent": "planner", "json": first}, {"agent": "planner", "json": second, "expect": "add a testing step"}])
    asked: list[ApprovalRequest] = []

    async def manager(request: ApprovalRequest) -> Any:
        asked.append(request)
        return ("modify", "add a testing step") if len(asked) == 1 else ApprovalDecision("approve")

    async with SwarmOrchestrator(SwarmConfig(interactive=False), models=ScriptedModels(script)) as swarm:
        started = await run_phase(swarm.engine, "hitl_planning", {"task": "Build a CLI", "n_plan_reviews": 0})
        assert started.status == "waiting_input"
        result = await swarm.continue_(started.session_id, approval_manager=manager)
        events = await swarm.engine.transcript(started.session_id)
    script.assert_exhausted()
    assert result.status == "completed" and result["result"]["plan"] == second
    assert [r.kind for r in asked] == ["plan", "plan"] and "Step 2 (engineer): test it" in asked[1].message
    answers = [(e.content["decision"], e.content["who"]) for e in events if e.type == "approval_resolved"]
    assert answers == [("revise", "local"), ("approve", "local")]


def test_decisions_and_the_console() -> None:
    plan = ApprovalRequest("s_1", "a_1", "plan", "Approve the plan?", ("approve", "revise", "reject"), "planner")
    question = ApprovalRequest("s_1", "q_1", "question", "Which one?", ("answer",))
    assert decision_of(plan, "approve") == ApprovalDecision("approve")
    assert decision_of(plan, ("revise", "more tests")) == ApprovalDecision("revise", "more tests")
    assert decision_of(question, "the first") == ApprovalDecision("answer", "the first")
    assert decision_of(plan, None) is None
    with pytest.raises(TypeError, match="must return a decision string"):
        decision_of(plan, 42)  # type: ignore[arg-type]
    err = io.StringIO()
    assert ConsoleApprovals(io.StringIO("maybe\nrevise\nsplit step 2\n"), err)(plan) == ApprovalDecision("revise", "split step 2")
    assert "expected one of ['approve', 'revise', 'reject']" in err.getvalue() and "Approve the plan?" in err.getvalue()
    assert ConsoleApprovals(io.StringIO("the first\n"), err)(question) == ApprovalDecision("answer", "the first")
    assert ConsoleApprovals(io.StringIO(""), err)(plan) is None  # end of input: the request stays waiting


def test_tool_plugins_come_through_the_entry_point() -> None:
    from importlib.metadata import EntryPoint

    from swarm.errors import ConfigError
    from swarm.manifest import load_agents
    from swarm.plugins import agents_with_tools, plugin_tools, tool_plugins

    assert "phases" in [ep.name for ep in tool_plugins()]
    installed = plugin_tools()
    assert "invoke_planning_phase" in installed.names() and "phase" in installed.works
    bare = plugin_tools([])
    assert bare.names() == ["execute_code"] and not bare.works
    agents = agents_with_tools(load_agents(), bare)
    assert agents["copilot_control"].tools == [] and agents["engineer"].tools == ["execute_code"]
    with pytest.raises(ConfigError, match="plugin 'broken'"):
        plugin_tools([EntryPoint("broken", "no_such_module:registry", "swarm_mcp.tools")])


def test_import_swarm_is_cheap_and_swarm_imports_neither_phases_nor_server() -> None:
    probe = ("import sys, swarm; from swarm import SwarmConfig, ApprovalRequest, SessionResult; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('autogen_core', 'autogen_agentchat', 'sqlalchemy', 'phases', 'server')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    for path in (REPO / "swarm").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not [n for n in names if n.split(".")[0] in ("phases", "server")], f"{path} imports {names}"
        assert "import_module(\"phases" not in path.read_text() and "import_module('phases" not in path.read_text(), path
