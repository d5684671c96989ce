"""Drivers that send the fuzz corpus (fuzz_corpus.py) to a real swarm-mcp server - over stdio, pipelined, and over
HTTP (streamable HTTP in either era, or legacy SSE) - and check that every message owed an answer got exactly one.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.fuzz_corpus import Case, owed, rpc

# ---- checking ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What came back for a corpus."""

    sent: int = 0
    owed: int = 0
    answers: int = 0
    problems: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def problem(self, text: str) -> None:
        if len(self.problems) < 30:
            self.problems.append(text)


def check_answers(cases: list[Case], answers: list[dict[str, Any]], tally: Tally) -> None:
    """Every id owed an answer got exactly one (with an allowed code), the null answers add up, nothing else came."""
    tally.sent += len(cases)
    tally.owed += owed(cases)
    tally.answers += len(answers)
    tally.kinds.update(c.kind for c in cases)
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for answer in answers:
        by_id.setdefault(_key(answer.get("id")), []).append(answer)
    nulls_owed = 0
    for case in cases:
        for rid in case.ids:
            got = by_id.pop(_key(rid), [])
            if len(got) != 1:
                tally.problem(f"{case.kind}: {len(got)} answers for id {rid!r}: {case.payload[:120]!r}")
            elif case.codes is not None and got[0].get("error", {}).get("code") not in case.codes:
                tally.problem(f"{case.kind}: id {rid!r} answered {json.dumps(got[0])[:200]}, expected codes {sorted(case.codes)}")
        for rid in case.either:
            got = by_id.pop(_key(rid), [])
            if len(got) > 1:
                tally.problem(f"{case.kind}: {len(got)} answers for id {rid!r}")
            nulls_owed += 1 - len(got)
        nulls_owed += case.nulls
    nulls = by_id.pop(_key(None), [])
    if len(nulls) != nulls_owed:
        tally.problem(f"{len(nulls)} answers with id null, {nulls_owed} owed")
    for key, got in by_id.items():
        tally.problem(f"{len(got)} unexpected answers with id {key!r}: {json.dumps(got[0])[:200]}")


def _key(rid: Any) -> str:
    return json.dumps(rid)


def is_answer(message: Any) -> bool:
    return isinstance(message, dict) and "id" in message and ("result" in message or "error" in message) and "method" not in message


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# ---- stdio ------------------------------------------------------------------------------------------


class StdioPeer:
    """A ``serve`` subprocess spoken to line by line: a thread writes, a thread reads; answers are collected."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.messages: list[Any] = []
        self.unparsed: list[bytes] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            with self.changed:
                if message is None:
                    self.unparsed.append(line)
                else:
                    self.messages.append(message)
                self.changed.notify_all()

    def write(self, payloads: list[bytes]) -> threading.Thread:
        """Write the payloads, one a line, from a thread (the server's answers are read meanwhile)."""
        def run() -> None:
            assert self.proc.stdin is not None
            for payload in payloads:
                self.proc.stdin.write(payload + b"\n")
            self.proc.stdin.flush()

        writer = threading.Thread(target=run, daemon=True)
        writer.start()
        return writer

    def answers(self) -> list[dict[str, Any]]:
        with self.changed:
            return [m for m in self.messages if is_answer(m)]

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate([m for m in self.messages if is_answer(m)]):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.changed.wait(min(left, 1.0))
            return True

    def call(self, message: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Send one request and wait for its answer."""
        self.write([rpc(message)]).join(timeout)
        key = _key(message["id"])
        assert self.wait_for(lambda got: any(_key(a["id"]) == key for a in got), timeout), f"no answer to {message}"
        return next(a for a in self.answers() if _key(a["id"]) == key)

    def clear(self) -> None:
        with self.changed:
            self.messages.clear()


def run_stdio(peer: StdioPeer, cases: list[Case], tally: Tally, timeout: float) -> float:
    """Send ``cases`` pipelined, wait (bounded) for what they are owed, then for a sentinel ping; check. Returns seconds."""
    peer.clear()
    started = time.monotonic()
    writer = peer.write([c.payload for c in cases])
    need = owed(cases)
    peer.wait_for(lambda got: len(got) >= need, timeout)
    writer.join(5)
    elapsed = time.monotonic() - started
    peer.call({"jsonrpc": "2.0", "id": "sentinel", "method": "ping"}, timeout=30)  # answered in either era (2026: -32601)
    answers = [a for a in peer.answers() if a.get("id") != "sentinel"]
    check_answers(cases, answers, tally)
    if peer.unparsed:
        tally.problem(f"{len(peer.unparsed)} lines on stdout that are not JSON, e.g. {peer.unparsed[0][:120]!r}")
    return elapsed


# ---- HTTP -------------------------------------------------------------------------------------------

INITIALIZE = {"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def answers_in(response: Any) -> list[dict[str, Any]]:
    """The JSON-RPC answers in an HTTP response: a JSON body (an object, or an array for a batch) or SSE events."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        if not response.content.strip():
            return []  # 202 Accepted
        body = json.loads(response.content)
        return [a for a in (body if isinstance(body, list) else [body]) if is_answer(a)]
    if kind.startswith("text/event-stream"):
        return [m for m in (json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip())
                if is_answer(m)]
    return []


def routing_headers(case: Case) -> dict[str, str]:
    """2026-07-28 routing headers (Mcp-Method, Mcp-Name) as a client would send them, where they can be sent."""
    headers = {"mcp-protocol-version": "2026-07-28"}
    if case.method is not None and case.method.isascii():
        headers["mcp-method"] = case.method
    if case.name and case.name.isascii():
        headers["mcp-name"] = case.name
    return headers


class HttpPeer:
    """One channel of a `serve --transport http` server: 'http-2025' (a session), 'http-2026' (stateless) or 'sse'."""

    def __init__(self, http: Any, base: str, channel: str) -> None:
        self.http, self.base, self.channel = http, base, channel
        self.headers: dict[str, str] = {}
        self.endpoint = f"{base}/mcp"
        self.stream: list[dict[str, Any]] = []
        self.arrived: Any = None

    async def open(self, tg: Any) -> None:
        import anyio

        if self.channel == "http-2025":
            response = await self.http.post(self.endpoint, content=rpc(INITIALIZE), headers=JSON_HEADERS)
            assert response.status_code == 200, response.text
            self.headers = {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            await self.http.post(self.endpoint, content=rpc(INITIALIZED), headers={**JSON_HEADERS, **self.headers})
        elif self.channel == "sse":
            ready = anyio.Event()
            self.arrived = anyio.Event()
            tg.start_soon(self._listen, ready)
            with anyio.fail_after(30):
                await ready.wait()
            await self.post_one(rpc(INITIALIZE), {})
            with anyio.fail_after(30):
                while not any(a.get("id") == "init" for a in self.stream):
                    await self._next_arrival()
            await self.post_one(rpc(INITIALIZED), {})

    async def _next_arrival(self) -> None:
        import anyio

        self.arrived = anyio.Event()
        await self.arrived.wait()

    async def _listen(self, ready: Any) -> None:
        async with self.http.stream("GET", f"{self.base}/sse", headers={"Accept": "text/event-stream"}, timeout=None) as events:
            async for line in events.aiter_lines():
                if line.startswith("data:") and not ready.is_set():
                    self.endpoint = self.base + line[5:].strip()
                    ready.set()
                elif line.startswith("data:"):
                    message = json.loads(line[5:])
                    if is_answer(message):
                        self.stream.append(message)
                        self.arrived.set()

    async def post_one(self, payload: bytes, headers: dict[str, str]) -> Any:
        return await self.http.post(self.endpoint, content=payload, headers={**JSON_HEADERS, **self.headers, **headers})

    async def send(self, case: Case, tally: Tally, collected: list[dict[str, Any]]) -> None:
        """POST one case; what came back in the response (minus the id-null error every HTTP POST of a notification gets)."""
        response = await self.post_one(case.payload, routing_headers(case) if self.channel == "http-2026" else {})
        if response.status_code >= 500:
            tally.problem(f"{case.kind}: HTTP {response.status_code} {response.text[:200]!r}")
        got = answers_in(response)
        if response.status_code >= 400 and not got:
            tally.problem(f"{case.kind}: HTTP {response.status_code} without a JSON-RPC error body: {response.text[:200]!r}")
        if not owed([case]):
            got = [a for a in got if a.get("id") is not None]
        collected.extend(got)


async def run_http(peer: HttpPeer, cases: list[Case], tally: Tally, *, concurrency: int = 8, timeout: float = 60) -> float:
    """POST every case (``concurrency`` at a time) and check the answers (SSE: on the stream too). Returns seconds."""
    import anyio

    collected: list[dict[str, Any]] = []
    limit = anyio.Semaphore(concurrency)
    before = len(peer.stream)
    started = time.monotonic()

    async def one(case: Case) -> None:
        async with limit:
            await peer.send(case, tally, collected)

    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            for case in cases:
                tg.start_soon(one, case)
        if peer.channel == "sse":  # answers to what the POSTs accepted arrive on the stream
            need = owed(cases)
            while len(collected) + len(peer.stream) - before < need:
                await peer._next_arrival()
            await peer.post_one(rpc({"jsonrpc": "2.0", "id": "sentinel", "method": "ping"}), {})
            while not any(a.get("id") == "sentinel" for a in peer.stream[before:]):
                await peer._next_arrival()
            collected.extend(a for a in peer.stream[before:] if a.get("id") != "sentinel")
    elapsed = time.monotonic() - started
    check_answers(cases, collected, tally)
    return elapsed
