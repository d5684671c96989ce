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

from .arguments import LazyArguments, arguments_model, arguments_schema
from .edge import ArgumentCheck, tool_edge
from .interaction import Call
from .notify import PrincipalBus
from .phases import PHASE_TOOLS
from .render import summary
from .resources import register_resources
from .schemas import (
    DEFAULT_WAIT_SECONDS,
    Agent,
    ApprovalId,
    ApprovalMode,
    CheckpointMessage,
    CheckpointOptions,
    CheckpointType,
    Decision,
    Feedback,
    MaxAttempts,
    MaxIterations,
    MaxPlanSteps,
    MaxQuestions,
    MaxRounds,
    Message,
    NIdeas,
    NReviews,
    OptMaxRounds,
    OptSessionId,
    PhaseSessionId,
    Plan,
    PlanArg,
    SessionId,
    SessionResult,
    Step,
    Task,
    WaitSeconds,
    flat_schema,
)
from .service import SwarmService

ToolOut = Annotated[types.CallToolResult, SessionResult] | types.InputRequiredResult

INSTRUCTIONS = """\
swarm-mcp runs a multi-agent swarm. Start with copilot(task): its router hands the work to the right agents \
round by round. Every session-running tool returns session_id, status and next (what to do next). A call blocks \
at most wait_seconds; status 'running' means the session goes on: call continue_copilot(session_id) to wait again. \
'paused' resumes with continue_copilot; 'waiting_input' asks you something (pending_approval): answer with \
continue_copilot(session_id, message) or resolve_approval. Transcripts are resources: swarm://sessions/<id>/transcript."""


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
    tools: list[Tool] = []
    output_schema = flat_schema(SessionResult.model_json_schema())

    def tool(name: str, title: str, *, read_only: bool = False, destructive: bool = False) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """Register a tool: its argument schema, its strict argument model (built at its first call), the shared
        SessionResult output schema, and the error edge."""
        def register(fn: Callable[..., Awaitable[Any]]) -> Any:
            schema = arguments_schema(name, fn)
            build = functools.partial(check.model, name)
            check.add(name, functools.partial(arguments_model, name, fn), schema)
            tools.append(Tool(
                fn=tool_edge(fn), name=name, title=title, description=inspect.cleandoc(fn.__doc__ or ""), parameters=schema,
                # output_model=None: results are built from SessionResult models, valid by construction, so the
                # SDK publishes the schema without validating every result against it again
                fn_metadata=LazyArguments.of(build, output_schema), is_async=True, context_kwarg="ctx",
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
    async def copilot(ctx: Context, task: Task, max_rounds: MaxRounds = 20, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
                      session_id: OptSessionId = None) -> ToolOut:
        """Start a swarm session for a task. The router (copilot_control) hands the work to the right agents and
        phases round by round (one round = one agent turn) until an agent gives the final answer, asks you a question
        (status waiting_input), or max_rounds is reached (status paused). Returns the session's status, result and
        what to do next; with session_id, sends the task to that existing session as a follow-up instead."""
        return await session_call(ctx, wait_seconds, lambda call: service.copilot(call, task, max_rounds, wait_seconds, session_id))

    @tool("continue_copilot", "Continue a session")
    async def continue_copilot(ctx: Context, session_id: SessionId, message: Message = None, max_rounds: OptMaxRounds = None,
                               wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Resume a paused, waiting, failed or interrupted session exactly where it stopped, optionally with new user
        input (an answer to its question, a correction, a follow-up). On a session that is still running, waits for it
        (up to wait_seconds) instead of starting a second run; a message sent then is queued durably, and the session
        takes it as its next input when its current rounds end."""
        return await session_call(ctx, wait_seconds, lambda call: service.continue_(call, session_id, message, max_rounds, wait_seconds))

    @tool("session_status", "Session status", read_only=True)
    async def session_status(ctx: Context, session_id: SessionId) -> ToolOut:
        """Return a session's status, rounds, pending approval, result and token usage without waiting or changing
        anything; for clients that poll a running session."""
        call = Call(ctx)
        return await shaped(ctx, call, await service.status(call, session_id), log=False)

    @tool("cancel_session", "Cancel a session", destructive=True)
    async def cancel_session(ctx: Context, session_id: SessionId) -> ToolOut:
        """Stop a session for good (at the end of its current round, or at once if it does not get there quickly).
        Its transcript and state stay readable; a cancelled session cannot be continued."""
        call = Call(ctx)
        return await shaped(ctx, call, await service.cancel(call, session_id))

    @tool("resolve_approval", "Answer a pending approval")
    async def resolve_approval(ctx: Context, session_id: SessionId, approval_id: ApprovalId, decision: Decision,
                               feedback: Feedback = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Answer what a waiting session asks (its pending_approval): a decision from the approval's options, with
        optional feedback; for a clarifying question, the answer. The session then goes on, as with continue_copilot."""
        return await session_call(ctx, wait_seconds, lambda call: service.resolve(call, session_id, approval_id, decision, feedback, wait_seconds))

    # ---- phases ---------------------------------------------------------------------------------

    from .phases import run_phase

    def phase(tool_name: str, ctx: Context, wait: int, **args: Any) -> Awaitable[Any]:
        if isinstance(args.get("plan"), PlanArg):
            args["plan"] = args["plan"].model_dump()
        return session_call(ctx, wait, lambda call: run_phase(service, call, PHASE_TOOLS[tool_name], dict(args), wait))

    @tool("invoke_planning_phase", "Planning phase")
    async def invoke_planning_phase(ctx: Context, task: Task, max_plan_steps: MaxPlanSteps = 3, n_plan_reviews: NReviews = 1,
                                    session_id: PhaseSessionId = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Plan a task: the planner drafts a plan of at most max_plan_steps steps (each with its sub-task, agent and
        deliverables) and the plan_reviewer critiques it n_plan_reviews times, the planner revising it each time.
        Returns the structured plan in result.plan; it is also kept in the session for invoke_control_phase."""
        return await phase("invoke_planning_phase", ctx, wait_seconds, task=task, max_plan_steps=max_plan_steps,
                           n_plan_reviews=n_plan_reviews, session_id=session_id)

    @tool("invoke_control_phase", "Control phase")
    async def invoke_control_phase(ctx: Context, session_id: PhaseSessionId = None, plan: Plan = None, step: Step = None,
                                   max_n_attempts: MaxAttempts = 3, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Execute a plan step by step, each step by its agent: the engineer's code runs sandboxed in the session's
        work dir and is fixed and re-run on failure (max_n_attempts); the researcher writes text. Give the session_id
        of a session with a plan (from invoke_planning_phase), or a plan; step runs a single step."""
        return await phase("invoke_control_phase", ctx, wait_seconds, session_id=session_id, plan=plan, step=step, max_n_attempts=max_n_attempts)

    @tool("invoke_one_shot_phase", "One-shot phase")
    async def invoke_one_shot_phase(ctx: Context, task: Task, agent: Agent = "engineer", max_n_attempts: MaxAttempts = 3,
                                    session_id: PhaseSessionId = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """One agent does the task end to end: the engineer writes and runs code (sandboxed, retried on failure),
        the researcher writes text. Returns its answer and what it produced in result."""
        return await phase("invoke_one_shot_phase", ctx, wait_seconds, task=task, agent=agent, max_n_attempts=max_n_attempts, session_id=session_id)

    @tool("invoke_hitl_planning_phase", "Planning with human approval")
    async def invoke_hitl_planning_phase(ctx: Context, task: Task, max_plan_steps: MaxPlanSteps = 3, n_plan_reviews: NReviews = 1,
                                         max_iterations: MaxIterations = 3, session_id: PhaseSessionId = None,
                                         wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Planning with a human in the loop: each plan is put to you to approve, revise (with feedback) or reject;
        the session waits (status waiting_input) until you answer through the client's elicitation, resolve_approval
        or continue_copilot(message=<decision>)."""
        return await phase("invoke_hitl_planning_phase", ctx, wait_seconds, task=task, max_plan_steps=max_plan_steps,
                           n_plan_reviews=n_plan_reviews, max_iterations=max_iterations, session_id=session_id)

    @tool("invoke_hitl_control_phase", "Control with human approval")
    async def invoke_hitl_control_phase(ctx: Context, session_id: SessionId, approval_mode: ApprovalMode = "before_step", plan: Plan = None,
                                        step: Step = None, max_n_attempts: MaxAttempts = 3,
                                        wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Execute a session's plan with a human approving steps (before_step, after_step, both, or on_error only):
        at each gate the session waits for your decision - approve, revise, retry, skip or abort."""
        return await phase("invoke_hitl_control_phase", ctx, wait_seconds, session_id=session_id, approval_mode=approval_mode, plan=plan,
                           step=step, max_n_attempts=max_n_attempts)

    @tool("invoke_hitl_checkpoint_phase", "Approval checkpoint")
    async def invoke_hitl_checkpoint_phase(ctx: Context, message: CheckpointMessage, checkpoint_type: CheckpointType = "review",
                                           session_id: PhaseSessionId = None, options: CheckpointOptions = None,
                                           wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """A standalone approval gate: the session waits until a human picks one of the options (default approve or
        reject); the decision is recorded in its transcript and returned in result."""
        return await phase("invoke_hitl_checkpoint_phase", ctx, wait_seconds, session_id=session_id, checkpoint_type=checkpoint_type,
                           message=message, options=options)

    @tool("invoke_idea_generation_phase", "Idea generation phase")
    async def invoke_idea_generation_phase(ctx: Context, task: Task, n_ideas: NIdeas = 3, n_reviews: NReviews = 1,
                                           session_id: PhaseSessionId = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """Generate ideas: idea_maker proposes n_ideas, idea_hater critiques them and idea_maker refines them,
        n_reviews times. Returns the ideas ranked, each with its critique, in result."""
        return await phase("invoke_idea_generation_phase", ctx, wait_seconds, task=task, n_ideas=n_ideas, n_reviews=n_reviews, session_id=session_id)

    @tool("invoke_copilot_phase", "One routed pass")
    async def invoke_copilot_phase(ctx: Context, task: Task, max_plan_steps: MaxPlanSteps = 3, n_plan_reviews: NReviews = 1,
                                   max_n_attempts: MaxAttempts = 3, n_ideas: NIdeas = 3, max_questions: MaxQuestions = 2,
                                   session_id: PhaseSessionId = None, wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS) -> ToolOut:
        """One routed pass over a task: a simple task goes to one agent (one-shot), a complex one is planned and its
        steps executed, a request for ideas goes to idea generation, and a vague one gets a clarifying question."""
        return await phase("invoke_copilot_phase", ctx, wait_seconds, task=task, max_plan_steps=max_plan_steps, n_plan_reviews=n_plan_reviews,
                           max_n_attempts=max_n_attempts, n_ideas=n_ideas, max_questions=max_questions, session_id=session_id)

    mcp = MCPServer(name, title="swarm-mcp: a multi-agent swarm", version=_version(), instructions=INSTRUCTIONS,
                    lifespan=lambda _app: service.serving(), subscriptions=bus, tools=tools,
                    request_state_security=request_state_security(), log_level=log_level)  # type: ignore[arg-type]
    mcp.swarm = service  # type: ignore[attr-defined]
    mcp.middleware.append(check)
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
    anyio.run(_serve_stdio, build_server(settings, open_engine=STDIO_OPEN_AFTER))


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
