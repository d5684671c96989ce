"""The live runs of sessions in this process: one background asyncio task per running session.

A caller (an MCP tool call, the CLI, Python) never runs a session inside its own call. It starts (or
finds) the session's ``LiveRun`` here and *follows* it for as long as it wants to wait: progress on
every round and a heartbeat at least every ``heartbeat`` seconds. When the time is up the call returns
``running`` and the run goes on; a later continue or status read picks it up.

Ownership on cancellation (a client's ``notifications/cancelled``, or a dropped connection): the
follower that is cancelled *interrupts* the run it follows, and the session is recorded ``paused``
(resumable with ``continue_copilot``, which replays the journal and repeats no completed call);
nothing keeps running on behalf of a caller who went away. A run nobody follows (the call already
returned ``running``) finishes on its own. Server shutdown interrupts every run the same way.

Interrupting is cooperative, not ``Task.cancel()``: cancelling an autogen team while a model call
is in flight deadlocks it (the team waits for the call, the call for the team). Every model client
of a run is wrapped (server/interruptible.py for the server's model source) so that an interrupt ends the in-flight call at once;
the team then stops with an error, the runner saves the session, and we record it ``paused`` (or
``cancelled`` for cancel_session). ``Task.cancel()`` remains the last resort after a grace period
(a tool that runs long ignores interrupts until it returns).

This is the process's one registry of live sessions (``Engine.live``): by session id, the caller's run
that follows the session (``LiveRun.task``), what *executes* its work here (``LiveRun.execution``: a copilot
leg or a phase run, in the caller's task or in a durable workflow's task; with what stops it at its next
round) and the callers watching a durable run through the store (``watch``). A session executing on
another replica has no execution here; a recovered workflow executes here with no caller.

A run may also wait on its *client*: with the ``sampling`` backend on a 2026-07-28 connection, a
model call becomes a ``ClientRequest`` that a follower hands to the client (as an
``InputRequiredResult``) and whose answer comes back on the retried call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

from swarm.errors import UserInputError

from .live_run import ClientRequest, Execution, LiveRun, active_run, current_run

__all__ = ["HEARTBEAT", "PAUSED_BY_CALLER", "ClientRequest", "Execution", "LiveRun", "LiveRuns", "Waited", "active_run", "current_run"]

log = logging.getLogger("swarm.live")

HEARTBEAT = 10.0
"""Default seconds between progress reports while nothing happens (MCP clients drop silent calls)."""

PAUSED_BY_CALLER = "the call that was following the session was cancelled"


@dataclass
class Waited:
    """How following a run ended: ``done`` (the run ended), ``needs_client`` or the time was up."""

    done: bool
    needs_client: list[ClientRequest]
    record: Any


Progress = Callable[[LiveRun, list[Any], bool], Awaitable[None]]
"""``(run, new_events, heartbeat)``: called on every update and every heartbeat while following."""

OnUpdate = Callable[[LiveRun, Any, list[Any]], Awaitable[None]]
Go = Callable[[Callable[[Any, list[Any]], Awaitable[None]], bool], Awaitable[Any]]
"""``go(on_update, local)``: the engine call that makes the session go on until its next stop (``engine.go_on``,
``engine.answer``, a phase run ...), reporting each update; ``local``: its model is the caller's own."""


def _forget_ended(run: LiveRun, task: asyncio.Task[Any]) -> None:
    """``run.ended_by`` is there to wait for ``task``'s end; once it ended the run lets go of it (the task's context may
    hold the run: a durable workflow's task starts in the context of the run's own)."""
    if run.ended_by is task:
        run.ended_by = None


class LiveRuns:
    """The sessions live in this process, by session id: the process's one registry of live runs."""

    def __init__(self, on_update: OnUpdate | None = None) -> None:
        self._runs: dict[str, LiveRun] = {}
        self._on_update = on_update
        self.on_idle: list[Callable[[], None]] = []
        """Called when the last live session here is released: the process has gone idle (swarm/memory.py trims)."""

    def get(self, session_id: str) -> LiveRun | None:
        """The run of the last caller that followed the session here (check ``done``); None: no caller here."""
        run = self._runs.get(session_id)
        return run if run is not None and run.task is not None else None

    def __len__(self) -> int:
        """How many sessions are live here (followed, executing or watched)."""
        return len(self._runs)

    # ---- what executes here, and who watches --------------------------------------------------------

    def executes(self, session_id: str) -> bool:
        """Whether the session's work executes in this process now."""
        run = self._runs.get(session_id)
        return run is not None and run.execution is not None

    def busy(self, session_id: str) -> bool:
        """Whether the session's work executes in this process, in a task other than the current one."""
        run = self._runs.get(session_id)
        return run is not None and run.execution is not None and run.execution.task is not asyncio.current_task()

    def execution(self, session_id: str) -> Execution | None:
        run = self._runs.get(session_id)
        return run.execution if run is not None else None

    def executing(self) -> list[str]:
        """The sessions whose work executes in this process now."""
        return [sid for sid, run in self._runs.items() if run.execution is not None]

    def interrupt(self, session_id: str, reason: str, note: str | None = None) -> bool:
        """Interrupt the session's run here (its in-flight model call ends); False if nothing of it is live here."""
        run = self._runs.get(session_id)
        if run is None:
            return False
        run.interrupt(reason, note)
        return True

    def relay(self, session_id: str) -> Any:
        """The on_update of the caller here following the session's durable run (None: none)."""
        run = self._runs.get(session_id)
        return run.relay if run is not None else None

    def _entry(self, session_id: str) -> LiveRun:
        run = self._runs.get(session_id)
        if run is None:
            run = self._runs[session_id] = LiveRun(session_id=session_id, principal="")
        return run

    def _release(self, session_id: str) -> None:
        run = self._runs.get(session_id)
        if run is not None and not run.following and run.execution is None and run.relay is None and run.watchers == 0:
            del self._runs[session_id]
            if not self._runs:
                for listener in self.on_idle:
                    listener()

    @contextmanager
    def execute(self, session_id: str, control: Any = None) -> Iterator[LiveRun]:
        """Register the current task as executing the session's work (re-entrant within that task: a durable
        workflow's body, then the leg it plays, with ``control``). A UserInputError if another task executes it."""
        run = self._entry(session_id)
        me = asyncio.current_task()
        outer = run.execution
        if outer is not None and outer.task is not me:
            raise UserInputError(f"session {session_id} is already running; wait for it to finish")
        execution = outer or Execution(me)
        run.execution, before = execution, execution.control
        if control is not None:
            execution.control = control
        outer_run = current_run.get()
        # The work's model calls answer to this session's run (its caller's, or the entry itself when none follows it
        # here: a dequeued or recovered workflow), so that an interrupt reaches them; work nested in another session's
        # run (a phase a swarm tool starts) keeps that run's.
        own = outer_run is None or outer_run.session_id == session_id
        token = current_run.set(run) if own and outer_run is not run else None
        try:
            yield run
        finally:
            execution.control = before
            if token is not None:
                current_run.reset(token)
            if outer is None:
                now = self._runs.get(session_id)
                if now is not None and now.execution is execution:
                    now.execution, now.ended_by = None, execution.task
                    if execution.task is not None:
                        execution.task.add_done_callback(functools.partial(_forget_ended, now))
                    now.ended.set()
                    now.ended = asyncio.Event()
                self._release(session_id)

    @contextmanager
    def watch(self, session_id: str, relay: Any = None) -> Iterator[LiveRun]:
        """Keep the session's entry while a caller here waits for its durable run; with ``relay``, the rounds
        executed here reach that caller as they commit."""
        run = self._entry(session_id)
        run.watchers += 1
        previous = run.relay
        if relay is not None:
            run.relay = relay
        try:
            yield run
        finally:
            now = self._runs.get(session_id)
            if now is not None:
                now.watchers -= 1
                if relay is not None and now.relay is relay:
                    now.relay = previous
            self._release(session_id)

    async def start(self, engine: Any, session_id: str, *, principal: str, go: Go | None = None,
                    channel: Callable[[LiveRun], Any] | None = None) -> LiveRun:
        """Start a run of the session as a background task - ``go``, or (without it) following the session's run on
        another replica through the store - and return once it is running.

        Raises what the engine refuses before anything runs (unknown id, a cancelled session, a bad answer ...).
        """
        previous = self._runs.get(session_id)
        if previous is not None and previous.following:
            raise UserInputError(f"session {session_id} is already running; wait for it with continue_copilot(session_id='{session_id}') "
                                 "(no message) or stop it with cancel_session")
        run = LiveRun(session_id=session_id, principal=principal)
        if previous is not None:
            run.carry(previous)
        run.channel = channel(run) if channel is not None else None
        context = contextvars.copy_context()
        context.run(current_run.set, run)
        run.task = asyncio.create_task(self._drive(engine, run, go), name=f"run-{session_id}", context=context)
        self._runs[session_id] = run
        run.task.add_done_callback(lambda _t: self._finished(run))
        started = asyncio.ensure_future(run._started.wait())
        try:
            await asyncio.wait({run.task, started}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            run.interrupt("pause", PAUSED_BY_CALLER)
            raise
        finally:
            started.cancel()
        if run.task.done() and not run.task.cancelled() and run.task.exception() is not None:
            raise run.task.exception()  # type: ignore[misc]
        return run

    async def _drive(self, engine: Any, run: LiveRun, go: Go | None) -> Any:
        """The run's task: ``go``, or following the session's run on another replica. Its context holds the run
        (``current_run``) and the run holds the task: when it ends, the context lets go of the run, so that an ended run
        is freed as soon as nobody holds it, not at the garbage collector's next full collection."""
        try:
            return await self._go(engine, run, go)
        finally:
            current_run.set(None)

    async def _go(self, engine: Any, run: LiveRun, go: Go | None) -> Any:
        seen = -1

        async def on_update(record: Any, events: list[Any]) -> None:
            nonlocal seen
            seen = max([seen, *(e.seq for e in events)])
            run.record = record
            run.recent.extend(events)
            run._started.set()
            run.pulse()
            if self._on_update is not None:
                try:
                    await self._on_update(run, record, events)
                except Exception:  # notifications must never fail a session
                    log.exception("update hook failed for session %s", run.session_id)

        if go is None:  # a durable run of the session on another replica: follow it through the store
            run._started.set()
            record = await engine.watch(run.session_id, on_update)
            run.record = record
            return record
        # A run whose model is its caller's own (sampling through this connection) stays in this process.
        samples = getattr(engine.models, "samples", None)
        local = run.channel is not None and samples is not None and samples()
        try:
            await go(on_update, local)
        finally:  # also when interrupted: what the work saved and nobody heard of yet (a phase's events) is reported
            record = await asyncio.shield(engine.get(run.session_id))
            if seen < 0 or record.last_seq > seen:
                unheard = await asyncio.shield(engine.transcript(run.session_id, after_seq=max(seen, 0)))
                await asyncio.shield(on_update(record, unheard))
            run.record = record
            run.pulse()
        return record

    def _finished(self, run: LiveRun) -> None:
        if self._runs.get(run.session_id) is run:
            self._release(run.session_id)
        for pending in list(run.requests.values()):
            if not pending.future.done():
                pending.future.cancel()
        run.pulse()
        task = run.task
        if task is not None and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, UserInputError):
                log.error("run of session %s ended with an error", run.session_id, exc_info=exc)

    async def follow(self, run: LiveRun, seconds: float, progress: Progress | None = None, *, relay: bool = False,
                     heartbeat: float = HEARTBEAT) -> Waited:
        """Wait for ``run`` at most ``seconds``, reporting progress; return early when the client is needed.

        Cancelling the follower interrupts the run: it is recorded ``paused``, resumable.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        seen = run.recent[-1].seq if run.recent else 0
        try:
            while True:
                changed = run.changed()
                fresh = [e for e in run.recent if e.seq > seen]
                if fresh:
                    seen = fresh[-1].seq
                    if progress is not None:
                        await progress(run, fresh, False)
                if run.done:
                    return Waited(True, [], run.record)
                waiting = run.waiting()
                if relay and waiting:
                    return Waited(False, waiting, run.record)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return Waited(False, [], run.record)
                try:
                    await asyncio.wait_for(changed.wait(), timeout=min(remaining, heartbeat))
                except TimeoutError:
                    if progress is not None and deadline - loop.time() > 0:
                        await progress(run, [], True)
        except asyncio.CancelledError:
            if not run.done:
                log.info("the call following session %s was cancelled: pausing the session", run.session_id)
                run.interrupt("pause", PAUSED_BY_CALLER)
            raise

    async def stop(self, run: LiveRun, reason: str, grace: float, note: str | None = None) -> None:
        """Interrupt a run and wait for it to end; past ``grace``, cancel its task (the last resort)."""
        if run.task is None or run.task.done():
            return
        run.interrupt(reason, note)
        done, _ = await asyncio.wait({run.task}, timeout=grace)
        if not done:
            log.warning("session %s did not stop within %.1f s of its interrupt: cancelling its task", run.session_id, grace)
            run.task.cancel()
            done, _ = await asyncio.wait({run.task}, timeout=grace)
            if not done:
                log.error("session %s is stuck (autogen did not unwind); it stays marked running and resumable", run.session_id)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Interrupt every run (each is recorded ``paused``) and wait for them to end."""
        runs = [r for r in self._runs.values() if r.following]
        if runs:
            await asyncio.gather(*(self.stop(r, "pause", grace, "the server shut down") for r in runs))
