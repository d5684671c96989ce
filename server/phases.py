"""The phase tools' way into phases/ (imported on first use, never on the start-up path).

A phase tool runs the phase as a background run of its session, like copilot: in a new session, or in the
``session_id`` given (which supplies state such as the plan). The call follows it for ``wait_seconds``;
approvals the phase stops at are asked through elicitation or returned as ``waiting_input``, and answered
through the engine (``resolve_approval``, ``continue_copilot``) like any session's.
"""

from __future__ import annotations

from typing import Any

PHASE_TOOLS: dict[str, str] = {
    "invoke_planning_phase": "planning",
    "invoke_control_phase": "control",
    "invoke_one_shot_phase": "one_shot",
    "invoke_hitl_planning_phase": "hitl_planning",
    "invoke_hitl_control_phase": "hitl_control",
    "invoke_hitl_checkpoint_phase": "hitl_checkpoint",
    "invoke_idea_generation_phase": "idea_generation",
    "invoke_copilot_phase": "copilot",
}
"""MCP tool name -> phase name."""


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
