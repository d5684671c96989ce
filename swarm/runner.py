"""The session run loop: one round = one agent turn, a checkpoint after every round.

    load session -> rebuild team -> restore checkpoint -> [run one turn -> classify -> save]* -> stop

A session stops when the task is done (completed), the swarm needs the user (waiting_input), the
leg's round limit is reached (paused), a provider or model fails after retries (failed) or it is
cancelled. Every stop is resumable by ``run`` again, in this process or another one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from autogen_agentchat.messages import BaseChatMessage, HandoffMessage, TextMessage, ToolCallSummaryMessage
from autogen_core.models import ChatCompletionClient

from .config import Settings
from .errors import ProviderError, SwarmError, UserInputError
from .events import Event, Usage, events_from_message
from .journal import CallJournal, JournaledModelClient
from .manifest import AgentManifest
from .router import OfflineRouter
from .session import PendingApproval, SessionRecord
from .store import Store, StoredCheckpoint
from .team import ROUTER_AGENT, CopilotControl, build_team, trim_state
from .tools import SessionContext, ToolRegistry

log = logging.getLogger("swarm.runner")

OnUpdate = Callable[[SessionRecord, list[Event]], Awaitable[None]]


class ModelSource(Protocol):
    """Where agents get their model clients (swarm.models.factory.ModelFactory)."""

    def spec_for(self, tier: str) -> str: ...
    def client_for(self, agent: str, tier: str) -> ChatCompletionClient: ...
    def is_capable(self, tier: str) -> bool: ...


@dataclass
class Continue:
    """The round changed nothing final: run the next one."""


@dataclass
class Stop:
    """The round ended the leg with this status."""

    status: str
    result: str | None = None
    pending: PendingApproval | None = None


def classify(messages: Sequence[Any], agents: Mapping[str, AgentManifest]) -> Continue | Stop:
    """Decide from one round's messages whether the session goes on."""
    chat = [m for m in messages if isinstance(m, BaseChatMessage) and m.source != "user"]
    if not chat:
        return Continue()
    last = chat[-1]
    if isinstance(last, HandoffMessage):
        if last.target != "user":
            return Continue()
        texts = [m.to_text() for m in chat if m.source == last.source and not isinstance(m, HandoffMessage)]
        question = texts[-1] if texts else last.content
        return Stop("waiting_input", pending=PendingApproval(id=f"q_{uuid.uuid4().hex[:8]}", message=question, options=["answer"], kind="question", agent=last.source))
    if isinstance(last, ToolCallSummaryMessage):
        return Continue()
    manifest = agents.get(last.source)
    if manifest is not None and "user" in manifest.handoffs:  # an agent that talks to the user asked a question
        return Stop("waiting_input", pending=PendingApproval(id=f"q_{uuid.uuid4().hex[:8]}", message=last.to_text(), options=["answer"], kind="question", agent=last.source))
    return Stop("completed", result=last.to_text())


class SessionRunner:
    """Runs sessions of the copilot swarm against a store."""

    def __init__(self, settings: Settings, store: Store, agents: Mapping[str, AgentManifest], router: OfflineRouter,
                 models: ModelSource, tools: ToolRegistry, services: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.agents = agents
        self.router = router
        self.models = models
        self.tools = tools
        self.services = services or {}
        self.cancel_requested: set[str] = set()

    def _context(self, record: SessionRecord, emit: Callable[[list[Event]], Awaitable[None]]) -> SessionContext:
        work_dir = self.settings.work_root / record.id
        work_dir.mkdir(parents=True, exist_ok=True)
        return SessionContext(session_id=record.id, work_dir=work_dir, settings=self.settings, emit=emit, state=record.meta, services=self.services)

    def _client(self, journal: CallJournal, manifest: AgentManifest) -> ChatCompletionClient:
        spec = self.models.spec_for(manifest.model_tier)
        return JournaledModelClient(self.models.client_for(manifest.name, manifest.model_tier), journal, manifest.name, spec)

    async def run(self, session_id: str, *, message: str | None = None, max_rounds: int | None = None,
                  principal: str | None = None, on_update: OnUpdate | None = None) -> SessionRecord:
        record = await self.store.get_session(session_id, principal)
        if record.status == "cancelled":
            raise UserInputError(f"session {session_id} was cancelled; start a new session with copilot")
        if record.status == "completed" and not message:
            raise UserInputError(f"session {session_id} is completed; pass a message to follow up, or start a new session")
        if record.status == "waiting_input" and not message:
            question = record.pending.message if record.pending else "a question"
            raise UserInputError(f"session {session_id} is waiting for your answer to: {question!r}; continue it with a message")
        if max_rounds is not None and max_rounds < 1:
            raise UserInputError(f"max_rounds must be at least 1, got {max_rounds}")

        pending_events: list[Event] = []

        async def emit(extra: list[Event]) -> None:
            pending_events.extend(extra)

        ctx = self._context(record, emit)
        checkpoint = await self.store.load_checkpoint(session_id)
        journal = CallJournal(self.store, session_id, start=checkpoint.calls if checkpoint else 0)
        router_manifest = self.agents[ROUTER_AGENT]
        team = build_team(
            self.agents, client_for=lambda m: self._client(journal, m), tools=self.tools, ctx=ctx,
            router=self.router, router_capable=self.models.is_capable(router_manifest.model_tier),
            entry=record.meta.get("entry", ROUTER_AGENT),
        )
        task: Any = None
        if checkpoint is None:
            task = TextMessage(source="user", content=record.task)
            if message:
                task = [task, TextMessage(source="user", content=message)]
        else:
            await team.load_state(checkpoint.state)
            if message and record.status == "waiting_input":
                task = HandoffMessage(source="user", target=record.meta.get("entry", ROUTER_AGENT), content=message)
            elif message:
                task = TextMessage(source="user", content=message)

        record.status = "running"
        record.pending = None
        record.error = None
        record.rounds_used = 0
        record.max_rounds = max_rounds or record.max_rounds
        start = [Event(type="status", content={"status": "running", "max_rounds": record.max_rounds, "resumed_from_round": record.total_rounds})]
        if message:
            start.insert(0, Event(type="message", agent="user", round=record.total_rounds, content={"text": message}))
        await self._save(record, start, None, on_update)

        stop: Stop | None = None
        try:
            while stop is None:
                if session_id in self.cancel_requested:
                    self.cancel_requested.discard(session_id)
                    stop = Stop("cancelled")
                    break
                if record.rounds_used >= record.max_rounds:
                    stop = Stop("paused")
                    break
                round_no = record.total_rounds + 1
                result = await team.run(task=task)
                task = None
                messages = [m for m in result.messages if m.source != "user"]
                new_events = list(pending_events)
                pending_events.clear()
                for m in messages:
                    new_events.extend(events_from_message(m, round_no))
                self._note_route(team, record)
                outcome = classify(messages, self.agents)
                record.rounds_used += 1
                record.total_rounds = round_no
                _merge_usage(record, journal.take_usage())
                state = trim_state(await team.save_state())
                if isinstance(outcome, Stop):
                    stop = outcome
                    self._apply(record, stop, new_events, round_no)
                await self._save(record, new_events, StoredCheckpoint(round_no, journal.position, state), on_update)
            if stop.status in ("paused", "cancelled"):
                events = []
                self._apply(record, stop, events, record.total_rounds)
                await self._save(record, events, None, on_update)
        except asyncio.CancelledError:
            # The caller went away: leave the session paused and resumable, then let the cancel through.
            record.status = "paused"
            await asyncio.shield(self._save(record, [Event(type="status", round=record.total_rounds, content={"status": "paused", "reason": "the call was cancelled by the client"})], None, on_update))
            raise
        except Exception as exc:  # provider failures, model misbehaviour, bugs: the session fails, its transcript stays
            error = _describe(journal.last_error or exc)
            log.warning("session %s failed: %s", session_id, error)
            record.status = "failed"
            record.error = error
            _merge_usage(record, journal.take_usage())
            await self._save(record, [*pending_events, Event(type="error", round=record.total_rounds + 1, content={"error": error, "kind": type(_root(journal.last_error or exc)).__name__}),
                                      Event(type="status", round=record.total_rounds, content={"status": "failed"})], None, on_update)
        return record

    def _note_route(self, team: Any, record: SessionRecord) -> None:
        for agent in team._participants:
            if isinstance(agent, CopilotControl) and agent.last_decision is not None:
                record.meta["route"] = agent.last_decision.as_dict()
                agent.last_decision = None

    def _apply(self, record: SessionRecord, stop: Stop, events: list[Event], round_no: int) -> None:
        record.status = stop.status  # type: ignore[assignment]
        record.pending = stop.pending
        if stop.result is not None:
            record.result = stop.result
        if stop.pending is not None:
            events.append(Event(type="approval_request", round=round_no, agent=stop.pending.agent, content=stop.pending.model_dump()))
        events.append(Event(type="status", round=round_no, content={"status": stop.status}))

    async def _save(self, record: SessionRecord, events: list[Event], checkpoint: StoredCheckpoint | None, on_update: OnUpdate | None) -> None:
        saved = await self.store.save(record, events, checkpoint)
        if on_update is not None:
            await on_update(record, saved)


def _merge_usage(record: SessionRecord, usage: dict[str, Usage]) -> None:
    for model, item in usage.items():
        record.usage[model] = record.usage.get(model, Usage()) + item


def _root(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or (seen.__context__ is not None and not seen.__suppress_context__):
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    for candidate in (exc, seen):
        if isinstance(candidate, SwarmError):
            return candidate
    return exc


def _describe(exc: BaseException) -> str:
    root = _root(exc)
    text = str(root) or type(root).__name__
    if isinstance(root, ProviderError):
        return f"model provider failed: {text}"
    if isinstance(root, SwarmError):
        return text
    first = text.strip().splitlines()[0] if text.strip() else type(root).__name__
    return f"{type(root).__name__}: {first}"
