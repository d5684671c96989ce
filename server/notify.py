"""Change notifications and client log levels.

Resource-updated notifications reach both protocol eras:
- 2025-11-25 clients subscribe with ``resources/subscribe``; we keep each subscriber's session and
  send ``notifications/resources/updated`` on its connection (a subscriber whose connection is gone
  is dropped);
- 2026-07-28 clients listen with ``subscriptions/listen``; we publish ``ResourceUpdated`` on the
  server's subscription bus (``PrincipalBus``) and the SDK's listen handler delivers it to matching
  streams.

An update about a session goes only to its owner's subscribers and listeners: each subscription
and each listen stream remembers the principal that opened it, and ``updated(..., owner=...)``
skips every other principal (``swarm://sessions`` included, so nobody learns when another
principal's sessions change).

A 2025-11-25 connection holds at most ``MAX_SUBSCRIPTIONS`` subscriptions; they are released when the
connection ends (its ``exit_stack`` unwinds: a DELETE, an idle timeout, an SSE stream that closes), so nothing
outlives the client. Which URIs may be subscribed at all is server/subscriptions.py's concern.

``logging/setLevel`` (2025-11-25) sets the level per principal; ``log`` sends a
``notifications/message`` to the calling client when its level allows (on 2026-07-28 the SDK
applies the request's own log-level opt-in instead).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any, Callable

import anyio.lowlevel
import mcp_types as types
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from .principal import principal_of

log = logging.getLogger("swarm_mcp.notify")

LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SEND_TIMEOUT = 5.0
MAX_SUBSCRIPTIONS = 256
"""The most resources one connection (2025-11-25) or one listen stream (2026-07-28) may watch."""


class SubscriptionLimitError(Exception):
    """A connection asked for more than ``MAX_SUBSCRIPTIONS`` subscriptions (the client's error)."""


class PrincipalBus:
    """The server's ``SubscriptionBus``: in-process fan-out that keeps each principal's events its own.

    A listener registered while serving a ``subscriptions/listen`` request belongs to that request's
    principal; ``publish(event, owner=p)`` reaches only the listeners of ``p`` (``owner=None``: all).
    """

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[str, Callable[[ServerEvent], None]]] = {}

    async def publish(self, event: ServerEvent, *, owner: str | None = None) -> None:
        for principal, listener in list(self._listeners.values()):
            if owner is not None and principal != owner:
                continue
            try:
                listener(event)
            except Exception:  # one bad listener must not starve the others
                log.exception("subscription listener raised; continuing")
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = (principal_of(), listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


class Notifier:
    """Subscriptions of both eras, and per-principal log levels."""

    def __init__(self, bus: Any, *, max_subscriptions: int = MAX_SUBSCRIPTIONS) -> None:
        self.bus = bus
        self.max_subscriptions = max_subscriptions
        self._subscribers: dict[str, dict[int, tuple[str, Any]]] = {}
        self._held: dict[int, set[str]] = {}
        """The URIs each connection subscribed to (released with the connection)."""
        self._levels: dict[str, str] = {}
        self._sending: set[asyncio.Task[None]] = set()

    # ---- resources ------------------------------------------------------------------------------

    def subscribe(self, uri: str, session: Any, principal: str) -> None:
        """Keep ``session``'s connection subscribed to ``uri`` until it unsubscribes or ends; raise
        ``SubscriptionLimitError`` when the connection already holds ``max_subscriptions`` others."""
        key = _connection_key(session)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = set()
            _on_close(session, lambda: self.release(key))
        if uri not in held and len(held) >= self.max_subscriptions:
            raise SubscriptionLimitError(
                f"this connection already has {len(held)} subscriptions, the most one connection may hold: unsubscribe "
                "(resources/unsubscribe) from resources you no longer watch first; swarm://sessions alone tells you when "
                "any of your sessions changes")
        held.add(uri)
        self._subscribers.setdefault(uri, {})[key] = (principal, _channel_of(session))

    def unsubscribe(self, uri: str, session: Any) -> None:
        key = _connection_key(session)
        self._drop(uri, key)
        self._held.get(key, set()).discard(uri)

    def release(self, key: int) -> None:
        """Forget every subscription of the connection ``key`` (called when it ends)."""
        for uri in self._held.pop(key, set()):
            self._drop(uri, key)

    def _drop(self, uri: str, key: int) -> None:
        subscribers = self._subscribers.get(uri)
        if subscribers is not None:
            subscribers.pop(key, None)
            if not subscribers:
                del self._subscribers[uri]

    def subscriber_count(self, uri: str) -> int:
        return len(self._subscribers.get(uri, {}))

    def subscription_count(self) -> int:
        """Subscriptions held now, over all connections."""
        return sum(len(held) for held in self._held.values())

    async def updated(self, *uris: str, owner: str | None) -> None:
        """Tell the subscribers and listeners of ``owner`` (None: everyone) that these resources changed. Never waits
        on a slow subscriber: 2025-11-25 notifications are sent by background tasks (a run must not stall on a client's
        connection)."""
        for uri in uris:
            if isinstance(self.bus, PrincipalBus):
                await self.bus.publish(ResourceUpdated(uri=uri), owner=owner)
            elif owner is None:  # a bus that cannot tell principals apart only gets public events
                await self.bus.publish(ResourceUpdated(uri=uri))
            for key, (principal, session) in list(self._subscribers.get(uri, {}).items()):
                if owner is not None and principal != owner:
                    continue
                task = asyncio.create_task(self._send(uri, key, session))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, uri: str, key: int, session: Any) -> None:
        try:
            await asyncio.wait_for(session.send_resource_updated(uri), SEND_TIMEOUT)
        except Exception as exc:  # the subscriber's connection is gone (or stuck)
            log.info("dropping subscriber of %s: %s", uri, exc)
            self._drop(uri, key)
            self._held.get(key, set()).discard(uri)

    async def aclose(self) -> None:
        for task in list(self._sending):
            task.cancel()
        self._subscribers.clear()
        self._held.clear()

    # ---- logging --------------------------------------------------------------------------------

    def set_level(self, principal: str, level: str) -> None:
        self._levels[principal] = level

    async def log(self, ctx: Any, principal: str, level: str, data: Any) -> None:
        """Send a log message to the calling client if its level allows; never fails the call."""
        try:
            modern = (ctx.protocol_version or "") >= "2026"
            wanted = self._levels.get(principal)
            if not modern and (wanted is None or LEVELS.index(level) < LEVELS.index(wanted)):
                return
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if modern:  # the SDK applies the request's own log-level opt-in
                    await ctx.log(level, data, logger_name="swarm")
                else:
                    await ctx.session.send_log_message(level=level, data=data, logger="swarm", related_request_id=ctx.request_id)
        except Exception as exc:
            log.debug("log notification not sent: %s", exc)


class _Standalone:
    """What a subscription keeps of its subscriber: the connection's standalone channel (where the SDK's
    ``send_resource_updated`` sends too). Not ``ctx.session``: that is a per-request proxy, and keeping it kept its
    whole request alive (the HTTP request and headers, the dispatch context, the closed socket's transport) for as
    long as the subscription lasted: ~10-12 kB a subscription (the issue saw +344 MB for 50,000)."""

    __slots__ = ("connection",)

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def send_resource_updated(self, uri: str) -> None:
        note = types.ResourceUpdatedNotification(params=types.ResourceUpdatedNotificationParams(uri=uri))
        data = note.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self.connection.outbound.notify(data["method"], data.get("params"))


def _channel_of(session: Any) -> Any:
    """The connection-scoped sender of ``session`` (a session that is no SDK per-request proxy is kept as it is)."""
    connection = getattr(session, "_connection", None)
    return _Standalone(connection) if connection is not None and hasattr(connection, "outbound") else session


def _on_close(session: Any, release: Callable[[], None]) -> None:
    """Run ``release`` when ``session``'s connection ends (the SDK unwinds each connection's ``exit_stack`` then:
    a 2025-11-25 session's DELETE or idle timeout, an SSE stream's end, a stdio EOF, a 2026-07-28 request's end)."""
    stack = getattr(getattr(session, "_connection", None), "exit_stack", None)
    if stack is not None:
        stack.callback(release)


def _connection_key(session: Any) -> int:
    """Subscriptions belong to a connection; ``ctx.session`` is a per-request proxy of it."""
    return id(getattr(session, "_connection", session))


__all__ = ["LEVELS", "MAX_SUBSCRIPTIONS", "Notifier", "PrincipalBus", "SubscriptionLimitError", "types"]
