"""Fakes at the model boundary, with the real interfaces: model sources for the engine (scripted, gated,
function-driven) and a fake OpenAI-compatible / Anthropic HTTP endpoint on 127.0.0.1.

- ``ScriptedModels``: every agent answers from one shared ``Script`` (swarm/models/scripted.py).
- ``GatedModels``: scripted, and the n-th model call waits until the test opens its gate.
- ``FunctionModels``: every agent answers with ``function(messages, agent, tools)`` (pydantic-ai's ``FunctionModel``),
  through ``swarm.models.function.FunctionModelClient``, the client the scripted one is built on.
- ``FakeProvider`` / ``fake_provider()``: answers HTTP requests with planned responses and records them.
- ``Sleeps``: a sleep function for retry layers that records the delays and never sleeps.

The network guard that forbids real model calls is a fixture: tests/conftest.py.
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import anyio
from autogen_core import FunctionCall

from swarm.models.base import WrappingModelClient
from swarm.models.function import FunctionModelClient, ModelFunction
from swarm.models.scripted import Script, ScriptedModelClient

# ---- model sources for the engine (swarm.runner.ModelSource) -------------------------------------------------------


class _EveryAgent:
    """A ModelSource that serves every agent and tier alike."""

    spec = "fake"
    capable = True
    """``False`` makes it behave like the embedded model for routing: copilot_control then routes with the offline
    router alone and makes no model call."""

    def spec_for(self, tier: str) -> str:
        return self.spec

    def is_capable(self, tier: str) -> bool:
        return self.capable


class FunctionModels(_EveryAgent):
    """A ModelSource whose every agent is a ``FunctionModelClient`` over ``function(messages, agent, tools)``: it returns
    text, a ``FunctionCall`` (see ``call`` and ``handoff``) or a list of them, or a ``CreateResult``; it may be async.
    ``usage`` is what each reply reports (prompt, completion tokens)."""

    spec = "function"

    def __init__(self, function: ModelFunction, capable: bool = True, usage: tuple[int, int] = (10, 5)) -> None:
        self.function = function
        self.capable = capable
        self.usage = usage

    def client_for(self, agent: str, tier: str) -> FunctionModelClient:
        return FunctionModelClient(self.function, agent, self.usage)


def call(name: str, **args: Any) -> FunctionCall:
    """A tool call a model function can return."""
    return FunctionCall(id=f"call_{name}", name=name, arguments=json.dumps(args))


def handoff(agent: str) -> FunctionCall:
    """A hand-off to ``agent`` (the tool autogen's Swarm offers for it)."""
    return call(f"transfer_to_{agent}")


class ScriptedModels(_EveryAgent):
    """A ModelSource whose every agent is served by one shared Script."""

    spec = "scripted"

    def __init__(self, script: Script, capable: bool = True) -> None:
        self.script = script
        self.capable = capable

    def client_for(self, agent: str, tier: str) -> ScriptedModelClient:
        return ScriptedModelClient(self.script, agent)


class GatedModels(ScriptedModels):
    """Scripted models whose n-th call (0-based) waits until the test sets ``gates[n]``; ``reached[n]`` is set when
    that call gets to its gate. Make it in the test's event loop (anyio events)."""

    def __init__(self, script: Script, gates: dict[int, anyio.Event], capable: bool = True) -> None:
        super().__init__(script, capable)
        self.gates = gates
        self.reached = {n: anyio.Event() for n in gates}

    def client_for(self, agent: str, tier: str) -> GatedClient:
        return GatedClient(super().client_for(agent, tier), self)


class GatedClient(WrappingModelClient):
    def __init__(self, inner: ScriptedModelClient, models: GatedModels) -> None:
        self.inner, self.models = inner, models

    async def create(self, messages: Any, **kwargs: Any) -> Any:
        n = self.models.script.position()
        gate = self.models.gates.get(n)
        if gate is not None:
            self.models.reached[n].set()
            await gate.wait()
        return await self.inner.create(messages, **kwargs)


# ---- a fake model provider over HTTP ---------------------------------------------------------------------------------

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


@dataclass
class Planned:
    """One planned HTTP response: a JSON body with a status and headers, or (``stream``) server-sent events."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: list[dict[str, Any]] | None = None


def completion(model: str, message: dict[str, Any], finish: str, usage: tuple[int, int] = (10, 5)) -> dict[str, Any]:
    """An OpenAI chat.completion body with one choice."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


@dataclass
class FakeProvider:
    """An OpenAI-compatible (``/v1/chat/completions``) and Anthropic (``/v1/messages``) endpoint: answers each request
    to a path with the next response planned for it (418 when none is), and records what it received."""

    base: str = ""
    """``http://127.0.0.1:PORT`` once serving (``fake_provider``)."""
    plans: dict[str, list[Planned]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    """(path, headers with lower-case names, JSON body) of each request, in order."""

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL takes."""
        return f"{self.base}/v1"

    def plan(self, path: str, *responses: Planned) -> None:
        self.plans.setdefault(path, []).extend(responses)

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [body for p, _, body in self.received if p == path]

    async def handle(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        body = await request.json()
        self.received.append((request.url.path, dict(request.headers), body))
        queue = self.plans.get(request.url.path) or []
        if not queue:
            return JSONResponse({"error": {"message": f"fake server: nothing planned for {request.url.path}"}}, status_code=418)
        planned = queue.pop(0)
        if planned.stream is not None:
            chunks = planned.stream

            async def events() -> Any:
                for chunk in chunks:
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(planned.body, status_code=planned.status, headers=planned.headers)


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    """A FakeProvider served by uvicorn in a thread on 127.0.0.1 (a free port); stopped on exit."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    provider = FakeProvider()
    app = Starlette(routes=[Route(CHAT, provider.handle, methods=["POST"]), Route(MESSAGES, provider.handle, methods=["POST"])])
    ready = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            ready.set()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, already bound: no race with another process
    sock.listen(64)
    server = Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-provider")
    thread.start()
    try:
        assert ready.wait(timeout=15), "fake provider server did not start within 15 s"
        provider.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "fake provider server did not stop within 15 s"


class Sleeps(list):
    """A sleep function that records the delays asked for, and returns at once."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)
