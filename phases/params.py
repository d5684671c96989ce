"""What phases take: every phase's parameters, and the plan a caller may pass. Light (pydantic only), so that
the registry - and the MCP tools generated from it - load without the agents behind the phases."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

StepAgent = Literal["engineer", "researcher"]


class Step(BaseModel):
    """One step of a plan."""

    model_config = ConfigDict(extra="ignore")
    sub_task: str = Field(min_length=1, description="What this step must do, self-contained.")
    agent: StepAgent = Field(description="Who does it: engineer (writes and runs code) or researcher (writes text).")
    bullet_points: list[str] = Field(default_factory=list, description="Two or three things the step must deliver.")


class Plan(BaseModel):
    """A structured plan: the planner's answer (JSON)."""

    model_config = ConfigDict(extra="ignore")
    steps: list[Step] = Field(description="The steps, in order.")


class PlanningParams(BaseModel):
    """Parameters of the planning phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task to plan.")
    max_plan_steps: int = Field(3, ge=1, le=10, description="Most steps a plan may have (1-10).")
    n_plan_reviews: int = Field(1, ge=0, le=5, description="How many review-and-revise rounds (0-5).")


class ControlParams(BaseModel):
    """Parameters of the control phase."""

    model_config = ConfigDict(extra="forbid")
    plan: Plan | None = Field(None, description="The plan to run; default: the plan kept in the session (from planning).")
    step: int | None = Field(None, ge=1, description="Run only this step (1-based); default: every step.")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts per step before it fails (1-10).")


class OneShotParams(BaseModel):
    """Parameters of the one-shot phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task, done end to end by one agent.")
    agent: StepAgent = Field("engineer", description="engineer (writes and runs code) or researcher (writes text, runs none).")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts before the task fails (1-10).")


class IdeaGenerationParams(BaseModel):
    """Parameters of the idea generation phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The problem to generate ideas for.")
    n_ideas: int = Field(3, ge=1, le=10, description="How many ideas (1-10).")
    n_reviews: int = Field(1, ge=0, le=5, description="How many critique-and-refine rounds (0-5).")


class HitlPlanningParams(PlanningParams):
    """Parameters of the human-in-the-loop planning phase."""

    max_iterations: int = Field(3, ge=1, le=10, description="Most plans put to the human before the phase gives up (1-10).")


class HitlControlParams(ControlParams):
    """Parameters of the human-in-the-loop control phase."""

    approval_mode: Literal["before_step", "after_step", "both", "on_error"] = Field(
        "before_step", description="When to ask: before_step, after_step, both, or on_error only (a failed step is always put to the human).")


class HitlCheckpointParams(BaseModel):
    """Parameters of a standalone approval gate."""

    model_config = ConfigDict(extra="forbid")
    checkpoint_type: str = Field("review", pattern=r"^[a-z][a-z0-9_]{0,31}$", description="What the gate is for, e.g. review, plan, results, deploy.")
    message: str = Field(min_length=1, max_length=4000, description="What the human is asked.")
    options: list[str] = Field(default_factory=lambda: ["approve", "reject"], min_length=1, max_length=10,
                               description="The decisions allowed (lowercase words); reject and abort end the phase as failed.")

    @field_validator("options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        cleaned = [o.strip().lower() for o in value]
        if any(not o or len(o) > 32 or not o.replace("_", "").isalnum() for o in cleaned):
            raise ValueError("each option must be one word of letters, digits or underscores, at most 32 characters")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("options must be distinct")
        return cleaned


class CopilotParams(BaseModel):
    """Parameters of the copilot phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task; the router picks how it is done.")
    max_plan_steps: int = Field(3, ge=1, le=10, description="For complex tasks: most plan steps (1-10).")
    n_plan_reviews: int = Field(1, ge=0, le=5, description="For complex tasks: plan review rounds (0-5).")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts per step / one-shot task (1-10).")
    n_ideas: int = Field(3, ge=1, le=10, description="For requests for ideas: how many (1-10).")
    max_questions: int = Field(2, ge=0, le=5, description="Most clarifying questions before a vague task is attempted anyway (0-5).")
