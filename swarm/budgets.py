"""Budgets of a session: tokens, cost (by a price table) and wall-clock time, over all its legs.

A session whose profile sets a budget pauses, with the reason, before the first model call past it; continuing with a
raised limit goes on (``Budget.raised``). Cost needs a price table (``SWARM_MCP_PRICES``): a YAML or JSON mapping of
model spec (``openai:gpt-4o-mini``, or a bare model name) to ``{prompt: USD per 1M tokens, completion: USD per 1M tokens}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError, SwarmError
from .events import Usage
from .manifest import safe_load
from .profiles import Budget


class Price(BaseModel):
    """What a model's tokens cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: float = Field(ge=0, description="US dollars per million prompt tokens.")
    completion: float = Field(ge=0, description="US dollars per million completion tokens.")


@dataclass(frozen=True)
class Prices:
    """A price table by model spec; a model with no price costs nothing it can say (its cost is unknown)."""

    by_model: Mapping[str, Price] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> "Prices":
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"SWARM_MCP_PRICES={path}: cannot read the price table ({exc}); give a YAML or JSON file of "
                              "{model: {prompt: USD per 1M tokens, completion: USD per 1M tokens}}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"SWARM_MCP_PRICES={path}: expected a mapping of model to {{prompt, completion}}")
        try:
            return cls({str(model): Price.model_validate(price) for model, price in data.items()})
        except ValidationError as exc:
            raise ConfigError(f"SWARM_MCP_PRICES={path}: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}; each model needs "
                              "prompt and completion prices in USD per million tokens") from None

    def price(self, model: str) -> Price | None:
        return self.by_model.get(model) or self.by_model.get(model.split(":", 1)[-1])

    def cost(self, usage: Mapping[str, Usage]) -> float | None:
        """The cost in USD of ``usage`` (by model spec); None when no model in it has a price."""
        total, known = 0.0, False
        for model, used in usage.items():
            price = self.price(model)
            if price is not None:
                known = True
                total += (used.prompt_tokens * price.prompt + used.completion_tokens * price.completion) / 1_000_000
        return round(total, 6) if known else None


class BudgetReached(SwarmError):
    """A session reached a limit of its budget: it pauses with ``reason``; a continue with a raised limit goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BudgetMeter:
    """Counts a leg against its session's budget: usage recorded so far plus what the leg used, and seconds run."""

    def __init__(self, budget: Budget, prices: Prices, usage: Mapping[str, Usage], seconds_used: float) -> None:
        self.budget = budget
        self.prices = prices
        self.usage = usage
        """The session's usage by model as recorded (the record's: it grows as rounds commit)."""
        self.seconds_before = seconds_used
        self.started = time.monotonic()

    def seconds(self) -> float:
        return self.seconds_before + (time.monotonic() - self.started)

    def check(self, pending: Mapping[str, Usage]) -> None:
        """Raise BudgetReached if the session, with ``pending`` usage not yet recorded, is at a limit."""
        budget = self.budget
        merged = dict(self.usage)
        for model, used in pending.items():
            merged[model] = merged.get(model, Usage()) + used
        tokens = sum(u.total_tokens for u in merged.values())
        if budget.tokens is not None and tokens >= budget.tokens:
            raise BudgetReached(f"token budget reached: {tokens} tokens used of {budget.tokens}; continue with a higher budget "
                                "(budget={\"tokens\": ...}) to go on")
        if budget.cost_usd is not None:
            cost = self.prices.cost(merged)
            if cost is not None and cost >= budget.cost_usd:
                raise BudgetReached(f"cost budget reached: ${cost:.4f} of ${budget.cost_usd:.4f}; continue with a higher budget "
                                    "(budget={\"cost_usd\": ...}) to go on")
        if budget.seconds is not None and self.seconds() >= budget.seconds:
            raise BudgetReached(f"time budget reached: {self.seconds():.1f} s of {budget.seconds:g} s; continue with a higher budget "
                                "(budget={\"seconds\": ...}) to go on")
