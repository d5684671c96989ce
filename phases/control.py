"""Control: run a plan's steps in order, each with its agent.

    for each step:
        engineer:   code = engineer(step); result = executor runs it (sandbox, work dir)
                    on failure the error goes back to the engineer, up to max_n_attempts
        researcher: markdown = researcher(step) -> step<N>_<slug>.md in the work dir
        the step's bounded summary is carried into the next steps; a failed step stops the plan
    review_code / judge_plots: an engineer step's successful run is reviewed and its figures judged; a verdict
        against it goes back to the engineer as the next attempt (phases/review.py)
"""

from __future__ import annotations

from typing import Any

from swarm.errors import ModelBehaviourError, UserInputError
from swarm.sandbox import ExecutionResult

from .context import PhaseContext, PhaseFailed, clip, slug
from .models import CodeAnswer, Plan, Step, StepResult
from .params import ControlParams
from .review import StepChecks

SUMMARY_CHARS = 1200
"""Most characters of one step's summary."""
CARRY_CHARS = 4000
"""Most characters of earlier steps' summaries handed to a step (the most recent kept)."""
ENGINEER_NOTE = (
    "Reply with a JSON document only: {\"language\": \"python\" | \"bash\", \"code\": \"<the complete program>\", "
    "\"explanation\": \"<one or two sentences>\"}. The orchestrator runs the program in the work directory "
    "(the current directory) and shows you its output. Save files in the current directory (data in data/); print the results."
)
NO_PLAN = "control needs a plan: pass plan, or run it in a session (session_id) that has one from planning"
RESEARCHER_NOTE = "Reply with the markdown document itself; it is saved as a file in the work directory."


def resolve_plan(pctx: PhaseContext, plan: Plan | None) -> Plan:
    if plan is None:
        saved = pctx.state.get("plan")
        if not saved:
            raise UserInputError(NO_PLAN)
        return Plan.model_validate(saved)
    if not plan.steps:
        raise UserInputError("plan must have at least one step")
    if pctx.state.get("plan") != plan.model_dump(mode="json"):
        from .planning import store_plan

        store_plan(pctx, plan)
    return plan


def check_params(state: dict[str, Any], params: ControlParams) -> None:
    """Before a run: there is a plan to run, and the step asked for is in it."""
    saved = state.get("plan")
    plan = params.plan or (Plan.model_validate(saved) if saved else None)
    if plan is None:
        raise UserInputError(NO_PLAN)
    select_steps(plan, params.step)


def select_steps(plan: Plan, step: int | None) -> list[int]:
    if step is None:
        return list(range(1, len(plan.steps) + 1))
    if step > len(plan.steps):
        raise UserInputError(f"step must be between 1 and {len(plan.steps)} (the plan has {len(plan.steps)} steps), got {step}")
    return [step]


def carry_text(pctx: PhaseContext, before: int) -> str:
    """Summaries of the finished steps before step ``before``, newest kept when too long."""
    parts = [f"Step {r['index']} ({r['status']}): {r['summary'] or r.get('error') or ''}"
             for r in pctx.state.get("step_results", []) if r["index"] < before and r["status"] != "failed"]
    text = "\n".join(parts)
    return text if len(text) <= CARRY_CHARS else "...[earlier steps cut]\n" + text[-CARRY_CHARS:]


def step_prompt(step: Step, index: int, carry: str, feedback: str | None) -> str:
    lines = [f"Step {index}: {step.sub_task}"]
    lines += [f"- {b}" for b in step.bullet_points]
    if carry:
        lines += ["", "What earlier steps produced:", carry]
    if feedback:
        lines += ["", f"Instructions from the human reviewer: {feedback}"]
    return "\n".join(lines)


def store_result(pctx: PhaseContext, result: StepResult) -> None:
    results = [r for r in pctx.state.get("step_results", []) if r["index"] != result.index]
    results.append(result.model_dump(mode="json"))
    pctx.state["step_results"] = sorted(results, key=lambda r: r["index"])


async def run_step(pctx: PhaseContext, step: Step, index: int, *, max_n_attempts: int, feedback: str | None = None,
                   label: str | None = None, review_code: bool = False, judge_plots: bool = False) -> StepResult:
    """Run one step with its agent; never raises for the step's own failure (the result says so). An engineer step's
    successful run is then reviewed (``review_code``) and its figures judged (``judge_plots``): see phases/review.py."""
    prompt = step_prompt(step, index, carry_text(pctx, index), feedback)
    label = label or f"step{index}"
    try:
        if step.agent == "engineer":
            checks = StepChecks(pctx, step, index, review_code=review_code, judge_plots=judge_plots)
            return await engineer_step(pctx, step, index, prompt, max_n_attempts, label, checks)
        return await researcher_step(pctx, step, index, prompt, max_n_attempts, label)
    except ModelBehaviourError as exc:
        return StepResult(index=index, sub_task=step.sub_task, agent=step.agent, status="failed", attempts=max_n_attempts, error=str(exc))


async def engineer_step(pctx: PhaseContext, step: Step, index: int, prompt: str, max_n_attempts: int, label: str,
                        checks: StepChecks | None = None) -> StepResult:
    engineer = pctx.agent("engineer", output=CodeAnswer, instructions=ENGINEER_NOTE)
    checks = checks or StepChecks(pctx, step, index)
    await checks.start()
    last: ExecutionResult | None = None
    code_file = problem = ""
    for attempt in range(1, max_n_attempts + 1):
        answer: CodeAnswer = await pctx.ask(engineer, prompt, CodeAnswer)
        suffix = ".py" if answer.language == "python" else ".sh"
        last = await pctx.execute(answer.code, answer.language, f"{label}_attempt{attempt}{suffix}")
        code_file = f"code/{label}_attempt{attempt}{suffix}"
        if last.exit_code == 0 and not last.timed_out:
            objection = await checks.objection(attempt, answer, last)
            if objection is None:
                summary = clip(f"{answer.explanation}\nOutput:\n{last.stdout[-SUMMARY_CHARS:]}", SUMMARY_CHARS)
                return StepResult(index=index, sub_task=step.sub_task, agent="engineer", status="completed", attempts=attempt, summary=summary,
                                  files=[code_file], isolation=last.isolation, exit_code=0, reviews=checks.reviews)
            problem, prompt = objection.summary(), objection.feedback(attempt, max_n_attempts)
            continue
        problem = f"last run: {failure(last)}"
        prompt = f"The program failed (attempt {attempt} of {max_n_attempts}): {failure(last)}\n\n{report(last)}\n\nFix the code and send the complete corrected program."
    assert last is not None
    return StepResult(index=index, sub_task=step.sub_task, agent="engineer", status="failed", attempts=max_n_attempts,
                      error=f"step {index} failed after {max_n_attempts} attempts; {problem}",
                      files=[code_file], isolation=last.isolation, exit_code=last.exit_code, reviews=checks.reviews)


def failure(result: ExecutionResult) -> str:
    """One line: how the program failed and its last line of error output."""
    if result.timed_out:
        return "it was killed at the time limit"
    last = next((line.strip() for line in reversed((result.stderr or result.stdout).splitlines()) if line.strip()), "")
    return f"exit code {result.exit_code}" + (f": {clip(last, 300)}" if last else "")


def report(result: ExecutionResult) -> str:
    parts = []
    for name, text in (("stderr", result.stderr), ("stdout", result.stdout)):
        if text.strip():
            parts.append(f"{name} (end):\n{text[-2000:].rstrip()}")
    return "\n".join(parts) or "(no output)"


async def researcher_step(pctx: PhaseContext, step: Step, index: int, prompt: str, max_n_attempts: int, label: str) -> StepResult:
    researcher = pctx.agent("researcher", instructions=RESEARCHER_NOTE)
    for attempt in range(1, max_n_attempts + 1):
        text: str = await pctx.ask(researcher, prompt)
        if text.strip():
            path = pctx.write(f"{label}_{slug(step.sub_task)}.md", text.strip() + "\n")
            return StepResult(index=index, sub_task=step.sub_task, agent="researcher", status="completed", attempts=attempt,
                              summary=clip(text, SUMMARY_CHARS), files=[path])
        prompt = "Your answer was empty. Write the markdown document for the step."
    return StepResult(index=index, sub_task=step.sub_task, agent="researcher", status="failed", attempts=max_n_attempts,
                      error=f"step {index}: the researcher gave no text in {max_n_attempts} attempts")


def control_output(pctx: PhaseContext, plan: Plan, results: list[StepResult], **extra: Any) -> dict[str, Any]:
    answer = "\n\n".join(f"Step {r.index} ({r.status}): {r.summary or r.error or ''}" for r in results)
    return {"steps": [r.model_dump(mode="json") for r in results], "answer": answer, "n_steps": len(plan.steps),
            "files": pctx.files(), "work_dir": str(pctx.work_dir), **extra}


async def run(pctx: PhaseContext, params: ControlParams) -> dict[str, Any]:
    plan = resolve_plan(pctx, params.plan)
    results: list[StepResult] = []
    for index in select_steps(plan, params.step):
        result = await run_step(pctx, plan.steps[index - 1], index, max_n_attempts=params.max_n_attempts,
                                review_code=params.review_code, judge_plots=params.judge_plots)
        store_result(pctx, result)
        results.append(result)
        if result.status == "failed":
            raise PhaseFailed(result.error or f"step {index} failed", control_output(pctx, plan, results))
    return control_output(pctx, plan, results)
