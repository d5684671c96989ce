"""A thread pool whose threads start on demand, up to a cap, and exit when they have been idle a while.

DBOS runs every blocking call of its async API (``DBOS.start_workflow_async``,
``get_workflow_status_async``, ``send_async``, ...) through ``asyncio.to_thread`` on its own
``ThreadPoolExecutor``, which it makes the event loop's default executor. That pool is created with
``max_workers=sys.maxsize`` by default, and a ``ThreadPoolExecutor`` never retires a thread: 200
concurrent MCP clients each starting a session left ~30 threads behind for good (measured: 8 -> 39
after one burst; the issue saw 69-91). ``ElasticThreadPool`` is a drop-in ``ThreadPoolExecutor``
that bounds the threads (more work waits in the queue: these calls are short database statements)
and lets an idle thread exit, so a process returns to its baseline after a burst.

``dbos_thread_pool()`` makes DBOS build this pool instead of its own while it launches.
"""

from __future__ import annotations

import itertools
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

DBOS_THREADS = 16
"""The most threads DBOS's pool (the loop's default executor while durable) runs at once; more calls queue."""
IDLE_SECONDS = 5.0
"""A pool thread with no work for this long exits (a new one starts when work comes)."""

_Item = tuple[Future, Callable[..., Any], tuple[Any, ...], dict[str, Any], bool]
"""A call: its future, function, arguments, and whether a waiting thread was promised to it."""


class ElasticThreadPool(ThreadPoolExecutor):
    """``ThreadPoolExecutor`` with at most ``max_workers`` threads, started on demand, each exiting after
    ``idle_seconds`` without work. Subclasses ``ThreadPoolExecutor`` only to be accepted where one is expected;
    none of the base class's machinery runs (it never starts a thread)."""

    _counter = itertools.count()

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "", *,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        super().__init__(max_workers=1, thread_name_prefix=thread_name_prefix)
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self.max_threads = max_workers or DBOS_THREADS
        self.idle_seconds = idle_seconds
        self._prefix = thread_name_prefix or f"ElasticThreadPool-{next(self._counter)}"
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live: set[threading.Thread] = set()
        self._idle = 0
        """Threads waiting for work, less the queued calls already promised to one of them (under ``_lock``)."""
        self._closed = False
        self._started = 0

    @property
    def thread_count(self) -> int:
        with self._lock:
            return len(self._live)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future = Future()
            promised = self._idle > 0  # a waiting thread will take it: no new thread
            if promised:
                self._idle -= 1
            elif len(self._live) < self.max_threads:
                self._started += 1
                thread = threading.Thread(target=self._run, name=f"{self._prefix}_{self._started}", daemon=True)
                self._live.add(thread)
                thread.start()
            self._work.put((future, fn, args, kwargs, promised))
        return future

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._idle += 1
            try:
                item = self._work.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Leave only if more threads wait than queued calls were promised to: those are served without me.
                    if self._idle > 0:
                        self._idle -= 1
                        self._live.discard(me)
                        return
                continue
            if item is None:  # shutdown
                with self._lock:
                    self._live.discard(me)
                return
            future, fn, args, kwargs, promised = item
            del item
            if not promised:  # nobody counted me out of the waiting threads: I do
                with self._lock:
                    self._idle -= 1
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._live)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


@contextmanager
def dbos_thread_pool(max_threads: int = DBOS_THREADS, idle_seconds: float = IDLE_SECONDS) -> Iterator[None]:
    """While this is open, DBOS's launch builds an ``ElasticThreadPool`` for its executor (and so for the event
    loop's default executor): at most ``max_threads`` threads, retired after ``idle_seconds`` idle."""
    import dbos._dbos as dbos_module

    original = dbos_module.ThreadPoolExecutor

    def build(max_workers: int | None = None, thread_name_prefix: str = "") -> ElasticThreadPool:
        return ElasticThreadPool(max_threads, thread_name_prefix, idle_seconds=idle_seconds)

    dbos_module.ThreadPoolExecutor = build  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        dbos_module.ThreadPoolExecutor = original  # type: ignore[misc]
