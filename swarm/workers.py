"""Named kinds of session work besides the swarm's own legs, which a durable engine runs as workflows.

A layer above the engine (phases/) registers how to play a session's pending work from the store,
``worker(engine, session_id) -> status``. The durable engine runs it as the workflow
``swarm.session_work(kind, session_id)`` and, after a crash, runs it again: a worker must be
re-runnable (it replays its journal) and must do nothing when the work already ended.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Worker = Callable[[Any, str], Awaitable[str]]

WORKERS: dict[str, Worker] = {}


def register(kind: str, worker: Worker) -> None:
    WORKERS[kind] = worker
