"""The copilot phase: one routed pass over a task, decided by the offline router (no model call).

    decision = router(task)
    clarify          -> the assistant asks one question -> waiting_input; the answer joins the task; route again
    one_shot         -> one_shot with the router's agent (engineer or researcher)
    planning         -> planning, then control
    idea_generation  -> idea_generation
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import control, idea_generation, one_shot, planning
from .context import PhaseContext, clip

ASSISTANT_NOTE = "Reply with the one question only, as plain text."


class CopilotParams(BaseModel):
    """Parameters of the copilot phase."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, description="The task; the router picks how it is done.")
    max_plan_steps: int = Field(3, ge=1, le=10, description="For complex tasks: most plan steps (1-10).")
    n_plan_reviews: int = Field(1, ge=0, le=5, description="For complex tasks: plan review rounds (0-5).")
    max_n_attempts: int = Field(3, ge=1, le=10, description="Attempts per step / one-shot task (1-10).")
    n_ideas: int = Field(3, ge=1, le=10, description="For requests for ideas: how many (1-10).")
    max_questions: int = Field(2, ge=0, le=5, description="Most clarifying questions before a vague task is attempted anyway (0-5).")


async def clarify(pctx: PhaseContext, task: str, number: int) -> tuple[str, dict[str, Any]]:
    """Ask the user one question about a vague task (the session waits); return the task with the answer added."""
    assistant = pctx.agent("assistant", instructions=ASSISTANT_NOTE)
    question = (await pctx.ask(assistant, f"Task:\n{task}\n\nAsk the user one clarifying question.")).strip()
    answer = await pctx.approval(f"clarify{number}", question, ["answer"], kind="question", agent="assistant")
    reply = answer.feedback or answer.decision
    return clip(f"{task}\n\n{question}\n{reply}", 20_000), {"question": question, "answer": reply, "who": answer.who}


async def run(pctx: PhaseContext, params: CopilotParams) -> dict[str, Any]:
    task, clarifications = params.task, []
    for number in range(1, params.max_questions + 2):
        decision = pctx.engine.router.decide(task)
        pctx.emit("message", {"kind": "route", **decision.as_dict()}, agent="copilot_control")
        if decision.route != "clarify" or number > params.max_questions:
            break
        task, asked = await clarify(pctx, task, number)
        clarifications.append(asked)
    route = decision.route if decision.route != "clarify" else "one_shot"
    pctx.state["route"] = {**decision.as_dict(), "route": route}

    result: dict[str, Any]
    if route == "one_shot":
        agent = decision.agent or ("engineer" if decision.route != "clarify" else "researcher")
        result = await pctx.phase("one_shot", one_shot.OneShotParams(task=task, agent=agent, max_n_attempts=params.max_n_attempts), one_shot.run)
        answer = result["answer"]
    elif route == "planning":
        planned = await pctx.phase("planning", planning.PlanningParams(task=task, max_plan_steps=params.max_plan_steps,
                                                                       n_plan_reviews=params.n_plan_reviews), planning.run)
        done = await pctx.phase("control", control.ControlParams(max_n_attempts=params.max_n_attempts), control.run)
        result = {"plan": planned["plan"], "steps": done["steps"]}
        answer = done["answer"]
    else:
        result = await pctx.phase("idea_generation", idea_generation.IdeaGenerationParams(task=task, n_ideas=params.n_ideas), idea_generation.run)
        answer = result["answer"]
    return {"route": pctx.state["route"], "clarifications": clarifications, "answer": answer, "result": result,
            "files": pctx.files(), "work_dir": str(pctx.work_dir)}
