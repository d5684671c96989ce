"""The phase registry: every phase's name, what it does, what it takes, where its run lives, and what it may do.

It is light (pydantic and the parameters in phases/params.py): the MCP server generates its ``invoke_<name>_phase``
tools from it at start-up, and a phase's run (with the agents behind it) is imported when the phase first runs.
A new phase is one module plus one ``register_phase(Phase(...))``. The phases reach the swarm as tools (phases/tools.py)
and as a kind of session work a durable engine runs (phases/work.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal, Mapping

from pydantic import BaseModel, ValidationError

from swarm.errors import UserInputError

from . import params as p

if TYPE_CHECKING:
    from .context import PhaseContext

PhaseRun = Callable[["PhaseContext", Any], Awaitable[dict[str, Any]]]
Check = Callable[[dict[str, Any], Any], None]


def _resolve(target: Any) -> Any:
    """A callable, or the ``"module:attribute"`` that names one (imported on first use)."""
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        return getattr(import_module(module), attribute)
    return target


@dataclass(frozen=True)
class Phase:
    """One phase: what it is called, what it does, what it takes, and the function that runs it."""

    name: str
    description: str
    params: type[BaseModel]
    run: PhaseRun | str
    """``run(pctx, params) -> output``, or the ``"module:function"`` that is it."""
    interactive: bool = False
    """It may stop at an approval and wait for a human (hitl_*, copilot's clarifying question)."""
    check: Check | str | None = None
    """Checks the parameters against the session state before a run starts (raises UserInputError)."""
    title: str = ""
    """A short human title (the MCP tool's)."""
    guide: str = ""
    """What a caller of the MCP tool reads (default: the description)."""
    session: Literal["optional", "required"] = "optional"
    """Whether the MCP tool needs the session_id of an existing session (one with a plan, ...)."""
    runs_code: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | bool = False
    """Whether a run with these parameters in a session with this state (its meta) may execute code."""
    tool: str = ""
    """The MCP tool's name, when not ``invoke_<name>_phase``."""

    @property
    def tool_name(self) -> str:
        return self.tool or f"invoke_{self.name}_phase"

    def validate(self, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validated parameters; a bad one is a UserInputError naming it and what is allowed."""
        if isinstance(params, self.params):
            return params
        data = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
        try:
            return self.params.model_validate(data)
        except ValidationError as exc:
            raise UserInputError(params_error(self, exc)) from None

    def check_params(self, state: dict[str, Any], params: BaseModel) -> None:
        """The phase's own check of its parameters against the session state, if it has one."""
        if self.check is not None:
            _resolve(self.check)(state, params)

    def may_run_code(self, params: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
        return self.runs_code(params, state) if callable(self.runs_code) else bool(self.runs_code)

    async def execute(self, pctx: "PhaseContext", params: BaseModel) -> dict[str, Any]:
        """Run the phase between its phase_start and phase_end events."""
        return await pctx.phase(self.name, params, _resolve(self.run))


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


def _engineer_in_plan(params: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    plan = params.get("plan") or state.get("plan")
    if isinstance(plan, BaseModel):
        plan = plan.model_dump()
    steps = (plan or {}).get("steps") or []
    return any((s.get("agent") if isinstance(s, Mapping) else getattr(s, "agent", None)) == "engineer" for s in steps)


def _engineer_agent(params: Mapping[str, Any], _state: Mapping[str, Any]) -> bool:
    return (params.get("agent") or "engineer") == "engineer"


PHASES: dict[str, Phase] = {}
"""Every phase by name, in the order they were registered."""


def register_phase(phase: Phase) -> Phase:
    """Add a phase: it becomes a tool of the swarm and, in servers built after this, the MCP tool ``invoke_<name>_phase``."""
    if not phase.name.isidentifier() or not phase.name.islower():
        raise UserInputError(f"phase name {phase.name!r}: use lowercase letters, digits and underscores (it names the tool {phase.tool_name!r})")
    if phase.name in PHASES:
        raise UserInputError(f"a phase named {phase.name!r} is already registered")
    PHASES[phase.name] = phase
    return phase


for _phase in [
    Phase("planning", "The planner proposes a structured plan (steps with sub_task, agent, bullet_points); the plan reviewer critiques it and the planner revises it, n_plan_reviews times.",
          p.PlanningParams, "phases.planning:run", title="Planning phase",
          guide="Plan a task: a planner drafts steps, a reviewer critiques them; the plan is kept for invoke_control_phase."),
    Phase("control", "Runs a plan's steps in order with each step's agent: the engineer's code runs sandboxed in the session work dir and is fixed on failure up to max_n_attempts; the researcher writes markdown.",
          p.ControlParams, "phases.control:run", check="phases.control:check_params", title="Control phase", runs_code=_engineer_in_plan,
          guide="Run a plan's steps by their agents (code runs sandboxed); pass a plan or a planned session_id."),
    Phase("one_shot", "One agent does the task end to end: the engineer (writes and runs code) or the researcher (writes text).",
          p.OneShotParams, "phases.one_shot:run", title="One-shot phase", runs_code=_engineer_agent,
          guide="One agent does the task: the engineer writes and runs code, the researcher writes."),
    Phase("idea_generation", "The idea maker proposes ideas, the idea hater critiques them and the maker refines them, n_reviews times; returns the ideas ranked, each with its critique.",
          p.IdeaGenerationParams, "phases.idea_generation:run", title="Idea generation phase",
          guide="Generate ideas: one agent proposes, another critiques, the first refines; returns them ranked."),
    Phase("hitl_planning", "Planning with a human: each plan is put to a human who approves it, asks for a revision (with feedback) or rejects it.",
          p.HitlPlanningParams, "phases.hitl:run_planning", interactive=True, title="Planning with human approval",
          guide="Planning where you approve, revise or reject each plan (status waiting_input)."),
    Phase("hitl_control", "Control with a human approving steps (before_step, after_step, both or on_error): approve, revise, retry, skip or abort.",
          p.HitlControlParams, "phases.hitl:run_control", interactive=True, check="phases.control:check_params", title="Control with human approval",
          session="required", runs_code=_engineer_in_plan,
          guide="Run a session's plan with you approving steps: approve, revise, retry, skip or abort."),
    Phase("hitl_checkpoint", "A standalone approval gate: the session waits until a human picks one of the options.",
          p.HitlCheckpointParams, "phases.hitl:run_checkpoint", interactive=True, title="Approval checkpoint",
          guide="An approval gate: the session waits until you pick an option."),
    Phase("copilot", "One routed pass: simple tasks go to one agent (one_shot), complex ones to planning then control, requests for ideas to idea_generation, vague ones to a clarifying question.",
          p.CopilotParams, "phases.copilot:run", interactive=True, title="One routed pass", runs_code=True,
          guide="One routed pass: one agent, plan then execute, ideas, or a clarifying question."),
]:
    register_phase(_phase)


def get_phase(name: str) -> Phase:
    phase = PHASES.get(name)
    if phase is None:
        raise UserInputError(f"unknown phase {name!r}; the phases are {sorted(PHASES)}")
    return phase


def describe_phases() -> list[dict[str, Any]]:
    """Name, tool name, description and JSON schema of the parameters of every phase (for swarm://phases)."""
    return [{"name": p.name, "tool": p.tool_name, "description": p.description, "interactive": p.interactive,
             "parameters": p.params.model_json_schema()} for p in PHASES.values()]
