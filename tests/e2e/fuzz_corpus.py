"""A deterministic corpus of malformed (and a few well-formed) JSON-RPC messages for a swarm-mcp server (the fuzz
test and its benchmark: tests/e2e/test_fuzz.py, tests/bench/bench_fuzz.py).

A ``Case`` is one message as bytes (no newline) and what it is owed: one answer for each id in ``ids``; ``nulls``
answers with ``id: null`` (a parse error, an unreadable id); for each id in ``either`` one answer with that id or
with ``id: null`` (invalid UTF-8: the stdio transport reads it as U+FFFD, HTTP refuses it); nothing for notifications
and responses. ``codes``, when set, are the error codes allowed in those answers (None: any answer, a result too).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

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


def owed(cases: list[Case]) -> int:
    """How many answers the cases are owed."""
    return sum(len(c.ids) + c.nulls + len(c.either) for c in cases)
