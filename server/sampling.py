"""The ``sampling`` model backend: the swarm's model calls answered by the calling client's own model.

``SamplingModelClient`` is an autogen ``ChatCompletionClient``. Each ``create`` becomes one MCP
``sampling/createMessage`` request, sent through a ``SamplingChannel``:

- ``PushChannel`` (2025-11-25 connections): a server-to-client request on the connection. It works
  while the tool call is in progress and after it returned ``running`` (the run goes on in the
  background), as long as the client stays connected.
- ``RelayChannel`` (2026-07-28 connections, which have no back-channel): the request is parked on
  the session's ``Run``; the tool call following the run returns it to the client inside an
  ``InputRequiredResult``, and the client's retry of the call brings the answer back (see
  server/interaction.py). No follower, no progress: the run waits (up to the channel timeout).

Tools (the swarm's hand-offs are tools too): when the client declares ``sampling.tools`` they are
sent as MCP tools and ``tool_use`` blocks come back; otherwise the system prompt describes them and
asks for a JSON ``{"tool_calls": [...]}`` answer, which is parsed back into function calls.
Sampling reports no token counts, so usage is estimated (4 characters per token).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, AsyncGenerator, Mapping, Protocol, Sequence

import mcp_types as types
from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel, ValidationError

from swarm.errors import ProviderError

SAMPLING_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "structured_output": False,
    "family": "unknown",
    "multiple_system_messages": True,
}

DEFAULT_MAX_TOKENS = 2048
TIER_PREFERENCES = {
    "fast": types.ModelPreferences(speed_priority=0.8, cost_priority=0.6, intelligence_priority=0.3),
    "default": types.ModelPreferences(speed_priority=0.5, cost_priority=0.5, intelligence_priority=0.5),
    "strong": types.ModelPreferences(speed_priority=0.2, cost_priority=0.2, intelligence_priority=0.9),
}

Result = types.CreateMessageResult | types.CreateMessageResultWithTools


class SamplingChannel(Protocol):
    """Where a sampling request goes and its answer comes from."""

    tools: bool
    """Whether the client takes MCP tools in sampling requests (``sampling.tools``)."""

    async def create_message(self, params: types.CreateMessageRequestParams) -> Result: ...


def _result_type(params: types.CreateMessageRequestParams) -> type[Result]:
    return types.CreateMessageResultWithTools if params.tools is not None else types.CreateMessageResult


class PushChannel:
    """2025-11-25: ``sampling/createMessage`` sent on the client's connection."""

    def __init__(self, session: Any, *, tools: bool, timeout: float) -> None:
        self.session = session
        self.tools = tools
        self.timeout = timeout

    async def create_message(self, params: types.CreateMessageRequestParams) -> Result:
        request = types.CreateMessageRequest(params=params)
        try:
            return await self.session.send_request(request, _result_type(params), request_read_timeout_seconds=self.timeout)
        except ProviderError:
            raise
        except Exception as exc:  # refused by the user, no such capability, connection gone, timeout
            raise ProviderError(f"the MCP client's sampling request failed: {type(exc).__name__}: {exc}".rstrip(": ")) from exc


class RelayChannel:
    """2026-07-28: the request waits on the run until a following tool call relays it to the client."""

    def __init__(self, run: Any, *, tools: bool, timeout: float) -> None:
        self.run = run
        self.tools = tools
        self.timeout = timeout

    async def create_message(self, params: types.CreateMessageRequestParams) -> Result:
        answer = await self.run.ask_client(types.CreateMessageRequest(params=params), self.timeout)
        return parse_answer(answer, params)


def parse_answer(answer: Any, params: types.CreateMessageRequestParams) -> Result:
    """Validate a relayed answer (it arrives parsed as whichever result type matched first)."""
    if isinstance(answer, types.ErrorData):
        raise ProviderError(f"the MCP client refused the sampling request: {answer.message}")
    wire = answer.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(answer, BaseModel) else answer
    try:
        return _result_type(params).model_validate(wire, by_name=False)
    except ValidationError as exc:
        raise ProviderError(f"the MCP client answered the sampling request with something else than a message: {exc.errors()[0]['msg']}") from None


# ---- the model client ------------------------------------------------------------------------------


class SamplingModelClient(ChatCompletionClient):
    """One agent's model client, served by the MCP client's model through sampling."""

    def __init__(self, channel: SamplingChannel, agent: str = "?", tier: str = "default", max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.channel = channel
        self.agent = agent
        self.tier = tier
        self.max_tokens = max_tokens
        self._last = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)

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
        schemas = [t.schema if isinstance(t, Tool) else t for t in tools]
        if tool_choice == "none":
            schemas = []
        native = bool(schemas) and self.channel.tools
        system = _system_prompt(messages, schemas if not native else [], tool_choice, json_output)
        params = types.CreateMessageRequestParams(
            messages=to_sampling_messages(messages, native=native),
            system_prompt=system or None,
            max_tokens=int(extra_create_args.get("max_tokens", self.max_tokens)),
            temperature=extra_create_args.get("temperature"),
            model_preferences=TIER_PREFERENCES.get(self.tier),
            include_context="none",
            metadata={"agent": self.agent},
            tools=[types.Tool(name=s["name"], description=s.get("description"), input_schema=dict(s.get("parameters") or {"type": "object", "properties": {}}))
                   for s in schemas] if native else None,
            tool_choice=types.ToolChoice(mode="required" if tool_choice == "required" or isinstance(tool_choice, Tool) else "auto") if native else None,
        )
        result = await self.channel.create_message(params)
        names = {s["name"] for s in schemas}
        content, finish = from_sampling_result(result, names)
        prompt_chars = len(system) + sum(len(_text_of(m)) for m in messages)
        completion_chars = len(content) if isinstance(content, str) else sum(len(c.arguments) + len(c.name) for c in content)
        usage = RequestUsage(prompt_tokens=max(1, prompt_chars // 4), completion_tokens=max(1, completion_chars // 4))
        self._last = usage
        self._total = RequestUsage(prompt_tokens=self._total.prompt_tokens + usage.prompt_tokens,
                                   completion_tokens=self._total.completion_tokens + usage.completion_tokens)
        return CreateResult(finish_reason=finish, content=content, usage=usage, cached=False)

    async def create_stream(self, messages: Sequence[LLMMessage], **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        yield await self.create(messages, **kwargs)

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return self._last

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return sum(len(_text_of(m)) for m in messages) // 4

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return 100_000 - self.count_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        return SAMPLING_INFO  # type: ignore[return-value]

    @property
    def model_info(self) -> ModelInfo:
        return SAMPLING_INFO


# ---- autogen messages -> sampling messages -----------------------------------------------------------


def _text_of(message: LLMMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for item in content:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, FunctionCall):
            parts.append(f"{item.name}({item.arguments})")
        elif hasattr(item, "call_id"):
            parts.append(str(item.content))
        else:
            parts.append("[image omitted]")
    return "\n".join(parts)


def _system_prompt(messages: Sequence[LLMMessage], tools: list[Any], tool_choice: Any, json_output: Any) -> str:
    parts = [m.content for m in messages if isinstance(m, SystemMessage)]
    if tools:
        listing = "\n".join(f"- {s['name']}: {s.get('description', '')}\n  arguments (JSON schema): {json.dumps(s.get('parameters') or {})}" for s in tools)
        must = "You must call exactly one tool." if tool_choice == "required" or isinstance(tool_choice, Tool) else \
            "Call a tool only when it helps; otherwise answer in plain text."
        parts.append(
            "You can call these tools:\n" + listing + "\n\n" + must + " To call tools, answer with only this JSON and nothing else:\n"
            '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}'
        )
    if json_output is True:
        parts.append("Answer with a single JSON object and nothing else.")
    elif isinstance(json_output, type) and issubclass(json_output, BaseModel):
        parts.append("Answer with a single JSON object matching this JSON schema, and nothing else:\n" + json.dumps(json_output.model_json_schema()))
    return "\n\n".join(p for p in parts if p)


def to_sampling_messages(messages: Sequence[LLMMessage], *, native: bool) -> list[types.SamplingMessage]:
    """Autogen LLM messages as a sampling conversation (user/assistant turns, same roles merged)."""
    out: list[types.SamplingMessage] = []

    def add(role: str, blocks: list[Any]) -> None:
        if out and out[-1].role == role and _mergeable(out[-1]) and all(isinstance(b, types.TextContent) for b in blocks):
            prev = out[-1].content
            text = prev.text if isinstance(prev, types.TextContent) else "\n".join(b.text for b in prev)  # type: ignore[union-attr]
            out[-1] = types.SamplingMessage(role=role, content=types.TextContent(type="text", text=text + "\n\n" + "\n".join(b.text for b in blocks)))
            return
        out.append(types.SamplingMessage(role=role, content=blocks[0] if len(blocks) == 1 else blocks))  # type: ignore[arg-type]

    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, UserMessage):
            text = _text_of(message)
            if message.source and message.source != "user":
                text = f"[{message.source}] {text}"
            add("user", [types.TextContent(type="text", text=text)])
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                add("assistant", [types.TextContent(type="text", text=message.content or "(no text)")])
            elif native:
                add("assistant", [types.ToolUseContent(type="tool_use", id=c.id, name=c.name, input=_args(c.arguments)) for c in message.content])
            else:
                calls = [{"name": c.name, "arguments": _args(c.arguments)} for c in message.content]
                add("assistant", [types.TextContent(type="text", text=json.dumps({"tool_calls": calls}))])
        elif isinstance(message, FunctionExecutionResultMessage):
            if native:
                add("user", [types.ToolResultContent(type="tool_result", tool_use_id=r.call_id, is_error=bool(r.is_error),
                                                     content=[types.TextContent(type="text", text=r.content)]) for r in message.content])
            else:
                lines = [f"- {r.name}{' (failed)' if r.is_error else ''}: {r.content}" for r in message.content]
                add("user", [types.TextContent(type="text", text="Tool results:\n" + "\n".join(lines))])
    if not out or out[0].role != "user":
        out.insert(0, types.SamplingMessage(role="user", content=types.TextContent(type="text", text="(the conversation so far follows)")))
    return out


def _mergeable(message: types.SamplingMessage) -> bool:
    content = message.content
    blocks = content if isinstance(content, list) else [content]
    return all(isinstance(b, types.TextContent) for b in blocks)


def _args(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


# ---- sampling result -> autogen result --------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def from_sampling_result(result: Result, tool_names: set[str]) -> tuple[str | list[FunctionCall], str]:
    """The answer as autogen content: text, or function calls (native tool_use or JSON in text)."""
    blocks = result.content if isinstance(result.content, list) else [result.content]
    uses = [b for b in blocks if isinstance(b, types.ToolUseContent)]
    if uses:
        return [FunctionCall(id=u.id or _call_id(), name=u.name, arguments=json.dumps(u.input)) for u in uses], "function_calls"
    text = "\n".join(b.text for b in blocks if isinstance(b, types.TextContent))
    if tool_names:
        calls = parse_tool_calls(text, tool_names)
        if calls:
            return calls, "function_calls"
    finish = "length" if result.stop_reason == "maxTokens" else "stop"
    return text, finish


def parse_tool_calls(text: str, tool_names: set[str]) -> list[FunctionCall]:
    """Tool calls written as JSON in a text answer ({"tool_calls": [...]}, or one {"name", "arguments"})."""
    for candidate in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        doc = _first_json_object(candidate)
        if doc is None:
            continue
        items = doc.get("tool_calls") if isinstance(doc.get("tool_calls"), list) else [doc] if "name" in doc else []
        calls = []
        for item in items:
            if isinstance(item, dict) and item.get("name") in tool_names:
                args = item.get("arguments", {})
                calls.append(FunctionCall(id=_call_id(), name=item["name"], arguments=args if isinstance(args, str) else json.dumps(args)))
        if calls:
            return calls
    return []


def _first_json_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    decoder = json.JSONDecoder()
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"
