"""Session records: what a session is, its status, and what a caller sees of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .events import Usage
from .grants import Grants
from .profiles import Profile

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


class Leg(BaseModel):
    """One stretch of a session between two inputs: the first run, or one continue.

    A session's state is its legs plus its journal of model and tool calls: replaying the legs
    against the journal rebuilds the swarm exactly where it stopped, with no call repeated.
    """

    kind: Literal["task", "message", "answer", "resume"] = Field(description="What started the leg.")
    text: str | None = Field(default=None, description="The user input that started it, if any.")
    target: str | None = Field(default=None, description="For answers: the agent the answer goes to.")
    max_rounds: int = Field(description="Round limit of the leg.")
    rounds: int = Field(default=0, description="Rounds completed in the leg.")
    attempt: int = Field(default=0, description="How often the leg was started again after it ended before completing a round.")
    workflow: str | None = Field(default=None, description=(
        "The durable workflow running the leg when it is not the leg's own: a running leg that took input sent to it goes on with it."))
    input_id: str | None = Field(default=None, description="The id of the input, sent while the session ran, that opened the leg.")


class SessionRecord(BaseModel):
    """A session as stored."""

    id: str
    principal: str = "local"
    grants: Grants | None = None
    """What the session may do (origin, code, whose model), fixed at creation; None (an older record): no code."""
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
    output: Any = None
    """The structured output of the session's last completed work (a phase's plan, ideas, step results); None: ``result`` is all."""
    error: str | None = None
    pending: PendingApproval | None = None
    usage: dict[str, Usage] = Field(default_factory=dict)
    """Token usage per model spec."""
    agent_usage: dict[str, Usage] = Field(default_factory=dict)
    """Token usage per agent."""
    cost_usd: float | None = None
    """What the session's model calls cost in US dollars, by the price table (SWARM_MCP_PRICES); None without one."""
    seconds_used: float = 0.0
    """Wall-clock seconds the session's legs have run (what a time budget counts)."""
    profile: Profile | None = None
    """The profile the session was created with (its agents, approvals, budget), fixed then and raised by continues;
    None (sessions older than profiles): the default profile."""
    legs: list[Leg] = Field(default_factory=list)
    """Every run and continue of the session, in order."""
    last_seq: int = 0
    """Seq of the last transcript event written."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific data: work dir, route decision, isolation, phase outputs."""

    def total_usage(self) -> Usage:
        total = Usage()
        for item in self.usage.values():
            total = total + item
        return total
