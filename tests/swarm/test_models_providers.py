"""swarm.models.providers over real HTTP: a fake OpenAI-compatible / Anthropic server on 127.0.0.1.

The SDK clients (autogen-ext + openai / anthropic) really serialise requests, parse responses and
raise their own exceptions; RetryingModelClient retries them. Delays are recorded, never slept.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage, UserMessage
from autogen_core.tools import FunctionTool

from swarm.errors import ConfigError, ProviderError
from swarm.models.providers import anthropic_client, anthropic_model_info, openai_client, redact_url
from swarm.models.retry import RetryingModelClient, RetryPolicy
from tests.fakes import FakeProvider, Planned, Sleeps, completion, fake_provider

MESSAGES = [UserMessage(content="add 1 and 2", source="user")]


def add(a: int, b: int) -> int:
    return a + b


ADD = FunctionTool(add, description="Add two numbers.")


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with fake_provider() as provider:
        yield provider


def tool_call_completion(model: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": json.dumps({"a": 1, "b": 2})}}
    return completion(model, {"content": None, "tool_calls": [call]}, "tool_calls", (11, 7))


OPENAI_ERROR = {"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": None, "param": None}}
SERVER_ERROR = {"error": {"message": "boom", "type": "server_error", "code": None, "param": None}}


@pytest.mark.anyio
async def test_openai_compatible_server_429_then_500_then_tool_call(fake: FakeProvider) -> None:
    model = "llama3.2:1b"  # unknown to autogen: needs our model_info
    fake.plan(
        "/v1/chat/completions",
        Planned(429, OPENAI_ERROR, {"retry-after": "3"}),
        Planned(500, SERVER_ERROR),
        Planned(200, tool_call_completion(model)),
        Planned(200, completion(model, {"content": "the sum is 3"}, "stop", (20, 5))),
    )
    inner = openai_client(model, api_key="sk-test-not-real", base_url=fake.base + "/v1", timeout=10)
    sleeps = Sleeps()
    client = RetryingModelClient(inner, RetryPolicy(max_retries=3, base_delay=0.5, jitter=False), "openai", sleep=sleeps)
    assert client.model == model and client.model_info["function_calling"] and client.model_info["family"] == "unknown"

    result = await client.create(MESSAGES, tools=[ADD])
    assert isinstance(result, CreateResult) and result.finish_reason == "function_calls"
    assert result.content == [FunctionCall(id="call_1", name="add", arguments='{"a": 1, "b": 2}')]
    assert result.usage == RequestUsage(prompt_tokens=11, completion_tokens=7)
    assert sleeps == [3.0, 1.0]  # Retry-After of the 429, then backoff 0.5 * 2**1
    requests = fake.requests_to("/v1/chat/completions")
    assert len(requests) == 3  # the SDK's own retries are off: one request per attempt
    assert requests[-1]["model"] == model and requests[-1]["tools"][0]["function"]["name"] == "add"
    headers = fake.received[-1][1]
    assert headers["authorization"] == "Bearer sk-test-not-real"

    result = await client.create(MESSAGES)
    assert result.content == "the sum is 3" and result.finish_reason == "stop"
    assert result.usage == RequestUsage(prompt_tokens=20, completion_tokens=5)
    assert client.total_usage() == RequestUsage(prompt_tokens=31, completion_tokens=12)
    assert client.remaining_tokens(MESSAGES) > 0  # unknown token limit: estimate, no crash, no network
    await client.close()


@pytest.mark.anyio
async def test_openai_401_from_server_is_not_retried(fake: FakeProvider) -> None:
    fake.plan("/v1/chat/completions", Planned(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key", "param": None}}))
    sleeps = Sleeps()
    client = RetryingModelClient(openai_client("gpt-4o-mini", api_key="sk-bad", base_url=fake.base + "/v1"), RetryPolicy(), "openai", sleep=sleeps)
    try:
        with pytest.raises(ProviderError) as info:
            await client.create(MESSAGES)
    finally:
        await client.close()
    assert info.value.retryable is False and "set OPENAI_API_KEY" in str(info.value) and "gpt-4o-mini" in str(info.value)
    assert sleeps == [] and len(fake.requests_to("/v1/chat/completions")) == 1


@pytest.mark.anyio
async def test_openai_exhausted_names_provider_model_attempts(fake: FakeProvider) -> None:
    fake.plan("/v1/chat/completions", *[Planned(503, SERVER_ERROR)] * 3)
    sleeps = Sleeps()
    client = RetryingModelClient(openai_client("qwen2.5", api_key="k", base_url=fake.base + "/v1"), RetryPolicy(max_retries=2), "openai", sleep=sleeps)
    try:
        with pytest.raises(ProviderError, match=r"openai model 'qwen2.5' failed after 3 attempts; last error: InternalServerError"):
            await client.create(MESSAGES)
    finally:
        await client.close()
    assert len(sleeps) == 2 and all(0 <= d <= 1.0 for d in sleeps)  # full jitter under 0.5, 1.0


@pytest.mark.anyio
async def test_openai_stream_retried_before_first_chunk(fake: FakeProvider) -> None:
    model = "gpt-4o-mini"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "s", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    usage = {"id": "s", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    fake.plan("/v1/chat/completions", Planned(503, SERVER_ERROR), Planned(stream=[chunk({"role": "assistant", "content": "hel"}), chunk({"content": "lo"}), chunk({}, "stop"), usage]))
    sleeps = Sleeps()
    client = RetryingModelClient(openai_client(model, api_key="k", base_url=fake.base + "/v1"), RetryPolicy(jitter=False), "openai", sleep=sleeps)
    try:
        chunks = [c async for c in client.create_stream(MESSAGES, extra_create_args={"stream_options": {"include_usage": True}})]
    finally:
        await client.close()
    assert chunks[:2] == ["hel", "lo"]
    final = chunks[-1]
    assert isinstance(final, CreateResult) and final.content == "hello" and final.usage == RequestUsage(prompt_tokens=3, completion_tokens=2)
    assert sleeps == [0.5] and fake.requests_to("/v1/chat/completions")[-1]["stream"] is True


def test_openai_base_url_and_key_from_env(fake: FakeProvider) -> None:
    client = openai_client("gpt-4o-mini", env={"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": fake.base + "/v1/"})
    assert str(client._client.base_url).rstrip("/") == fake.base + "/v1"  # type: ignore[attr-defined]
    assert client._client.max_retries == 0  # type: ignore[attr-defined]
    assert client.model_info["family"] != "unknown"  # a model autogen knows keeps autogen's info


def test_missing_keys_name_the_variable_to_set() -> None:
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        openai_client("gpt-4o-mini", env={})
    with pytest.raises(ConfigError, match="set ANTHROPIC_API_KEY"):
        anthropic_client("claude-3-5-haiku-latest", env={})
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        openai_client("m", env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "localhost:11434"})


def test_anthropic_model_info_keeps_tool_calls() -> None:
    # autogen-ext 0.7.5 matches unlisted names like this one to claude-2.0 (no function calling).
    info = anthropic_model_info("claude-3-5-haiku-latest")
    assert info["function_calling"] is True and info["family"] == "claude-3-5-haiku"
    assert anthropic_model_info("claude-new-9")["family"] == "unknown"


def test_redact_url() -> None:
    assert redact_url("http://user:secret@10.0.0.1:8000/v1") == "http://10.0.0.1:8000/v1"
    assert redact_url("https://api.openai.com/v1") == "https://api.openai.com/v1"


@pytest.mark.anyio
async def test_anthropic_529_then_tool_use_then_text(fake: FakeProvider) -> None:
    model = "claude-haiku-4-5"  # claude-3-5-haiku-latest is past end-of-life (the SDK warns)
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    tool_use = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1, "b": 2}}],
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 6},
    }
    text = {
        "id": "msg_2", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "3"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 4, "output_tokens": 1},
    }
    fake.plan("/v1/messages", Planned(529, overloaded), Planned(200, tool_use), Planned(200, text))
    sleeps = Sleeps()
    inner = anthropic_client(model, env={"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake.base}, timeout=10)
    client = RetryingModelClient(inner, RetryPolicy(jitter=False), "anthropic", sleep=sleeps)
    result = await client.create(MESSAGES, tools=[ADD])
    assert result.finish_reason == "function_calls"
    assert result.content == [FunctionCall(id="toolu_1", name="add", arguments='{"a": 1, "b": 2}')]
    assert result.usage == RequestUsage(prompt_tokens=12, completion_tokens=6)
    assert sleeps == [0.5]
    result = await client.create(MESSAGES)
    assert result.content == "3"
    assert client.total_usage() == RequestUsage(prompt_tokens=16, completion_tokens=7)
    assert len(fake.requests_to("/v1/messages")) == 3
    assert fake.received[-1][1]["x-api-key"] == "sk-ant-test"
    await client.close()


@pytest.mark.anyio
async def test_chat_completions_go_out_as_the_sdk_would_send_them_without_its_request_transform(fake: FakeProvider) -> None:
    """openai_client sends plain-JSON requests itself (swarm/models/openai_plain.py): the body on the wire is exactly
    what the SDK's own create sends for the same call, headers and auth included; a stream still goes through the SDK."""
    from openai.resources.chat.completions import AsyncCompletions

    from swarm.models.openai_plain import PlainCompletions

    model = "gpt-4o-mini"
    fake.plan("/v1/chat/completions", *(Planned(200, tool_call_completion(model)) for _ in range(2)))
    client = openai_client(model, api_key="sk-test-not-real", base_url=fake.base + "/v1", timeout=10)
    sdk = client._client
    assert isinstance(sdk.chat.completions, PlainCompletions)
    messages = [{"role": "system", "content": "Add."}, {"role": "user", "content": "1 + 2?", "name": "alice"}]
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
    try:
        await sdk.chat.completions.create(model=model, messages=messages, tools=tools, stream=False, temperature=0.2,
                                          extra_headers={"x-trace": "1"})
        await AsyncCompletions(sdk).create(model=model, messages=messages, tools=tools, stream=False, temperature=0.2,
                                           extra_headers={"x-trace": "1"})
    finally:
        await client.close()  # (its connections, closed in this test's event loop)
    (path_a, headers_a, plain), (path_b, headers_b, transformed) = fake.received[-2:]
    assert plain == transformed and path_a == path_b
    assert {k: headers_a[k] for k in ("authorization", "x-trace", "content-type")} == {k: headers_b[k] for k in ("authorization", "x-trace", "content-type")}


@pytest.mark.anyio
async def test_a_fixed_key_client_sends_straight_through_its_http_client_the_request_the_sdk_would_send(fake: FakeProvider) -> None:
    """How autogen calls create (no per-call options): the request goes out through the SDK's HTTP client without the
    SDK's request machinery; on the wire it is the SDK's own request (path, every header, body) and the answer reads
    the same."""
    from openai.resources.chat.completions import AsyncCompletions

    model = "gpt-4o-mini"
    fake.plan("/v1/chat/completions", *(Planned(200, tool_call_completion(model)) for _ in range(2)))
    client = openai_client(model, api_key="sk-test-not-real", base_url=fake.base + "/v1", timeout=10)
    sdk = client._client
    messages = [{"role": "system", "content": "Add."}, {"role": "user", "content": "1 + 2? é", "name": "alice"}]
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
    try:
        direct = await sdk.chat.completions.create(model=model, messages=messages, tools=tools, stream=False, temperature=0.2, timeout=10.0)
        assert list(sdk.chat.completions._headers) == [10.0]  # it went straight through
        through_sdk = await AsyncCompletions(sdk).create(model=model, messages=messages, tools=tools, stream=False, temperature=0.2,
                                                         timeout=10.0)
    finally:
        await client.close()
    (path_a, headers_a, body_a), (path_b, headers_b, body_b) = fake.received[-2:]
    assert (path_a, body_a) == (path_b, body_b)
    assert headers_a == headers_b
    assert type(direct) is type(through_sdk) and direct.model_dump() == through_sdk.model_dump()


@pytest.mark.anyio
async def test_a_direct_request_fails_with_the_sdks_own_errors(fake: FakeProvider) -> None:
    """Statuses, timeouts and refused connections raise what the SDK raises (the retry policy classifies those), an
    answer off the spec is read as the SDK reads it, one that is not JSON is the SDK's validation error."""
    import httpx2
    import openai

    model = "gpt-4o-mini"
    odd = completion(model, {"content": "hi"}, "stop")
    odd["choices"][0]["finish_reason"] = "made_up_reason"  # off the spec: the SDK reads it anyway
    fake.plan("/v1/chat/completions", Planned(429, OPENAI_ERROR), Planned(500, SERVER_ERROR), Planned(200, odd))
    client = openai_client(model, api_key="sk-test-not-real", base_url=fake.base + "/v1", timeout=10)
    create = client._client.chat.completions.create
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    try:
        with pytest.raises(openai.RateLimitError, match="slow down"):
            await create(**body)
        with pytest.raises(openai.InternalServerError, match="boom"):
            await create(**body)
        answer = await create(**body)
        assert answer.choices[0].message.content == "hi" and answer.choices[0].finish_reason == "made_up_reason"
    finally:
        await client.close()

    def not_json(request: Any) -> Any:
        return httpx2.Response(200, content=b"<html>a proxy's page</html>", headers={"content-type": "text/html"})

    def too_slow(request: Any) -> Any:
        raise httpx2.ReadTimeout("timed out", request=request)

    def refused(request: Any) -> Any:
        raise httpx2.ConnectError("connection refused", request=request)

    for handler, error in ((not_json, openai.APIResponseValidationError), (too_slow, openai.APITimeoutError),
                           (refused, openai.APIConnectionError)):
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        client = openai_client(model, api_key="sk-test-not-real", base_url="http://127.0.0.1:9/v1", timeout=10, http_client=http)
        try:
            with pytest.raises(error):
                await client._client.chat.completions.create(**body)
            assert client._client.chat.completions._direct is True
        finally:
            await client.close()


@pytest.mark.anyio
async def test_autogens_calls_go_straight_through(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """autogen passes its client's timeout with every call: such a call still goes straight through, with that timeout."""
    from swarm.models.openai_plain import PlainCompletions

    sent: list[Any] = []
    send = PlainCompletions._send

    async def counted(self: Any, body: Any, timeout: Any) -> Any:
        sent.append(timeout)
        return await send(self, body, timeout)

    monkeypatch.setattr(PlainCompletions, "_send", counted)
    model = "gpt-4o-mini"
    fake.plan("/v1/chat/completions", Planned(200, tool_call_completion(model)))
    client = openai_client(model, api_key="sk-test-not-real", base_url=fake.base + "/v1", timeout=7)
    try:
        result = await client.create(MESSAGES, tools=[ADD])
    finally:
        await client.close()
    assert sent == [7.0]
    assert isinstance(result.content, list) and result.content[0].name == "add"
    assert fake.received[-1][1]["x-stainless-read-timeout"] == "7.0"


def test_only_a_plain_fixed_key_openai_client_sends_directly() -> None:
    """A client whose SDK class adds to each request (Azure's rewrites its URL), or whose key is fetched per request,
    keeps the SDK's request machinery."""
    import openai

    from swarm.models.openai_plain import sends_directly

    assert sends_directly(openai.AsyncOpenAI(api_key="sk-test-not-real", base_url="http://127.0.0.1:9/v1", max_retries=0))
    assert not sends_directly(openai.AsyncOpenAI(api_key="sk-test-not-real", base_url="http://127.0.0.1:9/v1"))  # SDK retries
    azure = openai.AsyncAzureOpenAI(api_key="sk-test-not-real", azure_endpoint="http://127.0.0.1:9", api_version="2024-06-01", max_retries=0)
    assert not sends_directly(azure)

    async def key() -> str:
        return "sk-test-not-real"

    assert not sends_directly(openai.AsyncOpenAI(api_key=key, base_url="http://127.0.0.1:9/v1", max_retries=0))
