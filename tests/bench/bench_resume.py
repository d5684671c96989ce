"""Resume latency: ``continue_copilot`` of a paused session to its first round committed, by history length.

Issue 12 target: p50 <= 30 ms, the same for sessions with 1, 10 and 200 rounds already played (resume cost
independent of history; the 200/1 ratio ~1.0).

Path: the real MCP server (``serve --transport http``, streamable HTTP, 2025-11-25 by default) with durable sessions
on and the real OpenAI-compatible client (``openai:gpt-4o-mini``) against a local fake endpoint that answers every
request at once with a hand-off (speed_harness.py). Three sessions are played to 1, 10 and 200 rounds (paused at
``max_rounds``); then each is continued with ``max_rounds=1``, ``--repeats`` times, interleaved (the order of the
three reversed every other repeat), so each continue adds one round (the histories grow by at most ``--repeats``).
"First round committed" is when the new round's events appear in the server's SQLite store (polled every 1 ms,
read-only). Also printed, as the baseline of the same run: a live round's steady cost inside a leg (round-to-round
interval of the 200-round leg), and where a continue's time goes (call sent -> the leg's first model request at the
endpoint: the resume; -> round committed; -> the call's answer).

    python tests/bench/bench_resume.py [--repeats 15] [--histories 1,10,200] [--era legacy|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

from tests.bench.speed_harness import EventWatcher, db_path, endpoint, log, median, percentile, swarm_server, verdict  # noqa: E402

TARGET_MS = 30.0
ERAS = {"legacy": "2025-11-25", "auto": "2026-07-28"}


async def measure(repeats: int, histories: list[int], era: str) -> dict[str, object]:
    from mcp import Client

    with tempfile.TemporaryDirectory(prefix="bench-resume-") as t:
        tmp = Path(t)
        async with endpoint(tmp, mode="cycle", record=True) as ep, swarm_server(tmp, ep.url) as server:
            with EventWatcher(db_path(server.home)) as watcher:
                async with Client(server.url, mode=era) as client:
                    sessions: dict[int, str] = {}
                    steady: list[float] = []
                    for h in histories:
                        log(f"playing a session to {h} rounds")
                        result = await client.call_tool("copilot", {"task": f"resume bench, {h} rounds", "max_rounds": h})
                        out = result.structured_content or {}
                        assert not result.is_error and out.get("status") == "paused" and out.get("total_rounds") == h, out
                        sessions[h] = out["session_id"]
                        await watcher.wait_for(sessions[h], h)
                        if h >= 20:
                            seen = watcher.rounds[sessions[h]]
                            steady.append((seen[h] - seen[2]) / (h - 2))

                    async def one(h: int) -> dict[str, float]:
                        sid = sessions[h]
                        before = watcher.last_round(sid)
                        t0 = time.monotonic()
                        result = await client.call_tool("continue_copilot", {"session_id": sid, "max_rounds": 1})
                        t_end = time.monotonic()
                        out = result.structured_content or {}
                        assert not result.is_error and out.get("status") == "paused" and out.get("total_rounds") == before + 1, out
                        t_commit = await watcher.wait_for(sid, before + 1)
                        first = min((r["t"] for r in ep.requests() if r["t"] >= t0), default=float("nan"))
                        return {"commit": t_commit - t0, "end": t_end - t0, "request": first - t0}

                    for h in histories:  # warm-up: one continue each (imports, caches, connections)
                        await one(h)
                    samples: dict[int, list[dict[str, float]]] = {h: [] for h in histories}
                    for i in range(repeats):
                        for h in histories if i % 2 == 0 else histories[::-1]:
                            samples[h].append(await one(h))
                    finals = {h: watcher.last_round(sid) for h, sid in sessions.items()}
        return {"samples": samples, "steady": median(steady) if steady else float("nan"), "finals": finals}


def report(repeats: int = 15, histories: list[int] | None = None, era: str = "legacy") -> dict[int, float]:
    histories = histories or [1, 10, 200]
    data = asyncio.run(measure(repeats, histories, era))
    samples: dict[int, list[dict[str, float]]] = data["samples"]  # type: ignore[assignment]
    ms = lambda h, key, q: percentile([s[key] for s in samples[h]], q) * 1000  # noqa: E731
    p50 = {h: ms(h, "commit", 50) for h in histories}
    parts = ", ".join(f"{h} played: p50 {p50[h]:.1f} ms / p95 {ms(h, 'commit', 95):.1f} ms" for h in histories)
    print(f"resume (continue_copilot -> first round committed; HTTP {ERAS[era]}, durable, openai client, instant endpoint, "
          f"{repeats} interleaved per size): {parts} (target p50 <= {TARGET_MS:.0f} ms each: "
          f"{verdict(all(v <= TARGET_MS for v in p50.values()))})")
    lo, hi = histories[0], histories[-1]
    growth = p50[hi] / p50[lo]
    print(f"resume growth with history: p50 {hi} played / p50 {lo} played = {growth:.2f}x "
          f"(+{(p50[hi] - p50[lo]) / max(hi - lo, 1):.2f} ms per round of history; target ~1.0x, history-independent: "
          f"{verdict(growth <= 1.2)})")
    steady = data["steady"]
    print(f"    baseline, same run: a live round inside a leg takes {steady * 1000:.1f} ms (steady round-to-round, p50 of the "
          f"played legs); a continue's resume costs {p50[lo] / (steady * 1000):.1f}x to {p50[hi] / (steady * 1000):.1f}x that")
    for h in histories:
        print(f"    {h} played (now {data['finals'][h]}): p50 call -> first model request {ms(h, 'request', 50):.1f} ms, "  # type: ignore[index]
              f"-> round committed {ms(h, 'commit', 50):.1f} ms, -> call answered {ms(h, 'end', 50):.1f} ms "
              f"(p95 answered {ms(h, 'end', 95):.1f} ms)")
    return p50


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed continues per session (default 15)")
    parser.add_argument("--histories", default="1,10,200", help="rounds already played, comma-separated (default 1,10,200)")
    parser.add_argument("--era", choices=sorted(ERAS), default="legacy", help="protocol era: legacy = 2025-11-25, auto = 2026-07-28")
    args = parser.parse_args(argv)
    report(args.repeats, [int(h) for h in args.histories.split(",")], args.era)


if __name__ == "__main__":
    main()
