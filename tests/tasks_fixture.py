"""The MCP tasks conformance fixture: swarm-mcp's own server and task layer, plus the fixture tools the official
conformance suite's tasks scenarios call (greet, slow_compute, failing_job, protocol_error_job, confirm_delete,
multi_input, test_tool_with_task). It never ships: it lives in tests/ and runs only for the suite.

Every fixture tool but ``greet`` is a phase registered from this module: it runs as a durable session through the
same path as ``invoke_*_phase`` and ``copilot``, and is a task through the same ``server/tasks.py``; only how a tool
reads as a task (its result text, which failure is a tool error and which a protocol error, what it asks) is the
fixture's own. ``greet`` is a plain synchronous tool (the suite checks it is never a task).

    python -m tests.tasks_fixture [--port 0]     (prints "serving http://127.0.0.1:<port>/mcp" on stderr)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

from phases.context import PhaseContext, PhaseFailed
from phases.registry import PHASES, Phase, register_phase
from server.tasks import SessionTool, TaskView, approval_key
from swarm.errors import InternalError


class SlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: int = Field(0, ge=0, le=600, description="How long the computation takes, in seconds.")
    label: str = Field("", max_length=200, description="A label for the result.")


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=500, description="The file to delete.")


class NameParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200, description="Whom to greet.")


async def slow_compute(pctx: PhaseContext, params: SlowParams) -> dict[str, Any]:
    await pctx.wait(params.seconds)
    return {"answer": f"{params.label or 'computation'}: done after {params.seconds} s"}


async def failing_job(pctx: PhaseContext, _params: NoParams) -> dict[str, Any]:
    await pctx.wait(1)
    raise PhaseFailed("the job failed, as this fixture always does")


async def protocol_error_job(pctx: PhaseContext, _params: NoParams) -> dict[str, Any]:
    await pctx.wait(0.5)
    raise InternalError("the job broke down inside the server, as this fixture always does")


async def confirm_delete(pctx: PhaseContext, params: FileParams) -> dict[str, Any]:
    answer = await pctx.approval("confirm", f"Delete {params.filename}?", ["approve", "reject"])
    return {"answer": f"deleted {params.filename}" if answer.decision == "approve" else f"kept {params.filename}"}


async def multi_input(pctx: PhaseContext, _params: NoParams) -> dict[str, Any]:
    answer = await pctx.approval("both", "Your name, and whether to go on", ["approve", "reject"])
    return {"answer": f"answers: {answer.feedback}"}


async def greet_later(pctx: PhaseContext, params: NameParams) -> dict[str, Any]:
    return {"answer": f"Hello, {params.name}!"}


FIXTURE_PHASES = [
    Phase("fixture_slow_compute", "Computes for a number of seconds.", SlowParams, slow_compute, tool="slow_compute"),
    Phase("fixture_failing_job", "A job that fails (a tool error).", NoParams, failing_job, tool="failing_job"),
    Phase("fixture_protocol_error_job", "A job that breaks (a protocol error).", NoParams, protocol_error_job, tool="protocol_error_job"),
    Phase("fixture_confirm_delete", "Deletes a file once you confirm.", FileParams, confirm_delete, interactive=True, tool="confirm_delete"),
    Phase("fixture_multi_input", "Asks two things at once.", NoParams, multi_input, interactive=True, tool="multi_input"),
    Phase("fixture_test_tool_with_task", "Asks your name, then greets you as a task.", NameParams, greet_later, tool="test_tool_with_task"),
]


def _form(message: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"method": "elicitation/create", "params": {"mode": "form", "message": message,
                                                        "requestedSchema": {"type": "object", "properties": properties}}}


class FixtureTool(SessionTool):
    """A fixture phase as a task: its result is the phase's answer; a failure is a tool error, or (``protocol``) a
    protocol error; an approval is asked as ``forms`` (key -> elicitation) and any accepted answer approves it."""

    def __init__(self, service: Any, support: str = "optional", *, protocol: bool = False, forms: dict[str, Any] | None = None) -> None:
        super().__init__(service)
        self.support = support  # type: ignore[assignment]
        self.protocol = protocol
        self.forms = forms

    def view(self, state: Any) -> TaskView:
        view = super().view(state)
        if view.status == "input_required" and self.forms is not None:
            view.inputs = dict(self.forms)
        if view.status != "completed":
            return view
        record, failed = state.record, state.stop == "failed"
        if failed and self.protocol:
            return TaskView("failed", record.error, error={"code": types.INTERNAL_ERROR, "message": record.error or "the job broke down"})
        text = (record.error if failed else record.result) or state.stop
        return TaskView("completed", view.message, result={"content": [{"type": "text", "text": text}], "isError": failed})

    async def answer(self, call: Any, state: Any, responses: dict[str, Any]) -> None:
        if self.forms is None:
            return await super().answer(call, state, responses)
        pending = state.record.pending
        contents = [r.get("content") if isinstance(r, dict) else None for r in responses.values()]
        accepted = all(isinstance(r, dict) and r.get("action") == "accept" for r in responses.values())
        await self.service.answer(call, state.record, pending.id, "approve" if accepted else "reject", json.dumps(contents), channel="tasks")


class NameFirst(FixtureTool):
    """test_tool_with_task: asks the caller's name in an input-required round of the call itself, then runs as a task."""

    async def start(self, call: Any, ctx: Any, call_next: Any) -> Any:
        params = dict(ctx.params or {})
        answer = (params.get("inputResponses") or {}).get("user_name")
        if not isinstance(answer, dict) or answer.get("action") != "accept":
            return {"resultType": "input_required",
                    "inputRequests": {"user_name": _form("What is your name?", {"name": {"type": "string"}})}}
        name = str((answer.get("content") or {}).get("name") or "")
        params.pop("inputResponses", None)
        params.pop("requestState", None)
        params["arguments"] = {**(params.get("arguments") or {}), "name": name}
        import dataclasses

        return await super().start(call, dataclasses.replace(ctx, params=params), call_next)


def build_fixture_server(settings: Any) -> Any:
    """swarm-mcp's server with the fixture tools."""
    from server.app import build_server

    for phase in FIXTURE_PHASES:
        if phase.name not in PHASES:
            register_phase(phase)
    mcp = build_server(settings, open_engine=0)
    service = mcp.swarm

    def greet(name: str) -> str:
        """Greets someone (synchronous: never a task)."""
        return f"Hello, {name}!"

    mcp.add_tool(greet, name="greet")
    layer = mcp.tasks
    layer.tools["slow_compute"] = FixtureTool(service)
    layer.tools["failing_job"] = FixtureTool(service, "required")
    layer.tools["protocol_error_job"] = FixtureTool(service, "required", protocol=True)
    layer.tools["confirm_delete"] = FixtureTool(service, "required", forms={"confirm": _form("Delete the file?", {"confirm": {"type": "boolean"}})})
    layer.tools["multi_input"] = FixtureTool(service, "required", forms={
        "name": _form("Your name?", {"name": {"type": "string"}}), "confirm": _form("Go on?", {"confirm": {"type": "boolean"}})})
    layer.tools["test_tool_with_task"] = NameFirst(service, "required")
    return mcp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from server.http import HttpSettings, serve_http
    from swarm.config import Settings

    home = os.environ.get("SWARM_MCP_HOME") or tempfile.mkdtemp(prefix="swarm-mcp-tasks-")
    script = os.path.join(home, "no-model-calls.json")  # the fixture tools call no model
    os.makedirs(home, exist_ok=True)
    with open(script, "w") as out:
        out.write("[]")
    settings = Settings.from_env({**os.environ, "SWARM_MCP_HOME": home, "SWARM_MCP_MODEL": "scripted", "SWARM_MCP_SCRIPT": script})
    print(f"tasks fixture: home {home}", file=sys.stderr)
    serve_http(HttpSettings.from_env(host="127.0.0.1", port=args.port), mcp=build_fixture_server(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
