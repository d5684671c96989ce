"""One-shot: one agent does the task end to end (the engineer writes and runs code; the researcher writes text)."""

from __future__ import annotations

from typing import Any

from .context import PhaseContext, PhaseFailed
from .control import run_step
from .models import Step
from .params import OneShotParams


async def run(pctx: PhaseContext, params: OneShotParams) -> dict[str, Any]:
    step = Step(sub_task=params.task, agent=params.agent)
    result = await run_step(pctx, step, 1, max_n_attempts=params.max_n_attempts, label="one_shot",
                            review_code=params.review_code, judge_plots=params.judge_plots)
    output = {"agent": params.agent, "status": result.status, "answer": result.summary, "result": result.model_dump(mode="json"),
              "files": pctx.files(), "work_dir": str(pctx.work_dir)}
    pctx.state["one_shot"] = output["result"]
    if result.status == "failed":
        raise PhaseFailed(result.error or "the task failed", output)
    return output
