"""Building an autogen-agentchat Swarm from agent manifests, and deciding when a run stops.

copilot_control is the entry agent: it routes by handing off. With a capable model it sees the
offline router's suggestion and may overrule it; with the embedded model (or none) the offline
router decides alone and no model call is made for routing.
"""

from __future__ import annotations

import re

from typing import Any, AsyncGenerator, Callable, Collection, Mapping, Sequence

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Handoff, Response, TerminatedException, TerminationCondition
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, HandoffMessage, StopMessage, TextMessage, ToolCallSummaryMessage
from autogen_agentchat.teams import Swarm
from autogen_core import CancellationToken, SingleThreadedAgentRuntime
from autogen_core.model_context import ChatCompletionContext, ChatCompletionContextState
from autogen_core.models import ChatCompletionClient, FunctionExecutionResultMessage

from autogen_core.tools import BaseTool

from .manifest import AgentManifest
from .router import OfflineRouter, RouteDecision
from .tool_cache import SharedHandoff
from .tracing import skip_untraced

ROUTER_AGENT = "copilot_control"
CONTEXT_TOKENS = 6000
"""Default tokens of recent conversation each agent's model sees (Settings.context_tokens)."""
CHARS_PER_TOKEN = 4

HANDOFF_CHARS = 72
"""How much of a target's description the router agent's hand-off tool carries."""


class BoundedContext(ChatCompletionContext):
    """A model context bounded in tokens, not messages: the model sees the newest messages that fit in ``max_tokens``
    (estimated at 4 characters a token; the newest is always sent), so a few long messages (code, tool output) cannot
    blow the model's window and many short ones are not cut early. The window's start moves forward as messages come
    (no rescan of the history per call).

    Its saved state is exactly the window (what the model would be sent next, and all a later window can show of the
    past) and the messages' estimated sizes, so a context loaded from it goes on exactly as this one would. A loaded
    state is validated when the context is first used: an agent that does not speak in a leg never pays for its
    history, and saves it back as it came."""

    def __init__(self, max_tokens: int = CONTEXT_TOKENS, initial_messages: list[Any] | None = None) -> None:
        super().__init__(initial_messages)
        self.max_tokens = max_tokens
        self._saved: Mapping[str, Any] | None = None
        self._reset()

    def _reset(self, sizes: list[int] | None = None) -> None:
        self._sizes: list[int] = []
        self._start, self._in_window = 0, 0
        for size in sizes if sizes is not None else map(message_tokens, self._messages):
            self._admit(size)

    def _restore(self) -> None:
        """Build the messages of a loaded state (once, on first use), with the sizes it saved (estimated as it ran)."""
        if self._saved is not None:
            saved, self._saved = self._saved, None
            self._messages = ChatCompletionContextState.model_validate(saved).messages
            sizes = saved.get("sizes")
            self._reset(sizes if isinstance(sizes, list) and len(sizes) == len(self._messages) else None)

    def _admit(self, size: int) -> None:
        """Account for a message just appended: the window ends at it and starts where the budget allows."""
        self._sizes.append(size)
        self._in_window += size
        while self._in_window > self.max_tokens and self._start < len(self._sizes) - 1:
            self._in_window -= self._sizes[self._start]
            self._start += 1

    async def add_message(self, message: Any) -> None:
        self._restore()
        await super().add_message(message)
        self._admit(message_tokens(message))
        if self._start > len(self._messages) // 2 and self._start > 64:  # drop what no window will show again
            del self._messages[: self._start]
            del self._sizes[: self._start]
            self._start = 0

    async def get_messages(self) -> list[Any]:
        self._restore()
        messages = self._messages[self._start:]
        while len(messages) > 1 and isinstance(messages[0], FunctionExecutionResultMessage):  # never a tool result without its call
            messages = messages[1:]
        return messages

    async def clear(self) -> None:
        self._saved = None
        await super().clear()
        self._reset()

    async def save_state(self) -> Mapping[str, Any]:
        if self._saved is not None:
            return dict(self._saved)
        return {**ChatCompletionContextState(messages=self._messages[self._start:]).model_dump(), "sizes": self._sizes[self._start:]}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self._saved = state
        self._messages = []
        self._reset()


def message_tokens(message: Any) -> int:
    """A message's size in tokens, estimated (4 characters a token, plus a few for its framing)."""
    content = getattr(message, "content", "")
    if isinstance(content, str):
        return 4 + len(content) // CHARS_PER_TOKEN
    if isinstance(content, list):  # tool calls, tool results, text and images
        return 4 + sum(_part_chars(part) for part in content) // CHARS_PER_TOKEN
    return 4 + len(str(content)) // CHARS_PER_TOKEN


def _part_chars(part: Any) -> int:
    if isinstance(part, str):
        return len(part)
    return sum(len(v) for v in (getattr(part, "name", None), getattr(part, "arguments", None), getattr(part, "content", None))
               if isinstance(v, str)) or 256  # (an image, or a part with no text: a fixed allowance)


def route_target(decision: RouteDecision, available: Sequence[str], ranked: Sequence[str] = ()) -> str:
    """The agent to hand ``decision`` to: its own when available, else the best ranked one available, else the first."""
    if decision.target in available:
        return decision.target
    return next((name for name in ranked if name in available), next(iter(available)))


def user_text(messages: Sequence[BaseChatMessage]) -> str:
    return "\n".join(m.to_text() for m in messages if m.source == "user")


class CopilotControl(AssistantAgent):
    """The router agent: offline decision first, the model only when it is capable.

    Its hand-offs are the roster's (every agent a route leads to) plus any its manifest names. A capable model is
    offered, per call, only the hand-offs to the router's ``CANDIDATES`` best agents for the user's input so far (and
    those its manifest names outright), so what it reads does not grow with the roster; the set is a function of the
    session's inputs, so a replayed call asks the same."""

    CANDIDATES = 4

    def __init__(self, *args: Any, router: OfflineRouter, capable: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._router = router
        self._capable = capable
        self._user_inputs: list[str] = []
        self._every_handoff = dict(self._handoffs)
        self.last_decision: RouteDecision | None = None

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        text = user_text(messages)
        if text:
            self._user_inputs.append(text)
        task = "\n".join(self._user_inputs) or text
        decision = self._router.decide(task)
        self.last_decision = decision
        targets = [h.target for h in self._every_handoff.values()]
        ranked = self._router.candidates(task, len(self._router.targets))
        if not self._capable:
            target = route_target(decision, targets, ranked)
            await self._model_context.add_message(self._as_context(messages))
            yield Response(chat_message=HandoffMessage(
                source=self.name, target=target,
                content=f"route={decision.route} agent={decision.agent} confidence={decision.confidence:.2f}: {decision.reason}",
                metadata={"route": decision.route, "agent": str(decision.agent), "decided_by": "offline_router"},
            ))
            return
        self._offer(ranked)
        hint = TextMessage(source="offline_router", content=(
            f"Offline router suggestion: route={decision.route}, agent={decision.agent}, "
            f"confidence={decision.confidence:.2f} ({decision.reason}). Follow it unless the task clearly needs otherwise."
        ))
        async for item in super().on_messages_stream([*messages, hint], cancellation_token):
            yield item

    def _offer(self, ranked: Sequence[str]) -> None:
        """Offer the model the hand-offs to the best ``CANDIDATES`` roster agents (ranked) and to every non-roster target."""
        roster = set(self._router.targets)
        chosen = [name for name in ranked if any(h.target == name for h in self._every_handoff.values())][: self.CANDIDATES]
        offered = {key: h for key, h in self._every_handoff.items() if h.target in chosen or h.target not in roster}
        order = {name: i for i, name in enumerate(chosen)}
        self._handoffs = dict(sorted(offered.items(), key=lambda kv: order.get(kv[1].target, -1)))
        self._handoff_tools = [h.handoff_tool for h in self._handoffs.values()]

    def _as_context(self, messages: Sequence[BaseChatMessage]) -> Any:
        from autogen_core.models import UserMessage

        return UserMessage(content="\n".join(m.to_text() for m in messages) or "(no new messages)", source="user")

    async def save_state(self) -> Mapping[str, Any]:
        state = dict(await super().save_state())
        state["user_inputs"] = self._user_inputs[-10:]
        return state

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self._user_inputs = list(state.get("user_inputs", []))
        await super().load_state({k: v for k, v in state.items() if k != "user_inputs"})


def handoff_targets(agents: Mapping[str, AgentManifest], router: OfflineRouter,
                    allowed: Collection[str] | None = None) -> dict[str, list[str]]:
    """Each agent's hand-off targets: its manifest's, with the roster groups ('@roster', '@one_shot') read from the
    router's roster, and none to an agent outside ``allowed`` (the router agent and 'user' are always allowed)."""
    groups = {"@roster": router.targets, "@one_shot": router.one_shot_agents}

    def ok(name: str) -> bool:
        return name == "user" or (name in agents and (allowed is None or name in allowed or name == ROUTER_AGENT))

    found: dict[str, list[str]] = {}
    for name, manifest in agents.items():
        targets = [t for h in manifest.handoffs for t in groups.get(h, (h,)) if t != name and ok(t)]
        found[name] = list(dict.fromkeys(targets))
    return found


def members_from(agents: Mapping[str, AgentManifest], entry: str, handoffs: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The entry agent and every agent reachable from it by hand-offs (``handoffs``, default the manifests'), entry first."""
    order, todo = [entry], [entry]
    while todo:
        name = todo.pop(0)
        for target in (handoffs[name] if handoffs is not None else agents[name].handoffs):
            if target != "user" and target in agents and target not in order:
                order.append(target)
                todo.append(target)
    return order


def _handoff(target: str, agents: Mapping[str, AgentManifest]) -> Handoff:
    """A hand-off whose tool says what the target does (the first sentence of its description, kept short)."""
    manifest = agents.get(target)
    if manifest is None:
        return SharedHandoff(target=target)
    plain = re.sub(r"\s*\([^)]*\)", "", manifest.description)  # no parentheticals
    first = re.split(r"\. | - |; |: ", plain, maxsplit=1)[0].rstrip(".")
    if len(first) > HANDOFF_CHARS:
        first = first[: first.rfind(" ", 0, HANDOFF_CHARS)].rstrip(",;") + "..."
    return SharedHandoff(target=target, description=f"{first}.".replace("....", "..."))


def build_team(
    agents: Mapping[str, AgentManifest],
    *,
    client_for: Callable[[AgentManifest], ChatCompletionClient],
    tools_for: Callable[[AgentManifest], list[BaseTool[Any, Any]]],
    control: "RoundControl",
    router: OfflineRouter,
    router_capable: bool,
    entry: str = ROUTER_AGENT,
    context_tokens: int = CONTEXT_TOKENS,
    allowed: Collection[str] | None = None,
) -> Swarm:
    """One Swarm of the entry agent and everything it can reach, each agent from its manifest.

    Hand-offs come from the manifests, with the roster groups read from ``router``; agents outside ``allowed`` (when
    given) are neither members nor hand-off targets (the router agent always is allowed)."""
    targets = handoff_targets(agents, router, allowed)
    participants = []
    for name in members_from(agents, entry, targets):
        manifest = agents[name]
        kwargs: dict[str, Any] = dict(
            name=name,
            model_client=client_for(manifest),
            description=manifest.description,
            system_message=manifest.system_message,
            tools=tools_for(manifest) or None,
            handoffs=[_handoff(t, agents) if name == ROUTER_AGENT else SharedHandoff(target=t) for t in targets[name]],
            model_context=BoundedContext(context_tokens),
            reflect_on_tool_use=bool(manifest.tools),
            max_tool_iterations=3 if manifest.tools else 1,
        )
        if name == ROUTER_AGENT:
            participants.append(CopilotControl(router=router, capable=router_capable, **kwargs))
        else:
            participants.append(AssistantAgent(**kwargs))
    team = Swarm(participants, termination_condition=control)
    skip_untraced(team)  # autogen's per-message spans, when no tracer provider collects them (tracing.py)
    return team


def release_team(team: Swarm | None) -> None:
    """Let a team whose runs here have ended be freed by reference counting, as soon as its runner lets go of it.

    autogen's runtime keeps the team's agents (each of which keeps the runtime) and the factory of its group chat
    manager (a closure over the team, which keeps the runtime): a finished team, 11 agents with their model clients,
    contexts and tools (~900 objects), waited in those cycles for a full collection of the garbage collector, which a
    server runs rarely (after gc.freeze, once a quarter as many objects as its old generation holds have been promoted):
    in bench_paused_rss one came every ~55 legs and freed ~40,000 objects, and the Python heap's arenas grew to hold the
    dead teams (85 -> 89 MB over 1,000 paused sessions after a 30-session warm-up; flat with the cycles broken). A
    runtime still running (a run left in its middle by an error of the leg's own) is left to the collector."""
    runtime = getattr(team, "_runtime", None)
    if isinstance(runtime, SingleThreadedAgentRuntime) and runtime._run_context is None:
        runtime._instantiated_agents.clear()
        runtime._agent_factories.clear()


class Outcome:
    """How a round ended: ``status`` is None when the session goes on."""

    def __init__(self, status: str | None = None, result: str | None = None, question: str | None = None, agent: str | None = None) -> None:
        self.status, self.result, self.question, self.agent = status, result, question, agent


def classify(messages: Sequence[Any], agents: Mapping[str, AgentManifest]) -> Outcome:
    """Decide from one round's messages whether the session goes on.

    A hand-off to another agent or a tool summary goes on; a hand-off to the user, or a text from an
    agent that talks to the user, waits for the user; any other text is the final answer.
    """
    return _classify([m for m in messages if isinstance(m, BaseChatMessage) and m.source != "user"], agents)


def _classify(chat: Sequence[BaseChatMessage], agents: Mapping[str, AgentManifest]) -> Outcome:
    """classify() of a round's chat messages from agents (not the user), in order."""
    if not chat:
        return Outcome()
    last = chat[-1]
    if isinstance(last, HandoffMessage):
        if last.target != "user":
            return Outcome()
        texts = [m.to_text() for m in chat if m.source == last.source and not isinstance(m, HandoffMessage)]
        return Outcome("waiting_input", question=texts[-1] if texts else last.content, agent=last.source)
    if isinstance(last, ToolCallSummaryMessage):
        return Outcome()
    manifest = agents.get(last.source)
    if manifest is not None and "user" in manifest.handoffs:
        return Outcome("waiting_input", question=last.to_text(), agent=last.source)
    return Outcome("completed", result=last.to_text())


class RoundControl(TerminationCondition):
    """Ends a run of the swarm at the right round: answer, question, round limit or cancel.

    The group chat manager calls it after every agent turn. ``arm`` sets the limit before each leg;
    ``outcome`` keeps how the last leg ended (the manager resets the condition after it fires).
    """

    def __init__(self, agents: Mapping[str, AgentManifest]) -> None:
        self._agents = agents
        self.limit = 1
        self.rounds = 0
        self.cancel = False
        self.outcome = Outcome()
        self._terminated = False

    def arm(self, limit: int) -> None:
        self.limit, self.rounds, self.outcome, self._terminated = limit, 0, Outcome(), False

    @property
    def terminated(self) -> bool:
        return self._terminated

    async def __call__(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> StopMessage | None:
        if self._terminated:
            raise TerminatedException("the round control has already ended this run")
        chat = [m for m in messages if isinstance(m, BaseChatMessage) and m.source != "user"]
        if not chat:
            return None  # the task itself, not a turn
        self.rounds += 1
        outcome = _classify(chat, self._agents)
        if outcome.status is None and self.cancel:
            outcome = Outcome("cancelled")
        if outcome.status is None and self.rounds >= self.limit:
            outcome = Outcome("paused")
        if outcome.status is None:
            return None
        self.outcome = outcome
        self._terminated = True
        return StopMessage(content=outcome.status, source="round_control")

    async def reset(self) -> None:
        self._terminated = False
        self.rounds = 0
