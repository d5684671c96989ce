"""Idea generation: the idea maker proposes, the idea hater critiques, the idea maker refines.

    ideas = idea_maker(task)                               JSON, n_ideas ideas
    n_reviews times: critiques = idea_hater(ideas); ideas = idea_maker(critiques)
    -> ideas ranked by the last critique's score, each with its critique; ``ideas`` in the session state
"""

from __future__ import annotations

import json
from typing import Any

from swarm.errors import ModelBehaviourError

from .context import PhaseContext
from .models import CritiqueList, IdeaCritique, IdeaList, RankedIdea
from .params import IdeaGenerationParams

MAKER_NOTE = (
    "Reply with a JSON document only: {{\"ideas\": [{{\"title\": ..., \"description\": ...}}]}} with exactly {n} ideas, best first."
)
HATER_NOTE = (
    "Reply with a JSON document only: {\"critiques\": [{\"title\": <the idea's title>, \"critique\": ..., \"score\": 0-10}]}, "
    "one critique per idea, in the ideas' order; the score says how promising the idea still is."
)


def check_ideas(ideas: IdeaList) -> None:
    if not ideas.ideas:
        raise ModelBehaviourError("the list has no ideas; propose at least one")


def ideas_text(ideas: IdeaList) -> str:
    return "\n".join(f"{i}. {idea.title}: {idea.description}" for i, idea in enumerate(ideas.ideas, 1))


def rank(ideas: IdeaList, critiques: list[IdeaCritique]) -> list[RankedIdea]:
    """Pair each idea with its critique (by title, else by position) and order by score, then by the maker's order."""
    by_title = {c.title.strip().lower(): c for c in critiques}
    paired = []
    for i, idea in enumerate(ideas.ideas):
        critique = by_title.get(idea.title.strip().lower()) or (critiques[i] if i < len(critiques) else None)
        paired.append((idea, critique, i))
    paired.sort(key=lambda t: (-(t[1].score if t[1] else -1), t[2]))
    return [RankedIdea(rank=r, title=idea.title, description=idea.description, critique=c.critique if c else None, score=c.score if c else None)
            for r, (idea, c, _) in enumerate(paired, 1)]


async def run(pctx: PhaseContext, params: IdeaGenerationParams) -> dict[str, Any]:
    maker = pctx.agent("idea_maker", output=IdeaList, instructions=MAKER_NOTE.format(n=params.n_ideas))
    hater = pctx.agent("idea_hater", output=CritiqueList, instructions=HATER_NOTE)
    ideas: IdeaList = await pctx.ask(maker, f"Problem:\n{params.task}\n\nPropose {params.n_ideas} ideas.", IdeaList, check=check_ideas)
    critiques: list[IdeaCritique] = []
    for _ in range(params.n_reviews):
        verdict: CritiqueList = await pctx.ask(hater, f"Problem:\n{params.task}\n\nIdeas:\n{ideas_text(ideas)}\n\nCritique each idea.", CritiqueList)
        critiques = verdict.critiques
        feedback = "\n".join(f"- {c.title} (score {c.score}): {c.critique}" for c in critiques)
        ideas = await pctx.ask(maker, f"The idea hater says:\n{feedback}\n\nRefine the ideas: drop the weak ones, strengthen the rest "
                                      f"({params.n_ideas} ideas).", IdeaList, check=check_ideas)
    ranked = [r.model_dump(mode="json") for r in rank(IdeaList(ideas=ideas.ideas[: params.n_ideas]), critiques)]
    pctx.state["ideas"] = ranked
    path = pctx.write("ideas.json", json.dumps(ranked, indent=2))
    answer = "\n".join(f"{i['rank']}. {i['title']}: {i['description']}" for i in ranked)
    return {"ideas": ranked, "answer": answer, "n_reviews": params.n_reviews, "files": [path], "work_dir": str(pctx.work_dir)}
