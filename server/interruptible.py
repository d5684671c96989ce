"""A model client that a run's interrupt ends at once (see swarm/live.py for why).

``InterruptibleClient.create`` races the inner call against the run's ``stopping`` event. When the
run is interrupted the inner call is cancelled (it is our own task, not autogen's, so cancelling it
is safe) and ``SessionInterrupted`` is raised: autogen stops the team with an error, the runner
records the session ``paused`` or ``cancelled`` (one status event, no error: see swarm/runner.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Sequence

from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage
from autogen_core.tools import Tool, ToolSchema

from swarm.errors import SessionInterrupted
from swarm.models.base import WrappingModelClient


class InterruptibleClient(WrappingModelClient):
    """Wraps a run's model client so that interrupting the run ends its in-flight call."""

    def __init__(self, inner: ChatCompletionClient, run: Any) -> None:
        self.inner = inner
        self.run = run

    def _interrupted(self) -> SessionInterrupted:
        if self.run.stop_reason == "cancel":
            return SessionInterrupted("cancel", "cancel_session")
        return SessionInterrupted("pause", self.run.stop_note or "the call that was following the session was cancelled")

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Any = "auto",
        json_output: Any = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        if self.run.stopping.is_set():
            raise self._interrupted()
        kwargs: dict[str, Any] = dict(tools=tools, json_output=json_output, extra_create_args=extra_create_args,
                                      cancellation_token=cancellation_token)
        if tool_choice != "auto":
            kwargs["tool_choice"] = tool_choice
        call = asyncio.ensure_future(self.inner.create(messages, **kwargs))
        stop = asyncio.ensure_future(self.run.stopping.wait())
        try:
            await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # our caller was cancelled: so is the call
            call.cancel()
            raise
        finally:
            stop.cancel()
        if not call.done():
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
            raise self._interrupted()
        return call.result()

    async def close(self) -> None:
        return None  # the model source owns the inner client
