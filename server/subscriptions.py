"""What a client may subscribe to, and how much: ``resources/subscribe`` (2025-11-25) and the resource URIs of
``subscriptions/listen`` (2026-07-28).

A subscription is accepted only for a URI that names a resource that exists and that the caller's principal may
read, the same resources ``resources/read`` serves:

- ``swarm://sessions`` (your index), ``swarm://agents``, ``swarm://phases``;
- ``swarm://sessions/<id>``, ``.../transcript``, ``.../transcript.md`` of one of your own sessions;
- ``swarm://agents/<name>`` and ``swarm://phases/<name>`` of a real agent or phase.

Anything else is refused with a JSON-RPC error (-32602): an unknown session, or another principal's, gets exactly
what a read gets ("unknown session id ..."), so a foreign id is not revealed; a URI that is none of the above
(``swarm://sessions//<id>``, ``file:///etc/passwd``, a 100 kB string) is answered with the list of URIs that can
be subscribed. A connection holds at most ``MAX_SUBSCRIPTIONS`` subscriptions (server/notify.py keeps them and
releases them when the connection ends); a listen stream names at most that many URIs.
"""

from __future__ import annotations

import re
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST

from swarm.errors import UserInputError

from .notify import MAX_SUBSCRIPTIONS, SubscriptionLimitError
from phases.registry import PHASES
from .principal import principal_of

MAX_URI_LENGTH = 512
"""Longer URIs name no resource of ours: refused before any lookup."""

SUBSCRIBABLE = ("swarm://sessions, swarm://sessions/<session_id>, swarm://sessions/<session_id>/transcript and "
                "swarm://sessions/<session_id>/transcript.md (your own sessions), swarm://agents, swarm://agents/<name>, "
                "swarm://phases and swarm://phases/<name>")

_LISTS = frozenset({"swarm://sessions", "swarm://agents", "swarm://phases"})
_SESSION = re.compile(r"swarm://sessions/(?P<id>[^/]+)(?:/transcript|/transcript\.md)?")
_AGENT = re.compile(r"swarm://agents/(?P<name>[^/]+)")
_PHASE = re.compile(r"swarm://phases/(?P<name>[^/]+)")


class SubscriptionRules:
    """Checks subscriptions of both eras against what the caller may read; serves subscribe and unsubscribe."""

    def __init__(self, service: Any) -> None:
        self.service = service

    async def check(self, uri: str, principal: str) -> None:
        """Return if ``principal`` may subscribe to ``uri``; else raise the ``MCPError`` the client gets."""
        if len(uri) <= MAX_URI_LENGTH:
            if uri in _LISTS:
                return
            if match := _SESSION.fullmatch(uri):
                try:
                    await self.service.read(match["id"], principal)
                except UserInputError as exc:  # unknown, or another principal's: the same answer a read gets
                    raise MCPError(INVALID_PARAMS, str(exc), data={"uri": uri}) from None
                return
            if match := _AGENT.fullmatch(uri):
                agents = (await self.service.engine()).agents
                if match["name"] not in agents:
                    raise MCPError(INVALID_PARAMS, f"unknown agent {match['name']!r}; known agents: {', '.join(sorted(agents))}",
                                   data={"uri": uri})
                return
            if match := _PHASE.fullmatch(uri):
                if match["name"] not in PHASES:
                    raise MCPError(INVALID_PARAMS, f"unknown phase {match['name']!r}; the phases are "
                                   f"{', '.join(sorted(PHASES))}", data={"uri": uri})
                return
        shown = uri if len(uri) <= 100 else f"{uri[:100]}... ({len(uri)} characters)"
        raise MCPError(INVALID_PARAMS, f"cannot subscribe to {shown!r}: it names no swarm-mcp resource. The URIs you can "
                       f"subscribe to are {SUBSCRIBABLE}", data={"uri": uri[:MAX_URI_LENGTH]})

    # ---- 2025-11-25: resources/subscribe and resources/unsubscribe ------------------------------

    async def subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        uri, principal = str(params.uri), principal_of(ctx)
        await self.check(uri, principal)
        try:
            self.service.notifier.subscribe(uri, ctx.session, principal)
        except SubscriptionLimitError as exc:
            raise MCPError(INVALID_REQUEST, str(exc), data={"uri": uri, "limit": MAX_SUBSCRIPTIONS}) from None
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self.service.notifier.unsubscribe(str(params.uri), ctx.session)
        return types.EmptyResult()

    # ---- 2026-07-28: subscriptions/listen -------------------------------------------------------

    def guard_listen(self, lowlevel: Any) -> None:
        """Put the same rules in front of the SDK's ``subscriptions/listen`` handler (if the server serves it)."""
        entry = lowlevel._request_handlers.get("subscriptions/listen")
        if entry is None:
            return
        inner = entry.handler

        async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
            uris = list(dict.fromkeys(params.notifications.resource_subscriptions or ()))
            if len(uris) > MAX_SUBSCRIPTIONS:
                raise MCPError(INVALID_PARAMS, f"a listen stream may watch at most {MAX_SUBSCRIPTIONS} resources; this one names "
                               f"{len(uris)}. Watch fewer: swarm://sessions alone tells you when any of your sessions changes",
                               data={"limit": MAX_SUBSCRIPTIONS})
            principal = principal_of(ctx)
            for uri in uris:
                await self.check(uri, principal)
            return await inner(ctx, params)

        lowlevel.add_request_handler("subscriptions/listen", entry.params_type, listen)
