"""Session records: what a session is, its status, and what a caller sees of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .events import Usage

Status = Literal["running", "paused", "waiting_input", "completed", "failed", "cancelled"]
RESUMABLE: frozenset[str] = frozenset({"paused", "waiting_input", "running", "failed"})
FINAL: frozenset[str] = frozenset({"completed", "cancelled"})


class PendingApproval(BaseModel):
    """A question the session waits on: a clarifying question or an approval gate."""

    id: str = Field(description="Approval id, to answer with resolve_approval.")
    message: str = Field(description="What the human is asked.")
    options: list[str] = Field(default_factory=list, description="Allowed decisions.")
    kind: str = Field(default="question", description="question | plan | step | checkpoint ...")
    agent: str | None = Field(default=None, description="The agent that asked.")


class SessionRecord(BaseModel):
    """A session as stored."""

    id: str
    principal: str = "local"
    kind: str = "copilot"
    task: str
    status: Status = "running"
    created_at: datetime
    updated_at: datetime
    rounds_used: int = 0
    """Rounds used since the last start or continue (the current leg)."""
    total_rounds: int = 0
    """Rounds used over the whole session."""
    max_rounds: int = 20
    """Round limit of the current leg."""
    result: str | None = None
    error: str | None = None
    pending: PendingApproval | None = None
    usage: dict[str, Usage] = Field(default_factory=dict)
    """Token usage per model spec."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific data: work dir, route decision, isolation, phase outputs."""

    def total_usage(self) -> Usage:
        total = Usage()
        for item in self.usage.values():
            total = total + item
        return total
