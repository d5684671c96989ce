"""Malformed JSON-RPC for a real swarm-mcp server: a deterministic corpus, and drivers that send it over stdio and
over HTTP and check that every message owed an answer gets exactly one (used by test_fuzz.py and bench_fuzz.py).

A ``Case`` is one message as bytes (no newline) and what it is owed: one answer for each id in ``ids``; ``nulls``
answers with ``id: null`` (a parse error, an unreadable id); for each id in ``either`` one answer with that id or
with ``id: null`` (invalid UTF-8: the stdio transport reads it as U+FFFD, HTTP refuses it); nothing for notifications
and responses. ``codes``, when set, are the error codes allowed in those answers (None: any answer, a result too).
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

PARSE, INVALID_REQUEST, NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}
TOOLS = ["copilot", "continue_copilot", "session_status", "cancel_session", "resolve_approval", "invoke_planning_phase",
         "invoke_control_phase", "invoke_one_shot_phase", "invoke_hitl_checkpoint_phase", "invoke_idea_generation_phase"]


@dataclass
class Case:
    kind: str
    payload: bytes
    ids: tuple[Any, ...] = ()
    nulls: int = 0
    either: tuple[Any, ...] = ()
    codes: frozenset[int] | None = None
    method: str | None = None
    """For the 2026-07-28 HTTP routing headers."""
    name: str | None = None


def rpc(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Corpus:
    """Malformed (and a few well-formed) messages, reproducible from ``seed``; ``era`` is '2025' or '2026' (the
    2026-07-28 envelope goes into the params of requests the SDK would serve)."""

    def __init__(self, seed: int, era: str, id_prefix: str = "") -> None:
        self.rng, self.era, self.prefix, self.n = random.Random(seed), era, id_prefix, 0

    def cases(self, count: int, *, big: int = 200_000) -> list[Case]:
        self.big = big
        kinds = [(self.garbage, 8), (self.truncated, 8), (self.control_char, 3), (self.bad_utf8, 3), (self.params_not_object, 10),
                 (self.bad_id, 8), (self.bad_method, 6), (self.bad_jsonrpc, 5), (self.unknown_method, 6), (self.deep, 6),
                 (self.too_deep, 1), (self.surrogate, 8), (self.oversized, 1), (self.tool_arguments, 8), (self.prompt, 4),
                 (self.batch, 4), (self.notification, 4), (self.response, 3), (self.odd_id, 3), (self.nan, 2), (self.ping, 2)]
        makers = [m for m, _ in kinds]
        weights = [w for _, w in kinds]
        return [self.rng.choices(makers, weights)[0]() for _ in range(count)]

    # ---- building blocks ----

    def next_id(self) -> int | str:
        self.n += 1
        return self.n if self.rng.random() < 0.5 else f"{self.prefix}f{self.n}"

    def params(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        params = dict(extra or {})
        if self.era == "2026":
            params["_meta"] = ENVELOPE
        return params

    def request(self, method: str, params: Any = None, rid: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id() if rid is None else rid, "method": method}
        if params is not None:
            message["params"] = params
        return message

    def word(self, n: int = 8) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))

    # ---- kinds ----

    def garbage(self) -> Case:
        tail = "".join(self.rng.choice("abc{}[]:,\"'0123456789 truefalsenul\\\t") for _ in range(self.rng.randint(0, 60)))
        return Case("invalid JSON", (self.rng.choice("}]):'<x#") + tail).encode(), nulls=1, codes=frozenset({PARSE}))

    def truncated(self) -> Case:
        full = rpc(self.request(self.rng.choice(["ping", "tools/list", "tools/call"]), self.params({"name": "copilot", "arguments": {"task": "x"}})))
        return Case("truncated JSON", full[: self.rng.randint(1, len(full) - 1)], nulls=1, codes=frozenset({PARSE}))

    def control_char(self) -> Case:
        message = self.request("ping", self.params({"x": "PLACE"}))
        raw = rpc(message).replace(b"PLACE", b"a" + self.rng.choice([b"\t", b"\x01", b"\x1f", b"\x00"]) + b"b")
        return Case("control character in a string", raw, nulls=1, codes=frozenset({PARSE}))

    def bad_utf8(self) -> Case:
        message = self.request("ping", self.params({"x": "PLACE"}))
        raw = rpc(message).replace(b"PLACE", self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
        return Case("invalid UTF-8", raw, either=(message["id"],), method="ping")

    def params_not_object(self) -> Case:
        value = self.rng.choice([[1, 2], [], "params", 7, 3.5, True, False, [{"name": "copilot"}]])
        message = self.request(self.rng.choice(["ping", "tools/list", "tools/call", "prompts/get", "resources/read"]), value)
        return Case("params not an object", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_REQUEST}))

    def bad_id(self) -> Case:
        rid = self.rng.choice([1.5, 2.0, True, False, None, {"a": 1}, [1], "\ud800x", -0.5, 1e300])
        raw = rpc({"jsonrpc": "2.0", "id": rid, "method": "ping", **({"params": self.params()} if self.era == "2026" else {})})
        return Case("id not a string or an integer", raw, nulls=1, codes=frozenset({INVALID_REQUEST}))

    def bad_method(self) -> Case:
        message = self.request("ping", self.params())
        choice = self.rng.choice([5, None, ["ping"], {"m": 1}, True, "missing"])
        if choice == "missing":
            del message["method"]
        else:
            message["method"] = choice
        return Case("method not a string", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_REQUEST}))

    def bad_jsonrpc(self) -> Case:
        message = self.request("ping", self.params())
        choice = self.rng.choice(["1.0", 2.0, 2, None, "missing", "2.0 "])
        if choice == "missing":
            del message["jsonrpc"]
        else:
            message["jsonrpc"] = choice
        return Case("jsonrpc not \"2.0\"", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_REQUEST}))

    def unknown_method(self) -> Case:
        method = self.rng.choice([f"fuzz/{self.word()}", self.word(3), "", "tools/", "rpc.discover", "prompts/list/x"])
        message = self.request(method, self.params({"a": self.word()}))
        return Case("unknown method", rpc(message), ids=(message["id"],), codes=frozenset({NOT_FOUND, INVALID_PARAMS}), method=method)

    def nested(self, depth: int) -> Any:
        value: Any = self.word(3)
        for _ in range(depth):
            value = [value] if self.rng.random() < 0.5 else {"k": value}
        return value

    def deep(self) -> Case:
        if self.rng.random() < 0.3:  # deep, within what the SDK parses: served normally
            message = self.request("ping", self.params({"x": self.nested(self.rng.randint(100, 190))}))
            return Case("deep nesting (served)", rpc(message), ids=(message["id"],), method="ping")
        method = self.rng.choice(["ping", "tools/call", "tools/list"])
        message = self.request(method, self.params({"x": self.nested(self.rng.randint(200, 450))}))
        return Case("nesting 200+ deep", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_PARAMS}), method=method)

    def too_deep(self) -> Case:
        depth = self.rng.randint(1100, 3000)
        raw = b'{"jsonrpc":"2.0","id":' + json.dumps(self.next_id()).encode() + b',"method":"ping","params":{"x":' + b"[" * depth + b"]" * depth + b"}}"
        return Case("nesting 1000+ deep", raw, nulls=1, codes=frozenset({PARSE}))

    def surrogate(self) -> Case:
        where = self.rng.choice(["value", "key", "method", "id", "pair"])
        if where == "id":
            raw = rpc({"jsonrpc": "2.0", "id": "\udc00" + self.word(), "method": "ping"})
            return Case("lone surrogate in the id", raw, nulls=1, codes=frozenset({INVALID_REQUEST}))
        if where == "method":
            message = self.request("\ud800" + self.word(), self.params())
            return Case("lone surrogate in the method", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_REQUEST}))
        if where == "pair":  # a valid surrogate pair (an emoji): served normally
            message = self.request("tools/call", self.params({"name": "session_status", "arguments": {"session_id": "\ud83d\ude00"}}))
            return Case("surrogate pair", rpc(message), ids=(message["id"],), method="tools/call", name="session_status")
        lone = self.rng.choice(["\ud800", "\udfff", "a\udbffb", "\ude00\ud800"])
        arguments = {lone: "x"} if where == "key" else {"task": lone, "max_rounds": 3}
        message = self.request("tools/call", self.params({"name": "copilot", "arguments": arguments}))
        return Case("lone surrogate in params", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_PARAMS}),
                    method="tools/call", name="copilot")

    def oversized(self) -> Case:
        size = self.rng.randint(self.big // 4, self.big)
        if self.rng.random() < 0.5:
            message = self.request("tools/call", self.params({"name": "copilot", "arguments": {"task": "x" * size, "max_rounds": "many"}}))
            return Case("oversized string (tool)", rpc(message), ids=(message["id"],), method="tools/call", name="copilot")
        message = self.request(f"fuzz/{self.word()}", self.params({"blob": "y" * size}))
        return Case("oversized string (unknown method)", rpc(message), ids=(message["id"],), codes=frozenset({NOT_FOUND, INVALID_PARAMS}),
                    method=message["method"])

    def tool_arguments(self) -> Case:
        tool = self.rng.choice(TOOLS + ["no_such_tool"])
        arguments = self.rng.choice([
            {"task": 5}, {"task": ["a"], "max_rounds": 2}, {"session_id": 7}, {"session_id": None}, {"max_rounds": "20"},
            {"task": "t", "max_rounds": -4}, {"task": "t", "wait_seconds": "soon"}, {"task": "t", "unknown_arg": 1},
            "not-an-object", [1, 2], 12, {"session_id": "s", "decision": 5, "approval_id": []}, {"task": {"nested": True}},
        ])
        if tool == "copilot" and arguments == {"task": "t", "unknown_arg": 1}:
            arguments = {"task": 1}
        message = self.request("tools/call", self.params({"name": tool, "arguments": arguments}))
        return Case("wrong argument types", rpc(message), ids=(message["id"],), method="tools/call", name=tool)

    def prompt(self) -> Case:
        name, arguments = self.rng.choice([("start_swarm", None), ("start_swarm", {}), ("start_swarm", {"task": "t", "extra": "x"}),
                                          ("review_session", {"session_id": "no-such-session"}), ("nope", {}),
                                          ("review_session", {})])
        extra: dict[str, Any] = {"name": name}
        if arguments is not None:
            extra["arguments"] = arguments
        message = self.request("prompts/get", self.params(extra))
        return Case("prompts/get errors", rpc(message), ids=(message["id"],), codes=frozenset({INVALID_PARAMS}), method="prompts/get", name=name)

    def batch(self) -> Case:
        items: list[Any] = []
        ids: list[Any] = []
        nulls = 0
        for _ in range(self.rng.randint(0, 4)):
            pick = self.rng.random()
            if pick < 0.5:
                item = self.request("ping", self.params())
                ids.append(item["id"])
            elif pick < 0.7:
                item = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            else:
                item = self.rng.choice([1, "x", None, []])
                nulls += 1
            items.append(item)
        if not items:
            nulls = 1
        return Case("batch", rpc(items), ids=tuple(ids), nulls=nulls, codes=frozenset({INVALID_REQUEST}))

    def notification(self) -> Case:
        message = self.rng.choice([
            {"jsonrpc": "2.0", "method": "notifications/initialized", "params": 5},
            {"jsonrpc": "2.0", "method": f"notifications/{self.word()}"},
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": f"never-{self.word()}"}},
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": [1]},
            {"jsonrpc": "1.0", "method": "notifications/x"},
        ])
        return Case("notification (no answer)", rpc(message))

    def response(self) -> Case:
        rid = f"{self.prefix}r{self.word()}"
        message = self.rng.choice([{"jsonrpc": "2.0", "id": rid, "result": {}}, {"jsonrpc": "2.0", "id": rid, "result": 5},
                                   {"jsonrpc": "2.0", "id": rid, "error": {"code": "x"}}, {"jsonrpc": "2.0", "id": rid, "error": {"code": 1, "message": "m"}}])
        return Case("response (no answer)", rpc(message))

    def odd_id(self) -> Case:
        self.n += 1
        rid = self.rng.choice([10**30 + self.n, -self.n, f"{self.prefix}😀{self.n}", f"{self.prefix} {self.n} ", f"{self.prefix}\\{self.n}\""])
        message = self.request("tools/list", self.params(), rid=rid)
        return Case("unusual valid id", rpc(message), ids=(rid,), method="tools/list")

    def nan(self) -> Case:
        message = self.request("ping", self.params({"x": "PLACE"}))
        raw = rpc(message).replace(b'"PLACE"', self.rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
        return Case("NaN / Infinity", raw, ids=(message["id"],), method="ping")

    def ping(self) -> Case:
        message = self.request("ping", self.params())
        return Case("valid ping", rpc(message), ids=(message["id"],), method="ping")


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


def owed(cases: list[Case]) -> int:
    return sum(len(c.ids) + c.nulls + len(c.either) for c in cases)


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


def chunks(items: list[Case], size: int) -> Iterator[list[Case]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
