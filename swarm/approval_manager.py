"""Who answers a session's approvals when it is driven from Python: an approval manager, or the console.

An approval manager is any callable, plain or async, that takes an ``ApprovalRequest`` and returns a decision::

    def manager(request: ApprovalRequest) -> Answer:
        return "approve"                       # a decision (one of request.options)
        return ("revise", "add tests first")   # a decision with feedback
        return ApprovalDecision("reject", "not now")
        return None                            # leave it waiting: the call returns the waiting result

A clarifying question of the swarm (``kind == "question"``) is answered by the text returned. Plain managers run in
a worker thread, so a human taking their time there does not stall the engine's event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, TextIO, Union

if TYPE_CHECKING:
    from .session import PendingApproval


@dataclass(frozen=True)
class ApprovalRequest:
    """What a session waits on: a clarifying question, or an approval (plan, step, code, phase, failure, ...)."""

    session_id: str
    """The session that asks."""
    approval_id: str
    """The pending approval's id (what ``resolve_approval`` takes)."""
    kind: str
    """question, plan, step, checkpoint, code, phase, failure, ..."""
    message: str
    """What the human is asked."""
    options: tuple[str, ...]
    """The decisions allowed (``("answer",)`` for a question: answer with its text)."""
    agent: str | None = None
    """The agent that asked, if one did."""

    @classmethod
    def of(cls, session_id: str, pending: "PendingApproval") -> "ApprovalRequest":
        return cls(session_id=session_id, approval_id=pending.id, kind=pending.kind, message=pending.message,
                   options=tuple(pending.options), agent=pending.agent)


@dataclass(frozen=True)
class ApprovalDecision:
    """An answer to an ``ApprovalRequest``."""

    decision: str
    """One of the request's options (approve, reject, revise, ...), or ``answer`` for a question."""
    feedback: str | None = None
    """Why, what to revise, or the answer to a question."""


Answer = Union[str, tuple[str, "str | None"], ApprovalDecision, None]
"""What a manager returns: a decision, (decision, feedback), an ApprovalDecision, or None to leave the request waiting."""

ApprovalManager = Callable[[ApprovalRequest], Union[Answer, Awaitable[Answer]]]
"""A callable, plain or async, that answers approval requests."""


def decision_of(request: ApprovalRequest, answer: Answer) -> ApprovalDecision | None:
    """``answer`` (what a manager returned for ``request``) as an ApprovalDecision; None: leave it waiting."""
    if answer is None or isinstance(answer, ApprovalDecision):
        return answer
    if isinstance(answer, str):
        if request.kind == "question":
            return ApprovalDecision("answer", answer)
        return ApprovalDecision(answer.strip())
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str) and (answer[1] is None or isinstance(answer[1], str)):
        return ApprovalDecision(answer[0].strip(), answer[1])
    raise TypeError(f"an approval manager must return a decision string (one of {list(request.options)}), a (decision, feedback) "
                    f"tuple, an ApprovalDecision or None; it returned {answer!r} for approval {request.approval_id}")


async def ask(manager: ApprovalManager, request: ApprovalRequest) -> ApprovalDecision | None:
    """Ask ``manager`` about ``request`` (a plain one in a worker thread) and read its answer."""
    if inspect.iscoroutinefunction(manager) or inspect.iscoroutinefunction(getattr(manager, "__call__", None)):
        answer = await manager(request)  # type: ignore[misc]
    else:
        answer = await asyncio.to_thread(manager, request)
        if inspect.isawaitable(answer):
            answer = await answer
    return decision_of(request, answer)  # type: ignore[arg-type]


class ConsoleApprovals:
    """Asks on the terminal: the request on stderr, the answer from stdin. An empty decision or the end of input leaves
    the request waiting."""

    def __init__(self, stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdin = stdin
        self.stderr = stderr

    def __call__(self, request: ApprovalRequest) -> ApprovalDecision | None:
        err = self.stderr or sys.stderr
        print(f"\n[{request.session_id}] {request.agent or 'the session'} asks ({request.kind}):\n{request.message}", file=err, flush=True)
        if request.kind == "question":
            text = self._read("answer: ", err)
            return ApprovalDecision("answer", text) if text else None
        while True:
            decision = self._read(f"decision ({' / '.join(request.options)}): ", err)
            if not decision:
                return None
            if decision in request.options:
                break
            print(f"expected one of {list(request.options)}", file=err, flush=True)
        feedback = self._read("feedback (optional): ", err)
        return ApprovalDecision(decision, feedback or None)

    def _read(self, prompt: str, err: TextIO) -> str:
        print(prompt, end="", file=err, flush=True)
        line = (self.stdin or sys.stdin).readline()
        return line.strip()


def console_is_interactive() -> bool:
    """Whether stdin is a terminal a human answers at."""
    return sys.stdin is not None and sys.stdin.isatty()
