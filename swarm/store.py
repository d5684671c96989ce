"""The session store: sessions, transcript events, round checkpoints and the model-call journal.

One SQLAlchemy 2 async code path for SQLite (WAL, the default) and PostgreSQL (by URL).
Appends are idempotent on (session_id, seq); a round's events, its checkpoint and the session row
are written in one transaction, so a crash never leaves half a round behind.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import UnknownSessionError
from .events import Event, now
from .session import SessionRecord

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(255), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False, default=0),
    sa.Column("record", sa.Text, nullable=False),
)
events = sa.Table(
    "events", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
checkpoints = sa.Table(
    "checkpoints", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("calls", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)
model_calls = sa.Table(
    "model_calls", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class Checkpoint(Protocol):
    round: int
    calls: int
    state: dict[str, Any]


class StoredCheckpoint:
    def __init__(self, round: int, calls: int, state: dict[str, Any]) -> None:
        self.round, self.calls, self.state = round, calls, state


class Store(Protocol):
    """What the engine needs from persistence."""

    async def create_session(self, record: SessionRecord) -> None: ...
    async def get_session(self, session_id: str, principal: str | None = None) -> SessionRecord: ...
    async def list_sessions(self, principal: str | None = None, limit: int = 100) -> list[SessionRecord]: ...
    async def save(self, record: SessionRecord, new_events: Sequence[Event] = (), checkpoint: StoredCheckpoint | None = None) -> list[Event]: ...
    async def events(self, session_id: str, after_seq: int = 0) -> list[Event]: ...
    async def load_checkpoint(self, session_id: str) -> StoredCheckpoint | None: ...
    async def journal_get(self, session_id: str, seq: int) -> tuple[str, str] | None: ...
    async def journal_put(self, session_id: str, seq: int, agent: str, model: str, request_hash: str, request: str, response: str) -> None: ...
    async def journal_truncate(self, session_id: str, from_seq: int) -> None: ...


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class SqlStore:
    """Store on SQLAlchemy async: sqlite+aiosqlite:///path or postgresql+asyncpg://..."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def open(self) -> "SqlStore":
        if self.engine is not None:
            return self
        if self.is_sqlite:
            path = self.url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(self.url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return self

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    def _engine(self) -> AsyncEngine:
        if self.engine is None:
            raise RuntimeError("store is not open: call `await store.open()` first")
        return self.engine

    async def create_session(self, record: SessionRecord) -> None:
        async with self._engine().begin() as conn:
            await conn.execute(sessions.insert().values(**_row(record), last_seq=0))

    async def get_session(self, session_id: str, principal: str | None = None) -> SessionRecord:
        query = sa.select(sessions.c.record).where(sessions.c.id == session_id)
        if principal is not None:
            query = query.where(sessions.c.principal == principal)
        async with self._engine().connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise UnknownSessionError(session_id)
        return SessionRecord.model_validate_json(row[0])

    async def list_sessions(self, principal: str | None = None, limit: int = 100) -> list[SessionRecord]:
        query = sa.select(sessions.c.record).order_by(sessions.c.updated_at.desc()).limit(limit)
        if principal is not None:
            query = query.where(sessions.c.principal == principal)
        async with self._engine().connect() as conn:
            rows = (await conn.execute(query)).all()
        return [SessionRecord.model_validate_json(r[0]) for r in rows]

    async def save(self, record: SessionRecord, new_events: Sequence[Event] = (), checkpoint: StoredCheckpoint | None = None) -> list[Event]:
        """Write the session row, append events (numbered gaplessly) and the checkpoint, atomically."""
        record.updated_at = now()
        async with self._engine().begin() as conn:
            last = (await conn.execute(sa.select(sessions.c.last_seq).where(sessions.c.id == record.id))).scalar_one_or_none()
            if last is None:
                raise UnknownSessionError(record.id)
            numbered = [e.model_copy(update={"seq": last + i + 1}) for i, e in enumerate(new_events)]
            if numbered:
                await conn.execute(events.insert(), [{"session_id": record.id, "seq": e.seq, "type": e.type, "body": e.model_dump_json()} for e in numbered])
            await conn.execute(sessions.update().where(sessions.c.id == record.id).values(**_row(record), last_seq=last + len(numbered)))
            if checkpoint is not None:
                values = {"round": checkpoint.round, "calls": checkpoint.calls, "state": json.dumps(checkpoint.state)}
                updated = await conn.execute(checkpoints.update().where(checkpoints.c.session_id == record.id).values(**values))
                if updated.rowcount == 0:
                    await conn.execute(checkpoints.insert().values(session_id=record.id, **values))
        return numbered

    async def events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        query = sa.select(events.c.body).where(events.c.session_id == session_id, events.c.seq > after_seq).order_by(events.c.seq)
        async with self._engine().connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Event.model_validate_json(r[0]) for r in rows]

    async def load_checkpoint(self, session_id: str) -> StoredCheckpoint | None:
        query = sa.select(checkpoints.c.round, checkpoints.c.calls, checkpoints.c.state).where(checkpoints.c.session_id == session_id)
        async with self._engine().connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else StoredCheckpoint(row[0], row[1], json.loads(row[2]))

    async def journal_get(self, session_id: str, seq: int) -> tuple[str, str] | None:
        query = sa.select(model_calls.c.request_hash, model_calls.c.response).where(model_calls.c.session_id == session_id, model_calls.c.seq == seq)
        async with self._engine().connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def journal_put(self, session_id: str, seq: int, agent: str, model: str, request_hash: str, request: str, response: str) -> None:
        async with self._engine().begin() as conn:
            await conn.execute(model_calls.insert().values(session_id=session_id, seq=seq, agent=agent, model=model, request_hash=request_hash, request=request, response=response, created_at=now()))

    async def journal_truncate(self, session_id: str, from_seq: int) -> None:
        async with self._engine().begin() as conn:
            await conn.execute(model_calls.delete().where(model_calls.c.session_id == session_id, model_calls.c.seq >= from_seq))

    async def model_calls(self, session_id: str) -> list[dict[str, Any]]:
        query = sa.select(model_calls.c.seq, model_calls.c.agent, model_calls.c.model, model_calls.c.response).where(model_calls.c.session_id == session_id).order_by(model_calls.c.seq)
        async with self._engine().connect() as conn:
            rows = (await conn.execute(query)).all()
        return [{"seq": r[0], "agent": r[1], "model": r[2], "response": json.loads(r[3])} for r in rows]


def _row(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id, "principal": record.principal, "kind": record.kind, "status": record.status,
        "created_at": record.created_at, "updated_at": record.updated_at, "record": record.model_dump_json(),
    }


