"""How close a task is to each routable agent's manifest (its name, description and routing examples), two ways:

- ``similarity``: cosine to a TF-IDF centroid of character n-grams of the agent's examples and description: fuzzy
  (inflections, compounds), and what the copilot routes are compared by;
- ``evidence``: the agent's distinctive terms that the task uses: each one weighs how much of the agent's manifest
  uses it (its name and description count more than one example) times how few agents use it at all. It is what
  tells a specialist's task (its own vocabulary) from a general one.

Both are built once, from the manifests, when the router is made; neither knows any agent by name.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping

from .lexicon import COMMON, WORD
from .manifest import AgentManifest

NAME_WEIGHT = 2.0  # a term of the agent's name or description counts as much as two examples using it
DESCRIPTION_WEIGHT = 2.0


def stem(word: str) -> str:
    """A small, general stemmer: plural, verb and agent endings off ("formatter", "formats", "formatting" -> "format")."""
    if len(word) <= 3:
        return word
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ss", "ss"), ("us", "us"), ("is", "is"), ("s", "")):
        if word.endswith(suffix):
            word = word[: -len(suffix)] + repl
            break
    for suffix, repl in (("ation", "ate"), ("ator", "ate"), ("ing", ""), ("ed", ""), ("ly", ""), ("ion", ""), ("er", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= (5 if suffix == "er" else 3):
            word = word[: -len(suffix)] + repl
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":  # "committ" -> "commit"
        word = word[:-1]
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def terms(text: str) -> set[str]:
    """The content terms of a text: stems of its words less common words and numbers."""
    found = set()
    for word in WORD.findall(text.lower().replace("_", " ")):
        parts = [p for p in word.split("-") if len(p) > 2] if "-" in word else []  # "copy-edit": also copy, edit
        found.update(stem(w) for w in (word, *parts) if len(w) > 1 and not w[0].isdigit() and w not in COMMON)
    return found


def ngrams(text: str, content_only: bool = False) -> Counter[str]:
    """Words and their character 3- and 4-grams; ``content_only`` leaves out common words."""
    grams: Counter[str] = Counter()
    for word in WORD.findall(text.lower()):
        if content_only and word in COMMON:
            continue
        grams["w:" + word] += 1
        padded = f" {word} "
        for n in (3, 4):
            grams.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


class Centroids:
    """A TF-IDF nearest-centroid model over character n-grams of named groups of texts."""

    def __init__(self, docs: Mapping[str, list[str]], content_only: bool = False) -> None:
        self.content_only = content_only
        grams = [ngrams(d, content_only) for texts in docs.values() for d in texts]
        df: Counter[str] = Counter(g for d in grams for g in d)
        n = len(grams) or 1
        self._idf = {g: math.log((1 + n) / (1 + c)) + 1.0 for g, c in df.items()}
        self._centroids: dict[str, dict[str, float]] = {}
        for name, texts in docs.items():
            acc: Counter[str] = Counter()
            for text in texts:
                for g, w in self._vector(text).items():
                    acc[g] += w
            norm = math.sqrt(sum(w * w for w in acc.values())) or 1.0
            self._centroids[name] = {g: w / norm for g, w in acc.items()}

    def _vector(self, text: str) -> dict[str, float]:
        vec = {g: (1 + math.log(c)) * self._idf[g] for g, c in ngrams(text, self.content_only).items() if g in self._idf}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {g: w / norm for g, w in vec.items()}

    def similarity(self, text: str) -> dict[str, float]:
        """Cosine of the text to each group's centroid."""
        vec = self._vector(text)
        return {name: sum(w * c.get(g, 0.0) for g, w in vec.items()) for name, c in self._centroids.items()}


class ManifestIndex:
    """Centroids and term profiles of the routable agents (those whose manifest has a ``routing`` section)."""

    def __init__(self, agents: Mapping[str, AgentManifest]) -> None:
        routable = {name: m for name, m in agents.items() if m.routing is not None}
        docs = {name: [*m.routing.examples, m.description] for name, m in routable.items()}  # type: ignore[union-attr]
        self._whole = Centroids(docs)
        self._content = Centroids(docs, content_only=True)
        self._profiles: dict[str, dict[str, float]] = {}
        for name, m in routable.items():
            counts: Counter[str] = Counter()
            for example in m.routing.examples:  # type: ignore[union-attr]
                counts.update(terms(example))
            for term in terms(m.description):
                counts[term] += DESCRIPTION_WEIGHT
            for term in terms(name):
                counts[term] += NAME_WEIGHT
            total = len(m.routing.examples) + DESCRIPTION_WEIGHT + NAME_WEIGHT  # type: ignore[union-attr]
            self._profiles[name] = {t: min(c, total) / total for t, c in counts.items()}
        users: Counter[str] = Counter(t for profile in self._profiles.values() for t in profile)
        self._term_idf = {t: math.log(1 + len(self._profiles) / c) for t, c in users.items()}

    def similarity(self, text: str) -> dict[str, float]:
        """Cosine of the text to each routable agent's centroid (all words: the phrasing counts too)."""
        return self._whole.similarity(text)

    def topic(self, text: str) -> dict[str, float]:
        """Cosine of the text's content words to each routable agent's (common words left out: the subject only)."""
        return self._content.similarity(text)

    def evidence(self, text: str) -> dict[str, float]:
        """How much of each routable agent's own vocabulary the text uses (0 when none)."""
        found = [t for t in terms(text) if t in self._term_idf]
        return {name: sum(profile.get(t, 0.0) * self._term_idf[t] for t in found) for name, profile in self._profiles.items()}

    def speaks_of(self, name: str, words: set[str]) -> bool:
        """Whether the agent's manifest uses any of these words."""
        profile = self._profiles.get(name, {})
        return any(stem(w) in profile for w in words)
