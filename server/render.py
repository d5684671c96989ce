"""Turning session records and transcript events into what MCP callers read.

The session result and its builder are the swarm's (swarm/results.py), shared with the Python API; re-exported here.
Works on the engine's records and events by attribute (duck-typed), so importing it does not
import the engine (and autogen) on the stdio start-up path.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from swarm.results import SessionResult
from swarm.results import next_step as next_step, session_result as session_result  # built there (shared with the Python API)
from swarm.results import session_uri as session_uri, transcript_md_uri as transcript_md_uri, transcript_uri as transcript_uri

from .transcript_md import language_of, one_line, run_head, structured_kind
from .transcript_md import transcript_markdown as transcript_markdown  # rendered there, re-exported for its callers


def summary(res: SessionResult) -> str:
    """The short text that accompanies the structured result."""
    head = f"Session {res.session_id} ({res.kind}) is {res.status} after {res.rounds_used} round(s) ({res.total_rounds} in total)."
    parts = [head]
    if res.status == "completed" and res.result is not None:
        text = res.result if isinstance(res.result, str) else json.dumps(res.result)
        parts.append(f"Result: {_clip(text, 2000)}")
    if res.pending_approval is not None:
        parts.append(f"Waiting on {res.pending_approval.kind} {res.pending_approval.id}: {_clip(res.pending_approval.message, 500)}")
    if res.error:
        parts.append(f"Error: {res.error}")
    parts.append(f"Next: {res.next}")
    return "\n".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_line(event: Any) -> str:
    """One human-readable line for a transcript event (progress messages, CLI output)."""
    content = event.content if isinstance(event.content, dict) else {"text": event.content}
    who = event.agent or "-"
    if event.type == "handoff":
        return f"{who} -> {content.get('target')}: {_clip(str(content.get('message', '')), 100)}"
    if event.type == "tool_call":
        args = content.get("arguments")
        if isinstance(args, dict) and isinstance(args.get("code"), str):
            lines = args["code"].count("\n") + 1
            name = f" {args['filename']}" if args.get("filename") else ""
            return f"{who} runs {language_of(args.get('language'))}{name} ({lines} line{'s' if lines != 1 else ''}) with {content.get('name')}"
        return f"{who} calls {content.get('name')}"
    if event.type == "tool_result":
        result = str(content.get("result", ""))
        run = run_head(result)
        if run is not None:
            verdict = f"failed with exit code {run['exit_code']}" if content.get("is_error") else f"exit code {run['exit_code']}"
            return f"{who} {content.get('name')} {verdict}{' (timed out)' if run['timed_out'] == 'True' else ''}: {_last_output(result)!r}"
        verb = "failed" if content.get("is_error") else "returned"
        return f"{who} tool {content.get('name')} {verb}: {_clip(result, 100)!r}"
    if event.type == "message":
        if content.get("kind") == "route":
            return f"{who} routes to {content.get('route')}" + (f" ({content['agent']})" if content.get("agent") else "") + f": {_clip(str(content.get('reason', '')), 100)}"
        if "json" in content:
            return f"{who}: {_clip(_brief(content['json']), 160)}"
        return f"{who}: {_clip(str(content.get('text', '')), 160)!r}"
    if event.type == "phase_start":
        return f"phase {content.get('phase')} starts"
    if event.type == "phase_end":
        if content.get("status") == "failed":
            return f"phase {content.get('phase')} FAILED: {_clip(str(content.get('error', '')), 160)}"
        output = content.get("output") if isinstance(content.get("output"), dict) else {}
        brief = _brief(output.get("plan") or output) if structured_kind(output.get("plan") or output) else _clip(" ".join(str(output.get("answer", "")).split()), 120)
        return f"phase {content.get('phase')} {content.get('status')}" + (f": {_clip(brief, 160)}" if brief else "")
    if event.type == "status":
        return f"status {content.get('status')}" + (f" ({content['reason']})" if content.get("reason") else "")
    if event.type == "error":
        return f"ERROR{' (' + content['kind'] + ')' if content.get('kind') else ''}: {_clip(str(content.get('error', '')), 200)}"
    if event.type == "approval_request":
        return f"{who} asks: {_clip(str(content.get('message', '')), 160)!r}"
    if event.type == "approval_resolved":
        return f"{who} answered {content.get('decision')}" + (f": {_clip(str(content['feedback']), 120)!r}" if content.get("feedback") else "")
    return f"{event.type} {who}: {_clip(str(content), 160)}"


def _brief(value: Any) -> str:
    """A structured message in one line: a plan's steps with their agents, a program, ideas, critiques."""
    kind = structured_kind(value)
    if kind == "plan":
        steps = value["steps"]
        return f"plan of {len(steps)} step(s): " + "; ".join(f"{i}. {one_line(s.get('sub_task', ''), 60)} ({s.get('agent')})" for i, s in enumerate(steps, 1))
    if kind == "steps":
        return "; ".join(f"step {s.get('index', i)} {s.get('status')}" for i, s in enumerate(value["steps"], 1))
    if kind == "code":
        lines = value["code"].count("\n") + 1
        return f"{language_of(value.get('language'))} program ({lines} line{'s' if lines != 1 else ''})" + (f": {one_line(value['explanation'], 80)}" if value.get("explanation") else "")
    if kind == "ideas":
        return f"{len(value['ideas'])} idea(s): " + "; ".join(one_line(i.get("title", ""), 40) for i in value["ideas"])
    if kind == "critiques":
        return "critiques: " + "; ".join(f"{one_line(c.get('title', ''), 40)} {c.get('score', '?')}/10" for c in value["critiques"])
    if kind == "step":
        return f"{value.get('status')}: {one_line(value.get('summary') or value.get('error') or '', 100)}"
    return json.dumps(value, default=str)


def _last_output(result: str) -> str:
    """The last line a run printed (from an execute_code result), for a one-line report."""
    lines = [line for line in result.splitlines()[2:] if line.strip() and not line.startswith(("stdout", "stderr"))]
    return _clip(lines[-1].strip(), 100) if lines else ""


def transcript_json(record: Any, events: Iterable[Any]) -> str:
    return json.dumps({
        "session": session_result(record, live=False).model_dump(mode="json", exclude={"live", "next"}) | {"task": record.task},
        "events": [e.model_dump(mode="json") for e in events],
    }, indent=2)
