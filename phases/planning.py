"""Planning: the planner proposes a structured plan, the plan reviewer critiques it, the planner revises.

    improve_task: task = task_improver(task)              JSON: the task made precise; planned instead of the original
    plan = planner(task)                                  JSON, validated: 1..max_plan_steps steps
    n_plan_reviews times: critique = plan_reviewer(plan); plan = planner(critique)
    -> plan.json in the work dir, ``plan`` in the session state
"""

from __future__ import annotations

from typing import Any

from autogen_agentchat.agents import AssistantAgent

from swarm.errors import ModelBehaviourError

from .context import PhaseContext
from .models import ImprovedTask, Plan
from .params import PlanningParams

PLANNER_NOTE = (
    "Reply with a JSON document only: {{\"steps\": [{{\"sub_task\": ..., \"agent\": \"engineer\" | \"researcher\", "
    "\"bullet_points\": [...]}}]}} with at least 1 and at most {max_steps} steps."
)
REVIEWER_NOTE = "Reply with your critique as plain text (at most five numbered suggestions)."
IMPROVER_NOTE = 'Reply with a JSON document only: {"task": "<the task, rewritten>", "changes": "<one sentence>"}.'


def check_plan(plan: Plan, max_steps: int) -> None:
    """A plan with no steps or too many is the model's mistake: it is sent back with this error."""
    if not plan.steps:
        raise ModelBehaviourError("the plan has no steps; give at least one step")
    if len(plan.steps) > max_steps:
        raise ModelBehaviourError(f"the plan has {len(plan.steps)} steps but at most {max_steps} are allowed; merge steps")


def plan_text(plan: Plan) -> str:
    lines = []
    for i, step in enumerate(plan.steps, 1):
        lines.append(f"Step {i} ({step.agent}): {step.sub_task}")
        lines.extend(f"  - {b}" for b in step.bullet_points)
    return "\n".join(lines)


class Planners:
    """The planner and the plan reviewer of one planning phase; each keeps its conversation."""

    def __init__(self, pctx: PhaseContext, max_steps: int) -> None:
        self.pctx = pctx
        self.max_steps = max_steps
        self.planner: AssistantAgent = pctx.agent("planner", output=Plan, instructions=PLANNER_NOTE.format(max_steps=max_steps))
        self.reviewer: AssistantAgent = pctx.agent("plan_reviewer", instructions=REVIEWER_NOTE)

    async def propose(self, prompt: str) -> Plan:
        plan: Plan = await self.pctx.ask(self.planner, prompt, Plan, check=lambda p: check_plan(p, self.max_steps))
        return plan

    async def review_and_revise(self, plan: Plan, task: str, n_reviews: int) -> tuple[Plan, list[str]]:
        critiques = []
        for _ in range(n_reviews):
            critique = await self.pctx.ask(self.reviewer, f"Task:\n{task}\n\nProposed plan:\n{plan_text(plan)}\n\nCritique this plan.")
            critiques.append(critique)
            plan = await self.propose(f"The plan reviewer says:\n{critique}\n\nRevise the plan accordingly (at most {self.max_steps} steps).")
        return plan, critiques


def store_plan(pctx: PhaseContext, plan: Plan) -> str:
    """Keep the plan with the session (a new plan starts with no step results) and write plan.json."""
    pctx.state["plan"] = plan.model_dump(mode="json")
    pctx.state["step_results"] = []
    (pctx.work_dir / "data").mkdir(parents=True, exist_ok=True)
    return pctx.write("plan.json", plan.model_dump_json(indent=2))


def check_improved(answer: ImprovedTask) -> None:
    if not answer.task.strip():
        raise ModelBehaviourError("the rewritten task is empty; give the whole task, rewritten")


async def improve_task(pctx: PhaseContext, task: str) -> dict[str, str]:
    """The task improver's rewrite of ``task``: {"original", "task", "changes"}."""
    improver = pctx.agent("task_improver", output=ImprovedTask, instructions=IMPROVER_NOTE)
    answer: ImprovedTask = await pctx.ask(improver, f"Task:\n{task}\n\nRewrite it as a precise, self-contained task.", ImprovedTask,
                                          check=check_improved)
    return {"original": task, "task": answer.task.strip()[:20_000], "changes": answer.changes}


async def run(pctx: PhaseContext, params: PlanningParams) -> dict[str, Any]:
    task, extra = params.task, {}
    if params.improve_task:
        improved = await improve_task(pctx, task)
        task, extra = improved["task"], {"improved_task": improved}
    team = Planners(pctx, params.max_plan_steps)
    plan = await team.propose(f"Task:\n{task}\n\nPropose a plan.")
    plan, critiques = await team.review_and_revise(plan, task, params.n_plan_reviews)
    path = store_plan(pctx, plan)
    if extra:
        pctx.state["improved_task"] = extra["improved_task"]  # the task the session's plan was made for
    else:
        pctx.state.pop("improved_task", None)
    return {"plan": plan.model_dump(mode="json"), "answer": plan_text(plan), "reviews": critiques, "plan_path": path, "files": pctx.files(),
            "work_dir": str(pctx.work_dir), **extra}
