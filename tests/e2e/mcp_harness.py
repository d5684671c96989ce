"""Helpers for driving the real swarm-mcp server through the SDK's real client."""

from __future__ import annotations

import warnings
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import anyio
import mcp_types as types
import pytest
from mcp import Client

from server.app import build_server
from swarm.models.scripted import Script
from tests.fakes import GatedModels, ScriptedModels

ERAS = ["legacy", "auto"]
"""Client modes: 'legacy' negotiates 2025-11-25 (initialize), 'auto' negotiates 2026-07-28 in-process."""

warnings.filterwarnings("ignore", category=DeprecationWarning)


class Recorder:
    """What a client received: progress, notifications, elicitations, sampling requests."""

    def __init__(self) -> None:
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.logs: list[Any] = []
        self.notifications: list[Any] = []
        self.elicitations: list[Any] = []
        self.samplings: list[Any] = []
        self.answers: list[dict[str, Any] | None] = []
        self.sample_answers: list[Any] = []
        self.updated = anyio.Event()

    async def on_progress(self, value: float, total: float | None, message: str | None) -> None:
        self.progress.append((value, total, message))

    async def on_message(self, message: Any) -> None:
        self.notifications.append(message)
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.set()

    async def on_log(self, params: Any) -> None:
        self.logs.append(params)

    async def on_elicit(self, context: Any, params: Any) -> Any:
        self.elicitations.append(params)
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content=answer)

    async def on_sample(self, context: Any, params: Any) -> Any:
        self.samplings.append(params)
        answer = self.sample_answers.pop(0)
        if not isinstance(answer, str):
            return answer
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=answer), model="client-model",
                                         stop_reason="endTurn")


@asynccontextmanager
async def connect(server: Any, mode: str, rec: Recorder | None = None, *, elicit: bool = False, sample: bool = False,
                  sampling_tools: bool = False) -> AsyncIterator[Client]:
    rec = rec or Recorder()
    caps = types.SamplingCapability(tools=types.SamplingToolsCapability()) if sampling_tools else None
    async with Client(server, mode=mode, message_handler=rec.on_message, logging_callback=rec.on_log,
                      elicitation_callback=rec.on_elicit if elicit else None,
                      sampling_callback=rec.on_sample if sample else None, sampling_capabilities=caps) as client:
        yield client


def make_server(settings: Any, entries: list[dict[str, Any]], capable: bool = True, gates: dict[int, anyio.Event] | None = None,
                **options: Any) -> tuple[Any, Script]:
    script = Script(entries)
    models = ScriptedModels(script, capable=capable) if gates is None else GatedModels(script, gates, capable=capable)
    return build_server(settings, models=models, **options), script


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


def text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return request.param
