"""The phases: planning, control, one-shot, idea generation, human in the loop, copilot.

Each phase is a small program over swarm/ (see phases.registry); phases.runner runs them standalone
(``run_phase``, ``resolve_approval``) or as tools of a swarm session (``phase_tool_registry``).
"""

from .models import PhaseResult
from .registry import PHASES, Phase, describe_phases, get_phase
from .tools import phase_tool_registry
from .runner import resolve_approval, resume_phase, run_phase

__all__ = ["PHASES", "Phase", "PhaseResult", "describe_phases", "get_phase", "phase_tool_registry", "resolve_approval", "resume_phase", "run_phase"]
