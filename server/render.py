"""Turning session records and transcript events into what MCP callers read.

Works on the engine's records and events by attribute (duck-typed), so importing it does not
import the engine (and autogen) on the stdio start-up path.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from .schemas import ApprovalOut, SessionResult, TokenCount, UsageOut


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
    result = record.result
    if str(record.kind).startswith("phase:") and record.status == "completed":
        runs = (record.meta or {}).get("phase_runs") or []
        if runs and runs[-1].get("output") is not None:
            result = runs[-1]["output"]
    status = record.status
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
        return f"{who} calls {content.get('name')}"
    if event.type == "tool_result":
        verb = "failed" if content.get("is_error") else "returned"
        return f"{who} tool {content.get('name')} {verb}: {_clip(str(content.get('result', '')), 100)!r}"
    if event.type == "message":
        return f"{who}: {_clip(str(content.get('text', '')), 160)!r}"
    if event.type == "status":
        return f"status {content.get('status')}"
    if event.type == "error":
        return f"error: {content.get('error')}"
    if event.type == "approval_request":
        return f"{who} asks: {_clip(str(content.get('message', '')), 160)!r}"
    return f"{event.type} {who}: {_clip(str(content), 160)}"


def transcript_json(record: Any, events: Iterable[Any]) -> str:
    return json.dumps({
        "session": session_result(record, live=False).model_dump(mode="json", exclude={"live", "next"}) | {"task": record.task},
        "events": [e.model_dump(mode="json") for e in events],
    }, indent=2)


def transcript_markdown(record: Any, events: Iterable[Any]) -> str:
    """A readable rendering of a session's transcript."""
    lines = [f"# Session {record.id}", "", f"- kind: {record.kind}", f"- status: {record.status}",
             f"- rounds: {record.total_rounds}", f"- task: {record.task}", ""]
    for e in events:
        content = e.content if isinstance(e.content, dict) else {"text": e.content}
        stamp = f"**#{e.seq}** r{e.round}"
        if e.type == "message":
            lines += [f"### {stamp} {e.agent or '-'}", "", str(content.get("text", "")), ""]
        elif e.type == "tool_call":
            lines += [f"{stamp} `{e.agent}` calls `{content.get('name')}`", "", "```json", json.dumps(content.get("arguments"), indent=2), "```", ""]
        elif e.type == "tool_result":
            lines += [f"{stamp} tool `{content.get('name')}` {'failed' if content.get('is_error') else 'returned'}:", "", "```", str(content.get("result", "")), "```", ""]
        else:
            lines += [f"{stamp} {event_line(e)}", ""]
    if record.result:
        lines += ["## Result", "", record.result if isinstance(record.result, str) else json.dumps(record.result, indent=2), ""]
    return "\n".join(lines)
