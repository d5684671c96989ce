"""kill -9 a durable `swarm-mcp serve --transport http` five times mid-session: the session resumes by itself.

One session on SQLite (the default store and DBOS system database under a tmp SWARM_MCP_HOME), with a fixed
executor id: every restarted server recovers the session's pending workflow at launch (DBOS.launch) and goes on
with it, with no continue call from any client. The session completes with a gapless transcript, the expected
result, and no model call made twice (the scripted model's log holds each script index exactly once).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.e2e.http_harness import connect_http, http_server, logged, script_calls
from tests.e2e.mcp_harness import data

pytestmark = pytest.mark.anyio

KILLS = 5
SEED = 9
"""Its five kill points (116, 93, 35, 217 and 2 ms after a model call) spread over the 0-250 ms range."""
FINAL = "Fifteen hand-offs later, the report is done."
TASK = "Research the topic, have the controller check each finding, and write a report"


def relay_script() -> list[dict[str, Any]]:
    """copilot_control -> researcher, then researcher <-> controller hand-offs (each allowed by their manifests'
    ``handoffs``), then the researcher's final text: 16 model calls, each with a model latency."""
    script: list[dict[str, Any]] = [{"agent": "copilot_control", "handoff": "researcher", "delay": 0.25}]
    for i in range(14):
        agent, target = ("researcher", "controller") if i % 2 == 0 else ("controller", "researcher")
        script.append({"agent": agent, "handoff": target, "delay": 0.2 + 0.1 * (i % 3) / 2})
    script.append({"agent": "researcher", "text": FINAL, "delay": 0.25})
    return script


async def wait_for_calls(tmp_path: Path, at_least: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """Poll the script log (written, fsync'd, by the server process) until it has ``at_least`` calls."""
    deadline = time.monotonic() + timeout
    while (count := script_calls(tmp_path)) < at_least:
        assert proc.poll() is None, f"the server exited (code {proc.returncode}) before model call #{at_least}"
        assert time.monotonic() < deadline, f"no model call #{at_least} within {timeout}s (log has {count}): the server did not resume the session"
        await anyio.sleep(0.02)  # a file written by another process: no event to wait on
    return count


async def test_a_session_survives_five_kill_9s_and_completes_by_itself(tmp_path: Path) -> None:
    script = relay_script()
    env = dict(SWARM_MCP_EXECUTOR_ID="solo", SWARM_MCP_DURABLE="1")
    rng = random.Random(SEED)
    points: list[tuple[int, int, float]] = []  # (kill, calls logged at the kill, extra delay in ms)
    print(f"seed {SEED}")
    sid = ""
    started = time.monotonic()
    with anyio.fail_after(150):
        for kill in range(1, KILLS + 1):
            before = script_calls(tmp_path)
            launched = time.monotonic()
            async with http_server(tmp_path, script, **env) as server:
                ready = time.monotonic() - launched
                if kill == 1:
                    async with connect_http(server, "http-2025") as client:
                        first = data(await client.call_tool("copilot", {"task": TASK, "max_rounds": 40, "wait_seconds": 0}))
                    assert first["status"] == "running", first
                    sid = first["session_id"]
                # no client from here on: the run goes on detached (kill 1) or was recovered at launch (kills 2-5)
                await wait_for_calls(tmp_path, before + 1, server.proc)
                resumed = time.monotonic() - launched
                extra = rng.uniform(0, 0.25)
                await anyio.sleep(extra)
                count = script_calls(tmp_path)
                assert count < len(script), f"the session finished before kill {kill} ({count} calls); lengthen the script"
                server.proc.send_signal(signal.SIGKILL)
                await anyio.to_thread.run_sync(server.proc.wait, 10)
                assert server.proc.returncode == -signal.SIGKILL, server.proc.returncode
                points.append((kill, script_calls(tmp_path), round(extra * 1000, 1)))
                print(f"kill {kill}: {extra * 1000:.1f} ms after call #{before + 1}, {points[-1][1]} calls logged "
                      f"(server ready in {ready:.1f}s, its first model call at {resumed:.1f}s)")
            (tmp_path / f"server{kill}.stderr").write_text(server.log())

        async with http_server(tmp_path, script, **env) as server, connect_http(server, "http-2026") as client:
            deadline = time.monotonic() + 60
            while True:  # nothing continues the session: the server recovered its workflow at launch
                status = data(await client.call_tool("session_status", {"session_id": sid}))
                if status["status"] != "running":
                    break
                assert time.monotonic() < deadline, f"the session did not complete within 60s of the last restart: {status}"
                await anyio.sleep(0.1)
            transcript = json.loads((await client.read_resource(f"swarm://sessions/{sid}/transcript")).contents[0].text)
        (tmp_path / "server-final.stderr").write_text(server.log())
    print(f"kill points (kill, calls logged, extra ms): {points}; {time.monotonic() - started:.1f}s")

    assert status["status"] == "completed", (status, server.log())
    assert status["result"] == FINAL and status["total_rounds"] == len(script)
    indices = [c["index"] for c in logged(tmp_path)]
    assert indices == list(range(len(script))), f"model calls repeated or missing: {indices}"
    assert [c["agent"] for c in logged(tmp_path)] == [e["agent"] for e in script]

    events = transcript["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), [e["seq"] for e in events]
    handoffs = [e["content"]["target"] for e in events if e["type"] == "handoff"]
    assert handoffs == [e["handoff"] for e in script if "handoff" in e]
    assert transcript["session"]["status"] == "completed" and transcript["session"]["result"] == FINAL
    rounds = [e["round"] for e in events]
    assert rounds == sorted(rounds) and set(rounds) == set(range(len(script) + 1)), rounds  # no round recorded twice or lost
    assert [e["content"]["status"] for e in events if e["type"] == "status"] == ["running", "completed"]  # one leg, never paused
    assert [e["content"] for e in events if e["type"] == "message" and e["agent"] == "researcher"] == [{"text": FINAL}]
    assert events[-1]["type"] == "status" and events[-1]["content"]["status"] == "completed", events[-1]
