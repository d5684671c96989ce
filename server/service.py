"""The server's state and session operations: a lazily opened engine, the runs, the subscriptions.

Tools call these operations with a ``Call`` (server/interaction.py) and get back either a
``SessionResult`` or an ``InputRequiredResult`` (2026-07-28: the client must answer something
first). The engine (and with it autogen, SQLAlchemy, the model backends) is imported and opened on
first use, never on the stdio start-up path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import mcp_types as types

from swarm.errors import SwarmError, UserInputError
from swarm.live import LiveRuns

from .interaction import MAX_RELAY_ROUNDS, Call
from .models import ServerModels
from .notify import Notifier
from .render import session_result, session_uri, transcript_md_uri, transcript_uri
from . import runs as follow_policy
from .schemas import SessionResult
from .status_cache import StatusCache

log = logging.getLogger("swarm_mcp.service")

MAX_QUESTIONS_PER_CALL = 10
SESSIONS_URI = "swarm://sessions"

Outcome = SessionResult | types.InputRequiredResult


class Budget:
    """How long a call may still block; time spent waiting on the human does not count."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + seconds

    def remaining(self) -> float:
        return max(0.0, self._deadline - self._loop.time())

    def extend(self, seconds: float) -> None:
        self._deadline += seconds


class SwarmService:
    """Everything the MCP tools and resources act on."""

    def __init__(self, settings: Any = None, *, models: Any = None, bus: Any = None, cancel_grace: float = 2.0,
                 sampling_timeout: float | None = None, remote_code: bool | None = None) -> None:
        self._settings = settings
        self._remote_code = remote_code
        """Overrides SWARM_MCP_REMOTE_CODE (settings.remote_code) for the engine this service opens."""
        self._base_models = models
        self._engine: Any = None
        self._lock = asyncio.Lock()
        self._users = 0
        self.cancel_grace = cancel_grace
        self.sampling_timeout = sampling_timeout or float(os.environ.get("SWARM_MCP_SAMPLING_TIMEOUT") or 600)
        self.status_cache: StatusCache | None = None
        self.notifier = Notifier(bus)
        self.runs = LiveRuns(on_update=self._on_update)
        self.status_listeners: list[Callable[[str], Awaitable[None]]] = []
        """Called with a session's id when its status changes, here or on a replica (task status notifications)."""
        self._replicas: asyncio.Task[None] | None = None
        self.open_after: float | None = None
        """Open the engine when serving starts (0: before serving; > 0: this many seconds later, in the
        background); None: at the first call that needs it."""
        self.owns_process = False
        """Whether the process only serves (serve_stdio, serve_http): once the engine is open, with the model clients its
        agents will use built, the objects alive then are left out of the garbage collector's scans
        (swarm.memory.freeze_lifetime_objects); not in a process that hosts other work (tests, the Python API)."""

    # ---- lifecycle ------------------------------------------------------------------------------

    async def engine(self) -> Any:
        """The engine, opened on first use (imports autogen, the store and the model backends)."""
        if self._engine is None:
            async with self._lock:
                if self._engine is None:
                    from swarm.config import Settings
                    from swarm.engine import Engine

                    settings = self._settings or Settings.from_env()
                    if self._remote_code is not None:
                        settings = dataclasses.replace(settings, remote_code=self._remote_code)
                    base = self._base_models
                    if base is None:
                        from swarm.models.factory import ModelFactory

                        base = ModelFactory(settings)
                    from .phases import tool_registry

                    engine = Engine(settings, models=ServerModels(base), tools=tool_registry(), live=self.runs)
                    await engine.__aenter__()
                    if self.owns_process:
                        from swarm.memory import freeze_lifetime_objects

                        prepare = getattr(base, "prepare", None)  # (ModelFactory's; a fake source has none)
                        if prepare is not None:
                            prepare({name: agent.model_tier for name, agent in engine.agents.items()})
                        freeze_lifetime_objects()  # what the server holds now it keeps for its lifetime: no collector scans of it
                    self.status_cache = StatusCache(settings.db_url)
                    self._engine = engine
                    if engine.shares_store:
                        self._replicas = asyncio.create_task(self._watch_replicas(engine), name="swarm-replica-updates")
        return self._engine

    @asynccontextmanager
    async def serving(self) -> AsyncIterator["SwarmService"]:
        """Held while a transport serves; the last one out stops the runs (paused) and closes the engine."""
        self._users += 1
        opening: asyncio.Task[Any] | None = None
        if self._users == 1 and self.open_after is not None:
            # Durable sessions left running by a crash resume once the engine (and DBOS) is up.
            if self.open_after <= 0:
                await self._open_later(0)
            else:  # stdio: off the cold-start path, once the client has had its first answers
                opening = asyncio.create_task(self._open_later(self.open_after), name="swarm-open-engine")
        try:
            yield self
        finally:
            if opening is not None and not opening.done():
                opening.cancel()
                await asyncio.gather(opening, return_exceptions=True)
            self._users -= 1
            if self._users == 0:
                await self.aclose()

    async def _open_later(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)
        try:
            await self.engine()
        except Exception:  # the first call that needs the engine reports the problem to its client
            log.warning("could not open the engine in the background", exc_info=True)

    async def aclose(self) -> None:
        if self._replicas is not None:
            self._replicas.cancel()
            await asyncio.gather(self._replicas, return_exceptions=True)
            self._replicas = None
        await self.runs.shutdown()
        await self.notifier.aclose()
        engine, self._engine = self._engine, None
        if self.status_cache is not None:
            self.status_cache.close()
            self.status_cache = None
        if engine is not None:
            try:
                await engine.models.aclose()
            finally:
                await engine.__aexit__(None, None, None)

    # ---- notifications --------------------------------------------------------------------------

    async def _on_update(self, run: Any, record: Any, events: list[Any]) -> None:
        sid = record.id
        uris = [transcript_uri(sid), transcript_md_uri(sid), session_uri(sid)]
        if any(e.type == "status" for e in events):
            uris.append(SESSIONS_URI)
            for listener in self.status_listeners:
                await listener(sid)
        await self.notifier.updated(*uris, owner=record.principal)

    async def _watch_replicas(self, engine: Any, every: float = 0.5) -> None:
        """Scale-out: sessions that other replicas run change in the shared store; tell this replica's subscribers."""
        from datetime import timedelta

        from swarm.events import now

        seen: dict[str, tuple[int, str]] = {}
        since = now()
        while True:
            await asyncio.sleep(every)
            try:
                stamp = now()
                rows = await engine.changes(since - timedelta(seconds=5))  # (not those followed here: announced as they commit)
                previous, seen = seen, {sid: (last_seq, status) for sid, _p, last_seq, status in rows}
                for sid, principal, last_seq, status in rows:
                    if previous.get(sid) == (last_seq, status):
                        continue
                    uris = [transcript_uri(sid), transcript_md_uri(sid), session_uri(sid)]
                    await self.notifier.updated(*uris, SESSIONS_URI, owner=principal)
                    for listener in self.status_listeners:
                        await listener(sid)
                since = stamp
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching other replicas' sessions failed; retrying")

    # ---- operations -----------------------------------------------------------------------------

    def result(self, record: Any, *, note: str | None = None) -> SessionResult:
        run = self.runs.get(record.id)
        live = run is not None and not run.done
        if live and run.stop_reason is not None and note is None:
            note = (f"The session is stopping ({'cancel_session' if run.stop_reason == 'cancel' else 'its call was cancelled'}); "
                    f"continue_copilot(session_id='{record.id}') resumes it once it has stopped.")
        return session_result(record, live=live, note=note)

    async def copilot(self, call: Call, task: str, max_rounds: int | None, wait: float, session_id: str | None, *,
                      profile: str | None = None, budget: Any = None) -> Outcome:
        if session_id:
            return await self.continue_(call, session_id, task, max_rounds, wait, budget=budget)
        engine = await self.engine()
        self._check_sampling(call)
        record = await engine.create(task, max_rounds=max_rounds, principal=call.principal, origin=call.origin, sampling=self.samples(call),
                                     profile=profile, budget=budget)
        await self.start(call, record.id, lambda on_update, local: engine.go_on(record.id, principal=call.principal, on_update=on_update, local=local))
        return await self.follow(call, record.id, wait)

    async def continue_(self, call: Call, session_id: str, message: str | None, max_rounds: int | None, wait: float, *,
                        budget: Any = None) -> Outcome:
        engine = await self.engine()
        record = await engine.admit(session_id, call.principal, call.origin)  # also: the caller must own it
        if budget is not None and budget.any:
            record = await engine.raise_budget(record, budget)
        run = self.runs.get(session_id)
        if run is not None and not run.done and run.stop_reason is not None:  # interrupted, winding down: resume after it
            await asyncio.wait({run.task}, timeout=max(self.cancel_grace, wait))
            run = self.runs.get(session_id)
            record = await engine.get(session_id, call.principal)
        if run is not None and not run.done:
            if message:  # queued durably for the session to take when its current rounds end
                await engine.send_input(record, message, max_rounds)
            return await self.follow(call, session_id, wait)
        if record.status == "waiting_input" and not message and call.can_elicit:
            return await self.follow(call, session_id, wait)  # asks the pending question through elicitation
        if record.status == "running" and await engine.is_live(record):  # on another replica: follow it there
            if message:
                await engine.send_input(record, message, max_rounds)
            await self.runs.start(engine, session_id, principal=call.principal)
            return await self.follow(call, session_id, wait)
        self._check_sampling(call)
        await self.start(call, session_id, lambda on_update, local: engine.go_on(
            session_id, message=message, max_rounds=max_rounds, principal=call.principal, on_update=on_update, local=local))
        return await self.follow(call, session_id, wait)

    async def status(self, call: Call, session_id: str) -> SessionResult:
        return self.result(await self.read(session_id, call.principal))

    async def read(self, session_id: str, principal: str) -> Any:
        """A session's record for reading only (served from the status cache when it is current)."""
        engine = await self.engine()
        if self.status_cache is None:
            return await engine.get(session_id, principal)
        return await self.status_cache.get(engine, session_id, principal)

    async def cancel(self, call: Call, session_id: str) -> SessionResult:
        engine = await self.engine()
        record, how = await engine.cancel_session(session_id, call.principal, grace=self.cancel_grace)
        if how == "requested":
            return self.result(record, note=f"Cancel requested: session {session_id} runs on another replica and stops at the end of its "
                                            "current round; session_status shows when it has.")
        if how == "completed":
            return self.result(record, note=f"Session {session_id} had already completed; nothing to cancel. Its result and transcript stay readable.")
        if how == "recorded":
            await self.notifier.updated(transcript_uri(session_id), transcript_md_uri(session_id), session_uri(session_id), SESSIONS_URI,
                                        owner=record.principal)
        return self.result(record)

    async def resolve(self, call: Call, session_id: str, approval_id: str, decision: str, feedback: str | None, wait: float) -> Outcome:
        engine = await self.engine()
        record = await engine.admit(session_id, call.principal, call.origin)
        await self.answer(call, record, approval_id, decision, feedback, channel="resolve_approval")
        return await self.follow(call, session_id, wait)

    async def answer(self, call: Call, record: Any, approval_id: str, decision: str, feedback: str | None, *, channel: str) -> None:
        """Answer a pending approval: the session goes on with the decision (a refusal - no such approval, a decision it
        does not allow - is raised by the engine before anything runs, and reaches the caller from ``start``)."""
        engine = await self.engine()
        run = self.runs.get(record.id)
        if run is not None and not run.done and record.status == "waiting_input":  # the run that stopped there is winding down
            await asyncio.wait({run.task}, timeout=max(self.cancel_grace, 5.0))
        await self.start(call, record.id, lambda on_update, local: engine.answer(
            record.id, approval_id, decision, feedback, who=call.principal, channel=channel, principal=call.principal,
            on_update=on_update, local=local))

    async def start(self, call: Call, session_id: str, go: Any) -> Any:
        """Start a run of the session owned by this server: ``go(on_update, local)`` makes it go on (swarm.live.Go)."""
        engine = await self.engine()
        run = await self.runs.start(engine, session_id, principal=call.principal, go=go, channel=call.channel(self.sampling_timeout))
        model = self.model_spec(call)
        total = run.record.max_rounds if run.record is not None else None
        await call.report(0, total, f"session {session_id} started (model: {model})")
        return run

    def model_spec(self, call: Call) -> str:
        """The default tier's model for runs of this call's client."""
        models = self._engine.models
        try:
            if isinstance(models, ServerModels):
                return models.spec_for("default", client_samples=call.can_sample)
            return str(models.spec_for("default"))
        except Exception as exc:
            return f"unavailable: {exc}"

    def samples(self, call: Call) -> bool:
        """Whether sessions this call creates run on its client's own model (MCP sampling)."""
        return self.model_spec(call) == "sampling"

    def _check_sampling(self, call: Call) -> None:
        models = self._engine.models if self._engine is not None else None
        if isinstance(models, ServerModels) and models.needs_sampling() and not call.can_sample:
            raise UserInputError(
                "this server is configured with SWARM_MCP_MODEL=sampling (the calling client's own model), but this client "
                "does not offer sampling: use a client with sampling support, or configure another model backend"
            )

    # ---- following a session --------------------------------------------------------------------

    async def resume(self, call: Call) -> str | None:
        """On a 2026-07-28 retry: deliver the client's answers; return the session id the call follows."""
        state = call.state
        if state is None:
            return None
        session_id = state["sid"]
        engine = await self.engine()
        await engine.get(session_id, call.principal)  # the state is sealed, but the principal must still own it
        run = self.runs.get(session_id)
        for key in state.get("relay", []):
            if key in call.responses and run is not None:
                run.answer(key, call.responses[key])
        answered = call.answer_from_state()
        if answered is not None:
            approval_id, decision = answered
            record = await engine.get(session_id, call.principal)
            pending = record.pending if record.status == "waiting_input" else None
            if decision is None or pending is None or pending.id != approval_id:
                call.declined.add(approval_id)
            else:
                await self.answer(call, record, pending.id, *decision, channel="elicitation")
        return session_id

    async def follow(self, call: Call, session_id: str, wait: float) -> Outcome:
        """Wait for the session (at most ``wait`` seconds of work), asking the client what it must answer."""
        engine = await self.engine()
        budget = Budget(wait)
        asked = 0
        while True:
            run = self.runs.get(session_id)
            if run is not None and not run.done:
                waited = await self.runs.follow(run, budget.remaining(), call.progress, relay=True, heartbeat=follow_policy.HEARTBEAT)
                if waited.needs_client:
                    if call.modern:
                        if call.relay_rounds() >= MAX_RELAY_ROUNDS:
                            record = await engine.get(session_id, call.principal)
                            return self.result(record, note=(
                                f"The session waits for your model (sampling): call continue_copilot(session_id='{session_id}') to keep serving it."))
                        return call.relay(session_id, waited.needs_client)
                    await self._push(call, run, waited.needs_client)
                    continue
                if not waited.done:
                    return self.result(await engine.get(session_id, call.principal))
                failure = run.task.exception() if run.task is not None and not run.task.cancelled() else None
                if isinstance(failure, SwarmError):  # refused before it ran (a phase's checks): the caller's error
                    raise failure
            record = await engine.get(session_id, call.principal)
            pending = record.pending if record.status == "waiting_input" else None
            if pending is None or not call.can_elicit or pending.id in call.declined or asked >= MAX_QUESTIONS_PER_CALL:
                return self.result(record)
            asked += 1
            if call.modern:
                if call.relay_rounds() >= MAX_RELAY_ROUNDS:
                    return self.result(record)
                return call.ask(session_id, pending)
            started = asyncio.get_running_loop().time()
            decision = await call.elicit(pending)
            budget.extend(asyncio.get_running_loop().time() - started)
            if decision is None:
                call.declined.add(pending.id)
                continue
            await self.answer(call, record, pending.id, *decision, channel="elicitation")

    async def _push(self, call: Call, run: Any, requests: list[Any]) -> None:
        """A 2025-11-25 follower of a run that waits on relayed requests: send them on this connection."""
        from .sampling import PushChannel

        channel = PushChannel(call.ctx.session, tools=call.sampling_tools, timeout=self.sampling_timeout)
        for pending in requests:
            try:
                run.answer(pending.key, await channel.create_message(pending.request.params))
            except Exception as exc:
                run.answer(pending.key, error=exc)
