"""The model-call journal: every model call of a session is recorded before its result is used.

A resumed session (after a pause, a crash or a restart) replays the calls its checkpoint has not
yet absorbed from the journal instead of calling the model again, so a completed model call is
never repeated. The journal also sums token usage per model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, AsyncGenerator, Mapping, Sequence

from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelCapabilities, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema

from .events import Usage
from .store import Store


class CallJournal:
    """Position in a session's journal, shared by the model clients of all its agents."""

    def __init__(self, store: Store, session_id: str, start: int = 0) -> None:
        self.store = store
        self.session_id = session_id
        self.position = start
        self.replayed = 0
        self.live = 0
        self.last_error: Exception | None = None
        """The last exception a model client raised (autogen wraps it; the runner reports this one)."""
        self.usage: dict[str, Usage] = {}
        """Usage of the calls made since the last take_usage()."""

    def take_usage(self) -> dict[str, Usage]:
        usage, self.usage = self.usage, {}
        return usage

    def _add_usage(self, model: str, usage: RequestUsage) -> None:
        self.usage[model] = self.usage.get(model, Usage()) + Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def _request_doc(messages: Sequence[LLMMessage], tools: Sequence[Tool | ToolSchema], tool_choice: Any, json_output: Any) -> str:
    doc = {
        "messages": [m.model_dump(mode="json") for m in messages],
        "tools": [t.name if isinstance(t, Tool) else t["name"] for t in tools],
        "tool_choice": tool_choice if isinstance(tool_choice, str) else getattr(tool_choice, "name", str(tool_choice)),
        "json_output": json_output if json_output in (None, True, False) else getattr(json_output, "__name__", str(json_output)),
    }
    return json.dumps(doc, sort_keys=True, default=str)


class JournaledModelClient(ChatCompletionClient):
    """Wraps one agent's model client: replay from the journal, else call and record."""

    def __init__(self, inner: ChatCompletionClient, journal: CallJournal, agent: str, model: str) -> None:
        self.inner = inner
        self.journal = journal
        self.agent = agent
        self.model = model

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
        journal = self.journal
        request = _request_doc(messages, tools, tool_choice, json_output)
        digest = hashlib.sha256(request.encode()).hexdigest()
        seq = journal.position + 1
        stored = await journal.store.journal_get(journal.session_id, seq)
        if stored is not None and stored[0] == digest:
            result = CreateResult.model_validate_json(stored[1])
            journal.replayed += 1
        else:
            if stored is not None:  # the conversation diverged from the journal: drop the stale tail
                await journal.store.journal_truncate(journal.session_id, seq)
            kwargs: dict[str, Any] = dict(tools=tools, json_output=json_output, extra_create_args=extra_create_args, cancellation_token=cancellation_token)
            if tool_choice != "auto":
                kwargs["tool_choice"] = tool_choice
            try:
                result = await self.inner.create(messages, **kwargs)
            except Exception as exc:
                journal.last_error = exc  # autogen re-raises agent errors as text; keep the original
                raise
            await journal.store.journal_put(journal.session_id, seq, self.agent, self.model, digest, request, result.model_dump_json())
            journal.live += 1
        journal.position = seq
        journal._add_usage(self.model, result.usage)
        return result

    async def create_stream(self, messages: Sequence[LLMMessage], **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        yield await self.create(messages, **kwargs)

    async def close(self) -> None:
        await self.inner.close()

    def actual_usage(self) -> RequestUsage:
        return self.inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self.inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self.inner.count_tokens(messages, tools=tools)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self.inner.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        return self.inner.capabilities

    @property
    def model_info(self) -> ModelInfo:
        return self.inner.model_info
