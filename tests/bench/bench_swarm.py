"""Per-turn overhead of the swarm engine vs a raw autogen-agentchat Swarm, same run, same model.

Both run the same agents with the same instant scripted model (hand-offs a -> b -> a ...). The
engine additionally routes, journals every model call before its result is used, and commits each
round (its events and the session row: the checkpoint a resume replays from) to SQLite. Sessions
run in the caller's task here; bench_durable.py measures what running them as DBOS workflows adds.
The two alternate (which goes first swaps every repeat), and each timed run starts from a collected
heap: the garbage an earlier run left behind (a whole team) is not collected on the next run's clock.
Prints ms/turn for both and the ratio of their medians (target <= 1.3x, wall time), and the same
ratio in CPU time (the process's, all threads: steadier than wall time on a busy machine).

    python tests/bench/bench_swarm.py [--turns 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from autogen_agentchat.agents import AssistantAgent  # noqa: E402
from autogen_agentchat.teams import Swarm  # noqa: E402

from swarm.config import Settings  # noqa: E402
from swarm.engine import Engine  # noqa: E402
from swarm.manifest import AgentManifest  # noqa: E402
from swarm.models.scripted import Script, ScriptedModelClient  # noqa: E402
from swarm.tools import ToolRegistry  # noqa: E402
from tests.fakes import ScriptedModels  # noqa: E402

AGENTS = {
    "copilot_control": AgentManifest(name="copilot_control", description="router", system_message="Route.", handoffs=["agent_a"]),
    "agent_a": AgentManifest(name="agent_a", description="a", system_message="You are a.", handoffs=["agent_b"]),
    "agent_b": AgentManifest(name="agent_b", description="b", system_message="You are b.", handoffs=["agent_a"]),
}


def script_for(turns: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [{"handoff": "agent_a"}]
    for i in range(turns - 2):
        entries.append({"handoff": "agent_b" if i % 2 == 0 else "agent_a"})
    entries.append({"text": "done"})
    return entries


class Clock:
    """Wall and CPU time (the process's, all threads) from its start."""

    def __init__(self) -> None:
        gc.collect()  # the garbage of earlier runs is collected now, not on this run's clock
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def per_turn(self, turns: int) -> tuple[float, float]:
        return (time.perf_counter() - self.wall) / turns, (time.process_time() - self.cpu) / turns


async def raw_swarm(turns: int) -> tuple[float, float]:
    """Seconds per turn, wall and CPU."""
    script = Script(script_for(turns))
    agents = [AssistantAgent(name, model_client=ScriptedModelClient(script, name), system_message=m.system_message,
                             description=m.description, handoffs=list(m.handoffs)) for name, m in AGENTS.items()]
    team = Swarm(agents, max_turns=turns)
    clock = Clock()
    result = await team.run(task="go")
    elapsed = clock.per_turn(turns)
    assert result.messages[-1].to_text() == "done", result.messages[-1]
    return elapsed


async def engine_swarm(turns: int, home: Path) -> tuple[float, float]:
    """Seconds per turn, wall and CPU."""
    script = Script(script_for(turns))
    settings = Settings.from_env({"SWARM_MCP_HOME": str(home), "SWARM_MCP_DURABLE": "0"})
    async with Engine(settings, models=ScriptedModels(script), agents=AGENTS, tools=ToolRegistry()) as engine:
        record = await engine.create("go", max_rounds=turns + 1)
        clock = Clock()
        record = await engine.run(record.id)
        elapsed = clock.per_turn(turns)
    assert record.status == "completed" and record.total_rounds == turns, (record.status, record.total_rounds, record.error)
    return elapsed


async def measure(turns: int, repeats: int) -> dict[str, float]:
    raw, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        await raw_swarm(10)  # warm imports and caches for both
        await engine_swarm(10, Path(tmp) / "warm")
        for i in range(repeats):
            if i % 2 == 0:
                raw.append(await raw_swarm(turns))
                ours.append(await engine_swarm(turns, Path(tmp) / f"run{i}"))
            else:
                ours.append(await engine_swarm(turns, Path(tmp) / f"run{i}"))
                raw.append(await raw_swarm(turns))
    r, o = statistics.median(w for w, _ in raw), statistics.median(w for w, _ in ours)
    r_cpu, o_cpu = statistics.median(c for _, c in raw), statistics.median(c for _, c in ours)
    return {"raw_ms_per_turn": r * 1000, "engine_ms_per_turn": o * 1000, "ratio": o / r,
            "raw_cpu_ms_per_turn": r_cpu * 1000, "engine_cpu_ms_per_turn": o_cpu * 1000, "cpu_ratio": o_cpu / r_cpu}


def report(turns: int = 200, repeats: int = 5) -> dict[str, float]:
    result = asyncio.run(measure(turns, repeats))
    print(f"swarm per-turn overhead ({turns} turns, median of {repeats}): raw autogen Swarm {result['raw_ms_per_turn']:.2f} ms/turn, "
          f"swarm-mcp engine (journal + checkpoint per round, SQLite WAL) {result['engine_ms_per_turn']:.2f} ms/turn, "
          f"ratio {result['ratio']:.2f}x (target <= 1.3x); CPU {result['raw_cpu_ms_per_turn']:.2f} vs "
          f"{result['engine_cpu_ms_per_turn']:.2f} ms/turn, ratio {result['cpu_ratio']:.2f}x")
    return result


def test_bench_swarm_overhead() -> None:
    result = report(turns=60, repeats=1)
    assert result["ratio"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    report(args.turns, args.repeats)
