"""Storage faults: what a failed read or write of the store means, in words an operator can act on.

``storage_fault(exc, url)`` is the one place where database and file-system errors (sqlite3,
asyncpg through SQLAlchemy, ``OSError``) become a ``StorageError`` naming the cause - the data
directory is read-only, the disk is full, another process holds the database's write lock, the
database cannot be reached - the path concerned and the fix. ``WriteProbe`` asks "can the store
write now?" for the health check, cheaply and with a bounded wait.

A failed operation rolls its transaction back: committed sessions and transcripts stay intact, and
the same process works again once the fault is gone.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Sequence

from .errors import StorageError

READ_ONLY, DISK_FULL, LOCKED, UNAVAILABLE = "read_only", "disk_full", "locked", "unavailable"

LOCK_WAIT_SECONDS = 3.0
"""How long a store operation waits for another process's write lock on the database before it fails
(the retries of one operation share this deadline, so a tool call's answer comes within 5 s)."""
PROBE_LOCK_WAIT_SECONDS = 1.0
"""How long the health check's write probe waits for the write lock."""
MIN_FREE_BYTES = 64 * 1024
"""Less free space than this on the data directory's disk counts as a full disk."""

# SQLite result codes (the primary code is the low byte of the extended one)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 6, 8, 10, 13, 14
_READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# PostgreSQL SQLSTATEs
_PG_READ_ONLY, _PG_DISK_FULL, _PG_LOCK_NOT_AVAILABLE = "25006", "53100", "55P03"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite`` URL (None for in-memory databases and other URLs)."""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _where(url: str) -> str:
    """A database URL without its credentials."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.rsplit('@', 1)[1]}"
    return url


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the DBAPI error SQLAlchemy wrapped, and what they were raised from."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen) or len(seen) > 8:
            continue
        seen.append(e)
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return seen


def _disk_state(directory: Path) -> str | None:
    """READ_ONLY or DISK_FULL when the directory's file system says so (or the nearest existing parent's)."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        stat = os.statvfs(probe)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return READ_ONLY
    if os.geteuid() != 0 and not os.access(probe, os.W_OK):
        return READ_ONLY
    free = (stat.f_bfree if os.geteuid() == 0 else stat.f_bavail) * stat.f_frsize
    if stat.f_blocks and free < MIN_FREE_BYTES:
        return DISK_FULL
    return None


def _sqlite_cause(exc: sqlite3.Error, directory: Path | None) -> str | None:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).lower()
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text or "database table is locked" in text:
        return LOCKED
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return DISK_FULL
    if primary == _SQLITE_READONLY or "readonly database" in text:
        return READ_ONLY
    if primary in (_SQLITE_CANTOPEN, _SQLITE_IOERR) or "unable to open database" in text or "disk i/o error" in text:
        return (_disk_state(directory) if directory is not None else None) or UNAVAILABLE
    return None


def _cause(exc: BaseException, directory: Path | None) -> tuple[str, str] | None:
    """(cause, the database's or the system's own words) of a storage fault, or None."""
    for e in _causes(exc):
        cause: str | None = None
        if isinstance(e, sqlite3.Error):
            cause = _sqlite_cause(e, directory)
        elif isinstance(e, OSError) and e.errno is not None:
            if e.errno == errno.EROFS or (e.errno in _READ_ONLY_ERRNOS and directory is not None):  # a stray EACCES elsewhere is not ours
                cause = READ_ONLY
            elif e.errno in _FULL_ERRNOS:
                cause = DISK_FULL
            elif e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
                cause = UNAVAILABLE
        sqlstate = getattr(e, "sqlstate", None)
        if cause is None and isinstance(sqlstate, str):
            if sqlstate == _PG_READ_ONLY:
                cause = READ_ONLY
            elif sqlstate.startswith("53"):  # 53100 disk full (53200 out of memory, 53300 too many connections: the server's resources)
                cause = DISK_FULL if sqlstate == _PG_DISK_FULL else UNAVAILABLE
            elif sqlstate == _PG_LOCK_NOT_AVAILABLE:
                cause = LOCKED
            elif sqlstate.startswith("08") or sqlstate.startswith("57P"):  # connection failures, server shutting down
                cause = UNAVAILABLE
        if cause is not None:
            return cause, str(e)
    return None


def storage_fault(exc: BaseException, url: str | None) -> StorageError | None:
    """The StorageError ``exc`` amounts to for the store at ``url`` (None: a file of swarm-mcp's data directory,
    location unknown), or None if it is not a storage fault."""
    if isinstance(exc, StorageError):
        return exc
    path = sqlite_path(url) if url is not None else None
    found = _cause(exc, path.parent if path is not None else None)
    return storage_error(found[0], url, detail=found[1]) if found is not None else None


def storage_error(cause: str, url: str | None, detail: str = "") -> StorageError:
    """A StorageError for ``cause`` at the store ``url`` (None: somewhere in the data directory): what is wrong,
    where, and how to fix it."""
    path = sqlite_path(url) if url is not None else None
    retry = "Sessions saved before are intact; retry once this is fixed."
    if url is not None and path is None:  # PostgreSQL
        where = _where(url)
        message = {
            READ_ONLY: f"the database {where} is read-only (a standby, or default_transaction_read_only is on): swarm-mcp cannot save "
                       "sessions. Point SWARM_MCP_DB at the primary, writable database.",
            DISK_FULL: f"the database server of {where} is out of disk space: swarm-mcp cannot save sessions. Free space on the "
                       "database server.",
            LOCKED: f"the database {where} kept a row swarm-mcp writes locked for more than {LOCK_WAIT_SECONDS:g} s: another "
                    "session holds a long transaction. End it (see pg_stat_activity) or wait for it.",
            UNAVAILABLE: f"the database {where} cannot be reached ({detail or 'connection failed'}): check that it runs and that "
                         "SWARM_MCP_DB points at it.",
        }[cause]
        return StorageError(cause, where, f"{message} {retry}")
    directory = str(path.parent) if path is not None else "(SWARM_MCP_HOME)"
    database = str(path) if path is not None else "in the data directory (SWARM_MCP_HOME)"
    message = {
        READ_ONLY: f"the data directory {directory} is read-only: swarm-mcp cannot write its sessions there. Make {directory} "
                   "writable by this process (check its mount and permissions) or point SWARM_MCP_HOME at a writable directory.",
        DISK_FULL: f"the disk holding the data directory {directory} is full: swarm-mcp cannot write its sessions. Free space on "
                   "that disk (or point SWARM_MCP_HOME at a disk with room).",
        LOCKED: f"the database {database} is locked by another process: it held the write lock for more than "
                f"{LOCK_WAIT_SECONDS:g} s. Stop the other process or end its transaction (e.g. a sqlite3 shell left in BEGIN, a "
                "backup), or give this server its own SWARM_MCP_HOME.",
        UNAVAILABLE: f"the database {database} cannot be opened ({detail or 'unknown reason'}): check that {directory} exists and "
                     "is a directory this process can write, or point SWARM_MCP_HOME elsewhere.",
    }[cause]
    return StorageError(cause, database if cause in (LOCKED, UNAVAILABLE) else directory, f"{message} {retry}")


class _Elsewhere(Exception):
    """The probe of another database file than the store's failed (its cause says why)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


class WriteProbe:
    """Whether the store at ``url`` can write now, for the health check: the answer is kept ``every`` seconds.

    SQLite: free space on the data directory's disk, then a tiny committed write to the database (the
    ``health`` table, taking the write lock for at most PROBE_LOCK_WAIT_SECONDS), or, before the
    database exists, a file written and removed in the data directory; the write lock of each of
    ``also`` (other SQLite files beside it: DBOS's system database) is taken and given back.
    PostgreSQL: a row written in a transaction that is rolled back, with a short lock timeout.
    """

    def __init__(self, url: str, every: float = 2.0, also: Sequence[Path] = ()) -> None:
        self.url = url
        self.every = every
        self.also = tuple(also)
        self._checked = -1e9
        self._answer: StorageError | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> StorageError | None:
        """None when the store can write; else the StorageError a write would meet."""
        async with self._lock:
            if time.monotonic() - self._checked >= self.every:
                try:
                    if sqlite_path(self.url) is not None:
                        await asyncio.to_thread(self._sqlite)
                        for other in self.also:
                            await asyncio.to_thread(self._write_lock, other)
                    elif self.url.startswith("postgresql"):
                        await self._postgres()
                    self._answer = None
                except Exception as exc:
                    url = f"sqlite:///{exc.path}" if isinstance(exc, _Elsewhere) else self.url
                    cause = exc.__cause__ if isinstance(exc, _Elsewhere) and exc.__cause__ is not None else exc
                    self._answer = storage_fault(cause, url) or storage_error(UNAVAILABLE, url, detail=f"{type(cause).__name__}: {cause}")
                self._checked = time.monotonic()
            return self._answer

    def _sqlite(self) -> None:
        path = sqlite_path(self.url)
        assert path is not None
        state = _disk_state(path.parent)
        if state is not None:
            raise storage_error(state, self.url)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.parent / f".swarm-health-{uuid.uuid4().hex[:8]}"
            try:
                scratch.write_bytes(b"ok")
            finally:
                scratch.unlink(missing_ok=True)
            return
        conn = sqlite3.connect(path, timeout=PROBE_LOCK_WAIT_SECONDS, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'health'").fetchone():
                    conn.execute("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?)", (time.time(),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    def _write_lock(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            conn = sqlite3.connect(path, timeout=PROBE_LOCK_WAIT_SECONDS, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise _Elsewhere(path) from exc

    async def _postgres(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        engine = create_async_engine(self.url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                async with conn.begin() as tx:
                    await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(PROBE_LOCK_WAIT_SECONDS * 1000)}ms'"))
                    await conn.execute(sa.text("INSERT INTO health (id, checked_at) VALUES (:id, :at)"),
                                       {"id": int(uuid.uuid4().int % 2**31), "at": time.time()})
                    await tx.rollback()
        finally:
            await engine.dispose()
