"""One-shot: one agent does the task end to end (the engineer writes and runs code; the researcher writes text)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .context import PhaseContext, PhaseFailed
from .control import run_step
from .models import Step, StepAgent


class OneShotParams(BaseModel):
    """Parameters of the one-shot phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task, done end to end by one agent.")
    agent: StepAgent = Field("engineer", description="engineer (writes and runs code) or researcher (writes text, runs none).")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts before the task fails (1-10).")


async def run(pctx: PhaseContext, params: OneShotParams) -> dict[str, Any]:
    step = Step(sub_task=params.task, agent=params.agent)
    result = await run_step(pctx, step, 1, max_n_attempts=params.max_n_attempts, label="one_shot")
    output = {"agent": params.agent, "status": result.status, "answer": result.summary, "result": result.model_dump(mode="json"),
              "files": pctx.files(), "work_dir": str(pctx.work_dir)}
    pctx.state["one_shot"] = output["result"]
    if result.status == "failed":
        raise PhaseFailed(result.error or "the task failed", output)
    return output
