"""The session run loop: one round = one agent turn; the journal makes every round resumable.

    open a leg -> rebuild the team -> replay earlier legs from the journal -> run the new leg:
        each turn: record its events and usage (one transaction) -> stop on answer / question /
        round limit / cancel

A session's state is its legs (every run and continue, with its input and round count) plus the
journal of model and tool calls. Replaying the legs against the journal rebuilds the swarm exactly
where it stopped, in this process or a new one, with no completed call repeated; so a pause, a
failure, a client that went away and a kill -9 are all resumed the same way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol

from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import BaseChatMessage, HandoffMessage, TextMessage, ToolCallExecutionEvent
from autogen_agentchat.teams import Swarm
from autogen_core.models import ChatCompletionClient
from autogen_core.tools import BaseTool

from .approvals import ApprovalGate, ApprovalNeeded, approved
from .budgets import BudgetMeter, BudgetReached, Prices
from .checkpoint import decode, encode, load_team, save_team
from .config import Settings
from .errors import ConfigError, ProviderError, SessionCancelled, SessionInterrupted, SwarmError, UserInputError
from .events import Event, Usage, events_from_message
from .guard import AgentUsage, GuardedModelClient
from .journal import CallJournal, JournaledModelClient, JournaledTool
from .live import LiveRuns
from .manifest import AgentManifest
from .profiles import Budget
from .router import OfflineRouter
from .scope import current_grants, current_session
from .session import Leg, PendingApproval, SessionRecord
from .status import Cancelled, Completed, Failed, Paused, Running, Transition, Waiting, transition
from .store import Store
from .team import ROUTER_AGENT, CopilotControl, RoundControl, build_team, release_team
from .tools import SessionContext, ToolRegistry

log = logging.getLogger("swarm.runner")

OnUpdate = Callable[[SessionRecord, list[Event]], Awaitable[None]]
RoundStep = Callable[[int, Callable[[], Awaitable[None]]], Awaitable[None]]
"""``(round_no, commit)``: runs a round's commit (the durable runner wraps it in a workflow step)."""


async def _nothing() -> None:
    return None


class ModelSource(Protocol):
    """Where agents get their model clients (swarm.models.factory.ModelFactory)."""

    def spec_for(self, tier: str) -> str: ...
    def client_for(self, agent: str, tier: str) -> ChatCompletionClient: ...
    def is_capable(self, tier: str) -> bool: ...


def open_leg(record: SessionRecord, message: str | None, max_rounds: int | None) -> None:
    """Add the leg this run will play (or retry a leg that never completed a round)."""
    limit = max_rounds or record.max_rounds
    if record.legs and record.legs[-1].rounds == 0:  # that leg never got through a round: retry it
        leg = record.legs[-1]
        leg.max_rounds = limit
        leg.attempt += 1
        if message:
            leg.text = f"{leg.text}\n{message}" if leg.text else message
            leg.kind = leg.kind if leg.kind != "resume" else "message"
        return
    if not record.legs:
        record.legs.append(Leg(kind="task", text=message, max_rounds=limit))
    elif record.status == "waiting_input" and answered_approval(record):  # the round that asked plays again, with the answer
        record.legs.append(Leg(kind="resume", max_rounds=limit))
    elif record.status == "waiting_input":
        record.legs.append(Leg(kind="answer", text=message, target=record.meta.get("entry", ROUTER_AGENT), max_rounds=limit))
    else:
        record.legs.append(Leg(kind="message" if message else "resume", text=message, max_rounds=limit))


def answered_approval(record: SessionRecord) -> bool:
    """Whether the session waits on an approval of its policy (not a question) that has been answered."""
    pending = record.pending
    return pending is not None and pending.kind != "question" and pending.id in record.meta.get("approvals", {})


def leg_task(record: SessionRecord, leg: Leg) -> Any:
    """What a leg hands the team when it starts."""
    if leg.kind == "task":
        task = [TextMessage(source="user", content=record.task)]
        return task + [TextMessage(source="user", content=leg.text)] if leg.text else task
    if leg.kind == "answer":
        return HandoffMessage(source="user", target=leg.target or ROUTER_AGENT, content=leg.text or "")
    if leg.kind == "message":
        return TextMessage(source="user", content=leg.text or "")
    return None


class SessionRunner:
    """Runs sessions of the copilot swarm against a store."""

    def __init__(self, settings: Settings, store: Store, agents: Mapping[str, AgentManifest], router: OfflineRouter,
                 models: ModelSource, tools: ToolRegistry, services: dict[str, Any] | None = None, live: LiveRuns | None = None) -> None:
        self.settings = settings
        self.store = store
        self.agents = agents
        self.router = router
        self.models = models
        self.tools = tools
        self.services = services or {}
        self.live = live if live is not None else LiveRuns()
        """The process's live sessions (the engine's): a leg registers there while it executes, with its RoundControl."""
        self.prices = Prices.load(settings.prices_path)
        """The price table sessions' costs and cost budgets are counted by (SWARM_MCP_PRICES)."""

    def cancel(self, session_id: str) -> bool:
        """Ask a running leg to stop after its current round; False if no leg of the session executes here."""
        execution = self.live.execution(session_id)
        if execution is None or not isinstance(execution.control, RoundControl):
            return False
        execution.control.cancel = True
        return True

    async def run(self, session_id: str, *, message: str | None = None, max_rounds: int | None = None,
                  principal: str | None = None, on_update: OnUpdate | None = None) -> SessionRecord:
        """Open a leg and run it here, in this task (no durable workflow around it)."""
        if self.live.executes(session_id):
            raise UserInputError(f"session {session_id} is already running; wait for it or cancel it first")
        record = await self.prepare(session_id, message=message, max_rounds=max_rounds, principal=principal, on_update=on_update)
        return await self.run_leg(session_id, len(record.legs) - 1, on_update=on_update)

    async def prepare(self, session_id: str, *, message: str | None = None, max_rounds: int | None = None,
                      principal: str | None = None, on_update: OnUpdate | None = None, workflow: str | None = None,
                      input_id: str | None = None) -> SessionRecord:
        """Check the request, open the leg it starts (the last of ``legs``) and record the session ``running``.

        ``workflow``: the durable workflow that will run the leg, when not its own; ``input_id``: the input that
        opens it (preparing the same input twice opens one leg).
        """
        record = await self.store.get_session(session_id, principal)
        if input_id is not None and record.legs and record.legs[-1].input_id == input_id:
            return record
        self._check(record, message, max_rounds)
        open_leg(record, message, max_rounds)
        record.legs[-1].workflow, record.legs[-1].input_id = workflow, input_id
        record.max_rounds = record.legs[-1].max_rounds
        record.rounds_used = 0
        start = [transition(record, Running({"max_rounds": record.max_rounds}))]
        if message:
            start.insert(0, Event(type="message", agent="user", round=record.total_rounds, content={"text": message}))
        await self._save(record, start, on_update)
        return record

    async def run_leg(self, session_id: str, leg_index: int | None = None, *, on_update: OnUpdate | None = None,
                      round_step: RoundStep | None = None) -> SessionRecord:
        """Play leg ``leg_index`` (default: the last) of a prepared session to its end: replay what the store holds, run the rest.

        Safe to call again for the same leg (a crash recovery): rounds already committed are replayed
        from the journal, and a leg that already ended, or was followed by a newer one, is left alone.
        ``round_step(round_no, commit)`` wraps each round of this leg (the durable runner makes it a
        workflow step); ``commit`` writes the round, and is a no-op for a round already written.
        """
        record = await self.store.get_session(session_id)
        last = len(record.legs) - 1
        if record.status != "running" or (leg_index if leg_index is not None else last) != last or self.live.busy(session_id):
            return record
        control = RoundControl(self.agents)
        with self.live.execute(session_id, control):
            return await self._play_leg(record, control, round_step, on_update)

    async def _play_leg(self, record: SessionRecord, control: RoundControl, round_step: RoundStep | None, on_update: OnUpdate | None) -> SessionRecord:
        session_id = record.id
        token, grants_token = current_session.set(session_id), current_grants.set(record.grants)
        start = await self._checkpoint(record)  # (legs covered, journal position, rounds, team state) or none: from the start
        journal = CallJournal(self.store, session_id, await self.store.journal_load(session_id, start.position))
        journal.position = start.position
        ctx = self._context(record)
        ctx.journal = journal
        entry = record.meta.get("entry", ROUTER_AGENT)
        profile = record.profile
        policy = profile.approvals if profile is not None else None
        gate = (ApprovalGate(policy, record.meta.setdefault("approvals", {}), self.tools.is_phase,
                             code_allowed=record.grants is not None and record.grants.code) if policy is not None and policy.any else None)
        meter = BudgetMeter(profile.budget if profile is not None else Budget(), self.prices, record.usage, record.seconds_used)
        by_agent = AgentUsage()

        def client_for(m: AgentManifest) -> ChatCompletionClient:
            inner = JournaledModelClient(self.models.client_for(m.name, m.model_tier), journal, m.name, self.models.spec_for(m.model_tier))
            return GuardedModelClient(inner, m.name, journal, by_agent, gate, meter if meter.budget.any else None)

        def tools_for(m: AgentManifest) -> list[BaseTool[Any, Any]]:
            names = [n for n in m.tools if profile is None or profile.phase_tools or not self.tools.is_phase(n)]
            tools: list[BaseTool[Any, Any]] = [JournaledTool(t, journal, m.name, ctx.outbox) for t in self.tools.build(names, ctx, m.name)]
            return [approved(t, gate) for t in tools] if gate is not None else tools
        committed, round_no = record.total_rounds, start.rounds
        cancelled: SessionCancelled | None = None
        team: Swarm | None = None
        try:
            make_work_dir(ctx.work_dir)
            # Building the team builds every agent's model client: a missing key or embedded model (ConfigError)
            # ends the session failed here, before any model call, like any other failure of the leg.
            team = build_team(
                self.agents, control=control, router=self.router, entry=entry, context_tokens=self.settings.context_tokens,
                router_capable=self.models.is_capable(self.agents[ROUTER_AGENT].model_tier),
                client_for=client_for, tools_for=tools_for, allowed=profile.allowed() if profile is not None else None,
            )
            routers = [agent for agent in team._participants if isinstance(agent, CopilotControl)]  # (found once, not per round)
            if start.state is not None:
                await load_team(team, start.state)
            journal.committed = round_no < committed
            for index, leg in enumerate(record.legs):
                if index < start.legs:
                    continue  # in the checkpoint: not replayed
                current = index == len(record.legs) - 1
                control.arm(leg.max_rounds if current else leg.rounds)
                turn: list[Any] = []
                async for item in team.run_stream(task=leg_task(record, leg)):
                    if isinstance(item, TaskResult) or item.source in ("user", "round_control"):
                        continue
                    if cancelled is not None:  # cancelled elsewhere: let the team stop at its turn's end, record nothing
                        continue
                    turn.append(item)
                    if not isinstance(item, BaseChatMessage):
                        continue
                    round_no += 1  # an agent's final message ends its turn
                    live = round_no > committed  # a new round, not one replayed from the journal
                    if live:
                        leg.rounds += 1
                        commit = self._round_commit(record, turn, round_no, routers, journal, ctx, on_update, by_agent, meter)
                    else:  # replayed: its events and usage are already recorded
                        journal.take_usage()
                        by_agent.take()
                        journal.tool_events.clear()
                        ctx_events(ctx)
                        commit = _nothing
                    if current and round_step is not None:
                        try:
                            await round_step(round_no, commit)
                        except SessionCancelled as exc:  # the team must not run on unobserved: stop it first
                            cancelled, control.cancel = exc, True
                            continue
                    else:
                        await commit()
                    if live:
                        committed = round_no
                    journal.committed = round_no < committed  # the next turn replays a committed round
                    turn = []
                if cancelled is not None:
                    raise cancelled
            await self.store.checkpoint_put(session_id, legs=len(record.legs), position=journal.position, rounds=round_no,
                                            body=encode(await save_team(team, self.settings.context_tokens)))
            record.seconds_used = meter.seconds()
            await self._finish(record, control, on_update)
        except asyncio.CancelledError:
            # The caller went away: the session stays paused and resumable; the cancel goes on.
            await asyncio.shield(self._save(record, [transition(record, Paused("the call was cancelled"))], on_update))
            raise
        except SessionCancelled as exc:
            self._take_usage(record, journal, by_agent, meter)
            await self._save(record, [*ctx_events(ctx), transition(record, Cancelled(str(exc)))], on_update)
        except Exception as exc:  # provider failures, model misbehaviour, bugs: the session fails, its transcript stays
            root = _root(journal.last_error or exc)
            self._take_usage(record, journal, by_agent, meter)
            ending: list[Event]
            if isinstance(root, SessionInterrupted):  # stopped on purpose mid-round: paused (or cancelled), not failed
                ending = [transition(record, Cancelled(root.why) if root.reason == "cancel" else Paused(root.why))]
            elif isinstance(root, ApprovalNeeded):  # the profile's policy asks a human; the answer replays this round
                pending = root.pending
                ending = [Event(type="approval_request", round=record.total_rounds, agent=pending.agent, content=pending.model_dump()),
                          transition(record, Waiting(pending))]
            elif isinstance(root, BudgetReached):
                ending = [transition(record, Paused(root.reason, {"budget": record.profile.budget.model_dump() if record.profile else {}}))]
            elif isinstance(root, SessionCancelled):  # a human stopped it (after a failed step)
                ending = [transition(record, Cancelled(str(root)))]
            else:
                error = _describe(root)
                log.warning("session %s failed: %s", session_id, error)
                ending = [Event(type="error", round=record.total_rounds + 1, content={"error": error, "kind": type(root).__name__}),
                          transition(record, Failed(error))]
            await self._save(record, [*ctx_events(ctx), *ending], on_update)
        finally:
            release_team(team)  # freed when this returns, not at the garbage collector's next full collection
            current_session.reset(token)
            current_grants.reset(grants_token)
        return record

    def _take_usage(self, record: SessionRecord, journal: CallJournal, by_agent: AgentUsage, meter: BudgetMeter) -> None:
        """At a leg's end: add what it used and has not recorded with a round, and the seconds it ran."""
        _merge_usage(record, journal.take_usage())
        _merge_usage(record, by_agent.take(), record.agent_usage)
        record.seconds_used = meter.seconds()
        record.cost_usd = self.prices.cost(record.usage)

    async def _checkpoint(self, record: SessionRecord) -> "Checkpoint":
        """Where playing the session's last leg starts: after the checkpoint of every leg before it, if the store has
        one (the team's state, the journal position and rounds after them), else from the start (every earlier leg
        replayed from the journal)."""
        found = await self.store.checkpoint_get(record.id)
        if found is None or found[0] != len(record.legs) - 1:  # none, or not of exactly the legs before this one
            return Checkpoint()
        legs, position, rounds, body = found
        return Checkpoint(legs, position, rounds, decode(body))

    def _check(self, record: SessionRecord, message: str | None, max_rounds: int | None) -> None:
        sid = record.id
        if record.status == "cancelled":
            raise UserInputError(f"session {sid} was cancelled; start a new session with copilot")
        if record.status == "completed" and not message:
            raise UserInputError(f"session {sid} is completed; pass a message to follow up, or start a new session")
        if record.status == "waiting_input" and not message and not answered_approval(record):
            if record.pending is not None and record.pending.kind != "question":
                raise UserInputError(f"session {sid} waits for approval {record.pending.id}: {record.pending.message[:300]!r}; answer it with "
                                     f"resolve_approval(session_id='{sid}', approval_id='{record.pending.id}', decision=approve|reject|revise)")
            question = record.pending.message if record.pending else "a question"
            raise UserInputError(f"session {sid} is waiting for your answer to: {question!r}; continue it with a message")
        if max_rounds is not None and max_rounds < 1:
            raise UserInputError(f"max_rounds must be at least 1, got {max_rounds}")

    def _context(self, record: SessionRecord) -> SessionContext:
        work_dir = self.settings.work_root / record.id
        return SessionContext(session_id=record.id, work_dir=work_dir, settings=self.settings, state=record.meta, services=self.services,
                              grants=record.grants, profile=record.profile)

    def _round_commit(self, record: SessionRecord, turn: list[Any], round_no: int, routers: list[CopilotControl], journal: CallJournal,
                      ctx: SessionContext, on_update: OnUpdate | None, agents: AgentUsage, meter: BudgetMeter) -> Callable[[], Awaitable[None]]:
        """The write of a round just played: its events, the route taken, usage, the session row."""
        events = ctx_events(ctx)
        for message in turn:
            if isinstance(message, ToolCallExecutionEvent):  # what a tool emitted goes before its result
                for result in message.content:
                    events.extend(e.model_copy(update={"round": round_no}) for e in journal.tool_events.pop(result.call_id, []))
            events.extend(events_from_message(message, round_no))
        for router in routers:
            if router.last_decision is not None:
                record.meta["route"] = router.last_decision.as_dict()
                router.last_decision = None
        usage, by_agent = journal.take_usage(), agents.take()

        async def commit() -> None:
            record.rounds_used += 1
            record.total_rounds = round_no
            _merge_usage(record, usage)
            _merge_usage(record, by_agent, record.agent_usage)
            record.seconds_used = meter.seconds()
            record.cost_usd = self.prices.cost(record.usage)
            await self._save(record, events, on_update)

        return commit

    async def _finish(self, record: SessionRecord, control: RoundControl, on_update: OnUpdate | None) -> None:
        outcome = control.outcome
        events: list[Event] = []
        if outcome.result is not None:
            record.result = outcome.result
        to: Transition
        if outcome.status == "waiting_input":
            pending = PendingApproval(id=f"q_{uuid.uuid4().hex[:8]}", message=outcome.question or "", options=["answer"], kind="question", agent=outcome.agent)
            events.append(Event(type="approval_request", round=record.total_rounds, agent=outcome.agent, content=pending.model_dump()))
            to = Waiting(pending)
        elif outcome.status == "completed":
            to = Completed(outcome.result)
        elif outcome.status == "cancelled":
            to = Cancelled()
        else:  # the leg's round limit
            to = Paused()
        events.append(transition(record, to))
        await self._save(record, events, on_update)

    async def _save(self, record: SessionRecord, events: list[Event], on_update: OnUpdate | None) -> None:
        saved = await self.store.save(record, events)
        if on_update is not None:
            await on_update(record, saved)


@dataclass(frozen=True)
class Checkpoint:
    """Where a leg's play starts: after ``legs`` legs (played ``rounds`` rounds and the journal up to ``position``), with
    the team's ``state`` then; the default starts from the beginning."""

    legs: int = 0
    position: int = 0
    rounds: int = 0
    state: Any = None


def make_work_dir(path: Path) -> None:
    """Create a session's work dir; a ConfigError saying what is wrong with the data directory if it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the session's work dir {path}: {exc.strerror or exc}; make {path.parent} a writable "
                          "directory (or point SWARM_MCP_HOME at one), then continue the session") from None


def ctx_events(ctx: SessionContext) -> list[Event]:
    """Take the events tools emitted (phase_start, phase_end, ...) since the last round."""
    events = list(ctx.outbox)
    ctx.outbox.clear()
    return events


def _merge_usage(record: SessionRecord, usage: dict[str, Usage], into: dict[str, Usage] | None = None) -> None:
    """Add ``usage`` (by model, or by agent) into the record's usage by model (or ``into``)."""
    target = record.usage if into is None else into
    for key, item in usage.items():
        target[key] = target.get(key, Usage()) + item


def _root(exc: BaseException) -> BaseException:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SwarmError):
            return seen
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return exc


def _describe(exc: BaseException) -> str:
    root = _root(exc)
    text = str(root).strip()
    if isinstance(root, ProviderError):
        return f"model provider failed: {text}"
    if isinstance(root, SwarmError):
        return text
    first = text.splitlines()[0] if text else type(root).__name__
    return f"{type(root).__name__}: {first}"
