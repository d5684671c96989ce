"""What a session does: one protocol, ``SessionWork``, with two kinds - the swarm's copilot legs (here) and
phase runs (phases/work.py, handed to the engine with its tools: ``ToolRegistry.works``).

The engine owns what every kind shares (the record, its grants, the live runs, durability, the status a
caller sees) and asks the session's kind for what differs: how a stopped session goes on, how a pending
approval is answered and checked, whether going on may run code, and which durable workflow runs it. A
caller (server/, the CLI, Python) never asks what kind a session is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from .errors import UserInputError
from .session import PendingApproval, SessionRecord

if TYPE_CHECKING:
    from .engine import Engine
    from .events import Event

OnUpdate = Callable[[SessionRecord, list["Event"]], Awaitable[None]]


class SessionWork(Protocol):
    """The kind of work a session does (``record.kind`` is the kind's name, or ``<name>:<detail>``)."""

    name: str
    takes_input_while_running: bool
    """Whether a message for the session while it runs is queued for it (durable engines) rather than refused."""

    async def go_on(self, engine: "Engine", record: SessionRecord, *, message: str | None, max_rounds: int | None,
                    principal: str | None, on_update: OnUpdate | None, local: bool) -> SessionRecord:
        """Make a stopped (or new) session go on until its next stop: resume what was interrupted, or take
        ``message`` (an answer to the pending question, or new input). Refusals raise before anything runs."""
        ...

    def check_answer(self, record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None) -> tuple[str, str | None]:
        """The decision as the work will read it; a UserInputError names what is allowed."""
        ...

    async def answer(self, engine: "Engine", record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None, *,
                     who: str, principal: str | None, on_update: OnUpdate | None, local: bool) -> SessionRecord:
        """Answer the session's pending approval (checked) and go on until the next stop."""
        ...

    def workflow(self, record: SessionRecord) -> str | None:
        """The durable workflow that runs (or ran) the session's latest work; None: none yet."""
        ...


class PlayedWork(SessionWork, Protocol):
    """A kind whose work a durable engine plays as the workflow ``swarm.session_work(kind, session_id)`` (the
    copilot's legs have workflows of their own)."""

    async def play(self, engine: "Engine", session_id: str) -> str:
        """Play the session's pending work from the store: re-runnable (it replays its journal), a no-op once it ended."""
        ...


class CopilotWork:
    """The swarm's own work: legs of the copilot team (swarm/runner.py), each a workflow of its own when durable."""

    name = "copilot"
    takes_input_while_running = True

    async def go_on(self, engine: "Engine", record: SessionRecord, *, message: str | None, max_rounds: int | None,
                    principal: str | None, on_update: OnUpdate | None, local: bool) -> SessionRecord:
        return await engine.run(record.id, message=message, max_rounds=max_rounds, principal=principal, on_update=on_update, local=local)

    def check_answer(self, record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None) -> tuple[str, str | None]:
        """The swarm asks questions only: the answer is the feedback (or the decision's own text)."""
        if pending.kind != "question":
            raise UserInputError(f"approval {pending.id} ({pending.kind}) cannot be answered here: it belongs to no phase run of session {record.id}")
        text = feedback if (decision == "answer" or not decision) else decision if not feedback else f"{decision}: {feedback}"
        if not text or not text.strip():
            raise UserInputError(f"approval {pending.id} is a question: pass decision='answer' and your answer in feedback")
        return "answer", text

    async def answer(self, engine: "Engine", record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None, *,
                     who: str, principal: str | None, on_update: OnUpdate | None, local: bool) -> SessionRecord:
        """A swarm question's answer continues the session with it as the user's input."""
        _, text = self.check_answer(record, pending, decision, feedback)
        return await self.go_on(engine, record, message=text, max_rounds=None, principal=principal, on_update=on_update, local=local)

    def workflow(self, record: SessionRecord) -> str | None:
        if not record.legs:
            return None
        leg = record.legs[-1]
        return leg.workflow or workflow_id(record.id, len(record.legs) - 1, leg.attempt)


def workflow_id(session_id: str, leg: int, attempt: int = 0) -> str:
    """A leg's workflow id; a leg started again (it ended before completing a round) is a new workflow."""
    return f"{session_id}.leg{leg}" if not attempt else f"{session_id}.leg{leg}.{attempt}"


def kind_of(record: SessionRecord) -> str:
    """The name of the work kind of ``record``."""
    return str(record.kind).split(":", 1)[0]
