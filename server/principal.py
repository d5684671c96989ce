"""Who is calling: the principal that owns the sessions a request creates and may read.

A principal is a function of the request context only. Over stdio it is the local user
(``"local"``); over HTTP with auth it is the bearer token's subject (or its client id when the
verifier supplies no subject). Sessions belong to the principal that created them; the engine's
store refuses other principals as "unknown session".
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

LOCAL = "local"


def principal_of(ctx: Any = None) -> str:
    """The principal of the current request (``ctx`` is the tool's Context or a request context)."""
    token = get_access_token()
    if token is None:
        return LOCAL
    subject = token.subject or token.client_id
    return f"user:{subject}"
