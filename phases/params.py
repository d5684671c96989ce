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


IMPROVE_TASK = "Rewrite task first."
REVIEW_CODE = "Review code."
JUDGE_PLOTS = "Judge figures."


class PlanningBase(BaseModel):
    """What every planning phase takes."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task.")
    max_plan_steps: int = Field(3, ge=1, le=10, description="Most plan steps, 1-10.")
    n_plan_reviews: int = Field(1, ge=0, le=5, description="Review rounds, 0-5.")


class PlanningParams(PlanningBase):
    """Parameters of the planning phase."""

    improve_task: bool = Field(False, description=IMPROVE_TASK)


class ControlBase(BaseModel):
    """What every control phase takes."""

    model_config = ConfigDict(extra="forbid")
    plan: Plan | None = Field(None, description="Default: the session's plan.")
    step: int | None = Field(None, ge=1, description="Only this step (1-based); default: all.")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts per step, 1-10.")


class ControlParams(ControlBase):
    """Parameters of the control phase."""

    review_code: bool = Field(False, description=REVIEW_CODE)
    judge_plots: bool = Field(False, description=JUDGE_PLOTS)


class OneShotParams(BaseModel):
    """Parameters of the one-shot phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task.")
    agent: StepAgent = Field("engineer", description="engineer codes, researcher writes.")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts, 1-10.")
    review_code: bool = Field(False, description=REVIEW_CODE)
    judge_plots: bool = Field(False, description=JUDGE_PLOTS)


class IdeaGenerationParams(BaseModel):
    """Parameters of the idea generation phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="What to find ideas for.")
    n_ideas: int = Field(3, ge=1, le=10, description="How many ideas, 1-10.")
    n_reviews: int = Field(1, ge=0, le=5, description="Critique rounds, 0-5.")


class HitlPlanningParams(PlanningBase):
    """Parameters of the human-in-the-loop planning phase."""

    max_iterations: int = Field(3, ge=1, le=10, description="Most plans put to the human, 1-10.")


class HitlControlParams(ControlBase):
    """Parameters of the human-in-the-loop control phase."""

    approval_mode: Literal["before_step", "after_step", "both", "on_error"] = Field(
        "before_step", description="When to ask; failures always ask.")


class HitlCheckpointParams(BaseModel):
    """Parameters of a standalone approval gate."""

    model_config = ConfigDict(extra="forbid")
    checkpoint_type: str = Field("review", pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Gate kind.")
    message: str = Field(min_length=1, max_length=4000, description="The question.")
    options: list[str] = Field(default_factory=lambda: ["approve", "reject"], min_length=1, max_length=10,
                               description="Allowed decisions (1-10 words); reject/abort fail it.")

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
    task: str = Field(min_length=1, max_length=20_000, description="The task.")
    max_plan_steps: int = Field(3, ge=1, le=10, description="Most plan steps, 1-10.")
    n_plan_reviews: int = Field(1, ge=0, le=5, description="Plan reviews, 0-5.")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts per step, 1-10.")
    n_ideas: int = Field(3, ge=1, le=10, description="How many ideas, if asked for, 1-10.")
    max_questions: int = Field(2, ge=0, le=5, description="Most clarifying questions, 0-5.")
    improve_task: bool = Field(False, description=IMPROVE_TASK)
    review_code: bool = Field(False, description=REVIEW_CODE)
    judge_plots: bool = Field(False, description=JUDGE_PLOTS)
