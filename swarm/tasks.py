"""Tasks: a caller's handle on a session's work until it stops (what the MCP tasks protocol calls a task).

A caller that would rather not wait for a session (a client with a short timeout, an agent that polls) asks for a
task instead: the engine records which session it follows and where in the session's transcript its work began
(``start_seq``). Everything else about the task is read from the transcript, which is append-only:

    working         no stop of the session after start_seq yet, and it does not wait for input
    input_required  the session waits for an answer (its pending approval or question) - answering it goes on
                    with the same task
    ended           the first stop after start_seq (paused, completed, failed, cancelled): the task's outcome

No one writes a task's state, so nothing can be lost between a stop and its task: a task reads the same after a
kill -9, on any replica, and whoever continues the session later does not change how an earlier task ended. A task
belongs to the principal that created it (another principal's task id is unknown), and is forgotten once its ttl
has passed since it was created (the session stays readable).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from .errors import UnknownTaskError, UserInputError
from .events import Event, now
from .session import SessionRecord
from .store import SqlStore, events, tasks

STOPS = ("paused", "completed", "failed", "cancelled")
"""The session statuses that end a task."""
DEFAULT_TTL_MS = 24 * 3600 * 1000
MAX_TTL_MS = 30 * 24 * 3600 * 1000
PAGE = 50

TaskPhase = Literal["working", "input_required", "ended"]


class TaskRecord(BaseModel):
    """A task as stored: which session it follows, from where, for whom, until when."""

    id: str
    principal: str
    session_id: str
    tool: str
    """The tool whose call the task stands for (its result is that tool's result)."""
    start_seq: int
    """The session's last transcript event before the task's work began."""
    created_at: datetime
    ttl_ms: int | None = None
    """How long after its creation the task is kept; None: as long as the session."""
    answers: dict[str, Any] = Field(default_factory=dict)
    """Input responses given so far to the approval the session waits for (``answered``), when it asks several things."""
    answered: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        return self.created_at + timedelta(milliseconds=self.ttl_ms) if self.ttl_ms is not None else None


@dataclass
class TaskState:
    """A task as the transcript says it is now."""

    task: TaskRecord
    record: SessionRecord
    """The session now."""
    phase: TaskPhase
    ending: Event | None = None
    """The status event that ended the task (its ``content["status"]`` is the stop)."""
    updated_at: datetime | None = None
    current: bool = True
    """Whether the session is still where the task left it (so its record shows the task's outcome in full)."""

    @property
    def stop(self) -> str | None:
        """How the session stopped when the task ended (paused, completed, failed, cancelled); None while it goes on."""
        return str(self.ending.content.get("status")) if self.ending is not None else None


class TaskStore:
    """The tasks of one store (its ``tasks`` table)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def create(self, principal: str, session_id: str, start_seq: int, tool: str, ttl_ms: int | None = None) -> TaskRecord:
        """Record a new task (it reads as working at once: a tasks/get right after this finds it)."""
        if ttl_ms is not None and ttl_ms <= 0:
            raise UserInputError(f"a task's ttl must be a positive number of milliseconds, got {ttl_ms}")
        ttl_ms = min(ttl_ms if ttl_ms is not None else DEFAULT_TTL_MS, MAX_TTL_MS)
        task = TaskRecord(id=f"t_{secrets.token_urlsafe(18)}", principal=principal, session_id=session_id, tool=tool,
                          start_seq=start_seq, created_at=now(), ttl_ms=ttl_ms)
        stamp = task.created_at

        def op(conn: sa.Connection) -> None:
            conn.execute(tasks.delete().where(tasks.c.expires_at < stamp))  # the expired ones go as new ones come
            conn.execute(tasks.insert().values(id=task.id, principal=principal, session_id=session_id, created_at=stamp,
                                               expires_at=task.expires_at, body=task.model_dump_json()))

        await self.store._tx(op)
        return task

    async def get(self, task_id: str, principal: str | None) -> TaskRecord:
        """The task, if ``principal`` owns it (None: whoever does) and it has not expired; else UnknownTaskError."""
        query = sa.select(tasks.c.body).where(tasks.c.id == task_id)
        if principal is not None:
            query = query.where(tasks.c.principal == principal)
        row = await self.store._tx(lambda conn: conn.execute(query).first())
        task = TaskRecord.model_validate_json(row[0]) if row is not None else None
        if task is None or (task.expires_at is not None and task.expires_at <= now()):
            raise UnknownTaskError(task_id)
        return task

    async def put_answers(self, task: TaskRecord) -> None:
        """Keep the partial answers of a task (several input requests answered one at a time)."""
        body = task.model_dump_json()
        await self.store._tx(lambda conn: conn.execute(tasks.update().where(tasks.c.id == task.id).values(body=body)))

    async def page(self, principal: str, cursor: str | None = None, limit: int = PAGE) -> tuple[list[TaskRecord], str | None]:
        """The principal's live tasks, newest first, ``limit`` at a time; the cursor of the next page (None: no more)."""
        stamp = now()
        query = (sa.select(tasks.c.body, tasks.c.created_at, tasks.c.id)
                 .where(tasks.c.principal == principal, sa.or_(tasks.c.expires_at.is_(None), tasks.c.expires_at > stamp))
                 .order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit + 1))
        if cursor:
            try:
                at, _, last = cursor.partition("|")
                after = datetime.fromisoformat(at)
            except ValueError:
                raise UserInputError(f"invalid cursor {cursor!r}: pass the nextCursor of the previous page") from None
            query = query.where(sa.or_(tasks.c.created_at < after, sa.and_(tasks.c.created_at == after, tasks.c.id < last)))
        rows = await self.store._tx(lambda conn: conn.execute(query).all())
        found = [TaskRecord.model_validate_json(r[0]) for r in rows[:limit]]
        more = len(rows) > limit
        return found, (f"{found[-1].created_at.isoformat()}|{found[-1].id}" if more and found else None)

    async def state(self, task: TaskRecord) -> TaskState:
        """What the session's transcript says of the task now."""
        query = (sa.select(events.c.body).where(events.c.session_id == task.session_id, events.c.seq > task.start_seq,
                                                events.c.type == "status").order_by(events.c.seq))
        rows = await self.store._tx(lambda conn: conn.execute(query).all())
        record = await self.store.get_session(task.session_id)  # read after the events: never older than they are
        waiting = False
        updated = task.created_at
        for index, (body,) in enumerate(rows):
            event = Event.model_validate_json(body)
            updated = max(updated, event.time)
            status = event.content.get("status")
            if "grants" in event.content:  # a caller narrowed what the session may do: not a transition
                continue
            if status in STOPS:
                current = index == len(rows) - 1 and record.status == status and record.last_seq >= event.seq
                return TaskState(task, record, "ended", event, updated, current=current)
            waiting = status == "waiting_input"
        return TaskState(task, record, "input_required" if waiting else "working", None, updated)
