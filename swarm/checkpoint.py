"""What a checkpoint keeps of the team's state: enough to go on exactly as a full replay would, and no more.

An agent of the swarm receives every message of the conversation into a buffer until it next speaks, and the group
chat manager keeps the whole thread; saved as they are, a checkpoint grows with the session's history and so does
the time to load it. Neither needs all of it:
- an agent's buffer is added to its model context when it speaks, and that context shows the model only the newest
  ``context_tokens`` (swarm/team.py BoundedContext, whose window only moves forward): the buffer and the context keep
  the newest messages that more than fill that window (with a margin, so the estimate of sizes cannot cut into it);
- the Swarm manager picks the next speaker from the last hand-off in the thread, else its saved current speaker: the
  thread keeps its tail from that hand-off on (at least ``THREAD_TAIL`` messages).
So loading a checkpoint costs the same after 10 rounds as after 10,000.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4
THREAD_TAIL = 8
MARGIN = 1.5
"""How much more than a full window the buffers and contexts keep (sizes are estimated as the window's are; the margin
covers what a message's conversion to the model's form adds)."""
MANAGER_STATE = "SwarmManagerState"


def _tokens(message: Any) -> int:
    """A saved message's size as the model context estimates it (4 a message, 4 characters a token), from its content
    and any context it carries (a hand-off's), never less than the context's own estimate."""
    if not isinstance(message, dict):
        return 4
    content = message.get("content")
    chars = len(content) if isinstance(content, str) else len(json.dumps(content, default=str))
    extra = message.get("context")
    if extra:
        chars += len(json.dumps(extra, default=str))
    return 4 + chars // CHARS_PER_TOKEN


def _newest_filling(messages: list[Any], tokens: int) -> list[Any]:
    """The shortest suffix of ``messages`` of at least ``tokens`` estimated tokens (all of them if they hold fewer)."""
    total = 0
    for start in range(len(messages) - 1, -1, -1):
        total += _tokens(messages[start])
        if total >= tokens:
            return messages[start:]
    return messages


def _thread_tail(thread: list[Any]) -> list[Any]:
    last_handoff = next((i for i in range(len(thread) - 1, -1, -1) if isinstance(thread[i], dict) and thread[i].get("type") == "HandoffMessage"), None)
    start = min(len(thread) - THREAD_TAIL, last_handoff if last_handoff is not None else len(thread))
    return thread[max(0, start):]


def compact_state(state: dict[str, Any], context_tokens: int) -> dict[str, Any]:
    """``state`` (a Swarm team's ``save_state()``) with agents' buffers and the manager's thread cut to what matters."""
    keep = int(MARGIN * context_tokens)
    agents = {}
    for name, agent in (state.get("agent_states") or {}).items():
        if not isinstance(agent, dict):
            agents[name] = agent
            continue
        agent = dict(agent)
        if isinstance(agent.get("message_buffer"), list):
            agent["message_buffer"] = _newest_filling(agent["message_buffer"], keep)
        inner = agent.get("agent_state")
        context = inner.get("llm_context") if isinstance(inner, dict) else None
        if isinstance(context, dict) and isinstance(context.get("messages"), list):
            agent["agent_state"] = {**inner, "llm_context": {**context, "messages": _newest_filling(context["messages"], keep)}}
        if isinstance(agent.get("message_thread"), list) and agent.get("type") == MANAGER_STATE:
            agent["message_thread"] = _thread_tail(agent["message_thread"])
        agents[name] = agent
    return {**state, "agent_states": agents}
