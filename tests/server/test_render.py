"""Transcript renderings (the transcript.md resource, `swarm-mcp sessions show`, progress lines): plans as numbered
steps with their agents, the engineer's code in fenced blocks that nothing inside can break out of, runs with their
exit codes, ideas ranked, phase outputs summarised, errors and approvals marked, everything bounded."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from server.render import event_line, transcript_markdown
from swarm.events import Event, Usage
from swarm.session import PendingApproval, SessionRecord
from tests.server.test_cli import cli, env_for

PLAN = {"steps": [
    {"sub_task": "load the sales table and compute the monthly totals", "agent": "engineer", "bullet_points": ["totals.csv", "a bar chart"]},
    {"sub_task": "explain the trend", "agent": "researcher", "bullet_points": []},
]}
CODE = "import json\nfence = '```'  # a fence inside the program\nprint('total =', 6 * 7)"
RUN = ("exit_code: 1 | timed_out: False | duration: 0.12s | isolation: bubblewrap\nsaved as: /w/code/step1_attempt1.py\n"
       "stdout:\ntotal = 42\nstderr:\nTraceback (most recent call last):\nValueError: bad column name")
STEPS_OUT = {"steps": [
    {"index": 1, "sub_task": PLAN["steps"][0]["sub_task"], "agent": "engineer", "status": "failed", "attempts": 2,
     "summary": "", "error": "exit code 1: ValueError: bad column name", "files": ["code/step1_attempt2.py"], "isolation": "bubblewrap", "exit_code": 1},
], "answer": "Step 1 (failed)", "files": ["plan.json", "code/step1_attempt2.py"]}
IDEAS_OUT = {"ideas": [{"rank": 1, "title": "Wind", "description": "turbines on the ridge", "critique": "calm summers", "score": 8},
                       {"rank": 2, "title": "Solar", "description": "panels on roofs", "critique": None, "score": None}], "answer": "1. Wind"}


def ev(seq: int, type: str, content: Any, agent: str | None = None, round: int = 1, usage: Usage | None = None) -> Event:
    return Event(seq=seq, round=round, type=type, agent=agent, content=content, usage=usage)  # type: ignore[arg-type]


def events() -> list[Event]:
    return [
        ev(1, "message", {"text": "Compute the monthly totals and explain the trend"}, "user", 0),
        ev(2, "phase_start", {"phase": "planning", "inputs": {"task": "Compute the monthly totals", "max_plan_steps": 3}}),
        ev(3, "message", {"json": PLAN}, "planner", usage=Usage(prompt_tokens=10, completion_tokens=5)),
        ev(4, "phase_end", {"phase": "planning", "status": "completed", "output": {"plan": PLAN, "answer": "Step 1 ...", "files": ["plan.json"]},
                            "usage": {"scripted": {"prompt_tokens": 10, "completion_tokens": 5}}}),
        ev(5, "phase_start", {"phase": "control", "inputs": {"plan": None, "max_n_attempts": 2}}),
        ev(6, "message", {"json": {"language": "python", "code": CODE, "explanation": "computes the totals"}}, "engineer", 2),
        ev(7, "tool_call", {"name": "execute_code", "arguments": {"code": CODE, "language": "python", "filename": "step1_attempt1.py"}}, "executor", 2),
        ev(8, "tool_result", {"name": "execute_code", "result": RUN, "is_error": True, "isolation": "bubblewrap"}, "executor", 2),
        ev(9, "phase_end", {"phase": "control", "status": "failed", "error": "step 1 failed after 2 attempts", "output": STEPS_OUT, "usage": {}}),
        ev(10, "error", {"error": "step 1 failed after 2 attempts; last run: exit code 1: ValueError: bad column name", "kind": "PhaseFailed", "phase": "control"}),
        ev(11, "phase_end", {"phase": "idea_generation", "status": "completed", "output": IDEAS_OUT, "usage": {}}, round=3),
        ev(12, "tool_call", {"id": "c1", "name": "execute_code", "arguments": {"code": "print(1)\n" + "x = 1\n" * 400, "language": "python"}}, "engineer", 4),
        ev(13, "approval_request", {"id": "a_1", "message": "Approve the plan?", "options": ["approve", "revise", "reject"], "kind": "plan", "agent": "planner"}, "planner", 4),
        ev(14, "approval_resolved", {"id": "a_1", "decision": "revise", "feedback": "add a chart step", "who": "user", "kind": "plan"}, "user", 4),
        ev(15, "message", {"text": "Here is the report.\n```\nan unclosed fence from the model"}, "researcher", 5),
    ]


def record(**kw: Any) -> SessionRecord:
    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fields: dict[str, Any] = dict(id="s_render", kind="phase:control", task="Compute the monthly totals and explain the trend",
                                  status="waiting_input", created_at=stamp, updated_at=stamp, total_rounds=5,
                                  pending=PendingApproval(id="a_2", message="Go on?", options=["approve", "reject"], kind="approval"))
    return SessionRecord(**{**fields, **kw})


def fenced_blocks(markdown: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(info string, content) of each backtick fenced block at the start of a line (CommonMark rules), and the lines outside."""
    blocks: list[tuple[str, str]] = []
    outside: list[str] = []
    open_bar, info, body = "", "", []
    for line in markdown.splitlines():
        if open_bar:
            if re.fullmatch(r"`{%d,}\s*" % len(open_bar), line):
                blocks.append((info, "\n".join(body)))
                open_bar = ""
            else:
                body.append(line)
        elif m := re.fullmatch(r"(`{3,})([^`]*)", line):
            open_bar, info, body = m.group(1), m.group(2).strip(), []
        else:
            outside.append(line)
    assert not open_bar, "a fence is left open: the rest of the document would be code"
    return blocks, outside


def check_rendering(md: str) -> None:
    # the plan: numbered steps with their agents and bullet points
    assert "1. **load the sales table and compute the monthly totals** — *engineer*" in md
    assert "2. **explain the trend** — *researcher*" in md
    assert "   - totals.csv" in md
    # the engineer's program in a python fence, whole, the ``` inside it staying inside; shown once, the run refers to it
    blocks, outside = fenced_blocks(md)
    assert ("python", CODE) in blocks
    assert [b for b in blocks if b[1] == CODE] == [("python", CODE)]
    assert not any("a fence inside the program" in line for line in outside)
    assert "runs `execute_code` (python, filename: `step1_attempt1.py`): the program above" in md
    # the run: its exit code, isolation, output
    assert "**FAILED: exit code 1**" in md and "isolation: bubblewrap" in md
    assert any(info == "text" and "ValueError: bad column name" in body for info, body in blocks)
    # phase outputs: the plan referred to, step results, ranked ideas
    assert "phase `planning` completed" in md and "the planner's last plan above (2 steps)" in md
    assert "phase `control` **FAILED**" in md and "*engineer*: **FAILED**, 2 attempts, exit code 1" in md
    assert "1. **Wind** (score 8/10): turbines on the ridge" in md and "   - critique: calm summers" in md
    assert "2. **Solar**: panels on roofs" in md
    # errors marked, approvals with their options and answers, the pending one at the end
    assert "> **ERROR** (PhaseFailed) in phase `control`" in md
    assert "planner asks for a plan (`a_1`)" in md and "Options: `approve` / `revise` / `reject`" in md
    assert "**user** answered `a_1`: **revise**: add a chart step" in md
    assert "## Waiting for input (`a_2`, approval)" in md
    # bounded: a long program is clipped with a note
    assert "[… 251 more lines not shown]" in md
    # the model's unclosed fence stays in its quote
    assert "> ```" in md


def test_markdown_shows_plans_code_runs_outputs_errors_and_approvals() -> None:
    md = transcript_markdown(record(), events())
    assert md.startswith("# Session s_render")
    check_rendering(md)


def test_a_fence_in_code_gets_a_longer_fence_and_long_output_is_clipped() -> None:
    code = "s = '````'\nprint(s)"
    out = "exit_code: 0 | timed_out: False | duration: 0.01s | isolation: bubblewrap\nsaved as: /w/a.py\nstdout:\n" + "y" * 50_000 + "\nstderr: (empty)"
    md = transcript_markdown(record(status="completed", pending=None, result="done"), [
        ev(1, "tool_call", {"name": "execute_code", "arguments": {"code": code, "language": "bash"}}, "engineer"),
        ev(2, "tool_result", {"name": "execute_code", "result": out, "is_error": False}, "engineer"),
    ])
    blocks, _ = fenced_blocks(md)
    assert ("bash", code) in blocks and "\n`````bash\n" in md
    assert "exit code 0" in md and "stderr: (empty)" in md and "characters not shown" in md
    assert len(md) < 10_000


def test_event_lines_name_plans_programs_and_exit_codes() -> None:
    lines = {e.seq: event_line(e) for e in events()}
    assert lines[3] == ("planner: plan of 2 step(s): 1. load the sales table and compute the monthly totals (engineer); "
                        "2. explain the trend (researcher)")
    assert lines[6] == "engineer: python program (3 lines): computes the totals"
    assert lines[7] == "executor runs python step1_attempt1.py (3 lines) with execute_code"
    assert lines[8] == "executor execute_code failed with exit code 1: 'ValueError: bad column name'"
    assert lines[9].startswith("phase control FAILED: step 1 failed")
    assert lines[10].startswith("ERROR (PhaseFailed): step 1 failed")
    assert lines[11] == "phase idea_generation completed: 2 idea(s): Wind; Solar"


@pytest.mark.anyio
async def test_cli_sessions_show_renders_the_same(settings: Any, tmp_path: Path) -> None:
    from phases import phase_tool_registry
    from swarm.engine import Engine

    async with Engine(settings, tools=phase_tool_registry()) as engine:
        created = await engine.create("Compute the monthly totals and explain the trend")
        stored = record(id=created.id, created_at=created.created_at, last_seq=created.last_seq, grants=created.grants)
        await engine.store.save(stored, [e.model_copy(update={"seq": 0}) for e in events()[1:]])
    shown = cli(env_for(tmp_path), "sessions", "show", created.id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"# Session {created.id}")
    check_rendering(shown.stdout)
    brief = cli(env_for(tmp_path), "sessions", "show", created.id, "--brief")
    assert "executor execute_code failed with exit code 1" in brief.stdout and "plan of 2 step(s)" in brief.stdout
