"""Control and one-shot: steps run with their agents; the engineer's code runs in real sandbox subprocesses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phases import run_phase
from swarm.errors import UserInputError
from swarm.models.scripted import Script
from tests.phases.phase_helpers import code, phase_events, plan, scripted_engine

pytestmark = pytest.mark.anyio

FAIL_EXIT = code("import sys\nprint('checking input')\nsys.exit(3)", "first try")
FAIL_RAISE = code("raise ValueError('bad column name')", "second try")
PASS = code("import json\njson.dump({'total': 42}, open('data/result.json', 'w'))\nprint('total =', 6 * 7)", "computes the total into data/result.json")


async def test_engineer_code_fails_twice_then_passes(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": FAIL_EXIT, "expect": "Step 1: compute the total"},
        {"agent": "engineer", "json": FAIL_RAISE, "expect": "attempt 1 of 3"},
        {"agent": "engineer", "json": PASS, "expect": "ValueError: bad column name"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "control", {"plan": plan(("compute the total", "engineer"))})
        script.assert_exhausted()
        assert result.status == "completed", result.error
        [step] = result.output["steps"]
        assert step["status"] == "completed" and step["attempts"] == 3 and step["exit_code"] == 0
        assert "total = 42" in step["summary"]
        assert step["isolation"] in ("bubblewrap", "namespaces")  # never code without isolation by default
        work = Path(result.work_dir)
        assert (work / "data" / "result.json").read_text() == '{"total": 42}'
        assert {"plan.json", "data/result.json", "code/step1_attempt1.py", "code/step1_attempt3.py"} <= set(result.output["files"])
        record = await engine.get(result.session_id)
        assert record.meta["step_results"][0]["attempts"] == 3 and record.meta["plan"]["steps"][0]["sub_task"] == "compute the total"
        events = await engine.transcript(result.session_id)
        runs = [e.content for e in events if e.type == "tool_result" and e.agent == "executor"]
        assert [r["is_error"] for r in runs] == [True, True, False] and "exit_code: 3" in runs[0]["result"]
        journal = await engine.store.journal_entries(f"{result.session_id}:p1")
        assert [(j["agent"], j["kind"]) for j in journal] == [("engineer", "model"), ("executor", "tool")] * 3


async def test_code_that_keeps_failing_fails_the_step_with_its_last_error(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": FAIL_EXIT},
        {"agent": "engineer", "json": FAIL_RAISE, "expect": "attempt 1 of 2"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "control", {"plan": plan(("compute", "engineer"), ("report", "researcher")), "max_n_attempts": 2})
        script.assert_exhausted()  # the second step never ran
        assert result.status == "failed"
        assert "step 1 failed after 2 attempts" in result.error and "ValueError: bad column name" in result.error
        [step] = result.output["steps"]
        assert step["status"] == "failed" and step["attempts"] == 2 and step["exit_code"] == 1
        record = await engine.get(result.session_id)
        assert record.status == "failed" and record.meta["step_results"][0]["status"] == "failed"
        events = await engine.transcript(result.session_id)
        assert phase_events(events)[-1] == ("phase_end", "control", "failed")
        # running control again in the session is a new run (replaying the old one would fail the same way)
        script.entries += [{"agent": "engineer", "json": PASS, "expect": "Step 1: compute"}, {"agent": "researcher", "text": "Report."}]
        again = await run_phase(engine, "control", {"max_n_attempts": 2}, session_id=result.session_id)
        script.assert_exhausted()
        assert again.status == "completed" and [s["status"] for s in again.output["steps"]] == ["completed", "completed"]
        record = await engine.get(result.session_id)
        assert [(r["id"], r["status"]) for r in record.meta["phase_runs"]] == [("p1", "failed"), ("p2", "completed")]


async def test_steps_carry_their_summaries_and_the_researcher_writes_markdown(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "json": plan(("count the words", "engineer"), ("explain the count", "researcher"))},
        {"agent": "engineer", "json": code("print('words: 1234')", "counts words")},
        {"agent": "researcher", "text": "# Findings\n\nThe text has 1234 words.", "expect": "words: 1234"},
    ])
    async with scripted_engine(settings, script) as engine:
        planned = await run_phase(engine, "planning", {"task": "Count the words and explain", "n_plan_reviews": 0})
        result = await run_phase(engine, "control", {}, session_id=planned.session_id)  # the plan comes from the session
        script.assert_exhausted()
        assert result.status == "completed" and result.session_id == planned.session_id
        report = result.output["steps"][1]
        assert report["agent"] == "researcher" and report["files"] == ["step2_explain_the_count.md"]
        assert (Path(result.work_dir) / "step2_explain_the_count.md").read_text().startswith("# Findings")
        record = await engine.get(result.session_id)
        assert [r["name"] for r in record.meta["phase_runs"]] == ["planning", "control"]
        assert [s["status"] for s in record.meta["step_results"]] == ["completed", "completed"]
        assert record.total_usage().total_tokens == 3 * 15


async def test_control_runs_one_step_and_needs_a_plan(settings: Any) -> None:
    script = Script([{"agent": "researcher", "text": "Second step done."}])
    async with scripted_engine(settings, script) as engine:
        with pytest.raises(UserInputError, match="control needs a plan"):
            await run_phase(engine, "control", {})
        result = await run_phase(engine, "control", {"plan": plan(("one", "engineer"), ("two", "researcher")), "step": 2})
        script.assert_exhausted()
        assert [s["index"] for s in result.output["steps"]] == [2]
        with pytest.raises(UserInputError, match="step must be between 1 and 2"):
            await run_phase(engine, "control", {"step": 5}, session_id=result.session_id)


async def test_one_shot_engineer_and_researcher(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": code("print(sum(range(11)))", "sums 0..10")},
        {"agent": "researcher", "text": "DNS maps names to addresses."},
    ])
    async with scripted_engine(settings, script) as engine:
        coded = await run_phase(engine, "one_shot", {"task": "Sum the numbers 0 to 10 in Python"})
        assert coded.status == "completed" and "55" in coded.output["answer"]
        assert coded.output["result"]["isolation"] and "code/one_shot_attempt1.py" in coded.output["files"]
        written = await run_phase(engine, "one_shot", {"task": "Explain DNS", "agent": "researcher"})
        assert written.output["answer"] == "DNS maps names to addresses."
        assert written.output["files"] == ["one_shot_explain_dns.md"]
        script.assert_exhausted()
