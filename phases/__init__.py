"""The phases: planning, control, one-shot, idea generation, human in the loop, copilot.

Each phase is a small program over swarm/ (see phases.registry); phases.runner runs them standalone
(``run_phase``, ``resolve_approval``) or as tools of a swarm session (``phase_tool_registry``). The names
below are imported on first use, so that the registry alone (the MCP server's start-up path) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "PHASES": "registry", "Phase": "registry", "describe_phases": "registry", "get_phase": "registry", "register_phase": "registry",
    "PhaseResult": "models", "phase_tool_registry": "tools", "resolve_approval": "runner", "resume_phase": "runner", "run_phase": "runner",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'phases' has no attribute {name!r}")
    return getattr(import_module(f"phases.{module}"), name)
