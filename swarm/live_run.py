"""A session live in this process (``LiveRun``): the run of the caller following it, what executes its work here, who
watches it, and the requests it waits on from its client (sampling). The registry of live runs is swarm/live.py."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from swarm.errors import ProviderError

current_run: contextvars.ContextVar["LiveRun | None"] = contextvars.ContextVar("swarm_live_run", default=None)
"""The run whose task is current (read by model sources: its caller's sampling channel, its interrupt). A durable
workflow's task does not inherit it: ``LiveRuns.execute`` sets it there to the run of the caller following the session."""


def active_run() -> "LiveRun | None":
    """The run the current task works for (its own, or that of the caller following the session it executes)."""
    return current_run.get()


_keys = itertools.count(1)


@dataclass
class ClientRequest:
    """A server-to-client request (sampling) a run waits on until a follower delivers the answer."""

    key: str
    request: Any
    future: asyncio.Future[Any]


@dataclass
class Execution:
    """The session's work executing in this process: its task, and what stops it at its next round."""

    task: asyncio.Task[Any] | None
    control: Any = None
    """What stops the work at its next round (swarm.team.RoundControl for a copilot leg); None: it has no rounds to stop at."""


@dataclass
class LiveRun:
    """A session live in this process: the run of a caller following it (a start, a continue, or an answer), what
    executes its work here, and who watches it."""

    session_id: str
    principal: str
    task: asyncio.Task[Any] | None = None
    """The caller's run (None: nobody here follows the session; its work executes here for a recovered workflow)."""
    record: Any = None
    channel: Any = None
    """The run's sampling channel (None: the client offers no sampling)."""
    stop_reason: str | None = None
    """Why the run was interrupted: 'pause' (its caller went away, server shutdown) or 'cancel'."""
    stop_note: str | None = None
    """What happened, in words, for the transcript's ``paused`` event."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    recent: deque[Any] = field(default_factory=lambda: deque(maxlen=64))
    requests: dict[str, ClientRequest] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _started: asyncio.Event = field(default_factory=asyncio.Event)
    execution: Execution | None = None
    """The session's work executing in this process (None: not here; it may run on a replica)."""
    relay: Any = None
    """The on_update of a caller following a durable run: the rounds executed here reach it as they commit."""
    watchers: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an execution of the session here ends (a watcher need not ask DBOS how it went)."""
    ended_by: asyncio.Task[Any] | None = None
    """The task of the execution that ended last (a durable workflow's: done once DBOS recorded its outcome)."""

    @property
    def following(self) -> bool:
        """Whether a caller's run follows the session now."""
        return self.task is not None and not self.task.done()

    def carry(self, older: "LiveRun") -> None:
        """Take over what ``older`` (an ended caller's run) holds of the session beyond the caller: execution, watchers."""
        self.execution, self.relay, self.watchers, self.ended, self.ended_by = older.execution, older.relay, older.watchers, older.ended, older.ended_by

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def changed(self) -> asyncio.Event:
        """An event set at the next change (an update, a client request, the end)."""
        return self._changed

    def pulse(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    def waiting(self) -> list[ClientRequest]:
        """The client requests still without an answer."""
        return [r for r in self.requests.values() if not r.future.done()]

    def interrupt(self, reason: str, note: str | None = None) -> None:
        """End the run's in-flight model call (and any later one) so that the run stops soon."""
        if self.stop_reason is None or reason == "cancel":
            self.stop_reason, self.stop_note = reason, note
        self.stopping.set()

    async def ask_client(self, request: Any, timeout: float) -> Any:
        """Wait until a follower has the client answer ``request`` (the relay of 2026-07-28 sampling)."""
        key = f"swarm-{next(_keys)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.requests[key] = ClientRequest(key, request, future)
        self.pulse()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ProviderError(
                f"the MCP client did not answer the model (sampling) request within {timeout:.0f} s; "
                f"continue the session with continue_copilot(session_id='{self.session_id}') from a connected client"
            ) from None
        finally:
            self.requests.pop(key, None)

    def answer(self, key: str, result: Any = None, error: BaseException | None = None) -> bool:
        """Deliver the client's answer to a request; False if the run no longer waits on it."""
        pending = self.requests.get(key)
        if pending is None or pending.future.done():
            return False
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)
        return True
