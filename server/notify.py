"""Change notifications and client log levels.

Resource-updated notifications reach both protocol eras:
- 2025-11-25 clients subscribe with ``resources/subscribe``; we keep each subscriber's session and
  send ``notifications/resources/updated`` on its connection (a subscriber whose connection is gone
  is dropped);
- 2026-07-28 clients listen with ``subscriptions/listen``; we publish ``ResourceUpdated`` on the
  server's subscription bus and the SDK's listen handler delivers it to matching streams.

``logging/setLevel`` (2025-11-25) sets the level per principal; ``log`` sends a
``notifications/message`` to the calling client when its level allows (on 2026-07-28 the SDK
applies the request's own log-level opt-in instead).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

import mcp_types as types
from mcp.server.subscriptions import ResourceUpdated

log = logging.getLogger("swarm_mcp.notify")

LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SEND_TIMEOUT = 5.0


class Notifier:
    """Subscriptions of both eras, and per-principal log levels."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self._subscribers: dict[str, dict[int, Any]] = {}
        self._levels: dict[str, str] = {}
        self._sending: set[asyncio.Task[None]] = set()

    # ---- resources ------------------------------------------------------------------------------

    def subscribe(self, uri: str, session: Any) -> None:
        self._subscribers.setdefault(uri, {})[_connection_key(session)] = session

    def unsubscribe(self, uri: str, session: Any) -> None:
        self._subscribers.get(uri, {}).pop(_connection_key(session), None)

    def subscriber_count(self, uri: str) -> int:
        return len(self._subscribers.get(uri, {}))

    async def updated(self, *uris: str) -> None:
        """Tell every subscriber and listener that these resources changed. Never waits on a slow subscriber:
        2025-11-25 notifications are sent by background tasks (a run must not stall on a client's connection)."""
        for uri in uris:
            await self.bus.publish(ResourceUpdated(uri=uri))
            for key, session in list(self._subscribers.get(uri, {}).items()):
                task = asyncio.create_task(self._send(uri, key, session))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, uri: str, key: int, session: Any) -> None:
        try:
            await asyncio.wait_for(session.send_resource_updated(uri), SEND_TIMEOUT)
        except Exception as exc:  # the subscriber's connection is gone (or stuck)
            log.info("dropping subscriber of %s: %s", uri, exc)
            self._subscribers.get(uri, {}).pop(key, None)

    async def aclose(self) -> None:
        for task in list(self._sending):
            task.cancel()
        self._subscribers.clear()

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


def _connection_key(session: Any) -> int:
    """Subscriptions belong to a connection; ``ctx.session`` is a per-request proxy of it."""
    return id(getattr(session, "_connection", session))


__all__ = ["LEVELS", "Notifier", "types"]
