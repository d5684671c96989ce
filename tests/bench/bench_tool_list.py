"""What ``tools/list`` costs a client's context: tokens per tool and output-schema bytes per tool, over the real server.

Issue 12 targets: <= 150 tokens per tool for name + description + input schema (4 characters a token), every
parameter still described; output schema <= 1 KB per tool.

Path: ``swarm-mcp serve`` over stdio (the SDK's stdio client, 2025-11-25 and 2026-07-28), its ``tools/list``
answer as the client receives it (the SDK's ``Tool`` models dumped by alias, ``None`` fields left out), each schema
as compact JSON (``separators=(",", ":")``); the baseline in the same run is the bare MCPServer's echo tool
(bench_mcp.py's BARE_SERVER). Prints one line per tool, then the max and mean per era against the targets, and
whether every input parameter has a description.

    python tests/bench/bench_tool_list.py [--era legacy|auto|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from tests.bench.bench_mcp import BARE_SERVER  # noqa: E402 - the sibling bench's bare server

TARGET_TOKENS = 150
TARGET_OUTPUT_BYTES = 1024
CHARS_PER_TOKEN = 4
ERAS = {"legacy": "2025-11-25", "auto": "2026-07-28"}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def undescribed(schema: dict[str, Any]) -> list[str]:
    """Input parameters (top level) without a description, following a local ``$ref`` or a lone ``anyOf`` branch."""
    missing = []
    defs = schema.get("$defs") or schema.get("definitions") or {}
    for name, prop in (schema.get("properties") or {}).items():
        seen = [prop]
        ref = prop.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
            seen.append(defs[ref.rsplit("/", 1)[-1]])
        if not any(p.get("description") for p in seen):
            missing.append(name)
    return missing


def tool_costs(tools: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for tool in tools:
        data = tool.model_dump(by_alias=True, exclude_none=True)
        text = data["name"] + (data.get("description") or "") + compact(data.get("inputSchema") or {})
        out = data.get("outputSchema")
        rows.append({"name": data["name"], "tokens": len(text) / CHARS_PER_TOKEN, "description_chars": len(data.get("description") or ""),
                     "input_chars": len(compact(data.get("inputSchema") or {})), "output_bytes": len(compact(out).encode()) if out else 0,
                     "undescribed": undescribed(data.get("inputSchema") or {})})
    return rows


async def list_tools(kind: str, era: str, home: Path) -> list[Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "SWARM_MCP"))}
    env.update(SWARM_MCP_HOME=str(home), PYTHONPATH=str(REPO))  # the defaults: tools/list does not depend on the model
    args = ["-c", BARE_SERVER] if kind == "bare" else ["-m", "server.cli", "serve"]
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(REPO))
    with open(home / "stderr.log", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=era) as client:
            listed = await client.list_tools()
    return list(listed.tools)


async def measure(eras: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as t:
        for era in eras:
            out[era] = {kind: tool_costs(await list_tools(kind, era, Path(t) / f"{era}-{kind}")) for kind in ("bare", "swarm")}
    return out


def report(eras: list[str] | None = None, per_tool: bool = True) -> dict[str, dict[str, float]]:
    eras = eras or ["legacy", "auto"]
    data = asyncio.run(measure(eras))
    summary: dict[str, dict[str, float]] = {}
    for era in eras:
        rows, bare = data[era]["swarm"], data[era]["bare"]
        if per_tool:
            for r in rows:
                flag = f", undescribed: {','.join(r['undescribed'])}" if r["undescribed"] else ""
                print(f"    {ERAS[era]} {r['name']}: {r['tokens']:.0f} tokens (description {r['description_chars']} chars, input schema "
                      f"{r['input_chars']} chars), output schema {r['output_bytes']} bytes{flag}")
        max_tokens = max(r["tokens"] for r in rows)
        mean_tokens = sum(r["tokens"] for r in rows) / len(rows)
        max_out = max(r["output_bytes"] for r in rows)
        total_out = sum(r["output_bytes"] for r in rows)
        bare_tokens = max(r["tokens"] for r in bare)
        missing = sum(len(r["undescribed"]) for r in rows)
        print(f"tools/list ({ERAS[era]}, {len(rows)} tools): name + description + input schema max {max_tokens:.0f} tokens/tool "
              f"(mean {mean_tokens:.0f}; bare MCPServer echo {bare_tokens:.0f}) (target <= {TARGET_TOKENS}: "
              f"{'MEETS' if max_tokens <= TARGET_TOKENS else 'MISSES'}); undescribed parameters: {missing}")
        print(f"tools/list ({ERAS[era]}): output schema max {max_out} bytes/tool, {total_out} bytes in all = {total_out / CHARS_PER_TOKEN:.0f} tokens "
              f"(bare echo {max(r['output_bytes'] for r in bare)} bytes) (target <= {TARGET_OUTPUT_BYTES} bytes/tool: "
              f"{'MEETS' if max_out <= TARGET_OUTPUT_BYTES else 'MISSES'})")
        summary[era] = {"max_tokens": max_tokens, "max_output_bytes": max_out, "undescribed": missing, "tools": len(rows)}
    return summary


def test_bench_tool_list_short() -> None:
    """tools/list over stdio, one era: every tool measured (a few seconds)."""
    summary = report(["legacy"], per_tool=False)["legacy"]
    assert summary["tools"] >= 13 and summary["max_tokens"] > 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--era", choices=[*sorted(ERAS), "both"], default="both", help="protocol era (default both)")
    args = parser.parse_args(argv)
    report(["legacy", "auto"] if args.era == "both" else [args.era])


if __name__ == "__main__":
    main()
