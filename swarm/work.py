"""What a session does: one protocol, ``SessionWork``, with two kinds - the swarm's copilot legs (here) and
phase runs (phases/work.py, handed to the engine with its tools: ``ToolRegistry.works``).

The engine owns what every kind shares (the record, its grants, the live runs, durability, the status a
caller sees) and asks the session's kind for what differs: how a stopped session goes on, how a pending
approval is answered and checked, whether going on may run code, which durable workflow runs it, and how
its prepared work plays. A caller (server/, the CLI, Python) never asks what kind a session is.

On a durable engine every kind plays the same way: ``go_on`` prepares the next piece of work (a leg, a
phase run) and names its workflow; the engine runs ``swarm.session_run(kind, session_id)`` under that id,
whose body is the kind's ``play`` (swarm/durable.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from .errors import UserInputError
from .events import Event, now
from .session import PendingApproval, SessionRecord

if TYPE_CHECKING:
    from .engine import Engine

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
                     who: str, principal: str | None, on_update: OnUpdate | None, local: bool, channel: str = "resolve_approval") -> SessionRecord:
        """Answer the session's pending approval (checked) and go on until the next stop."""
        ...

    def workflow(self, record: SessionRecord) -> str | None:
        """The durable workflow that runs (or ran) the session's latest work; None: none yet."""
        ...

    async def play(self, engine: "Engine", session_id: str) -> SessionRecord:
        """Play the session's prepared work from the store to its next stop: re-runnable (it replays its journal, no
        completed call runs twice), a no-op once that work ended. The body of the durable workflow."""
        ...


class InputWork(SessionWork, Protocol):
    """A kind that takes input while it runs (``takes_input_while_running``): a message sent to a running session
    opens its next piece of work when the current one stops."""

    async def open(self, engine: "Engine", session_id: str, message: str, max_rounds: int | None, *, on_update: OnUpdate | None,
                   workflow: str | None, input_id: str) -> SessionRecord:
        """Open the session's next piece of work with ``message`` (played by ``workflow`` when not by its own); opening the
        same ``input_id`` twice opens one. A UserInputError if the session refuses it (it was cancelled meanwhile ...)."""
        ...


class CopilotWork:
    """The swarm's own work: legs of the copilot team (swarm/runner.py), each a workflow of its own when durable."""

    name = "copilot"
    takes_input_while_running = True

    async def go_on(self, engine: "Engine", record: SessionRecord, *, message: str | None, max_rounds: int | None,
                    principal: str | None, on_update: OnUpdate | None, local: bool) -> SessionRecord:
        """Run the next leg; a message to a session waiting on an approval of its policy is the decision
        (``approve``, ``reject: why``, ``revise: what to change``)."""
        pending = record.pending if record.status == "waiting_input" else None
        if pending is not None and pending.kind != "question" and message:
            word, _, rest = message.strip().partition(" ")
            word, sep, after = word.partition(":")
            feedback = f"{after} {rest}".strip(" :") or None
            return await self.answer(engine, record, pending, word, feedback, who=record.principal, principal=principal,
                                     on_update=on_update, local=local, channel="continue_copilot")
        return await engine.run(record.id, message=message, max_rounds=max_rounds, principal=principal, on_update=on_update, local=local)

    def check_answer(self, record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None) -> tuple[str, str | None]:
        """A question's answer is the feedback (or the decision's own text); an approval of the session's policy (code,
        a phase, a failed step) takes approve, reject or revise (with feedback for the agent)."""
        if pending.kind == "question":
            text = feedback if (decision == "answer" or not decision) else decision if not feedback else f"{decision}: {feedback}"
            if not text or not text.strip():
                raise UserInputError(f"approval {pending.id} is a question: pass decision='answer' and your answer in feedback")
            return "answer", text
        word = APPROVAL_WORDS.get((decision or "").strip().lower())
        if word is None or word not in pending.options:
            raise UserInputError(f"decision {decision!r} is not allowed for approval {pending.id} ({pending.kind}); choose one of "
                                 f"{pending.options} (revise with feedback saying what to change)")
        return word, (feedback or "").strip() or None

    async def answer(self, engine: "Engine", record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None, *,
                     who: str, principal: str | None, on_update: OnUpdate | None, local: bool, channel: str = "resolve_approval") -> SessionRecord:
        """A question's answer continues the session with it as the user's input; an approval's decision is recorded
        (with who answered and through which channel) and the round that asked plays again with it."""
        decision, text = self.check_answer(record, pending, decision, feedback)
        if pending.kind == "question":
            return await self.go_on(engine, record, message=text, max_rounds=None, principal=principal, on_update=on_update, local=local)
        answer = {"id": pending.id, "decision": decision, "feedback": text, "who": who, "channel": channel, "time": now().isoformat()}
        record.meta.setdefault("approvals", {})[pending.id] = answer
        await engine.store.save(record, [Event(type="approval_resolved", round=record.total_rounds, agent=who,
                                               content={**answer, "kind": pending.kind})])
        return await self.go_on(engine, record, message=None, max_rounds=None, principal=principal, on_update=on_update, local=local)

    def workflow(self, record: SessionRecord) -> str | None:
        if not record.legs:
            return None
        leg = record.legs[-1]
        return leg.workflow or workflow_id(record.id, len(record.legs) - 1, leg.attempt)

    async def play(self, engine: "Engine", session_id: str) -> SessionRecord:
        """Play the session's last leg, each round a durable step when the engine is durable."""
        step = engine.durable.round_step if engine.durable is not None else None
        return await engine.runner.run_leg(session_id, on_update=engine.live.relay(session_id), round_step=step)

    async def open(self, engine: "Engine", session_id: str, message: str, max_rounds: int | None, *, on_update: OnUpdate | None,
                   workflow: str | None, input_id: str) -> SessionRecord:
        """The next leg, with ``message`` as its input."""
        return await engine.runner.prepare(session_id, message=message, max_rounds=max_rounds, on_update=on_update,
                                           workflow=workflow, input_id=input_id)


APPROVAL_WORDS = {"approve": "approve", "approved": "approve", "yes": "approve", "y": "approve", "ok": "approve", "accept": "approve",
                  "reject": "reject", "rejected": "reject", "no": "reject", "n": "reject", "deny": "reject",
                  "revise": "revise", "revision": "revise", "change": "revise"}
"""Decisions an approval of the session's policy takes, and their synonyms."""


def workflow_id(session_id: str, leg: int, attempt: int = 0) -> str:
    """A leg's workflow id; a leg started again (it ended before completing a round) is a new workflow."""
    return f"{session_id}.leg{leg}" if not attempt else f"{session_id}.leg{leg}.{attempt}"


def kind_of(record: SessionRecord) -> str:
    """The name of the work kind of ``record``."""
    return str(record.kind).split(":", 1)[0]
