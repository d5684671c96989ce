"""The engine: one object that owns the store, the agents, the router, the models and the runner.

Callers (the CLI, the MCP server, phases) create sessions and run them through it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal, Mapping

from . import memory
from .config import Settings
from .errors import ConfigError, UserInputError
from .grants import Grants, Origin
from .live import LiveRuns
from .events import Event, now
from .manifest import AgentManifest, check_tools, load_agents
from .profiles import Budget, Profile, check_profile, load_profiles, pick
from .router import OfflineRouter
from .runner import ModelSource, SessionRunner
from .session import PendingApproval, SessionRecord
from .status import Cancelled, transition
from .store import SqlStore
from .tasks import TaskRecord, TaskState, TaskStore
from .tools import ToolRegistry, default_registry
from .work import CopilotWork, OnUpdate, SessionWork, kind_of

MAX_TASK_CHARS = 20_000

CancelOutcome = Literal["recorded", "cancelled", "completed", "requested"]
"""How a cancel went: ``recorded`` (the session is cancelled now), ``cancelled`` (it was, or its run recorded it),
``completed`` (nothing to cancel), ``requested`` (it runs on another replica and stops at the end of its round)."""


class Engine:
    """swarm-mcp's engine. ``async with Engine(settings) as engine: ...``"""

    def __init__(self, settings: Settings, *, models: ModelSource | None = None, tools: ToolRegistry | None = None,
                 agents: Mapping[str, AgentManifest] | None = None, store: SqlStore | None = None, live: LiveRuns | None = None) -> None:
        self.settings = settings
        self.agents = dict(agents) if agents is not None else load_agents(settings.agent_dirs)
        self.router = OfflineRouter(self.agents)
        if models is None:
            from .models.factory import ModelFactory

            models = ModelFactory(settings)
        self.models = models
        self.tools = tools if tools is not None else default_registry()
        check_tools(self.agents, self.tools.names())
        self.profiles: dict[str, Profile] = load_profiles(settings.profile_dirs)
        """The session profiles by name (swarm/profiles.py): built in, and from SWARM_MCP_PROFILE_DIRS."""
        self.kinds: dict[str, SessionWork] = {CopilotWork.name: CopilotWork(), **self.tools.works}
        """The kinds of work sessions do (swarm/work.py): the swarm's copilot legs, and what the tools bring (phase runs)."""
        self.store = store or SqlStore(settings.db_url)
        self.services: dict[str, Any] = {"engine": self}
        self.live = live if live is not None else LiveRuns()
        """The sessions live in this process (swarm/live.py), its one registry of live runs: callers start and follow runs
        through it, and the work of a session registers there while it executes here."""
        self.runner = SessionRunner(settings, self.store, self.agents, self.router, self.models, self.tools, self.services, self.live)
        self.tasks = TaskStore(self.store)
        """The tasks callers hold on sessions (swarm/tasks.py)."""
        self.durable: Any = None
        """swarm.durable.DurableRuns when settings.durable: sessions run as DBOS workflows."""
        self._trim = memory.IdleTrim(lambda: len(self.live) > 0)
        """Hands the allocator's free memory back when the process goes idle (swarm/memory.py)."""

    async def __aenter__(self) -> "Engine":
        memory.limit_arenas(self.settings.malloc_arenas)  # before DBOS starts its threads
        await self.store.open()
        if self.settings.durable:
            from .durable import DurableRuns  # imports DBOS: only engines that run durably pay for it

            durable = DurableRuns(self)
            try:
                await durable.launch()
            except BaseException:
                await self.store.close()
                raise
            self.durable = durable
        self.live.on_idle.append(self._trim.idle)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._trim.idle in self.live.on_idle:
            self.live.on_idle.remove(self._trim.idle)
        self._trim.close()
        try:
            if self.durable is not None:
                await self.durable.close()
                self.durable = None
        finally:
            await self.store.close()

    async def create(self, task: str, *, max_rounds: int | None = None, principal: str = "local", kind: str = "copilot",
                     meta: dict[str, Any] | None = None, origin: Origin = "local", sampling: bool = False,
                     grants: Grants | None = None, profile: str | Profile | None = None, budget: Budget | None = None) -> SessionRecord:
        """Create a session (status running, nothing run yet) and record its task.

        Its grants (what it may do) are those of a caller from ``origin`` whose runs use the caller's own model when
        ``sampling``, or exactly ``grants`` (a session a session creates inherits its parent's). A copilot session keeps
        ``profile`` (by name; default ``default``) with ``budget``'s limits over the profile's; its round limit is
        ``max_rounds``, else the profile's.
        """
        chosen: Profile | None = None
        if kind == "copilot" or profile is not None:
            chosen = check_profile(profile if isinstance(profile, Profile) else pick(self.profiles, profile), set(self.agents))
            if budget is not None:
                if budget.cost_usd is not None and not self.runner.prices.by_model:
                    raise UserInputError("a cost budget needs a price table: set SWARM_MCP_PRICES to a YAML or JSON file of "
                                         "{model: {prompt: USD per 1M tokens, completion: ...}}, or set a token or time budget")
                chosen = chosen.model_copy(update={"budget": chosen.budget.raised(budget)})
        if max_rounds is None:
            max_rounds = chosen.max_rounds if chosen is not None else 20
        task = (task or "").strip()
        if not task:
            raise UserInputError("task must be a non-empty description of what to do")
        if len(task) > MAX_TASK_CHARS:
            raise UserInputError(f"task is {len(task)} characters; the limit is {MAX_TASK_CHARS}: shorten it or put the details in a file")
        if max_rounds < 1:
            raise UserInputError(f"max_rounds must be at least 1, got {max_rounds}")
        stamp = now()
        grants = grants or self.grants_for(origin, sampling=sampling)
        record = SessionRecord(id=f"s_{uuid.uuid4().hex[:16]}", principal=principal, grants=grants, kind=kind, task=task,
                               created_at=stamp, updated_at=stamp, max_rounds=max_rounds, meta=dict(meta or {}), profile=chosen)
        record.meta.setdefault("work_dir", str(self.settings.work_root / record.id))
        await self.store.create_session(record)
        await self.store.save(record, [Event(type="message", agent="user", content={"text": task})])
        return record

    def grants_for(self, origin: Origin, *, sampling: bool = False) -> Grants:
        """What a session created by a caller from ``origin`` may do (``sampling``: its runs use the caller's own model)."""
        return Grants.for_origin(origin, remote_code=self.settings.remote_code, model="sampling" if sampling else "server")

    async def run(self, session_id: str, *, message: str | None = None, max_rounds: int | None = None,
                  principal: str | None = None, on_update: OnUpdate | None = None, local: bool = False) -> SessionRecord:
        """Run (or resume) a session until it completes, waits for the user, pauses or fails.

        Durable runs go through the shared queue (any replica may run them); ``local`` keeps the run
        in this process (its model is the caller's own, through this connection).
        """
        if self.durable is not None:
            return await self.durable.run(session_id, message=message, max_rounds=max_rounds, principal=principal, on_update=on_update, local=local)
        return await self.runner.run(session_id, message=message, max_rounds=max_rounds, principal=principal, on_update=on_update)

    # ---- every kind of session ------------------------------------------------------------------------

    def work_of(self, record: SessionRecord) -> SessionWork:
        """The kind of work ``record``'s session does."""
        kind = self.kinds.get(kind_of(record))
        if kind is None:
            raise ConfigError(f"session {record.id} is of kind {record.kind!r}, which this engine does not run (it runs {sorted(self.kinds)}): "
                              "serve it with the phases installed")
        return kind

    def workflow_of(self, record: SessionRecord) -> str | None:
        """The durable workflow that runs (or ran) the session's latest work."""
        return self.work_of(record).workflow(record)

    async def go_on(self, session_id: str, *, message: str | None = None, max_rounds: int | None = None, principal: str | None = None,
                    on_update: OnUpdate | None = None, local: bool = False, budget: Budget | None = None) -> SessionRecord:
        """Make a stopped session go on (with ``message``: an answer to its question, or new input) until its next stop;
        ``budget``'s limits replace the session's (raise one that paused it)."""
        record = await self.store.get_session(session_id, principal)
        if budget is not None and budget.any:
            record = await self.raise_budget(record, budget)
        return await self.work_of(record).go_on(self, record, message=message, max_rounds=max_rounds, principal=principal,
                                                on_update=on_update, local=local)

    async def raise_budget(self, record: SessionRecord, budget: Budget) -> SessionRecord:
        """Give the session ``budget``'s limits in place of its own (saved before it goes on)."""
        if budget.cost_usd is not None and not self.runner.prices.by_model:
            raise UserInputError("a cost budget needs a price table: set SWARM_MCP_PRICES to a YAML or JSON file of "
                                 "{model: {prompt: USD per 1M tokens, completion: ...}}, or set a token or time budget")
        profile = record.profile or pick(self.profiles, None)
        record.profile = profile.model_copy(update={"budget": profile.budget.raised(budget)})
        await self.store.save(record, [Event(type="status", round=record.total_rounds, content={
            "status": record.status, "budget": record.profile.budget.model_dump(), "reason": "budget changed"})])
        return record

    def check_answer(self, record: SessionRecord, approval_id: str, decision: str, feedback: str | None = None) -> PendingApproval:
        """The pending approval ``approval_id`` of ``record``, if ``decision`` answers it; else a UserInputError saying why not."""
        pending = record.pending if record.status == "waiting_input" else None
        if pending is None:
            raise UserInputError(f"session {record.id} has no pending approval (it is {record.status}); read its state with session_status")
        if approval_id != pending.id:
            raise UserInputError(f"approval {approval_id!r} is not pending in session {record.id}; the pending one is {pending.id!r}: {pending.message!r}")
        self.work_of(record).check_answer(record, pending, decision, feedback)
        return pending

    async def answer(self, session_id: str, approval_id: str, decision: str, feedback: str | None = None, *, who: str | None = None,
                     channel: str = "resolve_approval", principal: str | None = None, on_update: OnUpdate | None = None,
                     local: bool = False) -> SessionRecord:
        """Answer a session's pending approval (or question) and go on until the next stop. The transcript records
        ``who`` answered (default: the principal) and through which ``channel`` (elicitation, resolve_approval,
        tasks, python, console ...)."""
        record = await self.store.get_session(session_id, principal)
        pending = self.check_answer(record, approval_id, decision, feedback)
        return await self.work_of(record).answer(self, record, pending, decision, feedback, who=who or record.principal, principal=principal,
                                                 on_update=on_update, local=local, channel=channel)

    def takes_input_while_running(self, record: SessionRecord) -> bool:
        """Whether a message for ``record``'s session while it runs is queued for it (rather than refused)."""
        return self.durable is not None and self.work_of(record).takes_input_while_running

    async def send_input(self, record: SessionRecord, message: str, max_rounds: int | None = None) -> str:
        """Queue a message for a running session, durably: it takes it when its current rounds end."""
        if not self.takes_input_while_running(record):
            raise UserInputError(f"session {record.id} is still running: call continue_copilot(session_id='{record.id}') without a "
                                 "message to wait for it, and send your message once it stops (or cancel_session first)")
        return await self.durable.inputs.send(record.id, message, max_rounds)

    async def is_live(self, record: SessionRecord) -> bool:
        """Whether the session's current work has a durable workflow that has not ended (here or on a replica)."""
        return self.durable is not None and await self.durable.is_live(record.id, record)

    async def runs_elsewhere(self, record: SessionRecord) -> bool:
        """Whether a live replica other than this process executes the session's current work."""
        return self.durable is not None and await self.durable.runs_elsewhere(record.id, record)

    def executes_here(self, session_id: str) -> bool:
        """Whether this process executes the session's work right now."""
        return self.live.executes(session_id)

    @property
    def shares_store(self) -> bool:
        """Whether other processes (replicas) run sessions of this store: their changes reach subscribers by ``changes``."""
        return self.durable is not None and not self.store.is_sqlite

    async def changes(self, since: Any) -> list[tuple[str, str, int, str]]:
        """``(session_id, principal, last_seq, status)`` of sessions written since ``since`` and not followed here."""
        return [row for row in await self.store.changed_since(since) if self.live.relay(row[0]) is None]

    async def cancel_session(self, session_id: str, principal: str | None = None, *, grace: float = 2.0) -> tuple[SessionRecord, CancelOutcome]:
        """Cancel a session wherever it runs and record it ``cancelled``; say how it went (see ``CancelOutcome``).

        A run in this process is interrupted at once (its in-flight model call ends) and given ``grace`` seconds to
        stop; a run on another replica is cancelled through DBOS, and that replica's heartbeat interrupts it within
        a second (durable.HEARTBEAT_SECONDS).
        """
        record = await self.store.get_session(session_id, principal)
        run = self.live.get(session_id)
        if run is not None and not run.done and not self.executes_here(session_id) and await self.runs_elsewhere(record):
            run = None  # only following a run on another replica: cancel it there (a run about to start here is stopped here)
        if run is not None and not run.done:
            await self.cancel(session_id)  # stop at the next round boundary; the interrupt ends the in-flight model call now
            await self.live.stop(run, "cancel", grace)
            record = await self.store.get_session(session_id, principal)
        elif record.status == "running" and self.durable is not None and await self.cancel(session_id, principal):
            self.live.interrupt(session_id, "cancel", "cancel_session")  # executing here with no caller: end its model call now
            record = await self._await_stop(session_id, principal, grace)
            if record.status == "running":
                return record, "requested"
        if record.status == "completed":
            return record, "completed"
        if record.status == "cancelled":
            return record, "cancelled"
        await self.store.save(record, [transition(record, Cancelled("cancel_session"))])
        return record, "recorded"

    async def _await_stop(self, session_id: str, principal: str | None, grace: float) -> SessionRecord:
        """After a cross-replica cancel: the session's record once it stopped, or still running after the grace period."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace, 5.0)
        while True:
            record = await self.store.get_session(session_id, principal)
            if record.status != "running" or loop.time() >= deadline:
                return record
            if not await self.runs_elsewhere(record):  # never dequeued, or its replica is gone
                return record
            await asyncio.sleep(0.1)

    async def cancel(self, session_id: str, principal: str | None = None) -> bool:
        """Stop a running session at its next round, here or on another replica; False if it is not running."""
        record = await self.store.get_session(session_id, principal)
        stopped = self.runner.cancel(session_id)
        if self.durable is not None:
            stopped = await self.durable.cancel(session_id, record) or stopped
        return stopped

    async def admit(self, session_id: str, principal: str | None, origin: Origin) -> SessionRecord:
        """The session for a caller from ``origin`` who is about to make it go on: its grants narrowed to what that
        caller may do (saved before anything runs, so every later run obeys them). Unknown or foreign ids fail clearly."""
        record = await self.store.get_session(session_id, principal)
        if record.grants is not None:
            narrowed = record.grants.narrowed(origin, remote_code=self.settings.remote_code)
            if narrowed != record.grants:
                record.grants = narrowed
                await self.store.save(record, [Event(type="status", round=record.total_rounds, content={
                    "status": record.status, "grants": narrowed.model_dump(), "reason": "continued by a remote caller: code execution is off"})])
        return record

    # ---- tasks: a caller's handle on a session's work until it stops (swarm/tasks.py) ----------------------

    async def open_task(self, session_id: str, principal: str, *, start_seq: int, tool: str, ttl_ms: int | None = None) -> TaskRecord:
        """A task that follows ``session_id`` from transcript event ``start_seq`` on, for the call of ``tool``."""
        await self.store.get_session(session_id, principal)  # unknown / foreign ids fail clearly
        return await self.tasks.create(principal, session_id, start_seq, tool, ttl_ms)

    async def task(self, task_id: str, principal: str | None) -> TaskState:
        """The task as its session's transcript says it is now (UnknownTaskError: none such for ``principal``)."""
        return await self.tasks.state(await self.tasks.get(task_id, principal))

    async def tasks_of(self, principal: str, cursor: str | None = None) -> tuple[list[TaskState], str | None]:
        """The principal's live tasks, newest first, a page at a time, and the cursor of the next page."""
        found, after = await self.tasks.page(principal, cursor)
        return [await self.tasks.state(t) for t in found], after

    async def keep_task_answers(self, task: TaskRecord) -> None:
        """Keep what was answered so far of the several things a task waits for."""
        await self.tasks.put_answers(task)

    async def watch(self, session_id: str, on_update: OnUpdate | None = None) -> SessionRecord:
        """Follow a durable run of the session that runs elsewhere (another replica) until it ends."""
        if self.durable is None:
            return await self.store.get_session(session_id)
        return await self.durable.watch(session_id, on_update)

    async def get(self, session_id: str, principal: str | None = None) -> SessionRecord:
        return await self.store.get_session(session_id, principal)

    async def list(self, principal: str | None = None, limit: int = 100) -> list[SessionRecord]:
        return await self.store.list_sessions(principal, limit)

    async def transcript(self, session_id: str, principal: str | None = None, after_seq: int = 0) -> list[Event]:
        await self.store.get_session(session_id, principal)  # unknown / foreign ids fail clearly
        return await self.store.events(session_id, after_seq)
