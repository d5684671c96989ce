"""The store's migrations: a database written before migrations existed opens, migrates, and its sessions go on.

tests/swarm/data/e8d9cb5.db was written by swarm-mcp at commit e8d9cb5 (tests/swarm/data/make_e8d9cb5_db.py): a
copilot session paused after two rounds and a hitl_planning session waiting for approval. On PostgreSQL the same
rows are copied into tables made by that version's ``create_all`` (OLD below, copied from e8d9cb5's swarm/store.py).
Runs on SQLite always and on PostgreSQL when SWARM_MCP_TEST_POSTGRES_URL is set (.ci/run sets it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from phases import phase_tool_registry, resolve_approval
from swarm import migrations
from swarm.engine import Engine
from swarm.errors import StorageError
from swarm.events import Event
from swarm.grants import CodeRefused, check_code
from swarm.models.scripted import Script
from swarm.store import SqlStore, metadata
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "data" / "e8d9cb5.db"
FIXTURE_HOME = Path("/tmp/swarm-e8d9cb5-home")
"""The data directory the fixture's sessions were created in: their records name work dirs under it."""
NAMES = [m.__name__ for m in migrations.MIGRATIONS]
BACKENDS = ["sqlite", "sqlite+aiosqlite", "postgresql"]
PG_URL = os.environ.get("SWARM_MCP_TEST_POSTGRES_URL")

# The tables exactly as swarm/store.py declared them at e8d9cb5 (its create_all made every database until then).
OLD = sa.MetaData()
sa.Table(
    "sessions", OLD,
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
    "events", OLD,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
sa.Table(
    "journal", OLD,
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
    "executors", OLD,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),
)
HEALTH = sa.Table("health", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("checked_at", sa.Float, nullable=False))
"""Added (through create_all) by the store-fault work, after e8d9cb5 and before migrations."""


def fixture_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of the e8d9cb5 database, read through the old tables."""
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True))
    try:
        with engine.connect() as conn:
            return {t.name: [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))] for t in OLD.sorted_tables}
    finally:
        engine.dispose()


# ---- databases ----------------------------------------------------------------------------------


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes empty databases of the backend: each call returns a new one's URL (PostgreSQL ones are dropped afterwards)."""
    made: list[str] = []
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("set SWARM_MCP_TEST_POSTGRES_URL (postgresql+asyncpg://...) to run the migration tests on PostgreSQL; .ci/run does")

    async def make() -> str:
        name = f"migrations_{os.urandom(6).hex()}"
        if request.param == "postgresql":
            await _pg_admin(f'CREATE DATABASE "{name}"')
            made.append(name)
            return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        return f"{request.param}:///{tmp_path / (name + '.db')}"

    try:
        yield make
    finally:
        for name in made:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(FIXTURE_HOME, ignore_errors=True)  # work dirs made by sessions of the fixture that went on


async def run_sync(url: str, op: Callable[[sa.Connection], Any]) -> Any:
    """``op`` in one transaction on its own engine (not the store's)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(op)
    finally:
        await engine.dispose()


async def old_database(make: Callable[[], Awaitable[str]], *, health: bool = False) -> str:
    """A database as e8d9cb5 left it, with the fixture's sessions (``health``: as the version just before migrations left it)."""
    url = await make()
    if url.startswith("sqlite"):
        shutil.copyfile(FIXTURE, url.split(":///", 1)[1])
        if health:
            await run_sync(_async_url(url), lambda conn: HEALTH.create(conn))
        return url
    rows = fixture_rows()

    def build(conn: sa.Connection) -> None:
        OLD.create_all(conn)
        if health:
            HEALTH.create(conn)
        for table in OLD.sorted_tables:
            for row in rows[table.name]:
                conn.execute(table.insert().values({k: v.replace(tzinfo=timezone.utc) if hasattr(v, "tzinfo") and v.tzinfo is None else v
                                                    for k, v in row.items()}))

    await run_sync(url, build)
    return url


def _async_url(url: str) -> str:
    return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1) if url.startswith("sqlite:///") else url


def schema(conn: sa.Connection) -> dict[str, Any]:
    """Tables, columns (name, type, nullable), primary keys and indexes, as the database reports them."""
    inspector = sa.inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        columns = [(c["name"], c["type"].compile(dialect=conn.dialect), c["nullable"]) for c in inspector.get_columns(table)]
        indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table))
        out[table] = {"columns": columns, "pk": inspector.get_pk_constraint(table)["constrained_columns"], "indexes": indexes}
    return out


async def recorded(url: str) -> list[tuple[str, Any]]:
    table = migrations.migrations_table
    rows = await run_sync(_async_url(url), lambda conn: conn.execute(sa.select(table.c.name, table.c.applied_at)).all())
    return sorted(((r[0], r[1]) for r in rows), key=lambda r: (r[1], r[0]))


# ---- tests --------------------------------------------------------------------------------------


async def test_an_e8d9cb5_database_migrates_and_its_sessions_go_on(new_database: Callable[[], Awaitable[str]], settings: Any) -> None:
    url = await old_database(new_database)
    old = fixture_rows()
    by_kind = {r["kind"]: r for r in old["sessions"]}
    copilot, phase = by_kind["copilot"], by_kind["phase:hitl_planning"]

    store = await SqlStore(url).open()
    try:
        runs = await recorded(url)
        assert [name for name, _ in runs] == NAMES == ["m001_initial", "m002_health", "m003_sessions_by_principal", "m004_session_grants_unknown",
                                                          "m005_session_output", "m006_tasks", "m007_checkpoints"]

        # sessions, records, transcripts and journals read back intact
        assert {r.id for r in await store.list_sessions()} == {copilot["id"], phase["id"]}
        assert [r.id for r in await store.list_sessions("alice")] == [phase["id"]]
        assert [r.id for r in await store.running("phase:hitl_planning")] == []
        for row in old["sessions"]:
            record = await store.get_session(row["id"], row["principal"])
            assert (record.status, record.kind, record.last_seq) == (row["status"], row["kind"], row["last_seq"])
            stored = json.loads(await run_sync(_async_url(url), lambda conn, sid=row["id"]: conn.execute(
                sa.text("SELECT record FROM sessions WHERE id = :id"), {"id": sid}).scalar_one()))
            assert list(stored)[:3] == ["id", "principal", "grants"] and stored.pop("grants") is None
            assert stored.pop("output") is None and record.output is None  # neither had completed work
            assert stored == json.loads(row["record"])  # nothing else in the record changed
            assert record.grants is None
            with pytest.raises(CodeRefused, match="created by an older version"):
                check_code(record.grants, "execute_code")  # unknown grants: no code, as before the migration
            events = await store.events(row["id"])
            assert events == [Event.model_validate_json(e["body"]) for e in old["events"] if e["session_id"] == row["id"]]
            assert [e.seq for e in events] == list(range(1, row["last_seq"] + 1))
        for prefix in (copilot["id"], f"{phase['id']}:p1"):
            assert await store.journal_load(prefix) == {j["seq"]: (j["request_hash"], j["response"]) for j in old["journal"] if j["session_id"] == prefix}
    finally:
        await store.close()

    # opening again runs nothing
    again = await SqlStore(url).open()
    try:
        assert await again._tx(migrations.pending) == [] and await again._tx(migrations.apply) == []
    finally:
        await again.close()
    assert await recorded(url) == runs

    # today's engine goes on with both sessions, replaying the journaled calls (the script holds only new calls)
    script = Script([{"agent": "controller", "text": "done"}])
    async with Engine(settings.__class__(**{**settings.__dict__, "db_url": url}), tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.run(copilot["id"], max_rounds=5)
        assert (record.status, record.result, record.total_rounds) == ("completed", "done", 3)
        pending = (await engine.get(phase["id"], "alice")).pending
        result = await resolve_approval(engine, phase["id"], pending.id, "approve", who="alice", principal="alice")
        assert result.status == "completed" and result.output["approved_by"] == "alice"
        assert result.output["plan"]["steps"][0]["sub_task"] == "write the announcement"
        assert (await engine.get(phase["id"])).output == result.output  # the record says its output itself
        for sid in (copilot["id"], phase["id"]):
            events = await engine.transcript(sid)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
    script.assert_exhausted()


async def test_fresh_and_migrated_databases_end_in_the_schema_the_store_declares(new_database: Callable[[], Awaitable[str]]) -> None:
    fresh = await new_database()
    from_e8d9cb5 = await old_database(new_database)
    before_migrations = await old_database(new_database, health=True)  # create_all of the version just before
    schemas = []
    for url in (fresh, from_e8d9cb5, before_migrations):
        await (await SqlStore(url).open()).close()
        assert [name for name, _ in await recorded(url)] == NAMES
        schemas.append(await run_sync(_async_url(url), schema))
    assert schemas[0] == schemas[1] == schemas[2]

    migrated = schemas[0]
    assert set(migrated) == set(metadata.tables) | {"_migrations"}
    for table in metadata.sorted_tables:
        declared = [(c.name, c.nullable) for c in table.columns]
        assert [(name, nullable) for name, _, nullable in migrated[table.name]["columns"]] == declared, table.name
        assert migrated[table.name]["pk"] == [c.name for c in table.primary_key.columns]
        assert {i[:2] for i in migrated[table.name]["indexes"]} == {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}, table.name
    if fresh.startswith("sqlite"):  # list_sessions(principal) reads its page of sessions in index order, without a sort
        plan = await run_sync(_async_url(fresh), lambda conn: " ".join(str(r[-1]) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT record FROM sessions WHERE principal = ? ORDER BY updated_at DESC LIMIT 100", ("alice",))))
        assert "ix_sessions_principal_updated_at" in plan and "TEMP B-TREE" not in plan, plan


async def test_a_failing_migration_leaves_the_database_as_it_was(new_database: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url = await old_database(new_database)
    before = await run_sync(_async_url(url), schema)

    def m099_broken(conn: sa.Connection) -> None:
        raise RuntimeError("m099 broke")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, m099_broken))
    with pytest.raises(RuntimeError, match="m099 broke"):
        await SqlStore(url).open()
    assert await run_sync(_async_url(url), schema) == before  # no _migrations table, no index made or dropped
    records = await run_sync(_async_url(url), lambda conn: conn.execute(sa.text("SELECT record FROM sessions")).scalars().all())
    assert records and all('"grants"' not in r for r in records)

    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:-1])
    await (await SqlStore(url).open()).close()  # the next open migrates
    assert [name for name, _ in await recorded(url)] == NAMES


async def test_two_processes_opening_a_database_at_once_migrate_it_once(new_database: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url = await old_database(new_database)
    calls: list[str] = []
    both_read = threading.Barrier(2, timeout=10)
    pending = migrations.pending

    def counted(migration: migrations.Migration) -> migrations.Migration:
        def run(conn: sa.Connection) -> None:
            calls.append(migration.__name__)
            migration(conn)
        run.__name__ = migration.__name__
        return run

    def pending_then_meet(conn: sa.Connection) -> list[str]:
        names = pending(conn)
        both_read.wait()  # each opener saw every migration pending: both go on to apply, one waits for the other's lock
        return names

    ran: list[list[str]] = []
    apply = migrations.apply

    def apply_noted(conn: sa.Connection) -> list[str]:
        names = apply(conn)
        ran.append(names)
        return names

    monkeypatch.setattr(migrations, "MIGRATIONS", tuple(counted(m) for m in migrations.MIGRATIONS))
    monkeypatch.setattr(migrations, "pending", pending_then_meet)
    monkeypatch.setattr(migrations, "apply", apply_noted)

    errors: list[BaseException] = []

    def opener() -> None:
        async def go() -> None:
            store = SqlStore(url)
            await store.open()
            await store.close()
        try:
            asyncio.run(go())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sorted(ran) == [[], NAMES]  # both took the lock in turn: the second found nothing left to do
    assert sorted(calls) == sorted(NAMES)  # every migration ran once
    assert [name for name, _ in await recorded(url)] == NAMES


async def test_a_database_locked_by_another_process_fails_open_clearly(tmp_path: Path) -> None:
    """The migration waits for SQLite's write lock like any write (LOCK_WAIT_SECONDS), then says who holds it."""
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")  # as the old version left it (the fixture was copied out of WAL): reads go on
    holder.execute("BEGIN IMMEDIATE")  # e.g. a sqlite3 shell left in a transaction
    try:
        with pytest.raises(StorageError, match="locked by another process"):
            await SqlStore(f"sqlite:///{path}").open()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await (await SqlStore(f"sqlite:///{path}").open()).close()
    assert [name for name, _ in await recorded(f"sqlite:///{path}")] == NAMES


async def test_a_completed_phase_session_gets_its_output_from_its_last_run(new_database: Callable[[], Awaitable[str]]) -> None:
    """m005: the structured output of a completed phase session, kept before only in its phase runs, is the record's."""
    url = await new_database()
    store = await SqlStore(url).open()
    await store.close()
    plan = {"steps": [{"sub_task": "write it", "agent": "researcher"}]}
    done = {"id": "s_done", "principal": "local", "kind": "phase:planning", "task": "t", "status": "completed", "result": "text",
            "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z", "meta": {"phase_runs": [{"id": "p1", "output": {"plan": plan}}]}}
    waiting = {**done, "id": "s_wait", "status": "waiting_input"}

    def rewind(conn: sa.Connection) -> None:  # two records as the code before m005 wrote them, m005 not yet applied
        for record in (done, waiting):
            conn.execute(sa.text("INSERT INTO sessions (id, principal, kind, status, created_at, updated_at, last_seq, record) "
                                 "VALUES (:id, 'local', 'phase:planning', :status, :t, :t, 0, :record)"),
                         {"id": record["id"], "status": record["status"], "t": datetime(2026, 11, 1, tzinfo=timezone.utc), "record": json.dumps(record)})
        conn.execute(sa.text("DELETE FROM _migrations WHERE name = 'm005_session_output'"))

    await run_sync(_async_url(url), rewind)
    store = await SqlStore(url).open()
    try:
        assert (await store.get_session("s_done")).output == {"plan": plan}
        assert (await store.get_session("s_wait")).output is None
    finally:
        await store.close()
