"""Durable session runs on DBOS: crash-proof on SQLite, shared by replicas on one PostgreSQL.

    a run (copilot, continue_copilot, a phase tool) = the session's kind prepares its next piece of work (a
        leg, a phase run) in the store -> start workflow ``swarm.session_run(kind, session_id)`` here at once
        when this process has a free slot, else enqueue it on the shared queue, with the id the kind names
        (``<session_id>.leg<n>``, ``<session_id>.p<k>.<drive>``)
    the workflow = the kind's ``play`` (swarm/work.py): a copilot leg commits each round to the store (events and
        the session row in one transaction, numbered: a replay knows what is committed), with no DBOS step per round
    kill -9 -> on launch DBOS recovers this executor's pending workflows; a replica silent for
        ``takeover_seconds`` has its workflows recovered (re-enqueued) by exactly one live replica
    cancel -> ``DBOS.cancel_workflow``; a run here stops at its next round (RoundControl), a run on another replica
        is interrupted by that replica's heartbeat sweep, which sees the workflow cancelled within HEARTBEAT_SECONDS
    a message for a running session -> a DBOS message (topic ``input``) to its leg's workflow, which
        takes it when its rounds end and goes on with it as its next leg; the workflow
        ``swarm.session_input`` sees it delivered (or, if that leg ended without taking it, starts the
        next leg with it), also across a crash (swarm/delivery.py)

Inside a leg, the journal (swarm/journal.py) records each model and tool call before its result is
used; a recovered workflow replays the leg from it, so no completed call runs twice. A paused or
waiting session holds no queue slot: each continue of a stopped session is a new leg, a new workflow
(a stopped leg's workflow has ended: there is nothing to send a message to). The workflows of earlier
versions (``swarm.session_work``) also published the status as the workflow event ``status``, and replay it.

DBOS is a process-wide singleton: one durable engine per process.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, cast

from dbos import DBOS, DBOSConfig, SetWorkflowID
from dbos._error import DBOSAwaitedWorkflowCancelledError, DBOSWorkflowCancelledError

from .config import Settings
from .errors import ConfigError, SessionCancelled, UserInputError
from .runner import OnUpdate, SessionRunner
from .scope import current_session
from .session import SessionRecord
from .delivery import INPUT_TOPIC, InputDelivery
from .heartbeats import Heartbeats
from .store import SqlStore
from .system_db import system_database
from .thread_pool import dbos_thread_pool
from .work import CopilotWork, InputWork, SessionWork, kind_of
from .work import workflow_id as workflow_id  # a leg's workflow id (re-exported for tests and tools)

log = logging.getLogger("swarm.durable")

APP_VERSION = "swarm-mcp-durable-2"
"""Pinned: a pending workflow is recovered only by processes of the same version. Bump it when the
step sequence of a leg changes (a round step per round, the status events around them)."""
QUEUE = "swarm-sessions"
TAKES_INPUT = ("paused", "completed", "waiting_input")
"""The ends of a leg after which the input sent to it opens the next leg (as continue_copilot with a message would)."""
HEARTBEAT_SECONDS = 1.0
SWEEP_BATCH = 32
"""How many running workflows the heartbeat reads at once to find those cancelled on another replica."""
POLL_SECONDS = 0.25
"""How often a caller following a run on another replica reads its new events."""
QUEUE_POLL_SECONDS = 0.5
"""How often DBOS looks for queued runs (only the overflow and silent replicas' runs: runs start here when a slot is free)."""

_current: "DurableRuns | None" = None


def _runs() -> "DurableRuns":
    if _current is None:
        raise RuntimeError("a session workflow ran in a process without a launched durable engine")
    return _current


_earlier_steps: contextvars.ContextVar[bool] = contextvars.ContextVar("swarm_earlier_steps", default=False)
"""Whether the workflow executing in this task was started by an earlier version, whose steps a replay must take again
as they were recorded: a DBOS step per round, the workflow event ``status`` when a leg starts and ends."""


@DBOS.workflow(name="swarm.session_run")
async def session_run(kind: str, session_id: str) -> dict[str, Any]:
    """A session's prepared work of ``kind`` (a copilot leg, a phase run), as a workflow: recovered and replayed after
    any crash. Returns ``{status, taken}`` (the ids of the input it took while running). Its rounds are not DBOS steps:
    the store's round commit is what a replay goes by (a round committed is replayed, not run again), and a step per
    round cost two system-database transactions on DBOS's threads for each round (a third of the rounds/s). Nor does it
    publish its status as a workflow event (two more writes a leg, read by nobody: the store has the status)."""
    return await _runs().execute(kind, session_id)


async def _as_recorded(kind: str, session_id: str) -> dict[str, Any]:
    token = _earlier_steps.set(True)
    try:
        return await _runs().execute(kind, session_id)
    finally:
        _earlier_steps.reset(token)


@DBOS.workflow(name="swarm.session_work")
async def session_work(kind: str, session_id: str) -> dict[str, Any]:
    """Work started by a version whose every round was a DBOS step (``round-<n>``) and whose legs published their status
    as a workflow event: recovered with the same steps, so that its recorded steps and its replay line up. Nothing
    starts it any more."""
    return await _as_recorded(kind, session_id)


@DBOS.workflow(name="swarm.session_leg")
async def session_leg(session_id: str, leg: int) -> dict[str, Any]:
    """A copilot leg enqueued by a version before every kind ran as one workflow: recovered the same way as
    ``swarm.session_work`` (its steps are the same). Nothing starts it any more."""
    return await _as_recorded(CopilotWork.name, session_id)


def in_workflow() -> bool:
    """Whether the current task runs a workflow's body (work started there runs inline, not as another workflow)."""
    return DBOS.workflow_id is not None


class _Relay:
    """A caller's ``on_update``, remembering the last event seq it delivered (from this process or the store)."""

    def __init__(self, on_update: OnUpdate) -> None:
        self.on_update = on_update
        self.seen = 0

    async def __call__(self, record: SessionRecord, events: list[Any]) -> None:
        fresh = [e for e in events if e.seq > self.seen]
        if fresh:
            self.seen = fresh[-1].seq
        if fresh or not events:
            await self.on_update(record, fresh)


class DurableRuns:
    """Runs sessions as DBOS workflows for one engine (the process's only one)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        """The swarm.engine.Engine whose sessions these are (workers get it)."""
        self.settings: Settings = engine.settings
        self.runner: SessionRunner = engine.runner
        self.store: SqlStore = engine.store
        self.heartbeats = Heartbeats(self.store)
        self.executor_id = ""
        self.queue: Any = None
        self.live = engine.live
        """The process's live sessions: callers here following a run (its rounds reach them as they commit), the
        workflows executing here."""
        self._sweeper: asyncio.Task[None] | None = None
        self.inputs = InputDelivery(self)
        """Input sent to a session while it runs (swarm/delivery.py)."""
        self._starting: set[str] = set()
        """Sessions whose run was started here and whose body has not begun executing yet: they hold a slot."""

    # ---- lifecycle ------------------------------------------------------------------------------

    async def launch(self) -> None:
        """Launch DBOS on this event loop (recovering this executor's pending runs) and start the heartbeat."""
        global _current
        if _current is not None:
            raise ConfigError("a durable engine is already running in this process (DBOS is one per process)")
        self.executor_id = await self._claim_executor_id()
        url, engine_kwargs = system_database(self.settings)
        config: DBOSConfig = {
            "name": "swarm-mcp", "system_database_url": url, "db_engine_kwargs": engine_kwargs,
            "application_version": APP_VERSION, "executor_id": self.executor_id, "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.1,
        }
        _current = self
        try:
            DBOS(config=config)
            with dbos_thread_pool():  # DBOS's pool (the loop's default executor) bounded, idle threads retired
                DBOS.launch()  # on the loop's thread: recovered and dequeued workflows run on this loop
            self.queue = await DBOS.register_queue_async(QUEUE, worker_concurrency=self.settings.concurrency, polling_interval_sec=QUEUE_POLL_SECONDS)
        except BaseException:
            _current = None
            DBOS.destroy()
            raise
        await self._adopt_orphans()
        self._sweeper = asyncio.create_task(self._sweep(), name="swarm-durable-heartbeat")
        log.info("durable sessions on %s as executor %s", url.split("@")[-1], self.executor_id)

    async def close(self) -> None:
        global _current
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if _current is self:
            _current = None
            DBOS.destroy()
            # DBOS made its (now shut down) thread pool the loop's default: give the loop a working one back.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))
            try:
                await self.heartbeats.leave(self.executor_id)
            except Exception:  # the store may be gone already; the row goes stale and is claimed
                log.debug("could not remove heartbeat of %s", self.executor_id, exc_info=True)

    async def _claim_executor_id(self) -> str:
        now = time.time()
        if self.settings.executor_id:  # a replica's fixed id: its operator keeps it unique
            await self.heartbeats.beat(self.settings.executor_id, now)
            return self.settings.executor_id
        if await self.heartbeats.claim("local", now, now - self.settings.takeover_seconds):
            return "local"
        unique = f"{socket.gethostname()}-{os.getpid()}"  # another live process holds "local" on this database
        await self.heartbeats.beat(unique, now)
        return unique

    async def _sweep(self) -> None:
        """Heartbeat; recover the runs of replicas that went silent."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                now = time.time()
                await self.heartbeats.beat(self.executor_id, now)
                stale = now - self.settings.takeover_seconds
                for dead in await self.heartbeats.dead(stale):
                    if dead != self.executor_id and await self.heartbeats.take_over(dead, stale):
                        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
                        log.warning("executor %s went silent: recovered %d session run(s)", dead, len(handles))
                await self._stop_cancelled()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("durable heartbeat failed; retrying")

    async def _stop_cancelled(self) -> None:
        """Interrupt the runs here whose workflow was cancelled from another replica (a run here notices a cancel made
        here at its next round; nothing else tells it of one made elsewhere). The workflows are read SWEEP_BATCH at a
        time, the batch padded to its full size: one statement, whatever the number of runs (a list of N ids is a
        statement of its own for each N, each one prepared and kept by every pooled connection)."""
        running: dict[str, str] = {}
        for session_id in self.live.executing():
            record = await self.store.get_session(session_id)
            wid = self.engine.workflow_of(record)
            if wid is not None and record.status == "running":
                running[wid] = session_id
        ids = sorted(running)
        for start in range(0, len(ids), SWEEP_BATCH):
            batch = ids[start:start + SWEEP_BATCH]
            batch += batch[-1:] * (SWEEP_BATCH - len(batch))
            for status in await DBOS.list_workflows_async(workflow_ids=batch, status="CANCELLED", load_input=False, load_output=False):
                session_id = running[status.workflow_id]
                log.info("session %s was cancelled on another replica: interrupting its run here", session_id)
                self.live.interrupt(session_id, "cancel", "cancel_session")

    async def _adopt_orphans(self) -> None:
        """Enqueue the legs of sessions left ``running`` with no workflow (a crash between prepare and enqueue)."""
        for record in await self.store.running():
            if not record.legs:
                continue
            if await DBOS.get_workflow_status_async(self.engine.workflow_of(record)) is None:  # type: ignore[arg-type]
                log.info("session %s was left running with no workflow: enqueuing its leg %d", record.id, len(record.legs) - 1)
                await self.enqueue(record)

    # ---- runs -----------------------------------------------------------------------------------

    async def is_live(self, session_id: str, record: SessionRecord) -> bool:
        """Whether the session's current leg has a workflow that has not ended (here or on a replica)."""
        wid = self.engine.workflow_of(record)
        if record.status != "running" or wid is None:
            return False
        status = await DBOS.get_workflow_status_async(wid)
        return status is not None and status.status in ("PENDING", "ENQUEUED")

    async def run(self, session_id: str, *, message: str | None = None, max_rounds: int | None = None,
                  principal: str | None = None, on_update: OnUpdate | None = None, local: bool = False) -> SessionRecord:
        """Start (or continue) a session as a workflow and follow it to its end (``local``: run it in this process)."""
        record = await self.store.get_session(session_id, principal)
        if self.live.relay(session_id) is not None or await self.is_live(session_id, record):
            if message:  # the session takes it when its current rounds end
                await self.inputs.send(session_id, message, max_rounds)
            elif max_rounds is not None:
                raise UserInputError(f"session {session_id} is still running: max_rounds applies to its next leg; pass it with a "
                                     "message, or once the session stops")
            return await self.watch(session_id, on_update)  # running here, elsewhere, or awaiting recovery: follow it
        relay = _Relay(on_update) if on_update is not None else None
        with self.live.watch(session_id, relay):
            record = await self.runner.prepare(session_id, message=message, max_rounds=max_rounds, principal=principal, on_update=relay)
            handle = await self.enqueue(record, local=local)
            await self._follow(session_id, handle, relay)
        return await self.store.get_session(session_id)

    async def enqueue(self, record: SessionRecord, local: bool = False) -> Any:
        """Start the workflow of the session's prepared work of its own kind: in this process when it must (``local``) or
        can at once (a slot is free here: no wait for the queue's next poll), else on the shared queue.

        A run started here holds its slot from this decision on (``_starting``) until its body executes: a burst of
        calls would otherwise all see the slots free (no body of theirs has begun yet) and all start here."""
        local = local or len(self._starting | set(self.live.executing())) < self.settings.concurrency
        if local:
            self._starting.add(record.id)
        try:
            handle = await self._start(kind_of(record), record.id, self.engine.workflow_of(record), local)  # type: ignore[arg-type]
        except BaseException:
            self._starting.discard(record.id)
            raise
        task = getattr(handle, "task", None)  # DBOS's handle of a workflow it executes here: its task, whose end frees the
        if task is None:  # slot too, should its body never execute (a handle without one: nothing executes here)
            self._starting.discard(record.id)
        else:
            task.add_done_callback(lambda _: self._starting.discard(record.id))
        return handle

    async def _start(self, kind: str, session_id: str, key: str, local: bool) -> Any:
        with SetWorkflowID(key):
            if local:
                return await DBOS.start_workflow_async(session_run, kind, session_id)
            return await self.queue.enqueue_async(session_run, kind, session_id)

    async def play(self, kind: str, session_id: str, key: str, *, local: bool = False) -> SessionRecord:
        """Play the session's prepared work of ``kind`` (a session may run work of other kinds than its own: a phase run
        in a copilot session) as the workflow ``key``, and wait for it to end (``local``: in this process)."""
        await self._follow(session_id, await self._start(kind, session_id, key, local), None)
        return await self.store.get_session(session_id)

    async def watch(self, session_id: str, on_update: OnUpdate | None = None) -> SessionRecord:
        """Follow the session's current leg wherever it runs, until it ends."""
        record = await self.store.get_session(session_id)
        if await self.is_live(session_id, record):
            handle = await DBOS.retrieve_workflow_async(self.engine.workflow_of(record))  # type: ignore[arg-type]
            await self._follow(session_id, handle, _Relay(on_update) if on_update is not None else None)
        return await self.store.get_session(session_id)

    async def _follow(self, session_id: str, handle: Any, relay: _Relay | None) -> None:
        """Wait for the workflow; relay the progress of a run on another replica from the store."""
        with self.live.watch(session_id) as entry:
            await self._wait(session_id, handle, relay, entry)

    async def _wait(self, session_id: str, handle: Any, relay: _Relay | None, entry: Any) -> None:
        result = asyncio.ensure_future(handle.get_result(polling_interval_sec=POLL_SECONDS))
        if relay is not None and relay.seen == 0:
            relay.seen = (await self.store.get_session(session_id)).last_seq
        ended = asyncio.ensure_future(entry.ended.wait())
        try:
            while True:
                done, _ = await asyncio.wait({result, ended}, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                if ended in done and not result.done():  # the leg ended here: no need to poll DBOS for its outcome
                    task = entry.ended_by  # (whose workflow's task ends once DBOS has recorded that outcome)
                    if task is not None and not task.done() and task is not asyncio.current_task():
                        await asyncio.wait({task}, timeout=POLL_SECONDS)
                    return
                if relay is not None and not self.live.executes(session_id):
                    record = await self.store.get_session(session_id)
                    if record.last_seq > relay.seen:  # written by another replica (what ran here was delivered)
                        await relay(record, await self.store.events(session_id, relay.seen))
                if done:
                    try:
                        result.result()
                    except (DBOSWorkflowCancelledError, DBOSAwaitedWorkflowCancelledError):
                        pass  # cancel_session: the runner recorded it
                    return
        except asyncio.CancelledError:
            result.cancel()
            execution = self.live.execution(session_id)
            if execution is not None and execution.task is not None:  # the caller went away: stop the run here (recorded paused, resumable)
                execution.task.cancel()
            raise
        finally:
            ended.cancel()
            if not result.done():
                result.cancel()

    async def execute(self, kind: str, session_id: str) -> dict[str, Any]:
        """The body of ``swarm.session_work``, in this process: the session's prepared work, then (for a kind that takes
        input while it runs) the work opened by input sent to it."""
        work = self.engine.kinds.get(kind)
        if work is None:
            raise ConfigError(f"no session work of kind {kind!r} in this engine (it runs {sorted(self.engine.kinds)}): serve it with the phases installed")
        taken: list[str] = []
        token = current_session.set(session_id)
        try:
            earlier = _earlier_steps.get()
            with self.live.execute(session_id):
                self._starting.discard(session_id)  # its slot is now held by its execution
                if earlier:
                    await DBOS.set_event_async("status", "running")
                record = await self._play(work, session_id)
                while work.takes_input_while_running and record.status in TAKES_INPUT:
                    given = await DBOS.recv_async(INPUT_TOPIC, timeout_seconds=0)
                    if given is None:
                        break
                    taken.append(given["id"])
                    opened = await DBOS.run_step_async({"name": "take-input"}, self.inputs.opener(cast(InputWork, work), session_id, given, DBOS.workflow_id))
                    if opened is not None:
                        if earlier:
                            await DBOS.set_event_async("status", "running")
                        record = await self._play(work, session_id)
                if earlier and record.status != "cancelled":  # a cancelled workflow takes no more steps
                    await DBOS.set_event_async("status", record.status)
                return {"status": record.status, "taken": taken}
        finally:
            current_session.reset(token)

    async def _play(self, work: SessionWork, session_id: str) -> SessionRecord:
        """The work's play, if the session's current work is this workflow's (a workflow recovered after its session went
        on with newer work leaves it alone)."""
        record = await self.store.get_session(session_id)
        if record.status != "running" or work.workflow(record) != DBOS.workflow_id:
            return record
        return await work.play(self.engine, session_id)

    async def round_step(self, round_no: int, commit: Callable[[], Awaitable[None]]) -> None:
        """Commit a round: as the DBOS step ``round-<n>`` in a workflow of an earlier version (whose recorded steps
        a replay must meet again), else straight to the store."""
        if not _earlier_steps.get():
            await commit()
            return
        try:
            await DBOS.run_step_async({"name": f"round-{round_no}"}, commit)
        except DBOSWorkflowCancelledError:
            raise SessionCancelled("cancel_session") from None

    async def runs_elsewhere(self, session_id: str, record: SessionRecord) -> bool:
        """Whether a live replica other than this one executes (or just executed) the session's current leg."""
        wid = self.engine.workflow_of(record)
        if wid is None:
            return False
        status = await DBOS.get_workflow_status_async(wid)
        owner = status.executor_id if status is not None else None
        if not owner or owner == self.executor_id or status.status == "ENQUEUED":
            return False
        return owner in await self.heartbeats.alive(time.time() - self.settings.takeover_seconds)

    async def cancel(self, session_id: str, record: SessionRecord) -> bool:
        """Cancel the session's running workflow, wherever it runs; False if none is running."""
        if not await self.is_live(session_id, record):
            return False
        await DBOS.cancel_workflow_async(self.engine.workflow_of(record))  # type: ignore[arg-type]
        return True
