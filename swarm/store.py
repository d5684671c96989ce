"""The session store: sessions, transcript events and the journal of model and tool calls.

One SQLAlchemy 2 async code path for SQLite (WAL, the default) and PostgreSQL (by URL).
Events are keyed on (session_id, seq); a round's events and the session row are written in one
transaction. A journal entry is written before the call's result is used.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import migrations
from .errors import SessionBusyError, StorageError, UnknownSessionError
from .events import Event, now
from .session import SessionRecord
from .store_faults import LOCK_WAIT_SECONDS, LOCKED, sqlite_path, storage_fault
from .wal import WalCheckpointer

T = TypeVar("T")
metadata = sa.MetaData()
"""The schema as the last migration leaves it (swarm/migrations.py makes and changes it; these tables are for queries)."""

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("last_seq", sa.Integer, nullable=False, default=0),
    sa.Column("record", sa.Text, nullable=False),
    sa.Index("ix_sessions_principal_updated_at", "principal", "updated_at"),  # list_sessions(principal)
)
events = sa.Table(
    "events", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
journal = sa.Table(
    "journal", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # model | tool
    sa.Column("name", sa.String(255), nullable=False),  # model spec or tool name
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

executors = sa.Table(
    "executors", metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),  # unix time of the last heartbeat
)

health = sa.Table(
    "health", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("checked_at", sa.Float, nullable=False),  # unix time of the health check's last write probe (swarm/store_faults.py)
)
tasks = sa.Table(
    "tasks", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(255), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True, index=True),
    sa.Column("body", sa.Text, nullable=False),  # swarm.tasks.TaskRecord as JSON
    sa.Index("ix_tasks_principal_created_at", "principal", "created_at"),
)
checkpoints = sa.Table(
    "checkpoints", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("legs", sa.Integer, nullable=False),  # how many legs of the session the state covers (all of them played to their end)
    sa.Column("position", sa.Integer, nullable=False),  # the journal position after them
    sa.Column("rounds", sa.Integer, nullable=False),  # the rounds played in them
    sa.Column("body", sa.Text, nullable=False),  # the team's saved state (autogen save_state), JSON
)


# Statements built once: only their parameters change per call (the hot path writes per round and per call).
_UPDATE_SESSION = sessions.update().where(sessions.c.id == sa.bindparam("sid")).values(
    {c: sa.bindparam(c) for c in ("principal", "kind", "status", "created_at", "updated_at", "last_seq", "record")})
_INSERT_EVENT = events.insert()
_INSERT_CALL = journal.insert()
_GET_SESSION = sa.select(sessions.c.record).where(sessions.c.id == sa.bindparam("sid"))
_GET_OWN_SESSION = _GET_SESSION.where(sessions.c.principal == sa.bindparam("owner"))


class Store(Protocol):
    """What the engine needs from persistence."""

    async def create_session(self, record: SessionRecord) -> None: ...
    async def get_session(self, session_id: str, principal: str | None = None) -> SessionRecord: ...
    async def list_sessions(self, principal: str | None = None, limit: int = 100) -> list[SessionRecord]: ...
    async def save(self, record: SessionRecord, new_events: Sequence[Event] = ()) -> list[Event]: ...
    async def events(self, session_id: str, after_seq: int = 0) -> list[Event]: ...
    async def changed_since(self, since: Any) -> list[tuple[str, str, int, str]]: ...
    async def running(self, kind: str = "copilot") -> list[SessionRecord]: ...
    async def journal_load(self, session_id: str, after_seq: int = 0) -> dict[int, tuple[str, str]]: ...
    async def journal_put(self, session_id: str, seq: int, *, agent: str, kind: str, name: str, request_hash: str, request: str, response: str) -> None: ...
    async def checkpoint_put(self, session_id: str, *, legs: int, position: int, rounds: int, body: str) -> None: ...
    async def checkpoint_get(self, session_id: str) -> tuple[int, int, int, str] | None: ...
    async def journal_truncate(self, session_id: str, from_seq: int) -> None: ...


class _Prepared:
    """A statement compiled once for the DBAPI of a local SQLite database, run on its raw cursor.

    SQLAlchemy's per-execute work (compiled-cache lookup, execution context, result setup) costs
    more than a WAL commit; the two writes made every round skip it, and their transaction too
    (``SqlStore._raw_attempt``). Bind processors (datetimes) are SQLAlchemy's own, so rows read back
    through SQLAlchemy look the same.
    """

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.keys = list(compiled.positiontup or [])
        self.processors = [compiled.binds[k].type.bind_processor(dialect) for k in self.keys]
        self._plain = operator.itemgetter(*self.keys) if len(self.keys) > 1 and not any(self.processors) else None
        """The row's values in order, when no value needs processing (one C call)."""

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        if self._plain is not None:
            return self._plain(row)  # type: ignore[no-any-return]
        return tuple(row[k] if f is None else f(row[k]) for k, f in zip(self.keys, self.processors))

    def first(self, cursor: sqlite3.Cursor, row: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row a query with ``row``'s values finds, or None."""
        return cursor.execute(self.sql, self.params(row)).fetchone()  # type: ignore[no-any-return]

    def run(self, cursor: sqlite3.Cursor, rows: list[dict[str, Any]]) -> int:
        if len(rows) == 1:
            cursor.execute(self.sql, self.params(rows[0]))
        else:
            cursor.executemany(self.sql, [self.params(r) for r in rows])
        return cursor.rowcount


BUSY_SLICE_MS = 100
"""SQLite waits this long for another process's write lock inside one attempt (blocking its thread: on the
inline path, the event loop); ``SqlStore._tx`` tries again between slices until LOCK_WAIT_SECONDS have passed."""
BUSY_PAUSE = 0.05
"""The pause between two attempts, during which other coroutines run."""
CACHE_KB = 256
"""SQLite's page cache of each connection the process keeps, the store's and DBOS's to its system database
(swarm/system_db.py), in kB. SQLite's default, 2,000, filled as the databases grew: the process's page caches grew
0.65 -> 2 MB over 1,000 paused sessions, 0.26 MB with 256 kB. Another connection's write empties a cache anyway (WAL),
and the system's file cache serves the pages beyond it."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_SLICE_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA cache_size=-{CACHE_KB}")
    cur.close()


class SqlStore:
    """Store on SQLAlchemy 2: ``sqlite:///path`` (default), ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...``.

    Every operation is one SQLAlchemy Core function over a connection, run the same way for every
    database: on an async engine through ``AsyncConnection.run_sync`` (PostgreSQL, aiosqlite), or,
    for plain ``sqlite:///`` URLs, inline on a local WAL database, where a commit costs a fraction of
    a millisecond and a thread hop per statement would cost more than the write.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.async_engine: AsyncEngine | None = None
        self.sync_engine: sa.Engine | None = None
        self._sync_conn: sa.Connection | None = None
        self._fast: dict[str, _Prepared] = {}
        self._checkpointer: WalCheckpointer | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def open(self) -> "SqlStore":
        """Connect and migrate the database to the current schema (swarm/migrations.py); a data directory that cannot
        be written raises StorageError."""
        if self.async_engine is not None or self.sync_engine is not None:
            return self
        try:
            return await self._open()
        except BaseException as exc:
            await self.close()  # a later open() starts afresh (the fault may be gone by then)
            fault = storage_fault(exc, self.url) if isinstance(exc, Exception) else None
            if fault is None or fault is exc:
                raise
            raise fault from exc

    async def _open(self) -> "SqlStore":
        if self.is_sqlite:
            path = self.url.split(":///", 1)[1] if ":///" in self.url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.url.startswith("sqlite:"):
            self.sync_engine = sa.create_engine(self.url)
            sa.event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            self._sync_conn = self.sync_engine.connect()  # one connection, used from the event loop only
            dialect = self.sync_engine.dialect
            self._fast = {"update": _Prepared(_UPDATE_SESSION, dialect), "event": _Prepared(_INSERT_EVENT, dialect),
                          "call": _Prepared(_INSERT_CALL, dialect), "get": _Prepared(_GET_SESSION, dialect),
                          "get_own": _Prepared(_GET_OWN_SESSION, dialect)}
            db_path = sqlite_path(self.url)
            if db_path is not None:
                self._checkpointer = WalCheckpointer(str(db_path))
        elif self.is_sqlite:
            # One connection: writers queue on the pool instead of busy-waiting on SQLite's file lock.
            self.async_engine = create_async_engine(self.url, pool_size=1, max_overflow=0, pool_timeout=60)
            sa.event.listen(self.async_engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.async_engine = create_async_engine(self.url, pool_pre_ping=True)
        if await self._tx(migrations.pending):  # a read: an up-to-date database takes no write lock
            await self._tx(migrations.apply)
        return self

    async def close(self) -> None:
        if self.async_engine is not None:
            await self.async_engine.dispose()
            self.async_engine = None
        self._fast = {}
        if self._checkpointer is not None:
            self._checkpointer.close()  # before the last connection closes: that one checkpoints and removes the WAL
            self._checkpointer = None
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None
        if self.sync_engine is not None:
            self.sync_engine.dispose()
            self.sync_engine = None

    async def _tx(self, op: Callable[..., T], *args: Any, raw: bool = False) -> T:
        """Run ``op(connection, *args)`` in one transaction; a storage fault becomes a StorageError (and writes nothing).

        ``raw``: ``op(cursor)`` runs on the DBAPI cursor of the local SQLite connection (only when ``_fast`` is set).
        On SQLite, a write lock held by another process is waited for in slices (the event loop runs between them)
        until LOCK_WAIT_SECONDS have passed since the first attempt; the transaction is then retried from the start.
        """
        deadline: float | None = None
        while True:
            try:
                return self._raw_attempt(op) if raw else await self._attempt(op, *args)
            except StorageError:
                raise
            except Exception as exc:
                fault = storage_fault(exc, self.url)
                if fault is None:
                    raise
                if fault.cause == LOCKED and self.is_sqlite:
                    if deadline is None:
                        deadline = time.monotonic() + LOCK_WAIT_SECONDS - BUSY_SLICE_MS / 1000
                    if time.monotonic() < deadline:
                        await asyncio.sleep(BUSY_PAUSE)
                        continue
                raise fault from exc

    def _raw_attempt(self, op: Callable[[sqlite3.Cursor], T]) -> T:
        """``op(cursor)`` in one transaction on the local SQLite connection, without SQLAlchemy's transaction
        bookkeeping (the DBAPI's begin and commit are all it does on SQLite); rolled back if anything fails."""
        dbapi: sqlite3.Connection = self._sync_conn.connection.dbapi_connection  # type: ignore[union-attr,assignment]
        cursor = dbapi.cursor()
        try:
            if not dbapi.in_transaction:  # explicit: the writes are one transaction whatever the driver's autocommit mode
                cursor.execute("BEGIN")
            result = op(cursor)
            cursor.execute("COMMIT")  # a cached statement (the driver's commit() prepares it anew every time)
        except BaseException:
            if dbapi.in_transaction:
                dbapi.rollback()
            raise
        finally:
            cursor.close()
        if self._checkpointer is not None:
            self._checkpointer.committed()
        return result

    async def _attempt(self, op: Callable[..., T], *args: Any) -> T:
        if self._sync_conn is not None:
            with self._sync_conn.begin():  # ops are synchronous: no other coroutine can interleave here
                return op(self._sync_conn, *args)
        if self.async_engine is None:
            raise RuntimeError("store is not open: call `await store.open()` first")
        async with self.async_engine.begin() as conn:
            return await conn.run_sync(op, *args)

    async def create_session(self, record: SessionRecord) -> None:
        await self._tx(lambda conn: conn.execute(sessions.insert().values(**_row(record))))

    async def get_session(self, session_id: str, principal: str | None = None) -> SessionRecord:
        own = principal is not None
        values = {"sid": session_id, "owner": principal} if own else {"sid": session_id}
        if self._fast:  # the local SQLite database: the prepared statement on the DBAPI cursor (a continue reads ~9 times)
            prepared = self._fast["get_own" if own else "get"]
            row = await self._tx(lambda cursor: prepared.first(cursor, values), raw=True)
        else:
            row = await self._tx(lambda conn: conn.execute(_GET_OWN_SESSION if own else _GET_SESSION, values).first())
        if row is None:
            raise UnknownSessionError(session_id)
        return SessionRecord.model_validate_json(row[0])

    async def list_sessions(self, principal: str | None = None, limit: int = 100) -> list[SessionRecord]:
        query = sa.select(sessions.c.record).order_by(sessions.c.updated_at.desc()).limit(limit)
        if principal is not None:
            query = query.where(sessions.c.principal == principal)
        rows = await self._tx(lambda conn: conn.execute(query).all())
        return [SessionRecord.model_validate_json(r[0]) for r in rows]

    async def save(self, record: SessionRecord, new_events: Sequence[Event] = ()) -> list[Event]:
        """Write the session row and append events numbered gaplessly after ``record.last_seq``, atomically.

        The engine is the only writer of a running session, so numbering needs no read; the primary
        key (session_id, seq) makes a duplicate append fail instead of forking the transcript.
        """
        previous = record.last_seq, record.updated_at
        numbered = [e.model_copy(update={"seq": record.last_seq + i + 1}) for i, e in enumerate(new_events)]
        record.last_seq += len(numbered)
        record.updated_at = now()
        rows = [{"session_id": record.id, "seq": e.seq, "type": e.type, "body": e.model_dump_json()} for e in numbered]
        values = _row(record)
        values["sid"] = values.pop("id")

        fast = self._fast

        def op(conn: Any) -> None:  # a DBAPI cursor on the fast path, else a SQLAlchemy connection
            if fast:
                if rows:
                    fast["event"].run(conn, rows)
                updated = fast["update"].run(conn, [values])
            else:
                if rows:
                    conn.execute(_INSERT_EVENT, rows)
                updated = conn.execute(_UPDATE_SESSION, values).rowcount
            if updated == 0:
                raise UnknownSessionError(record.id)

        try:
            await self._tx(op, raw=bool(fast))
        except (sqlite3.IntegrityError, sa.exc.IntegrityError):  # those seqs were just written by another writer
            record.last_seq, record.updated_at = previous
            raise SessionBusyError(record.id) from None
        except BaseException:
            record.last_seq, record.updated_at = previous
            raise
        return numbered

    async def events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        query = sa.select(events.c.body).where(events.c.session_id == session_id, events.c.seq > after_seq).order_by(events.c.seq)
        rows = await self._tx(lambda conn: conn.execute(query).all())
        return [Event.model_validate_json(r[0]) for r in rows]

    async def changed_since(self, since: Any) -> list[tuple[str, str, int, str]]:
        """``(id, principal, last_seq, status)`` of the sessions written at or after ``since`` (a datetime)."""
        query = sa.select(sessions.c.id, sessions.c.principal, sessions.c.last_seq, sessions.c.status).where(sessions.c.updated_at >= since)
        rows = await self._tx(lambda conn: conn.execute(query).all())
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def running(self, kind: str = "copilot") -> list[SessionRecord]:
        """Sessions recorded ``running`` (live somewhere, or left so by a crash)."""
        query = sa.select(sessions.c.record).where(sessions.c.status == "running", sessions.c.kind == kind)
        rows = await self._tx(lambda conn: conn.execute(query).all())
        return [SessionRecord.model_validate_json(r[0]) for r in rows]

    async def journal_load(self, session_id: str, after_seq: int = 0) -> dict[int, tuple[str, str]]:
        """The journaled calls of a session after ``after_seq``: seq -> (request hash, response JSON)."""
        query = sa.select(journal.c.seq, journal.c.request_hash, journal.c.response).where(journal.c.session_id == session_id,
                                                                                          journal.c.seq > after_seq)
        rows = await self._tx(lambda conn: conn.execute(query).all())
        return {r[0]: (r[1], r[2]) for r in rows}

    async def journal_put(self, session_id: str, seq: int, *, agent: str, kind: str, name: str, request_hash: str, request: str, response: str) -> None:
        row = dict(session_id=session_id, seq=seq, agent=agent, kind=kind, name=name,
                   request_hash=request_hash, request=request, response=response, created_at=now())
        fast = self._fast.get("call")
        if fast is not None:
            await self._tx(lambda cursor: fast.run(cursor, [row]), raw=True)
        else:
            await self._tx(lambda conn: conn.execute(_INSERT_CALL, row))

    async def checkpoint_put(self, session_id: str, *, legs: int, position: int, rounds: int, body: str) -> None:
        """Keep the team's state after ``legs`` legs (replacing the session's previous checkpoint)."""
        values = dict(legs=legs, position=position, rounds=rounds, body=body)

        def op(conn: sa.Connection) -> None:
            if conn.execute(checkpoints.update().where(checkpoints.c.session_id == session_id).values(**values)).rowcount == 0:
                conn.execute(checkpoints.insert().values(session_id=session_id, **values))

        await self._tx(op)

    async def checkpoint_get(self, session_id: str) -> tuple[int, int, int, str] | None:
        """The session's checkpoint: ``(legs, position, rounds, body)``, or None."""
        query = sa.select(checkpoints.c.legs, checkpoints.c.position, checkpoints.c.rounds, checkpoints.c.body).where(
            checkpoints.c.session_id == session_id)
        row = await self._tx(lambda conn: conn.execute(query).first())
        return tuple(row) if row is not None else None  # type: ignore[return-value]

    async def journal_truncate(self, session_id: str, from_seq: int) -> None:
        stmt = journal.delete().where(journal.c.session_id == session_id, journal.c.seq >= from_seq)
        await self._tx(lambda conn: conn.execute(stmt))

    async def journal_entries(self, session_id: str) -> list[dict[str, Any]]:
        """The journal of a session, for audits and tests."""
        query = sa.select(journal.c.seq, journal.c.agent, journal.c.kind, journal.c.name, journal.c.response).where(journal.c.session_id == session_id).order_by(journal.c.seq)
        rows = await self._tx(lambda conn: conn.execute(query).all())
        return [{"seq": r[0], "agent": r[1], "kind": r[2], "name": r[3], "response": json.loads(r[4])} for r in rows]


def _row(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id, "principal": record.principal, "kind": record.kind, "status": record.status,
        "created_at": record.created_at, "updated_at": record.updated_at, "last_seq": record.last_seq,
        "record": record.model_dump_json(),
    }
