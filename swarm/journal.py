"""The journal of a session's model and tool calls: the state needed to continue it.

Every model call and tool call is written to the journal before its result is used. Resuming a
session (after a pause, a crash or a restart) rebuilds the swarm and replays its legs: calls found
in the journal with the same request return their recorded result instead of running again, so a
completed model call is never repeated and no side effect of a tool runs twice. The first call
not in the journal runs live, and the session goes on from there.
"""

from __future__ import annotations

import hashlib
import json
from itertools import islice
from operator import indexOf, is_
from typing import Any, Awaitable, Callable, Mapping, Sequence

from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage
from autogen_core.tools import BaseTool, Tool, ToolSchema
from pydantic import BaseModel

from .events import Event, Usage
from .models.base import WrappingModelClient
from .store import Store
from .tools import tool_schema


class ReplayedToolError(RuntimeError):
    """A tool failure recorded in the journal, raised again on replay."""


class CallJournal:
    """A session's journal and the replay position in it, shared by all its agents' clients and tools."""

    def __init__(self, store: Store, session_id: str, entries: dict[int, tuple[str, str]]) -> None:
        self.store = store
        self.session_id = session_id
        self.entries = entries
        self.position = 0
        self.replayed = 0
        self.live = 0
        self.last_error: Exception | None = None
        """The last exception a model client raised (autogen wraps it; the runner reports this one)."""
        self.usage: dict[str, Usage] = {}
        """Usage of the model calls made (or replayed) since the last take_usage()."""
        self.tool_events: dict[str, list[Event]] = {}
        """Transcript events tools emitted (phase_start, ...), by tool call id, until the round records them."""
        self._headers: dict[tuple[Any, ...], tuple[bytes, str]] = {}
        """The JSON of a request header (tools offered, tool choice, output), hashed and as the audit starts: see _request."""
        self.committed = False
        """Whether the calls being made belong to a round the session has committed: their journaled responses are
        history and replay by position, even if today's request differs from the one recorded (a newer version's prompt,
        tools or window); past that, a request that differs from the journal's runs live (the conversation diverged)."""

    @classmethod
    async def load(cls, store: Store, session_id: str) -> "CallJournal":
        return cls(store, session_id, await store.journal_load(session_id))

    @property
    def replaying(self) -> bool:
        return self.position < max(self.entries, default=0)

    def take_usage(self) -> dict[str, Usage]:
        usage, self.usage = self.usage, {}
        return usage

    def message_digest(self, message: Any) -> bytes:
        """The digest of a message: the SHA-256 of its JSON."""
        return hashlib.sha256(message.model_dump_json().encode()).digest()

    def messages_digests(self, messages: Sequence[Any], seen: "SeenRequest | None" = None) -> bytes:
        """The digests of ``messages`` concatenated (32 bytes each); ``seen``: the previous request of the same client,
        whose digests they reuse (SeenRequest.digests)."""
        return (seen if seen is not None else SeenRequest()).digests(messages)

    def header(self, tools: tuple[str, ...], tool_choice: Any, json_output: Any) -> tuple[bytes, str]:
        """A request header's sorted JSON (what the request digest starts with) and the audit text's start, made once per header."""
        key = (tools, tool_choice, type(tool_choice), json_output, type(json_output))  # the types: True and 1 are equal keys
        try:
            return self._headers[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: nothing to cache
            key = ()
        header = {"tools": list(tools), "tool_choice": tool_choice, "json_output": json_output}
        made = json.dumps(header, sort_keys=True, default=str).encode(), json.dumps(header, default=str)[:-1] + ', "n_messages": '
        if key:
            self._headers[key] = made
        return made

    async def call(self, *, agent: str, kind: str, name: str, request: str, run: Callable[[], Awaitable[str]],
                   digest: str | None = None) -> str:
        """Return the journaled response for this request, or run it, journal it, and return it.

        ``digest`` identifies the request (default: the SHA-256 of ``request``, the text recorded for audits)."""
        seq = self.position = self.position + 1  # reserved before any await: concurrent tool calls keep their order
        digest = digest or hashlib.sha256(request.encode()).hexdigest()
        stored = self.entries.get(seq)
        if stored is not None and (stored[0] == digest or self.committed):
            self.replayed += 1
            return stored[1]
        if stored is not None:  # the conversation diverged from the journal: its tail no longer applies
            await self.store.journal_truncate(self.session_id, seq)
            self.entries = {k: v for k, v in self.entries.items() if k < seq}
        response = await run()
        await self.store.journal_put(self.session_id, seq, agent=agent, kind=kind, name=name, request_hash=digest, request=request, response=response)
        self.entries[seq] = (digest, response)
        self.live += 1
        return response


class SeenRequest:
    """One model client's previous request: its messages, and their digests joined (32 bytes each).

    Every request repeats the conversation, so a message's digest is computed once, when it first comes, and taken from
    the previous request after that (see ``digests``); only that request is kept, so memory does not grow with the
    session, and nothing else holds on to messages the model context has let go of.
    """

    __slots__ = ("messages", "joined", "hashed")

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.joined = b""
        self.hashed: tuple[Any, str] | None = None
        """The message hashed last and its JSON (a request's newest message: what its audit text shows)."""

    def digests(self, messages: Sequence[Any]) -> bytes:
        """The digests of ``messages`` concatenated, and ``messages`` now the previous request.

        The messages shared with the previous request (the conversation grown at its end, its window moved on at its
        start) take their digests from it as two slices, with no Python work per message; the rest are looked up in
        it by identity, else hashed.
        """
        reused = _reuse(messages, self.messages, self.joined) if self.messages else None
        if reused is None:
            joined = self._each(messages, dict(zip(map(id, self.messages), _split(self.joined))))  # ids of live objects (held here): identity
        else:
            joined, start = reused
            if start < len(messages):
                joined += self._each(messages[start:], {})
        self.messages, self.joined = list(messages), joined
        return joined

    def json(self, message: Any) -> str:
        """A message's JSON (its digest is the SHA-256 of it): the one just hashed, if it is that message."""
        hashed = self.hashed
        return hashed[1] if hashed is not None and hashed[0] is message else message.model_dump_json()

    def _each(self, messages: Sequence[Any], known: dict[int, bytes]) -> bytes:
        digests = []
        for message in messages:
            digest = known.get(id(message))
            if digest is None:
                text = message.model_dump_json()
                digest = hashlib.sha256(text.encode()).digest()
                self.hashed = (message, text)
            digests.append(digest)
        return b"".join(digests)


def _split(joined: bytes) -> list[bytes]:
    return [joined[i:i + 32] for i in range(0, len(joined), 32)]


def _reuse(messages: Sequence[Any], old: list[Any], joined: bytes) -> tuple[bytes, int] | None:
    """The digests ``messages`` share with the previous request (``old``, whose digests are ``joined``), and where the
    messages after them start; None when the two requests do not line up that way.

    A request is the system message(s), then the newest messages of the conversation that fit the context. From one
    request to the next the conversation grows at its end and the window may move on at its start: ``messages`` is
    ``old[:h] + old[j:] + new`` (``j == h`` when nothing was dropped). Messages match by identity (the same objects:
    the same JSON), compared in C; digests are 32 bytes, so the shared ones are two slices of ``joined``.
    """
    n, m = len(messages), len(old)
    if n >= m and all(map(is_, messages, old)):  # the previous request, grown at its end
        return joined, m
    h = 0
    while h < n and h < m and messages[h] is old[h]:
        h += 1
    if h == n:  # a prefix of the previous request
        return joined[: 32 * n], n
    try:
        j = h + 1 + indexOf(map(id, islice(old, h + 1, None)), id(messages[h]))  # where the window starts now (ids of live objects: identity)
    except ValueError:
        return None
    shared = min(n - h, m - j)
    if not all(map(is_, islice(messages, h, h + shared), islice(old, j, j + shared))):
        return None
    return joined[: 32 * h] + joined[32 * j: 32 * (j + shared)], h + shared


def _request(journal: CallJournal, messages: Sequence[LLMMessage], tools: Sequence[Tool | ToolSchema], tool_choice: Any,
             json_output: Any, seen: SeenRequest | None = None) -> tuple[str, str]:
    """A model request's digest (over every message) and its audit text (the options and the newest message).

    The digest is the SHA-256 of the header's sorted JSON followed by every message's digest (the SHA-256 of its
    ``model_dump_json()``); the audit text is ``json.dumps({**header, "n_messages": n})`` with ``"last_message"`` added,
    the newest message's JSON as its digest hashed it. The header part is made once per header. ``seen``: the client's
    previous request, whose digests this one reuses (see SeenRequest.digests).
    """
    head, audit_head = journal.header(
        tuple(t["name"] if isinstance(t, dict) else t.name for t in tools),
        tool_choice if isinstance(tool_choice, str) else getattr(tool_choice, "name", str(tool_choice)),
        json_output if json_output in (None, True, False) else getattr(json_output, "__name__", str(json_output)),
    )
    seen = seen if seen is not None else SeenRequest()
    digest = hashlib.sha256(head + seen.digests(messages)).hexdigest()
    last = seen.json(messages[-1]) if messages else "null"
    return digest, f"{audit_head}{len(messages)}, \"last_message\": {last}}}"


class JournaledModelClient(WrappingModelClient):
    """One agent's model client, behind the journal."""

    def __init__(self, inner: ChatCompletionClient, journal: CallJournal, agent: str, model: str) -> None:
        self.inner = inner
        self.journal = journal
        self.agent = agent
        self.model = model
        self._seen = SeenRequest()

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
        async def live() -> str:
            kwargs: dict[str, Any] = dict(tools=tools, json_output=json_output, extra_create_args=extra_create_args, cancellation_token=cancellation_token)
            if tool_choice != "auto":
                kwargs["tool_choice"] = tool_choice
            try:
                result = await self.inner.create(messages, **kwargs)
            except Exception as exc:
                self.journal.last_error = exc  # autogen re-raises agent errors as text; keep the original
                raise
            return result.model_dump_json()

        digest, request = _request(self.journal, messages, tools, tool_choice, json_output, self._seen)
        response = await self.journal.call(agent=self.agent, kind="model", name=self.model, request=request, run=live, digest=digest)
        result = CreateResult.model_validate_json(response)
        usage, earlier = self.journal.usage, self.journal.usage.get(self.model)
        this = Usage(prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens)
        usage[self.model] = this if earlier is None else earlier + this
        return result

    async def close(self) -> None:
        return None  # the model factory owns the inner client


class JournaledTool(BaseTool[BaseModel, BaseModel]):
    """A tool behind the journal: on replay its recorded result (and the events it emitted) come back and nothing runs."""

    def __init__(self, inner: BaseTool[Any, Any], journal: CallJournal, agent: str, outbox: list[Event] | None = None) -> None:
        super().__init__(inner.args_type(), inner.return_type(), inner.name, inner.description)
        self._inner = inner
        self._journal = journal
        self._agent = agent
        self._outbox = outbox if outbox is not None else []

    @property
    def schema(self) -> ToolSchema:
        return tool_schema(self._inner)

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        return await self._inner.run(args, cancellation_token)

    async def run_json(self, args: Mapping[str, Any], cancellation_token: CancellationToken, call_id: str | None = None) -> Any:
        async def live() -> str:
            start = len(self._outbox)
            try:
                outcome: dict[str, Any] = {"result": self._inner.return_value_as_string(await self._inner.run_json(args, cancellation_token, call_id=call_id))}
            except Exception as exc:
                outcome = {"error": f"{type(exc).__name__}: {exc}"}
            outcome["events"] = [e.model_dump(mode="json") for e in self._outbox[start:]]
            del self._outbox[start:]  # they travel with the result, and come back with it on replay
            return json.dumps(outcome)

        request = json.dumps({"tool": self.name, "args": dict(args)}, sort_keys=True, default=str)
        outcome = json.loads(await self._journal.call(agent=self._agent, kind="tool", name=self.name, request=request, run=live))
        self._journal.tool_events.setdefault(call_id or "", []).extend(Event.model_validate(e) for e in outcome.get("events", []))
        if "error" in outcome:
            raise ReplayedToolError(outcome["error"])
        return outcome["result"]

    def return_value_as_string(self, value: Any) -> str:
        return value if isinstance(value, str) else self._inner.return_value_as_string(value)
