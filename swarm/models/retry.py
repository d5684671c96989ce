"""Retries of model provider calls: the only retry layer (the SDKs' own retries are switched off).

``RetryingModelClient`` wraps any autogen ``ChatCompletionClient``. Transient failures (timeouts,
connection errors, HTTP 408/429/5xx, ``ProviderError(retryable=True)``) are retried with exponential
backoff and full jitter, honouring a ``Retry-After`` header (capped at ``max_delay``). After the last
attempt, or at once for a permanent failure (401/403/400/404, ...), it raises ``ProviderError`` with a
message naming the provider and the model and saying what to do. An empty reply (no text and no tool
call) is a provider fault too (``EmptyReplyError``): retried like a 5xx, then a ``ProviderError``. Any
other exception (a bug, a malformed request caught client-side, a ``ConfigError``, cancellation)
passes through unchanged: it is never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Awaitable, Callable, Mapping, Sequence

import anyio
from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage
from autogen_core.tools import Tool, ToolSchema

from ..errors import ProviderError
from .base import WrappingModelClient

logger = logging.getLogger("swarm.models.retry")

_RETRYABLE_STATUS = frozenset({408, 429})
_FALLBACK_TOKEN_LIMIT = 128_000


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a provider call is retried."""

    max_retries: int = 4
    """Retries after the first attempt (so at most max_retries + 1 attempts)."""
    base_delay: float = 0.5
    """Backoff before retry n (0-based) is up to base_delay * 2**n seconds."""
    max_delay: float = 20.0
    """Cap of every single delay, a Retry-After header included."""
    jitter: bool = True
    """Full jitter: the delay is uniform in [0, backoff] instead of exactly backoff."""

    @property
    def attempts(self) -> int:
        return max(0, self.max_retries) + 1

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry number ``retry`` (0-based) when the server gave no Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        ceiling = max(0.0, ceiling)
        return rand() * ceiling if self.jitter else ceiling

    def delay(self, retry: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_delay))
        return self.backoff(retry, rand)


class EmptyReplyError(ProviderError):
    """The provider answered a completion with no text and no tool call (retryable, like a 5xx)."""

    def __init__(self) -> None:
        super().__init__("the model returned an empty reply (no text and no tool call)", retryable=True)


def is_empty_reply(result: CreateResult) -> bool:
    """Whether a completion carries nothing usable: empty (or blank) text and no tool call."""
    content = result.content
    if isinstance(content, str):
        return not content.strip()
    return not content  # a list of function calls: empty means none


@dataclass(frozen=True)
class Failure:
    """What an exception from a model client means for the retry loop."""

    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    hint: str = ""


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _headers_of(exc: BaseException) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None and hasattr(headers, "get") else None


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait according to retry-after-ms / Retry-After (seconds or an HTTP date), or None."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_types(modules: tuple[str, ...], *attrs: str) -> tuple[type[BaseException], ...]:
    """The exception classes ``attrs`` of those of ``modules`` that are imported: an exception of a library that was
    never imported cannot be raised, so nothing is imported here (the provider SDKs take a second to import)."""
    found: list[type[BaseException]] = []
    for name in modules:
        module = sys.modules.get(name)
        for attr in attrs:
            error = getattr(module, attr, None) if module is not None else None
            if isinstance(error, type):
                found.append(error)
    return tuple(found)


def _transport_errors() -> tuple[type[BaseException], ...]:
    return _error_types(("httpx", "httpx2"), "TransportError")


def _connection_errors() -> tuple[type[BaseException], ...]:
    return _error_types(("openai", "anthropic"), "APIConnectionError", "RetryableError")  # incl. APITimeoutError


def _status_errors() -> tuple[type[BaseException], ...]:
    return _error_types(("openai", "anthropic"), "APIStatusError")


def _hint_for_status(status: int, key_var: str, url_var: str) -> str:
    if status == 401:
        return f"the API key was rejected: set {key_var} to a valid key"
    if status == 403:
        return f"the API key has no access to this model or endpoint: check the key's permissions ({key_var}) and the model name"
    if status == 404:
        return f"the model or endpoint was not found: check the model name (SWARM_MCP_MODEL) and the base URL ({url_var})"
    if status == 400 or status == 422:
        return "the provider rejected the request: check the model name and that the model supports tool calls"
    if status == 413:
        return "the request is too large for the model: shorten the task or use a model with a larger context"
    return f"check the model name, the API key ({key_var}) and the base URL ({url_var})"


def classify(exc: BaseException, provider: str = "openai") -> Failure | None:
    """How to treat ``exc``: a retryable or permanent provider failure, or None (not a provider failure)."""
    key_var, url_var = _env_names(provider)
    if isinstance(exc, ProviderError):
        return Failure(retryable=exc.retryable, hint="" if exc.retryable else _hint_from_text(str(exc), key_var, url_var))
    status_errors, connection_errors, transport_errors = _status_errors(), _connection_errors(), _transport_errors()
    if status_errors and isinstance(exc, status_errors):
        status = _status_of(exc)
        headers = _headers_of(exc)
        should = (headers.get("x-should-retry") or "").lower() if headers else ""
        if should in ("true", "false"):
            retryable = should == "true"
        else:
            retryable = status is not None and (status in _RETRYABLE_STATUS or status >= 500)
        hint = "" if retryable else _hint_for_status(status or 0, key_var, url_var)
        return Failure(retryable=retryable, status=status, retry_after=parse_retry_after(headers), hint=hint)
    if connection_errors and isinstance(exc, connection_errors):
        return Failure(retryable=True)
    if transport_errors and isinstance(exc, transport_errors):
        return Failure(retryable=True)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Failure(retryable=True)
    return None


def _hint_from_text(text: str, key_var: str, url_var: str) -> str:
    for status in (401, 403, 404, 400):
        if str(status) in text:
            return _hint_for_status(status, key_var, url_var)
    return f"check the model name, the API key ({key_var}) and the base URL ({url_var})"


def _env_names(provider: str) -> tuple[str, str]:
    if provider == "anthropic":
        return "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"
    if provider == "openai":
        return "OPENAI_API_KEY", "OPENAI_BASE_URL"
    return f"the {provider} API key", f"the {provider} base URL"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "(no message)"
    if len(text) > 500:
        text = text[:500] + "..."
    return f"{type(exc).__name__}: {text}"


class RetryingModelClient(WrappingModelClient):
    """A ChatCompletionClient that retries transient provider failures of the client it wraps."""

    def __init__(
        self,
        inner: ChatCompletionClient,
        policy: RetryPolicy | None = None,
        provider_name: str = "model",
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
        *,
        model: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.provider_name = provider_name
        self.model = model or _model_name(inner)
        self._sleep = sleep
        self._rand = rand

    # --- the retry loop ------------------------------------------------------------------------

    def _give_up(self, exc: BaseException, failure: Failure, attempts: int) -> ProviderError:
        key_var, url_var = _env_names(self.provider_name)
        who = f"{self.provider_name} model {self.model!r}"
        if isinstance(exc, EmptyReplyError):
            return ProviderError(
                f"{who} returned an empty reply (no text and no tool call) {attempts} time{'s' if attempts != 1 else ''} in a row. "
                "The provider may be overloaded or the model may not handle this conversation: continue the session later with "
                "continue_copilot, or choose another model (SWARM_MCP_MODEL).",
                retryable=True, attempts=attempts,
            )
        if failure.retryable:
            message = (
                f"{who} failed after {attempts} attempt{'s' if attempts != 1 else ''}; last error: {_describe(exc)}. "
                f"Check the API key ({key_var}), the base URL ({url_var}) and your rate limits or quota; "
                "then retry, or continue the session later with continue_copilot."
            )
        else:
            message = f"{who} failed: {_describe(exc)}. Not retried: {failure.hint}."
        return ProviderError(message, retryable=failure.retryable, attempts=attempts)

    async def _before_retry(self, exc: BaseException, failure: Failure, retry: int, cancellation_token: CancellationToken | None) -> None:
        delay = self.policy.delay(retry, failure.retry_after, self._rand)
        status = f" (HTTP {failure.status})" if failure.status is not None else ""
        logger.warning(
            "%s model %r: attempt %d/%d failed%s: %s; retrying in %.2fs%s",
            self.provider_name,
            self.model,
            retry + 1,
            self.policy.attempts,
            status,
            _describe(exc),
            delay,
            " (Retry-After)" if failure.retry_after is not None else "",
        )
        await self._sleep(delay)
        if cancellation_token is not None and cancellation_token.is_cancelled():
            raise asyncio.CancelledError("model call cancelled while waiting to retry")

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Any = "auto",
        json_output: Any = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        attempts = self.policy.attempts
        for retry in range(attempts):
            try:
                result = await self.inner.create(
                    messages,
                    tools=tools,
                    tool_choice=tool_choice,
                    json_output=json_output,
                    extra_create_args=extra_create_args,
                    cancellation_token=cancellation_token,
                )
                if is_empty_reply(result):
                    raise EmptyReplyError()
                return result
            except Exception as exc:
                failure = classify(exc, self.provider_name)
                if failure is None:
                    raise
                if not failure.retryable or retry + 1 >= attempts:
                    raise self._give_up(exc, failure, retry + 1) from exc
                await self._before_retry(exc, failure, retry, cancellation_token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Any = "auto",
        json_output: Any = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Retries only until the first chunk arrives; a failure after that is raised (as ProviderError)."""
        attempts = self.policy.attempts
        for retry in range(attempts):
            stream = self.inner.create_stream(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
            try:
                first = await stream.__anext__()
                if isinstance(first, CreateResult) and is_empty_reply(first):  # the whole (unstreamed) answer, and it is empty
                    raise EmptyReplyError()
            except StopAsyncIteration:
                return
            except Exception as exc:
                await _aclose_quietly(stream)
                failure = classify(exc, self.provider_name)
                if failure is None:
                    raise
                if not failure.retryable or retry + 1 >= attempts:
                    raise self._give_up(exc, failure, retry + 1) from exc
                await self._before_retry(exc, failure, retry, cancellation_token)
                continue
            try:
                yield first
                async for chunk in stream:
                    yield chunk
            except Exception as exc:
                failure = classify(exc, self.provider_name)
                if failure is None:
                    raise
                raise ProviderError(
                    f"{self.provider_name} model {self.model!r}: the response stream broke off after it had started "
                    f"({_describe(exc)}); a started stream is not retried. Retry the step, or continue the session later with continue_copilot.",
                    retryable=failure.retryable,
                    attempts=retry + 1,
                ) from exc
            finally:
                await _aclose_quietly(stream)
            return

    # --- plain delegation ----------------------------------------------------------------------

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        try:
            return self.inner.count_tokens(messages, tools=tools)
        except Exception as exc:  # e.g. tiktoken cannot fetch its encoding offline, or an unknown model
            logger.debug("count_tokens of %s model %r failed (%s); using an estimate", self.provider_name, self.model, exc)
            return _estimate_tokens(messages, tools)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        try:
            return self.inner.remaining_tokens(messages, tools=tools)
        except Exception as exc:  # unknown token limit (a model autogen does not know) or offline tokenizer
            logger.debug("remaining_tokens of %s model %r failed (%s); assuming %d tokens", self.provider_name, self.model, exc, _FALLBACK_TOKEN_LIMIT)
            return max(0, _FALLBACK_TOKEN_LIMIT - self.count_tokens(messages, tools=tools))

    def __repr__(self) -> str:
        return f"RetryingModelClient({self.provider_name}:{self.model}, max_retries={self.policy.max_retries})"


def _model_name(inner: ChatCompletionClient) -> str:
    create_args = getattr(inner, "_create_args", None)
    if isinstance(create_args, Mapping) and create_args.get("model"):
        return str(create_args["model"])
    return str(getattr(inner, "model", None) or type(inner).__name__)


def _estimate_tokens(messages: Sequence[LLMMessage], tools: Sequence[Tool | ToolSchema]) -> int:
    chars = sum(len(str(m.content)) for m in messages)
    for tool in tools:
        chars += len(str(tool.schema if isinstance(tool, Tool) else tool))
    return chars // 4 + 4 * len(messages)


async def _aclose_quietly(stream: AsyncGenerator[Any, None]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # the stream already failed; its close error adds nothing
        pass
