"""The `swarm-mcp` CLI as real subprocesses on one database: pause, continue, kill -9, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "server.cli"]
REPO = Path(__file__).resolve().parents[2]


def env_for(tmp_path: Path, script: list[dict] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    env.update(SWARM_MCP_HOME=str(tmp_path / "home"), SWARM_MCP_RETRY_BASE_DELAY="0", PYTHONPATH=str(REPO))
    if script is not None:
        path = tmp_path / "script.json"
        path.write_text(json.dumps(script))
        env.update(SWARM_MCP_MODEL="scripted", SWARM_MCP_SCRIPT=str(path))
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def field(out: str, name: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(name + ": "))


def log_calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "script.json.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_pause_then_continue_in_a_new_process_repeats_no_model_call(tmp_path: Path) -> None:
    script = [
        {"agent": "copilot_control", "handoff": "planner"},
        {"agent": "planner", "handoff": "controller"},
        {"agent": "controller", "handoff": "researcher"},
        {"agent": "researcher", "text": "All three steps are done."},
    ]
    env = env_for(tmp_path, script)
    first = cli(env, "run", "Plan and write a report in three steps", "--max-rounds", "2")
    assert first.returncode == 0, first.stderr
    assert field(first.stdout, "status") == "paused"
    session = field(first.stdout, "session")
    assert [c["index"] for c in log_calls(tmp_path)] == [0, 1]

    second = cli(env, "continue", session)
    assert second.returncode == 0, second.stderr
    assert field(second.stdout, "status") == "completed"
    assert "All three steps are done." in second.stdout
    assert [c["index"] for c in log_calls(tmp_path)] == [0, 1, 2, 3]  # each scripted call made exactly once

    shown = cli(env, "sessions", "show", session, "--json")
    events = json.loads(shown.stdout)["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["content"]["target"] for e in events if e["type"] == "handoff"] == ["planner", "controller", "researcher"]
    listed = cli(env, "sessions")
    assert session in listed.stdout and "completed" in listed.stdout


def test_kill_9_during_a_round_then_continue(tmp_path: Path) -> None:
    script = [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "tool": "execute_code", "args": {"code": "print(6 * 7)", "language": "python"}},
        {"agent": "engineer", "hang": True},
        {"agent": "engineer", "expect": "42", "text": "The answer is 42."},
    ]
    env = env_for(tmp_path, script)
    proc = subprocess.Popen([*CLI, "run", "Compute six times seven with Python"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(log_calls(tmp_path)) < 3:  # the third call (mid-round, after the tool ran) is in flight
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the session never reached the hanging model call"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _, err = proc.communicate()
    session = next(w for w in err.split() if w.startswith("s_"))

    status = cli(env, "sessions")
    assert "running" in status.stdout  # interrupted mid-round: still marked running, resumable
    resumed = cli(env, "continue", session)
    assert resumed.returncode == 0, resumed.stderr
    assert field(resumed.stdout, "status") == "completed"
    assert "The answer is 42." in resumed.stdout
    # the tool-call model call completed before the kill and was replayed from the journal, not repeated
    assert [c["index"] for c in log_calls(tmp_path)] == [0, 1, 2, 3]


def test_bad_manifest_names_file_and_field(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "broken.yaml").write_text("name: broken\ndescription: x\nsystem_message: hi\nmodel_tier: huge\n")
    env = env_for(tmp_path)
    env["SWARM_MCP_AGENT_DIRS"] = str(agents)
    result = cli(env, "run", "anything")
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr and "'model_tier'" in result.stderr and "fast" in result.stderr


def test_unknown_session_id_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(env_for(tmp_path), "continue", "s_doesnotexist")
    assert result.returncode == 2
    assert "unknown session id 's_doesnotexist'" in result.stderr
    assert result.stdout == ""


def test_route_prints_a_json_decision(tmp_path: Path) -> None:
    result = cli(env_for(tmp_path), "route", "Brainstorm five names for a bakery")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["route"] == "idea_generation" and decision["agent"] is None
    assert 0.0 <= decision["confidence"] <= 1.0


def test_invalid_model_option_is_rejected(tmp_path: Path) -> None:
    result = cli(env_for(tmp_path), "run", "anything", "--model", "gpt4")
    assert result.returncode == 2
    assert "openai:<model>" in result.stderr
