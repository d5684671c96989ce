"""swarm.models.retry: transient provider failures are retried with backoff, permanent ones are not."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any, AsyncGenerator, Sequence

import anthropic
import httpx
import httpx2
import openai
import pytest
from autogen_core.models import ChatCompletionClient, CreateResult, RequestUsage, UserMessage

from swarm.errors import ConfigError, ProviderError
from swarm.models.retry import RetryingModelClient, RetryPolicy, classify, parse_retry_after
from swarm.models.scripted import SCRIPTED_INFO, Script, ScriptedModelClient
from tests.fakes import Sleeps

MESSAGES = [UserMessage(content="hello", source="user")]
OK = CreateResult(finish_reason="stop", content="done", usage=RequestUsage(prompt_tokens=3, completion_tokens=2), cached=False)


def openai_status(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    cls = {429: openai.RateLimitError, 401: openai.AuthenticationError, 404: openai.NotFoundError, 400: openai.BadRequestError, 403: openai.PermissionDeniedError}.get(
        status, openai.InternalServerError if status >= 500 else openai.APIStatusError
    )
    return cls(f"Error code: {status}", response=response, body=None)


def anthropic_status(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/messages")
    response = httpx.Response(status, headers=headers or {}, request=request)
    cls = {529: anthropic.OverloadedError, 429: anthropic.RateLimitError, 401: anthropic.AuthenticationError}.get(status, anthropic.APIStatusError)
    return cls(f"Error code: {status}", response=response, body=None)


class FlakyClient(ChatCompletionClient):
    """Raises the queued exceptions in turn, then answers OK; counts calls."""

    def __init__(self, failures: Sequence[BaseException], stream_fail_after_first: BaseException | None = None) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.closed = False
        self.stream_fail_after_first = stream_fail_after_first

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return OK

    async def create_stream(self, messages: Any, **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        yield "do"
        if self.stream_fail_after_first is not None:
            raise self.stream_fail_after_first
        yield "ne"
        yield OK

    async def close(self) -> None:
        self.closed = True

    def actual_usage(self) -> RequestUsage:
        return RequestUsage(prompt_tokens=3, completion_tokens=2)

    def total_usage(self) -> RequestUsage:
        return RequestUsage(prompt_tokens=30, completion_tokens=20)

    def count_tokens(self, messages: Any, *, tools: Any = []) -> int:
        raise ConnectionError("tiktoken cannot download its encoding offline")

    def remaining_tokens(self, messages: Any, *, tools: Any = []) -> int:
        raise KeyError("unknown-model")

    @property
    def capabilities(self) -> Any:
        return SCRIPTED_INFO

    @property
    def model_info(self) -> Any:
        return SCRIPTED_INFO


def wrap(inner: ChatCompletionClient, provider: str = "openai", **policy: Any) -> tuple[RetryingModelClient, Sleeps]:
    sleeps = Sleeps()
    policy.setdefault("jitter", False)
    return RetryingModelClient(inner, RetryPolicy(**policy), provider, sleep=sleeps, model="gpt-test"), sleeps


@pytest.mark.anyio
async def test_429_then_503_then_success_is_retried_with_exponential_backoff(caplog: pytest.LogCaptureFixture) -> None:
    inner = FlakyClient([openai_status(429), openai_status(503)])
    client, sleeps = wrap(inner, base_delay=0.5, max_delay=20.0)
    with caplog.at_level(logging.WARNING, logger="swarm.models.retry"):
        result = await client.create(MESSAGES)
    assert result.content == "done"
    assert inner.calls == 3
    assert sleeps == [0.5, 1.0]
    warnings = [r for r in caplog.records if r.name == "swarm.models.retry" and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1/5" in warnings[0].getMessage() and "HTTP 429" in warnings[0].getMessage()
    assert "attempt 2/5" in warnings[1].getMessage() and "HTTP 503" in warnings[1].getMessage()


@pytest.mark.anyio
async def test_full_jitter_draws_each_delay_below_the_exponential_ceiling() -> None:
    inner = FlakyClient([openai_status(500)] * 4)
    draws = iter([0.5, 0.25, 1.0, 0.0])
    sleeps = Sleeps()
    client = RetryingModelClient(inner, RetryPolicy(max_retries=4, base_delay=1.0, max_delay=5.0, jitter=True), "openai", sleep=sleeps, rand=lambda: next(draws))
    await client.create(MESSAGES)
    # ceilings 1, 2, 4, 8->capped 5; delay = draw * ceiling
    assert sleeps == [0.5, 0.5, 4.0, 0.0]


@pytest.mark.anyio
async def test_retries_exhausted_raise_provider_error_naming_provider_model_and_attempts() -> None:
    inner = FlakyClient([openai_status(503)] * 10)
    client, sleeps = wrap(inner, max_retries=2, base_delay=0.5)
    with pytest.raises(ProviderError) as info:
        await client.create(MESSAGES)
    err = info.value
    assert inner.calls == 3 and err.attempts == 3 and err.retryable is True
    assert sleeps == [0.5, 1.0]
    message = str(err)
    assert "openai" in message and "'gpt-test'" in message and "3 attempts" in message
    assert "InternalServerError" in message and "503" in message
    assert "OPENAI_API_KEY" in message and "OPENAI_BASE_URL" in message and "continue_copilot" in message
    assert isinstance(err.__cause__, openai.InternalServerError)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "set OPENAI_API_KEY"), (403, "permissions"), (404, "check the model name"), (400, "check the model name")],
)
async def test_permanent_failures_are_not_retried_and_say_how_to_fix(status: int, hint: str) -> None:
    inner = FlakyClient([openai_status(status)])
    client, sleeps = wrap(inner)
    with pytest.raises(ProviderError) as info:
        await client.create(MESSAGES)
    assert inner.calls == 1 and sleeps == []
    assert info.value.retryable is False and info.value.attempts == 1
    assert hint in str(info.value) and "gpt-test" in str(info.value)


@pytest.mark.anyio
async def test_anthropic_auth_error_names_the_anthropic_variable() -> None:
    inner = FlakyClient([anthropic_status(401)])
    client, sleeps = wrap(inner, provider="anthropic")
    with pytest.raises(ProviderError, match="set ANTHROPIC_API_KEY"):
        await client.create(MESSAGES)
    assert inner.calls == 1 and sleeps == []


@pytest.mark.anyio
async def test_retry_after_header_is_honoured_and_capped() -> None:
    inner = FlakyClient([openai_status(429, {"retry-after": "7"}), openai_status(429, {"retry-after": "300"}), openai_status(503, {"retry-after-ms": "1500"})])
    client, sleeps = wrap(inner, base_delay=0.5, max_delay=20.0)
    assert (await client.create(MESSAGES)).content == "done"
    assert sleeps == [7.0, 20.0, 1.5]


def test_retry_after_parsing() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1.5)
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        openai.APITimeoutError(request=httpx2.Request("POST", "http://127.0.0.1:9/")),
        openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:9/")),
        anthropic.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1:9/")),
        anthropic_status(529),
        anthropic_status(429),
        httpx2.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        asyncio.TimeoutError(),
        ProviderError("503 (scripted)", retryable=True),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_transient_failure_families_are_retried(failure: BaseException) -> None:
    inner = FlakyClient([failure])
    client, sleeps = wrap(inner)
    assert (await client.create(MESSAGES)).content == "done"
    assert inner.calls == 2 and len(sleeps) == 1


@pytest.mark.anyio
async def test_x_should_retry_header_overrides_the_status() -> None:
    assert classify(openai_status(409, {"x-should-retry": "true"})).retryable is True  # type: ignore[union-attr]
    assert classify(openai_status(500, {"x-should-retry": "false"})).retryable is False  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_other_exceptions_pass_through_unchanged_and_unretried() -> None:
    inner = FlakyClient([ValueError("Model does not support function calling")])
    client, sleeps = wrap(inner)
    with pytest.raises(ValueError, match="function calling"):
        await client.create(MESSAGES)
    assert inner.calls == 1 and sleeps == []


@pytest.mark.anyio
async def test_scripted_provider_failures_through_the_real_scripted_client() -> None:
    script = Script([{"error": "rate_limit"}, {"error": "timeout"}, {"agent": "engineer", "text": "ok"}, {"error": "auth"}])
    client, sleeps = wrap(ScriptedModelClient(script, "engineer"), provider="scripted")
    result = await client.create(MESSAGES)
    assert result.content == "ok" and len(sleeps) == 2
    assert client.total_usage() == RequestUsage(prompt_tokens=10, completion_tokens=5)
    with pytest.raises(ProviderError) as info:
        await client.create(MESSAGES)
    assert info.value.retryable is False and "401" in str(info.value)
    script.assert_exhausted()


@pytest.mark.anyio
async def test_stream_is_retried_only_before_the_first_chunk() -> None:
    inner = FlakyClient([openai_status(429)])
    client, sleeps = wrap(inner)
    chunks = [c async for c in client.create_stream(MESSAGES)]
    assert chunks[:2] == ["do", "ne"] and chunks[2] == OK
    assert inner.calls == 2 and sleeps == [0.5]

    broken = FlakyClient([], stream_fail_after_first=openai_status(503))
    client, sleeps = wrap(broken)
    seen: list[object] = []
    with pytest.raises(ProviderError, match="after it had started"):
        async for chunk in client.create_stream(MESSAGES):
            seen.append(chunk)
    assert seen == ["do"] and broken.calls == 1 and sleeps == []


@pytest.mark.anyio
async def test_stream_exhausted_raises_provider_error() -> None:
    inner = FlakyClient([openai_status(502)] * 3)
    client, sleeps = wrap(inner, max_retries=1)
    with pytest.raises(ProviderError, match="2 attempts"):
        async for _ in client.create_stream(MESSAGES):
            pass
    assert inner.calls == 2 and sleeps == [0.5]


@pytest.mark.anyio
async def test_delegation_and_token_fallbacks() -> None:
    inner = FlakyClient([])
    client, _ = wrap(inner)
    assert client.actual_usage() == RequestUsage(prompt_tokens=3, completion_tokens=2)
    assert client.total_usage() == RequestUsage(prompt_tokens=30, completion_tokens=20)
    assert client.model_info == SCRIPTED_INFO and client.capabilities == SCRIPTED_INFO
    assert client.count_tokens(MESSAGES) > 0  # inner failed offline: estimate
    assert 0 < client.remaining_tokens(MESSAGES) < 128_000
    await client.close()
    assert inner.closed


@pytest.mark.anyio
async def test_zero_retries_means_one_attempt() -> None:
    inner = FlakyClient([openai_status(429)])
    client, sleeps = wrap(inner, max_retries=0)
    with pytest.raises(ProviderError, match="1 attempt;"):
        await client.create(MESSAGES)
    assert inner.calls == 1 and sleeps == []


# ---- an empty reply is a provider fault (issue 9 item 8) ----------------------------------------

EMPTY = CreateResult(finish_reason="stop", content="", usage=RequestUsage(prompt_tokens=3, completion_tokens=0), cached=False)


class Replies(FlakyClient):
    """Answers the queued CreateResults in turn (then OK)."""

    def __init__(self, replies: Sequence[CreateResult]) -> None:
        super().__init__([])
        self.replies = list(replies)

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:
        self.calls += 1
        return self.replies.pop(0) if self.replies else OK


@pytest.mark.anyio
async def test_an_empty_reply_is_retried_like_a_5xx(caplog: pytest.LogCaptureFixture) -> None:
    blank = CreateResult(finish_reason="stop", content="  \n", usage=EMPTY.usage, cached=False)
    no_calls = CreateResult(finish_reason="function_calls", content=[], usage=EMPTY.usage, cached=False)
    inner = Replies([EMPTY, blank, no_calls])
    client, sleeps = wrap(inner, base_delay=0.5)
    with caplog.at_level(logging.WARNING, logger="swarm.models.retry"):
        assert (await client.create(MESSAGES)).content == "done"
    assert inner.calls == 4 and sleeps == [0.5, 1.0, 2.0]
    assert "empty reply" in caplog.records[0].getMessage()


@pytest.mark.anyio
async def test_empty_replies_every_time_end_in_a_clear_provider_error() -> None:
    inner = Replies([EMPTY] * 5)
    client, sleeps = wrap(inner, max_retries=2)
    with pytest.raises(ProviderError) as info:
        await client.create(MESSAGES)
    message = str(info.value)
    assert "openai model 'gpt-test' returned an empty reply (no text and no tool call) 3 times in a row" in message
    assert "continue_copilot" in message and "SWARM_MCP_MODEL" in message
    assert info.value.attempts == 3 and inner.calls == 3 and len(sleeps) == 2


@pytest.mark.anyio
async def test_a_scripted_empty_text_is_an_empty_reply() -> None:
    script = Script([{"agent": "engineer", "text": ""}, {"agent": "engineer", "text": "second try"}])
    client, sleeps = wrap(ScriptedModelClient(script, "engineer"), provider="scripted")
    assert (await client.create(MESSAGES)).content == "second try" and len(sleeps) == 1
    script.assert_exhausted()


@pytest.mark.anyio
async def test_an_unstreamed_empty_answer_of_create_stream_is_retried() -> None:
    inner = Replies([EMPTY])
    client, sleeps = wrap(WrapsCreate(inner))
    chunks = [c async for c in client.create_stream(MESSAGES)]
    assert chunks == [OK] and inner.calls == 2 and len(sleeps) == 1


class WrapsCreate(FlakyClient):
    """create_stream yields create's whole answer as one item (as the journal and the local model do)."""

    def __init__(self, inner: FlakyClient) -> None:
        super().__init__([])
        self.inner = inner

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:
        return await self.inner.create(messages, **kwargs)

    async def create_stream(self, messages: Any, **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        yield await self.create(messages, **kwargs)


@pytest.mark.anyio
async def test_a_config_error_at_the_first_call_is_never_retried() -> None:
    inner = FlakyClient([ConfigError("could not load the local model: reinstall it")])
    client, sleeps = wrap(inner)
    with pytest.raises(ConfigError, match="reinstall it"):
        await client.create(MESSAGES)
    assert inner.calls == 1 and sleeps == []
