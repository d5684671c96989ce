"""Executor heartbeats in the store: which replicas are alive, and who takes over the sessions of one that went silent."""

from __future__ import annotations

import sqlalchemy as sa

from .store import SqlStore, executors


class Heartbeats:
    """Which processes (DBOS executors) on a database are alive: each writes its row every few seconds.

    A row older than the takeover time belongs to a dead process: exactly one live process claims
    it (a conditional delete) and recovers its sessions.
    """

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def claim(self, executor_id: str, now_s: float, stale_before: float) -> bool:
        """Take ``executor_id`` for this process unless a live process holds it."""
        def op(conn: sa.Connection) -> bool:
            taken = conn.execute(executors.update().where(executors.c.id == executor_id, executors.c.seen_at < stale_before).values(seen_at=now_s)).rowcount
            if taken:
                return True
            if conn.execute(sa.select(executors.c.id).where(executors.c.id == executor_id)).first() is not None:
                return False
            conn.execute(executors.insert().values(id=executor_id, seen_at=now_s))
            return True

        try:
            return await self.store._tx(op)
        except sa.exc.IntegrityError:  # another process inserted it first
            return False

    async def beat(self, executor_id: str, now_s: float) -> None:
        def op(conn: sa.Connection) -> None:
            if conn.execute(executors.update().where(executors.c.id == executor_id).values(seen_at=now_s)).rowcount == 0:
                conn.execute(executors.insert().values(id=executor_id, seen_at=now_s))

        await self.store._tx(op)

    async def dead(self, stale_before: float) -> list[str]:
        rows = await self.store._tx(lambda conn: conn.execute(sa.select(executors.c.id).where(executors.c.seen_at < stale_before)).all())
        return [r[0] for r in rows]

    async def alive(self, stale_before: float) -> set[str]:
        rows = await self.store._tx(lambda conn: conn.execute(sa.select(executors.c.id).where(executors.c.seen_at >= stale_before)).all())
        return {r[0] for r in rows}

    async def take_over(self, executor_id: str, stale_before: float) -> bool:
        """Claim a dead executor's sessions: True for exactly one caller."""
        stmt = executors.delete().where(executors.c.id == executor_id, executors.c.seen_at < stale_before)
        return bool(await self.store._tx(lambda conn: conn.execute(stmt).rowcount))

    async def leave(self, executor_id: str) -> None:
        await self.store._tx(lambda conn: conn.execute(executors.delete().where(executors.c.id == executor_id)))
