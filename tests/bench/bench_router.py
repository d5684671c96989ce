"""Accuracy and latency of the offline router on labelled task files.

Run: python tests/bench/bench_router.py [path.jsonl ...]
(default: ../shared/routing/dev.jsonl and tests/swarm/router_holdout.jsonl)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "routing" / "dev.jsonl"
HOLDOUT = REPO / "tests" / "swarm" / "router_holdout.jsonl"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from swarm.manifest import load_agents  # noqa: E402
from swarm.router import OfflineRouter  # noqa: E402


def evaluate(router: OfflineRouter, path: Path, repeats: int = 5) -> dict:
    """Accuracy of (route, agent) pairs, misrouted tasks and decision times (ms) on one file."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    times: list[float] = []
    wrong: list[tuple[str, tuple, tuple]] = []
    for row in rows:
        for _ in range(repeats):
            start = time.perf_counter()
            decision = router.decide(row["task"])
            times.append((time.perf_counter() - start) * 1000)
        got, want = (decision.route, decision.agent), (row["route"], row.get("agent"))
        if got != want:
            wrong.append((row["task"], want, got))
    times.sort()
    return {
        "path": str(path),
        "n": len(rows),
        "accuracy": (len(rows) - len(wrong)) / len(rows) if rows else 0.0,
        "wrong": wrong,
        "median_ms": statistics.median(times) if times else 0.0,
        "p95_ms": times[int(0.95 * (len(times) - 1))] if times else 0.0,
    }


def report(paths: list[Path]) -> list[dict]:
    """Print and return one result per existing file."""
    router = OfflineRouter(load_agents())
    results = []
    for path in paths:
        if not path.is_file():
            print(f"{path}: missing, skipped")
            continue
        res = evaluate(router, path)
        results.append(res)
        print(f"{res['path']}: accuracy {res['accuracy']:.3f} ({res['n'] - len(res['wrong'])}/{res['n']}), "
              f"median {res['median_ms']:.3f} ms, p95 {res['p95_ms']:.3f} ms")
        for task, want, got in res["wrong"]:
            print(f"  MISROUTED want={want} got={got}: {task}")
    return results


def test_bench_router() -> None:
    import pytest

    if not DEV.is_file():
        pytest.skip(f"dev set not found at {DEV}")
    results = report([DEV, HOLDOUT])
    assert results[0]["accuracy"] >= 0.9
    assert results[0]["median_ms"] < 5.0


if __name__ == "__main__":
    report([Path(p) for p in sys.argv[1:]] or [DEV, HOLDOUT])
