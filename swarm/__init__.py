"""swarm-mcp's engine, and its Python API::

    from swarm import copilot, continue_copilot, full_swarm, quick_swarm, SwarmConfig, SwarmOrchestrator

The names below are imported on first use (swarm/api.py and its neighbours), so that ``import swarm`` - which every
module of the package pays for, the MCP server's start-up path included - imports nothing heavy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import (SwarmConfig, SwarmOrchestrator, acontinue_copilot, acopilot, afull_swarm, aquick_swarm, aresolve_approval,
                      continue_copilot, copilot, full_swarm, model_source, quick_swarm, resolve_approval)
    from .approval_manager import ApprovalDecision, ApprovalManager, ApprovalRequest
    from .profiles import Budget
    from .results import SessionResult

_WHERE = {
    **dict.fromkeys(["copilot", "continue_copilot", "full_swarm", "quick_swarm", "resolve_approval", "acopilot", "acontinue_copilot",
                     "afull_swarm", "aquick_swarm", "aresolve_approval", "SwarmConfig", "SwarmOrchestrator", "model_source"], "api"),
    **dict.fromkeys(["ApprovalRequest", "ApprovalDecision", "ApprovalManager"], "approval_manager"),
    "SessionResult": "results", "Budget": "profiles",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'swarm' has no attribute {name!r}")
    return getattr(import_module(f"swarm.{module}"), name)
