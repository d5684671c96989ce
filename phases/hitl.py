"""Human in the loop: planning with a human approving each plan, control with approvals around steps,
and a standalone checkpoint.

Every gate is ``await pctx.approval(key, message, options)``: with no answer yet the run stops there
and the session waits (status waiting_input, a pending approval with id, message and options);
``resolve_approval`` stores the answer and runs the phase again, which replays everything before
the gate from the journal and goes on with the answer. Decisions:

    hitl_planning     approve: keep the plan | revise: feedback -> the next planning iteration | reject: end (failed)
    hitl_control      before a step: approve | revise (feedback -> the step's instructions) | skip | abort
                      after a step:  approve | retry (run it again, with the feedback) | abort
                      a failed step, in every mode: retry | skip | abort
    hitl_checkpoint   the caller's options; reject and abort end the phase as failed
"""

from __future__ import annotations

from typing import Any

from .context import PhaseContext, PhaseFailed, clip
from .control import control_output, resolve_plan, run_step, select_steps, store_result
from .models import Answer, Plan, StepResult
from .params import HitlCheckpointParams, HitlControlParams, HitlPlanningParams
from .planning import Planners, plan_text, store_plan

PLAN_OPTIONS = ["approve", "revise", "reject"]
BEFORE_OPTIONS = ["approve", "revise", "skip", "abort"]
AFTER_OPTIONS = ["approve", "retry", "abort"]
ERROR_OPTIONS = ["retry", "skip", "abort"]
MAX_RUNS_PER_STEP = 10
"""Most times one step is run again on a human's retry."""


def by(answer: Answer) -> str:
    return f"{answer.who}" + (f": {answer.feedback}" if answer.feedback else "")


async def run_planning(pctx: PhaseContext, params: HitlPlanningParams) -> dict[str, Any]:
    team = Planners(pctx, params.max_plan_steps)
    prompt = f"Task:\n{params.task}\n\nPropose a plan."
    history: list[dict[str, Any]] = []
    for iteration in range(1, params.max_iterations + 1):
        plan = await team.propose(prompt)
        plan, critiques = await team.review_and_revise(plan, params.task, params.n_plan_reviews)
        answer = await pctx.approval(f"plan{iteration}", f"Plan {iteration} for the task:\n{plan_text(plan)}\n\nApprove it, revise it (say what to change) or reject it?",
                                     PLAN_OPTIONS, kind="plan", agent="planner")
        history.append({"iteration": iteration, "plan": plan.model_dump(mode="json"), "reviews": critiques,
                        "decision": answer.decision, "feedback": answer.feedback, "who": answer.who})
        if answer.decision == "approve":
            path = store_plan(pctx, plan)
            return {"plan": plan.model_dump(mode="json"), "answer": plan_text(plan), "approved_by": answer.who, "iterations": history, "plan_path": path,
                    "files": pctx.files(), "work_dir": str(pctx.work_dir)}
        if answer.decision == "reject":
            raise PhaseFailed(f"plan {iteration} was rejected by {by(answer)}", {"iterations": history})
        prompt = f"The human reviewer asks for changes:\n{answer.feedback or 'Improve the plan.'}\n\nRevise the plan (at most {params.max_plan_steps} steps)."
    raise PhaseFailed(f"no plan was approved in {params.max_iterations} iterations", {"iterations": history})


def skipped(index: int, plan: Plan, answer: Answer) -> StepResult:
    step = plan.steps[index - 1]
    return StepResult(index=index, sub_task=step.sub_task, agent=step.agent, status="skipped", summary=f"skipped by {by(answer)}")


async def gated_step(pctx: PhaseContext, plan: Plan, index: int, params: HitlControlParams, done: list[StepResult]) -> StepResult:
    """One step between its gates; returns its result or raises PhaseFailed on abort."""
    step, mode, n = plan.steps[index - 1], params.approval_mode, len(plan.steps)

    def abort(answer: Answer, last: StepResult | None = None) -> PhaseFailed:
        steps = done + ([last] if last else [])
        return PhaseFailed(f"aborted at step {index} by {by(answer)}", control_output(pctx, plan, steps, aborted_at=index))

    feedback = None
    if mode in ("before_step", "both"):
        answer = await pctx.approval(f"step{index}.before", f"Run step {index} of {n} ({step.agent}): {step.sub_task}?",
                                     BEFORE_OPTIONS, kind="step_before", agent="controller")
        if answer.decision == "skip":
            return skipped(index, plan, answer)
        if answer.decision == "abort":
            raise abort(answer)
        feedback = answer.feedback
    for run_no in range(1, MAX_RUNS_PER_STEP + 1):
        label = f"step{index}" if run_no == 1 else f"step{index}_run{run_no}"
        result = await run_step(pctx, step, index, max_n_attempts=params.max_n_attempts, feedback=feedback, label=label)
        if result.status == "failed":
            answer = await pctx.approval(f"step{index}.error{run_no}", f"Step {index} failed: {clip(result.error or '', 1500)}\n\nRetry it (say what to change), skip it or abort?",
                                         ERROR_OPTIONS, kind="step_error", agent="controller")
        elif mode in ("after_step", "both"):
            answer = await pctx.approval(f"step{index}.after{run_no}", f"Step {index} is done: {clip(result.summary, 1500)}\n\nApprove it, retry it (say what to change) or abort?",
                                         AFTER_OPTIONS, kind="step_after", agent="controller")
        else:
            return result
        if answer.decision == "approve":
            return result
        if answer.decision == "skip":
            return skipped(index, plan, answer)
        if answer.decision == "abort":
            store_result(pctx, result)
            raise abort(answer, result)
        feedback = answer.feedback or feedback  # retry
    raise PhaseFailed(f"step {index} was run {MAX_RUNS_PER_STEP} times without being approved", control_output(pctx, plan, done))


async def run_control(pctx: PhaseContext, params: HitlControlParams) -> dict[str, Any]:
    plan = resolve_plan(pctx, params.plan)
    results: list[StepResult] = []
    for index in select_steps(plan, params.step):
        result = await gated_step(pctx, plan, index, params, results)
        store_result(pctx, result)
        results.append(result)
    return control_output(pctx, plan, results, approval_mode=params.approval_mode)


async def run_checkpoint(pctx: PhaseContext, params: HitlCheckpointParams) -> dict[str, Any]:
    answer = await pctx.approval("checkpoint", params.message, params.options, kind=f"checkpoint:{params.checkpoint_type}")
    output = {"checkpoint_type": params.checkpoint_type, "approval_id": answer.id, "decision": answer.decision,
              "feedback": answer.feedback, "who": answer.who, "answer": f"{answer.decision} by {by(answer)}"}
    pctx.state.setdefault("checkpoints", {})[answer.id] = output
    if answer.decision in ("reject", "abort"):
        raise PhaseFailed(f"checkpoint {params.checkpoint_type!r}: {answer.decision} by {by(answer)}", output)
    return output
