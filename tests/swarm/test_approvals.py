"""Approvals inside a copilot session, by its profile's policy: before code, before a phase, after a failed step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.errors import UserInputError
from swarm.models.scripted import Script
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.anyio

CODE = {"code": "open('out.txt', 'w').write('ran')\nprint('ran')", "language": "python"}


def code_session(after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"agent": "copilot_control", "handoff": "engineer"}, {"agent": "engineer", "tool": "execute_code", "args": CODE}, *after]


async def start(settings: Any, entries: list[dict[str, Any]], profile: str = "full", **kw: Any) -> tuple[Engine, Any, Script]:
    script = Script(entries)
    engine = Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script))
    await engine.store.open()
    record = await engine.create("Write out.txt with a program", profile=profile, principal="alice", **kw)
    return engine, await engine.go_on(record.id, principal="alice"), script


async def test_full_profile_asks_before_code_and_runs_it_once_approved(settings: Any) -> None:
    engine, record, script = await start(settings, code_session([{"agent": "engineer", "text": "Wrote out.txt."}]))
    assert record.status == "waiting_input"
    pending = record.pending
    assert pending.kind == "code" and pending.agent == "engineer" and pending.options == ["approve", "reject", "revise"]
    assert "open('out.txt', 'w')" in pending.message
    work = Path(record.meta["work_dir"])
    assert not (work / "out.txt").exists()  # nothing ran yet
    calls_before = len(script.calls)
    record = await engine.answer(record.id, pending.id, "approve", who="alice", channel="elicitation", principal="alice")
    assert record.status == "completed" and record.result == "Wrote out.txt."
    assert (work / "out.txt").read_text() == "ran"
    assert len(script.calls) == calls_before + 1  # the engineer's code proposal was replayed from the journal, not asked again
    script.assert_exhausted()
    events = await engine.transcript(record.id)
    [resolved] = [e for e in events if e.type == "approval_resolved"]
    assert resolved.content["who"] == "alice" and resolved.content["channel"] == "elicitation" and resolved.content["decision"] == "approve"
    [result] = [e for e in events if e.type == "tool_result" and e.content.get("name") == "execute_code"]
    assert "exit_code: 0" in str(result.content)
    await engine.store.close()


async def test_rejected_code_does_not_run_and_the_agent_reads_who_refused(settings: Any) -> None:
    engine, record, script = await start(settings, code_session([{"agent": "engineer", "text": "I did not run it."}]))
    pending = record.pending
    record = await engine.answer(record.id, pending.id, "reject", "not on my machine", who="bob", principal="alice")
    assert record.status == "completed"
    assert not (Path(record.meta["work_dir"]) / "out.txt").exists()
    last = script.calls[-1]
    assert "bob rejected running this code: not on my machine" in last["last"]
    events = await engine.transcript(record.id)
    [resolved] = [e for e in events if e.type == "approval_resolved"]
    assert (resolved.agent, resolved.content["decision"], resolved.content["channel"]) == ("bob", "reject", "resolve_approval")
    await engine.store.close()


async def test_revise_sends_the_feedback_and_asks_again_for_the_new_code(settings: Any) -> None:
    engine, record, script = await start(settings, code_session([
        {"agent": "engineer", "tool": "execute_code", "args": {"code": "print('v2')", "language": "python"}},
        {"agent": "engineer", "text": "v2 ran."},
    ]))
    first = record.pending
    record = await engine.answer(record.id, first.id, "revise", "print v2 instead", principal="alice")
    assert record.status == "waiting_input" and record.pending.id != first.id and "print('v2')" in record.pending.message
    assert "asks for a revision before this code runs: print v2 instead" in script.calls[-1]["last"]
    record = await engine.answer(record.id, record.pending.id, "yes", principal="alice")
    assert record.status == "completed" and record.result == "v2 ran."
    script.assert_exhausted()
    await engine.store.close()


async def test_a_bad_decision_is_refused_and_the_default_profile_never_asks(settings: Any) -> None:
    engine, record, _ = await start(settings, code_session([{"agent": "engineer", "text": "x"}]))
    with pytest.raises(UserInputError, match="approve', 'reject', 'revise"):
        await engine.answer(record.id, record.pending.id, "maybe", principal="alice")
    with pytest.raises(UserInputError, match="resolve_approval"):
        await engine.go_on(record.id, principal="alice")
    await engine.store.close()
    engine, record, script = await start(settings, code_session([{"agent": "engineer", "text": "done"}]), profile="default")
    assert record.status == "completed" and (Path(record.meta["work_dir"]) / "out.txt").exists()
    await engine.store.close()


async def test_after_a_failed_step_the_human_decides(settings: Any) -> None:
    failing = {"code": "raise SystemExit(3)", "language": "python"}
    engine, record, script = await start(settings, [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "tool": "execute_code", "args": failing},
        {"agent": "engineer", "text": "fixed it"},
    ], profile="default")
    assert record.status == "completed"  # no policy: nobody is asked
    await engine.store.close()
    from swarm.profiles import ApprovalPolicy, Profile

    policy = Profile(name="fails", approvals=ApprovalPolicy(after_failure=True))
    engine, record, script = await start(settings, [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "tool": "execute_code", "args": failing},
        {"agent": "engineer", "text": "fixed it"},
    ], profile=policy)  # type: ignore[arg-type]
    assert record.status == "waiting_input" and record.pending.kind == "failure" and "exit_code: 3" in record.pending.message
    record = await engine.answer(record.id, record.pending.id, "revise", "use exit code 0", principal="alice")
    assert record.status == "completed" and record.result == "fixed it"
    assert "says about the failure: use exit code 0" in script.calls[-1]["last"]
    await engine.store.close()

    engine, record, script = await start(settings, [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "tool": "execute_code", "args": failing},
    ], profile=policy)  # type: ignore[arg-type]
    record = await engine.answer(record.id, record.pending.id, "reject", principal="alice")
    assert record.status == "cancelled" and "alice stopped the session after a failed step" in (await engine.transcript(record.id))[-1].content["reason"]
    await engine.store.close()


async def test_the_quick_profile_offers_core_agents_and_no_phase_tools(settings: Any) -> None:
    from tests.fakes import FunctionModels

    offered: dict[str, list[str]] = {}

    def model(messages: Any, agent: str, tools: Any) -> Any:
        offered[agent] = sorted(t if isinstance(t, str) else t["name"] if isinstance(t, dict) else t.name for t in tools)
        return "done"

    for profile in ("quick", "default"):
        async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model)) as engine:
            record = await engine.go_on((await engine.create("Say done", profile=profile)).id)
            assert record.status == "completed"
        router_tools = offered["copilot_control"]
        if profile == "quick":
            assert record.max_rounds == 8
            assert not [t for t in router_tools if t.startswith("invoke_")], router_tools
            assert {t.removeprefix("transfer_to_") for t in router_tools} <= {"engineer", "researcher", "assistant", "executor"}, router_tools
        else:
            assert "invoke_planning_phase" in router_tools, router_tools


async def test_code_a_session_may_not_run_is_refused_without_asking_anyone(settings: Any) -> None:
    from swarm.grants import Grants

    script = Script(code_session([{"agent": "engineer", "text": "Could not run it."}]))
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Write out.txt", profile="full", grants=Grants.for_origin("remote", remote_code=False))
        record = await engine.go_on(record.id)
        assert record.status == "completed" and record.pending is None  # nobody asked to approve what may not run
        assert not (Path(record.meta["work_dir"]) / "out.txt").exists()
        assert "code execution is turned off for remote" in script.calls[-1]["last"]
