"""DBOS's system database: where the durable engine keeps its workflows, steps, queues and messages."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import ConfigError
from .store import CACHE_KB

SQLITE_POOL = 4
"""Connections DBOS keeps open to its SQLite system database (DBOS's default is 20). Each caches its own prepared
statements, 0.4-0.5 MB once it has run DBOS's ~35 statements and the queue's ``IN (?, ...)`` variants (one per dequeued
batch size), and every connection of the pool runs them all (it hands them out in turn): DBOS's 20 held 10.4 MB after
2,400 sessions and were still filling; over 1,000 paused sessions after a 30-session warm-up (bench_paused_rss) 8 grew
1.7 -> 3.3 MB, 4 grow 1.1 -> 1.8 MB. SQLite takes one writer at a time, and DBOS's calls run on at most
thread_pool.DBOS_THREADS threads: 50 concurrent sessions ran as fast with 4 as with 8 (bench_concurrency 75-81 rounds/s,
74-76 with 8), and resumes as fast (bench_resume)."""
CACHED_STATEMENTS = 32
"""Prepared statements each connection to the system database keeps (Python's default is 128). DBOS ran 31-36
distinct statements on each pooled connection over 128 sessions, and more as the queue's ``IN (?, ...)`` variants came
(one per dequeued batch size): 32 keep the common ones, a rarer one is prepared again when it comes."""


class _WalConnection(sqlite3.Connection):
    """DBOS's SQLite system database in WAL mode (its default journal blocks readers on every write)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")
        self.execute(f"PRAGMA cache_size=-{CACHE_KB}")


def sqlite_system_database(settings: Settings) -> Path | None:
    """The file of DBOS's SQLite system database (None when the store is not SQLite)."""
    return settings.home / "dbos.sqlite" if settings.db_url.startswith("sqlite") else None


def system_database(settings: Settings) -> tuple[str, dict[str, Any]]:
    """DBOS's system database: a SQLite file beside the store, or the store's own PostgreSQL database."""
    url = settings.db_url
    path = sqlite_system_database(settings)
    if path is not None:
        settings.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}", {"connect_args": {"factory": _WalConnection, "cached_statements": CACHED_STATEMENTS},
                                     "pool_size": SQLITE_POOL}
    if url.startswith("postgresql"):
        return "postgresql://" + url.split("://", 1)[1], {}
    raise ConfigError(f"durable sessions need SQLite or PostgreSQL; SWARM_MCP_DB={url!r} is neither (or set SWARM_MCP_DURABLE=0)")
