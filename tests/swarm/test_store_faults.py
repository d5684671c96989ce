"""Storage faults at the store: a database locked by another process, a full disk, a read-only data directory.

Each fault becomes a StorageError naming the cause, the path and the fix, within 5 s; the failed write changes
nothing, and once the fault is gone the same store writes again with the transcript intact.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from swarm.errors import StorageError
from swarm.events import Event, now
from swarm.session import SessionRecord
from swarm.store import SqlStore
from swarm.store_faults import DISK_FULL, LOCKED, READ_ONLY, WriteProbe, storage_fault

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


class LockHolder:
    """Another process holding the write lock of a SQLite database (BEGIN EXCLUSIVE) until ``release()``."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the child prints at once (or exits, giving EOF)
        assert line.strip() == "locked", f"the lock holder failed (exit {self.proc.poll()})"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


def record(session_id: str) -> SessionRecord:
    stamp = now()
    return SessionRecord(id=session_id, principal="alice", task="t", created_at=stamp, updated_at=stamp)


def message(text: str) -> Event:
    return Event(type="message", agent="user", content={"text": text})


@pytest.fixture(params=["sqlite", "sqlite+aiosqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    store = await SqlStore(f"{request.param}:///{tmp_path / 'home' / 'swarm.db'}").open()
    yield store
    await store.close()


async def test_a_database_locked_by_another_process_is_named_within_5_seconds_and_the_store_recovers(store: SqlStore, tmp_path: Path) -> None:
    rec = record("s_locked")
    await store.create_session(rec)
    await store.save(rec, [message("first")])
    holder = LockHolder(tmp_path / "home" / "swarm.db")
    ticks = 0

    async def ticker() -> None:  # the event loop keeps running while the store waits for the lock
        nonlocal ticks
        while True:
            await anyio.sleep(0.1)
            ticks += 1

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            started = time.monotonic()
            with pytest.raises(StorageError) as caught:
                await store.save(rec, [message("second")])
            elapsed = time.monotonic() - started
            tg.cancel_scope.cancel()
        assert caught.value.cause == LOCKED and elapsed < 5, elapsed
        text = str(caught.value)
        assert str(tmp_path / "home" / "swarm.db") in text and "locked by another process" in text and "Stop the other process" in text
        assert ticks >= 10, ticks
        assert rec.last_seq == 1  # the failed save changed nothing, in memory or on disk
        assert [e.content["text"] for e in await store.events(rec.id)] == ["first"]  # reads go on (WAL)
    finally:
        holder.release()
    await store.save(rec, [message("second")])
    assert [(e.seq, e.content["text"]) for e in await store.events(rec.id)] == [(1, "first"), (2, "second")]


async def test_a_full_database_is_named_and_the_store_recovers(store: SqlStore) -> None:
    """SQLite's own limit on the database's size stands in for the disk (the real full disk: tests/e2e/test_storage_faults.py)."""
    rec = record("s_full")
    await store.create_session(rec)
    await store.save(rec, [message("first")])

    def limit(conn, pages: int | None) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages if pages is not None else 'page_count'}")

    async def set_limit(pages: int | None) -> None:
        if pages is None:
            pages = (await store._tx(lambda conn: conn.exec_driver_sql("PRAGMA page_count").scalar()))
        await store._tx(limit, pages)

    await set_limit(None)  # no page more than now
    with pytest.raises(StorageError) as caught:
        await store.save(rec, [message("x" * 200_000)])
    assert caught.value.cause == DISK_FULL and "is full" in str(caught.value) and "Free space" in str(caught.value)
    assert str(tmp_dir(store)) in str(caught.value)
    assert rec.last_seq == 1
    await set_limit(1_000_000)
    await store.save(rec, [message("second")])
    assert [(e.seq, e.content["text"]) for e in await store.events(rec.id)] == [(1, "first"), (2, "second")]


def tmp_dir(store: SqlStore) -> Path:
    return Path(store.url.split(":///", 1)[1]).parent


def test_os_and_database_errors_map_to_their_cause(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'swarm.db'}"
    assert storage_fault(OSError(errno.EROFS, "Read-only file system"), url).cause == READ_ONLY
    assert storage_fault(OSError(errno.ENOSPC, "No space left on device"), url).cause == DISK_FULL
    assert storage_fault(ValueError("no"), url) is None
    db = tmp_path / "ro.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as readonly:
        ro.execute("INSERT INTO t VALUES (1)")
    fault = storage_fault(readonly.value, url)
    assert fault is not None and fault.cause == READ_ONLY and f"Make {tmp_path} writable" in str(fault)
    assert storage_fault(sqlite3.IntegrityError("UNIQUE constraint failed"), url) is None  # SessionBusyError's business


async def test_the_write_probe_names_a_lock_and_sees_it_go(tmp_path: Path) -> None:
    store = await SqlStore(f"sqlite:///{tmp_path / 'swarm.db'}").open()
    try:
        probe = WriteProbe(store.url, every=0)
        assert await probe.check() is None
        holder = LockHolder(tmp_path / "swarm.db")
        try:
            started = time.monotonic()
            fault = await probe.check()
            assert fault is not None and fault.cause == LOCKED and time.monotonic() - started < 2
        finally:
            holder.release()
        assert await probe.check() is None
        cached = WriteProbe(store.url, every=60)
        assert await cached.check() is None
        holder = LockHolder(tmp_path / "swarm.db")
        try:
            assert await cached.check() is None  # kept: health checks stay cheap
        finally:
            holder.release()
    finally:
        await store.close()


async def test_the_write_probe_also_takes_the_write_lock_of_dbos_system_database(tmp_path: Path) -> None:
    store = await SqlStore(f"sqlite:///{tmp_path / 'swarm.db'}").open()
    system = tmp_path / "dbos.sqlite"
    sqlite3.connect(system).execute("CREATE TABLE t (x)").connection.commit()
    try:
        probe = WriteProbe(store.url, every=0, also=[system])
        assert await probe.check() is None
        holder = LockHolder(system)
        try:
            fault = await probe.check()
            assert fault is not None and fault.cause == LOCKED and fault.path == str(system), fault
            assert f"the database {system} is locked by another process" in str(fault)
        finally:
            holder.release()
        assert await probe.check() is None
    finally:
        await store.close()


# ---- a real read-only file system (a read-only mount in a private mount namespace) ---------------------------------

OPEN_STORE = """
import asyncio, json, sys
from swarm.errors import StorageError
from swarm.store import SqlStore
from swarm.store_faults import WriteProbe

async def main(url):
    out = {}
    try:
        store = await SqlStore(url).open()
        await store.close()
        out["open"] = "ok"
    except StorageError as exc:
        out["open"] = [exc.cause, str(exc)]
    fault = await WriteProbe(url).check()
    out["probe"] = None if fault is None else fault.cause
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


def mount_namespaces() -> str | None:
    """Why private mount namespaces with tmpfs mounts cannot be used here (None: they can)."""
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount in a private mount namespace: {probe.stderr.strip()}"


def test_a_read_only_data_directory_is_named_at_open(tmp_path: Path) -> None:
    why = mount_namespaces()
    if why is not None:
        pytest.skip(why)
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "open_store.py").write_text(OPEN_STORE)
    for existing in (False, True):  # an empty data directory, then one holding a database
        if existing:
            sqlite3.connect(home / "swarm.db").execute("PRAGMA journal_mode=WAL").connection.close()
        url = f"sqlite:///{home / 'swarm.db'}"
        shell = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$0" "$@"'
        done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", shell, sys.executable, str(tmp_path / "open_store.py"), url],
                              capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        cause, text = out["open"]
        assert cause == READ_ONLY and f"the data directory {home} is read-only" in text and "SWARM_MCP_HOME" in text, text
        assert out["probe"] == READ_ONLY
