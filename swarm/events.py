"""Typed transcript events, and their derivation from autogen messages."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    HandoffMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
    ToolCallSummaryMessage,
)
from pydantic import BaseModel, Field

EventType = Literal[
    "message", "tool_call", "tool_result", "handoff", "phase_start", "phase_end",
    "approval_request", "approval_resolved", "status", "error",
]


def now() -> datetime:
    return datetime.now(timezone.utc)


class Usage(BaseModel):
    """Token usage of one model call or a sum of them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens, completion_tokens=self.completion_tokens + other.completion_tokens)


class Event(BaseModel):
    """One transcript event. ``seq`` is gapless per session, starting at 1."""

    seq: int = 0
    time: datetime = Field(default_factory=now)
    round: int = 0
    type: EventType
    agent: str | None = None
    content: Any = None
    usage: Usage | None = None


def events_from_message(msg: BaseAgentEvent | BaseChatMessage, round_no: int) -> list[Event]:
    """Transcript events for one autogen message (the engine records every one of them)."""
    usage = None
    if msg.models_usage is not None:
        usage = Usage(prompt_tokens=msg.models_usage.prompt_tokens, completion_tokens=msg.models_usage.completion_tokens)
    base = dict(round=round_no, agent=msg.source, usage=usage)
    if isinstance(msg, HandoffMessage):
        return [Event(type="handoff", content={"target": msg.target, "message": msg.content}, **base)]
    if isinstance(msg, ToolCallRequestEvent):
        return [Event(type="tool_call", content={"id": c.id, "name": c.name, "arguments": _maybe_json(c.arguments)}, **base) for c in msg.content]
    if isinstance(msg, ToolCallExecutionEvent):
        return [Event(type="tool_result", content={"id": r.call_id, "name": r.name, "result": r.content, "is_error": bool(r.is_error)}, round=round_no, agent=msg.source) for r in msg.content]
    if isinstance(msg, ToolCallSummaryMessage):
        return [Event(type="message", content={"kind": "tool_summary", "text": msg.content}, **base)]
    if isinstance(msg, BaseChatMessage):
        return [Event(type="message", content={"text": msg.to_text()}, **base)]
    return []  # streaming chunks, thoughts and other internal events are not part of the transcript


def _maybe_json(text: str) -> Any:
    if text == "{}":  # a call without arguments (every hand-off): what json.loads makes of it
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
