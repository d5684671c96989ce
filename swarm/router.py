"""Offline router: picks the copilot route (and the one-shot agent) with no LLM call.

Two kinds of evidence are added up per route:
- linguistic signals written as general English / software vocabulary: action clauses for
  multi-step work, ideation verbs and plural idea nouns, vagueness (no concrete word left once
  generic verbs and deictics are removed), and code artefacts vs. prose deliverables;
- similarity to the manifests: a TF-IDF nearest-centroid over character n-grams of each
  routable agent's ``routing.examples`` and description, built once at construction.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Mapping

from .manifest import AgentManifest

RouteName = Literal["one_shot", "planning", "idea_generation", "clarify"]
AgentName = Literal["engineer", "researcher"]
ROUTES: tuple[RouteName, ...] = ("one_shot", "planning", "idea_generation", "clarify")
_ONE_SHOT_AGENTS: tuple[AgentName, ...] = ("engineer", "researcher")
MAX_CHARS = 2000  # only the start of a very long task is read: keeps decisions fast


@dataclass(frozen=True)
class RouteDecision:
    """The router's answer for one task."""

    route: RouteName
    agent: AgentName | None
    confidence: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"route": self.route, "agent": self.agent, "confidence": self.confidence, "reason": self.reason}


def _words(*groups: str) -> frozenset[str]:
    return frozenset(w for g in groups for w in g.split())


_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_FILE = re.compile(
    r"\b[\w./-]*\w\.(?:py|ipynb|csv|tsv|json|jsonl|ya?ml|xml|toml|ini|txt|log|md|rst|html?|css|js|ts|c|h|cpp"
    r"|rs|go|java|rb|sh|sql|db|sqlite|xlsx?|parquet|png|jpe?g|gif|svg|pdf|zip|tar|gz)\b", re.I)
_CODE_CHARS = re.compile(r"[=(){}\[\]<>]|\*\*|\+=|->|\bdef |\breturn\b|\bimport\b|\b\w+Error\b|\b\w+\(\)")
_MATH = re.compile(r"\d\s*[-+*/^%]\s*\d|\d%|[$€£]\s?\d|\b\d{1,3}(?:,\d{3})+\b")
_CLAUSE_SPLIT = re.compile(r"[,;:.!?]|\band then\b|\bthen\b|\band\b|\bplus\b|\bafter that\b")
_WITH_LIST = re.compile(r"\b(?:with|including|containing|that has|featuring)\b(.*)")

# Verbs that start an action clause (code or prose); third-person -s forms are folded in.
_ACTION = _words(
    "write implement code build create develop design set add update migrate port refactor fix debug test",
    "run execute deploy publish package install configure schedule automate monitor integrate document",
    "download fetch scrape collect gather pull crawl load read import export save store write-up upload",
    "clean preprocess normalize normalise transform parse convert merge deduplicate filter extract split",
    "compute calculate estimate measure count analyse analyze process aggregate summarize summarise",
    "train tune fit evaluate validate verify benchmark profile optimize optimise compare simulate model",
    "forecast predict classify cluster rank plot chart visualise visualize draw produce generate render",
    "report present prepare explain describe review audit investigate survey research pick choose select",
    "find identify detect mask reproduce sort search query resize compress encode decode hash rename",
    "reverse solve check show print list email send notify translate draft outline define discuss")
_FILLER = _words("first then finally also next afterwards lastly and please after that we you i")
_CODE_VERBS = _words(
    "implement compute calculate plot parse debug refactor profile scrape unzip zip compress encode decode",
    "hash resize simulate execute run print sort merge convert count extract rename reverse solve fetch",
    "download load install benchmark optimize optimise vectorize serialize regex grep crop fix")
_CODE_NOUNS = _words(
    "function functions script scripts program code class method methods regex regular expression csv json",
    "yaml xml sql query file files folder directory array arrays list lists dict dictionary string strings",
    "integer integers int float loop bug error exception traceback test tests unittest api endpoint database",
    "db table plot chart histogram scatter image images pixels png hash checksum algorithm bash shell python",
    "javascript typescript numbers number matrix dataframe samples password prime equation decimal sum",
    "average median timestamps timestamp logs url urls command cli one-liner snippet variable bytes",
    "digits primes random dataset column columns rows row output input")
_TEXT_VERBS = _words(
    "explain describe summarize summarise compare discuss outline review draft translate define argue",
    "proofread rewrite paraphrase tell teach contrast elaborate critique reword edit polish introduce")
_TEXT_NOUNS = _words(
    "essay email letter abstract paragraph paragraphs article blog post summary overview biography poem",
    "haiku story notes readme documentation guide explanation difference differences trade-offs tradeoffs",
    "pros cons history literature introduction description faq tweet speech memo analogy arguments reader",
    "audience tone clarity language meaning concept concepts theory theorem principles advantages",
    "disadvantages sentence sentences wording announcement newsletter bio slogan caption")
_QUANTITY = re.compile(
    r"\bhow (?:many|much|often|long|fast)\b|\b(?:total|number|count|sum|average|mean|median|percentage) of\b")
_EXPLAIN = re.compile(
    r"\bwhat (?:does|do) .+ mean\b|\bmeaning of\b|\bin (?:plain|simple|layman'?s?) (?:words|terms|english)\b"
    r"|\bdifferences? between\b|\b(?:versus|vs)\b|\bpros and cons\b|\btrade-?offs\b"
    r"|\bfor (?:a|an) (?:beginner|non-technical|child|layperson|general)\b|\bthe (?:history|story|plot|origins?) of\b")
_QUESTION = _words("what why how who when which is are does do should can could would")
_IDEA_STRONG = _words("brainstorm brainstorming ideas idea pitch suggestions taglines slogans")
_IDEA_MEDIUM = _words(
    "propose suggest alternatives alternative options possibilities candidates candidate topics directions",
    "angles approaches strategies proposals concepts names titles themes hypotheses creative novel fresh")
_QUANTIFIERS = _words("several some few handful bunch couple various multiple many three four five six seven ten")
_IDEA_WEAK = _QUANTIFIERS | _words("possible different rank critique weigh new list")
_IMPERATIVE_CUE = _words("you please and then to me could can")
_IDEA_GEN = _words("generate suggest propose list give pitch offer recommend")
_IDEA_JUDGE = re.compile(  # asks to judge the generated items
    r"\b(?:critique|weigh|rank|score|judge|evaluate|compare)\b(?:\W+\w+){0,2}?\W+(?:each|them|all)\b"
    r"|\bwhich (?:is|one is) (?:best|strongest)\b")
_DEFINITE = _words("the main key central core big his her their its these those")
_IDEA_PHRASES = re.compile(
    r"\b(?:come up with|think of|think up|what could (?:we|i)|how (?:could|might|can) (?:we|i)|"
    r"ways (?:to|we|of|for|that we)|any ideas)\b")
_PLAN_MARKERS = re.compile(
    r"\b(?:pipeline|end[- ]to[- ]end|workflow|step by step|from scratch|first\b.*\bthen|and finally|"
    r"write(?:s)? up|(?:a|the) report|full[- ]stack|deploy(?:ed|ment)?|ci|continuous integration)\b")
_BUILD = _words("build create develop set design make implement write")
_SYSTEM = _words(
    "app application service website site system platform dashboard backend frontend api bot tool game server",
    "pipeline extension plugin add-on library sdk cli")
_GENERIC = _words(
    "a an the this that these those it its they them me my i we us our you your he she him her is are was",
    "were be been am do does did done doing have has had can could would should will shall may might must",
    "please just now again also so then there here what why how where when which who whom with about for",
    "on in at to of from by up out off over like as if not no yes ok okay hmm hi hello hey thanks thank",
    "sure maybe some any all more less very really too same other else before earlier previous previously",
    "last usual rest stuff thing things something anything everything whatever one help make fix look",
    "check handle improve update finish continue work works working go ahead get take care try start redo",
    "change deal see let know need want said say told talked discussed mentioned agreed better good nice",
    "right wrong broken stuck doesn't don't isn't won't can't didn't whether way quick quickly asap",
    "think best fine issue issues problem problems matter yesterday today tomorrow sort done finished")
_OBJECT_START = _words("up out in the a an our their its my your it them this these those all every each")
_DEICTIC = _words("it this that these those them thing stuff something same usual above before")


def _norm(word: str) -> str:
    """Fold simple inflections (-s, -es, -ing, -ed) onto a known action verb."""
    if word in _ACTION:
        return word
    if "-" in word:  # "load-test", "re-run": fold onto the verb part
        return next((_norm(p) for p in word.split("-") if _norm(p) in _ACTION), word)
    for suffix, add in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e")):
        if word.endswith(suffix) and word[: -len(suffix)] + add in _ACTION:
            return word[: -len(suffix)] + add
    return word


def _idea_weight(word: str) -> float:
    return 3.0 if word in _IDEA_STRONG else 1.5 if word in _IDEA_MEDIUM else 0.4 if word in _IDEA_WEAK else 0.0


def _looks_imperative(head: str, clause: list[str]) -> bool:
    """An unknown clause-initial word followed by a particle or determiner reads as a verb ("wire up the ...")."""
    return len(clause) > 2 and head not in _GENERIC and head.isalpha() and clause[1] in _OBJECT_START


def _plural_open(word: str) -> bool:
    """A plural noun that is not a code artefact or a prose deliverable (ideas, names, features...)."""
    plural = len(word) > 4 and word.endswith("s") and not word.endswith("ss")
    return plural and word not in _CODE_NOUNS and word not in _TEXT_NOUNS


def _ngrams(text: str) -> Counter[str]:
    grams: Counter[str] = Counter()
    for word in _WORD.findall(text.lower()):
        grams["w:" + word] += 1
        padded = f" {word} "
        for n in (3, 4):
            grams.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


class OfflineRouter:
    """Routes a task in well under a millisecond from rules plus manifest-example similarity."""

    SIM_WEIGHT = 3.0  # weight of manifest-example similarity against the rule scores

    def __init__(self, agents: Mapping[str, AgentManifest]):
        docs: dict[tuple[str, str | None], list[str]] = {}
        for name, manifest in agents.items():
            spec = manifest.routing
            if spec is None or (spec.route == "one_shot" and name not in _ONE_SHOT_AGENTS):
                continue
            key = (spec.route, name if spec.route == "one_shot" else None)
            docs.setdefault(key, []).extend([*spec.examples, manifest.description])
        all_docs = [_ngrams(d) for texts in docs.values() for d in texts]
        df: Counter[str] = Counter(g for d in all_docs for g in d)
        n = len(all_docs) or 1
        self._idf = {g: math.log((1 + n) / (1 + c)) + 1.0 for g, c in df.items()}
        self._centroids: dict[tuple[str, str | None], dict[str, float]] = {}
        for key, texts in docs.items():
            acc: Counter[str] = Counter()
            for text in texts:
                for g, w in self._vector(text).items():
                    acc[g] += w
            norm = math.sqrt(sum(w * w for w in acc.values())) or 1.0
            self._centroids[key] = {g: w / norm for g, w in acc.items()}

    def _vector(self, text: str) -> dict[str, float]:
        vec = {g: (1 + math.log(c)) * self._idf[g] for g, c in _ngrams(text).items() if g in self._idf}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {g: w / norm for g, w in vec.items()}

    def _similarity(self, text: str) -> dict[tuple[str, str | None], float]:
        vec = self._vector(text)
        return {k: sum(w * c.get(g, 0.0) for g, w in vec.items()) for k, c in self._centroids.items()}

    def decide(self, task: str) -> RouteDecision:
        text = " ".join(task[:MAX_CHARS].split())
        low = text.lower()
        words = _WORD.findall(low)
        if not words:
            return RouteDecision("clarify", None, 1.0, "The task is empty: ask the user what they need.")
        sim = self._similarity(text)
        artefacts = len(_FILE.findall(text)) + len(_CODE_CHARS.findall(text)) + 0.5 * len(_MATH.findall(text))

        # Vagueness: nothing concrete left once generic verbs, pronouns and deictics are removed.
        content = [w for w in words if w not in _GENERIC]
        vague = 0.0
        if not artefacts:
            if not content:
                vague = 5.0
            elif len(content) == 1 and len(words) <= 8:
                vague = 3.0 if any(w in _DEICTIC for w in words) or len(words) <= 3 else 1.5

        # Ideation: ideation verbs/phrases plus plural idea nouns.
        idea = 3.0 * len(_IDEA_PHRASES.findall(low))
        idea += sum(_idea_weight(w) for i, w in enumerate(words) if not _DEFINITE & set(words[max(0, i - 2) : i]))
        idea += 1.5 * len(_IDEA_JUDGE.findall(low)) + 1.5 * any(  # "suggest/give/list <plural>"
            w in _IDEA_GEN and (i == 0 or words[i - 1] in _IMPERATIVE_CUE)
            and any(map(_plural_open, words[i + 1 : i + 6])) for i, w in enumerate(words))
        if _QUANTIFIERS & set(words) and any(w in _IDEA_STRONG or w in _IDEA_MEDIUM for w in words):
            idea += 1.0  # a plural ask: "a few names", "several options"
        if words[0] in _TEXT_VERBS:  # "summarize/explain the ideas of X" is about existing ideas
            idea /= 2

        # Multi-step: clauses that start with an action verb, build-with enumerations, plan markers.
        clauses = [[w for w in _WORD.findall(c) if w not in _FILLER] for c in _CLAUSE_SPLIT.split(low)]
        heads = [c[0] if c else "" for c in clauses]
        actions = sum(1 for h, c in zip(heads, clauses) if _norm(h) in _ACTION or _looks_imperative(h, c))
        markers = len(_PLAN_MARKERS.findall(low))
        enum = 0
        tail = _WITH_LIST.search(low)
        if tail and _BUILD & set(words[:2]) and _SYSTEM & set(_WORD.findall(low[: tail.start()])):
            enum = len([p for p in re.split(r",|\band\b", tail.group(1)) if p.strip()])
        plan = 2.0 * max(0, actions - 1) + (1.0 if actions >= 3 else 0.0) + 1.0 * min(markers, 2)
        plan += 2.0 * max(0, enum - 1) + 0.04 * max(0, len(words) - 15)

        scores: dict[RouteName, float] = {
            "one_shot": 2.5 + self.SIM_WEIGHT * max(sim.get(("one_shot", a), 0.0) for a in _ONE_SHOT_AGENTS),
            "planning": plan + self.SIM_WEIGHT * sim.get(("planning", None), 0.0),
            "idea_generation": idea + self.SIM_WEIGHT * sim.get(("idea_generation", None), 0.0),
            "clarify": vague + self.SIM_WEIGHT * sim.get(("clarify", None), 0.0),
        }
        route = max(ROUTES, key=lambda r: scores[r])
        confidence = _softmax(scores)[route]
        if route != "one_shot":
            reason = {
                "planning": f"{actions} action clause(s) and further multi-step cues: several dependent steps.",
                "idea_generation": "Asks for ideas, options or proposals to be generated and critiqued.",
                "clarify": "Too vague to act on: no concrete object or deliverable named.",
            }[route]
            return RouteDecision(route, None, round(confidence, 3), reason)

        code = 1.5 * sum(w in _CODE_NOUNS for w in words) + 1.5 * sum(_norm(w) in _CODE_VERBS for w in words)
        code += 2.0 * artefacts + 0.5 * sum(w.isdigit() for w in words) + 2.0 * len(_QUANTITY.findall(low))
        prose = 1.5 * sum(w in _TEXT_NOUNS for w in words) + 1.5 * sum(w in _TEXT_VERBS for w in words)
        prose += 1.5 * (words[0] in _QUESTION) + 0.5 * ("?" in text) + 2.0 * len(_EXPLAIN.findall(low))
        obj = [] if _QUESTION & set(words[:2]) else words[1:5]  # the object of the leading verb weighs more
        code += 2.0 * any(w in _CODE_NOUNS for w in obj)
        prose += 2.0 * any(w in _TEXT_NOUNS for w in obj)
        if words[0] in _TEXT_VERBS:  # "explain how a hash map works": technical topic, prose deliverable
            code, prose = code / 2, prose + 2.0
        elif _norm(words[0]) in _CODE_VERBS:
            code, prose = code + 2.0, prose / 2
        agent_scores: dict[AgentName, float] = {
            "engineer": code + self.SIM_WEIGHT * 2 * sim.get(("one_shot", "engineer"), 0.0),
            "researcher": prose + self.SIM_WEIGHT * 2 * sim.get(("one_shot", "researcher"), 0.0),
        }
        agent: AgentName = max(_ONE_SHOT_AGENTS, key=lambda a: agent_scores[a])
        confidence *= _softmax(agent_scores)[agent]
        reason = (
            "One self-contained task that needs code, files or computation: engineer."
            if agent == "engineer"
            else "One self-contained task whose deliverable is text: researcher."
        )
        return RouteDecision("one_shot", agent, round(confidence, 3), reason)


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}
