"""The MCP server: tools, resources, prompts and protocol handlers over a ``SwarmService``.

``build_server()`` returns an ``MCPServer`` ready for any transport (``serve_stdio`` runs it on
stdio). Tool bodies are thin: make a ``Call`` from the request context, call the service, shape the
outcome. Failures become ``isError`` results at the edge (server/edge.py), never here.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any, Awaitable, Callable

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from phases.registry import PHASES

from .arguments import LazyArguments, UngroupOptions, arguments_model, arguments_schema, grouped, published_arguments, ungroup
from .edge import ArgumentCheck, tool_edge
from .interaction import Call
from .notify import PrincipalBus
from .phases import option_keys, phase_tool
from .render import summary
from .resources import register_resources
from .tasks import SessionTool, TaskLayer, TasksExtension
from .schemas import (
    DEFAULT_WAIT_SECONDS,
    ApprovalId,
    Decision,
    Feedback,
    Limits,
    MaxRounds,
    Message,
    OptMaxRounds,
    OptSessionId,
    Profile,
    SessionId,
    SessionResult,
    Task,
    WaitSeconds,
    published_schema,
)
from .service import SwarmService

ToolOut = Annotated[types.CallToolResult, SessionResult] | types.InputRequiredResult

INSTRUCTIONS = """\
swarm-mcp runs a multi-agent swarm. Start with copilot(task): its router hands the work to the right agents \
round by round. Every session-running tool returns session_id, status and next (what to do next). A call blocks \
at most wait_seconds; status 'running' means the session goes on: call continue_copilot(session_id) to wait again. \
'paused' resumes with continue_copilot; 'waiting_input' asks you something (pending_approval): answer with \
continue_copilot(session_id, message) or resolve_approval. Transcripts are resources: swarm://sessions/<id>/transcript."""


def process_server(settings: Any = None, *, open_engine: float | None) -> MCPServer:
    """``build_server`` for a process that only serves (``serve_stdio``, ``serve_http``): once its engine is open, what
    it holds then is left out of the garbage collector's scans (SwarmService.owns_process)."""
    mcp = build_server(settings, open_engine=open_engine)
    mcp.swarm.owns_process = True  # type: ignore[attr-defined]
    return mcp


def build_server(settings: Any = None, *, models: Any = None, service: SwarmService | None = None,
                 name: str = "swarm-mcp", log_level: str = "WARNING", open_engine: float | None = None,
                 **service_options: Any) -> MCPServer:
    """The swarm-mcp MCP server. ``models`` replaces the engine's model source (tests pass fakes).

    ``open_engine``: when serving starts, open the engine (resuming durable sessions a crash left
    running) at once (0) or that many seconds later in the background; None: at first use.
    """
    bus = PrincipalBus()
    service = service or SwarmService(settings, models=models, bus=bus, **service_options)
    service.open_after = open_engine
    if service.notifier.bus is None:
        service.notifier.bus = bus
    check = ArgumentCheck()
    options = UngroupOptions()
    tools: list[Tool] = []
    output_schema = published_schema(SessionResult.model_json_schema())

    def tool(name: str, title: str, *, read_only: bool = False, destructive: bool = False,
             knobs: tuple[str, ...] = ()) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """Register a tool: its argument schema (``knobs`` published in one ``options`` argument, accepted there or at
        top level), its strict argument model (built at its first call), the shared SessionResult output schema, and the
        error edge."""
        def register(fn: Callable[..., Awaitable[Any]]) -> Any:
            schema = arguments_schema(name, fn)
            published = grouped(schema, knobs) if knobs else schema
            build = functools.partial(check.model, name)
            # the check takes every argument at top level (the knobs too: ``options`` is ungrouped before it) and names
            # ``options`` among the arguments it lists
            check.add(name, functools.partial(arguments_model, name, fn),
                      {"properties": {**published["properties"], **schema["properties"]}} if knobs else schema)
            if knobs:
                options.add(name, knobs)
            tools.append(Tool(
                fn=tool_edge(fn), name=name, title=title, description=inspect.cleandoc(fn.__doc__ or ""), parameters=published_arguments(published),
                # output_model=None: results are built from SessionResult models, valid by construction, so the
                # SDK publishes the schema without validating every result against it again
                fn_metadata=LazyArguments.of(build, output_schema, functools.partial(ungroup, name, keys=knobs) if knobs else None),
                is_async=True, context_kwarg="ctx",
                annotations=types.ToolAnnotations(title=title, read_only_hint=read_only, destructive_hint=destructive,
                                                  idempotent_hint=read_only, open_world_hint=False),
            ))
            return fn
        return register

    async def session_call(ctx: Context, wait: int, start: Callable[[Call], Awaitable[Any]]) -> Any:
        """Run a session operation; on a 2026-07-28 retry, deliver the client's answers and follow instead."""
        call = Call(ctx)
        followed = await service.resume(call)
        outcome = await (service.follow(call, followed, wait) if followed is not None else start(call))
        return await shaped(ctx, call, outcome)

    async def shaped(ctx: Context, call: Call, outcome: Any, *, log: bool = True) -> Any:
        if isinstance(outcome, types.InputRequiredResult):
            return outcome
        if log:
            await service.notifier.log(ctx, call.principal, "info", f"session {outcome.session_id}: {outcome.status}")
        return types.CallToolResult(content=[types.TextContent(type="text", text=summary(outcome))],
                                    structured_content=outcome.model_dump(mode="json"))

    # ---- copilot and sessions -------------------------------------------------------------------

    @tool("copilot", "Run the swarm on a task")
    async def copilot(ctx: Context, task: Task, max_rounds: MaxRounds = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
                      session_id: OptSessionId = None, profile: Profile = None, budget: Limits = None) -> ToolOut:
        """Run the multi-agent swarm on a task, as a session of agent turns."""
        return await session_call(ctx, wait_seconds, lambda call: service.copilot(call, task, max_rounds, wait_seconds, session_id,
                                                                                  profile=profile, budget=budget))

    @tool("continue_copilot", "Continue a session")
    async def continue_copilot(ctx: Context, session_id: SessionId, message: Message = None, max_rounds: OptMaxRounds = None,
                               wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS, budget: Limits = None) -> ToolOut:
        """Resume a paused, waiting or failed session, optionally with a message; on a running one, wait again."""
        return await session_call(ctx, wait_seconds, lambda call: service.continue_(call, session_id, message, max_rounds, wait_seconds,
                                                                                    budget=budget))

    @tool("session_status", "Session status", read_only=True)
    async def session_status(ctx: Context, session_id: SessionId) -> ToolOut:
        """A session's status, rounds, pending approval, result and usage, without waiting or changing anything."""
        call = Call(ctx)
        return await shaped(ctx, call, await service.status(call, session_id), log=False)

    @tool("cancel_session", "Cancel a session", destructive=True)
    async def cancel_session(ctx: Context, session_id: SessionId) -> ToolOut:
        """Stop a session for good (after its current round); its transcript stays readable."""
        call = Call(ctx)
        return await shaped(ctx, call, await service.cancel(call, session_id))

    @tool("resolve_approval", "Answer a pending approval")
    async def resolve_approval(ctx: Context, session_id: SessionId, approval_id: ApprovalId, decision: Decision,
                               feedback: Feedback = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Answer a waiting session's pending_approval (a decision, or a question's answer); it then goes on."""
        return await session_call(ctx, wait_seconds, lambda call: service.resolve(call, session_id, approval_id, decision, feedback, wait_seconds))

    # ---- phases ---------------------------------------------------------------------------------

    for phase in PHASES.values():  # every registered phase, as invoke_<name>_phase
        tool(phase.tool_name, phase.title or phase.name, knobs=option_keys(phase))(phase_tool(service, session_call, phase))

    # ---- MCP tasks: the session-running tools may run as tasks (server/tasks.py) ------------------------

    tasks = TaskLayer(service)
    for task_tool in ["copilot", "continue_copilot", *(p.tool_name for p in PHASES.values())]:
        tasks.tools[task_tool] = SessionTool(service)
    service.status_listeners.append(tasks.watchers.session_changed)

    mcp = MCPServer(name, title="swarm-mcp: a multi-agent swarm", version=_version(), instructions=INSTRUCTIONS,
                    lifespan=lambda _app: service.serving(), subscriptions=bus, tools=tools, extensions=[TasksExtension(tasks)],
                    request_state_security=request_state_security(), log_level=log_level)  # type: ignore[arg-type]
    mcp.swarm = service  # type: ignore[attr-defined]
    mcp.tasks = tasks  # type: ignore[attr-defined]
    tasks.mcp = mcp
    mcp.middleware.append(options)  # outside the check: the knobs in ``options`` reach it at top level
    mcp.middleware.append(check)
    mcp.middleware.append(tasks.middleware)  # inside the argument check: a task starts only from valid arguments
    tasks.watchers.guard_listen(mcp._lowlevel_server)  # (before the subscription rules wrap it: they check its URIs first)
    register_resources(mcp, service)
    return mcp


def _version() -> str:
    from . import __version__

    return __version__


def request_state_security(env: Any = None) -> Any:
    """How 2026-07-28 ``requestState`` is sealed: under ``SWARM_MCP_STATE_KEYS`` (comma-separated secrets of at least
    32 bytes, the first one sealing) when set - replicas behind one URL must share them - else under a key of this process."""
    import os

    keys = [k.strip() for k in ((env if env is not None else os.environ).get("SWARM_MCP_STATE_KEYS") or "").split(",") if k.strip()]
    if not keys:
        return None  # the SDK's default: an ephemeral key of this process
    from mcp.server.request_state import RequestStateSecurity

    from swarm.errors import ConfigError

    if any(len(k.encode()) < 32 for k in keys):
        raise ConfigError("SWARM_MCP_STATE_KEYS: each key must be at least 32 bytes (e.g. `openssl rand -hex 32`)")
    return RequestStateSecurity(keys=keys, audience="swarm-mcp")


def quiet_autogen(verbose: bool) -> None:
    import logging

    if not verbose:  # an agent's failure is recorded in the session (and returned); autogen's own traceback is noise here
        logging.getLogger("autogen_core").setLevel(logging.CRITICAL)


STDIO_OPEN_AFTER = 1.0
"""Seconds after start-up a stdio server opens its engine in the background (DBOS and autogen
imports stay off the cold start that clients wait on; running sessions resume after it)."""


def serve_stdio(settings: Any = None, *, verbose: bool = False) -> None:
    """Serve on stdin/stdout until the client closes the connection (logs go to stderr, never stdout).

    Every line with an id gets an answer: lines the SDK's parser refuses (which its transport would
    drop, leaving the client waiting) are answered by the JSON-RPC guard (server/jsonrpc.py).
    """
    import anyio

    quiet_autogen(verbose)
    anyio.run(_serve_stdio, process_server(settings, open_engine=STDIO_OPEN_AFTER))


async def _serve_stdio(mcp: MCPServer) -> None:
    """``MCPServer.run_stdio_async`` with the guard on the transport's input.

    The SDK's ``stdio_server`` takes an explicit ``stdin``, but then skips claiming fd 0 (pointing it
    at /dev/null so tools and child processes cannot read the protocol stream); the claim is made here
    with the SDK's own helpers (private names of ``mcp.server.stdio``, pinned with the SDK version).
    """
    import sys

    import anyio
    from mcp.server.stdio import _claim_fd, _open_stdin_diversion, _UnownedTextWrapper, stdio_server

    from .jsonrpc import GuardedLines

    buffer, release = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
    try:
        lines = GuardedLines(anyio.wrap_file(_UnownedTextWrapper(buffer, encoding="utf-8", errors="replace")))
        async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
            lines.answer_on(write_stream)
            lowlevel = mcp._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        if release is not None:
            release()
