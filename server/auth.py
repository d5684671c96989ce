"""Bearer tokens for the HTTP transport: a static token, or a verifier the operator plugs in.

- ``SWARM_MCP_TOKEN``: a static bearer token. Its principal is ``user:<SWARM_MCP_TOKEN_SUBJECT>``
  when a subject is configured, else ``user:token:<first 12 hex digits of its SHA-256>`` (the
  token itself never appears in the store or the logs).
- ``SWARM_MCP_TOKEN_VERIFIER=package.module:name``: any object with the SDK's ``TokenVerifier``
  protocol (``async verify_token(token) -> AccessToken | None``), or a class or factory that
  returns one when called without arguments. Its ``AccessToken.subject`` (else ``client_id``) is
  the principal. With both configured, the static token is tried first.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from typing import Any

from mcp.server.auth.provider import AccessToken, TokenVerifier

from swarm.errors import ConfigError

STATIC_CLIENT_ID = "swarm-mcp-static-token"


def token_subject(token: str) -> str:
    """The default subject of a static token: a prefix of its SHA-256, never the token itself."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


class StaticTokenVerifier:
    """One shared secret; compared in constant time."""

    def __init__(self, token: str, subject: str | None = None) -> None:
        if len(token) < 16:
            raise ConfigError("SWARM_MCP_TOKEN is too short: use at least 16 random characters (e.g. `openssl rand -hex 32`)")
        self._token = token.encode()
        self.subject = subject or token_subject(token)

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id=STATIC_CLIENT_ID, scopes=[], subject=self.subject)


class ChainedVerifier:
    """The first verifier that accepts the token wins."""

    def __init__(self, verifiers: list[TokenVerifier]) -> None:
        self.verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            access = await verifier.verify_token(token)
            if access is not None:
                return access
        return None


def load_verifier(path: str) -> TokenVerifier:
    """Import ``package.module:name`` (or ``package.module.name``): a TokenVerifier, or a class/factory of one."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"token verifier {path!r}: expected 'package.module:name'")
    try:
        target: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"token verifier {path!r} cannot be loaded: {exc}") from None
    if not hasattr(target, "verify_token") or isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise ConfigError(f"token verifier {path!r}: calling it to make the verifier failed: {exc}") from None
    if not callable(getattr(target, "verify_token", None)):
        raise ConfigError(f"token verifier {path!r} has no verify_token(token) method (the MCP SDK's TokenVerifier protocol)")
    return target


def build_verifier(token: str | None, subject: str | None, verifier: str | None) -> TokenVerifier | None:
    """The configured verifier, or None when no token and no verifier are configured."""
    verifiers: list[TokenVerifier] = []
    if token:
        verifiers.append(StaticTokenVerifier(token, subject))
    elif subject:
        raise ConfigError("SWARM_MCP_TOKEN_SUBJECT is set but SWARM_MCP_TOKEN is not: set the token too")
    if verifier:
        verifiers.append(load_verifier(verifier))
    if not verifiers:
        return None
    return verifiers[0] if len(verifiers) == 1 else ChainedVerifier(verifiers)
