"""What a caller reads about a session: ``SessionResult`` and its builder, ``session_result``.

One definition for every caller: the MCP tools return it as structured content (server/), and the Python API
(swarm/api.py) returns it too, so a result reads the same whichever way the session was driven. In Python it also
reads like a mapping, as the structured content does: ``result["status"]``, ``result.get("error")``,
``"usage" in result``, ``result.keys()``.

It works on the engine's records by attribute (duck-typed) and imports only pydantic, so the MCP server's start-up
path does not import the engine (or autogen) through it.
"""

from __future__ import annotations

from typing import Any, Iterator, Literal

from pydantic import BaseModel, Field

Status = Literal["running", "paused", "waiting_input", "completed", "failed", "cancelled"]


def session_uri(session_id: str) -> str:
    return f"swarm://sessions/{session_id}"


def transcript_uri(session_id: str) -> str:
    return f"swarm://sessions/{session_id}/transcript"


def transcript_md_uri(session_id: str) -> str:
    return f"swarm://sessions/{session_id}/transcript.md"


class Readable(BaseModel):
    """A model that reads like a read-only mapping of its fields, as its JSON form would."""

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name``, or ``default`` when there is no such field."""
        return getattr(self, name) if name in type(self).model_fields else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in type(self).model_fields

    def keys(self) -> list[str]:
        return list(type(self).model_fields)

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in type(self).model_fields]

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, getattr(self, name)) for name in type(self).model_fields)


class ApprovalOut(Readable):
    """A question or approval the session is waiting on."""

    id: str = Field(description="Pass this as approval_id to resolve_approval.")
    message: str = Field(description="What the human is asked.")
    options: list[str] = Field(description="Allowed decisions; ['answer'] for a clarifying question.")
    kind: str = Field(description="question, plan, step, checkpoint, ...")
    agent: str | None = Field(default=None, description="The agent that asked.")


class TokenCount(Readable):
    """Token usage."""

    prompt_tokens: int = Field(description="Tokens sent to the model.")
    completion_tokens: int = Field(description="Tokens the model produced.")
    total_tokens: int = Field(description="prompt_tokens + completion_tokens.")


class UsageOut(Readable):
    """Token usage of a session, per model and in total."""

    models: dict[str, TokenCount] = Field(description="Usage per model spec (e.g. 'openai:gpt-4o-mini', 'sampling', 'local').")
    agents: dict[str, TokenCount] = Field(default_factory=dict, description="Usage per agent.")
    total: TokenCount = Field(description="Usage over all models.")
    cost_usd: float | None = Field(default=None, description="By the price table, if set.")


class SessionResult(Readable):
    """A session as a tool returns it: status, progress, result, what it waits on, and what to do next."""

    session_id: str = Field(description="The session id; pass it to continue_copilot, session_status, cancel_session, resolve_approval.")
    kind: str = Field(description="copilot, or the phase the session runs (planning, control, ...).")
    status: Status = Field(description="running | paused | waiting_input | completed | failed | cancelled.")
    rounds_used: int = Field(description="Rounds (agent turns) used by the current run or continue.")
    total_rounds: int = Field(description="Rounds used over the whole session.")
    max_rounds: int = Field(description="Round limit of the current run; the session pauses there.")
    result: str | dict[str, Any] | list[Any] | None = Field(default=None, description="The final answer, or the phase's output (a plan, ranked ideas ...), once there is one.")
    error: str | None = Field(default=None, description="Why the session failed, when it did.")
    pending_approval: ApprovalOut | None = Field(default=None, description="Set when status is waiting_input: what the session asks.")
    usage: UsageOut = Field(description="Token usage per model and in total.")
    transcript_uri: str = Field(description="MCP resource with the session's full transcript (JSON; append .md for markdown).")
    live: bool = Field(description="Whether a run of this session is in progress in this server right now.")
    next: str = Field(description="One sentence: what the caller should do next.")


def _tokens(usage: Any) -> TokenCount:
    return TokenCount(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                      total_tokens=usage.prompt_tokens + usage.completion_tokens)


def session_result(record: Any, *, live: bool, note: str | None = None) -> SessionResult:
    """The result of a call about ``record`` (a swarm.session.SessionRecord); ``note`` replaces the ``next`` sentence."""
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
        usage=UsageOut(models={m: _tokens(u) for m, u in record.usage.items()}, total=_tokens(record.total_usage()),
                       agents={a: _tokens(u) for a, u in getattr(record, "agent_usage", {}).items()}, cost_usd=getattr(record, "cost_usd", None)),
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
