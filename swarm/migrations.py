"""Ordered, named migrations of the store: its tables, indexes and the JSON shapes it keeps (simonw/llm's ``m001_...``).

Each migration is a function ``mNNN_<what>(conn)`` run once per database, in the order of MIGRATIONS, and
recorded in the ``_migrations`` table (name, applied_at). ``SqlStore.open()`` first asks ``pending`` (a read:
an up-to-date database takes no write lock), then, if anything is pending, runs ``apply`` in one transaction that
starts by taking the database's migration lock - ``BEGIN IMMEDIATE`` on SQLite (the write lock: another process
opening the same file waits, then finds nothing left to do), ``pg_advisory_xact_lock`` on PostgreSQL (two
replicas starting at once: the second waits for the first to commit). DDL is transactional on both, so a
migration that fails leaves the database as it was, and the next ``open()`` tries again.

Writing one:
  * Append; never change or reorder a migration that has shipped (databases out there recorded its name).
  * Say what the migration acts on in its own terms (its own ``Table`` objects or SQL), never through
    ``swarm.store``'s tables, which describe the newest shape; and change stored JSON as JSON (dicts), not
    through today's pydantic models, which will have moved on.
  * Databases created by ``metadata.create_all`` before migrations existed have no ``_migrations`` table:
    a migration that creates something first checks whether it is there.
  * ``swarm.store``'s tables must describe the schema the last migration leaves (tests/swarm/test_migrations.py
    compares them).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable

import sqlalchemy as sa

from .errors import ConfigError

log = logging.getLogger("swarm.migrations")

PG_LOCK_KEY = 0x53574D4D49475231
"""The PostgreSQL advisory lock held while migrating (a constant: every replica takes the same lock)."""
BATCH = 500
"""Rows read at a time by a migration that rewrites stored JSON."""

_meta = sa.MetaData()
migrations_table = sa.Table(
    "_migrations", _meta,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

Migration = Callable[[sa.Connection], None]


# -- the migrations, in order ------------------------------------------------------------------------------

def m001_initial(conn: sa.Connection) -> None:
    """The tables as swarm-mcp wrote them before migrations existed (commit e8d9cb5): sessions (the record as
    JSON), transcript events, the journal of model and tool calls, and executor heartbeats.

    A database made by that version's ``create_all`` already has them: only missing tables are created.
    """
    v1 = sa.MetaData()
    sa.Table(
        "sessions", v1,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(255), nullable=False, index=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("last_seq", sa.Integer, nullable=False, default=0),
        sa.Column("record", sa.Text, nullable=False),
    )
    sa.Table(
        "events", v1,
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    sa.Table(
        "journal", v1,
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "executors", v1,
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    v1.create_all(conn, checkfirst=True)


def m002_health(conn: sa.Connection) -> None:
    """The ``health`` table the health check's write probe writes to (swarm/store_faults.py). A database opened by
    the version that added it (before migrations existed) already has it."""
    sa.Table(
        "health", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("checked_at", sa.Float, nullable=False),
    ).create(conn, checkfirst=True)


def m003_sessions_by_principal(conn: sa.Connection) -> None:
    """An index on sessions (principal, updated_at) for ``list_sessions(principal)`` (the sessions index, the CLI's
    ``sessions``), which filters on principal and orders by updated_at: it read them all and sorted them.

    It replaces the index on principal alone (its prefix), so a round's write of its session updates as many
    indexes as before. ``running()`` (status and kind) gets none on purpose: it runs once per process start, and
    the session row is written with every column each round, so an index on status would cost every round
    (about 10% of a save's CPU, measured) to spare one scan per start.
    """
    sessions = sa.Table("sessions", sa.MetaData(), sa.Column("principal"), sa.Column("updated_at"))
    sa.Index("ix_sessions_principal_updated_at", sessions.c.principal, sessions.c.updated_at).create(conn, checkfirst=True)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_sessions_principal")


def m004_session_grants_unknown(conn: sa.Connection) -> None:
    """Session records written before grants existed get ``"grants": null``: unknown, so no code runs in them.

    A session's grants (swarm/grants.py: origin, code allowed, whose model) are fixed when it is created, from
    the caller's origin. An older record does not say where its caller came from: its principal ("local", or a
    token's subject) does not tell stdio from unauthenticated loopback HTTP, and the operator's setting for remote
    code may have changed since. Guessing would grant code execution to sessions no gate ever admitted, so the
    migration grants nothing: ``null`` is what ``SessionRecord.grants`` reads as unknown, and unknown means
    refused (``check_code``). Such a session can still be read, continued and answered; code in it is refused
    with a message saying to start a new session. The key is written out rather than left absent so that every
    stored record states the decision. ``updated_at`` is left alone: the sessions did not change for watchers.
    """
    _rewrite_records(conn, lambda record: None if "grants" in record else _insert_after(record, "principal", "grants", None))


def m005_session_output(conn: sa.Connection) -> None:
    """Session records get ``output``: the structured output of the session's last completed work.

    A completed phase session used to keep its output (a plan, ranked ideas, step results) only inside
    ``meta["phase_runs"][-1]["output"]``, and callers dug it out by knowing the session's kind. The record now
    says it itself; this fills it from there for completed phase sessions, and ``null`` for every other record.
    """
    def add_output(record: dict[str, Any]) -> dict[str, Any] | None:
        if "output" in record:
            return None
        runs = (record.get("meta") or {}).get("phase_runs") or []
        done = record.get("status") == "completed" and runs and isinstance(runs[-1], dict)
        return _insert_after(record, "result", "output", runs[-1].get("output") if done else None)

    _rewrite_records(conn, add_output)


def m006_tasks(conn: sa.Connection) -> None:
    """The ``tasks`` table (swarm/tasks.py): a caller's handle on a session's work, as MCP tasks are. Its state is
    read from the session's transcript; the row keeps who owns it, which session it follows from where, and until
    when (``expires_at``, indexed: expired rows are deleted as new ones are made). Listing is by principal, newest first.
    """
    tasks = sa.Table(
        "tasks", sa.MetaData(),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True, index=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Index("ix_tasks_principal_created_at", "principal", "created_at"),
    )
    tasks.create(conn, checkfirst=True)


def m007_checkpoints(conn: sa.Connection) -> None:
    """The ``checkpoints`` table: per session, the team's saved state after its last leg played to its end, with the
    journal position and rounds after it. Resuming a session loads it and replays only the leg after it, instead of
    every leg since the start (swarm/runner.py); a session without one (all of them, before this) replays from the start."""
    sa.Table(
        "checkpoints", sa.MetaData(),
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("legs", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("rounds", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    ).create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (m001_initial, m002_health, m003_sessions_by_principal, m004_session_grants_unknown,
                                     m005_session_output, m006_tasks, m007_checkpoints)
"""Every migration, in the order they run."""


# -- running them ------------------------------------------------------------------------------------------

def applied(conn: sa.Connection) -> list[str]:
    """Names of the migrations recorded in the database, in the order they ran (none before migrations existed)."""
    if not sa.inspect(conn).has_table(migrations_table.name):
        return []
    rows = conn.execute(sa.select(migrations_table.c.name).order_by(migrations_table.c.applied_at, migrations_table.c.name)).all()
    return [r[0] for r in rows]


def pending(conn: sa.Connection) -> list[str]:
    """Names of the migrations the database has not had yet (a read; takes no lock)."""
    done = set(applied(conn))
    return [m.__name__ for m in MIGRATIONS if m.__name__ not in done]


def apply(conn: sa.Connection) -> list[str]:
    """Take the migration lock, then run every migration not yet recorded, in order, recording each; returns their names.

    Must be the first thing done in its transaction (on SQLite it begins the transaction itself).
    """
    _lock(conn)
    migrations_table.create(conn, checkfirst=True)
    done = set(applied(conn))
    ran: list[str] = []
    for migration in MIGRATIONS:
        name = migration.__name__
        if name in done:
            continue
        migration(conn)
        conn.execute(migrations_table.insert().values(name=name, applied_at=datetime.now(timezone.utc)))
        ran.append(name)
    unknown = done - {m.__name__ for m in MIGRATIONS}
    if unknown:
        log.warning("the store has migrations this version does not know (%s): a newer swarm-mcp migrated it", ", ".join(sorted(unknown)))
    if ran:
        log.info("store migrated: %s", ", ".join(ran))
    return ran


def _lock(conn: sa.Connection) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        # pysqlite (and aiosqlite over it) has not begun a transaction yet: begin it holding the write lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    else:
        raise ConfigError(f"SWARM_MCP_DB is a {name} database: the session store runs on SQLite or PostgreSQL only")


def _rewrite_records(conn: sa.Connection, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """Rewrite every stored session record (as JSON) that ``change`` returns a new version of (None: unchanged), in batches."""
    sessions = sa.table("sessions", sa.column("id"), sa.column("record"))
    after = ""
    while True:
        rows = conn.execute(sa.select(sessions.c.id, sessions.c.record).where(sessions.c.id > after)
                            .order_by(sessions.c.id).limit(BATCH)).all()
        if not rows:
            return
        for sid, text in rows:
            record = json.loads(text)
            changed = change(record) if isinstance(record, dict) else None
            if changed is not None:
                conn.execute(sessions.update().where(sessions.c.id == sid).values(record=_dumps(changed)))
        after = rows[-1][0]


def _insert_after(data: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    """``data`` with ``key`` added right after ``after`` (at the end if ``after`` is absent), keeping the order."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        out[k] = v
        if k == after:
            out[key] = value
    out.setdefault(key, value)
    return out


def _dumps(data: Any) -> str:
    """JSON as pydantic's ``model_dump_json`` writes it (compact, UTF-8)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
