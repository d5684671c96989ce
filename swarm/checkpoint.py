"""What a checkpoint keeps of the team's state: enough to go on exactly as a full replay would, and no more.

An agent of the swarm receives every message of the conversation into a buffer until it next speaks, and the group
chat manager keeps the whole thread; saved as they are, a checkpoint grows with the session's history and so does
the time to load it. Neither needs all of it:
- an agent's model context shows the model only the newest ``context_tokens`` (swarm/team.py BoundedContext, whose
  window only moves forward): the context saves exactly its window, and a buffer keeps the newest messages that more
  than fill that window once in the context (with a margin);
- the Swarm manager picks the next speaker from the last hand-off in the thread, else its saved current speaker: the
  thread keeps its tail from that hand-off on (at least ``THREAD_TAIL`` messages).
So loading a checkpoint costs the same after 10 rounds as after 10,000.

Every agent of a swarm receives every message, so the dozen buffers hold mostly the same messages. The checkpoint
(``FORMAT`` 2) keeps each of them once, in ``messages``, and each agent's ``message_buffer`` lists the indexes of its
own: loading validates a message once however many agents hold it, and the rebuilt buffers share it, as the live
buffers do. A checkpoint without ``format`` (written before; each buffer its own copies) loads through autogen's
load_state; a version from before that reads a checkpoint of this format fails on the indexes (a failed leg, resumed
by a newer replica), rather than going on with empty buffers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Sequence

import pydantic_core
from autogen_agentchat.messages import BaseChatMessage, HandoffMessage
from autogen_agentchat.teams._group_chat._chat_agent_container import ChatAgentContainer
from autogen_core import AgentId

from .team import message_tokens

if TYPE_CHECKING:
    from autogen_agentchat.teams import Swarm

FORMAT = 2
"""The stored shape of a checkpoint's body: 2 = chat messages kept once, buffers as indexes (none: autogen's TeamState)."""
THREAD_TAIL = 8
MARGIN = 1.5
"""How much more than a full window the buffers keep."""
CONTAINER_STATE = {"type": "ChatAgentContainerState", "version": "1.0.0"}


async def save_team(team: Swarm, context_tokens: int) -> dict[str, Any]:
    """The state of ``team`` (not running) to checkpoint: its agents' buffers cut and their messages kept once, the
    manager's thread cut to its tail."""
    keep = int(MARGIN * context_tokens)
    messages: list[dict[str, Any]] = []
    index: dict[int, int] = {}  # id() of a buffered message -> its place in ``messages``
    sizes: dict[int, int] = {}
    agents: dict[str, Any] = {}
    async for name, container in _containers(team):
        refs = []
        for message in _newest_filling(container._message_buffer, keep, sizes):
            at = index.get(id(message))
            if at is None:
                at = index[id(message)] = len(messages)
                messages.append(message.dump())
            refs.append(at)
        agents[name] = {**CONTAINER_STATE, "agent_state": dict(await container._agent.save_state()), "message_buffer": refs}
    manager = dict(await team._runtime.agent_save_state(_manager_id(team)))
    if isinstance(manager.get("message_thread"), list):
        manager["message_thread"] = _thread_tail(manager["message_thread"])
    agents[team._group_chat_manager_name] = manager
    return {"type": "TeamState", "version": "1.0.0", "format": FORMAT, "messages": messages, "agent_states": agents}


async def load_team(team: Swarm, state: Mapping[str, Any]) -> None:
    """Load a checkpoint's ``state`` (either format) into ``team`` (just built, not running)."""
    if "format" not in state:  # written before messages were kept once
        await team.load_state(state)
        return
    if state["format"] != FORMAT:
        raise ValueError(f"the checkpoint has format {state['format']!r}, which this version does not read (it reads {FORMAT}); "
                         "run the version that wrote it, or drop the checkpoint to replay the session from its journal")
    if not team._initialized:
        await team._init(team._runtime)
    built = [team._message_factory.create(m) for m in state["messages"]]
    agents = state["agent_states"]
    async for name, container in _containers(team):
        saved = agents.get(name)
        if saved is None:
            raise ValueError(f"Agent state for {name} not found in the saved state.")
        container._message_buffer = [built[i] for i in saved["message_buffer"]]
        await container._agent.load_state(saved["agent_state"])
    if team._group_chat_manager_name not in agents:
        raise ValueError(f"Agent state for {team._group_chat_manager_name} not found in the saved state.")
    await team._runtime.agent_load_state(_manager_id(team), agents[team._group_chat_manager_name])


def encode(state: Mapping[str, Any]) -> str:
    """A checkpoint's body: its state as JSON (pydantic-core's encoder: 4x json.dumps's speed, read by either)."""
    return pydantic_core.to_json(state, fallback=str).decode()


def decode(body: str) -> Any:
    """The state a checkpoint's body holds."""
    return pydantic_core.from_json(body)


async def _containers(team: Swarm) -> AsyncIterator[tuple[str, ChatAgentContainer]]:
    """Each participant's name and the container that holds its buffer and the agent (made if not yet)."""
    for name, topic in zip(team._participant_names, team._participant_topic_types, strict=True):
        yield name, await team._runtime.try_get_underlying_agent_instance(AgentId(topic, team._team_id), ChatAgentContainer)


def _manager_id(team: Swarm) -> AgentId:
    return AgentId(team._group_chat_manager_topic_type, team._team_id)


def _in_context(message: BaseChatMessage) -> int:
    """What a buffered message adds to its agent's model context when the agent speaks (a hand-off's context, then the
    message as the model sees it: autogen's AssistantAgent), in BoundedContext's estimate."""
    carried = sum(message_tokens(m) for m in message.context) if isinstance(message, HandoffMessage) else 0
    try:
        return carried + message_tokens(message.to_model_message())
    except Exception:  # a message kind with no model form: its size as text
        return carried + 4 + len(json.dumps(message.dump(), default=str)) // 4


def _newest_filling(messages: Sequence[BaseChatMessage], tokens: int, sizes: dict[int, int]) -> Sequence[BaseChatMessage]:
    """The shortest suffix of ``messages`` of at least ``tokens`` estimated tokens (all of them if they hold fewer);
    ``sizes`` caches each message's size by id() (the buffers share their messages)."""
    total = 0
    for start in range(len(messages) - 1, -1, -1):
        message = messages[start]
        size = sizes.get(id(message))
        if size is None:
            size = sizes[id(message)] = _in_context(message)
        total += size
        if total >= tokens:
            return messages[start:]
    return messages


def _thread_tail(thread: list[Any]) -> list[Any]:
    last_handoff = next((i for i in range(len(thread) - 1, -1, -1) if isinstance(thread[i], dict) and thread[i].get("type") == "HandoffMessage"), None)
    start = min(len(thread) - THREAD_TAIL, last_handoff if last_handoff is not None else len(thread))
    return thread[max(0, start):]
