"""The function-driven fake model drives a real session through the engine: a hand-off, a tool call the engine
really runs, text that depends on the tool's result, and the usage each call reports."""

from __future__ import annotations

from typing import Any, Sequence

import pytest
from autogen_core.models import FunctionExecutionResultMessage, LLMMessage, UserMessage

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.models.function import FunctionModelClient, ModelCallError
from tests.fakes import FunctionModels, call, handoff

pytestmark = pytest.mark.anyio


async def test_a_function_model_drives_a_session_with_a_tool_call_text_and_usage(settings: Any) -> None:
    seen: list[tuple[str, list[str]]] = []

    def model(messages: Sequence[LLMMessage], agent: str, tools: list[str]) -> Any:
        seen.append((agent, tools))
        if agent == "copilot_control":
            return handoff("engineer")
        results = [m for m in messages if isinstance(m, FunctionExecutionResultMessage)]
        if not results:
            return call("execute_code", code="print(6 * 7)", language="python")
        output = results[-1].content[0].content  # what the engine's execute_code returned: ...stdout:\n42\nstderr: ...
        return f"The program printed {output.split('stdout:')[1].split('stderr:')[0].strip()}."

    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model, usage=(7, 3))) as engine:
        record = await engine.create("Compute six times seven with Python")
        record = await engine.run(record.id)
        assert record.status == "completed", record.error
        assert record.result == "The program printed 42."  # the model function read the tool's real result
        assert [agent for agent, _ in seen] == ["copilot_control", "engineer", "engineer"]
        assert "transfer_to_engineer" in seen[0][1] and "execute_code" in seen[1][1]
        assert record.total_usage().total_tokens == 3 * 10  # each call reported 7 + 3 tokens
        events = await engine.transcript(record.id)
        assert [e.content["target"] for e in events if e.type == "handoff"] == ["engineer"]
        journal = await engine.store.journal_entries(record.id)  # every model call and tool run, recorded by the engine
        assert [(c["agent"], c["kind"], c["name"]) for c in journal] == [
            ("copilot_control", "model", "function"), ("engineer", "model", "function"), ("engineer", "tool", "execute_code"),
            ("engineer", "model", "function")]

async def test_the_function_client_has_the_real_interface() -> None:
    async def model(messages: Sequence[LLMMessage], agent: str, tools: list[str]) -> Any:
        return f"{agent} read {messages[-1].content}"

    client = FunctionModelClient(model, "researcher", usage=(4, 2))
    question = [UserMessage(content="hello", source="user")]
    assert (await client.create(question)).content == "researcher read hello"
    chunks = [c async for c in client.create_stream(question)]
    assert len(chunks) == 1 and chunks[0].content == "researcher read hello"
    assert client.actual_usage().prompt_tokens == 4 and client.total_usage().completion_tokens == 4
    assert client.model_info["function_calling"] and client.count_tokens(question) >= 0

    offers_nothing = FunctionModelClient(lambda messages, agent, tools: call("execute_code"), "engineer")
    with pytest.raises(ModelCallError, match="'execute_code', which is not offered"):
        await offers_nothing.create(question)
