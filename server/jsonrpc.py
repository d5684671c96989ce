"""The JSON-RPC guard: an answer for every message the SDK's transports would drop.

The SDK parses each inbound message with ``mcp_types.jsonrpc_message_adapter`` (pydantic over the
jiter JSON parser). What fails there never reaches the server: over stdio it becomes an exception
item that the dispatcher logs at debug level and drops (the client waits forever); over SSE the
POST gets a plain-text 400 and nothing on the stream; over streamable HTTP the answer says
``id: null`` even when the id was readable (and -32602 for a malformed envelope in the 2025 era).
A request whose id is not a string or an integer (``1.5``, ``true``, ``null``) is worse: the SDK's
notification model ignores unknown keys, so it parses as a notification and is never answered
(but on 2026-07-28 streamable HTTP, whose own entry checks for the key). The classes:

- invalid or truncated JSON, invalid UTF-8 (HTTP; stdio reads it as U+FFFD), raw control characters
  in strings, nesting ~1000 deep (past Python's recursion limit) -> ``-32700`` with ``id: null``;
- JSON that is not a request object (a non-object, ``jsonrpc`` not ``"2.0"``, an id that is not a
  string or an integer, a missing or non-string method, params that are not an object) ->
  ``-32600``, with the id when it can be read;
- a request jiter refuses though it is valid JSON: unpaired UTF-16 surrogate escapes
  (``"\\ud800"``) or nesting deeper than jiter's ~200 levels -> ``-32602`` (in params) or
  ``-32600`` (in the method), with the id;
- a batch (a JSON array; MCP removed batching in 2025-06-18, the SDK never read them) -> ``-32600``
  for each request in it, with its id.

Notifications and responses are never answered (JSON-RPC 2.0), malformed or not: over stdio they
are logged and dropped; over HTTP the POST still needs a status, so it gets 400 with the error.

``judge`` decides; ``GuardedLines`` (the stdio transport's input) and ``JsonRpcGuard`` (ASGI, for
the POST endpoints) act on it. Everything the SDK can parse passes through untouched: its own
handling (-32601, -32602 for bad params of a known method, the init gate) is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, JSONRPCNotification
from pydantic import ValidationError

log = logging.getLogger("swarm_mcp.jsonrpc")

SDK_MAX_DEPTH = 200
"""The deepest nesting the SDK's JSON parser (jiter) takes in a message; ``params`` get one level less."""


@dataclass(frozen=True)
class Rejection:
    """A message the SDK cannot take, and what is owed for it."""

    error: ErrorData
    """What is wrong with it (the first problem found)."""
    answers: tuple[JSONRPCError, ...]
    """One error response per request in it (``id: null`` when its id cannot be read); empty for a
    notification or a response, which are never answered."""
    batch: bool = False
    """It was a JSON array (a batch)."""

    def http_body(self) -> tuple[int, Any]:
        """The HTTP status and JSON body for it (HTTP answers every POST, notifications included)."""
        answers = self.answers or (JSONRPCError(jsonrpc="2.0", id=None, error=self.error),)
        status = ERROR_CODE_HTTP_STATUS.get(answers[0].error.code, 400)  # the SDK's table: 400 for all three
        dumped = [_wire(a) for a in answers]
        return status, (dumped if self.batch else dumped[0])


def _wire(answer: JSONRPCError) -> dict[str, Any]:
    """The wire form, ``"id": null`` included (``exclude_none`` would drop it)."""
    return {"jsonrpc": "2.0", "id": answer.id, "error": answer.error.model_dump(mode="json", exclude_none=True)}


def judge(raw: str | bytes) -> Rejection | None:
    """None if the SDK can parse ``raw`` (one message as read off the wire); else why not and what to answer."""
    refused: ValidationError | None = None
    try:
        message = types.jsonrpc_message_adapter.validate_json(raw, by_name=False)
    except ValidationError as exc:
        refused = exc
    else:
        # the SDK's notification model ignores unknown keys, so a request whose id is not a string or an
        # integer (1.5, true, null) parses as a notification and is never answered: JSON-RPC owes it an error
        if not isinstance(message, JSONRPCNotification) or not _names_id(raw):
            return None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit number, nesting ~1000 deep
        error = ErrorData(code=PARSE_ERROR, message=f"Parse error: {_reason(exc)}")
        return Rejection(error, (JSONRPCError(jsonrpc="2.0", id=None, error=error),))
    if isinstance(value, list):
        return _batch(value)
    answer = _problem(value, refused)
    if answer is None:  # a notification or a response: never answered
        return Rejection(_notification_error(value, refused), ())
    return Rejection(answer.error, (answer,))


def _names_id(raw: str | bytes) -> bool:
    """Whether a message the SDK read as a notification has an ``id`` member (a cheap test first)."""
    if (b'"id"' if isinstance(raw, bytes) else '"id"') not in raw:
        return False
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and "id" in value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return str(exc).split("\n")[0][:200]


def _batch(items: list[Any]) -> Rejection:
    message = "batches (JSON arrays) are not supported: MCP removed JSON-RPC batching in 2025-06-18; send each message on its own"
    error = ErrorData(code=INVALID_REQUEST, message=message)
    if not items:
        return Rejection(error, (JSONRPCError(jsonrpc="2.0", id=None, error=error),), batch=True)
    answers = []
    for item in items:
        if isinstance(item, dict) and "id" not in item and isinstance(item.get("method"), str):
            continue  # a notification
        if isinstance(item, dict) and "method" not in item and ("result" in item or "error" in item):
            continue  # a response
        answers.append(JSONRPCError(jsonrpc="2.0", id=_request_id(item.get("id") if isinstance(item, dict) else None), error=error))
    return Rejection(error, tuple(answers), batch=True)


def _request_id(value: Any) -> int | str | None:
    """A request id as JSON-RPC allows it (an integer or a string of valid Unicode), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _unicode(value):
        return value
    return None


def _problem(value: Any, refused: ValidationError | None) -> JSONRPCError | None:
    """The error response for a message that is owed one, None for a notification or a response."""
    if not isinstance(value, dict):
        return _error(None, INVALID_REQUEST, f"Invalid request: a JSON-RPC message is an object, not {_kind(value)}")
    if "method" not in value and ("result" in value or "error" in value):
        return None
    if "id" not in value:
        if isinstance(value.get("method"), str):
            return None
        return _error(None, INVALID_REQUEST, "Invalid request: neither a request (method and id) nor a notification (method)")
    rid = _request_id(value["id"])
    if rid is None:
        got = "a string that is not valid Unicode" if isinstance(value["id"], str) else _kind(value["id"])
        return _error(None, INVALID_REQUEST, f"Invalid request: id must be a string or an integer, not {got}")
    problem = _envelope(value)
    if problem is not None:
        return _error(rid, INVALID_REQUEST, f"Invalid request: {problem}")
    if _first(refused).startswith("Invalid JSON"):  # valid JSON that jiter refuses
        depth, unicode = _shape(value.get("params"))
        if not unicode:
            return _error(rid, INVALID_PARAMS, "Invalid params: a string contains an unpaired UTF-16 surrogate escape "
                                               "(\\ud800-\\udfff not part of a pair), which is not valid Unicode")
        if depth >= SDK_MAX_DEPTH:
            return _error(rid, INVALID_PARAMS, f"Invalid params: nested {depth} levels deep; at most {SDK_MAX_DEPTH - 1} are accepted")
    return _error(rid, INVALID_REQUEST, f"Invalid request: {_first(refused) or 'not a JSON-RPC request'}")


def _envelope(value: dict[str, Any]) -> str | None:
    """What is wrong with a request's or a notification's members other than its id, if anything."""
    method, params = value.get("method"), value.get("params")
    if value.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if not isinstance(method, str):
        return f"method must be a string, not {_kind(method)}"
    if params is not None and not isinstance(params, dict):
        return f"params must be an object of named parameters, not {_kind(params)}"
    if not _unicode(method):
        return "the method contains an unpaired UTF-16 surrogate escape"
    return None


def _notification_error(value: Any, refused: ValidationError | None) -> ErrorData:
    if isinstance(value, dict) and "method" in value:
        return ErrorData(code=INVALID_REQUEST, message=f"Invalid notification: {_envelope(value) or _first(refused)}")
    return ErrorData(code=INVALID_REQUEST, message="Invalid response: a response has an integer or string id and an object "
                                                    "result or error")


def _first(refused: ValidationError | None) -> str:
    """The SDK parser's first complaint, in words ("Invalid JSON: ..." when jiter refused the text)."""
    errors = refused.errors() if refused is not None else []
    if not errors:
        return ""
    where = ".".join(str(part) for part in errors[0]["loc"][1:])
    return f"{where}: {errors[0]['msg']}" if where else errors[0]["msg"]


def _error(rid: int | str | None, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=rid, error=ErrorData(code=code, message=message))


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _shape(value: Any) -> tuple[int, bool]:
    """(nesting depth, every string and key valid Unicode) of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not _unicode(node):
                return deepest, False
        elif isinstance(node, dict):
            deepest = max(deepest, depth)
            for key, item in node.items():
                if not _unicode(key):
                    return deepest, False
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in node)
    return deepest, True


# ---- stdio -------------------------------------------------------------------------------------


class GuardedLines:
    """The stdio transport's input: yields the lines the SDK can parse, answers the rest itself.

    Given to ``mcp.server.stdio.stdio_server(stdin=...)``, which reads ``async for line in stdin``;
    ``answer_on(write_stream)`` (the transport's own write stream) must be called once it exists.
    """

    def __init__(self, lines: AsyncIterable[str]) -> None:
        self.lines = lines
        self._write: Any = None
        self._ready = anyio.Event()

    def answer_on(self, write_stream: Any) -> None:
        self._write = write_stream
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        from mcp.shared.message import SessionMessage

        async for line in self.lines:
            if not line.strip():
                continue  # not a message (a keep-alive newline): nothing to answer
            rejection = judge(line)
            if rejection is None:
                yield line
                continue
            log.info("rejected a message: %s", rejection.error.message)
            if not rejection.answers:
                continue
            await self._ready.wait()
            try:
                for answer in rejection.answers:
                    await self._write.send(SessionMessage(answer))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the connection is closing


# ---- HTTP --------------------------------------------------------------------------------------


class JsonRpcGuard:
    """ASGI middleware for the POST endpoints (``/mcp``, ``/messages/``): a JSON body the SDK cannot
    parse is answered here - the HTTP status for its error and a JSON-RPC error body carrying the
    request id (an array of them for a batch) - and everything else goes on to ``app`` unchanged.

    The body is read whole, within the SDK's request body limit (4 MiB; 413 beyond it).
    """

    def __init__(self, app: Any, max_body_size: int | None = None) -> None:
        from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware

        self.app = app
        self._limited = RequestBodyLimitMiddleware(self._judged, max_body_size or DEFAULT_MAX_REQUEST_BODY_SIZE)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and _json_content(scope):
            await self._limited(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _judged(self, scope: Any, receive: Any, send: Any) -> None:
        body, replay = await _buffered(receive)
        rejection = judge(body) if body.strip() else None  # an empty body: the SDK's own answer
        if rejection is None:
            await self.app(scope, replay, send)
            return
        from starlette.responses import Response

        log.info("rejected a message: %s", rejection.error.message)
        status, content = rejection.http_body()
        await Response(json.dumps(content, separators=(",", ":")), status_code=status, media_type="application/json")(scope, replay, send)


def guarded(app: Any) -> JsonRpcGuard:
    """``app`` (a POST endpoint of the SDK's) behind the guard."""
    return JsonRpcGuard(app)


def _json_content(scope: Any) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


async def _buffered(receive: Any) -> tuple[bytes, Any]:
    """The request body, and a ``receive`` that replays it to the next app."""
    chunks: list[bytes] = []
    pending: list[Any] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            pending.append(message)
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    pending.insert(0, {"type": "http.request", "body": body, "more_body": False})

    async def replay() -> Any:
        return pending.pop(0) if pending else await receive()

    return body, replay

