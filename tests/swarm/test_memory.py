"""The process's native memory between bursts (swarm/memory.py): free memory handed back when the process goes idle,
few allocator arenas, small SQLite caches on every connection the server keeps."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from phases import phase_tool_registry
from swarm import memory
from swarm.config import Settings
from swarm.engine import Engine
from swarm.errors import ConfigError
from swarm.live import LiveRuns
from swarm.store import CACHE_KB as STORE_CACHE_KB
from swarm.store import SqlStore
from swarm.system_db import CACHE_KB, CACHED_STATEMENTS, system_database
from tests.fakes import FunctionModels, handoff

pytestmark = pytest.mark.anyio

glibc = pytest.mark.skipif(memory._glibc() is None, reason="the C library is not glibc")

REPO = Path(__file__).resolve().parents[2]


async def trimmed(trim: memory.IdleTrim, count: int) -> None:
    with anyio.fail_after(10):
        while trim.trims < count:
            await asyncio.sleep(0)


async def test_the_last_run_ending_trims_once_the_process_stays_idle() -> None:
    live = LiveRuns()
    trim = memory.IdleTrim(lambda: len(live) > 0, delay=0)
    live.on_idle.append(trim.idle)
    with live.execute("s1"), live.execute("s2"):
        pass
    with live.execute("s3"):
        pass  # s3 leaves the registry empty again: still one trim, not one per run
    await trimmed(trim, 1)
    for _ in range(3):
        await asyncio.sleep(0)
    assert trim.trims == 1


async def test_going_idle_collects_the_cyclic_garbage_runs_left() -> None:
    """A serving process collects rarely (memory.COLLECTOR_THRESHOLDS): what its runs left in reference cycles is
    freed when it goes idle, not whenever the collector next comes round."""

    class Node:
        def __init__(self) -> None:
            self.me = self

    live = LiveRuns()
    trim = memory.IdleTrim(lambda: len(live) > 0, delay=0)
    live.on_idle.append(trim.idle)
    thresholds = gc.get_threshold()
    gc.disable()  # no collection but the idle one
    try:
        with live.execute("s1"):
            left = weakref.ref(Node())
        assert left() is not None  # a cycle: only a collection frees it
        await trimmed(trim, 1)
        assert left() is None
    finally:
        gc.enable()
        gc.set_threshold(*thresholds)


async def test_a_run_started_before_the_delay_is_up_puts_the_trim_off() -> None:
    live = LiveRuns()
    trim = memory.IdleTrim(lambda: len(live) > 0, delay=0)
    live.on_idle.append(trim.idle)
    with live.execute("s1"):
        pass
    with live.execute("s2"):  # the trim comes due while s2 runs: it does not run
        for _ in range(3):
            await asyncio.sleep(0)
        assert trim.trims == 0
    await trimmed(trim, 1)


async def test_an_engine_trims_when_its_last_session_run_ends(settings: Settings) -> None:
    def model(messages: Any, agent: str, tools: list[str]) -> Any:
        transfers = [t for t in tools if t.startswith("transfer_to_")]
        return handoff(transfers[0].removeprefix("transfer_to_")) if agent == "copilot_control" and transfers else "done"

    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(model)) as engine:
        engine._trim.delay = 0
        assert engine._trim.idle in engine.live.on_idle
        record = await engine.go_on((await engine.create("Summarise the report", max_rounds=1)).id)
        assert record.status == "paused"
        await trimmed(engine._trim, 1)
    assert engine._trim.idle not in engine.live.on_idle


@glibc
def test_trim_hands_free_memory_back() -> None:
    assert isinstance(memory.trim(), bool)


ARENAS = """
import ctypes, os, sys, tempfile, threading
sys.path.insert(0, {repo!r})
import anyio
from swarm.config import Settings
from swarm.engine import Engine
from phases import phase_tool_registry
from tests.fakes import FunctionModels

async def main():
    home = tempfile.mkdtemp()
    settings = Settings.from_env({{"SWARM_MCP_HOME": home, "SWARM_MCP_DURABLE": "0", "SWARM_MCP_MALLOC_ARENAS": {arenas!r}}})
    async with Engine(settings, tools=phase_tool_registry(), models=FunctionModels(lambda *a: "done")):
        pass

anyio.run(main)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = libc.open_memstream.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
held, barrier = [], threading.Barrier(9)
def allocate():
    held.append(libc.malloc(1 << 16))
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
barrier.wait()
for t in threads: t.join()
out = ctypes.c_char_p()
size = ctypes.c_size_t()
stream = libc.open_memstream(ctypes.byref(out), ctypes.byref(size))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(out.value.decode().count("<heap nr="))
"""


def arenas_after_eight_threads(arenas: str) -> int:
    done = subprocess.run([sys.executable, "-c", ARENAS.format(repo=str(REPO), arenas=arenas)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@glibc
def test_an_engine_limits_the_allocator_arenas_its_threads_make() -> None:
    assert arenas_after_eight_threads("2") <= 2
    assert arenas_after_eight_threads("0") > 2  # glibc's default: one arena a thread, up to 8 a core


def test_the_arena_limit_is_a_setting(tmp_path: Path) -> None:
    base = {"SWARM_MCP_HOME": str(tmp_path)}
    assert Settings.from_env(base).malloc_arenas == 2
    assert Settings.from_env({**base, "SWARM_MCP_MALLOC_ARENAS": "0"}).malloc_arenas == 0
    for bad in ("-1", "two"):
        with pytest.raises(ConfigError, match="SWARM_MCP_MALLOC_ARENAS"):
            Settings.from_env({**base, "SWARM_MCP_MALLOC_ARENAS": bad})


def test_each_connection_to_dbos_system_database_keeps_small_caches(settings: Settings) -> None:
    url, kwargs = system_database(dataclasses.replace(settings, durable=True))
    assert kwargs["connect_args"]["cached_statements"] == CACHED_STATEMENTS < 128
    engine = sa.create_engine(url, **kwargs)
    try:
        with engine.connect() as a, engine.connect() as b:
            for conn in (a, b):
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -CACHE_KB
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
async def test_the_store_connection_keeps_a_small_page_cache(tmp_path: Path, scheme: str) -> None:
    store = await SqlStore(f"{scheme}:///{tmp_path / 'store.db'}").open()
    try:
        if store.sync_engine is not None:
            assert store._sync_conn.exec_driver_sql("PRAGMA cache_size").scalar() == -STORE_CACHE_KB  # type: ignore[union-attr]
        else:
            async with store.async_engine.connect() as conn:  # type: ignore[union-attr]
                assert (await conn.exec_driver_sql("PRAGMA cache_size")).scalar() == -STORE_CACHE_KB
    finally:
        await store.close()
