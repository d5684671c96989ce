"""The phase tools' way into phases/ (imported on first use, never on the start-up path).

Every registered phase is an MCP tool, ``invoke_<name>_phase``, generated from its registry entry (phase_tool).
A phase tool runs the phase as a background run of its session, like copilot: in a new session, or in the
``session_id`` given (which supplies state such as the plan). The call follows it for ``wait_seconds``;
approvals the phase stops at are asked through elicitation or returned as ``waiting_input``, and answered
through the engine (``resolve_approval``, ``continue_copilot``) like any session's.
"""

from __future__ import annotations

import copy
import inspect
from typing import Annotated, Any, Awaitable, Callable

from mcp.server.mcpserver import Context
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .schemas import DEFAULT_WAIT_SECONDS, PhaseSessionId, SessionId, WaitSeconds

SECONDARY = frozenset({"max_plan_steps", "n_plan_reviews", "max_n_attempts", "max_iterations", "n_ideas", "n_reviews", "max_questions",
                       "improve_task", "review_code", "judge_plots"})
"""A phase's knobs: its tool publishes them in one ``options`` object argument (server/arguments.py ``grouped``), and
accepts them there or at top level. What the phase is about (task, plan, step, agent, approval_mode, message...) stays
at top level."""


OVERRIDES = frozenset({"plan", "step"})
"""Parameters that only override what a required session already holds (its plan, all its steps): knobs there."""


def option_keys(phase: Any) -> tuple[str, ...]:
    """The phase's parameters its tool groups in ``options``, in the order the phase declares them."""
    knobs = SECONDARY | OVERRIDES if phase.session == "required" else SECONDARY
    return tuple(name for name in phase.params.model_fields if name in knobs)


def phase_tool(service: Any, session_call: Callable[..., Awaitable[Any]], phase: Any) -> Callable[..., Awaitable[Any]]:
    """The MCP tool of ``phase`` (a phases.registry.Phase): its arguments are the phase's parameters, each with its
    type, constraints and description, plus ``session_id`` (optional or required, as the phase says) and ``wait_seconds``.
    (Its published schema groups the knobs, option_keys, in ``options``; they reach this function at top level.)"""

    async def invoke(ctx: Any, **args: Any) -> Any:
        wait = args.pop("wait_seconds", DEFAULT_WAIT_SECONDS)
        given = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in args.items()}
        return await session_call(ctx, wait, lambda call: run_phase(service, call, phase.name, given, wait))

    parameters = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context)]
    annotations: dict[str, Any] = {"ctx": Context, "return": Any}
    for name, field in phase.params.model_fields.items():
        declared = copy.copy(field)  # its constraints and description, without its default (that goes to the signature)
        declared.default, declared.default_factory = PydanticUndefined, None
        default = inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
        annotations[name] = Annotated[field.annotation, declared]
    required = phase.session == "required"
    parameters.append(inspect.Parameter("session_id", inspect.Parameter.KEYWORD_ONLY, default=inspect.Parameter.empty if required else None))
    annotations["session_id"] = SessionId if required else PhaseSessionId
    parameters.append(inspect.Parameter("wait_seconds", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_WAIT_SECONDS))
    annotations["wait_seconds"] = WaitSeconds
    invoke.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    invoke.__annotations__ = annotations
    invoke.__name__ = invoke.__qualname__ = phase.tool_name
    invoke.__doc__ = phase.guide or phase.description
    return invoke


async def run_phase(service: Any, call: Any, phase_name: str, args: dict[str, Any], wait: float) -> Any:
    """Start the phase as a run of its session and follow it."""
    from phases.runner import run_phase as run
    from phases.work import open_phase

    engine = await service.engine()
    session_id = args.pop("session_id", None)
    if session_id is None:
        service._check_sampling(call)
    record, params = await open_phase(engine, phase_name, args, session_id=session_id, principal=call.principal,
                                      origin=call.origin, sampling=service.samples(call))
    sid = record.id
    await service.start(call, sid, lambda on_update, _local: run(
        engine, phase_name, params, session_id=sid, principal=call.principal, on_update=on_update))
    return await service.follow(call, sid, wait)


def describe() -> list[dict[str, Any]]:
    from phases.registry import describe_phases

    return describe_phases()


def tool_registry() -> Any:
    """The engine's tools: swarm's built-ins plus every phase as an ``invoke_<name>_phase`` tool (None without phases)."""
    try:
        from phases.tools import phase_tool_registry
    except ImportError:  # pragma: no cover - a build without phases
        return None
    return phase_tool_registry()
