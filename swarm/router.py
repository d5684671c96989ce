"""Offline router: picks the copilot route and the agent that does the task, with no LLM call.

Every agent whose manifest has a ``routing`` section is a candidate: the built-in generalists (engineer writes and
runs code, researcher writes text), the agents behind the other routes (planner, idea_maker, assistant) and any
agent a user drops in. Three kinds of evidence are added up:
- linguistic signals written as general English / software vocabulary (swarm/lexicon.py): action clauses for
  multi-step work, ideation verbs and plural idea nouns, vagueness (no concrete word left once generic verbs and
  deictics are removed), and code artefacts vs. prose deliverables (engineer vs researcher);
- similarity to the manifests (swarm/similarity.py): a TF-IDF nearest centroid over character n-grams of each
  routable agent's examples and description, for the route;
- a specialist's own vocabulary (its name, description and examples) used by the task: an agent dropped in takes a
  one-shot task from the generalists when the task speaks its language clearly more than theirs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Mapping

from .lexicon import (ACTION, BUILD, CLAUSE_SPLIT, CODE_CHARS, CODE_NOUNS, CODE_VERBS, DEFINITE, DEICTIC, EXPLAIN,
                      FILE, FILLER, GENERIC, IDEA_GEN, IDEA_JUDGE, IDEA_MEDIUM, IDEA_PHRASES, IDEA_STRONG, IDEA_WEAK,
                      IMPERATIVE_CUE, MATH, OBJECT_START, PLAN_MARKERS, QUANTIFIERS, QUANTITY, QUESTION, SYSTEM,
                      TEXT_NOUNS, TEXT_VERBS, WITH_LIST, WORD, WORK)
from .manifest import AgentManifest
from .similarity import ManifestIndex

RouteName = Literal["one_shot", "planning", "idea_generation", "clarify"]
ROUTES: tuple[RouteName, ...] = ("one_shot", "planning", "idea_generation", "clarify")
GENERALISTS: tuple[str, ...] = ("engineer", "researcher")
"""The built-in one-shot agents, told apart by rules (code vs prose); always one-shot candidates."""
ROUTE_AGENTS: dict[str, str] = {"planning": "planner", "idea_generation": "idea_maker", "clarify": "assistant"}
"""The agent that takes each route other than one_shot."""
MAX_CHARS = 2000  # only the start of a very long task is read: keeps decisions fast


@dataclass(frozen=True)
class RouteDecision:
    """The router's answer for one task."""

    route: RouteName
    agent: str | None
    """The one-shot agent (a generalist or a routable agent dropped in); None for the other routes."""
    confidence: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"route": self.route, "agent": self.agent, "confidence": self.confidence, "reason": self.reason}

    @property
    def target(self) -> str:
        """The agent that takes the task: the one-shot agent, or the agent of the route."""
        return self.agent if self.route == "one_shot" and self.agent else ROUTE_AGENTS.get(self.route, GENERALISTS[0])


def _norm(word: str) -> str:
    """Fold simple inflections (-s, -es, -ing, -ed) onto a known action verb."""
    if word in ACTION:
        return word
    if "-" in word:  # "load-test", "re-run": fold onto the verb part
        return next((_norm(p) for p in word.split("-") if _norm(p) in ACTION), word)
    for suffix, add in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e")):
        if word.endswith(suffix) and word[: -len(suffix)] + add in ACTION:
            return word[: -len(suffix)] + add
    return word


def _idea_weight(word: str) -> float:
    return 3.0 if word in IDEA_STRONG else 1.5 if word in IDEA_MEDIUM else 0.4 if word in IDEA_WEAK else 0.0


def _looks_imperative(head: str, clause: list[str]) -> bool:
    """An unknown clause-initial word followed by a particle or determiner reads as a verb ("wire up the ...")."""
    return len(clause) > 2 and head not in GENERIC and head.isalpha() and clause[1] in OBJECT_START


def _plural_open(word: str) -> bool:
    """A plural noun that is not a code artefact or a prose deliverable (ideas, names, features...)."""
    plural = len(word) > 4 and word.endswith("s") and not word.endswith("ss")
    return plural and word not in CODE_NOUNS and word not in TEXT_NOUNS


@dataclass(frozen=True)
class _Assessment:
    """What the router computed for one task: scores per route and per one-shot agent, and the route's main cue."""

    routes: dict[RouteName, float]
    agents: dict[str, float]
    claims: dict[str, float]
    """Each specialist's log-odds of taking the task from the generalists."""
    speaking: frozenset[str]
    """The specialists whose own vocabulary the task uses at all."""
    similarity: dict[str, float]
    actions: int


@dataclass(frozen=True)
class GeneralistView:
    """How well the generalists fit a task: their best rule score, similarity and manifest evidence."""

    score: float
    similarity: float
    topic: float
    evidence: float


class OfflineRouter:
    """Routes a task in well under a millisecond from rules plus similarity to the routable agents' manifests."""

    SIM_WEIGHT = 3.0  # weight of manifest-example similarity against the rule scores
    LOGIT = (-0.4, 2.0, 8.0, 6.0, -0.14, -0.4)
    """Log-odds that a specialist takes a one-shot task from the generalists: a bias, then the weights of its evidence,
    of its topic and phrasing similarity over the generalists', of the generalists' rule score and of their own
    evidence. Calibrated by a logistic regression on development agents of several kinds (the shared roster set and
    others: shell, spreadsheet, LaTeX, citations, verse, containers) against the built-in tasks, then rounded."""
    TOOLS_PENALTY = 4.0  # work on files or runs, for a specialist without tools whose manifest never speaks of it
    ROUTE_BONUS = 1.0  # a specialist's clear claim (log-odds, up to 1) makes the one_shot route likelier
    MUTE = 0.1  # a specialist none of whose own words the task uses is that much less likely a candidate
    GENERAL_FLOOR = 0.25  # however strong a specialist's claim, the generalists stay plausible candidates
    CANDIDATE_SPREAD = 4.0  # candidates compare the generalists on a flatter scale: the runner-up stays in view

    def __init__(self, agents: Mapping[str, AgentManifest]):
        self._index = ManifestIndex(agents)
        routable = {name: m.routing.route for name, m in agents.items() if m.routing is not None}
        self.specialists: tuple[str, ...] = tuple(
            sorted(n for n, r in routable.items() if r == "one_shot" and n not in GENERALISTS))
        """Routable one-shot agents other than the generalists (the agents users drop in, mostly)."""
        self._one_shot = (*GENERALISTS, *self.specialists)
        self._toolless = frozenset(n for n in self.specialists if not agents[n].tools)
        self._by_route: dict[str, tuple[str, ...]] = {
            route: tuple(dict.fromkeys([default, *sorted(n for n, r in routable.items() if r == route)]))
            for route, default in ROUTE_AGENTS.items()}
        self.targets: tuple[str, ...] = tuple(n for n in dict.fromkeys(
            [*GENERALISTS, *(a for names in self._by_route.values() for a in names), *self.specialists]) if n in agents)
        """Every agent a route can lead to (routable agents and the route agents), in a fixed order."""
        self.one_shot_agents: tuple[str, ...] = tuple(n for n in self._one_shot if n in agents)
        """The agents that can do a task (or a plan step) in one go: the generalists and the routable one-shot agents."""

    def decide(self, task: str) -> RouteDecision:
        """The route for ``task`` and, for one_shot, the agent that does it."""
        return self._decision(self._assess(task))

    def candidates(self, task: str, k: int = 4) -> list[str]:
        """The ``k`` agents most likely to take ``task``, best first: the decision's agent, then the others by how likely
        they are (ties by name). A function of the task alone."""
        found = self._assess(task)
        first = self._decision(found).target
        likely = self._likelihoods(found) if found is not None else {}
        ranked = sorted((n for n in self.targets if n != first), key=lambda n: (-likely.get(n, 0.0), n))
        order = [first, *ranked] if first in self.targets else ranked
        return order[: max(k, 0)]

    def _likelihoods(self, found: _Assessment) -> dict[str, float]:
        """How likely each target is: its route's probability times its share of it. A specialist's share is its own
        claim (a crowd of unlikely ones dilutes no one; much less when the task uses none of its words); the
        generalists share what the best claim leaves (at least GENERAL_FLOOR); a route's agents go by similarity."""
        route_p = _softmax(found.routes)
        claims = {a: (1.0 if a in found.speaking else self.MUTE) / (1.0 + math.exp(-found.claims[a])) for a in self.specialists}
        general = _softmax({g: found.agents[g] / self.CANDIDATE_SPREAD for g in GENERALISTS})
        rest = max(1.0 - max(claims.values(), default=0.0), self.GENERAL_FLOOR)
        likely = {**{g: route_p["one_shot"] * rest * p for g, p in general.items()},
                  **{a: route_p["one_shot"] * p for a, p in claims.items()}}
        for route, names in self._by_route.items():
            sims = {n: found.similarity.get(n, 0.0) for n in names}
            best = max(sims.values())
            for name in names:
                likely[name] = max(likely.get(name, 0.0), route_p[route] * math.exp(self.SIM_WEIGHT * (sims[name] - best)))  # type: ignore[index]
        return likely

    def _decision(self, found: _Assessment | None) -> RouteDecision:
        if found is None:
            return RouteDecision("clarify", None, 1.0, "The task is empty: ask the user what they need.")
        route = max(ROUTES, key=lambda r: found.routes[r])
        confidence = _softmax(found.routes)[route]
        if route != "one_shot":
            reason = {
                "planning": f"{found.actions} action clause(s) and further multi-step cues: several dependent steps.",
                "idea_generation": "Asks for ideas, options or proposals to be generated and critiqued.",
                "clarify": "Too vague to act on: no concrete object or deliverable named.",
            }[route]
            return RouteDecision(route, None, round(confidence, 3), reason)
        agent = max(self._one_shot, key=lambda a: found.agents[a])
        confidence *= _softmax(found.agents)[agent]
        reason = (
            "One self-contained task that needs code, files or computation: engineer." if agent == "engineer"
            else "One self-contained task whose deliverable is text: researcher." if agent == "researcher"
            else f"One self-contained task in {agent}'s field (its manifest's vocabulary): {agent}."
        )
        return RouteDecision("one_shot", agent, round(confidence, 3), reason)

    def _assess(self, task: str) -> _Assessment | None:
        text = " ".join(task[:MAX_CHARS].split())
        low = text.lower()
        words = WORD.findall(low)
        if not words:
            return None
        sim = self._index.similarity(text)
        artefacts = len(FILE.findall(text)) + len(CODE_CHARS.findall(text)) + 0.5 * len(MATH.findall(text))
        routes, actions = self._route_cues(low, words, artefacts)
        agents = self._generalist_scores(text, low, words, artefacts, sim)
        evidence = self._index.evidence(text)
        topic = self._index.topic(text)
        general = GeneralistView(max(agents.values()), max(sim.get(g, 0.0) for g in GENERALISTS),
                                 max(topic.get(g, 0.0) for g in GENERALISTS), max(evidence.get(g, 0.0) for g in GENERALISTS))
        lean, claims = 0.0, {}
        work = self._work_terms(text, words)
        for name in self.specialists:
            logit = self._specialist_logit(evidence[name], topic[name], sim[name], general)
            if work and name in self._toolless and not self._index.speaks_of(name, work):
                logit -= self.TOOLS_PENALTY
            agents[name] = general.score + logit
            claims[name] = logit
            lean = max(lean, logit)
        one_shot_sim = max((sim.get(a, 0.0) for a in self._one_shot), default=0.0)
        routes["one_shot"] += self.SIM_WEIGHT * one_shot_sim + self.ROUTE_BONUS * min(lean, 1.0)
        for route, names in self._by_route.items():
            routes[route] += self.SIM_WEIGHT * max(sim.get(n, 0.0) for n in names)  # type: ignore[index]
        return _Assessment(routes, agents, claims, frozenset(n for n in self.specialists if evidence[n] > 0), sim, actions)

    @staticmethod
    def _work_terms(text: str, words: list[str]) -> set[str]:
        """The words of a task that ask for work on files or for running something (a file name counts as "file")."""
        found = {w for w in words if w in WORK}
        return found | {"file"} if FILE.search(text) else found

    def _specialist_logit(self, evidence: float, topic: float, similarity: float, general: GeneralistView) -> float:
        """Log-odds that a specialist, not a generalist, should take the task."""
        bias, w_evidence, w_topic, w_sim, w_general, w_general_evidence = self.LOGIT
        return (bias + w_evidence * evidence + w_topic * (topic - general.topic) + w_sim * (similarity - general.similarity)
                + w_general * general.score + w_general_evidence * general.evidence)

    def _route_cues(self, low: str, words: list[str], artefacts: float) -> tuple[dict[RouteName, float], int]:
        """The rule scores of each route (before similarity) and the number of action clauses."""
        # Vagueness: nothing concrete left once generic verbs, pronouns and deictics are removed.
        content = [w for w in words if w not in GENERIC]
        vague = 0.0
        if not artefacts:
            if not content:
                vague = 5.0
            elif len(content) == 1 and len(words) <= 8:
                vague = 3.0 if any(w in DEICTIC for w in words) or len(words) <= 3 else 1.5

        # Ideation: ideation verbs/phrases plus plural idea nouns.
        idea = 3.0 * len(IDEA_PHRASES.findall(low))
        idea += sum(_idea_weight(w) for i, w in enumerate(words) if not DEFINITE & set(words[max(0, i - 2) : i]))
        idea += 1.5 * len(IDEA_JUDGE.findall(low)) + 1.5 * any(  # "suggest/give/list <plural>"
            w in IDEA_GEN and (i == 0 or words[i - 1] in IMPERATIVE_CUE)
            and any(map(_plural_open, words[i + 1 : i + 6])) for i, w in enumerate(words))
        if QUANTIFIERS & set(words) and any(w in IDEA_STRONG or w in IDEA_MEDIUM for w in words):
            idea += 1.0  # a plural ask: "a few names", "several options"
        if words[0] in TEXT_VERBS:  # "summarize/explain the ideas of X" is about existing ideas
            idea /= 2

        # Multi-step: clauses that start with an action verb, build-with enumerations, plan markers.
        clauses = [[w for w in WORD.findall(c) if w not in FILLER] for c in CLAUSE_SPLIT.split(low)]
        heads = [c[0] if c else "" for c in clauses]
        actions = sum(1 for h, c in zip(heads, clauses) if _norm(h) in ACTION or _looks_imperative(h, c))
        markers = len(PLAN_MARKERS.findall(low))
        enum = 0
        tail = WITH_LIST.search(low)
        if tail and BUILD & set(words[:2]) and SYSTEM & set(WORD.findall(low[: tail.start()])):
            enum = len([p for p in re.split(r",|\band\b", tail.group(1)) if p.strip()])
        plan = 2.0 * max(0, actions - 1) + (1.0 if actions >= 3 else 0.0) + 1.0 * min(markers, 2)
        plan += 2.0 * max(0, enum - 1) + 0.04 * max(0, len(words) - 15)
        return {"one_shot": 2.5, "planning": plan, "idea_generation": idea, "clarify": vague}, actions

    def _generalist_scores(self, text: str, low: str, words: list[str], artefacts: float, sim: Mapping[str, float]) -> dict[str, float]:
        """Engineer vs researcher: code artefacts and verbs against prose deliverables and questions."""
        code = 1.5 * sum(w in CODE_NOUNS for w in words) + 1.5 * sum(_norm(w) in CODE_VERBS for w in words)
        code += 2.0 * artefacts + 0.5 * sum(w.isdigit() for w in words) + 2.0 * len(QUANTITY.findall(low))
        prose = 1.5 * sum(w in TEXT_NOUNS for w in words) + 1.5 * sum(w in TEXT_VERBS for w in words)
        prose += 1.5 * (words[0] in QUESTION) + 0.5 * ("?" in text) + 2.0 * len(EXPLAIN.findall(low))
        obj = [] if QUESTION & set(words[:2]) else words[1:5]  # the object of the leading verb weighs more
        code += 2.0 * any(w in CODE_NOUNS for w in obj)
        prose += 2.0 * any(w in TEXT_NOUNS for w in obj)
        if words[0] in TEXT_VERBS:  # "explain how a hash map works": technical topic, prose deliverable
            code, prose = code / 2, prose + 2.0
        elif _norm(words[0]) in CODE_VERBS:
            code, prose = code + 2.0, prose / 2
        return {"engineer": code + self.SIM_WEIGHT * 2 * sim.get("engineer", 0.0),
                "researcher": prose + self.SIM_WEIGHT * 2 * sim.get("researcher", 0.0)}


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}
