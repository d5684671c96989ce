"""Turning session records and transcript events into what MCP callers read.

Works on the engine's records and events by attribute (duck-typed), so importing it does not
import the engine (and autogen) on the stdio start-up path.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from .schemas import ApprovalOut, SessionResult, TokenCount, UsageOut
from .transcript_md import language_of, one_line, run_head, structured_kind
from .transcript_md import transcript_markdown as transcript_markdown  # rendered there, re-exported for its callers


def session_uri(session_id: str) -> str:
    return f"swarm://sessions/{session_id}"


def transcript_uri(session_id: str) -> str:
    return f"swarm://sessions/{session_id}/transcript"


def transcript_md_uri(session_id: str) -> str:
    return f"swarm://sessions/{session_id}/transcript.md"


def _tokens(usage: Any) -> TokenCount:
    return TokenCount(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                      total_tokens=usage.prompt_tokens + usage.completion_tokens)


def session_result(record: Any, *, live: bool, note: str | None = None) -> SessionResult:
    """The structured result of a tool call about ``record``."""
    pending = record.pending if record.status == "waiting_input" else None
    status = record.status
    output = getattr(record, "output", None)
    result = output if status == "completed" and output is not None else record.result
    return SessionResult(
        session_id=record.id,
        kind=record.kind,
        status=status,
        rounds_used=record.rounds_used,
        total_rounds=record.total_rounds,
        max_rounds=record.max_rounds,
        result=result,
        error=record.error if status == "failed" else None,
        pending_approval=ApprovalOut(id=pending.id, message=pending.message, options=list(pending.options),
                                     kind=pending.kind, agent=pending.agent) if pending else None,
        usage=UsageOut(models={m: _tokens(u) for m, u in record.usage.items()}, total=_tokens(record.total_usage())),
        transcript_uri=transcript_uri(record.id),
        live=live,
        next=note or next_step(record, live=live),
    )


def next_step(record: Any, *, live: bool) -> str:
    """One sentence telling the caller what to do next."""
    sid = record.id
    status = record.status
    if status == "running":
        if live:
            return (f"The session is still working: call continue_copilot(session_id='{sid}') to wait for it, "
                    f"or session_status(session_id='{sid}') to poll.")
        return (f"The session was interrupted (no run of it is live in this server): call continue_copilot(session_id='{sid}') "
                "to resume it where it stopped.")
    if status == "paused":
        return f"The session paused at its round limit: call continue_copilot(session_id='{sid}') to resume it (optionally with max_rounds or a message)."
    if status == "waiting_input":
        pending = record.pending
        if pending is None:
            return f"The session waits for your input: call continue_copilot(session_id='{sid}', message='<your input>')."
        if pending.kind == "question":
            return (f"The swarm asks: {pending.message!r}; answer with continue_copilot(session_id='{sid}', message='<answer>') "
                    f"or resolve_approval(session_id='{sid}', approval_id='{pending.id}', decision='answer', feedback='<answer>').")
        return (f"The session waits for a {pending.kind} decision: call resolve_approval(session_id='{sid}', approval_id='{pending.id}', "
                f"decision=<one of {list(pending.options)}>, feedback='<optional>').")
    if status == "completed":
        return (f"Done: the answer is in result; follow up with continue_copilot(session_id='{sid}', message='<follow-up>') "
                "or start a new session with copilot.")
    if status == "failed":
        return f"The session failed ({record.error}); fix the cause, then retry with continue_copilot(session_id='{sid}')."
    return f"The session was cancelled; its transcript stays readable at {transcript_uri(sid)}; start a new session with copilot."


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
