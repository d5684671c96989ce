"""The process's native memory between bursts of sessions: fewer allocator arenas, and their free pages handed back
to the system when the process goes idle.

What a burst of sessions leaves behind is mostly not live memory: glibc's allocator keeps the memory freed by
SQLite (statements, page caches), the MCP transports and Python's larger objects in free lists, one set per
*arena*, and glibc makes up to 8 arenas a core for the threads that allocate (DBOS's pool runs up to 16). Measured
on the server after 1,000 paused sessions: the free lists grew 5 -> 12 MB while the memory in use grew 2 MB.
Two things bound that:

- ``limit_arenas(n)``: at most ``n`` arenas (``mallopt(M_ARENA_MAX)``), so that the threads reuse each other's free
  memory instead of each growing its own (with 2 and small SQLite caches the free lists grew 1.3 -> 4.2 MB).
- ``IdleTrim``: when the process's last live run ends (swarm/live.py), and nothing started for ``delay`` seconds,
  a full collection frees the cyclic garbage the runs left, then ``malloc_trim(0)`` returns the free pages of every
  arena to the system (0.3-5 MB after a burst; ~1 ms).

Both are glibc's; elsewhere (musl, macOS, Windows) they do nothing (the idle collection aside).

A serving process also runs the cyclic garbage collector less often (``tune_collector``) and leaves what it holds
for its lifetime out of its scans (``freeze_lifetime_objects``).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import sys
import time
from typing import Any

log = logging.getLogger("swarm.memory")

M_ARENA_MAX = -8
"""glibc's mallopt parameter: the most arenas the allocator makes (malloc.h)."""
COLLECTOR_THRESHOLDS = (10_000, 10, 10)
"""The cyclic collector's thresholds in a serving process (Python's default: 700, 10, 10): a young collection every
10,000 net allocations of container objects instead of every 700. Under 50 concurrent sessions of 10 rounds (start and
warm-up included) the default ran ~970 young, ~90 middle and 9 full collections, 0.76 s of the server's ~6.5 s of CPU,
often in the middle of a round; these ran ~110, 10 and 1: 0.37 s. 50,000 ran fewer still (0.23 s), but a burst's young
garbage then raised the heap's high-water mark: bench_paused_rss +7.7 MB against +3.8 / +3.9 MB at 700 and 10,000
(DBOS then kept 8 connections; with 4, +2.9 / +3.0 MB at 10,000).
``IdleTrim`` collects everything once the process goes idle."""
TRIM_DELAY = 1.0
"""Seconds the process stays idle (no live run) before its free memory is handed back: a burst's callers get their
answers first, and back-to-back runs pay nothing."""

_libc: Any = None


def _glibc() -> Any:
    """glibc's functions, or None where the C library is another (or has no malloc_trim)."""
    global _libc
    if _libc is None:
        found: Any = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL("libc.so.6")  # glibc's soname: musl has none such
                if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") and hasattr(lib, "gnu_get_libc_version"):
                    lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                    lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                    found = lib
            except OSError:
                pass
        _libc = found
    return _libc or None


def limit_arenas(n: int) -> bool:
    """Let the allocator make at most ``n`` arenas from now on (0: leave glibc's default); False where not glibc."""
    lib = _glibc()
    if lib is None or n <= 0:
        return False
    return bool(lib.mallopt(M_ARENA_MAX, n))


def trim() -> bool:
    """Hand the free pages of every arena back to the system; whether any were (False where not glibc)."""
    lib = _glibc()
    return lib is not None and bool(lib.malloc_trim(0))


class IdleTrim:
    """Runs ``trim()`` once the process has been idle ``delay`` seconds: ``idle()`` is called when the last live run
    ends, ``busy()`` tells whether one started since (then the trim waits for the next ``idle()``)."""

    def __init__(self, busy: Any, delay: float = TRIM_DELAY) -> None:
        self.busy = busy
        """A callable: whether any run is live in the process now."""
        self.delay = delay
        self.trims = 0
        """Trims run so far (for tests and diagnostics)."""
        self._timer: asyncio.TimerHandle | None = None

    def idle(self) -> None:
        """The process's last live run ended: trim in ``delay`` seconds unless a run is live by then."""
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.busy():
            return
        start = time.perf_counter()
        gc.collect()
        trim()
        self.trims += 1
        log.debug("idle: collected and handed free memory back in %.1f ms", (time.perf_counter() - start) * 1000)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def tune_collector() -> tuple[int, int, int]:
    """Run the cyclic garbage collector at ``COLLECTOR_THRESHOLDS`` from now on, for a process that only serves
    (``swarm-mcp serve``, from its start: its imports alone ran ~4 full collections, ~0.3 s, at Python's defaults;
    tests and the Python API's hosts keep Python's defaults). Returns the thresholds now in force."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    return gc.get_threshold()


def freeze_lifetime_objects() -> int:
    """Leave every object alive now out of the cyclic collector's scans from now on (``gc.freeze``); for a server
    that has just opened its engine: what it holds then (modules, classes, the engine) lives as long as the process.

    Without it each full collection walks them all (~200,000 objects, ~70 ms on this kind of machine), and a full
    collection falls now and then in the middle of a session's call: the slow tail of resume latency. Imports leave no
    cyclic garbage to collect first (a collection right after them finds none). Returns the objects frozen in all."""
    gc.freeze()
    return gc.get_freeze_count()
