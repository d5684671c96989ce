"""A TokenVerifier for the HTTP tests: two users, each with a token of their own (SWARM_MCP_TOKEN_VERIFIER=http_verifier:TwoUsers)."""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken

TOKENS = {"alice-token-0123456789": "alice", "bob-token-0123456789ab": "bob"}
ALICE, BOB = list(TOKENS)


class TwoUsers:
    async def verify_token(self, token: str) -> AccessToken | None:
        subject = TOKENS.get(token)
        if subject is None:
            return None
        return AccessToken(token=token, client_id="tests", scopes=[], subject=subject)
