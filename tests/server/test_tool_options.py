"""A phase tool's knobs over MCP: given in ``options`` or, as before, at top level, they reach the phase the same;
an unknown key in ``options``, a key given both ways, a bad value or an ``options`` that is no object is a clear
``isError`` result (both protocol eras, the real client in memory)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.mcp_harness import connect, data, era, make_server, text  # noqa: F401
from tests.phases.phase_helpers import plan

pytestmark = pytest.mark.anyio


async def phase_inputs(client: Any, result: dict[str, Any]) -> dict[str, Any]:
    events = json.loads((await client.read_resource(result["transcript_uri"])).contents[0].text)["events"]
    (start,) = [e for e in events if e["type"] == "phase_start"]
    return start["content"]["inputs"]


async def test_knobs_in_options_or_at_top_level_reach_the_phase_the_same(settings: Any, era: str) -> None:
    the_plan = plan(("write the summary", "researcher"))
    server, script = make_server(settings, [{"agent": "planner", "json": the_plan}, {"agent": "planner", "json": the_plan}])
    async with connect(server, era) as client:
        grouped = data(await client.call_tool("invoke_planning_phase", {"task": "Explain threads", "options": {"max_plan_steps": 2, "n_plan_reviews": 0}}))
        flat = data(await client.call_tool("invoke_planning_phase", {"task": "Explain threads", "max_plan_steps": 2, "n_plan_reviews": 0}))
        assert grouped["status"] == flat["status"] == "completed"
        expected = {"task": "Explain threads", "max_plan_steps": 2, "n_plan_reviews": 0, "improve_task": False}
        assert await phase_inputs(client, grouped) == expected == await phase_inputs(client, flat)
    script.assert_exhausted()


async def test_bad_options_are_clear_errors(settings: Any, era: str) -> None:
    server, script = make_server(settings, [])
    async with connect(server, era) as client:
        async def refused(tool: str, arguments: dict[str, Any]) -> str:
            result = await client.call_tool(tool, arguments)
            assert result.is_error and result.meta["swarm-mcp/error-kind"] == "invalid_arguments", result
            return text(result)

        unknown = await refused("invoke_planning_phase", {"task": "x", "options": {"max_steps": 2, "n_plan_reviews": 0}})
        assert unknown == ("Invalid arguments for invoke_planning_phase: unknown option 'max_steps' in 'options' "
                           "(the options are: max_plan_steps, n_plan_reviews, improve_task).")
        twice = await refused("invoke_copilot_phase", {"task": "x", "n_ideas": 2, "options": {"n_ideas": 3}})
        assert twice == "Invalid arguments for invoke_copilot_phase: 'n_ideas' given both at top level and in 'options'; give it once."
        assert "argument 'options' must be an object of n_ideas, n_reviews" in await refused("invoke_idea_generation_phase",
                                                                                             {"task": "x", "options": "n_ideas=2"})
        # a value in options is checked as strictly as at top level, naming the option and its range
        assert "argument 'max_n_attempts' must be an integer from 1 to 10, got 11" in await refused(
            "invoke_one_shot_phase", {"task": "x", "options": {"max_n_attempts": 11}})
        assert "argument 'review_code' must be true or false, got 'yes'" in await refused(
            "invoke_control_phase", {"options": {"review_code": "yes"}})
        # an unknown top-level argument: the arguments listed include options (and the knobs, still accepted there)
        colour = await refused("invoke_idea_generation_phase", {"task": "x", "colour": "red"})
        assert "unknown argument 'colour' (invoke_idea_generation_phase takes: task, options, session_id, wait_seconds, n_ideas, n_reviews)" in colour
        # a tool without knobs has no options argument
        assert "unknown argument 'options'" in await refused("copilot", {"task": "x", "options": {"max_rounds": 2}})
    script.assert_exhausted()


async def test_the_checkpoint_keeps_its_own_options(settings: Any) -> None:
    server, script = make_server(settings, [])
    async with connect(server, "legacy") as client:  # no elicitation: the gate waits and says what it asks
        waiting = data(await client.call_tool("invoke_hitl_checkpoint_phase", {"message": "Ship it?", "options": ["ship", "hold"], "wait_seconds": 5}))
    assert waiting["status"] == "waiting_input" and waiting["pending_approval"]["options"] == ["ship", "hold"]
    script.assert_exhausted()
