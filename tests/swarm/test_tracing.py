"""autogen's runtime tracing: skipped when no OpenTelemetry tracer provider is installed, kept when one is."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest
from opentelemetry import trace

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.tracing import tracing_installed
from tests.fakes import FunctionModels, handoff

pytestmark = pytest.mark.anyio

NEXT = {"copilot_control": "engineer", "engineer": "controller", "controller": "engineer"}


class RecordingTracer(trace.NoOpTracer):
    def __init__(self, spans: list[str]) -> None:
        self.spans = spans

    @contextlib.contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        self.spans.append(name)
        yield trace.INVALID_SPAN


class RecordingProvider(trace.TracerProvider):
    """A tracer provider as an application installs one (here: it keeps the names of the spans opened)."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RecordingTracer(self.spans)


async def play(settings: Any) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(lambda m, agent, t: handoff(NEXT[agent]))) as engine:
        record = await engine.go_on((await engine.create("Bounce it", max_rounds=4)).id)
        assert record.status == "paused" and record.total_rounds == 4


async def test_no_spans_are_opened_when_no_tracer_provider_is_installed(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: autogen's runtime opened several spans a turn on OpenTelemetry's default (proxy, no-op) tracer, ~0.3 ms
    of a ~2 ms turn, with nobody to collect them."""
    opened: list[str] = []
    original = trace.ProxyTracer.start_as_current_span

    def counting(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(trace.ProxyTracer, "start_as_current_span", counting)
    assert not tracing_installed()
    await play(settings)
    assert [name for name in opened if name.startswith("autogen ")] == []  # the runtime's ("autogen publish ...", ...)
    assert any(name.startswith("create_agent") for name in opened)  # (the agents' own spans are autogen's business)


async def test_no_message_is_serialized_for_spans_or_events_nobody_collects(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the runtime serialized every message to JSON for every agent it was delivered to (11 a message), twice:
    for the attributes of a span going to the no-op tracer and for an event logged at INFO on a logger that was off."""
    from autogen_core import SingleThreadedAgentRuntime

    serialized: list[str] = []
    original = SingleThreadedAgentRuntime._try_serialize

    def counting(self: Any, message: Any) -> str:
        serialized.append(type(message).__name__)
        return original(self, message)

    monkeypatch.setattr(SingleThreadedAgentRuntime, "_try_serialize", counting)
    await play(settings)
    assert serialized == []


async def test_autogen_message_events_keep_their_payload_when_their_logger_is_on(settings: Any) -> None:
    import logging

    from autogen_core import EVENT_LOGGER_NAME

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.payloads: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            payload = getattr(record.msg, "kwargs", {}).get("payload")
            if payload is not None:
                self.payloads.append(payload)

    events = logging.getLogger(EVENT_LOGGER_NAME)
    keep, level = Keep(), events.level
    events.addHandler(keep)
    events.setLevel(logging.INFO)
    try:
        await play(settings)
    finally:
        events.removeHandler(keep)
        events.setLevel(level)
    assert keep.payloads and any("engineer" in payload for payload in keep.payloads), keep.payloads[:3]


async def test_an_installed_tracer_provider_gets_the_runtime_spans(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import autogen_core._telemetry._tracing as autogen_tracing

    provider = RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(autogen_tracing, "get_tracer_provider", lambda: provider)  # (autogen imported the name)
    assert tracing_installed()
    await play(settings)
    runtime = [name for name in provider.spans if name.startswith("autogen ")]
    assert any(n.startswith("autogen publish") for n in runtime) and any(n.startswith("autogen process") for n in runtime), sorted(set(provider.spans))
