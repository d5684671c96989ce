"""The engine's model source in the server: the configured backends, plus ``sampling`` per run.

``ServerModels`` wraps the engine's usual ``ModelSource`` (swarm.models.factory.ModelFactory, or a
fake in tests). A tier resolves to ``sampling`` when it is configured so (``SWARM_MCP_MODEL=sampling``
or a tier override), or when it is ``auto``, no provider key is configured (it would resolve to the
embedded model) and the client of the current run offers sampling. Which client serves a run is
known from ``swarm.live.active_run()``: each run's task carries its run in its context (and a durable
leg, run in a task of DBOS's, finds it by session id), so every agent - and every phase that asks the
engine for a model - reaches that run's client.

Every client handed to a run is wrapped so that interrupting the run ends its in-flight model
call (server/interruptible.py; see swarm/live.py for why this is not ``Task.cancel()``).
"""

from __future__ import annotations

import os
from typing import Any

from swarm.errors import ConfigError
from swarm.scope import current_grants

from swarm.live import active_run


class ServerModels:
    """A ModelSource: the base source, with ``sampling`` served by the current run's MCP client."""

    def __init__(self, base: Any, max_tokens: int | None = None) -> None:
        self.base = base
        self.max_tokens = max_tokens or int(os.environ.get("SWARM_MCP_SAMPLING_MAX_TOKENS") or 2048)

    def configured(self, tier: str) -> str | None:
        settings = getattr(self.base, "settings", None)
        if settings is None:
            return None
        return settings.tier_models.get(tier) or settings.model

    def needs_sampling(self) -> bool:
        """Whether some tier is configured to ``sampling`` (then a run needs a client that offers it)."""
        return any(self.configured(t) == "sampling" for t in ("fast", "default", "strong"))

    def spec_for(self, tier: str, *, client_samples: bool | None = None) -> str:
        """The tier's model spec for the current run (or, with ``client_samples``, for a run of such a client)."""
        spec = self.base.spec_for(tier)
        if client_samples is None:
            grants = current_grants.get()
            if grants is not None and grants.model == "sampling" and self.configured(tier) == "auto":
                return "sampling"  # the session runs on its client's model, connected or not: never a silent fallback
            run = active_run()
            client_samples = run is not None and run.channel is not None
        if spec == "local" and self.configured(tier) == "auto" and client_samples:
            return "sampling"
        return spec

    def samples(self) -> bool:
        """Whether some tier of the current run is served by its client's own model (sampling)."""
        return any(self.spec_for(t) == "sampling" for t in ("fast", "default", "strong"))

    def is_capable(self, tier: str) -> bool:
        return True if self.spec_for(tier) == "sampling" else self.base.is_capable(tier)

    def client_for(self, agent: str, tier: str) -> Any:
        run = active_run()
        if self.spec_for(tier) != "sampling":
            client = self.base.client_for(agent, tier)
        elif run is None or run.channel is None:
            grants = current_grants.get()
            if grants is not None and grants.model == "sampling":
                raise ConfigError(
                    "this session runs on its MCP client's own model (sampling), and no client that offers sampling is "
                    "connected to this run (the server restarted, or the call went away): continue it with continue_copilot "
                    "from a client that supports sampling"
                )
            raise ConfigError(
                "the sampling backend needs an MCP client that offers sampling (sampling/createMessage), and this "
                "client does not: connect with a client that supports sampling, or set SWARM_MCP_MODEL to auto, local, "
                "openai:<model> or anthropic:<model>"
            )
        else:
            from swarm.models.retry import RetryingModelClient

            from .sampling import SamplingModelClient

            # The client's model is a provider like any other: an empty reply is asked again, then a clear error.
            policy = getattr(self.base, "retry_policy", None)
            client = RetryingModelClient(SamplingModelClient(run.channel, agent, tier, self.max_tokens), policy() if policy else None,
                                         "sampling", model="the client's model")
        if run is None:
            return client
        from .interruptible import InterruptibleClient

        return InterruptibleClient(client, run)

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.base, "describe", None)
        return describe() if describe is not None else {}

    async def aclose(self) -> None:
        close = getattr(self.base, "aclose", None)
        if close is not None:
            await close()
