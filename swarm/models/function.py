"""A function-driven model client: the real ChatCompletionClient interface, each reply computed by a function.

In the spirit of pydantic-ai's ``FunctionModel``: ``function(messages, agent, tools)`` gets the request (the
messages, the calling agent's name, the names of the tools offered) and returns the reply - text (``str``), a tool
call (``FunctionCall``) or several (a list of them), or a whole ``CreateResult`` (its own usage, finish reason). It
may be a coroutine function. The client does the rest of the interface: usage accounting, streaming (one chunk, the
result), token counts, model info. The scripted client (scripted.py) is this client over a script; tests use it
directly for replies that depend on the request.
"""

from __future__ import annotations

import inspect
from typing import Any, AsyncGenerator, Awaitable, Callable, Mapping, Sequence, Union

from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelCapabilities, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema

MODEL_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "structured_output": True,
    "family": "unknown",
    "multiple_system_messages": True,
}

Reply = Union[str, FunctionCall, Sequence[FunctionCall], CreateResult]
"""What a model function returns: text, one tool call, several, or a complete result."""

ModelFunction = Callable[[Sequence[LLMMessage], str, list[str]], Union[Reply, Awaitable[Reply]]]
"""``(messages, agent, tool names offered) -> Reply`` (or an awaitable of one)."""


class ModelCallError(AssertionError):
    """The code under test made a model call its fake did not expect, or the fake's reply does not fit the call."""


class FunctionModelClient(ChatCompletionClient):
    """A ChatCompletionClient for one agent whose replies come from ``function``; ``usage`` (prompt, completion
    tokens) is what each reply that is not a ``CreateResult`` reports."""

    def __init__(self, function: ModelFunction, agent: str = "?", usage: tuple[int, int] = (10, 5)) -> None:
        self.function = function
        self.agent = agent
        self._usage = usage
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._last = RequestUsage(prompt_tokens=0, completion_tokens=0)

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
        names = [t["name"] if isinstance(t, dict) else t.name for t in tools]
        reply = self.function(messages, self.agent, names)
        if inspect.isawaitable(reply):
            reply = await reply
        result = self.result(reply, names)
        usage = result.usage
        self._last = usage
        self._total = RequestUsage(prompt_tokens=self._total.prompt_tokens + usage.prompt_tokens,
                                   completion_tokens=self._total.completion_tokens + usage.completion_tokens)
        return result

    def result(self, reply: Reply, offered: list[str]) -> CreateResult:
        """The CreateResult for ``reply``; a tool call must name a tool the request offered."""
        if isinstance(reply, CreateResult):
            return reply
        usage = RequestUsage(prompt_tokens=self._usage[0], completion_tokens=self._usage[1])
        if isinstance(reply, str):
            return CreateResult(finish_reason="stop", content=reply, usage=usage, cached=False)
        calls = [reply] if isinstance(reply, FunctionCall) else list(reply)
        if not calls or not all(isinstance(c, FunctionCall) for c in calls):
            raise ModelCallError(f"a model function returns text, a FunctionCall, a list of them or a CreateResult, not {reply!r}")
        for call in calls:
            if call.name not in offered:
                raise ModelCallError(f"the model of {self.agent!r} called tool {call.name!r}, which is not offered; offered: {offered}")
        return CreateResult(finish_reason="function_calls", content=calls, usage=usage, cached=False)

    async def create_stream(self, messages: Sequence[LLMMessage], **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        yield await self.create(messages, **kwargs)

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return self._last

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return sum(len(str(m.content)) // 4 for m in messages)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return 100_000 - self.count_tokens(messages)

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        return MODEL_INFO  # type: ignore[return-value]

    @property
    def model_info(self) -> ModelInfo:
        return MODEL_INFO
