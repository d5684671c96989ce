"""Malformed JSON-RPC at volume against real swarm-mcp servers, against valid pings answered by the same server in the
same run.

    python tests/bench/bench_fuzz.py [--count N] [--big BYTES] [--only stdio|http]

Per channel - stdio in each protocol era (one `serve` subprocess each), and streamable HTTP in each era plus legacy
SSE (one `serve --transport http` subprocess) - it sends N messages of the fuzz corpus (tests/e2e/fuzz_corpus.py,
fixed seed; oversized strings up to BYTES) pipelined over stdio / 8 POSTs at a time over HTTP, and prints: messages,
answers owed and received, problems (any message owed an answer that did not get exactly one), answers per second
against N valid pings sent the same way to the same server just before (2026-07-28 has no ping: the SDK answers it
-32601, still a full dispatch), and the server's RSS before and after the malformed run. Last, the guard's own cost
per message the SDK can parse (server.jsonrpc.judge, which runs the SDK's parse once more) against the SDK's parse.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from tests.e2e.fuzz_corpus import ENVELOPE, Case, Corpus, rpc  # noqa: E402
from tests.e2e.fuzz_harness import HttpPeer, StdioPeer, Tally, run_http, run_stdio, vm_rss_kib  # noqa: E402
from tests.e2e.http_harness import http_server, serve_env  # noqa: E402


def pings(count: int, era: str, prefix: str) -> list[Case]:
    params = {"_meta": ENVELOPE} if era == "2026" else None
    cases = []
    for n in range(count):
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": f"{prefix}p{n}", "method": "ping"}
        if params:
            message["params"] = params
        cases.append(Case("valid ping", rpc(message), ids=(message["id"],), method="ping"))
    return cases


def report(channel: str, tally: Tally, seconds: float, ping_seconds: float, count: int, rss: tuple[int, int]) -> None:
    rate, ping_rate = tally.answers / seconds, count / ping_seconds
    print(f"{channel:10} {tally.sent:>7} msgs  {tally.answers:>7}/{tally.owed:<7} answers  {len(tally.problems):>3} problems  "
          f"{rate:8.0f} answers/s vs {ping_rate:8.0f} pings/s ({rate / ping_rate:.2f}x)  "
          f"RSS {rss[0] / 1024:.0f} -> {rss[1] / 1024:.0f} MiB ({(rss[1] - rss[0]) / 1024:+.1f})")
    for problem in tally.problems[:5]:
        print("    ", problem)


def bench_stdio(era: str, count: int, big: int, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], cwd=REPO, env=serve_env(home, []),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=(home / "server.stderr").open("wb"))
    peer = StdioPeer(proc)
    try:
        if era == "2025":
            peer.call({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
            peer.write([rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})]).join(10)
        peer.call({"jsonrpc": "2.0", "id": "open", "method": "tools/list", "params": {"_meta": ENVELOPE} if era == "2026" else {}})
        run_stdio(peer, Corpus(1, era, "w").cases(500, big=big), Tally(), timeout=120)  # warm-up
        ping_seconds = run_stdio(peer, pings(count, era, "b"), Tally(), timeout=60 + count / 50)
        before = vm_rss_kib(proc.pid)
        tally = Tally()
        seconds = run_stdio(peer, Corpus(20260728, era).cases(count, big=big), tally, timeout=60 + count / 50)
        after = vm_rss_kib(proc.pid)
        if proc.poll() is not None:
            tally.problem(f"the server exited with {proc.returncode}")
        report(f"stdio-{era}", tally, seconds, ping_seconds, count, (before, after))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


async def bench_http(count: int, big: int, home: Path) -> None:
    import anyio
    import httpx2

    home.mkdir(parents=True, exist_ok=True)
    async with http_server(home, []) as server:
        async with httpx2.AsyncClient(timeout=60) as http, anyio.create_task_group() as tg:
            for channel in ("http-2025", "http-2026", "sse"):
                era = "2026" if channel == "http-2026" else "2025"
                peer = HttpPeer(http, server.base, channel)
                await peer.open(tg)
                await run_http(peer, Corpus(1, era, f"{channel}-w").cases(300, big=big), Tally(), timeout=120)
                ping_seconds = await run_http(peer, pings(count, era, f"{channel}-"), Tally(), timeout=60 + count / 20)
                before = vm_rss_kib(server.proc.pid)
                tally = Tally()
                seconds = await run_http(peer, Corpus(20260728, era, f"{channel}-").cases(count, big=big), tally, timeout=60 + count / 20)
                report(channel, tally, seconds, ping_seconds, count, (before, vm_rss_kib(server.proc.pid)))
            tg.cancel_scope.cancel()


def bench_judge(rounds: int = 20_000) -> None:
    import mcp_types as types

    from server.jsonrpc import judge

    line = rpc({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "copilot", "arguments": {"task": "Summarise the design of the store in three bullet points", "max_rounds": 5}}})
    best = {"SDK parse": float("inf"), "judge": float("inf")}
    for _ in range(5):  # alternated, best of five
        for name, fn in (("SDK parse", lambda: types.jsonrpc_message_adapter.validate_json(line, by_name=False)), ("judge", lambda: judge(line))):
            started = time.perf_counter()
            for _ in range(rounds):
                fn()
            best[name] = min(best[name], (time.perf_counter() - started) / rounds * 1e6)
    print(f"guard on a valid tools/call line ({len(line)} bytes): judge {best['judge']:.1f} us per message against the SDK's own "
          f"parse {best['SDK parse']:.1f} us ({best['judge'] / best['SDK parse']:.2f}x; the SDK still parses it afterwards)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per channel (default 20,000)")
    parser.add_argument("--big", type=int, default=1_000_000, help="largest oversized string in bytes (default 1 MB)")
    parser.add_argument("--only", choices=["stdio", "http"], help="one transport only")
    args = parser.parse_args()
    import anyio

    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "http":
            for era in ("2025", "2026"):
                bench_stdio(era, args.count, args.big, Path(tmp) / f"stdio-{era}")
        if args.only != "stdio":
            anyio.run(bench_http, args.count, args.big, Path(tmp) / "http")
    bench_judge()
    print(json.dumps({"count": args.count, "big": args.big}))


if __name__ == "__main__":
    main()
