"""A new phase is one module plus its registry entry: this module alone defines a phase, registers it, and calls it
over MCP as ``invoke_haiku_phase`` - a durable run (a DBOS workflow) that a cancelled call pauses and
continue_copilot resumes without repeating a completed model call. Nothing in server/ names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import anyio
import pytest
from pydantic import BaseModel, ConfigDict, Field

from phases.context import PhaseContext
from phases.registry import PHASES, Phase, register_phase
from swarm.config import Settings
from tests.e2e.mcp_harness import Recorder, connect, data, make_server, text

pytestmark = pytest.mark.anyio

HAIKU = "Leaves let go of light / the maple counts its losses / autumn, unhurried"


class HaikuParams(BaseModel):
    """Parameters of the haiku phase."""

    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=200, description="What the haiku is about.")
    lines: int = Field(3, ge=3, le=3, description="How many lines (a haiku has 3).")


async def write_haiku(pctx: PhaseContext, params: HaikuParams) -> dict[str, Any]:
    poet = pctx.agent("researcher", instructions="Answer with the poem only.")
    poem = await pctx.ask(poet, f"Write a haiku of {params.lines} lines about {params.topic}.")
    return {"answer": poem, "topic": params.topic}


@pytest.fixture
def haiku_phase() -> Iterator[Phase]:
    phase = register_phase(Phase("haiku", "The researcher writes a haiku about a topic.", HaikuParams, write_haiku, title="Haiku phase",
                                 guide="Write a haiku about a topic: the researcher composes it; the poem is in result.answer."))
    try:
        yield phase
    finally:
        PHASES.pop("haiku", None)


async def test_a_phase_registered_by_a_test_module_is_an_mcp_tool_durable_and_resumable(tmp_path: Path, haiku_phase: Phase) -> None:
    settings = Settings.from_env({"SWARM_MCP_HOME": str(tmp_path / "home"), "SWARM_MCP_DURABLE": "1"})
    server, script = make_server(settings, [{"agent": "researcher", "hang": True}, {"agent": "researcher", "text": HAIKU}])
    rec = Recorder()
    with anyio.fail_after(60):
        async with connect(server, "legacy") as client:
            tool = {t.name: t for t in (await client.list_tools()).tools}["invoke_haiku_phase"]
            assert tool.title == "Haiku phase" and "composes it" in (tool.description or "")
            assert tool.input_schema["properties"]["topic"]["description"] == "What the haiku is about."
            assert tool.input_schema["required"] == ["topic"] and "additionalProperties" not in tool.input_schema  # published lean; calls are still checked strictly
            bad = await client.call_tool("invoke_haiku_phase", {"topic": "autumn", "lines": "3"})  # strict: "3" is no integer
            assert bad.is_error and "lines" in text(bad)

            async with anyio.create_task_group() as tg:  # the poet's model call hangs: the call is cancelled, the run pauses
                async def call() -> None:
                    await client.call_tool("invoke_haiku_phase", {"topic": "autumn"}, progress_callback=rec.on_progress)

                tg.start_soon(call)
                while len(script.calls) < 1:
                    await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
            sid = rec.progress[0][2].split()[1]
            assert data(await client.call_tool("session_status", {"session_id": sid}))["kind"] == "phase:haiku"

            done = data(await client.call_tool("continue_copilot", {"session_id": sid}))
            assert done["status"] == "completed" and done["result"] == {"answer": HAIKU, "topic": "autumn"}, done
            events = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)["events"]
    script.assert_exhausted()  # the hung call, then the resumed one: nothing repeated
    assert [e["content"]["status"] for e in events if e["type"] == "status"] == ["running", "paused", "running", "completed"]
    assert [e["content"]["phase"] for e in events if e["type"] == "phase_end"] == ["haiku"]
    engine = await server.swarm.engine()
    record = await engine.get(sid)
    assert record.meta["phase_runs"][-1]["workflow"] == f"{sid}.p1.2"  # each drive of the run was a DBOS workflow
    await server.swarm.aclose()
