"""autogen's runtime tracing and message events: on when something collects them, else skipped.

autogen's agent runtime opens an OpenTelemetry span around every message it sends, publishes and processes (several a
turn), whether or not anyone collects them: with no provider installed the spans go to OpenTelemetry's no-op tracer,
and still cost ~0.3 ms of a turn's ~2 ms (attributes built, contexts attached and detached). A session's team skips
them unless a real provider is installed (``opentelemetry.trace.set_tracer_provider``, e.g. by
opentelemetry-instrument), in which case autogen traces as it always does.

Nor, with no tracer provider, does the runtime build each span's attributes (the message serialized to JSON, its
sender and recipient looked up) for every message delivered to every agent of the team (11 deliveries of every
message). And the runtime serializes every message again, for each delivery, for the events it logs on autogen's event
logger (``autogen_core.events``): unless that logger is on at INFO when the team is built, the events carry an empty
payload instead. Together ~5% of a busy server's CPU.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Mapping

from autogen_core import EVENT_LOGGER_NAME
from opentelemetry import trace


def tracing_installed() -> bool:
    """Whether a real tracer provider is installed (not OpenTelemetry's default proxy or its no-op provider)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


class UntracedRuntime:
    """Stands in for an autogen runtime's trace helper: every block runs with no span."""

    @contextlib.contextmanager
    def trace_block(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        yield None


async def _no_attributes(*args: Any, **kwargs: Any) -> Mapping[str, str]:
    return {}


def _unlogged(message: Any) -> str:
    return ""


def skip_untraced(team: Any) -> None:
    """Have ``team``'s own agent runtime skip its per-message spans (and their attributes) when no tracer provider is
    installed, and the payloads of its message events when autogen's event logger is not on."""
    runtime = getattr(team, "_runtime", None)
    if runtime is None:
        return
    if hasattr(runtime, "_tracer_helper") and not tracing_installed():
        runtime._tracer_helper = UntracedRuntime()
        if hasattr(runtime, "_create_otel_attributes"):
            runtime._create_otel_attributes = _no_attributes
    if hasattr(runtime, "_try_serialize") and not logging.getLogger(EVENT_LOGGER_NAME).isEnabledFor(logging.INFO):
        runtime._try_serialize = _unlogged
