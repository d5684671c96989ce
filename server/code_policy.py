"""Code execution for remote callers, as the MCP face sees it (design.md section 7).

The gate itself is the engine's: what a session may do is part of its durable record
(``swarm.grants.Grants``, decided when the session is created from the caller's origin and
``SWARM_MCP_REMOTE_CODE``), and the swarm's ``execute_code`` tool and the phases' code execution
obey it at the moment code would run, in whichever process or replica runs the session.

What stays here is a courtesy to the caller: an MCP phase tool whose phase may run code (one-shot
with the engineer, control and hitl_control of a plan with an engineer step, the routed copilot
pass) is refused up front, with an ``isError`` result of kind ``config``, when the session's grants
do not allow code, rather than after its planning has spent model calls.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel

from swarm.grants import Grants, check_code


def check_phase(grants: Grants | None, phase: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Before a phase runs for a call: refuse if it may run code and the session's grants do not allow it."""
    if may_run_code(phase, params, state):
        check_code(grants, f"the {phase} phase (its engineer runs code)")


def may_run_code(phase: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether running ``phase`` with ``params`` in a session with ``state`` (its meta) may execute code."""
    if phase == "one_shot":
        return (params.get("agent") or "engineer") == "engineer"
    if phase in ("control", "hitl_control"):
        plan = params.get("plan") or state.get("plan")
        if isinstance(plan, BaseModel):
            plan = plan.model_dump()
        steps = (plan or {}).get("steps") or []
        return any((s.get("agent") if isinstance(s, Mapping) else getattr(s, "agent", None)) == "engineer" for s in steps)
    return phase == "copilot"  # routes simple tasks to one_shot, which may pick the engineer
