"""Each agent's model context is bounded in tokens, not messages (swarm/team.py BoundedContext, SWARM_MCP_CONTEXT_TOKENS)."""

from __future__ import annotations

import pytest
from autogen_core.models import AssistantMessage, FunctionExecutionResult, FunctionExecutionResultMessage, UserMessage

from swarm.config import Settings
from swarm.errors import ConfigError
from swarm.team import BoundedContext

pytestmark = pytest.mark.anyio


def user(chars: int, tag: str = "x") -> UserMessage:
    return UserMessage(content=tag * chars, source="user")


async def test_the_model_sees_the_newest_messages_that_fit_the_token_budget() -> None:
    context = BoundedContext(max_tokens=1000)
    for i in range(60):  # 60 short messages (~30 tokens each): 24 messages used to be the cut, whatever their size
        await context.add_message(user(100, str(i % 10)))
    seen = await context.get_messages()
    assert 25 <= len(seen) <= 35 and seen[-1].content == "9" * 100
    assert sum(4 + len(m.content) // 4 for m in seen) <= 1000

    await context.add_message(user(40_000, "L"))  # one message past the budget on its own: it is still sent, alone
    assert [m.content[:1] for m in await context.get_messages()] == ["L"]
    assert len(context._messages) < 62  # what it keeps is trimmed too (saved state stays small)

    restored = BoundedContext(max_tokens=1000)
    await restored.load_state(await context.save_state())
    assert [m.content for m in await restored.get_messages()] == [m.content for m in await context.get_messages()]


async def test_a_tool_result_is_never_sent_without_the_call_it_answers() -> None:
    context = BoundedContext(max_tokens=300)
    await context.add_message(user(2000))
    await context.add_message(AssistantMessage(content="calling", source="a"))
    await context.add_message(FunctionExecutionResultMessage(content=[FunctionExecutionResult(content="r" * 1100, call_id="1", name="t")]))
    await context.add_message(user(40))
    seen = await context.get_messages()
    assert not isinstance(seen[0], FunctionExecutionResultMessage), seen


async def test_a_context_saves_its_window_and_a_loaded_one_goes_on_as_the_original() -> None:
    """The saved state is the window, whatever the mix of sizes; loaded, it is built on first use (an agent that does
    not speak saves it back untouched), and the window then moves exactly as the original's does."""
    from autogen_core import FunctionCall

    context = BoundedContext(max_tokens=500)
    for i in range(90):  # tool calls and results: sizes the model context counts from their text parts
        await context.add_message(user(60 + i % 7, str(i % 10)))
        await context.add_message(AssistantMessage(content=[FunctionCall(id=f"c{i}", name="transfer_to_x", arguments="{}")], source="a"))
        await context.add_message(FunctionExecutionResultMessage(content=[FunctionExecutionResult(content="moved " * 8, call_id=f"c{i}", name="transfer_to_x")]))
    state = await context.save_state()
    assert len(state["messages"]) == len(context._messages) - context._start  # the window, no more and no less

    loaded = BoundedContext(max_tokens=500)
    await loaded.load_state(state)
    assert loaded._messages == [] and await loaded.save_state() == state  # not built until used; saved back as it came
    for ctx in (context, loaded):
        await ctx.add_message(user(300, "n"))
    assert await loaded.get_messages() == await context.get_messages()
    assert await loaded.save_state() == await context.save_state()


def test_the_budget_is_a_setting() -> None:
    assert Settings.from_env({"SWARM_MCP_HOME": "/tmp/x"}).context_tokens == 6000
    assert Settings.from_env({"SWARM_MCP_HOME": "/tmp/x", "SWARM_MCP_CONTEXT_TOKENS": "20000"}).context_tokens == 20000
    for bad in ("lots", "100"):
        with pytest.raises(ConfigError, match="SWARM_MCP_CONTEXT_TOKENS"):
            Settings.from_env({"SWARM_MCP_HOME": "/tmp/x", "SWARM_MCP_CONTEXT_TOKENS": bad})
