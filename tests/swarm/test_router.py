"""The offline router: clear cases per route, invariants, and accuracy on labelled task files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm.manifest import load_agents
from swarm.router import OfflineRouter, RouteDecision

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "routing" / "dev.jsonl"
HOLDOUT = Path(__file__).resolve().parent / "router_holdout.jsonl"


@pytest.fixture(scope="module")
def router() -> OfflineRouter:
    return OfflineRouter(load_agents())


def _accuracy(router: OfflineRouter, path: Path) -> tuple[float, list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    wrong = []
    for row in rows:
        d = router.decide(row["task"])
        if (d.route, d.agent) != (row["route"], row.get("agent")):
            wrong.append(f"{row['task']!r}: want {(row['route'], row.get('agent'))}, got {(d.route, d.agent)}")
    return (len(rows) - len(wrong)) / len(rows), wrong


@pytest.mark.parametrize(
    ("task", "route", "agent"),
    [
        ("Write a Python script that prints the 50 largest files under /tmp.", "one_shot", "engineer"),
        ("Parse server.log and count the requests per hour.", "one_shot", "engineer"),
        ("What is 3**40 modulo 1,000,007? Compute it.", "one_shot", "engineer"),
        ("Explain how a hash map handles collisions.", "one_shot", "researcher"),
        ("Write a thank-you letter to a mentor who is retiring.", "one_shot", "researcher"),
        ("Why did the Roman Republic fall?", "one_shot", "researcher"),
        ("Fetch the exchange rates, store them in a database, chart the weekly trend and then write a summary.",
         "planning", None),
        ("Build a chat app with user accounts, message history, push notifications and integration tests.",
         "planning", None),
        ("Brainstorm ideas for a school science fair project.", "idea_generation", None),
        ("Suggest a few alternatives to our current logging stack and critique each.", "idea_generation", None),
        ("Come up with names for a bakery.", "idea_generation", None),
        ("Do it again.", "clarify", None),
        ("Can you handle this?", "clarify", None),
        ("Help.", "clarify", None),
    ],
)
def test_clear_cases(router: OfflineRouter, task: str, route: str, agent: str | None) -> None:
    d = router.decide(task)
    assert (d.route, d.agent) == (route, agent), d.reason


@pytest.mark.parametrize("task", ["", "   ", "\n\t"])
def test_empty_task_is_clarify(router: OfflineRouter, task: str) -> None:
    d = router.decide(task)
    assert (d.route, d.agent) == ("clarify", None)


@pytest.mark.parametrize(
    "task",
    ["Fix it.", "Plot sin(x) and save it as sin.png.", "Compare Rust and Go.", "Brainstorm slogans.",
     "Download, clean, model and report on the census data.", "x" * 10_000],
)
def test_decision_invariants(router: OfflineRouter, task: str) -> None:
    d = router.decide(task)
    assert isinstance(d, RouteDecision)
    assert 0.0 <= d.confidence <= 1.0
    assert (d.agent is not None) == (d.route == "one_shot")
    assert d.reason and "\n" not in d.reason
    assert d.as_dict() == {"route": d.route, "agent": d.agent, "confidence": d.confidence, "reason": d.reason}
    assert router.decide(task) == d  # deterministic
    assert OfflineRouter(load_agents()).decide(task) == d  # independent of the instance


def test_router_without_routing_examples_still_decides() -> None:
    agents = {name: m.model_copy(update={"routing": None}) for name, m in load_agents().items()}
    d = OfflineRouter(agents).decide("Write a function that sums a list of numbers.")
    assert (d.route, d.agent) == ("one_shot", "engineer")


def test_accuracy_on_dev(router: OfflineRouter) -> None:
    if not DEV.is_file():
        pytest.skip(f"shared dev set not found at {DEV}")
    accuracy, wrong = _accuracy(router, DEV)
    assert accuracy >= 0.9, "\n".join(wrong)


def test_accuracy_on_holdout(router: OfflineRouter) -> None:
    accuracy, wrong = _accuracy(router, HOLDOUT)
    assert accuracy >= 0.8, "\n".join(wrong)


@pytest.mark.parametrize(
    "task",
    ["", "Write a Python script that prints the 50 largest files under /tmp.", "Explain how a hash map handles collisions.",
     "Brainstorm ideas for a school science fair project.", "Do it again.",
     "Fetch the exchange rates, store them in a database, chart the weekly trend and then write a summary."],
)
def test_candidates_start_with_the_decision_and_are_deterministic(router: OfflineRouter, task: str) -> None:
    found = router.candidates(task, 4)
    assert found[0] == router.decide(task).target
    assert len(found) == len(set(found)) == 4 and set(found) <= set(router.targets)
    assert router.candidates(task, 4) == found == OfflineRouter(load_agents()).candidates(task, 4)
    assert router.candidates(task, 2) == found[:2] and router.candidates(task, 0) == []


def test_every_routable_agent_and_route_agent_is_a_target(router: OfflineRouter) -> None:
    assert set(router.targets) == {"engineer", "researcher", "planner", "idea_maker", "assistant"}
    assert router.one_shot_agents == ("engineer", "researcher")
