"""Writes tests/swarm/data/e8d9cb5.db: a store as swarm-mcp at commit e8d9cb5 wrote it (the schema before migrations).

Run it with that version's code, from a worktree of it:

    git worktree add /tmp/old-schema e8d9cb5
    cd /tmp/old-schema && PYTHONPATH=/tmp/old-schema /work/main/.venv/bin/python \
        /work/main/tests/swarm/data/make_e8d9cb5_db.py /work/main/tests/swarm/data/e8d9cb5.db

It holds two sessions: a copilot session paused at max_rounds after two rounds (two journaled model calls), and
an ``alice`` session whose hitl_planning phase run waits for approval of a plan (one journaled planner call).
The file is then made small (journal mode DELETE, 512-byte pages, VACUUM): its tables, indexes and rows are untouched.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import shutil
from pathlib import Path

import swarm
from phases import phase_tool_registry, run_phase
from swarm.config import Settings
from swarm.engine import Engine
from swarm.models.scripted import Script, ScriptedModelClient


class ScriptedModels:
    """tests/fakes.py's ScriptedModels, copied on purpose: this script runs on commit e8d9cb5's code, which has no
    tests/fakes.py (nor a tests package)."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def spec_for(self, tier: str) -> str:
        return "scripted"

    def client_for(self, agent: str, tier: str) -> ScriptedModelClient:
        return ScriptedModelClient(self.script, agent)

    def is_capable(self, tier: str) -> bool:
        return True


HOME = "/tmp/swarm-e8d9cb5-home"
"""The data directory the sessions were created in (their work dirs, kept in their records, are under it)."""
PLAN = {"steps": [{"sub_task": "write the announcement", "agent": "researcher", "bullet_points": ["deliver write the announcement"]}]}


async def main(out: Path) -> None:
    home = Path(HOME)
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings.from_env({"SWARM_MCP_HOME": str(home), "SWARM_MCP_DURABLE": "0"})
    script = Script([
        {"agent": "copilot_control", "handoff": "planner"},
        {"agent": "planner", "handoff": "controller"},
        {"agent": "planner", "json": PLAN},
    ])
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script)) as engine:
        record = await engine.create("Build it in steps", max_rounds=2)
        record = await engine.run(record.id)
        assert record.status == "paused", record.status
        result = await run_phase(engine, "hitl_planning", {"task": "Plan the launch", "n_plan_reviews": 0}, principal="alice")
        assert result.status == "waiting_input", result
    script.assert_exhausted()
    db = home / "swarm.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA page_size=512")
    conn.execute("VACUUM")
    conn.close()
    out.write_bytes(db.read_bytes())
    print(f"{out}: {out.stat().st_size} bytes, written by {Path(swarm.__file__).parent}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
