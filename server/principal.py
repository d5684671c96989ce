"""Who is calling: the principal that owns the sessions a request creates and may read.

A principal is a function of the request context only. Over stdio it is the local user
(``"local"``); over HTTP it is the bearer token's subject (or its client id when the verifier
supplies no subject), or ``"local"`` on a loopback server configured without any token.
Sessions belong to the principal that created them; the engine's store refuses other
principals as "unknown session".

Whether a request came over the network (HTTP, any bind address) is known too: the HTTP app marks
each request it serves (``remote_request``), and code execution is off for such requests unless
the operator enabled it (server/code_policy.py).
"""

from __future__ import annotations

import contextvars
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

LOCAL = "local"

_remote: contextvars.ContextVar[bool] = contextvars.ContextVar("swarm_mcp_remote_request", default=False)
"""Set by the HTTP app for every request it serves; the SDK carries it to the handler with the message."""


def principal_of(ctx: Any = None) -> str:
    """The principal of the current request (``ctx`` is the tool's Context or a request context)."""
    token = get_access_token()
    if token is None:
        return LOCAL
    if token.subject:
        return f"user:{token.subject}"
    return f"client:{token.client_id}"  # never equal to a subject's principal, nor to "local"


def is_remote(ctx: Any = None) -> bool:
    """Whether the current request came over HTTP (streamable HTTP or SSE) rather than stdio."""
    return _remote.get()


class remote_request:
    """ASGI middleware: marks every request it passes on as remote."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _remote.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _remote.reset(token)
