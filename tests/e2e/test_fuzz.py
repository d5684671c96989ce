"""Malformed JSON-RPC against real `swarm-mcp serve` subprocesses: every message owed an answer gets exactly one.

Over stdio (one subprocess per protocol era: the first request fixes a stdio connection's era) and over HTTP (one
`serve --transport http` subprocess: streamable HTTP in both eras, and legacy SSE), 2,000+ messages each from a
fixed seed (tests/e2e/fuzz_corpus.py): invalid and truncated JSON, non-object params, ids / methods / jsonrpc of
the wrong type, unknown methods, nesting 200+ and 1000+ deep, lone surrogates, oversized strings, wrong argument
types for real tools, prompts/get errors, batches, notifications and responses (owed nothing). Afterwards the server
is alive and answers tools/list, and its RSS grew by less than RSS_GROWTH_KIB. The last tests pin each defect of
issue 9 item 3 on a small scale (each failed before the JSON-RPC guard, server/jsonrpc.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.fuzz_corpus import ENVELOPE, Corpus, rpc
from tests.e2e.fuzz_harness import HttpPeer, StdioPeer, Tally, answers_in, run_http, run_stdio, vm_rss_kib
from tests.e2e.http_harness import REPO, http_server, serve_env

pytestmark = pytest.mark.anyio

COUNT = 2_000
"""Malformed messages per stdio era and per streamable-HTTP era (SSE gets a quarter)."""
WARM_UP = 300
"""Messages sent (and checked) before the first RSS reading: lazy imports and caches fill first."""
RSS_GROWTH_KIB = 16 * 1024
"""How much the server's RSS may grow over a run (measured: 1-3 MiB; a leak of 8 KiB per message would show)."""
SEED = 20260728


def stdio_server(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], cwd=REPO, env=serve_env(tmp_path, []),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=(tmp_path / "server.stderr").open("wb"))


def open_stdio(peer: StdioPeer, era: str) -> None:
    """2025: initialize; 2026: a first request with the envelope (it fixes the connection's era)."""
    if era == "2025":
        peer.call({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}})
        peer.write([rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})]).join(10)
    tools_list(peer, era)


def tools_list(peer: StdioPeer, era: str) -> None:
    params = {"_meta": ENVELOPE} if era == "2026" else {}
    answer = peer.call({"jsonrpc": "2.0", "id": f"tools-{len(peer.messages)}", "method": "tools/list", "params": params})
    assert len(answer["result"]["tools"]) == 13, answer


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("era", ["2025", "2026"])
def test_stdio_answers_every_malformed_message(tmp_path: Path, era: str) -> None:
    proc = stdio_server(tmp_path)
    peer = StdioPeer(proc)
    try:
        open_stdio(peer, era)
        corpus = Corpus(SEED, era)
        warm, tally = Tally(), Tally()
        run_stdio(peer, corpus.cases(WARM_UP), warm, timeout=60)
        assert not warm.problems, "\n".join(warm.problems)
        before = vm_rss_kib(proc.pid)
        seconds = run_stdio(peer, corpus.cases(COUNT), tally, timeout=90)
        after = vm_rss_kib(proc.pid)
        assert proc.poll() is None, "the server died"
        tools_list(peer, era)
    finally:
        stop(proc)
    print(f"\nstdio {era}: {tally.sent} messages, {tally.answers}/{tally.owed} answers in {seconds:.1f} s; "
          f"RSS {before // 1024} -> {after // 1024} MiB; kinds: {dict(tally.kinds)}")
    assert not tally.problems, "\n".join(tally.problems)
    assert tally.sent >= COUNT and tally.answers == tally.owed
    assert after - before < RSS_GROWTH_KIB, f"RSS grew {(after - before) // 1024} MiB"
    assert proc.returncode == 0, (tmp_path / "server.stderr").read_text()[-2000:]


async def test_http_answers_every_malformed_message(tmp_path: Path) -> None:
    counts = {"http-2025": COUNT, "http-2026": COUNT, "sse": COUNT // 4}
    tallies: dict[str, Tally] = {}
    async with http_server(tmp_path, []) as server:
        async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
            peers = {channel: HttpPeer(http, server.base, channel) for channel in counts}
            for channel, peer in peers.items():
                await peer.open(tg)
                warm = Tally()
                await run_http(peer, Corpus(SEED, channel[-4:] if channel != "sse" else "2025", f"{channel}-w").cases(WARM_UP // 3), warm)
                assert not warm.problems, "\n".join(warm.problems)
            before = vm_rss_kib(server.proc.pid)
            seconds = {}
            for channel, peer in peers.items():
                tallies[channel] = Tally()
                corpus = Corpus(SEED + 1, "2026" if channel == "http-2026" else "2025", f"{channel}-")
                seconds[channel] = await run_http(peer, corpus.cases(counts[channel]), tallies[channel], timeout=120)
            after = vm_rss_kib(server.proc.pid)
            assert server.proc.poll() is None, "the server died"
            response = await peers["http-2025"].post_one(rpc({"jsonrpc": "2.0", "id": "last", "method": "tools/list"}), {})
            assert '"name":"copilot"' in response.text, response.text[:500]
            tg.cancel_scope.cancel()
    for channel, tally in tallies.items():
        print(f"\n{channel}: {tally.sent} messages, {tally.answers}/{tally.owed} answers in {seconds[channel]:.1f} s")
    print(f"RSS {before // 1024} -> {after // 1024} MiB")
    problems = [f"{channel}: {p}" for channel, tally in tallies.items() for p in tally.problems]
    assert not problems, "\n".join(problems)
    assert sum(t.sent for t in tallies.values()) >= 2 * COUNT
    assert all(t.answers == t.owed for t in tallies.values())
    assert after - before < RSS_GROWTH_KIB, f"RSS grew {(after - before) // 1024} MiB"


# ---- each defect of issue 9 item 3, small ----------------------------------------------------------------

DEFECTS: list[tuple[str, bytes, Any, int]] = [
    ("invalid JSON", b'{"jsonrpc":"2.0","id":1,"method":"ping"', None, -32700),
    ("garbage", b"hello", None, -32700),
    ("params an array", b'{"jsonrpc":"2.0","id":2,"method":"ping","params":[1]}', 2, -32600),
    ("params a string", b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":"x"}', 3, -32600),
    ("params a number", b'{"jsonrpc":"2.0","id":"n","method":"ping","params":4}', "n", -32600),
    ("jsonrpc 1.0", b'{"jsonrpc":"1.0","id":5,"method":"ping"}', 5, -32600),
    ("method missing", b'{"jsonrpc":"2.0","id":6}', 6, -32600),
    ("id a float", b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', None, -32600),
    ("id null", b'{"jsonrpc":"2.0","id":null,"method":"ping"}', None, -32600),
    ("nesting 250 deep", b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"x":' + b"[" * 250 + b"]" * 250 + b"}}", 7, -32602),
    ("lone surrogate in params", b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"copilot","arguments":{"task":"\\ud800"}}}',
     8, -32602),
    ("lone surrogate in the method", b'{"jsonrpc":"2.0","id":9,"method":"\\udfff"}', 9, -32600),
    ("a batch", b'[{"jsonrpc":"2.0","id":10,"method":"ping"}]', 10, -32600),
    ("prompts/get without its argument", b'{"jsonrpc":"2.0","id":11,"method":"prompts/get","params":{"name":"start_swarm"}}', 11, -32602),
    ("prompts/get with an unknown argument",
     b'{"jsonrpc":"2.0","id":12,"method":"prompts/get","params":{"name":"start_swarm","arguments":{"task":"t","x":"y"}}}', 12, -32602),
]


def test_stdio_answers_each_defect(tmp_path: Path) -> None:
    proc = stdio_server(tmp_path)
    peer = StdioPeer(proc)
    try:
        open_stdio(peer, "2025")
        peer.clear()
        peer.write([raw for _, raw, _, _ in DEFECTS]).join(10)
        assert peer.wait_for(lambda got: len(got) >= len(DEFECTS), 30), f"answered only {peer.answers()}"
        got = sorted((json.dumps(a["id"]), a["error"]["code"]) for a in peer.answers())
        assert got == sorted((json.dumps(rid), code) for _, _, rid, code in DEFECTS), got
        tools_list(peer, "2025")
    finally:
        stop(proc)


async def test_http_answers_each_defect_with_its_id(tmp_path: Path) -> None:
    """Streamable HTTP (both eras) and SSE: the right HTTP status and a JSON-RPC error body with the request's id."""
    async with http_server(tmp_path, []) as server:
        async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
            for channel in ("http-2025", "http-2026", "sse"):
                peer = HttpPeer(http, server.base, channel)
                await peer.open(tg)
                for name, raw, rid, code in DEFECTS:
                    if name.startswith("prompts/get"):
                        if channel != "http-2025":
                            continue  # SSE answers on the stream and 2026 needs the envelope: both are in the fuzz corpus
                    response = await peer.post_one(raw, {"mcp-protocol-version": "2026-07-28"} if channel == "http-2026" else {})
                    answers = answers_in(response)
                    assert [(a["id"], a["error"]["code"]) for a in answers] == [(rid, code)], (channel, name, response.status_code, response.text)
                    assert response.status_code == (200 if name.startswith("prompts/get") else 400), (channel, name, response.status_code)
            tg.cancel_scope.cancel()
