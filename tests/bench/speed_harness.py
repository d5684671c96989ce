"""Shared pieces of the issue-12 benchmarks (bench_resume, bench_round_cpu, bench_concurrency, bench_cold_start,
bench_tool_list, bench_paused_rss): the path users take, measured from outside the server.

- ``endpoint()``: a fake OpenAI-compatible ``/v1/chat/completions`` endpoint in its own subprocess (so that its CPU
  and GIL are neither the server's nor the bench client's), answering every request at once or after ``delay``
  seconds with a rule-driven reply (a variant of tests/fakes.py's FakeProvider, which answers planned responses):
  ``cycle``: always a hand-off (``transfer_to_researcher`` if offered, else ``transfer_to_controller``, else the
  first ``transfer_to_*``): copilot_control -> researcher -> controller -> researcher ... so a session plays every
  round it is given and pauses at ``max_rounds``; ``answer``: copilot_control hands off, every other agent answers
  text ("done"): a ``copilot`` call completes in 2 rounds. With ``record`` it appends one JSON line per request
  (``t``: its ``time.monotonic()`` on arrival, a clock shared by the processes of this machine; ``body`` too for the
  first ``bodies`` requests).
- ``swarm_server()``: ``swarm-mcp serve --transport http`` (tests/e2e/http_harness.py's ``serve_process``) with the
  user's defaults: durable sessions on (``SWARM_MCP_DURABLE=1``), ``SWARM_MCP_MODEL=openai:<model>``,
  ``OPENAI_BASE_URL`` at the endpoint and any ``OPENAI_API_KEY``: the real OpenAI-compatible client over HTTP.
- ``EventWatcher``: a thread that reads the server's SQLite store (read-only, WAL) every millisecond and notes when
  each session's round first appears in its ``events`` table: the moment that round was committed (+- 1 ms).
- ``cpu_seconds`` / ``rss_bytes``: a process's CPU time (user + system, all threads, from /proc) and resident set.

Run as ``python -m tests.bench.speed_harness endpoint [--delay S] [--mode cycle|answer] [--record FILE] [--bodies N]``
to serve the endpoint alone (prints ``endpoint http://127.0.0.1:PORT/v1`` on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

MODEL = "gpt-4o-mini"
"""The model name the server asks the fake endpoint for (one autogen knows: no model_info fallback)."""
API_KEY = "sk-bench-not-a-real-key"
READY = re.compile(r"endpoint (http://127\.0\.0\.1:\d+/v1)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---- the fake endpoint (a subprocess) ----------------------------------------------------------------------------------


def reply_for(body: dict[str, Any], mode: str, n: int) -> dict[str, Any]:
    """The chat.completion answering ``body`` under ``mode`` (see the module docstring)."""
    tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    transfers = [name for name in tools if name.startswith("transfer_to_")]
    router = "transfer_to_researcher" in transfers and "transfer_to_planner" in transfers  # copilot_control's hand-offs
    target = None
    if mode == "cycle" or router:
        for name in ("transfer_to_researcher", "transfer_to_controller"):
            if name in transfers:
                target = name
                break
        else:
            target = transfers[0] if transfers else None
    if target is not None:
        message: dict[str, Any] = {"content": None, "tool_calls": [
            {"id": f"call_{n}", "type": "function", "function": {"name": target, "arguments": "{}"}}]}
        finish = "tool_calls"
    else:
        message, finish = {"content": "done"}, "stop"
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1, "model": body.get("model", MODEL),
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def serve_endpoint(delay: float, mode: str, record: str | None, bodies: int) -> None:
    """Serve the fake endpoint on 127.0.0.1 (a free port) until SIGTERM/SIGINT."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    out = open(record, "a", buffering=1) if record else None
    count = [0]

    async def chat(request: Request) -> JSONResponse:
        arrived = time.monotonic()
        body = await request.json()
        count[0] += 1
        if out is not None:
            out.write(json.dumps({"t": arrived, "n": count[0], **({"body": body} if count[0] <= bodies else {})}) + "\n")
        if delay > 0:
            await asyncio.sleep(delay)
        return JSONResponse(reply_for(body, mode, count[0]))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            log(f"endpoint http://127.0.0.1:{sock.getsockname()[1]}/v1")

    server = Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, backlog=1024))
    server.run(sockets=[sock])


@dataclass
class Endpoint:
    url: str
    """What OPENAI_BASE_URL takes: ``http://127.0.0.1:PORT/v1``."""
    proc: subprocess.Popen[bytes]
    record: Path | None

    def requests(self) -> list[dict[str, Any]]:
        """The recorded requests so far (``t``, ``n`` and, with ``bodies``, ``body``)."""
        if self.record is None or not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]


@asynccontextmanager
async def endpoint(tmp: Path, *, delay: float = 0.0, mode: str = "cycle", record: bool = False, bodies: int = 0,
                   name: str = "endpoint") -> AsyncIterator[Endpoint]:
    """The fake endpoint as a subprocess, ready; stopped (SIGTERM, then SIGKILL) on exit."""
    path = tmp / f"{name}.jsonl" if record else None
    args = [sys.executable, "-m", "tests.bench.speed_harness", "endpoint", "--delay", str(delay), "--mode", mode]
    if path is not None:
        args += ["--record", str(path), "--bodies", str(bodies)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    found: list[str] = []
    seen = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            match = READY.search(line)
            if match and not found:
                found.append(match.group(1))
                seen.set()
            elif not match:
                sys.stderr.write(f"[{name}] {line}")
        seen.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        await asyncio.to_thread(seen.wait, 30)
        if not found:
            raise RuntimeError(f"the fake endpoint did not start (exit code {proc.poll()})")
        yield Endpoint(found[0], proc, path)
    finally:
        stop(proc)
        reader.join(5)


def stop(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# ---- the swarm-mcp server -------------------------------------------------------------------------------------------------


def swarm_env(home: Path, base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a swarm-mcp server on the user's defaults (durable on) and the OpenAI-compatible client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    env.update(SWARM_MCP_HOME=str(home), SWARM_MCP_DURABLE="1", SWARM_MCP_MODEL=f"openai:{MODEL}", OPENAI_BASE_URL=base_url,
               OPENAI_API_KEY=API_KEY, PYTHONPATH=str(REPO))
    env.update(extra)
    return env


@asynccontextmanager
async def swarm_server(tmp: Path, base_url: str, name: str = "server", **extra: str) -> AsyncIterator[Any]:
    """``serve --transport http`` on 127.0.0.1 (tests/e2e/http_harness.py), its home ``<tmp>/<name>``; stopped on exit.
    Yields the harness's HttpServer (``url``, ``proc``); its stderr is kept in ``<tmp>/<name>.stderr``."""
    from tests.e2e.http_harness import serve_process

    home = tmp / name
    home.mkdir(parents=True, exist_ok=True)
    async with serve_process(tmp, swarm_env(home, base_url, **extra), name=name) as server:
        server.home = home
        yield server


def db_path(home: Path) -> Path:
    return home / "swarm.db"


# ---- observing the server -------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all its threads (dead ones too), in seconds (10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class EventWatcher:
    """Notes, every ``interval`` seconds, the ``time.monotonic()`` at which each session's rounds first appear in the
    server's store (an agent's event with ``round`` >= 1: the round's commit). Read-only; WAL readers never block the
    server's writer."""

    def __init__(self, db: Path, interval: float = 0.001) -> None:
        self.db, self.interval = db, interval
        self.rounds: dict[str, dict[int, float]] = {}
        """session id -> round -> when it was first seen."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="event-watcher")
        self.polls = 0

    def __enter__(self) -> "EventWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.db.exists():
            if time.monotonic() > deadline or self._stop.wait(0.05):
                return
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, check_same_thread=False, timeout=5)
        last = 0
        try:
            while not self._stop.is_set():
                try:
                    rows = conn.execute("SELECT rowid, session_id, body FROM events WHERE rowid > ? ORDER BY rowid", (last,)).fetchall()
                except sqlite3.OperationalError:  # the schema is not there yet
                    rows = []
                seen = time.monotonic()
                self.polls += 1
                for rowid, session_id, body in rows:
                    last = max(last, rowid)
                    event = json.loads(body)
                    if event.get("round", 0) >= 1 and event.get("agent") not in (None, "user"):
                        with self._lock:
                            self.rounds.setdefault(session_id, {}).setdefault(event["round"], seen)
                self._stop.wait(self.interval)
        finally:
            conn.close()

    def last_round(self, session_id: str) -> int:
        with self._lock:
            return max(self.rounds.get(session_id, {0: 0}))

    def seen(self, session_id: str, round_no: int) -> float | None:
        with self._lock:
            return self.rounds.get(session_id, {}).get(round_no)

    async def wait_for(self, session_id: str, round_no: int, timeout: float = 30) -> float:
        """When round ``round_no`` of the session was first seen, waiting for it at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.seen(session_id, round_no)
            if t is not None:
                return t
            if time.monotonic() > deadline:
                raise TimeoutError(f"round {round_no} of {session_id} not committed within {timeout} s")
            await asyncio.sleep(0.002)


# ---- statistics -----------------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "MEETS" if ok else "MISSES"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the fake OpenAI-compatible endpoint of the speed benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    ep = sub.add_parser("endpoint")
    ep.add_argument("--delay", type=float, default=0.0)
    ep.add_argument("--mode", choices=("cycle", "answer"), default="cycle")
    ep.add_argument("--record")
    ep.add_argument("--bodies", type=int, default=0, help="record the bodies of the first N requests")
    args = parser.parse_args(argv)
    serve_endpoint(args.delay, args.mode, args.record, args.bodies)  # uvicorn stops on SIGTERM / SIGINT


if __name__ == "__main__":
    main()
