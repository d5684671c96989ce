"""`swarm-mcp serve --transport http` as a subprocess on 127.0.0.1 (a free port), and the SDK's real clients for it.

The server prints ``swarm-mcp: serving http://127.0.0.1:PORT/mcp ...`` on stderr once it accepts connections; the
harness reads its stderr (into ``server.stderr``) until that line, with a bounded wait, and stops the server with
SIGTERM (then SIGKILL after a bounded wait) when the test is done.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.e2e.mcp_harness import Recorder

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
READY = re.compile(r"swarm-mcp: serving (http://127\.0\.0\.1:(\d+))/mcp")

TRANSPORTS = ["http-2025", "http-2026", "sse"]
"""How a test client connects: streamable HTTP negotiating 2025-11-25 (initialize, Mcp-Session-Id) or
2026-07-28 (stateless), or the legacy SSE transport."""


def serve_env(tmp_path: Path, script: list[dict[str, Any]], **extra: str) -> dict[str, str]:
    """The environment of a `serve` subprocess (stdio or HTTP) on the scripted model: ``script`` written to
    ``<tmp_path>/script.json`` (its log: ``script.json.log``), home under ``tmp_path``, no provider keys, no retry
    delays; ``extra`` on top. PYTHONPATH holds the repository and tests/e2e (for ``http_verifier:TwoUsers``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    env.update(SWARM_MCP_HOME=str(tmp_path / "home"), SWARM_MCP_MODEL="scripted", SWARM_MCP_SCRIPT=str(path),
               SWARM_MCP_RETRY_BASE_DELAY="0", PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    env.update(extra)
    return env


def script_calls(tmp_path: Path) -> int:
    """How many model calls the scripted server(s) under ``tmp_path`` made so far (the lines of the script's log)."""
    log = tmp_path / "script.json.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def logged(tmp_path: Path) -> list[dict[str, Any]]:
    """The model calls the scripted server(s) under ``tmp_path`` made so far, in order, as logged (``index`` in the
    script, ``agent``, ...); servers sharing ``tmp_path`` append to one log."""
    log = tmp_path / "script.json.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def logged_indices(tmp_path: Path) -> list[int]:
    """The script indices of the model calls made so far, in order."""
    return [call["index"] for call in logged(tmp_path)]


@dataclass
class HttpServer:
    base: str
    """``http://127.0.0.1:PORT``"""
    proc: subprocess.Popen[bytes]
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base}/sse"

    def log(self) -> str:
        return "".join(self.stderr)


@asynccontextmanager
async def http_server(tmp_path: Path, script: list[dict[str, Any]], *args: str, **env: str) -> AsyncIterator[HttpServer]:
    """A `serve --transport http --port 0` subprocess, ready for connections; stopped (SIGTERM) on exit."""
    async with serve_process(tmp_path, serve_env(tmp_path, script, **env), *args) as server:
        yield server


@asynccontextmanager
async def serve_process(tmp_path: Path, env: dict[str, str], *args: str, name: str = "server", wrap: tuple[str, ...] = ()) -> AsyncIterator[HttpServer]:
    """`serve --transport http --port 0` with exactly ``env``, ready for connections (its engine open); stopped
    (SIGTERM) on exit unless the test killed it. Its stderr ends up in ``<tmp_path>/<name>.stderr``. ``wrap``: a
    command that runs the server's command line given as its last arguments (and execs it: same process)."""
    proc = subprocess.Popen([*wrap, sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--port", "0", *args],
                            env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []
    ready: list[re.Match[str]] = []
    seen = threading.Event()

    def drain() -> None:  # the server's stderr: kept for the test, and scanned for the ready line
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            match = READY.search(line)
            if match and not ready:
                ready.append(match)
                seen.set()
        seen.set()  # EOF: the server exited

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        await anyio.to_thread.run_sync(seen.wait, 60)
        if not ready:
            raise AssertionError(f"the server did not start (exit code {proc.poll()}):\n{''.join(lines)}")
        server = HttpServer(base=ready[0].group(1), proc=proc, stderr=lines)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await anyio.to_thread.run_sync(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            await anyio.to_thread.run_sync(proc.wait, 10)
        await anyio.to_thread.run_sync(reader.join, 10)
        (tmp_path / f"{name}.stderr").write_text("".join(lines))


@asynccontextmanager
async def serve_in_thread(app: Any) -> AsyncIterator[str]:
    """An ASGI app (the production one, ``build_app``) on uvicorn in a thread of this process, listening on
    127.0.0.1 (a free port, bound as ``serve`` binds); yields ``http://127.0.0.1:PORT``; stopped on exit."""
    import uvicorn

    from server.http import bind

    started = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            started.set()

    sock = bind("127.0.0.1", 0)
    server = Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert await anyio.to_thread.run_sync(started.wait, 60), "the server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(thread.join, 20)
        sock.close()


@asynccontextmanager
async def connect_http(server: HttpServer, transport: str, rec: Recorder | None = None, *, token: str | None = None,
                       headers: dict[str, str] | None = None, elicit: bool = False, sample: bool = False) -> AsyncIterator[Client]:
    """The SDK's Client over ``transport`` (one of TRANSPORTS), with a bearer token if given."""
    rec = rec or Recorder()
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    callbacks: dict[str, Any] = dict(message_handler=rec.on_message, logging_callback=rec.on_log,
                                     elicitation_callback=rec.on_elicit if elicit else None,
                                     sampling_callback=rec.on_sample if sample else None)
    if transport == "sse":
        async with Client(sse_client(server.sse_url, headers=headers), mode="legacy", **callbacks) as client:
            yield client
        return
    mode = {"http-2025": "legacy", "http-2026": "auto"}[transport]
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(server.url, http_client=http), mode=mode, **callbacks) as client:
            expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
            assert client.session.protocol_version == expected, client.session.protocol_version
            yield client


async def get(url: str, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.get(url, headers=headers)


async def post(url: str, body: Any, **headers: str) -> httpx2.Response:
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, content=json.dumps(body), headers={**base, **headers})


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
