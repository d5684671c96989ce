"""WAL checkpoints of the local SQLite store, run in a thread of their own instead of inside a commit.

SQLite checkpoints a WAL database in the commit that takes the WAL past ``wal_autocheckpoint`` (1000)
pages: that commit copies the pages into the database file and syncs both files, the only fsyncs there
are with ``synchronous=NORMAL``. It costs milliseconds, paid on the event loop by whichever round or
journal write happens to cross the line (every ~140 rounds of a copilot session: ~35 us a round).

``WalCheckpointer`` takes that work off the event loop: the store tells it of every commit, and every
``every`` commits it wakes its thread, which runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of
its own. A passive checkpoint waits for nobody and blocks nobody: writers go on appending meanwhile, and
the next commit after it restarts the WAL from its start. Commits stay exactly as durable as before
(each is in the WAL when it returns, as ever); the WAL is synced and copied back at least as often.
``wal_autocheckpoint`` stays on, the fallback should the thread fall behind (or fail to open).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("swarm.wal")

CHECKPOINT_EVERY = 100
"""Commits between two checkpoints: a round writes ~5 pages, a journal entry ~2, so the WAL stays well under 1000."""


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite database at ``path`` in a daemon thread, started at the first checkpoint due."""

    def __init__(self, path: str, every: int = CHECKPOINT_EVERY) -> None:
        self.path = path
        self.every = every
        self.checkpoints = 0
        """Checkpoints run so far (for tests and diagnostics)."""
        self._commits = 0
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Count a commit (called on the event loop, right after it); every ``every``-th wakes the thread."""
        self._commits += 1
        if self._commits < self.every or self._closing:
            return
        self._commits = 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="swarm-wal-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running) and close its connection."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=0.1, isolation_level=None)
        except sqlite3.Error as exc:  # the commits' own autocheckpoint goes on doing it
            log.debug("WAL checkpoint thread for %s not started: %s", self.path, exc)
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy, read-only, disk full: the next one (or an autocheckpoint) will do
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
        finally:
            conn.close()
