"""Sessions as MCP tasks, in both protocol eras (design.md section 3: a task is a session seen through the tasks
protocol, not a second mechanism).

    tools/call of a task tool, from a client that asks for a task
        2026-07-28: the request declares the extension ``io.modelcontextprotocol/tasks`` (per request)
        2025-11-25: ``params.task`` ({ttl})
      -> the tool starts its session as usual but returns at once (``in_task``: wait_seconds 0, no elicitation)
      -> the engine records a task: the session, and where its transcript stood (swarm/tasks.py)
      -> the client gets a task handle: 2026 ``{resultType: "task", taskId, ...}``, 2025 ``{task: {...}}``
    tasks/get     the task's status from the session's transcript; once terminal, the tool's result (2026 inline)
    tasks/update  (2026) answers to ``inputRequests``: the session's pending approval, as elicitations
    tasks/result  (2025) waits for the end and returns the tool's result, asking the pending approvals through
                  elicitation on the way (related-task ``_meta``)
    tasks/list    (2025) the caller's tasks, a page at a time
    tasks/cancel  cancels the session (a task that ended stays as it ended)

A client that asks for no task sees no change. Everything a task is lives in the engine's store, so tasks answer
after a restart and on any replica, and only for the principal that made them. What a tool does as a task is a
``TaskTool``: ``SessionTool`` for the swarm's session-running tools; test fixtures bring their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime
from typing import Any, Literal, Mapping, Protocol

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context, require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import ConfigDict, Field
from swarm.errors import UnknownTaskError, UserInputError

from .interaction import Call, approval_decision, approval_question, approval_schema, in_task
from .principal import principal_of
from .render import session_result, summary
from .task_stream import TaskWatchers

log = logging.getLogger("swarm_mcp.tasks")

TASKS = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
POLL_MS = 1000
"""How often a client should poll a task (``pollIntervalMs``)."""
MODERN = "2026"
TaskSupport = Literal["optional", "required"]


@dataclasses.dataclass
class TaskView:
    """A task as a client reads it."""

    status: Literal["working", "input_required", "completed", "failed", "cancelled"]
    message: str | None = None
    inputs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """What the task waits for, by key: elicitation requests (``{method, params}``)."""
    result: dict[str, Any] | None = None
    """The tool's result (a CallToolResult on the wire), once completed."""
    error: dict[str, Any] | None = None
    """``{code, message}`` when the task failed (a protocol error, not a tool error)."""

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class TaskTool(Protocol):
    """What a tool does as a task."""

    support: TaskSupport

    async def start(self, call: Call, ctx: ServerRequestContext[Any, Any], call_next: Any) -> tuple[str, int] | dict[str, Any]:
        """Start the call's work: ``(session_id, start_seq)``, or a wire result to return as it is (a tool error, or an
        input-required round the tool needs before it can start)."""
        ...

    def view(self, state: Any) -> TaskView:
        """The task (a swarm.tasks.TaskState) as the client reads it."""
        ...

    async def answer(self, call: Call, state: Any, responses: dict[str, Any]) -> None:
        """Answer every input the task waits for (``responses`` by the keys of ``view(state).inputs``)."""
        ...


class SessionTool:
    """The swarm's session-running tools as tasks: the task follows the session the call starts or continues."""

    support: TaskSupport = "optional"

    def __init__(self, service: Any) -> None:
        self.service = service

    async def start(self, call: Call, ctx: ServerRequestContext[Any, Any], call_next: Any) -> tuple[str, int] | dict[str, Any]:
        params = dict(ctx.params or {})
        arguments = dict(params.get("arguments") or {})
        start_seq = 0
        if isinstance(arguments.get("session_id"), str):  # continuing a session: the task begins where it stands
            try:
                start_seq = (await (await self.service.engine()).get(arguments["session_id"], call.principal)).last_seq
            except Exception:  # unknown, foreign: the call itself says so
                pass
        arguments["wait_seconds"] = 0
        params.pop("task", None)
        result = await call_next(dataclasses.replace(ctx, params={**params, "arguments": arguments}))
        wire = _wire(result)
        session_id = (wire.get("structuredContent") or {}).get("session_id")
        if wire.get("isError") or not isinstance(session_id, str):
            return wire
        return session_id, start_seq

    def view(self, state: Any) -> TaskView:
        record = state.record
        if state.phase == "working":
            return TaskView("working", f"round {record.rounds_used} of {record.max_rounds}")
        if state.phase == "input_required":
            pending = record.pending if record.status == "waiting_input" else None
            if pending is None:
                return TaskView("working", "answered: going on")
            request = {"method": "elicitation/create",
                       "params": {"mode": "form", "message": approval_question(pending), "requestedSchema": approval_schema(pending)}}
            return TaskView("input_required", pending.message, {approval_key(pending.id): request})
        stop = state.stop
        if stop == "cancelled":
            return TaskView("cancelled", "the session was cancelled")
        shown = record if state.current else record.model_copy(update={"status": stop, "pending": None})
        outcome = session_result(shown, live=False)
        result = types.CallToolResult(content=[types.TextContent(type="text", text=summary(outcome))],
                                      structured_content=outcome.model_dump(mode="json"))
        if stop == "failed":  # the tool ran and its work failed: a tool error, not a protocol one (the task completed)
            result.is_error = True
        return TaskView("completed", f"the session is {stop}", result=result.model_dump(mode="json", by_alias=True, exclude_none=True))

    async def answer(self, call: Call, state: Any, responses: dict[str, Any]) -> None:
        pending = state.record.pending
        content = _accepted(responses.get(approval_key(pending.id)))
        if content is None:  # declined: a decision that refuses, where the approval has one
            if "reject" not in pending.options:
                return
            decision, feedback = "reject", None
        else:
            decision, feedback = approval_decision(content)
        await self.service.answer(call, state.record, pending.id, decision, feedback, channel="tasks")


def approval_key(approval_id: str) -> str:
    return f"approval-{approval_id}"


def _accepted(response: Any) -> dict[str, Any] | None:
    """The content of an accepted elicitation answer; None if declined, cancelled or malformed."""
    data = response.model_dump(mode="json", by_alias=True) if hasattr(response, "model_dump") else response
    if not isinstance(data, Mapping) or data.get("action") != "accept":
        return None
    content = data.get("content")
    return dict(content) if isinstance(content, Mapping) else {}


def _wire(result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return dict(result)
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def _stamp(at: datetime | None) -> str:
    return (at or datetime.now().astimezone()).isoformat().replace("+00:00", "Z")


class UpdateTaskParams(types.RequestParams):
    """tasks/update (2026-07-28): answers to a task's input requests."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")
    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


class TaskLayer:
    """The tasks of one server: which tools run as tasks, the middleware that starts them, the tasks/* methods."""

    def __init__(self, service: Any, mcp: Any = None) -> None:
        self.service = service
        self.mcp = mcp
        self.tools: dict[str, TaskTool] = {}
        self.watchers = TaskWatchers(self)
        """Who hears of which task's changes (server/task_stream.py)."""

    # ---- starting a task ----------------------------------------------------------------------------

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        if ctx.method == "tools/call":
            tool = self.tools.get(str((ctx.params or {}).get("name")))
            if tool is not None:
                return await self._call(ctx, tool, call_next)
        result = await call_next(ctx)
        if ctx.method in ("initialize", "tools/list"):
            self._advertise(ctx.method, result)
        return result

    async def _call(self, ctx: ServerRequestContext[Any, Any], tool: TaskTool, call_next: Any) -> Any:
        modern = (ctx.protocol_version or "") >= MODERN
        asked = declares(ctx) if modern else isinstance((ctx.params or {}).get("task"), Mapping)
        if not asked:
            if tool.support == "required":
                require_client_extension(ctx, TASKS)  # raises -32021 naming the extension to declare
            return await call_next(ctx)
        ttl = (ctx.params or {}).get("task", {}).get("ttl") if not modern else None
        call = self.call(ctx)
        token = in_task.set(True)
        try:
            started = await tool.start(call, ctx, call_next)
        finally:
            in_task.reset(token)
        if isinstance(started, dict):
            return started
        session_id, start_seq = started
        engine = await self.service.engine()
        task = await engine.open_task(session_id, call.principal, start_seq=start_seq, tool=str(ctx.params["name"]),
                                      ttl_ms=ttl if isinstance(ttl, int) and ttl > 0 else None)
        state = await engine.task(task.id, call.principal)
        if modern:
            return {"resultType": "task", **self.task_body(state, TaskView("working"), modern=True)}
        self.watchers.watch_2025(ctx.session, state)
        return {"task": self.task_body(state, TaskView("working"), modern=False)}

    def call(self, ctx: ServerRequestContext[Any, Any]) -> Call:
        return Call(Context(request_context=ctx, mcp_server=self.mcp))

    def _advertise(self, method: str, result: Any) -> None:
        """2025-11-25: the ``tasks`` capability at initialize, ``execution.taskSupport`` on task tools."""
        if not isinstance(result, dict):
            return
        if method == "initialize" and result.get("protocolVersion") == "2025-11-25":
            result.setdefault("capabilities", {})["tasks"] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
        elif method == "tools/list":
            for tool in result.get("tools", []):
                task_tool = self.tools.get(tool.get("name"))
                if task_tool is not None and "execution" not in tool and "resultType" not in result:
                    tool["execution"] = {"taskSupport": task_tool.support}

    # ---- reading a task -----------------------------------------------------------------------------

    async def read(self, task_id: str, principal: str | None) -> tuple[Any, TaskView]:
        """The task and how its client reads it (a -32602 error if ``principal`` has no such task; None: any principal)."""
        engine = await self.service.engine()
        try:
            state = await engine.task(task_id, principal)
        except UnknownTaskError as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
        return state, self.view(state)

    def view(self, state: Any) -> TaskView:
        """How the client reads the task (a swarm.tasks.TaskState): as its tool says, less what was answered already."""
        tool = self.tools.get(state.task.tool)
        if tool is None:
            return TaskView("failed", error={"code": types.INTERNAL_ERROR, "message": f"tool {state.task.tool!r} is gone"})
        view = tool.view(state)
        if view.inputs and state.task.answered == state.record.pending.id:  # answered in part (2026): what is left
            view.inputs = {k: v for k, v in view.inputs.items() if k not in state.task.answers}
        return view

    def task_body(self, state: Any, view: TaskView, *, modern: bool) -> dict[str, Any]:
        task = state.task
        body: dict[str, Any] = {"taskId": task.id, "status": view.status, "createdAt": _stamp(task.created_at),
                                "lastUpdatedAt": _stamp(state.updated_at)}
        if view.message:
            body["statusMessage"] = view.message[:500]
        if modern:
            body.update(ttlMs=task.ttl_ms, pollIntervalMs=POLL_MS)
        else:
            body.update(ttl=task.ttl_ms, pollInterval=POLL_MS)
        return body

    async def get(self, ctx: ServerRequestContext[Any, Any], params: types.GetTaskRequestParams) -> dict[str, Any]:
        modern = self._gate(ctx, params.task_id)
        state, view = await self.read(params.task_id, principal_of(ctx))
        return {"resultType": "complete", **self.detailed(state, view)} if modern else self.task_body(state, view, modern=False)

    def detailed(self, state: Any, view: TaskView) -> dict[str, Any]:
        """The task as 2026-07-28 ``tasks/get`` and ``notifications/tasks`` show it: with what it waits for, its result or error."""
        body = self.task_body(state, view, modern=True)
        if view.status == "input_required":
            body["inputRequests"] = view.inputs
        elif view.status == "completed" and view.result is not None:
            body["result"] = view.result
        elif view.status == "failed":
            body["error"] = view.error or {"code": types.INTERNAL_ERROR, "message": view.message or "the task failed"}
        return body

    async def update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict[str, Any]:
        self._gate(ctx, params.task_id)
        state, view = await self.read(params.task_id, principal_of(ctx))
        given = {k: v for k, v in params.input_responses.items() if k in view.inputs}  # others: not (or no longer) asked
        if given and view.status == "input_required":
            await self._answer(ctx, state, given, view)
        return {"resultType": "complete"}

    async def _answer(self, ctx: ServerRequestContext[Any, Any], state: Any, given: dict[str, Any], view: TaskView) -> None:
        engine = await self.service.engine()
        task = state.task
        pending_id = state.record.pending.id
        answers = {**(task.answers if task.answered == pending_id else {}), **given}
        if set(view.inputs) - set(given):  # more to come: keep these for when the rest arrives
            task.answers, task.answered = answers, pending_id
            await engine.keep_task_answers(task)
            return
        if task.answers:
            task.answers, task.answered = {}, None
            await engine.keep_task_answers(task)
        token = in_task.set(True)
        try:
            await self.tools[task.tool].answer(self.call(ctx), state, answers)
        finally:
            in_task.reset(token)

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: types.CancelTaskRequestParams) -> dict[str, Any]:
        modern = self._gate(ctx, params.task_id)
        state, view = await self.read(params.task_id, principal_of(ctx))
        if view.terminal:
            if not modern:
                raise MCPError(code=types.INVALID_PARAMS, message=f"task {params.task_id} has already ended ({view.status}): nothing to cancel")
            return {"resultType": "complete"}
        await self.service.cancel(self.call(ctx), state.task.session_id)
        if modern:
            return {"resultType": "complete"}
        state, view = await self.read(params.task_id, principal_of(ctx))
        return self.task_body(state, view, modern=False)

    def _gate(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> bool:
        """Whether the request speaks 2026-07-28; there, the routing header must name the task and the extension be declared."""
        if (ctx.protocol_version or "") < MODERN:
            return False
        request = ctx.request
        named = request.headers.get("mcp-name") if request is not None and hasattr(request, "headers") else None
        if named is not None and named.strip() != task_id:
            raise MCPError(code=types.HEADER_MISMATCH, message=f"the Mcp-Name header ({named.strip()!r}) does not name the task in the body ({task_id!r})")
        require_client_extension(ctx, TASKS)
        return True

    # ---- 2025-11-25: tasks/result, tasks/list, status notifications ------------------------------------

    async def result(self, ctx: ServerRequestContext[Any, Any], params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
        """Wait for the task to end (asking its pending approvals through elicitation) and return the tool's result."""
        call = self.call(ctx)
        asked: set[str] = set()
        while True:
            state, view = await self.read(params.task_id, principal_of(ctx))
            if view.terminal:
                break
            if view.status == "input_required" and call.can_elicit and not set(view.inputs) <= asked:
                asked |= set(view.inputs)
                await self._elicit(ctx, state, view)
                continue
            await self._changed(state.task.session_id, POLL_MS / 1000)
        related = {RELATED_TASK: {"taskId": params.task_id}}
        if view.status == "completed" and view.result is not None:
            return {**view.result, "_meta": {**(view.result.get("_meta") or {}), **related}}
        if view.status == "cancelled":
            raise MCPError(code=types.INVALID_PARAMS, message=f"task {params.task_id} was cancelled")
        error = view.error or {"code": types.INTERNAL_ERROR, "message": view.message or "the task failed"}
        raise MCPError(code=int(error["code"]), message=str(error["message"]))

    async def _elicit(self, ctx: ServerRequestContext[Any, Any], state: Any, view: TaskView) -> None:
        answers: dict[str, Any] = {}
        for key, request in view.inputs.items():
            elicit = types.ElicitRequest(params=types.ElicitRequestFormParams.model_validate(
                {**request["params"], "_meta": {RELATED_TASK: {"taskId": state.task.id}}}, by_name=False))
            try:
                result = await ctx.session.send_request(elicit, types.ElicitResult, metadata=ServerMessageMetadata(related_request_id=ctx.request_id))
            except Exception as exc:
                log.info("elicitation for task %s failed (%s): it stays input_required", state.task.id, exc)
                return
            answers[key] = result
        await self._answer(ctx, state, answers, view)

    async def _changed(self, session_id: str, timeout: float) -> None:
        """Until the session changes here, or ``timeout`` (a run on another replica is read from the store)."""
        run = self.service.runs.get(session_id)
        if run is not None and not run.done:
            try:
                await asyncio.wait_for(run.changed().wait(), timeout)
            except TimeoutError:
                pass
            return
        await asyncio.sleep(min(timeout, 0.25))

    async def list(self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> dict[str, Any]:
        engine = await self.service.engine()
        principal = principal_of(ctx)
        try:
            states, cursor = await engine.tasks_of(principal, params.cursor if params is not None else None)
        except UserInputError as exc:  # a cursor that is not ours
            raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
        tasks = [self.task_body(state, self.view(state), modern=False) for state in states]
        return {"tasks": tasks, **({"nextCursor": cursor} if cursor else {})}


class TasksExtension(Extension):
    """``io.modelcontextprotocol/tasks`` (2026-07-28), advertised at server/discover, and the tasks/* methods of both eras."""

    identifier = TASKS

    def __init__(self, layer: TaskLayer) -> None:
        self.layer = layer

    def methods(self) -> list[MethodBinding]:
        both, old, new = frozenset({"2025-11-25", "2026-07-28"}), frozenset({"2025-11-25"}), frozenset({"2026-07-28"})
        return [
            MethodBinding("tasks/get", types.GetTaskRequestParams, self.layer.get, protocol_versions=both),
            MethodBinding("tasks/cancel", types.CancelTaskRequestParams, self.layer.cancel, protocol_versions=both),
            MethodBinding("tasks/update", UpdateTaskParams, self.layer.update, protocol_versions=new),
            MethodBinding("tasks/result", types.GetTaskPayloadRequestParams, self.layer.result, protocol_versions=old),
            MethodBinding("tasks/list", types.PaginatedRequestParams, self.layer.list, protocol_versions=old),
        ]


def declares(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this 2026-07-28 request declares the tasks extension (capabilities are per request there)."""
    capabilities = ctx.session.client_capabilities
    return bool(capabilities is not None and capabilities.extensions and TASKS in capabilities.extensions)
