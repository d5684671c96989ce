"""Server CPU per live round through the real OpenAI-compatible client path, against a bare loop of the same SDK.

Issue 12 target: the server's CPU per live round <= 1.5x the CPU a bare ``openai.AsyncOpenAI`` loop spends sending
the same requests to the same endpoint.

Path: ``serve --transport http`` (durable on, ``openai:gpt-4o-mini``, OPENAI_BASE_URL at a local fake endpoint that
answers every request at once with a hand-off, speed_harness.py). Each repeat plays one new ``copilot`` session of
``--rounds`` rounds (one model call per round) and reads the server process's CPU time (user + system, all threads,
/proc/<pid>/stat) before and after the call; the endpoint records the request bodies of that leg. The baseline, right
after (the order alternates every repeat): a fresh subprocess that sends exactly those bodies, one after the other,
with ``AsyncOpenAI(base_url=..., max_retries=0).chat.completions.create(**body)`` and reports its own
``time.process_time()`` over them (after a warm-up of 10 requests). Also printed: the server's idle CPU (its
background loops, measured over 3 s before the repeats), its share of a round, and the wall time per round.

    python tests/bench/bench_round_cpu.py [--rounds 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from tests.bench.speed_harness import API_KEY, cpu_seconds, endpoint, log, median, swarm_server, verdict  # noqa: E402

TARGET_RATIO = 1.5
WARMUP = 10


async def bare_loop(url: str, bodies: list[dict], warmup: int = WARMUP) -> dict[str, float]:
    """In this process: the bare SDK loop over ``bodies`` (after ``warmup`` of them); its CPU and wall time."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=60)
    try:
        for body in bodies[:warmup]:
            await client.chat.completions.create(**body)
        cpu0, wall0 = time.process_time(), time.monotonic()
        for body in bodies:
            reply = await client.chat.completions.create(**body)
            assert reply.choices, reply
        return {"cpu": time.process_time() - cpu0, "wall": time.monotonic() - wall0, "n": len(bodies)}
    finally:
        await client.close()


def run_bare(url: str, bodies_file: Path) -> dict[str, float]:
    """The bare loop in a fresh subprocess (its CPU is its own), bounded in time."""
    proc = subprocess.run([sys.executable, "-m", "tests.bench.bench_round_cpu", "--bare", url, str(bodies_file)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"the bare loop failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def measure(rounds: int, repeats: int) -> dict[str, object]:
    from mcp import Client

    with tempfile.TemporaryDirectory(prefix="bench-round-cpu-") as t:
        tmp = Path(t)
        async with endpoint(tmp, mode="cycle", record=True, bodies=10**9) as ep, swarm_server(tmp, ep.url) as server:
            pid = server.proc.pid
            async with Client(server.url, mode="legacy") as client:

                async def swarm_leg(i: int) -> dict[str, float]:
                    seen = len(ep.requests())
                    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                    result = await client.call_tool("copilot", {"task": f"cpu bench {i}", "max_rounds": rounds})
                    wall, cpu = time.monotonic() - wall0, cpu_seconds(pid) - cpu0
                    out = result.structured_content or {}
                    assert not result.is_error and out.get("status") == "paused" and out.get("total_rounds") == rounds, out
                    bodies = [r["body"] for r in ep.requests()[seen:]]
                    path = tmp / f"bodies-{i}.json"
                    path.write_text(json.dumps(bodies))
                    return {"cpu": cpu, "wall": wall, "n": len(bodies), "rounds": rounds, "bodies": str(path)}

                log("warm-up")
                await swarm_leg(-1)
                await asyncio.sleep(1)
                cpu0 = cpu_seconds(pid)
                await asyncio.sleep(3)
                idle = (cpu_seconds(pid) - cpu0) / 3
                swarm: list[dict[str, float]] = []
                bare: list[dict[str, float]] = []
                for i in range(repeats):
                    log(f"repeat {i + 1}/{repeats}")
                    if i % 2 == 0:
                        swarm.append(await swarm_leg(i))
                        bare.append(await asyncio.to_thread(run_bare, ep.url, Path(swarm[-1]["bodies"])))
                    else:
                        # the bodies of the previous repeat's leg (the same shape of requests), then this repeat's leg
                        bare.append(await asyncio.to_thread(run_bare, ep.url, Path(swarm[-1]["bodies"])))
                        swarm.append(await swarm_leg(i))
    return {"swarm": swarm, "bare": bare, "idle": idle}


def report(rounds: int = 100, repeats: int = 3) -> float:
    data = asyncio.run(measure(rounds, repeats))
    swarm, bare, idle = data["swarm"], data["bare"], data["idle"]
    per_round = median([s["cpu"] / s["rounds"] for s in swarm]) * 1000  # type: ignore[union-attr]
    per_request = median([b["cpu"] / b["n"] for b in bare]) * 1000  # type: ignore[union-attr]
    wall_round = median([s["wall"] / s["rounds"] for s in swarm]) * 1000  # type: ignore[union-attr]
    wall_request = median([b["wall"] / b["n"] for b in bare]) * 1000  # type: ignore[union-attr]
    calls = median([s["n"] / s["rounds"] for s in swarm])  # type: ignore[union-attr]
    ratio = per_round / per_request
    print(f"server CPU per live round (HTTP, durable, openai client, instant endpoint, {rounds}-round legs, median of {repeats}): "
          f"swarm-mcp {per_round:.2f} ms/round ({calls:.2f} model calls/round), bare openai SDK loop of the same requests "
          f"{per_request:.2f} ms/request -> {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict(ratio <= TARGET_RATIO)})")
    idle_ms = idle * 1000  # type: ignore[operator]
    print(f"    server idle CPU {idle_ms:.1f} ms/s (background loops) = {idle_ms * wall_round / 1000:.2f} ms of each round; "
          f"wall time per round {wall_round:.2f} ms (bare loop {wall_request:.2f} ms per request)")
    return ratio


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--bare"]:  # the baseline subprocess: python -m tests.bench.bench_round_cpu --bare URL BODIES
        url, path = argv[1], argv[2]
        print(json.dumps(asyncio.run(bare_loop(url, json.loads(Path(path).read_text())))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="rounds per measured leg (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    args = parser.parse_args(argv)
    report(args.rounds, args.repeats)


if __name__ == "__main__":
    main()
