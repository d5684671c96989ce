"""The sampling model client: autogen messages <-> MCP sampling messages, tool calls in text or native."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest
from autogen_core import FunctionCall
from autogen_core.models import AssistantMessage, FunctionExecutionResult, FunctionExecutionResultMessage, SystemMessage, UserMessage

from server.sampling import SamplingModelClient, parse_tool_calls, to_sampling_messages

pytestmark = pytest.mark.anyio

TOOLS = [{"name": "transfer_to_engineer", "description": "Hand off to engineer", "parameters": {"type": "object", "properties": {}}},
         {"name": "execute_code", "description": "Run code", "parameters": {"type": "object", "properties": {"code": {"type": "string"}}}}]


class Channel:
    def __init__(self, answers: list[Any], tools: bool = False) -> None:
        self.answers, self.tools, self.requests = answers, tools, []

    async def create_message(self, params: types.CreateMessageRequestParams) -> Any:
        self.requests.append(params)
        answer = self.answers.pop(0)
        if isinstance(answer, str):
            return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=answer), model="m")
        return answer


def conversation() -> list[Any]:
    call = FunctionCall(id="c1", name="execute_code", arguments=json.dumps({"code": "print(1)"}))
    return [
        SystemMessage(content="You are the engineer."),
        UserMessage(content="Compute 6*7", source="user"),
        UserMessage(content="over to you", source="copilot_control"),
        AssistantMessage(content=[call], source="engineer"),
        FunctionExecutionResultMessage(content=[FunctionExecutionResult(content="42", name="execute_code", call_id="c1", is_error=False)]),
    ]


def test_messages_without_native_tools_become_text_turns() -> None:
    out = to_sampling_messages(conversation(), native=False)
    assert [m.role for m in out] == ["user", "assistant", "user"]
    assert out[0].content.text == "Compute 6*7\n\n[copilot_control] over to you"  # same-role turns merged
    assert json.loads(out[1].content.text) == {"tool_calls": [{"name": "execute_code", "arguments": {"code": "print(1)"}}]}
    assert out[2].content.text == "Tool results:\n- execute_code: 42"


def test_messages_with_native_tools_keep_tool_use_and_results() -> None:
    out = to_sampling_messages(conversation(), native=True)
    assert isinstance(out[1].content, types.ToolUseContent) and out[1].content.input == {"code": "print(1)"}
    assert isinstance(out[2].content, types.ToolResultContent) and out[2].content.tool_use_id == "c1"


def test_tool_calls_are_parsed_from_text_answers() -> None:
    names = {t["name"] for t in TOOLS}
    fenced = 'Sure.\n```json\n{"tool_calls": [{"name": "execute_code", "arguments": {"code": "print(2)"}}]}\n```'
    [call] = parse_tool_calls(fenced, names)
    assert call.name == "execute_code" and json.loads(call.arguments) == {"code": "print(2)"}
    [single] = parse_tool_calls('{"name": "transfer_to_engineer", "arguments": {}}', names)
    assert single.name == "transfer_to_engineer"
    assert parse_tool_calls('{"tool_calls": [{"name": "rm_rf", "arguments": {}}]}', names) == []
    assert parse_tool_calls("The answer is 42.", names) == []


async def test_create_describes_tools_in_the_prompt_and_returns_function_calls() -> None:
    channel = Channel(['{"tool_calls": [{"name": "transfer_to_engineer", "arguments": {}}]}', "Done: 42."])
    client = SamplingModelClient(channel, "copilot_control", "fast")
    result = await client.create(conversation()[:2], tools=TOOLS)
    assert result.finish_reason == "function_calls" and result.content[0].name == "transfer_to_engineer"
    request = channel.requests[0]
    assert "transfer_to_engineer" in request.system_prompt and request.system_prompt.startswith("You are the engineer.")
    assert request.tools is None and request.model_preferences.speed_priority == 0.8 and request.metadata == {"agent": "copilot_control"}
    text = await client.create(conversation()[:2])
    assert text.content == "Done: 42." and text.usage.prompt_tokens > 0 and client.total_usage().completion_tokens > 0


async def test_create_uses_native_tools_when_the_client_has_them() -> None:
    answer = types.CreateMessageResultWithTools(role="assistant", model="m", stop_reason="toolUse",
                                                content=[types.ToolUseContent(type="tool_use", id="u1", name="execute_code", input={"code": "1"})])
    channel = Channel([answer], tools=True)
    result = await SamplingModelClient(channel).create(conversation()[:2], tools=TOOLS)
    assert result.content == [FunctionCall(id="u1", name="execute_code", arguments='{"code": "1"}')]
    assert [t.name for t in channel.requests[0].tools] == ["transfer_to_engineer", "execute_code"]
    assert "tool_calls" not in channel.requests[0].system_prompt
