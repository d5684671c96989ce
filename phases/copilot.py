"""The copilot phase: one routed pass over a task, decided by the offline router (no model call).

    decision = router(task)
    clarify          -> the assistant asks one question -> waiting_input; the answer joins the task; route again
    one_shot         -> one_shot with the router's agent when it is engineer or researcher; any other roster agent
                        (one dropped in, with its own field) answers the task itself in one turn
    planning         -> planning, then control
    idea_generation  -> idea_generation
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from swarm.router import GENERALISTS

from . import control, idea_generation, one_shot, planning
from .context import PhaseContext, clip
from .params import CopilotParams

ASSISTANT_NOTE = "Reply with the one question only, as plain text."


async def clarify(pctx: PhaseContext, task: str, number: int) -> tuple[str, dict[str, Any]]:
    """Ask the user one question about a vague task (the session waits); return the task with the answer added."""
    assistant = pctx.agent("assistant", instructions=ASSISTANT_NOTE)
    question = (await pctx.ask(assistant, f"Task:\n{task}\n\nAsk the user one clarifying question.")).strip()
    answer = await pctx.approval(f"clarify{number}", question, ["answer"], kind="question", agent="assistant")
    reply = answer.feedback or answer.decision
    return clip(f"{task}\n\n{question}\n{reply}", 20_000), {"question": question, "answer": reply, "who": answer.who}


class AgentTurn(BaseModel):
    """A one-shot task for a roster agent that is not a step agent: it answers in one turn."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, description="The task.")
    agent: str = Field(description="The agent the router picked.")


async def agent_turn(pctx: PhaseContext, params: AgentTurn) -> dict[str, Any]:
    """The picked agent answers the task (no code run, no retries: it has no step to check)."""
    worker = pctx.agent(params.agent)
    answer = (await pctx.ask(worker, params.task)).strip()
    return {"agent": params.agent, "status": "completed", "answer": answer, "files": pctx.files(), "work_dir": str(pctx.work_dir)}


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
        if agent in GENERALISTS:
            result = await pctx.phase("one_shot", one_shot.OneShotParams(task=task, agent=agent, max_n_attempts=params.max_n_attempts,
                                                                             review_code=params.review_code, judge_plots=params.judge_plots), one_shot.run)
        else:  # a roster agent of its own field: it answers in one turn
            result = await pctx.phase("one_shot", AgentTurn(task=task, agent=agent), agent_turn)
        answer = result["answer"]
    elif route == "planning":
        planned = await pctx.phase("planning", planning.PlanningParams(task=task, max_plan_steps=params.max_plan_steps,
                                                                       n_plan_reviews=params.n_plan_reviews, improve_task=params.improve_task), planning.run)
        done = await pctx.phase("control", control.ControlParams(max_n_attempts=params.max_n_attempts, review_code=params.review_code,
                                                                       judge_plots=params.judge_plots), control.run)
        result = {"plan": planned["plan"], "steps": done["steps"]}
        answer = done["answer"]
    else:
        result = await pctx.phase("idea_generation", idea_generation.IdeaGenerationParams(task=task, n_ideas=params.n_ideas), idea_generation.run)
        answer = result["answer"]
    return {"route": pctx.state["route"], "clarifications": clarifications, "answer": answer, "result": result,
            "files": pctx.files(), "work_dir": str(pctx.work_dir)}
