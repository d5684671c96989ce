"""The phase tools' way into phases/ (imported on first use, never on the start-up path).

A phase tool runs the phase as a background run of its session, like copilot: in a new session of
kind ``phase:<name>``, or in the ``session_id`` given (which supplies state such as the plan). The
call follows it for ``wait_seconds``; approvals the phase stops at are asked through elicitation or
returned as ``waiting_input``; answers go through ``phases.runner.resolve_approval``.
"""

from __future__ import annotations

from typing import Any

from swarm.errors import UserInputError

from .code_policy import check_phase

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


def is_phase_session(record: Any) -> bool:
    return str(record.kind).startswith("phase:")


def last_output(record: Any) -> Any:
    """The structured output of a phase session's last run (a plan, ranked ideas, step results ...)."""
    runs = (record.meta or {}).get("phase_runs") or []
    return runs[-1].get("output") if runs else None


async def run_phase(service: Any, call: Any, phase_name: str, args: dict[str, Any], wait: float) -> Any:
    """Start the phase as a run of its session and follow it."""
    from phases.registry import get_phase
    from phases.runner import run_phase as run, task_of

    engine = await service.engine()
    phase = get_phase(phase_name)
    session_id = args.pop("session_id", None)
    params = phase.validate({k: v for k, v in args.items() if v is not None})
    if session_id is None:
        if phase.check is not None:
            phase.check({}, params)
        check_phase(engine.grants_for(call.origin, sampling=service.samples(call)), phase_name, params.model_dump(), {})
        service._check_sampling(call)
        record = await engine.create(task_of(phase, params), kind=f"phase:{phase_name}", principal=call.principal,
                                     origin=call.origin, sampling=service.samples(call))
        session_id = record.id
    else:
        record = await engine.admit(session_id, call.principal, call.origin)
        check_phase(record.grants, phase_name, params.model_dump(), record.meta or {})
    sid = session_id
    await service.start(call, sid, work=lambda: run(engine, phase_name, params, session_id=sid, principal=call.principal))
    return await service.follow(call, sid, wait)


async def resume(service: Any, call: Any, record: Any, message: str | None) -> None:
    """continue_copilot on a phase session: answer its approval with the message, or resume an interrupted run."""
    from phases.runner import resume_phase

    check_code(record)

    if record.status == "waiting_input" and record.pending is not None:
        if not message:
            raise UserInputError(f"session {record.id} waits for approval {record.pending.id} ({record.pending.message!r}); "
                                 f"answer it with resolve_approval (one of {list(record.pending.options)}) or pass the decision as message")
        await answer(service, call, record, record.pending, message, None)
        return
    if message:
        raise UserInputError(f"session {record.id} runs the {record.kind.split(':', 1)[1]} phase, which takes no message; "
                             "start a session with copilot, or run a phase with session_id to build on this one")
    engine = await service.engine()
    await service.start(call, record.id, work=lambda: resume_phase(engine, record.id, principal=call.principal))


def check_code(record: Any) -> None:
    """Before a phase session goes on for a call: its grants, with the parameters of its last phase run."""
    runs = (record.meta or {}).get("phase_runs") or []
    params = runs[-1].get("params") or {} if runs else {}
    name = runs[-1].get("name") if runs else str(record.kind).split(":", 1)[1]
    check_phase(record.grants, name, params, record.meta or {})


def check_decision(pending: Any, decision: str, feedback: str | None) -> tuple[str, str | None]:
    """The decision as the phase will read it (synonyms folded); a UserInputError names the allowed ones."""
    from phases.runner import normalize

    return normalize(decision, feedback, pending)


async def answer(service: Any, call: Any, record: Any, pending: Any, decision: str, feedback: str | None) -> None:
    """Answer a phase session's pending approval; the phase goes on as a run of the session."""
    from phases.runner import resolve_approval

    decision, feedback = check_decision(pending, decision, feedback)
    check_code(record)
    engine = await service.engine()
    await service.start(call, record.id, work=lambda: resolve_approval(engine, record.id, pending.id, decision, feedback,
                                                                         principal=call.principal))


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
