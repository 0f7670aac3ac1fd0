"""shutdown(), the context manager, cancel_futures, and shutdown racing with producers.

Ideas ported from CPython's Lib/test/test_concurrent_futures (test_shutdown.py, executor.py);
the code is our own.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading

import chanpool
import pytest
from helpers import exact, native_thread_names, no_native_threads, settled, wait_until, watchdog


def mul(x, y):
    return x * y


def spin(n):
    """Pure-Python work: holds the GIL between eval-breaker checks."""
    total = 0
    for i in range(n):
        total += i
    return total


def worker_threads(prefix):
    return [n for n in native_thread_names() if n.startswith(prefix + "_")]


def test_shutdown_is_idempotent(make_pool):
    p = make_pool(2)
    p.submit(mul, 1, 1).result(timeout=30)
    p.shutdown()
    p.shutdown()
    p.shutdown(wait=False)
    p.shutdown(wait=True, cancel_futures=True)
    assert p._shutdown
    exact(p, submitted=1, completed=1, workers=0)


def test_shutdown_before_any_work(make_pool):
    p = make_pool(2)
    p.shutdown()
    exact(p, submitted=0, workers=0)


def test_submit_after_shutdown(make_pool):
    p = make_pool(2)
    p.submit(mul, 1, 1).result(timeout=30)
    p.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        p.submit(mul, 1, 1)
    with pytest.raises(RuntimeError):
        p.try_submit(mul, 1, 1)
    with pytest.raises(RuntimeError):
        p.map(str, [1])
    # Not the broken-pool error: this pool is fine, just closed.
    with pytest.raises(RuntimeError) as ei:
        p.submit(mul, 1, 1)
    assert not isinstance(ei.value, cf.BrokenExecutor)
    p.shutdown()
    exact(p, submitted=1, completed=1)


def test_context_manager(make_pool):
    prefix = "cpctx"
    results = []
    with chanpool.WorkerPool(3, thread_name_prefix=prefix) as p:
        assert isinstance(p, chanpool.WorkerPool)
        fs = [p.submit(spin, 1000 + i) for i in range(50)]
    # __exit__ is shutdown(wait=True): everything ran and the threads are gone.
    assert all(f.done() for f in fs)
    results = [f.result() for f in fs]
    assert results == [spin(1000 + i) for i in range(50)]
    no_native_threads(prefix + "_")
    exact(p, submitted=50, completed=50, workers=0, running=0, queued=0, idle=0)
    with pytest.raises(RuntimeError):
        p.submit(mul, 1, 1)


def test_context_manager_propagates_and_still_shuts_down():
    with pytest.raises(KeyError):
        with chanpool.WorkerPool(2) as p:
            f = p.submit(mul, 2, 2)
            raise KeyError("body failed")
    assert f.result() == 4
    assert p._shutdown
    with pytest.raises(RuntimeError):
        p.submit(mul, 1, 1)


def test_shutdown_wait_true_waits_for_queued_and_running(make_pool):
    prefix = "cpwait"
    p = make_pool(2, thread_name_prefix=prefix)
    fs = [p.submit(spin, 20000) for _ in range(40)]
    watchdog(lambda: p.shutdown(wait=True), what="shutdown(wait=True)")
    assert all(f.done() for f in fs)
    assert {f.result() for f in fs} == {spin(20000)}
    no_native_threads(prefix + "_")
    exact(p, submitted=40, completed=40, workers=0, running=0, queued=0)


def test_shutdown_wait_false_lets_queued_work_finish(make_pool):
    prefix = "cpnowait"
    p = make_pool(1, thread_name_prefix=prefix)
    gate = threading.Event()
    first = p.submit(gate.wait, 30)
    rest = [p.submit(mul, i, 2) for i in range(20)]
    p.shutdown(wait=False)  # returns at once, the blocked task notwithstanding
    assert not first.done()
    gate.set()
    assert [f.result(timeout=30) for f in rest] == [2 * i for i in range(20)]
    wait_until(
        lambda: worker_threads(prefix) == [], what="workers to exit after shutdown(wait=False)"
    )
    exact(p, submitted=21, completed=21, cancelled=0, workers=0)


def test_cancel_futures(make_pool):
    """CPython's test_cancel_futures: queued work is cancelled, running work finishes."""
    p = make_pool(1)
    gate = threading.Event()
    started = threading.Event()

    def blocker():
        started.set()
        return gate.wait(30)

    first = p.submit(blocker)
    assert started.wait(30)
    ran = []
    queued = [p.submit(ran.append, i) for i in range(50)]
    p.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert not first.done()
    gate.set()
    assert first.result(timeout=30) is True
    watchdog(lambda: p.shutdown(wait=True))
    assert ran == []
    exact(p, submitted=51, completed=1, cancelled=50, failed=0, queued=0, workers=0)


def test_cancel_futures_wait_true(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    started = threading.Event()

    def blocker():
        started.set()
        gate.wait(30)
        return "done"

    first = p.submit(blocker)
    assert started.wait(30)
    queued = [p.submit(mul, i, 1) for i in range(10)]
    t = threading.Thread(target=lambda: p.shutdown(wait=True, cancel_futures=True))
    t.start()
    wait_until(lambda: all(f.cancelled() for f in queued), what="queued futures cancelled")
    assert t.is_alive()  # still waiting for the running task
    gate.set()
    t.join(30)
    assert not t.is_alive()
    assert first.result() == "done"
    exact(p, submitted=11, completed=1, cancelled=10, workers=0)


@pytest.mark.parametrize("workers", [1, 3])
def test_cancel_futures_cancels_pending_map_items(make_pool, workers):
    """TPE semantics: every map item that has not started is a pending future, and
    shutdown(cancel_futures=True) cancels it; the iterator then raises CancelledError.

    Observed: once the map's work is running, cancel_futures cancels none of its pending items;
    they all still run (next() yields every result).
    """
    p = make_pool(workers)
    gate = threading.Event()
    started = threading.Event()
    ran = []

    def f(i):
        ran.append(i)
        if i < workers:
            started.set()
            gate.wait(30)
        return i

    # One item per chunk, as TPE has one future per item (automatic chunks: test_pool_map_auto).
    it = p.map(f, range(20), chunksize=1)
    assert started.wait(30)
    wait_until(lambda: p.stats()["running"] == workers, what="the first items to run")
    p.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert [watchdog(lambda: next(it)) for _ in range(workers)] == list(range(workers))
    with pytest.raises(cf.CancelledError):
        watchdog(lambda: next(it))
    assert list(it) == []
    watchdog(lambda: p.shutdown(wait=True))
    assert sorted(ran) == list(range(workers))
    exact(p, submitted=20, completed=workers, cancelled=20 - workers, failed=0)


@pytest.mark.parametrize("buffersize", [None, 2])
def test_cancel_futures_cancels_the_rest_of_a_running_chunk(make_pool, buffersize):
    """With chunksize > 1 a chunk's items that have not started are pending too: cancel_futures
    cancels them even though their chunk is already running, and the eager iterator raises
    CancelledError for them at once (item 2, in the other chunk, is still running then)."""
    p = make_pool(2)
    gate0, consumed = threading.Event(), threading.Event()
    ran, released = [], []

    def f(i):
        ran.append(i)
        if i == 0:
            assert gate0.wait(30)
        elif i == 2:
            released.append(consumed.wait(10))
        return i

    it = p.map(f, range(6), chunksize=2, buffersize=buffersize)
    wait_until(lambda: p.stats()["running"] == 2, what="both chunks to run")
    p.shutdown(wait=False, cancel_futures=True)
    gate0.set()
    try:
        if buffersize is None:
            assert watchdog(lambda: next(it)) == 0
            with pytest.raises(cf.CancelledError):
                watchdog(lambda: next(it))
        else:
            # 3.14: topping up the buffer is a submit(), refused after shutdown.
            with pytest.raises(RuntimeError):
                watchdog(lambda: next(it))
        assert list(it) == []
    finally:
        consumed.set()
    watchdog(lambda: p.shutdown(wait=True))
    assert sorted(ran) == [0, 2]
    if buffersize is None:
        assert released == [True], "item 1's cancellation was held back behind item 2"
    submitted = 6 if buffersize is None else 4
    exact(p, submitted=submitted, completed=2, cancelled=submitted - 2, failed=0)


def test_cancel_futures_with_lazy_map(make_pool):
    """3.14 semantics: a lazy map tops its buffer up with submit(), which fails after shutdown
    (RuntimeError); the items it had queued are cancelled by cancel_futures."""
    p = make_pool(1)
    gate = threading.Event()
    started = threading.Event()
    ran = []

    def f(i):
        ran.append(i)
        if i == 0:
            started.set()
            gate.wait(30)
        return i

    it = p.map(f, range(20), buffersize=3)
    assert started.wait(30)
    p.shutdown(wait=False, cancel_futures=True)
    gate.set()
    with pytest.raises(RuntimeError):
        watchdog(lambda: next(it))
    assert list(it) == []
    watchdog(lambda: p.shutdown(wait=True))
    assert ran == [0]
    exact(p, submitted=3, completed=1, cancelled=2, failed=0)


def test_shutdown_race_issue12456(make_pool):
    """CPython issue #12456: shutdown right after a map must not hang."""
    for _ in range(20):
        p = make_pool(5)
        it = p.map(str, [2] * 6)
        watchdog(lambda p=p: p.shutdown(), what="shutdown right after map")
        assert list(it) == ["2"] * 6
        settled(p)


def test_shutdown_from_inside_a_task(make_pool):
    p = make_pool(2)
    gate = threading.Event()

    def closer(wait):
        p.shutdown(wait=wait)
        try:
            p.submit(mul, 1, 1)
        except RuntimeError:
            return "refused"
        return "accepted"

    queued_before = []
    blocker = p.submit(gate.wait, 30)
    f = p.submit(closer, True)
    # shutdown(wait=True) inside a worker waits for the *other* workers; let the blocker go.
    gate.set()
    assert watchdog(lambda: f.result()) == "refused"
    assert blocker.result() is True
    watchdog(lambda: p.shutdown(wait=True))
    exact(p, submitted=2, completed=2, workers=0)

    q = make_pool(1)
    g = q.submit(lambda: q.shutdown(wait=True))  # the only worker shuts its own pool down
    # shutdown() returns whether every worker stopped (ThreadPoolExecutor: None); from inside
    # a task that means every other one, the caller's own exiting when its task returns.
    assert watchdog(lambda: g.result()) is True
    watchdog(lambda: q.shutdown(wait=True))
    exact(q, submitted=1, completed=1, workers=0)
    assert queued_before == []


@pytest.mark.parametrize("queue_size", [0, 4])
@pytest.mark.parametrize("cancel_futures", [False, True])
def test_shutdown_races_with_producers(make_pool, queue_size, cancel_futures):
    """Producers keep submitting while the pool shuts down: every accepted task is accounted
    for, every returned future finishes, every refused submit raises RuntimeError."""
    for _round in range(6):
        p = make_pool(3, queue_size=queue_size)
        n_threads = 4
        start = threading.Barrier(n_threads + 1)
        futures = [[] for _ in range(n_threads)]
        refused = [0] * n_threads
        errors = []

        def producer(k, p=p, start=start, futures=futures, refused=refused, errors=errors):
            start.wait()
            i = 0
            while True:  # until the pool refuses
                try:
                    futures[k].append(p.submit(mul, i, 1))
                except RuntimeError:
                    refused[k] += 1
                    return
                except BaseException as e:
                    errors.append(e)
                    return
                i += 1
                if k == 0 and i == 100:
                    # Producer 0 closes the pool while the others are still submitting.
                    p.shutdown(wait=False, cancel_futures=cancel_futures)

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        start.wait()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        watchdog(lambda p=p: p.shutdown(wait=True))
        assert errors == []
        all_f = [f for fs in futures for f in fs]
        accepted = len(all_f)
        assert refused == [1] * n_threads
        assert all(f.done() for f in all_f), "shutdown(wait=True) returned with pending futures"
        completed = [f for f in all_f if not f.cancelled()]
        for f in completed:
            assert isinstance(f.result(), int)
        if not cancel_futures:
            assert len(completed) == accepted
        s = exact(
            p,
            submitted=accepted,
            completed=len(completed),
            failed=0,
            cancelled=accepted - len(completed),
            workers=0,
            queued=0,
            running=0,
        )
        assert s["submitted"] == accepted


def test_shutdown_while_submit_blocked_on_full_queue(make_pool):
    p = make_pool(1, queue_size=1)
    gate = threading.Event()
    p.submit(gate.wait, 30)
    p.submit(mul, 1, 1)
    out = {}

    def producer():
        try:
            out["future"] = p.submit(mul, 2, 2)
        except RuntimeError as e:
            out["error"] = e

    t = threading.Thread(target=producer)
    t.start()
    wait_until(lambda: p.stats()["queued"] == 1 and t.is_alive(), what="blocked producer")
    closer = threading.Thread(target=lambda: p.shutdown(wait=True))
    closer.start()
    gate.set()
    t.join(30)
    closer.join(30)
    assert not t.is_alive() and not closer.is_alive()
    if "future" in out:
        assert out["future"].result(timeout=30) == 4
    else:
        assert isinstance(out["error"], RuntimeError)
    settled(p)
    assert p.stats()["workers"] == 0
