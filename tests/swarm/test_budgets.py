"""Budgets of a copilot session: it pauses with the reason at its token (cost, time) limit and goes on once raised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phases import phase_tool_registry
from swarm.budgets import Prices
from swarm.engine import Engine
from swarm.errors import ConfigError, UserInputError
from swarm.models.scripted import Script
from swarm.profiles import Budget
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.anyio

STEPS = [
    {"agent": "copilot_control", "handoff": "planner"},
    {"agent": "planner", "handoff": "controller"},
    {"agent": "controller", "handoff": "researcher"},
    {"agent": "researcher", "text": "All done."},
]


async def test_a_session_stops_at_its_token_budget_and_completes_after_a_raise(settings: Any) -> None:
    script = Script(STEPS)  # every call reports 10 + 5 tokens
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Explain it in steps", budget=Budget(tokens=30))
        record = await engine.go_on(record.id)
        assert record.status == "paused" and len(script.calls) == 2  # the third call would start past 30 tokens
        assert record.total_usage().total_tokens == 30
        events = await engine.transcript(record.id)
        assert "token budget reached: 30 tokens used of 30" in events[-1].content["reason"]
        with pytest.raises(UserInputError, match="price table"):
            await engine.go_on(record.id, budget=Budget(cost_usd=1.0))
        record = await engine.go_on(record.id, budget=Budget(tokens=100))
        assert record.status == "completed" and record.result == "All done."
        assert record.total_usage().total_tokens == 60 and record.profile.budget.tokens == 100
        assert {a: u.total_tokens for a, u in record.agent_usage.items()} == {
            "copilot_control": 15, "planner": 15, "controller": 15, "researcher": 15}
        assert record.seconds_used > 0
        script.assert_exhausted()


async def test_cost_budget_by_the_price_table(settings: Any, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("scripted: {prompt: 1000.0, completion: 2000.0}\n")  # 10 * 1000 + 5 * 2000 = $0.02 a call
    settings = settings.__class__(**{**settings.__dict__, "prices_path": prices})
    script = Script(STEPS)
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.go_on((await engine.create("Explain it in steps", budget=Budget(cost_usd=0.05))).id)
        assert record.status == "paused" and len(script.calls) == 3
        assert "cost budget reached: $0.0600 of $0.0500" in (await engine.transcript(record.id))[-1].content["reason"]
        assert Prices.load(prices).cost(record.usage) == pytest.approx(0.06) == record.cost_usd
        from swarm.results import session_result

        usage = session_result(record, live=False)["usage"]
        assert usage["cost_usd"] == pytest.approx(0.06) and usage["agents"]["copilot_control"]["total_tokens"] == 15


def test_a_bad_price_table_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("gpt: {prompt: cheap}\n")
    with pytest.raises(ConfigError, match="SWARM_MCP_PRICES"):
        Prices.load(bad)


async def test_profiles_naming_missing_agents_are_refused_when_taken_not_at_start(settings: Any) -> None:
    from swarm.manifest import load_agents

    agents = {k: v for k, v in load_agents().items() if k not in ("executor",)}
    agents["engineer"] = agents["engineer"].model_copy(update={"handoffs": ["controller"]})
    async with Engine(settings, agents=agents, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine:
        record = await engine.create("fine", profile="default")
        assert record.profile is not None and record.profile.name == "default"
        with pytest.raises(UserInputError, match="names agents this server does not have: \\['executor'\\]"):
            await engine.create("quick", profile="quick")
        with pytest.raises(UserInputError, match="unknown profile 'nope'"):
            await engine.create("x", profile="nope")
