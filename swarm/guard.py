"""What a copilot session's policy checks around each of its agents' model calls: its budget, its approvals; and
what each agent used.

    before a live call: the budget (swarm/budgets.py) -> BudgetReached: the leg pauses with the reason
                        a failed step about to be read (swarm/approvals.py, after_failure) -> ask
    after the call:     code or a phase proposed (before_code, before_phase) -> ask

A call replayed from the journal is not counted against the budget again (it was when it ran).
"""

from __future__ import annotations

from typing import Any, Sequence

from autogen_core.models import CreateResult, LLMMessage

from .approvals import ApprovalGate, ApprovalNeeded
from .budgets import BudgetMeter, BudgetReached
from .errors import SessionCancelled
from .events import Usage
from .models.base import WrappingModelClient


class AgentUsage:
    """Usage per agent since it was last taken (the runner takes it with each round, as it takes the journal's)."""

    def __init__(self) -> None:
        self.by_agent: dict[str, Usage] = {}

    def add(self, agent: str, result: CreateResult) -> None:
        this = Usage(prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens)
        earlier = self.by_agent.get(agent)
        self.by_agent[agent] = this if earlier is None else earlier + this

    def take(self) -> dict[str, Usage]:
        taken, self.by_agent = self.by_agent, {}
        return taken


class GuardedModelClient(WrappingModelClient):
    """One agent's journaled model client behind its session's budget and approval gate."""

    def __init__(self, inner: Any, agent: str, journal: Any, usage: AgentUsage, gate: ApprovalGate | None = None,
                 meter: BudgetMeter | None = None) -> None:
        self.inner = inner
        self.agent = agent
        self.journal = journal
        self.usage = usage
        self.gate = gate
        self.meter = meter

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        journal = self.journal
        try:
            if self.meter is not None and journal.position + 1 not in journal.entries:  # a live call, not a replayed one
                self.meter.check(journal.usage)
            if self.gate is not None:
                messages = self.gate.before_model(self.agent, messages, journal.position)
            result = await self.inner.create(messages, **kwargs)
            self.usage.add(self.agent, result)
            if self.gate is not None:
                self.gate.after_model(self.agent, result, journal.position)
        except (ApprovalNeeded, BudgetReached, SessionCancelled) as exc:
            journal.last_error = exc  # autogen re-raises agent errors as text: the runner reads this one
            raise
        return result

    async def close(self) -> None:
        return None  # the model factory owns the inner client
