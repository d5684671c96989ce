"""A checkpoint keeps what going on needs and no more: its size does not grow with the session's history, and a
session resumed from it sends the model exactly what an uninterrupted run would have."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import pytest

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.checkpoint import THREAD_TAIL
from tests.fakes import FunctionModels, handoff

pytestmark = pytest.mark.anyio

NEXT = {"copilot_control": "engineer", "engineer": "controller", "controller": "engineer"}


class Recording:
    """Hands off engineer <-> controller forever, with a long text each time, and records what each call was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    def __call__(self, messages: Any, agent: str, tools: Any) -> Any:
        self.sent.append((agent, [str(getattr(m, "content", m)) for m in messages]))
        return [f"{agent} says: " + "x" * 300 + f" #{len(self.sent)}", handoff(NEXT[agent])][1]


async def play(settings: Any, rounds: list[int], between: Callable[[Engine, str], Awaitable[None]] | None = None) -> tuple[Recording, int]:
    """Play legs of ``rounds`` rounds each (``between(engine, session_id)`` runs before each continue)."""
    model = Recording()
    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model)) as engine:
        record = await engine.create("Bounce the work between engineer and controller", max_rounds=rounds[0])
        record = await engine.go_on(record.id)
        for more in rounds[1:]:
            if between is not None:
                await between(engine, record.id)
            record = await engine.go_on(record.id, max_rounds=more)
        found = await engine.store.checkpoint_get(record.id)
        return model, len(found[3]) if found else 0


def with_window(settings: Any, tokens: int) -> Any:
    return settings.__class__(**{**settings.__dict__, "context_tokens": tokens})


def assert_same_calls(whole: Recording, parts: Recording) -> None:
    assert len(whole.sent) == len(parts.sent)
    for n, (one, other) in enumerate(zip(whole.sent, parts.sent)):
        assert one[0] == other[0] and one[1] == other[1], f"call {n} ({one[0]}) was sent {len(other[1])} messages, not {len(one[1])}"


async def test_a_checkpoint_does_not_grow_with_history(settings: Any) -> None:
    settings = settings.__class__(**{**settings.__dict__, "context_tokens": 256})
    _, short = await play(settings, [40, 1])
    _, long = await play(settings, [400, 1])
    assert long < short * 1.2, (short, long)  # 10x the rounds, about the same checkpoint


async def test_resumed_from_a_checkpoint_the_model_is_sent_what_an_uninterrupted_run_sends(settings: Any) -> None:
    settings = settings.__class__(**{**settings.__dict__, "context_tokens": 256})
    whole, _ = await play(settings, [61])
    parts, _ = await play(settings, [30, 20, 11])  # two checkpoints on the way
    assert len(whole.sent) == len(parts.sent) == 61
    assert [a for a, _ in whole.sent] == [a for a, _ in parts.sent]
    for n, (one, other) in enumerate(zip(whole.sent, parts.sent)):
        assert one[1] == other[1], f"call {n} ({one[0]}) differs"
    json.dumps(parts.sent)  # (what was recorded is plain text)


async def test_committed_rounds_replay_from_the_journal_even_after_the_prompts_changed(settings: Any) -> None:
    """A session journaled by an earlier version (here: another system message for copilot_control) and resumed with no
    checkpoint to start from (a crash mid-leg, a database from before checkpoints) replays its committed rounds by
    position: no model call of a committed round runs again."""
    import sqlite3

    from swarm.manifest import load_agents
    from swarm.models.scripted import Script
    from tests.fakes import ScriptedModels

    first = Script([{"agent": "copilot_control", "handoff": "planner"}, {"agent": "planner", "handoff": "controller"}])
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(first)) as engine:
        record = await engine.go_on((await engine.create("Plan it, then do it", max_rounds=2)).id)
        assert record.status == "paused" and record.total_rounds == 2
    with sqlite3.connect(settings.db_url.split(":///", 1)[1]) as db:  # as if the leg's checkpoint was never written
        db.execute("DELETE FROM checkpoints WHERE session_id = ?", (record.id,))
    agents = load_agents()
    router = agents["copilot_control"]
    agents["copilot_control"] = router.model_copy(update={"system_message": router.system_message + "\nA newer version's extra rule."})
    second = Script([{"agent": "controller", "text": "done"}])
    async with Engine(settings, agents=agents, tools=phase_tool_registry(), models=ScriptedModels(second)) as engine:
        record = await engine.go_on(record.id, max_rounds=3)
        assert (record.status, record.result, record.total_rounds) == ("completed", "done", 3)
    second.assert_exhausted()  # copilot_control's and planner's calls came from the journal


async def test_a_context_resumed_from_a_checkpoint_holds_its_whole_window(settings: Any) -> None:
    """Hand-offs are short messages with tool calls; a context cut by another estimate of sizes than its window's
    lost the oldest messages of the window (the model was sent 29 messages where an uninterrupted run sends 31)."""
    settings = with_window(settings, 600)
    whole, _ = await play(settings, [72])
    parts, _ = await play(settings, [70, 2])
    assert_same_calls(whole, parts)


async def test_a_resume_builds_each_buffered_message_once(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every agent buffers every message it has not answered yet: a resume validates each of them once, not once an
    agent (the buffers of a long session's dozen agents hold the same ~200 messages)."""
    from autogen_agentchat.messages import MessageFactory

    built: list[str] = []
    create = MessageFactory.create

    def counting(self: MessageFactory, data: Any) -> Any:
        built.append(data.get("id", "") if isinstance(data, dict) else "")
        return create(self, data)

    async def count_the_resume(engine: Engine, session_id: str) -> None:
        state = json.loads((await engine.store.checkpoint_get(session_id))[3])
        buffers = [a["message_buffer"] for a in state["agent_states"].values() if "message_buffer" in a]
        sizes.append(len(state["messages"]) if "messages" in state else len({m["id"] for buffer in buffers for m in buffer}))  # (or the earlier shape)
        monkeypatch.setattr(MessageFactory, "create", counting)

    sizes: list[int] = []
    await play(settings, [120, 1], between=count_the_resume)
    assert sizes and sizes[0] > 100, sizes  # the buffers held ~120 messages
    assert len(built) <= sizes[0] + THREAD_TAIL, (len(built), sizes)  # each once (and the manager's thread), not ~11x that


async def test_a_checkpoint_of_the_earlier_shape_still_loads(settings: Any) -> None:
    """A checkpoint written before messages were kept once (autogen's own team state: each buffer its own copies) loads
    and goes on exactly as an uninterrupted run. (And a version from before, reading one of today's, fails on its
    buffers' indexes rather than going on with empty buffers.)"""
    from autogen_agentchat.state import ChatAgentContainerState
    from pydantic import ValidationError

    settings = with_window(settings, 600)

    async def as_before(engine: Engine, session_id: str) -> None:
        legs, position, rounds, body = await engine.store.checkpoint_get(session_id)
        state = json.loads(body)
        messages = state.pop("messages")
        assert state.pop("format") == 2
        for agent in state["agent_states"].values():
            if agent.get("type") == "ChatAgentContainerState":
                if agent["message_buffer"]:
                    with pytest.raises(ValidationError):
                        ChatAgentContainerState.model_validate(agent)  # what autogen's load_state reads a container with
                agent["message_buffer"] = [messages[i] for i in agent["message_buffer"]]
        await engine.store.checkpoint_put(session_id, legs=legs, position=position, rounds=rounds, body=json.dumps(state))

    whole, _ = await play(settings, [50])
    parts, _ = await play(settings, [30, 20], between=as_before)
    assert_same_calls(whole, parts)
