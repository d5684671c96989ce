"""A cache of session records for status reads, exact for SQLite stores.

Clients poll ``session_status`` (and read ``swarm://sessions/{id}``) while sessions run. On a
SQLite store, a record read earlier is still current if nobody committed anything since: SQLite's
``PRAGMA data_version``, asked on a connection of our own, changes whenever any other connection -
the engine's, or another process's - commits. The check costs microseconds; a read through the
engine costs a query and a parse. Any commit anywhere empties the cache, so it is never stale.
Other stores (PostgreSQL) are not cached.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

log = logging.getLogger("swarm_mcp.status_cache")


class StatusCache:
    """Records by session id, valid while the database's data_version is unchanged."""

    def __init__(self, db_url: str) -> None:
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._records: dict[str, Any] = {}
        path = db_url.split(":///", 1)[1] if db_url.startswith("sqlite") and ":///" in db_url else ""
        if path and path != ":memory:":
            try:
                self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
            except sqlite3.Error as exc:  # no cache, just slower
                log.info("status cache disabled: %s", exc)

    def _current(self) -> int | None:
        if self._conn is None:
            return None
        try:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    async def get(self, engine: Any, session_id: str, principal: str) -> Any:
        """The session's record, from the cache when no commit happened since it was read (do not modify it)."""
        version = self._current()
        if version is None:
            return await engine.get(session_id, principal)
        if version != self._version:
            self._records.clear()
            self._version = version
        record = self._records.get(session_id)
        if record is not None and record.principal == principal:
            return record
        record = await engine.get(session_id, principal)
        if self._current() == version:  # nothing committed while we read: the record is of this version
            self._records[session_id] = record
        return record

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._records.clear()
