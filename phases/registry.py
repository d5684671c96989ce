"""The phase registry: every phase's name, description, parameters and run.

The phases reach the swarm as tools (``invoke_<name>_phase``, phases/tools.py) and as a kind of
session work a durable engine runs (phases/runner.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from pydantic import BaseModel, ValidationError

from swarm.errors import UserInputError

from . import control, copilot, hitl, idea_generation, one_shot, planning
from .context import PhaseContext

PhaseRun = Callable[[PhaseContext, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Phase:
    """One phase: what it is called, what it does, what it takes, and the function that runs it."""

    name: str
    description: str
    params: type[BaseModel]
    run: PhaseRun
    interactive: bool = False
    """It may stop at an approval and wait for a human (hitl_*, copilot's clarifying question)."""
    check: Callable[[dict[str, Any], Any], None] | None = None
    """Checks the parameters against the session state before a run starts (raises UserInputError)."""

    @property
    def tool_name(self) -> str:
        return f"invoke_{self.name}_phase"

    def validate(self, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validated parameters; a bad one is a UserInputError naming it and what is allowed."""
        if isinstance(params, self.params):
            return params
        data = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
        try:
            return self.params.model_validate(data)
        except ValidationError as exc:
            raise UserInputError(params_error(self, exc)) from None

    async def execute(self, pctx: PhaseContext, params: BaseModel) -> dict[str, Any]:
        """Run the phase between its phase_start and phase_end events."""
        return await pctx.phase(self.name, params, self.run)


def params_error(phase: Phase, exc: ValidationError) -> str:
    err = exc.errors()[0]
    name = ".".join(str(p) for p in err["loc"]) or "(parameters)"
    allowed = sorted(phase.params.model_fields)
    if err["type"] == "extra_forbidden":
        return f"{phase.name}: unknown parameter {name!r}; the parameters are {allowed}"
    if err["type"] == "missing":
        return f"{phase.name}: parameter {name!r} is required"
    top = str(err["loc"][0]) if err["loc"] else ""
    field = phase.params.model_fields.get(top)
    hint = f" ({field.description})" if field is not None and field.description else ""
    return f"{phase.name}: parameter {name!r}: {err['msg']}, got {err.get('input')!r}{hint}"


PHASES: dict[str, Phase] = {p.name: p for p in [
    Phase("planning", "The planner proposes a structured plan (steps with sub_task, agent, bullet_points); the plan reviewer critiques it and the planner revises it, n_plan_reviews times.",
          planning.PlanningParams, planning.run),
    Phase("control", "Runs a plan's steps in order with each step's agent: the engineer's code runs sandboxed in the session work dir and is fixed on failure up to max_n_attempts; the researcher writes markdown.",
          control.ControlParams, control.run, check=control.check_params),
    Phase("one_shot", "One agent does the task end to end: the engineer (writes and runs code) or the researcher (writes text).",
          one_shot.OneShotParams, one_shot.run),
    Phase("idea_generation", "The idea maker proposes ideas, the idea hater critiques them and the maker refines them, n_reviews times; returns the ideas ranked, each with its critique.",
          idea_generation.IdeaGenerationParams, idea_generation.run),
    Phase("hitl_planning", "Planning with a human: each plan is put to a human who approves it, asks for a revision (with feedback) or rejects it.",
          hitl.HitlPlanningParams, hitl.run_planning, interactive=True),
    Phase("hitl_control", "Control with a human approving steps (before_step, after_step, both or on_error): approve, revise, retry, skip or abort.",
          hitl.HitlControlParams, hitl.run_control, interactive=True, check=control.check_params),
    Phase("hitl_checkpoint", "A standalone approval gate: the session waits until a human picks one of the options.",
          hitl.HitlCheckpointParams, hitl.run_checkpoint, interactive=True),
    Phase("copilot", "One routed pass: simple tasks go to one agent (one_shot), complex ones to planning then control, requests for ideas to idea_generation, vague ones to a clarifying question.",
          copilot.CopilotParams, copilot.run, interactive=True),
]}


def get_phase(name: str) -> Phase:
    phase = PHASES.get(name)
    if phase is None:
        raise UserInputError(f"unknown phase {name!r}; the phases are {sorted(PHASES)}")
    return phase


def describe_phases() -> list[dict[str, Any]]:
    """Name, tool name, description and JSON schema of the parameters of every phase (for swarm://phases)."""
    return [{"name": p.name, "tool": p.tool_name, "description": p.description, "interactive": p.interactive,
             "parameters": p.params.model_json_schema()} for p in PHASES.values()]
