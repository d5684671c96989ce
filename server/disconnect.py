"""A 2025-11-25 call whose HTTP connection drops is cancelled, as if its client had sent ``notifications/cancelled``.

On the 2025-11-25 streamable HTTP wire, a request's answer travels on its POST's response stream. The
SDK keeps serving a request whose stream was cut (a client could resume the stream with Last-Event-ID
from an event store; this server keeps none), so a tool call whose client went away - an HTTP read
timeout, a proxy, a crashed process whose MCP session lives on - would keep its session running on
behalf of nobody. This middleware watches each POST that carries a request: when the connection closes
before the response was complete, it delivers a ``notifications/cancelled`` for that request to the same
MCP session through the app itself (the protocol's own path), and the call's run stops at its next
safe point, recorded ``paused`` (swarm/live.py). The 2026-07-28 era (no MCP session: the request is
the connection) and SSE (the answer stream is the session's) need nothing: their handlers end with the
connection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("swarm_mcp.disconnect")

SESSION_HEADER = b"mcp-session-id"
MAX_PEEK_BYTES = 4 << 20
"""Bodies larger than this are passed on unread (the SDK refuses them anyway)."""


class CancelDroppedCalls:
    """ASGI middleware for the streamable HTTP endpoint (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope.get("type") != "http" or scope.get("method") != "POST" or SESSION_HEADER not in headers:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_PEEK_BYTES:
            message = await receive()
            if message["type"] != "http.request":  # gone before its body arrived: nothing was started
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        body = b"".join(chunks)
        request_id = _request_id(body) if not more else None
        replayed = False
        state = {"disconnected": False, "complete": False}

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            message = await receive()
            if message["type"] == "http.disconnect":
                state["disconnected"] = True
            return message

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True
            await send(message)

        try:
            await self.app(scope, replay, watch)
        finally:
            if request_id is not None and state["disconnected"] and not state["complete"]:
                await self._cancel(scope, request_id)

    async def _cancel(self, scope: Any, request_id: Any) -> None:
        """Tell the MCP session that ``request_id``'s caller is gone (a notification: the answer is a bodiless 202)."""
        log.info("the connection of request %r closed before its answer: cancelling it", request_id)
        body = json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": request_id, "reason": "the client's connection closed"}}).encode()
        headers = [(k, v) for k, v in scope.get("headers") or [] if k not in (b"content-length", b"accept")]
        headers += [(b"content-length", str(len(body)).encode()), (b"accept", b"application/json, text/event-stream")]
        sent = False

        async def receive() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def discard(_message: Any) -> None:
            return None

        try:
            await self.app({**scope, "headers": headers}, receive, discard)
        except Exception:  # the session may be gone already: nothing left to cancel
            log.debug("could not deliver the cancellation of request %r", request_id, exc_info=True)


def _request_id(body: bytes) -> Any:
    """The id of the JSON-RPC request in ``body`` (None for a notification, a response, a batch or garbage)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and isinstance(message.get("method"), str) and isinstance(message.get("id"), (str, int)):
        return message["id"]
    return None
