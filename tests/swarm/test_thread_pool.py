"""ElasticThreadPool: bounded threads, started on demand, retired when idle; and DBOS builds it at launch."""

from __future__ import annotations

import threading
import time

import pytest

from swarm.thread_pool import ElasticThreadPool, dbos_thread_pool


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (a bounded wait for a state another thread reaches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_threads_are_bounded_and_exit_when_idle() -> None:
    pool = ElasticThreadPool(4, "t", idle_seconds=0.2)
    gate = threading.Event()
    futures = [pool.submit(lambda i=i: (gate.wait(10), i)[1]) for i in range(50)]
    assert pool.thread_count == 4  # the other 46 wait in the queue
    gate.set()
    assert [f.result(timeout=10) for f in futures] == list(range(50))
    assert wait_until(lambda: pool.thread_count == 0), pool.thread_count
    assert pool.submit(lambda: 7).result(timeout=10) == 7  # a new thread starts for new work
    pool.shutdown(wait=True)
    assert pool.thread_count == 0
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: 1)


def test_an_idle_thread_takes_the_next_call_instead_of_a_new_one() -> None:
    pool = ElasticThreadPool(8, "t", idle_seconds=5)
    for _ in range(100):
        pool.submit(lambda: None).result(timeout=10)
    assert pool.thread_count == 1
    pool.shutdown(wait=True)


def test_errors_cancel_and_shutdown_with_cancel_futures() -> None:
    pool = ElasticThreadPool(1, "t", idle_seconds=5)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=10)
    gate, started = threading.Event(), threading.Event()
    running = pool.submit(lambda: (started.set(), gate.wait(10))[1])
    assert started.wait(10)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert running.result(timeout=10) is True
    assert wait_until(lambda: pool.thread_count == 0)


def test_dbos_builds_the_elastic_pool_only_inside_the_context() -> None:
    import dbos._dbos as dbos_module

    original = dbos_module.ThreadPoolExecutor
    with dbos_thread_pool(3, idle_seconds=1):
        pool = dbos_module.ThreadPoolExecutor(max_workers=2**62, thread_name_prefix="dbos-executor-")
        assert isinstance(pool, ElasticThreadPool) and pool.max_threads == 3
        pool.shutdown()
    assert dbos_module.ThreadPoolExecutor is original


def test_no_call_is_stranded_while_threads_come_and_go() -> None:
    """Threads retire after 1 ms idle while 8 submitters race them: every call still runs."""
    pool = ElasticThreadPool(3, "t", idle_seconds=0.001)
    futures: list = []
    lock = threading.Lock()

    def submitter(n: int) -> None:
        for i in range(400):
            f = pool.submit(lambda i=i: i)
            with lock:
                futures.append(f)
            if i % 50 == 0:
                time.sleep(0.002)  # let threads go idle and retire mid-stream

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(futures) == 3200
    assert sum(f.result(timeout=10) for f in futures) == 8 * sum(range(400))
    assert pool.thread_count <= 3
    pool.shutdown(wait=True)
