"""The phases as swarm tools: each phase is an ``invoke_<name>_phase`` tool (swarm.tools.ToolProvider), so an
agent whose manifest lists it (copilot_control, planner, controller) runs the phase mid-session; and phase runs
are a kind of session work the engine's durable runs play: ``Engine(settings, tools=phase_tool_registry())``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autogen_core import CancellationToken
from autogen_core.tools import BaseTool
from pydantic import BaseModel

from swarm.tools import SessionContext, ToolRegistry, default_registry

from .registry import PHASES, Phase
from .runner import WORK_KIND, run_as_tool
from .work import PhaseWork


class PhaseTool(BaseTool[BaseModel, BaseModel]):
    """A phase as an autogen tool bound to one session; it returns the phase result as JSON text."""

    def __init__(self, phase: Phase, ctx: SessionContext) -> None:
        super().__init__(phase.params, str, phase.tool_name, phase.description)  # type: ignore[arg-type]
        self.phase = phase
        self.ctx = ctx

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        return await run_as_tool(self.phase, self.ctx, args)

    def return_value_as_string(self, value: Any) -> str:
        return str(value)


@dataclass
class PhaseToolProvider:
    """swarm.tools.ToolProvider for one phase."""

    phase: Phase

    @property
    def name(self) -> str:
        return self.phase.tool_name

    @property
    def description(self) -> str:
        return self.phase.description

    def build(self, ctx: SessionContext) -> BaseTool[Any, Any]:
        return PhaseTool(self.phase, ctx)


def phase_tool_registry(base: ToolRegistry | None = None) -> ToolRegistry:
    """``base`` (default: swarm's built-in tools) plus one ``invoke_<name>_phase`` tool per phase, and phase runs
    as a kind of session work (``WORK_KIND``) a durable engine plays as a workflow."""
    base = base if base is not None else default_registry()
    registry = ToolRegistry({name: base.get(name) for name in base.names()}, works=base.works)  # type: ignore[misc]
    for phase in PHASES.values():
        registry.add(PhaseToolProvider(phase), phase=True)
    registry.works[WORK_KIND] = PhaseWork()
    return registry
