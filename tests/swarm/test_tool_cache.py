"""Tools' schemas and hand-off tools are built once per kind of tool, not per session or per model call."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.tool_cache import SharedHandoff, schema_of
from tests.fakes import FunctionModels, call, handoff

pytestmark = pytest.mark.anyio


def test_a_schema_is_computed_once_per_kind_of_tool() -> None:
    from autogen_core.tools import FunctionTool

    def lookup(term: str, limit: int = 3) -> str:
        return term * limit

    def other(term: str) -> str:
        return term

    first, second = FunctionTool(lookup, description="Look it up."), FunctionTool(lookup, description="Look it up.")
    assert schema_of(first) == first.schema and schema_of(second) == first.schema
    assert schema_of(first)["parameters"] is schema_of(second)["parameters"]  # the same computation, shared
    assert schema_of(first) is not schema_of(first)  # (a fresh top-level dict each time)
    renamed = FunctionTool(other, description="Look it up.", name="lookup")  # same name and text, another signature
    assert schema_of(renamed)["parameters"]["required"] == ["term"] and "limit" not in schema_of(renamed)["parameters"]["properties"]
    assert schema_of(first)["parameters"]["properties"].keys() == {"term", "limit"}
    as_dict = {"name": "given", "description": "A schema given as it is."}
    assert schema_of(as_dict) is as_dict


def test_hand_off_tools_are_shared_by_equal_hand_offs() -> None:
    one, again, other = SharedHandoff(target="engineer"), SharedHandoff(target="engineer"), SharedHandoff(target="researcher")
    assert one.handoff_tool is again.handoff_tool
    assert other.handoff_tool is not one.handoff_tool and other.handoff_tool.name == "transfer_to_researcher"
    described = SharedHandoff(target="engineer", description="Writes code.")
    assert described.handoff_tool is not one.handoff_tool and described.handoff_tool.description == "Writes code."


async def test_a_session_does_not_rebuild_schemas_per_round(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every model call rebuilt the JSON schema of each tool its agent had (hand-offs included), and every
    session built new hand-off tools; the schemas built grew with the rounds played."""
    builds: list[str] = []
    original = BaseModel.model_json_schema.__func__  # type: ignore[attr-defined]

    def counting(cls: type[BaseModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
        builds.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(BaseModel, "model_json_schema", classmethod(counting))
    nxt = {"copilot_control": "engineer", "engineer": "controller", "controller": "engineer"}

    def model(messages: Any, agent: str, tools: Any) -> Any:
        assert tools, agent
        return handoff(nxt[agent])

    async def session(rounds: int) -> int:
        before = len(builds)
        async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model)) as engine:
            record = await engine.go_on((await engine.create("Bounce it", max_rounds=rounds)).id)
            assert record.status == "paused" and record.total_rounds == rounds
        return len(builds) - before

    await session(3)  # the kinds of tool this process has not seen yet
    assert await session(4) == await session(24) == 0, builds[-20:]


async def test_a_tool_call_still_gets_its_schema_and_runs(settings: Any) -> None:
    seen: list[list[str]] = []

    def model(messages: Any, agent: str, tools: Any) -> Any:
        seen.append(sorted(tools))  # (a function model is given the tools' names)
        if agent == "copilot_control":
            return handoff("engineer")
        if len(seen) == 2:
            return call("execute_code", language="python", code="print(6 * 7)")
        return "42"

    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model)) as engine:
        record = await engine.go_on((await engine.create("Compute it", max_rounds=5)).id)
    assert record.status == "completed" and record.result == "42", (record.status, record.result, record.error)
    assert "execute_code" in seen[1] and any(name.startswith("transfer_to_") for name in seen[1])
