"""The data phases exchange with models and callers: plans, code answers, ideas, step results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from swarm.events import Usage
from swarm.session import PendingApproval

from .params import Plan, Step, StepAgent  # (the shapes callers pass in live with the parameters)



class CodeAnswer(BaseModel):
    """The engineer's answer for a step: one complete program (JSON)."""

    model_config = ConfigDict(extra="ignore")
    language: Literal["python", "bash"] = Field("python", description="python or bash.")
    code: str = Field(min_length=1, description="The complete program, not a fragment.")
    explanation: str = Field("", description="One or two sentences: what the program does and which files it writes.")


class ImprovedTask(BaseModel):
    """The task improver's answer (JSON)."""

    model_config = ConfigDict(extra="ignore")
    task: str = Field(min_length=1, description="The task rewritten: precise and self-contained (goal, inputs, deliverables, constraints).")
    changes: str = Field("", description="One sentence: what was made precise, and which defaults were chosen.")


class CodeReview(BaseModel):
    """The code reviewer's verdict on a step's program and its run (JSON)."""

    model_config = ConfigDict(extra="ignore")
    verdict: Literal["approve", "request_changes"] = Field(description="approve, or request_changes (then list the issues).")
    issues: list[str] = Field(default_factory=list, description="What must change, one concrete item per issue; empty when approving.")


class PlotVerdict(BaseModel):
    """The plot judge's verdict on the figures a step wrote (JSON)."""

    model_config = ConfigDict(extra="ignore")
    verdict: Literal["ok", "redo"] = Field(description="ok, or redo (then list the problems).")
    problems: list[str] = Field(default_factory=list, description="What is wrong, naming the figure and what to change; empty when ok.")


class StepReview(BaseModel):
    """A code reviewer's or plot judge's verdict on one attempt of a step (kept in the step result)."""

    attempt: int
    agent: Literal["code_reviewer", "plot_judge"]
    verdict: Literal["approve", "request_changes", "ok", "redo"]
    issues: list[str] = Field(default_factory=list)
    figures: list[str] = Field(default_factory=list, description="The figures the plot judge was shown (relative paths).")


class Idea(BaseModel):
    """One idea of the idea maker."""

    model_config = ConfigDict(extra="ignore")
    title: str = Field(min_length=1, description="A short name for the idea.")
    description: str = Field("", description="Two or three sentences: what it is and why it could work.")


class IdeaList(BaseModel):
    """The idea maker's answer (JSON)."""

    model_config = ConfigDict(extra="ignore")
    ideas: list[Idea] = Field(description="The ideas, best first.")


class IdeaCritique(BaseModel):
    """The idea hater's verdict on one idea."""

    model_config = ConfigDict(extra="ignore")
    title: str = Field(description="The title of the idea criticised.")
    critique: str = Field(description="Its biggest weakness, main risk and what evidence would change the verdict.")
    score: int = Field(5, ge=0, le=10, description="How promising the idea still is, 0-10.")


class CritiqueList(BaseModel):
    """The idea hater's answer (JSON)."""

    model_config = ConfigDict(extra="ignore")
    critiques: list[IdeaCritique] = Field(description="One critique per idea, in the ideas' order.")


class RankedIdea(BaseModel):
    """An idea of the phase output, with its last critique."""

    rank: int
    title: str
    description: str
    critique: str | None = None
    score: int | None = None


class StepResult(BaseModel):
    """What happened to one step (kept in the session state as ``step_results``)."""

    index: int = Field(description="1-based step number.")
    sub_task: str
    agent: StepAgent
    status: Literal["completed", "failed", "skipped"]
    attempts: int = 0
    summary: str = Field("", description="Bounded summary carried into the next steps.")
    error: str | None = Field(None, description="The last error, when the step failed.")
    files: list[str] = Field(default_factory=list, description="Files the step wrote, relative to the work dir.")
    isolation: str | None = Field(None, description="How the code ran: 'bubblewrap' or 'rlimits (...)'; None for text steps.")
    exit_code: int | None = None
    reviews: list[StepReview] = Field(default_factory=list, description="Verdicts of the code reviewer and the plot judge, per attempt.")


class Answer(BaseModel):
    """A human's answer to an approval."""

    id: str
    decision: str
    feedback: str | None = None
    who: str = "user"


class PhaseResult(BaseModel):
    """What a standalone phase run returns."""

    session_id: str
    phase: str
    status: Literal["completed", "waiting_input", "failed", "running"] = Field(
        description="completed | waiting_input (answer pending_approval with resolve_approval) | failed | running (already running elsewhere)."
    )
    output: dict[str, Any] | None = Field(None, description="The phase output (also kept in the session state).")
    error: str | None = None
    pending_approval: PendingApproval | None = None
    usage: dict[str, Usage] = Field(default_factory=dict, description="Tokens per model spec over the session.")
    total_tokens: int = 0
    work_dir: str | None = None
