"""Idea generation: idea_maker <-> idea_hater, n_reviews times; ranked ideas with their critiques."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phases import run_phase
from swarm.models.scripted import Script
from tests.phases.phase_helpers import scripted_engine

pytestmark = pytest.mark.anyio


def ideas(*titles: str) -> dict[str, Any]:
    return {"ideas": [{"title": t, "description": f"about {t}"} for t in titles]}


def critiques(*pairs: tuple[str, int]) -> dict[str, Any]:
    return {"critiques": [{"title": t, "critique": f"{t} is risky", "score": s} for t, s in pairs]}


async def test_maker_and_hater_loop_n_reviews_times_and_ideas_are_ranked(settings: Any) -> None:
    script = Script([
        {"agent": "idea_maker", "json": ideas("Solar", "Wind", "Tidal"), "expect": "Propose 3 ideas"},
        {"agent": "idea_hater", "json": critiques(("Solar", 6), ("Wind", 5), ("Tidal", 2)), "expect": "3. Tidal: about Tidal"},
        {"agent": "idea_maker", "json": ideas("Solar", "Wind", "Geothermal"), "expect": "Tidal (score 2): Tidal is risky"},
        {"agent": "idea_hater", "json": critiques(("Solar", 4), ("Wind", 8), ("Geothermal", 7))},
        {"agent": "idea_maker", "json": ideas("Solar", "Wind", "Geothermal", "Nuclear")},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "idea_generation", {"task": "Ways to power a remote village", "n_reviews": 2})
        script.assert_exhausted()
        assert [c["agent"] for c in script.calls] == ["idea_maker", "idea_hater"] * 2 + ["idea_maker"]
        assert result.status == "completed"
        ranked = result.output["ideas"]
        assert [(i["rank"], i["title"], i["score"]) for i in ranked] == [(1, "Wind", 8), (2, "Geothermal", 7), (3, "Solar", 4)]
        assert ranked[0]["critique"] == "Wind is risky" and ranked[0]["description"] == "about Wind"
        record = await engine.get(result.session_id)
        assert record.meta["ideas"] == ranked
        assert json.loads((Path(result.work_dir) / "ideas.json").read_text()) == ranked


async def test_no_reviews_keeps_the_makers_order(settings: Any) -> None:
    script = Script([
        {"agent": "idea_maker", "json": {"ideas": []}},
        {"agent": "idea_maker", "json": ideas("A", "B"), "expect": "no ideas"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "idea_generation", {"task": "Name the cat", "n_ideas": 2, "n_reviews": 0})
        script.assert_exhausted()
        assert [(i["title"], i["critique"]) for i in result.output["ideas"]] == [("A", None), ("B", None)]
