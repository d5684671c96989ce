"""An open roster: agents dropped into SWARM_MCP_AGENT_DIRS are routed to, reachable by hand-off, offered to a capable
router model a few at a time, and run by the copilot phase.

Routing accuracy is checked on the shared roster set (../shared/routing/roster: three user agents and their tasks) and
on held-out user agents of other kinds with their own tasks (tests/swarm/data/roster_holdout), while the built-in
task sets keep their accuracy with those agents loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pytest
from autogen_core.models import LLMMessage

from phases import phase_tool_registry, run_phase
from server.cli import main as cli_main
from swarm.engine import Engine
from swarm.errors import ManifestError
from swarm.manifest import AgentManifest, load_agents
from swarm.models.function import FunctionModelClient
from swarm.models.scripted import Script
from swarm.router import OfflineRouter
from swarm.team import ROUTER_AGENT, CopilotControl, RoundControl, build_team, handoff_targets
from tests.fakes import FunctionModels, ScriptedModels, handoff

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "routing"
ROSTER = SHARED / "roster"
HOLDOUT = Path(__file__).resolve().parent / "data" / "roster_holdout"
BUILTIN_SETS = [SHARED / "dev.jsonl", Path(__file__).resolve().parent / "router_holdout.jsonl"]
REGEX_TASK = "I need a regular expression that matches IPv4 addresses like 192.168.0.1."
TOKEN_CHARS = 4


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def accuracy(router: OfflineRouter, path: Path) -> tuple[float, list[str]]:
    """Share of tasks routed to their (route, agent); a line without a route is a one-shot task."""
    wrong = []
    for row in (found := rows(path)):
        d = router.decide(row["task"])
        want = (row.get("route", "one_shot"), row.get("agent"))
        if (d.route, d.agent) != want:
            wrong.append(f"{row['task']!r}: want {want}, got {(d.route, d.agent)}")
    return (len(found) - len(wrong)) / len(found), wrong


def needs_shared_roster() -> None:
    if not (ROSTER / "dev.jsonl").is_file():
        pytest.skip(f"shared roster set not found at {ROSTER}")


# ---- routing -------------------------------------------------------------------------------------------------------


def test_swarm_mcp_route_picks_the_roster_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`swarm-mcp route TASK` with the shared roster's agents dropped in picks the agent named on >= 90% of its tasks."""
    needs_shared_roster()
    monkeypatch.setenv("SWARM_MCP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWARM_MCP_AGENT_DIRS", str(ROSTER / "agents"))
    tasks = rows(ROSTER / "dev.jsonl")
    wrong = []
    for row in tasks:
        assert cli_main(["route", row["task"]]) == 0
        decided = json.loads(capsys.readouterr().out)
        if decided["agent"] != row["agent"]:
            wrong.append(f"{row['task']!r}: want {row['agent']}, got {decided}")
    assert (len(tasks) - len(wrong)) / len(tasks) >= 0.9, "\n".join(wrong)


def test_held_out_user_agents_get_their_tasks() -> None:
    """User agents of other kinds (SQL, units, translation, cron) with tasks written apart from their examples."""
    router = OfflineRouter(load_agents([HOLDOUT / "agents"]))
    score, wrong = accuracy(router, HOLDOUT / "tasks.jsonl")
    assert score >= 0.9, "\n".join(wrong)


@pytest.mark.parametrize("dirs", [[HOLDOUT / "agents"], [ROSTER / "agents", HOLDOUT / "agents"]], ids=["holdout", "roster+holdout"])
def test_built_in_tasks_keep_their_routes_with_user_agents_loaded(dirs: list[Path]) -> None:
    """The built-in task sets (dev >= 0.9, holdout >= 0.8, as with the built-in agents alone) with user agents loaded."""
    if not all(d.is_dir() for d in dirs) or not BUILTIN_SETS[0].is_file():
        pytest.skip("shared routing sets not found")
    router = OfflineRouter(load_agents(dirs))
    for path, floor in zip(BUILTIN_SETS, (0.9, 0.8)):
        score, wrong = accuracy(router, path)
        assert score >= floor, f"{path.name}:\n" + "\n".join(wrong)


def test_a_dropped_in_agent_is_a_candidate_and_a_target() -> None:
    needs_shared_roster()
    router = OfflineRouter(load_agents([ROSTER / "agents"]))
    assert {"copy_editor", "git_helper", "regex_helper"} <= set(router.targets) and "regex_helper" in router.one_shot_agents
    assert {"engineer", "researcher", "planner", "idea_maker", "assistant"} <= set(router.targets)
    decision = router.decide(REGEX_TASK)
    assert (decision.route, decision.agent, decision.target) == ("one_shot", "regex_helper", "regex_helper")
    assert router.candidates(REGEX_TASK, 4)[0] == "regex_helper"


# ---- hand-offs from the roster -------------------------------------------------------------------------------------


def team_of(agents: dict[str, AgentManifest], capable: bool = True, allowed: Any = None) -> dict[str, Any]:
    router = OfflineRouter(agents)
    team = build_team(agents, client_for=lambda m: FunctionModelClient(lambda *a: "ok", m.name), tools_for=lambda m: [],
                      control=RoundControl(agents), router=router, router_capable=capable, allowed=allowed)
    return {agent.name: agent for agent in team._participants}


def test_hand_offs_come_from_the_roster_at_build_time() -> None:
    needs_shared_roster()
    agents = load_agents([ROSTER / "agents"])
    members = team_of(agents)
    router_targets = [h.target for h in members[ROUTER_AGENT]._handoffs.values()]
    assert set(router_targets) == set(OfflineRouter(agents).targets)
    assert {"copy_editor", "git_helper", "regex_helper", "planner", "idea_maker", "assistant"} <= set(router_targets)
    controller = [h.target for h in members["controller"]._handoffs.values()]
    assert {"engineer", "researcher", "regex_helper", "summarizer"} <= set(controller) and "planner" not in controller
    assert {"regex_helper", "git_helper", "copy_editor"} <= set(members)  # reachable, so members
    built_in = team_of(load_agents())  # no user agents: the built-in route targets only
    assert {h.target for h in built_in[ROUTER_AGENT]._handoffs.values()} == {"engineer", "researcher", "planner", "idea_maker", "assistant"}


def test_a_team_built_again_makes_no_new_hand_off_tool_and_no_new_schema() -> None:
    """Every continue builds the team again: its hand-off tools (and their argument models and schemas) are the ones
    made before, and a tool's schema is autogen's, a copy the caller may change."""
    from autogen_agentchat.base import Handoff

    from swarm.sandbox import execute_code_tool
    from swarm.tool_cache import schema_of as tool_schema

    agents = load_agents()
    first, again = team_of(agents), team_of(agents)
    for name, agent in first.items():
        assert [id(t) for t in agent._handoff_tools] == [id(t) for t in again[name]._handoff_tools], name
        for tool in agent._handoff_tools:
            assert tool.schema == Handoff(target=tool.name.removeprefix("transfer_to_"), name=tool.name, description=tool.description).handoff_tool.schema
    tool = first["controller"]._handoff_tools[0]
    tool.schema["description"] = "changed by a caller"
    assert tool.schema["description"] != "changed by a caller"
    code = execute_code_tool(Path("work"))
    assert tool_schema(code) == code.schema and tool_schema(code) is not tool_schema(code)


def test_agents_outside_allowed_are_neither_members_nor_targets() -> None:
    needs_shared_roster()
    agents = load_agents([ROSTER / "agents"])
    allowed = {"engineer", "researcher", "assistant", "regex_helper"}
    members = team_of(agents, allowed=allowed)
    assert set(members) == {ROUTER_AGENT, *allowed}  # copilot_control is always allowed
    for agent in members.values():
        assert {h.target for h in agent._handoffs.values()} <= {*allowed, ROUTER_AGENT, "user"}
    targets = handoff_targets(agents, OfflineRouter(agents), allowed)
    assert "planner" not in targets[ROUTER_AGENT] and "git_helper" not in targets["controller"]


def test_roster_groups_are_the_only_names_that_need_no_agent(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text("name: odd\ndescription: d\nsystem_message: s\nhandoffs: ['@everyone']\n")
    with pytest.raises(ManifestError, match="@everyone"):
        load_agents([tmp_path])


# ---- a capable router model sees a few candidates, whatever the roster's size ---------------------------------------

TOPICS = ("astronomy chess botany sailing pottery origami falconry beekeeping calligraphy knitting archery fencing "
          "skiing surfing baking brewing cycling climbing rowing juggling magic birding fishing gardening hiking "
          "kayaking painting photography quilting running sculpture singing tennis woodwork yoga zoology geology "
          "meteorology numismatics philately cartography heraldry").split()


def synthetic_agents(directory: Path, count: int) -> Path:
    """``count`` user agents of made-up fields, each with a description and six routing examples."""
    directory.mkdir(parents=True, exist_ok=True)
    for topic in TOPICS[:count]:
        examples = [f"How do I get started with {topic}?", f"What equipment does {topic} need?",
                    f"Explain the basic rules of {topic}.", f"Plan a weekend of {topic} for a beginner.",
                    f"What are common mistakes in {topic}?", f"Recommend a {topic} book for an expert."]
        (directory / f"{topic}_guide.yaml").write_text(json.dumps({
            "name": f"{topic}_guide", "description": f"Answers questions about {topic}: techniques, equipment, history and rules.",
            "system_message": f"You are the {topic} guide.", "tools": [], "handoffs": [ROUTER_AGENT],
            "routing": {"route": "one_shot", "examples": examples}}))
    return directory


class PromptLog:
    """What copilot_control's model is sent per call: characters of its messages and tool schemas, and the tool names."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str], str]] = []

    def models(self, target: str) -> FunctionModels:
        log = self

        def reply(messages: Sequence[LLMMessage], agent: str, tools: list[str]) -> Any:
            if agent == ROUTER_AGENT:
                return handoff(target) if f"transfer_to_{target}" in tools else "no candidate fits"
            return f"{agent} did it."

        class Captured(FunctionModelClient):
            async def create(self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = (), **kwargs: Any) -> Any:
                if self.agent == ROUTER_AGENT:
                    schemas = [t if isinstance(t, dict) else t.schema for t in tools]
                    chars = sum(len(m.content if isinstance(m.content, str) else json.dumps(m.content, default=str)) for m in messages)
                    system = next((m.content for m in messages if type(m).__name__ == "SystemMessage"), "")
                    log.calls.append((chars + len(json.dumps(schemas)), [s["name"] for s in schemas], str(system)))
                return await super().create(messages, tools=tools, **kwargs)

        class Models(FunctionModels):
            def client_for(self, agent: str, tier: str) -> FunctionModelClient:
                return Captured(self.function, agent, self.usage)

        return Models(reply)


async def routed_prompt(settings: Any, agents: dict[str, AgentManifest], task: str, target: str) -> tuple[int, list[str], str]:
    log = PromptLog()
    async with Engine(settings, models=log.models(target), tools=phase_tool_registry(), agents=agents) as engine:
        record = await engine.run((await engine.create(task)).id)
    assert record.status == "completed" and record.result == f"{target} did it.", (record.status, record.result)
    [call] = log.calls
    return call


@pytest.mark.anyio
async def test_router_prompt_does_not_grow_with_the_roster(settings: Any, tmp_path: Path) -> None:
    built_in = load_agents()
    extra = synthetic_agents(tmp_path / "agents", 49 - len(built_in))
    many = load_agents([extra])
    assert len(many) == 49
    tasks = [("Write a Python function that returns the n-th Fibonacci number.", "engineer"),
             ("What equipment does falconry need for a first season?", "falconry_guide")]
    small_chars, small_tools, _ = await routed_prompt(settings, built_in, tasks[0][0], tasks[0][1])
    for task, target in tasks:
        chars, tools, system = await routed_prompt(settings, many, task, target)
        handoffs = [t for t in tools if t.startswith("transfer_to_")]
        assert len(handoffs) <= CopilotControl.CANDIDATES and f"transfer_to_{target}" in handoffs
        assert chars // TOKEN_CHARS <= small_chars // TOKEN_CHARS, (task, chars, small_chars)
        assert not any(f"{topic}_guide" in system for topic in TOPICS)  # the system message does not list the roster
    again = await routed_prompt(settings, many, tasks[1][0], tasks[1][1])
    assert again[1] == tools  # the offered tools are a function of the session's inputs (calls are journaled by them)


# ---- sessions and the copilot phase with a dropped-in agent ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("capable", [True, False], ids=["model-routes", "offline-router"])
async def test_a_session_hands_off_to_a_dropped_in_agent(settings: Any, capable: bool) -> None:
    needs_shared_roster()
    answer = r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$ (Python re)"
    entries = [{"agent": ROUTER_AGENT, "handoff": "regex_helper"}] if capable else []
    script = Script([*entries, {"agent": "regex_helper", "text": answer, "expect": "IPv4"}])
    agents = load_agents([ROSTER / "agents"])
    async with Engine(settings, models=ScriptedModels(script, capable=capable), tools=phase_tool_registry(), agents=agents) as engine:
        record = await engine.run((await engine.create(REGEX_TASK)).id)
        script.assert_exhausted()
        assert record.status == "completed" and record.result == answer
        assert record.meta["route"]["agent"] == "regex_helper"
        events = await engine.transcript(record.id)
        assert [(e.agent, e.content["target"]) for e in events if e.type == "handoff"] == [(ROUTER_AGENT, "regex_helper")]


@pytest.mark.anyio
async def test_the_copilot_phase_runs_a_dropped_in_agent(settings: Any) -> None:
    needs_shared_roster()
    script = Script([{"agent": "git_helper", "text": "git reset --soft HEAD~1", "expect": "undo my last commit"}])
    agents = load_agents([ROSTER / "agents"])
    async with Engine(settings, models=ScriptedModels(script), tools=phase_tool_registry(), agents=agents) as engine:
        result = await run_phase(engine, "copilot", {"task": "How do I undo my last commit but keep the changes in git?"})
        script.assert_exhausted()
        assert result.status == "completed", result
        assert result.output["route"]["route"] == "one_shot" and result.output["route"]["agent"] == "git_helper"
        assert result.output["answer"] == "git reset --soft HEAD~1"
        assert result.output["result"]["agent"] == "git_helper"
