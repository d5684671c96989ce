"""Hosted (or self-hosted, OpenAI-compatible) model providers as autogen ChatCompletionClients.

The SDKs' own retries are switched off (``max_retries=0``): ``RetryingModelClient`` is the only
retry layer, so attempts, delays and log lines are ours and predictable.
"""

from __future__ import annotations

import os
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from autogen_core.models import ChatCompletionClient, ModelFamily, ModelInfo

from ..errors import ConfigError

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"

UNKNOWN_OPENAI_MODEL_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": ModelFamily.UNKNOWN,
    "structured_output": True,
    "multiple_system_messages": True,
}
"""Capabilities assumed for a model autogen does not know (Ollama, vLLM, llama.cpp server, ...)."""

_CLAUDE_FAMILIES = (
    ("claude-3-5-haiku", ModelFamily.CLAUDE_3_5_HAIKU),
    ("claude-3-5-sonnet", ModelFamily.CLAUDE_3_5_SONNET),
    ("claude-3-7-sonnet", ModelFamily.CLAUDE_3_7_SONNET),
    ("claude-3-haiku", ModelFamily.CLAUDE_3_HAIKU),
    ("claude-3-sonnet", ModelFamily.CLAUDE_3_SONNET),
    ("claude-3-opus", ModelFamily.CLAUDE_3_OPUS),
    ("claude-sonnet-4", ModelFamily.CLAUDE_4_SONNET),
    ("claude-opus-4", ModelFamily.CLAUDE_4_OPUS),
)


def anthropic_model_info(model: str) -> ModelInfo:
    """Capabilities of a Claude model.

    Always passed explicitly: autogen-ext 0.7.5's prefix lookup matches any unlisted name such as
    ``claude-3-5-haiku-latest`` to ``claude-2.0`` (no function calling), which breaks tool calls.
    """
    family = next((f for prefix, f in _CLAUDE_FAMILIES if model.startswith(prefix)), ModelFamily.UNKNOWN)
    return {
        "vision": True,
        "function_calling": True,
        "json_output": True,
        "family": family,
        "structured_output": False,
        "multiple_system_messages": False,
    }


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _check_url(url: str, variable: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{variable}={redact_url(url)!r} is not a URL: expected http(s)://host[:port]/path, e.g. http://127.0.0.1:11434/v1")
    return url.rstrip("/")


def redact_url(url: str) -> str:
    """The URL without user:password (safe for status output and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def openai_base_url(base_url: str | None = None, env: Mapping[str, str] | None = None) -> str:
    url = base_url or _env(env).get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
    return _check_url(url, "OPENAI_BASE_URL")


def anthropic_base_url(base_url: str | None = None, env: Mapping[str, str] | None = None) -> str:
    url = base_url or _env(env).get("ANTHROPIC_BASE_URL") or ANTHROPIC_DEFAULT_BASE_URL
    return _check_url(url, "ANTHROPIC_BASE_URL")


def openai_client(
    model: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    model_info: ModelInfo | None = None,
    http_client: Any = None,
) -> ChatCompletionClient:
    """An autogen OpenAIChatCompletionClient for ``model`` at OPENAI_BASE_URL (any OpenAI-compatible server).
    ``http_client``: an ``openai.DefaultAsyncHttpxClient`` to send through (shared by several clients: one
    connection pool and one TLS context instead of one each; see ``shared_http_client``)."""
    if not model:
        raise ConfigError("the OpenAI model name is empty: use openai:<model>, e.g. openai:gpt-4o-mini")
    key = api_key or _env(env).get("OPENAI_API_KEY")
    if not key:
        raise ConfigError(
            f"no OPENAI_API_KEY is set for model openai:{model}: set OPENAI_API_KEY (for an OpenAI-compatible server such as "
            "Ollama or vLLM, set OPENAI_BASE_URL and any non-empty key), or choose another backend with SWARM_MCP_MODEL "
            "(e.g. local, the embedded offline model)"
        )
    url = openai_base_url(base_url, env)
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    kwargs: dict[str, Any] = dict(model=model, api_key=key, base_url=url, timeout=float(timeout), max_retries=0)
    if http_client is not None:
        kwargs["http_client"] = http_client
    if model_info is not None:
        return plain_requests(OpenAIChatCompletionClient(**kwargs, model_info=model_info))
    try:
        return plain_requests(OpenAIChatCompletionClient(**kwargs))
    except ValueError as exc:
        if "model_info" not in str(exc):
            raise ConfigError(f"openai:{model}: {exc}") from exc
        # A model autogen does not know (served by Ollama, vLLM, ...): assume tool calls and JSON work.
        return plain_requests(OpenAIChatCompletionClient(**kwargs, model_info=dict(UNKNOWN_OPENAI_MODEL_INFO)))  # type: ignore[arg-type]


def plain_requests(client: Any) -> Any:
    """Have ``client`` (autogen's OpenAIChatCompletionClient) send its chat completions without the openai SDK's
    request transform (swarm/models/openai_plain.py): the same JSON, without walking every message and tool schema
    against the SDK's type annotations on every call - the largest CPU cost of a round. Returns the client."""
    from .openai_plain import PlainCompletions

    sdk = getattr(client, "_client", None)
    chat = getattr(sdk, "chat", None)
    if chat is not None and not isinstance(getattr(chat, "completions", None), PlainCompletions):
        chat.completions = PlainCompletions(sdk)
    return client


def anthropic_client(
    model: str,
    *,
    api_key: str | None = None,
    timeout: float = 60,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
    model_info: ModelInfo | None = None,
    http_client: Any = None,
) -> ChatCompletionClient:
    """An autogen AnthropicChatCompletionClient for ``model`` (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL); ``http_client``:
    an ``anthropic.DefaultAsyncHttpxClient`` shared by several clients (``shared_http_client``)."""
    if not model:
        raise ConfigError("the Anthropic model name is empty: use anthropic:<model>, e.g. anthropic:claude-3-5-haiku-latest")
    key = api_key or _env(env).get("ANTHROPIC_API_KEY")
    if not key:
        raise ConfigError(
            f"no ANTHROPIC_API_KEY is set for model anthropic:{model}: set ANTHROPIC_API_KEY, or choose another backend "
            "with SWARM_MCP_MODEL (e.g. local, the embedded offline model)"
        )
    url = anthropic_base_url(base_url, env)
    from autogen_ext.models.anthropic import AnthropicChatCompletionClient

    extra: dict[str, Any] = {"http_client": http_client} if http_client is not None else {}
    return AnthropicChatCompletionClient(
        **extra,
        model=model,
        api_key=key,
        base_url=url,
        timeout=float(timeout),
        max_retries=0,
        model_info=model_info or anthropic_model_info(model),
    )


def shared_http_client(kind: str) -> Any:
    """A new HTTP client for ``kind``'s SDK ("openai" or "anthropic") with the SDK's own defaults (connection limits,
    redirects), for every model client of that provider to share: building one costs ~20 ms (its TLS context loads
    the CA store), and a process would otherwise build one per agent. Its pool checks an idle connection with one
    poll (connections.fast_readability)."""
    from .connections import fast_readability

    if kind == "openai":
        from openai import DefaultAsyncHttpxClient

        client = DefaultAsyncHttpxClient()
    else:
        from anthropic import DefaultAsyncHttpxClient as AnthropicHttpClient

        client = AnthropicHttpClient()
    fast_readability(client)
    return client
