"""Chat completions sent as the JSON they already are.

autogen's OpenAI client hands the openai SDK plain JSON (dicts and lists of messages and tool schemas). The SDK still
runs its request transform over the whole body on every call: it walks each value against the TypedDict annotations
of the request (for aliases and special types the chat completion request does not use), which costs more CPU than
the rest of a round put together and grows with the conversation. ``PlainCompletions.create`` sends such a body as
it is, minus the parameters left out (NOT_GIVEN / omit), exactly as the transform would leave it; anything else (a
stream, a value that is not plain JSON) goes through the SDK's own ``create``.
"""

from __future__ import annotations

from typing import Any

from openai import AsyncStream
from openai._types import NotGiven, Omit
from openai._base_client import make_request_options
from openai.resources.chat.completions import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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


class PlainCompletions(AsyncCompletions):
    """The SDK's chat completions resource, sending plain-JSON requests without its request transform."""

    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        options = {k: params.pop(k) for k in _OPTIONS if k in params}
        body = {k: v for k, v in params.items() if not isinstance(v, (NotGiven, Omit))}
        if body.get("stream") or not plain_json(body):
            return await super().create(**params, **options)
        return await self._post(
            "/chat/completions",
            body=body,
            options=make_request_options(**options, security={"bearer_auth": True}),
            cast_to=ChatCompletion,
            stream=False,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
