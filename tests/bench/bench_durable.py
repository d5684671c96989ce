"""Per-round overhead of the durable runner (a DBOS workflow, a step per round) vs the same session run plainly.

Same agents and instant scripted model as bench_swarm (hand-offs a -> b -> a ...). For each backend
(SQLite always; PostgreSQL when SWARM_MCP_TEST_POSTGRES_URL is set) it runs N-round sessions with
``durable=False`` (the runner in the caller's task: journal + one store transaction per round) and
with ``durable=True`` (enqueued on the shared queue, run as a DBOS workflow whose rounds are DBOS
steps, followed to its end), plus, unless ``--no-local``, durable runs started in this process
(``engine.run(local=True)``: no queue). Warm-up first, then the repeats interleaved; a fresh engine
per run, and only ``engine.run`` is timed (not DBOS's launch and shutdown, nor its queue start-up:
see ``queue_worker_started``).

Per backend it prints the median end-to-end ms/round of each mode with the added ms per round and the
ratio, then where the time goes: the steady per-round cost (first round committed -> last round
committed) and the fixed per-run costs (``run()`` -> first round committed: the dispatch; last round
committed -> ``run()`` returns: the finish and the wait for the result). A queued durable run's result
is polled for (DBOS's ``get_result`` default: every second), so its end-to-end time comes in whole
seconds and its ms/round is mostly that wait divided by N; the steady line is the per-round cost.

On PostgreSQL each bench run uses a fresh database (``bench_<hex>``, dropped at the end): a durable
engine adopts the sessions left ``running`` in its database.

    python tests/bench/bench_durable.py [--rounds 100] [--repeats 3] [--no-local]
    eval "$(bash scripts/postgres.sh start)"; python tests/bench/bench_durable.py; bash scripts/postgres.sh stop "$SWARM_MCP_TEST_PG_DATA"
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the tests package
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from swarm.config import Settings  # noqa: E402
from swarm.durable import QUEUE  # noqa: E402
from swarm.engine import Engine  # noqa: E402
from swarm.events import Event  # noqa: E402
from swarm.models.scripted import Script  # noqa: E402
from swarm.session import SessionRecord  # noqa: E402
from swarm.tools import ToolRegistry  # noqa: E402
from tests.bench.bench_swarm import AGENTS, script_for  # noqa: E402 - the sibling bench
from tests.fakes import ScriptedModels  # noqa: E402

WARMUP_ROUNDS = 10
MODES = ("plain", "durable")
LOCAL = "durable-local"
"""Optional third mode: durable, started in this process (``engine.run(local=True)``: no queue, no polling)."""
LABELS = {"plain": "plain", "durable": "durable", LOCAL: "durable local"}


@dataclass
class Run:
    """One timed session run."""

    mode: str
    rounds: int
    status: str
    total_rounds: int
    total_s: float
    """``engine.run`` called -> returned."""
    first_s: float
    """``engine.run`` called -> its first round committed."""
    last_s: float
    """``engine.run`` called -> its last round committed."""

    @property
    def ms_per_round(self) -> float:
        return self.total_s * 1000 / self.rounds

    @property
    def steady_ms_per_round(self) -> float:
        return (self.last_s - self.first_s) * 1000 / max(self.rounds - 1, 1)

    @property
    def start_ms(self) -> float:
        return self.first_s * 1000

    @property
    def tail_ms(self) -> float:
        return (self.total_s - self.last_s) * 1000


@dataclass
class BackendResult:
    backend: str
    rounds: int
    repeats: int
    modes: tuple[str, ...] = MODES
    runs: dict[str, list[Run]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.runs = {m: [] for m in self.modes}

    def median(self, mode: str, metric: str = "ms_per_round") -> float:
        return statistics.median(getattr(r, metric) for r in self.runs[mode])

    @property
    def plain(self) -> float:
        return self.median("plain")

    @property
    def durable(self) -> float:
        return self.median("durable")

    @property
    def added(self) -> float:
        return self.durable - self.plain

    @property
    def ratio(self) -> float:
        return self.durable / self.plain

    def lines(self) -> list[str]:
        def per_mode(metric: str, unit: str, digits: int, versus_plain: bool = False) -> str:
            plain = self.median("plain", metric)
            parts = []
            for mode in self.modes:
                value = self.median(mode, metric)
                extra = f" ({value - plain:+.{digits}f}, {value / plain:.2f}x)" if versus_plain and mode != "plain" else ""
                parts.append(f"{LABELS[mode]} {value:.{digits}f}{unit}{extra}")
            return ", ".join(parts)

        lines = [
            f"durable per-round overhead ({self.backend}, {self.rounds} rounds, median of {self.repeats}): "
            f"plain {self.plain:.2f} ms/round, durable {self.durable:.2f} ms/round ({self.added:+.2f} ms, {self.ratio:.2f}x)",
        ]
        if LOCAL in self.modes:
            local = self.median(LOCAL)
            lines.append(f"    durable started in this process (run(local=True): no queue, no result polling): "
                         f"{local:.2f} ms/round ({local - self.plain:+.2f} ms, {local / self.plain:.2f}x)")
        lines += [
            f"    steady rounds (first -> last round committed): {per_mode('steady_ms_per_round', ' ms/round', 2, versus_plain=True)}",
            f"    per run, run() -> first round committed: {per_mode('start_ms', ' ms', 1)}; "
            f"last round committed -> run() returns: {per_mode('tail_ms', ' ms', 1)}",
        ]
        return lines


def settings_for(home: Path, db_url: str | None, durable: bool) -> Settings:
    env = {"SWARM_MCP_HOME": str(home), "SWARM_MCP_DURABLE": "1" if durable else "0", "SWARM_MCP_EXECUTOR_ID": "bench"}
    if db_url:
        env["SWARM_MCP_DB"] = db_url
    return Settings.from_env(env)


class DefaultExecutor:
    """The loop's default executor, given back to the loop after every durable engine closes.

    DBOS installs a wrapper of its own thread pool as the loop's default executor (when the engine
    registers its queue, and on every enqueue) and ``DBOS.destroy()`` (run by ``Engine.__aexit__``) shuts that pool down without
    uninstalling it: every later ``asyncio.to_thread`` / ``run_in_executor(None, ...)`` on the loop
    then raises "cannot schedule new futures after shutdown", and a plain session run after it hangs
    for ever (autogen runs the sync hand-off tools in the default executor, and its AssistantAgent
    waits on a queue the failed tool task never completes). One pool for the whole bench, shut down
    by ``asyncio.run`` at the end.
    """

    pool: ThreadPoolExecutor | None = None

    @classmethod
    def install(cls) -> None:
        cls.pool = ThreadPoolExecutor(thread_name_prefix="bench-default")
        asyncio.get_running_loop().set_default_executor(cls.pool)

    @classmethod
    def restore(cls) -> None:
        if cls.pool is None:
            raise RuntimeError("DefaultExecutor.install() first")
        asyncio.get_running_loop().set_default_executor(cls.pool)


async def queue_worker_started(timeout: float = 5.0) -> None:
    """Wait until DBOS polls the session queue, as it does in an engine that has been up for a second.

    The engine registers its queue after ``DBOS.launch()``, and DBOS's queue manager looks for new
    queues once a second: the first run after a launch waits up to a second more to be dequeued.
    That is a start-up cost, not a per-run one, so the bench lets it pass before timing.
    """
    name = f"queue-worker-{QUEUE}"
    deadline = time.monotonic() + timeout
    while not any(t.name == name for t in threading.enumerate()):
        if time.monotonic() > deadline:
            print(f"warning: no DBOS thread {name!r} after {timeout:.0f} s: the durable run includes the queue's start-up", file=sys.stderr)
            return
        await asyncio.sleep(0.01)


async def run_session(mode: str, rounds: int, home: Path, db_url: str | None) -> Run:
    """Open a fresh engine (plain or durable), run one ``rounds``-round session in it, close it; time ``engine.run``."""
    script = Script(script_for(rounds))
    durable = mode != "plain"
    settings = settings_for(home, db_url, durable=durable)
    committed: dict[int, float] = {}

    async def on_update(record: SessionRecord, _events: list[Event]) -> None:
        if record.total_rounds and record.total_rounds not in committed:
            committed[record.total_rounds] = time.perf_counter()

    try:
        async with Engine(settings, models=ScriptedModels(script), agents=AGENTS, tools=ToolRegistry()) as engine:
            assert (engine.durable is not None) == durable, mode
            if mode == "durable":
                await queue_worker_started()
            record = await engine.create("go", max_rounds=rounds + 1)
            kwargs = {"local": True} if mode == LOCAL else {}
            start = time.perf_counter()
            record = await engine.run(record.id, on_update=on_update, **kwargs)
            end = time.perf_counter()
    finally:
        if durable:
            DefaultExecutor.restore()
    assert record.status == "completed" and record.total_rounds == rounds, (mode, record.status, record.total_rounds, record.error)
    assert sorted(committed) == list(range(1, rounds + 1)), (mode, sorted(committed)[:5], len(committed))
    return Run(mode=mode, rounds=rounds, status=record.status, total_rounds=record.total_rounds,
               total_s=end - start, first_s=committed[1] - start, last_s=committed[rounds] - start)


async def measure_backend(backend: str, rounds: int, repeats: int, tmp: Path, db_url: str | None, modes: tuple[str, ...]) -> BackendResult:
    """Warm up every mode, then ``repeats`` interleaved runs of each (the order reversed every other repeat)."""
    result = BackendResult(backend, rounds, repeats, modes)
    home = lambda name: tmp / backend / name  # noqa: E731
    # SQLite: a fresh database per run (it lives in the home). PostgreSQL: the one fresh bench database.
    for mode in modes:
        await run_session(mode, WARMUP_ROUNDS, home(f"warm-{mode}"), db_url)
    for i in range(repeats):
        for mode in (modes if i % 2 == 0 else modes[::-1]):
            result.runs[mode].append(await run_session(mode, rounds, home(f"{mode}-{i}"), db_url))
    return result


def _admin_dsn(server_url: str) -> str:
    return make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(server_url: str) -> str:
    """A new, empty database ``bench_<hex>`` on the server of ``server_url``; its URL for the store."""
    name = f"bench_{os.urandom(6).hex()}"
    conn = await asyncpg.connect(_admin_dsn(server_url), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, db_url: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(server_url), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(db_url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def measure(rounds: int, repeats: int, postgres_url: str | None, *, modes: tuple[str, ...] = MODES,
                  strict_postgres: bool = False) -> tuple[list[BackendResult], str | None]:
    """Results per backend, and why PostgreSQL was skipped (None if it ran).

    ``strict_postgres``: a set but unreachable SWARM_MCP_TEST_POSTGRES_URL raises instead of skipping.
    """
    DefaultExecutor.install()
    results: list[BackendResult] = []
    skipped: str | None = None
    with tempfile.TemporaryDirectory(prefix="bench-durable-") as tmp:
        results.append(await measure_backend("sqlite", rounds, repeats, Path(tmp), None, modes))
        if not postgres_url:
            skipped = "SWARM_MCP_TEST_POSTGRES_URL is not set (`eval \"$(bash scripts/postgres.sh start)\"` starts a local one)"
            return results, skipped
        try:
            db_url = await create_database(postgres_url)
        except Exception as exc:
            if strict_postgres:
                raise
            return results, f"cannot create a bench database on {make_url(postgres_url).render_as_string()}: {type(exc).__name__}: {exc}"
        try:
            results.append(await measure_backend("postgresql", rounds, repeats, Path(tmp), db_url, modes))
        finally:
            await drop_database(postgres_url, db_url)
    return results, skipped


def report(rounds: int = 100, repeats: int = 3, *, local: bool = False, strict_postgres: bool = False) -> tuple[list[BackendResult], str | None]:
    modes = (*MODES, LOCAL) if local else MODES
    results, skipped = asyncio.run(measure(rounds, repeats, os.environ.get("SWARM_MCP_TEST_POSTGRES_URL"), modes=modes, strict_postgres=strict_postgres))
    for result in results:
        for line in result.lines():
            print(line)
    if skipped:
        print(f"durable per-round overhead (postgresql): skipped: {skipped}")
    return results, skipped


def test_bench_durable_overhead() -> None:
    rounds = 40
    results, skipped = report(rounds=rounds, repeats=1, strict_postgres=True)
    assert [r.backend for r in results] == (["sqlite"] if skipped else ["sqlite", "postgresql"])
    for result in results:
        for mode in MODES:
            (run,) = result.runs[mode]
            assert run.status == "completed" and run.total_rounds == rounds, run
            assert 0 < run.first_s <= run.last_s <= run.total_s, run
            assert run.ms_per_round > 0 and run.steady_ms_per_round > 0, run
        assert result.plain > 0 and result.durable > 0 and result.ratio > 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="rounds per session (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode and backend (default 3)")
    parser.add_argument("--no-local", dest="local", action="store_false",
                        help="skip the third mode: durable runs started in this process (run(local=True), no queue)")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.repeats < 1:
        parser.error("--rounds must be at least 2 and --repeats at least 1")
    report(args.rounds, args.repeats, local=args.local)


if __name__ == "__main__":
    main()
