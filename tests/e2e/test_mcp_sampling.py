"""The sampling backend: the swarm's model calls answered by the calling client's own model."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest

from server.app import build_server
from swarm.config import Settings
from tests.e2e.mcp_harness import Recorder, connect, data, era  # noqa: F401

pytestmark = pytest.mark.anyio

TO_RESEARCHER = json.dumps({"tool_calls": [{"name": "transfer_to_researcher", "arguments": {}}]})
HAIKU = "Red leaves drift and fall / the maple lets go softly / autumn breathes out slow"


def sampling_server(tmp_path: Any, model: str) -> Any:
    return build_server(Settings.from_env({"SWARM_MCP_HOME": str(tmp_path / "home"), "SWARM_MCP_MODEL": model}))


async def test_sampling_backend_runs_the_swarm_on_the_clients_model(tmp_path: Any, era: str) -> None:
    rec = Recorder()
    rec.sample_answers += [TO_RESEARCHER, HAIKU]
    async with connect(sampling_server(tmp_path, "sampling"), era, rec, sample=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}, progress_callback=rec.on_progress))
    assert result["status"] == "completed" and result["result"] == HAIKU
    assert "sampling" in result["usage"]["models"] and result["usage"]["total"]["total_tokens"] > 0
    assert "(model: sampling)" in rec.progress[0][2]
    router, researcher = rec.samplings
    assert "transfer_to_researcher" in router.system_prompt and '"tool_calls"' in router.system_prompt  # tools described in text
    assert router.tools is None and router.metadata == {"agent": "copilot_control"}
    assert any("autumn leaves" in m.content.text for m in router.messages if isinstance(m.content, types.TextContent))
    assert researcher.metadata == {"agent": "researcher"}
    assert not rec.sample_answers


async def test_sampling_with_native_tool_use_when_the_client_supports_it(tmp_path: Any, era: str) -> None:
    rec = Recorder()
    rec.sample_answers += [
        types.CreateMessageResultWithTools(role="assistant", model="client-model", stop_reason="toolUse",
                                           content=[types.ToolUseContent(type="tool_use", id="tu_1", name="transfer_to_researcher", input={})]),
        HAIKU,
    ]
    async with connect(sampling_server(tmp_path, "sampling"), era, rec, sample=True, sampling_tools=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}))
    assert result["status"] == "completed" and result["result"] == HAIKU
    router = rec.samplings[0]
    assert router.tools and "transfer_to_researcher" in {t.name for t in router.tools}
    assert '"tool_calls"' not in (router.system_prompt or "")


async def test_auto_picks_sampling_when_no_key_is_set_and_the_client_samples(tmp_path: Any) -> None:
    rec = Recorder()
    rec.sample_answers += [TO_RESEARCHER, HAIKU]
    async with connect(sampling_server(tmp_path, "auto"), "legacy", rec, sample=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}, progress_callback=rec.on_progress))
    assert result["status"] == "completed" and "(model: sampling)" in rec.progress[0][2]


async def test_a_refused_sampling_request_fails_the_session_clearly(tmp_path: Any) -> None:
    """2025-11-25: the refusal reaches the server, which fails the session with the reason (continue retries)."""
    rec = Recorder()
    rec.sample_answers.append(types.ErrorData(code=-1, message="User rejected sampling request"))
    async with connect(sampling_server(tmp_path, "sampling"), "legacy", rec, sample=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}))
    assert result["status"] == "failed"
    assert "rejected" in result["error"] and "continue_copilot" in result["next"]


async def test_a_refused_relayed_request_is_asked_again_by_continue(tmp_path: Any) -> None:
    """2026-07-28: the client's driver aborts the call on a refusal; the session keeps waiting for that model call,
    and continue_copilot hands the same request to the client again."""
    from mcp.shared.exceptions import MCPError

    rec = Recorder()
    rec.sample_answers += [types.ErrorData(code=-1, message="User rejected sampling request"), TO_RESEARCHER, HAIKU]
    async with connect(sampling_server(tmp_path, "sampling"), "auto", rec, sample=True) as client:
        with pytest.raises(MCPError, match="rejected"):
            await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}, progress_callback=rec.on_progress)
        sid = rec.progress[0][2].split()[1]
        status = data(await client.call_tool("session_status", {"session_id": sid}))
        assert status["status"] == "running" and status["live"] is True
        result = data(await client.call_tool("continue_copilot", {"session_id": sid}))
    assert result["status"] == "completed" and result["result"] == HAIKU
    assert rec.samplings[0] == rec.samplings[1]  # the same model call, asked again


async def test_sampling_configured_but_the_client_offers_none_is_a_clear_error(tmp_path: Any) -> None:
    async with connect(sampling_server(tmp_path, "sampling"), "legacy") as client:
        result = await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"})
    assert result.is_error and "does not offer sampling" in result.content[0].text


async def test_many_relayed_model_calls_span_several_calls(tmp_path: Any) -> None:
    """2026-07-28: each model call is one input-required round; a call hands over at most 8 and returns running
    (the SDK client gives up after 10 rounds), and continue_copilot serves the rest."""

    def handoff(target: str) -> str:
        return json.dumps({"tool_calls": [{"name": f"transfer_to_{target}", "arguments": {}}]})

    rec = Recorder()
    rec.sample_answers += [handoff("idea_maker")] + [handoff("idea_hater"), handoff("idea_maker")] * 6 + ["Ten ideas, all ranked."]
    async with connect(sampling_server(tmp_path, "sampling"), "auto", rec, sample=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Brainstorm names for a bakery", "max_rounds": 30}))
        calls = 1
        while result["status"] == "running":
            assert "continue_copilot" in result["next"]
            result = data(await client.call_tool("continue_copilot", {"session_id": result["session_id"]}))
            calls += 1
    assert result["status"] == "completed" and result["result"] == "Ten ideas, all ranked."
    assert calls == 2 and len(rec.samplings) == 14 and not rec.sample_answers


async def test_an_empty_reply_from_the_clients_model_is_asked_again_then_fails_the_session_clearly(tmp_path: Any) -> None:
    """An empty answer (no text, no tool call) is a provider fault like any other backend's: asked again, then a clear error."""
    rec = Recorder()
    rec.sample_answers += ["", TO_RESEARCHER, HAIKU]  # the router's first answer is empty: asked again, it answers
    async with connect(sampling_server(tmp_path, "sampling"), "legacy", rec, sample=True) as client:
        result = data(await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}))
    assert result["status"] == "completed" and result["result"] == HAIKU and len(rec.samplings) == 3

    rec = Recorder()
    rec.sample_answers += [""] * 10
    env = {"SWARM_MCP_HOME": str(tmp_path / "home2"), "SWARM_MCP_MODEL": "sampling", "SWARM_MCP_MAX_RETRIES": "2", "SWARM_MCP_RETRY_BASE_DELAY": "0"}
    async with connect(build_server(Settings.from_env(env)), "legacy", rec, sample=True) as client:
        failed = data(await client.call_tool("copilot", {"task": "Write a haiku about autumn leaves"}))
    assert failed["status"] == "failed" and "empty reply" in failed["error"] and len(rec.samplings) == 3, failed
