"""MCP overhead of swarm-mcp over stdio, against a bare MCPServer with one echo tool measured in the same run.

    python tests/bench/bench_mcp.py [--runs N] [--calls N]

Prints, per protocol era:
- cold start: spawning the server until the first tools/list answer (target <= 1.2x the bare server);
- round trip: a sequential session_status call against the bare server's echo call (target <= 1.15x).
HTTP numbers are added with the HTTP transport.
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
            report[mode] = {
                "cold_bare_s": statistics.median(cold["bare"]),
                "cold_swarm_s": statistics.median(cold["swarm"]),
                "rt_bare_ms": statistics.median(trips["bare"]) * 1000,
                "rt_swarm_ms": statistics.median(trips["swarm"]) * 1000,
            }
            r = report[mode]
            r["cold_ratio"] = r["cold_swarm_s"] / r["cold_bare_s"]
            r["rt_ratio"] = r["rt_swarm_ms"] / r["rt_bare_ms"]
    return report


def print_report(report: dict[str, dict[str, float]]) -> None:
    names = {"legacy": "2025-11-25", "auto": "2026-07-28"}
    for mode, r in report.items():
        print(f"stdio {names.get(mode, mode)}: cold start to first tools/list: bare {r['cold_bare_s'] * 1000:.0f} ms, "
              f"swarm-mcp {r['cold_swarm_s'] * 1000:.0f} ms -> {r['cold_ratio']:.2f}x (target <= 1.20x)")
        print(f"stdio {names.get(mode, mode)}: round trip: bare echo {r['rt_bare_ms']:.3f} ms, "
              f"session_status {r['rt_swarm_ms']:.3f} ms -> {r['rt_ratio']:.2f}x (target <= 1.15x)")


def test_bench_mcp_short() -> None:
    """A short run: both servers answer over stdio and the ratios are printed (loose bounds: shared CI machines)."""
    report = asyncio.run(measure(runs=3, calls=60, modes=("legacy",)))
    print_report(report)
    r = report["legacy"]
    assert r["cold_ratio"] < 2.0
    assert r["rt_ratio"] < 3.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="cold starts per server and era (default 7)")
    parser.add_argument("--calls", type=int, default=300, help="timed round trips per server and era (default 300)")
    args = parser.parse_args()
    print_report(asyncio.run(measure(args.runs, args.calls)))
