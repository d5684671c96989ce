"""The one writer of a session's status: every change is a typed transition applied here.

A session is ``Running`` while some work of it goes on, and stops as ``Completed``, ``Waiting`` (a pending
question or approval), ``Paused``, ``Failed`` or ``Cancelled``. Every kind of session work (swarm/work.py)
and the engine describe what happened with one of these values; ``transition`` sets the record's status
and the fields that go with it (result, output, pending, error) and returns the ``status`` event that
says so, which the caller saves with the record in one write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from .events import Event
from .session import PendingApproval, SessionRecord


@dataclass(frozen=True)
class Running:
    """Work of the session goes on (a leg opened, a phase run started or answered)."""

    detail: Mapping[str, Any] = field(default_factory=dict)
    """More for the status event (the leg's round limit, the phase and run)."""


@dataclass(frozen=True)
class Completed:
    """The work ended with an answer."""

    result: str | None = None
    """The final text; None keeps the record's."""
    output: Any = None
    """The structured output (a phase's plan, ideas ...), if any."""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Waiting:
    """The work waits for a human: a question or an approval."""

    pending: PendingApproval
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Paused:
    """The work stopped where it can go on: the round limit, an interrupt (its caller went away, a shutdown)."""

    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The work failed (a provider, the model, a step that kept failing, a bug); continuing retries what can be."""

    error: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cancelled:
    """The session was cancelled: it goes on no more."""

    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


Transition = Union[Running, Completed, Waiting, Paused, Failed, Cancelled]

_NAMES: dict[type, str] = {Running: "running", Completed: "completed", Waiting: "waiting_input", Paused: "paused",
                           Failed: "failed", Cancelled: "cancelled"}


def transition(record: SessionRecord, to: Transition) -> Event:
    """Apply ``to`` to ``record`` and return the status event that records it (to save with the record)."""
    status = _NAMES[type(to)]
    record.status = status  # type: ignore[assignment]
    record.pending = to.pending if isinstance(to, Waiting) else None
    record.error = to.error if isinstance(to, Failed) else None
    if isinstance(to, Completed):
        if to.result is not None:
            record.result = to.result
        record.output = to.output
    elif isinstance(to, Running):  # new work: the last work's output is no longer the session's
        record.output = None
    content: dict[str, Any] = {"status": status, **to.detail}
    reason = getattr(to, "reason", None)
    if reason is not None:
        content["reason"] = reason
    return Event(type="status", round=record.total_rounds, content=content)
