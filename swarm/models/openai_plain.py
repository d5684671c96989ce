"""Chat completions sent as the JSON they already are.

autogen's OpenAI client hands the openai SDK plain JSON (dicts and lists of messages and tool schemas). The SDK still
runs its request transform over the whole body on every call: it walks each value against the TypedDict annotations
of the request (for aliases and special types the chat completion request does not use), which costs more CPU than
the rest of a round put together and grows with the conversation. ``PlainCompletions.create`` sends such a body as
it is, minus the parameters left out (NOT_GIVEN / omit), exactly as the transform would leave it; anything else (a
stream, a value that is not plain JSON) goes through the SDK's own ``create``.

A client with a fixed API key and no SDK retries (how swarm-mcp builds its clients: retries are its own, swarm/models/
retry.py) sends such a body straight through the SDK's HTTP client, with the headers the SDK builds for it (kept per
timeout): the SDK's request machinery (options, copies, hooks for rotating keys and provider runtimes, its lenient
reading of the answer) cost as much CPU again as the HTTP exchange itself (0.6 ms of 1.3 ms a call, with a
12-message history and 8 tools). The answer is validated into the SDK's ``ChatCompletion``; one that is off the spec
(some OpenAI-compatible servers) is read leniently, as the SDK reads it. Failures are the SDK's own errors
(``APITimeoutError``, ``APIConnectionError``, ``APIStatusError`` and its kinds), made by the SDK's own functions.
"""

from __future__ import annotations

import json
from typing import Any

from openai import APIConnectionError, APIResponseValidationError, APITimeoutError, AsyncOpenAI, AsyncStream, OpenAIError
from openai._base_client import make_request_options, request_exceptions, timeout_exceptions
from openai._models import FinalRequestOptions, construct_type
from openai._types import NOT_GIVEN, NotGiven, Omit
from openai.resources.chat.completions import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")
_JSON = (str, int, float, bool, type(None))


def plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is made of JSON values only (dicts with string keys, lists, scalars)."""
    if isinstance(value, _JSON):
        return True
    if depth > 64:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain_json(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_json(v, depth + 1) for v in value)
    return False


_UNSET = object()


def sends_directly(sdk: Any) -> bool:
    """Whether ``sdk`` (an ``AsyncOpenAI``) authenticates with a fixed API key, adds nothing per request and retries
    nothing: then its requests are its default headers and the body. Anything else, or an SDK whose internals are not
    the ones named here, goes through the SDK."""
    return (type(sdk) is AsyncOpenAI  # (not a subclass: Azure's rewrites the URL of each request, for one)
            and isinstance(getattr(sdk, "api_key", None), str) and bool(sdk.api_key)
            and getattr(sdk, "_provider_runtime", _UNSET) is None and getattr(sdk, "_api_key_provider", _UNSET) is None
            and getattr(sdk, "workload_identity", _UNSET) is None and getattr(sdk, "custom_auth", _UNSET) is None
            and getattr(sdk, "max_retries", None) == 0 and not getattr(sdk, "_custom_query", _UNSET))


class PlainCompletions(AsyncCompletions):
    """The SDK's chat completions resource, sending plain-JSON requests without its request transform."""

    _direct: Any = _UNSET
    """Whether this client sends directly (``sends_directly``); _UNSET until its first call."""
    _headers: dict[Any, Any] | None = None
    """The headers the SDK builds for this client's chat completion requests, by the request's timeout."""

    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        options = {k: params.pop(k) for k in _OPTIONS if k in params}
        body = {k: v for k, v in params.items() if not isinstance(v, (NotGiven, Omit))}
        if body.get("stream") or not plain_json(body):
            return await super().create(**params, **options)
        timeout = options.get("timeout", NOT_GIVEN)  # (autogen passes its client's timeout with every call)
        if options.keys() <= {"timeout"} and isinstance(timeout, (int, float, NotGiven)):
            if self._direct is _UNSET:
                self._direct = sends_directly(self._client)
            if self._direct:
                return await self._send(body, timeout)
        return await self._post(
            "/chat/completions",
            body=body,
            options=make_request_options(**options, security={"bearer_auth": True}),
            cast_to=ChatCompletion,
            stream=False,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )

    def _headers_for(self, timeout: Any) -> Any:
        """The headers of a chat completion request with ``timeout``, as the SDK builds them (once per timeout)."""
        if self._headers is None:
            self._headers = {}
        headers = self._headers.get(timeout)
        if headers is None:
            options = FinalRequestOptions.construct(method="post", url="/chat/completions", security={"bearer_auth": True},  # type: ignore[call-arg]
                                                    timeout=timeout)
            headers = self._headers[timeout] = self._client._build_headers(options)
        return headers

    async def _send(self, body: dict[str, Any], timeout: Any) -> ChatCompletion:
        sdk = self._client
        http = sdk._client
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        request = http.build_request("POST", sdk._prepare_url("/chat/completions"), content=content, headers=self._headers_for(timeout),
                                     timeout=sdk.timeout if isinstance(timeout, NotGiven) else timeout)
        try:
            response = await http.send(request)
        except timeout_exceptions() as err:
            raise APITimeoutError(request=request) from err
        except OpenAIError:
            raise
        except request_exceptions() as err:
            raise APIConnectionError(request=request) from err
        if response.status_code >= 400:
            raise sdk._make_status_error_from_response(response)
        raw = response.content
        try:
            return ChatCompletion.model_validate_json(raw)
        except ValidationError:
            pass
        try:
            data = json.loads(raw)
        except ValueError:
            raise APIResponseValidationError(response=response, body=raw.decode(errors="replace"),
                                             message="the chat completion answer is not JSON") from None
        return construct_type(type_=ChatCompletion, value=data)  # type: ignore[return-value]  # off the spec: read as the SDK reads it
