"""MCP overhead of swarm-mcp over stdio, against a bare MCPServer with one echo tool measured in the same run.

    python tests/bench/bench_mcp.py [--runs N] [--calls N]

Prints, per protocol era:
- cold start: spawning the server until the first tools/list answer (target <= 1.2x the bare server);
- round trip: a sequential session_status call against the bare server's echo call (target <= 1.15x), over stdio
  and over streamable HTTP (`serve --transport http` against the bare server's own streamable-HTTP app, both on
  uvicorn on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

BARE_SERVER = """
from mcp.server import MCPServer

mcp = MCPServer("bare")


@mcp.tool()
def echo(text: str) -> str:
    \"\"\"Echo the text back.\"\"\"
    return text


mcp.run("stdio")
"""

BARE_HTTP_SERVER = """
import socket, sys

import uvicorn
from mcp.server import MCPServer

mcp = MCPServer("bare")


@mcp.tool()
def echo(text: str) -> str:
    \"\"\"Echo the text back.\"\"\"
    return text


sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as `serve` binds: TCP_NODELAY
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"serving http://127.0.0.1:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)
uvicorn.Server(uvicorn.Config(mcp.streamable_http_app(), log_level="warning")).run(sockets=[sock])
"""

SCRIPT = [{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "ok"}]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    script = home / "script.json"
    script.write_text(json.dumps(SCRIPT))
    env.update(SWARM_MCP_HOME=str(home), SWARM_MCP_MODEL="scripted", SWARM_MCP_SCRIPT=str(script), PYTHONPATH=str(REPO))
    return env


def _params(kind: str, home: Path) -> Any:
    from mcp.client.stdio import StdioServerParameters

    args = ["-c", BARE_SERVER] if kind == "bare" else ["-m", "server.cli", "serve"]
    return StdioServerParameters(command=sys.executable, args=args, env=_env(home), cwd=str(REPO))


async def _cold_start(kind: str, mode: str, home: Path) -> float:
    from mcp import Client
    from mcp.client.stdio import stdio_client

    with open(os.devnull, "w") as errlog:
        start = time.perf_counter()
        async with Client(stdio_client(_params(kind, home), errlog=errlog), mode=mode) as client:
            await client.list_tools()
            elapsed = time.perf_counter() - start
    return elapsed


async def _round_trips(mode: str, tmp: Path, calls: int) -> dict[str, list[float]]:
    """Sequential calls on both servers, alternating call by call so that machine noise hits both alike."""
    from mcp import Client
    from mcp.client.stdio import stdio_client

    homes = {kind: tmp / f"{mode}-{kind}-rt" for kind in ("bare", "swarm")}
    for home in homes.values():
        home.mkdir()
    with open(os.devnull, "w") as errlog:
        async with Client(stdio_client(_params("bare", homes["bare"]), errlog=errlog), mode=mode) as bare, \
                Client(stdio_client(_params("swarm", homes["swarm"]), errlog=errlog), mode=mode) as swarm:
            created = await swarm.call_tool("copilot", {"task": "Say ok", "max_rounds": 3})
            targets = {"bare": (bare, "echo", {"text": "hello"}),
                       "swarm": (swarm, "session_status", {"session_id": created.structured_content["session_id"]})}
            for client, name, args in targets.values():
                for _ in range(30):  # warm-up: imports, the engine, caches
                    await client.call_tool(name, args)
            times: dict[str, list[float]] = {"bare": [], "swarm": []}
            for i in range(calls):
                for kind in ("bare", "swarm") if i % 2 == 0 else ("swarm", "bare"):
                    client, name, args = targets[kind]
                    start = time.perf_counter()
                    result = await client.call_tool(name, args)
                    times[kind].append(time.perf_counter() - start)
                    assert not result.is_error, result
    return times


class _HttpServer:
    """A server subprocess on 127.0.0.1:<free port>, ready once it printed its URL on stderr."""

    def __init__(self, kind: str, home: Path) -> None:
        self.kind, self.home = kind, home
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        import re

        args = ["-c", BARE_HTTP_SERVER] if self.kind == "bare" else ["-m", "server.cli", "serve", "--transport", "http", "--port", "0"]
        self.proc = await asyncio.create_subprocess_exec(sys.executable, *args, env=_env(self.home), cwd=str(REPO),
                                                         stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.PIPE)
        assert self.proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stderr.readline(), 60)).decode()
            if not line:
                raise RuntimeError(f"the {self.kind} HTTP server did not start")
            found = re.search(r"serving (http://127\.0\.0\.1:\d+/mcp)", line)
            if found:
                break
        self._drain = asyncio.create_task(self._discard(self.proc.stderr))
        return found.group(1)

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    async def __aexit__(self, *exc: Any) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._drain is not None:
            self._drain.cancel()


async def _http_round_trips(mode: str, tmp: Path, calls: int) -> dict[str, list[float]]:
    """The same sequential, alternating calls as ``_round_trips``, over streamable HTTP."""
    from mcp import Client

    homes = {kind: tmp / f"{mode}-{kind}-http" for kind in ("bare", "swarm")}
    for home in homes.values():
        home.mkdir()
    async with _HttpServer("bare", homes["bare"]) as bare_url, _HttpServer("swarm", homes["swarm"]) as swarm_url:
        async with Client(bare_url, mode=mode) as bare, Client(swarm_url, mode=mode) as swarm:
            created = await swarm.call_tool("copilot", {"task": "Say ok", "max_rounds": 3})
            targets = {"bare": (bare, "echo", {"text": "hello"}),
                       "swarm": (swarm, "session_status", {"session_id": created.structured_content["session_id"]})}
            for client, name, args in targets.values():
                for _ in range(30):  # warm-up: imports, the engine, caches, connections
                    await client.call_tool(name, args)
            times: dict[str, list[float]] = {"bare": [], "swarm": []}
            for i in range(calls):
                for kind in ("bare", "swarm") if i % 2 == 0 else ("swarm", "bare"):
                    client, name, args = targets[kind]
                    start = time.perf_counter()
                    result = await client.call_tool(name, args)
                    times[kind].append(time.perf_counter() - start)
                    assert not result.is_error, result
    return times


async def measure(runs: int = 7, calls: int = 300, modes: tuple[str, ...] = ("legacy", "auto")) -> dict[str, dict[str, float]]:
    """Median cold start and round trip of both servers, interleaved so that machine noise hits both alike."""
    report: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            cold: dict[str, list[float]] = {"bare": [], "swarm": []}
            for i in range(runs):
                for kind in ("bare", "swarm") if i % 2 == 0 else ("swarm", "bare"):
                    home = Path(tmp) / f"{mode}-{kind}-{i}"
                    home.mkdir()
                    cold[kind].append(await _cold_start(kind, mode, home))
            trips = await _round_trips(mode, Path(tmp), calls)
            http = await _http_round_trips(mode, Path(tmp), calls)
            report[mode] = {
                "cold_bare_s": statistics.median(cold["bare"]),
                "cold_swarm_s": statistics.median(cold["swarm"]),
                "rt_bare_ms": statistics.median(trips["bare"]) * 1000,
                "rt_swarm_ms": statistics.median(trips["swarm"]) * 1000,
                "http_bare_ms": statistics.median(http["bare"]) * 1000,
                "http_swarm_ms": statistics.median(http["swarm"]) * 1000,
            }
            r = report[mode]
            r["cold_ratio"] = r["cold_swarm_s"] / r["cold_bare_s"]
            r["rt_ratio"] = r["rt_swarm_ms"] / r["rt_bare_ms"]
            r["http_ratio"] = r["http_swarm_ms"] / r["http_bare_ms"]
    return report


def print_report(report: dict[str, dict[str, float]]) -> None:
    names = {"legacy": "2025-11-25", "auto": "2026-07-28"}
    for mode, r in report.items():
        print(f"stdio {names.get(mode, mode)}: cold start to first tools/list: bare {r['cold_bare_s'] * 1000:.0f} ms, "
              f"swarm-mcp {r['cold_swarm_s'] * 1000:.0f} ms -> {r['cold_ratio']:.2f}x (target <= 1.20x)")
        print(f"stdio {names.get(mode, mode)}: round trip: bare echo {r['rt_bare_ms']:.3f} ms, "
              f"session_status {r['rt_swarm_ms']:.3f} ms -> {r['rt_ratio']:.2f}x (target <= 1.15x)")
        print(f"http {names.get(mode, mode)}: round trip: bare echo {r['http_bare_ms']:.3f} ms, "
              f"session_status {r['http_swarm_ms']:.3f} ms -> {r['http_ratio']:.2f}x (target <= 1.15x)")


def test_bench_mcp_short() -> None:
    """A short run: both servers answer over stdio and HTTP and the ratios are printed (loose bounds: shared CI machines)."""
    report = asyncio.run(measure(runs=3, calls=60, modes=("legacy",)))
    print_report(report)
    r = report["legacy"]
    assert r["cold_ratio"] < 2.0
    assert r["rt_ratio"] < 3.0
    assert r["http_ratio"] < 3.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="cold starts per server and era (default 7)")
    parser.add_argument("--calls", type=int, default=300, help="timed round trips per server and era (default 300)")
    args = parser.parse_args()
    print_report(asyncio.run(measure(args.runs, args.calls)))
