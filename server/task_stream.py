"""Task status pushes, in both protocol eras: who watches which task, and telling them when it changes.

- 2025-11-25: the connection that created a task gets ``notifications/tasks/status`` (the task, flat) whenever its
  status changes (on stdio and SSE at once; on streamable HTTP through the client's standalone GET stream).
- 2026-07-28: a client opens ``subscriptions/listen`` with ``notifications.taskIds`` (its own tasks; the request
  declares the tasks extension); the stream is acknowledged with the task ids it will report on, carries the
  tasks' current state, then a ``notifications/tasks`` (the task as ``tasks/get`` shows it) at every change, beside
  any resource updates the same stream asked for.

Changes come from the engine through ``SwarmService.status_listeners``: a status change of a session run here, or
one another replica wrote to the shared store; so a push reaches the client from whichever replica it is
connected to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import anyio
import mcp_types as types
from mcp.server.subscriptions import _honored_subset
from mcp.server.mcpserver import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY, event_matches, event_to_notification

from .principal import principal_of

log = logging.getLogger("swarm_mcp.task_stream")

MAX_WATCHED = 256
"""The most tasks one listen stream may watch."""


@dataclass
class Watcher:
    """Someone told about one task's changes: ``send(state, view)``; ``last``: the status they heard last."""

    send: Callable[[Any, Any], Awaitable[None]]
    last: str | None = None
    once: bool = False
    """Forget the watcher once the task ended (a 2025 connection's own task)."""
    remove: Callable[[], None] = lambda: None
    """Stop watching (set by ``TaskWatchers.add``)."""


@dataclass
class TaskWatchers:
    """Every watcher of a task in this process, by task id."""

    layer: Any
    by_task: dict[str, list[Watcher]] = field(default_factory=dict)
    by_session: dict[str, set[str]] = field(default_factory=dict)

    def add(self, task_id: str, session_id: str, watcher: Watcher) -> Callable[[], None]:
        self.by_task.setdefault(task_id, []).append(watcher)
        self.by_session.setdefault(session_id, set()).add(task_id)

        def remove() -> None:
            watchers = self.by_task.get(task_id, [])
            if watcher in watchers:
                watchers.remove(watcher)
            if not watchers:
                self.by_task.pop(task_id, None)
                tasks = self.by_session.get(session_id, set())
                tasks.discard(task_id)
                if not tasks:
                    self.by_session.pop(session_id, None)

        watcher.remove = remove
        return remove

    async def session_changed(self, session_id: str) -> None:
        """Tell the watchers of ``session_id``'s tasks whose status changed."""
        for task_id in list(self.by_session.get(session_id, ())):
            try:
                state, view = await self.layer.read(task_id, None)
            except Exception as exc:  # expired, or the store failed: nobody is told
                log.debug("task %s not read for its watchers: %s", task_id, exc)
                continue
            for watcher in list(self.by_task.get(task_id, ())):
                if view.status == watcher.last:
                    continue
                watcher.last = view.status
                try:
                    await watcher.send(state, view)
                except Exception as exc:  # a notification must never fail a session
                    log.debug("task status for %s not sent: %s", task_id, exc)
                if watcher.once and view.terminal:
                    watcher.remove()

    def watch_2025(self, session: Any, state: Any) -> None:
        """The connection that created a 2025 task hears ``notifications/tasks/status`` about it."""
        async def send(state: Any, view: Any) -> None:
            await session._connection.notify("notifications/tasks/status", self.layer.task_body(state, view, modern=False))

        self.add(state.task.id, state.task.session_id, Watcher(send, "working", once=True))

    def guard_listen(self, lowlevel: Any) -> None:
        """Serve ``subscriptions/listen`` streams that name task ids; others go to the handler already there."""
        entry = lowlevel._request_handlers.get("subscriptions/listen")
        if entry is None:
            return
        inner, bus = entry.handler, self.layer.service.notifier.bus

        async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
            task_ids = list(dict.fromkeys((params.notifications.model_extra or {}).get("taskIds") or ()))
            if not task_ids:
                return await inner(ctx, params)
            return await self._listen(ctx, params, [str(t) for t in task_ids], bus)

        lowlevel.add_request_handler("subscriptions/listen", entry.params_type, listen)

    async def _listen(self, ctx: Any, params: types.SubscriptionsListenRequestParams, task_ids: list[str], bus: Any) -> Any:
        from .tasks import TASKS

        require_client_extension(ctx, TASKS)  # -32021 unless this request declares the tasks extension
        if len(task_ids) > MAX_WATCHED:
            raise MCPError(types.INVALID_PARAMS, f"a listen stream may watch at most {MAX_WATCHED} tasks; this one names {len(task_ids)}")
        principal = principal_of(ctx)
        current = [await self.layer.read(task_id, principal) for task_id in task_ids]  # unknown or foreign: -32602
        # (the resource URIs it names were checked by the subscription rules, which wrap this handler: server/subscriptions.py)
        subscription_id = ctx.request_id
        meta = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        honored = _honored_subset(params.notifications)
        uris = frozenset(honored.resource_subscriptions or ())
        send_stream, receive = anyio.create_memory_object_stream[Any](1024)

        def deliver(event: Any) -> None:  # resource events the same stream asked for
            if event_matches(honored, uris, event):
                try:
                    send_stream.send_nowait(("event", event))
                except (anyio.WouldBlock, anyio.ClosedResourceError):
                    pass

        async def push(state: Any, view: Any) -> None:
            try:
                send_stream.send_nowait(("task", self.layer.detailed(state, view)))
            except (anyio.WouldBlock, anyio.ClosedResourceError):
                pass

        unsubscribe = bus.subscribe(deliver) if bus is not None else (lambda: None)
        removals = [self.add(state.task.id, state.task.session_id, Watcher(push, view.status)) for state, view in current]
        outbound = ctx.session._request_outbound
        try:
            ack = honored.model_dump(by_alias=True, mode="json", exclude_none=True)
            await outbound.notify("notifications/subscriptions/acknowledged", {"notifications": {**ack, "taskIds": task_ids}, "_meta": meta})
            for state, view in current:  # where each task stands now: no change between a tasks/get and this stream is missed
                await outbound.notify("notifications/tasks", {**self.layer.detailed(state, view), "_meta": meta})
            async for kind, item in receive:
                if kind == "task":
                    await outbound.notify("notifications/tasks", {**item, "_meta": meta})
                else:
                    notification = event_to_notification(item, meta).model_dump(by_alias=True, mode="json", exclude_none=True)
                    await outbound.notify(notification["method"], notification.get("params"))
        finally:
            unsubscribe()
            for remove in removals:
                remove()
            send_stream.close()
            receive.close()
        return types.SubscriptionsListenResult(_meta=meta)
