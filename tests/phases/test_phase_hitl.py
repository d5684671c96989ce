"""Human in the loop: approvals stop a phase, answers resume it (also in a fresh engine), and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phases import resolve_approval, run_phase
from swarm.errors import UserInputError
from swarm.models.scripted import Script
from tests.phases.phase_helpers import code, phase_events, plan, scripted_engine

pytestmark = pytest.mark.anyio

COUNTED = code("open('runs.txt', 'a').write('x')\nprint('step one ran')", "appends to runs.txt")


async def test_revise_then_approve_resumes_in_a_fresh_engine(settings: Any) -> None:
    first, second = plan(("build it", "engineer")), plan(("build it", "engineer"), ("test it", "engineer"))
    script = Script([
        {"agent": "planner", "json": first},
        {"agent": "planner", "json": second, "expect": "add a testing step"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "hitl_planning", {"task": "Build a CLI", "n_plan_reviews": 0})
        assert result.status == "waiting_input" and len(script.calls) == 1
        pending = result.pending_approval
        assert pending.options == ["approve", "revise", "reject"] and pending.kind == "plan" and "Step 1 (engineer): build it" in pending.message
        record = await engine.get(result.session_id)
        assert record.status == "waiting_input" and record.pending == pending
        with pytest.raises(UserInputError, match="choose one of \\['approve', 'revise', 'reject'\\]"):
            await resolve_approval(engine, result.session_id, pending.id, "maybe")
        with pytest.raises(UserInputError, match="is not pending"):
            await resolve_approval(engine, result.session_id, "a_nope", "approve")
        with pytest.raises(UserInputError, match="waiting for approval"):
            await run_phase(engine, "control", {}, session_id=result.session_id)
    # another process: a fresh engine on the same database answers and resumes
    async with scripted_engine(settings, script) as engine:
        result = await resolve_approval(engine, result.session_id, pending.id, "modify", "add a testing step", who="alice")
        assert result.status == "waiting_input" and result.pending_approval.id != pending.id
        assert "Step 2 (engineer): test it" in result.pending_approval.message
    async with scripted_engine(settings, script) as engine:
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "approve", who="bob")
        script.assert_exhausted()  # two planner calls in all: nothing completed was repeated
        assert result.status == "completed" and result.output["plan"] == second and result.output["approved_by"] == "bob"
        assert [(i["decision"], i["who"]) for i in result.output["iterations"]] == [("revise", "alice"), ("approve", "bob")]
        record = await engine.get(result.session_id)
        assert record.meta["plan"] == second and record.pending is None
        events = await engine.transcript(result.session_id)
        audit = [(e.type, e.content.get("decision"), e.content.get("who")) for e in events if e.type.startswith("approval")]
        assert audit == [("approval_request", None, None), ("approval_resolved", "revise", "alice"),
                         ("approval_request", None, None), ("approval_resolved", "approve", "bob")]
        assert next(e for e in events if e.type == "approval_resolved").content["feedback"] == "add a testing step"
        assert phase_events(events) == [("phase_start", "hitl_planning", None), ("phase_end", "hitl_planning", "completed")]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert record.total_usage().total_tokens == 2 * 15


async def test_reject_ends_planning_without_a_plan(settings: Any) -> None:
    script = Script([{"agent": "planner", "json": plan(("guess", "researcher"))}])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "hitl_planning", {"task": "Plan the launch", "n_plan_reviews": 0})
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "reject", "not what I asked", who="carol")
        script.assert_exhausted()
        assert result.status == "failed" and result.error == "plan 1 was rejected by carol: not what I asked"
        record = await engine.get(result.session_id)
        assert "plan" not in record.meta and record.status == "failed"
        with pytest.raises(UserInputError, match="no pending approval"):
            await resolve_approval(engine, result.session_id, "a_x", "approve")


async def test_before_step_approve_skip_and_revise(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": COUNTED},
        {"agent": "researcher", "text": "| a | b |", "expect": "Instructions from the human reviewer: use a markdown table"},
    ])
    three = plan(("count", "engineer"), ("deploy", "engineer"), ("report", "researcher"))
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "hitl_control", {"plan": three})
        assert result.status == "waiting_input" and result.pending_approval.options == ["approve", "revise", "skip", "abort"]
        sid = result.session_id
        result = await resolve_approval(engine, sid, result.pending_approval.id, "approve")
        assert "Run step 2 of 3" in result.pending_approval.message and len(script.calls) == 1
    async with scripted_engine(settings, script) as engine:  # resumed in a fresh engine: step 1's code is not run again
        result = await resolve_approval(engine, sid, result.pending_approval.id, "skip", "not today")
        result = await resolve_approval(engine, sid, result.pending_approval.id, "revise", "use a markdown table")
        script.assert_exhausted()
        assert result.status == "completed"
        assert [(s["index"], s["status"]) for s in result.output["steps"]] == [(1, "completed"), (2, "skipped"), (3, "completed")]
        assert result.output["steps"][1]["summary"] == "skipped by user: not today"
        assert (Path(result.work_dir) / "runs.txt").read_text() == "x"
        record = await engine.get(sid)
        assert [s["status"] for s in record.meta["step_results"]] == ["completed", "skipped", "completed"]


async def test_abort_stops_the_remaining_steps(settings: Any) -> None:
    script = Script([{"agent": "engineer", "json": COUNTED}])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "hitl_control", {"plan": plan(("one", "engineer"), ("two", "engineer"))})
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "approve")
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "abort", "enough", who="dave")
        script.assert_exhausted()
        assert result.status == "failed" and result.error == "aborted at step 2 by dave: enough"
        assert [s["index"] for s in result.output["steps"]] == [1] and result.output["aborted_at"] == 2


async def test_failed_step_is_retried_with_feedback_then_approved_after_the_step(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": code("raise SystemExit('no input file')")},
        {"agent": "engineer", "json": code("print('made up data: 7')"), "expect": "generate sample data"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "hitl_control", {"plan": plan(("load data", "engineer")), "approval_mode": "after_step", "max_n_attempts": 1})
        assert result.pending_approval.options == ["retry", "skip", "abort"] and "no input file" in result.pending_approval.message
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "retry", "generate sample data")
        assert result.pending_approval.options == ["approve", "retry", "abort"] and "made up data: 7" in result.pending_approval.message
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "approve")
        script.assert_exhausted()
        assert result.status == "completed" and result.output["steps"][0]["files"] == ["code/step1_run2_attempt1.py"]


async def test_on_error_mode_asks_only_when_a_step_fails(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": code("print('fine')")},
        {"agent": "engineer", "json": code("import sys; sys.exit(2)")},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "hitl_control", {"plan": plan(("a", "engineer"), ("b", "engineer")), "approval_mode": "on_error", "max_n_attempts": 1})
        assert result.status == "waiting_input" and result.pending_approval.kind == "step_error" and "Step 2 failed" in result.pending_approval.message
        result = await resolve_approval(engine, result.session_id, result.pending_approval.id, "skip")
        script.assert_exhausted()
        assert [s["status"] for s in result.output["steps"]] == ["completed", "skipped"]


async def test_checkpoint_approve_and_reject(settings: Any) -> None:
    async with scripted_engine(settings, Script([])) as engine:
        gate = await run_phase(engine, "hitl_checkpoint", {"checkpoint_type": "deploy", "message": "Ship v2?", "options": ["approve", "reject", "later"]})
        assert gate.status == "waiting_input" and gate.pending_approval.kind == "checkpoint:deploy" and gate.pending_approval.message == "Ship v2?"
        done = await resolve_approval(engine, gate.session_id, gate.pending_approval.id, "later", "after the demo", who="erin")
        assert done.status == "completed" and done.output["decision"] == "later" and done.output["who"] == "erin"
        # a second checkpoint in the same session
        gate = await run_phase(engine, "hitl_checkpoint", {"message": "Really?"}, session_id=gate.session_id)
        done = await resolve_approval(engine, gate.session_id, gate.pending_approval.id, "reject")
        assert done.status == "failed" and "checkpoint 'review': reject by user" in done.error
        record = await engine.get(gate.session_id)
        assert sorted(c["decision"] for c in record.meta["checkpoints"].values()) == ["later", "reject"]
        with pytest.raises(UserInputError, match="options"):
            await run_phase(engine, "hitl_checkpoint", {"message": "x", "options": ["ok", "ok"]})
