"""WorkerPool construction, submit/try_submit, stats, worker lifecycle, initializer.

Ideas ported from CPython's Lib/test/test_concurrent_futures (executor.py, test_thread_pool.py,
test_init.py); the code is our own.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import logging
import os
import sys
import threading
import weakref

import chanpool
import pytest
from helpers import (
    STATS_KEYS,
    comm,
    exact,
    native_thread_names,
    no_native_threads,
    settled,
    top_frame_is,
    wait_until,
    watchdog,
)


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


def boom(msg="boom"):
    raise ValueError(msg)


def cpu_count():
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------------- construction


def test_module_exports():
    assert chanpool.BrokenThreadPool is cf.thread.BrokenThreadPool
    assert issubclass(chanpool.Future, cf.Future)
    assert isinstance(chanpool.__version__, str)


def test_default_max_workers():
    p = chanpool.WorkerPool()
    try:
        expected = min(32, cpu_count() + 4)
        assert p.max_workers == expected
        assert p._max_workers == expected
        assert p.stats()["max_workers"] == expected
        assert p.queue_size == 0
    finally:
        p.shutdown()


@pytest.mark.parametrize("n", [0, -1, -100])
def test_max_workers_not_positive(n):
    with pytest.raises(ValueError):
        chanpool.WorkerPool(n)
    with pytest.raises(ValueError):
        chanpool.WorkerPool(max_workers=n)


@pytest.mark.parametrize("bad", ["4", 2.5, [1]])
def test_max_workers_wrong_type(bad):
    with pytest.raises(TypeError):
        chanpool.WorkerPool(bad)


@pytest.mark.parametrize("n", [-1, -1000])
def test_queue_size_negative(n):
    with pytest.raises(ValueError):
        chanpool.WorkerPool(2, queue_size=n)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        chanpool.WorkerPool(2, 10)


def test_initializer_must_be_callable():
    with pytest.raises(TypeError):
        chanpool.WorkerPool(2, initializer=42)


def test_fresh_stats(make_pool):
    p = make_pool(3, queue_size=7)
    s = p.stats()
    assert set(s) == STATS_KEYS
    assert s == {
        "workers": 0,
        "idle": 0,
        "queued": 0,
        "running": 0,
        "submitted": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "waits": 0,
        "max_workers": 3,
        "queue_size": 7,
    }
    assert p.max_workers == 3
    assert p.queue_size == 7
    # No worker thread is started before there is work (TPE starts them on demand too).
    assert not any(n.startswith(comm(p._thread_name_prefix + "_")) for n in native_thread_names())


# ------------------------------------------------------------------------------------------ submit


def test_submit(make_pool):
    p = make_pool(2)
    f = p.submit(pow, 2, 8)
    assert isinstance(f, chanpool.Future)
    assert isinstance(f, cf.Future)
    assert f.result(timeout=30) == 256
    assert f.done() and not f.cancelled() and not f.running()
    assert f.exception() is None


def test_submit_keyword(make_pool):
    p = make_pool(2)
    assert p.submit(mul, 2, y=8).result() == 16
    # `fn` is positional-only: "fn" and "self" are ordinary keyword arguments for the task.
    assert p.submit(capture, 1, self=2, fn=3).result() == ((1,), {"self": 2, "fn": 3})
    assert p.try_submit(capture, fn=4).result() == ((), {"fn": 4})
    with pytest.raises(TypeError):
        p.submit(fn=capture, arg=1)
    with pytest.raises(TypeError):
        p.submit(arg=1)
    with pytest.raises(TypeError):
        p.submit()
    p.shutdown()
    exact(p, submitted=3, completed=3, failed=0, cancelled=0)


def test_submit_kwargs_are_not_shared(make_pool):
    p = make_pool(2)
    kw = {"a": 1}

    def mutate(**k):
        k["b"] = 2
        return k

    assert p.submit(mutate, **kw).result() == {"a": 1, "b": 2}
    assert kw == {"a": 1}


@pytest.mark.parametrize("bad", [None, 42, "text", object()])
def test_submit_non_callable(make_pool, bad):
    p = make_pool(2)
    p.submit(int).result()
    with pytest.raises(TypeError):
        p.submit(bad)
    with pytest.raises(TypeError):
        p.submit(bad, 1, x=2)
    with pytest.raises(TypeError):
        p.try_submit(bad)
    # A rejected call is not a task: the books only show the one real task.
    p.shutdown()
    exact(p, submitted=1, completed=1, failed=0, cancelled=0)


def test_task_exception_goes_to_future(make_pool):
    p = make_pool(2)
    f = p.submit(boom, "bad item")
    with pytest.raises(ValueError, match="bad item"):
        f.result()
    e = f.exception()
    assert isinstance(e, ValueError)
    p.shutdown()
    exact(p, submitted=1, completed=0, failed=1, cancelled=0)


def test_exceptions_never_kill_a_worker(make_pool):
    p = make_pool(1)
    fs = []
    for i in range(200):
        fs.append(p.submit(mul, i, 3) if i % 2 == 0 else p.submit(boom, str(i)))
    # BaseExceptions too: the task's SystemExit / KeyboardInterrupt belong to its future.
    fs.append(p.submit(sys.exit, 3))
    fs.append(p.submit(lambda: (_ for _ in ()).throw(KeyboardInterrupt())))
    fs.append(p.submit(mul, 6, 7))
    assert fs[-1].result(timeout=30) == 42
    for i in range(200):
        if i % 2 == 0:
            assert fs[i].result() == i * 3
        else:
            assert isinstance(fs[i].exception(), ValueError)
    assert isinstance(fs[200].exception(), SystemExit)
    assert isinstance(fs[201].exception(), KeyboardInterrupt)
    s = p.stats()
    assert s["workers"] == 1
    p.shutdown()
    exact(p, submitted=203, completed=101, failed=102, cancelled=0, workers=0)


def test_try_submit_full_queue(make_pool):
    gate = threading.Event()
    started = threading.Event()

    def blocker():
        started.set()
        return gate.wait(30)

    p = make_pool(1, queue_size=2)
    try:
        first = p.try_submit(blocker)
        assert first is not None
        assert started.wait(30)
        # The worker is busy: exactly queue_size more fit, the rest is refused without blocking.
        queued = [p.try_submit(mul, i, 2) for i in range(2)]
        assert all(isinstance(f, chanpool.Future) for f in queued)
        refused = [p.try_submit(mul, 1, 1) for _ in range(5)]
        assert refused == [None] * 5
        exact(p, submitted=3, queued=2, running=1, workers=1)
    finally:
        gate.set()
    assert first.result(timeout=30) is True
    assert [f.result(timeout=30) for f in queued] == [0, 2]
    # Room again.
    assert p.try_submit(mul, 5, 5).result(timeout=30) == 25
    p.shutdown()
    exact(p, submitted=4, completed=4, failed=0, cancelled=0, queued=0)


def test_try_submit_unbounded_never_refuses(make_pool):
    gate = threading.Event()
    p = make_pool(1)
    try:
        fs = [p.try_submit(gate.wait, 30)] + [p.try_submit(mul, i, 1) for i in range(500)]
        assert None not in fs
    finally:
        gate.set()
    assert [f.result(timeout=30) for f in fs[1:]] == list(range(500))
    p.shutdown()
    exact(p, submitted=501, completed=501)


# ------------------------------------------------------------------------------ worker lifecycle


def test_idle_thread_reuse(make_pool):
    """CPython's test_idle_thread_reuse: submit+result in sequence never needs a second thread.

    When result() returns, the single worker is about to go idle; the next submit must reuse it
    rather than start another thread.
    """
    extra = []
    for _round in range(20):
        p = make_pool(8)
        for i in range(50):
            assert p.submit(mul, i, 2).result(timeout=30) == 2 * i
        s = p.stats()
        if s["workers"] != 1:
            extra.append(s["workers"])
        p.shutdown()
        exact(p, submitted=50, completed=50, workers=0)
    assert not extra, f"{len(extra)} of 20 rounds started more than one thread: {extra}"


def test_idle_thread_reuse_once_worker_is_idle(make_pool):
    """Same, but each submit happens once the worker is observably idle."""
    p = make_pool(8)
    for i in range(50):
        assert p.submit(mul, i, 2).result(timeout=30) == 2 * i
        wait_until(lambda: p.stats()["idle"] >= 1, what="worker to go idle")
    s = p.stats()
    assert s["workers"] == 1, s
    prefix = comm(p._thread_name_prefix + "_")
    assert len([n for n in native_thread_names() if n.startswith(prefix)]) == 1
    p.shutdown()
    exact(p, submitted=50, completed=50, workers=0, idle=0)


def test_saturation(make_pool):
    """CPython's test_saturation: blocking tasks start exactly max_workers threads."""
    p = make_pool(4, thread_name_prefix="cpsat")
    gate = threading.Event()
    try:
        fs = [p.submit(gate.wait, 30) for _ in range(15 * 4)]
        wait_until(lambda: p.stats()["running"] == 4, what="4 running tasks")
        s = p.stats()
        assert s["workers"] == 4
        assert s["idle"] == 0
        assert s["queued"] == 60 - 4
        names = sorted(n for n in native_thread_names() if n.startswith("cpsat_"))
        assert names == ["cpsat_0", "cpsat_1", "cpsat_2", "cpsat_3"]
    finally:
        gate.set()
    assert all(f.result(timeout=30) for f in fs)
    assert p.stats()["workers"] <= 4
    p.shutdown()
    exact(p, submitted=60, completed=60, workers=0)
    no_native_threads("cpsat_")


def test_thread_name_prefix_and_names(make_pool):
    p = make_pool(2, thread_name_prefix="cpname")
    assert p._thread_name_prefix == "cpname"
    gate = threading.Event()
    try:
        p.submit(gate.wait, 30)
        p.submit(gate.wait, 30)
        wait_until(lambda: p.stats()["running"] == 2, what="2 running tasks")
        assert sorted(n for n in native_thread_names() if n.startswith("cpname")) == [
            "cpname_0",
            "cpname_1",
        ]
    finally:
        gate.set()


def test_long_thread_name_prefix_is_truncated_by_the_os(make_pool):
    prefix = "a-rather-long-thread-prefix"
    p = make_pool(1, thread_name_prefix=prefix)
    gate = threading.Event()
    try:
        p.submit(gate.wait, 30)
        wait_until(lambda: p.stats()["running"] == 1, what="running task")
        assert comm(prefix + "_0") in native_thread_names()
    finally:
        gate.set()


def test_default_thread_names_are_distinct_per_pool(make_pool):
    a, b = make_pool(1), make_pool(1)
    assert a._thread_name_prefix and b._thread_name_prefix
    assert a._thread_name_prefix != b._thread_name_prefix
    gate = threading.Event()
    try:
        a.submit(gate.wait, 30)
        b.submit(gate.wait, 30)
        wait_until(lambda: a.stats()["running"] == b.stats()["running"] == 1, what="tasks")
        names = native_thread_names()
        assert comm(a._thread_name_prefix + "_0") in names
        assert comm(b._thread_name_prefix + "_0") in names
    finally:
        gate.set()


def test_tasks_run_off_the_calling_thread(make_pool):
    p = make_pool(2)
    me = threading.get_native_id()
    ids = {p.submit(threading.get_native_id).result() for _ in range(20)}
    assert me not in ids
    assert 1 <= len(ids) <= 2


# ---------------------------------------------------------------------------- references (GC)


class Dummy:
    def method(self):
        return 42


def test_no_stale_references(make_pool):
    """CPython's test_no_stale_references: the pool drops a task's callable once it has run."""
    p = make_pool(2)
    obj = Dummy()
    collected = threading.Event()
    wr = weakref.ref(obj, lambda _: collected.set())
    p.submit(obj.method)  # the future is deliberately discarded
    del obj
    assert collected.wait(30), "the task's bound object was not released after it ran"
    assert wr() is None


def test_no_stale_references_arguments_and_kwargs(make_pool):
    p = make_pool(1)
    a, k = Dummy(), Dummy()
    ca, ck = threading.Event(), threading.Event()
    wa = weakref.ref(a, lambda _: ca.set())
    wk = weakref.ref(k, lambda _: ck.set())
    f = p.submit(capture, a, key=k)
    del a, k
    f.result(timeout=30)
    # The result still holds them (it *is* them); dropping the result must free everything.
    del f
    gc.collect()
    assert ca.wait(30) and ck.wait(30)
    assert wa() is None and wk() is None


def test_result_released_with_future(make_pool):
    p = make_pool(1)
    f = p.submit(Dummy)
    obj = f.result(timeout=30)
    wr = weakref.ref(obj)
    del obj, f
    gc.collect()
    assert wr() is None


class Init:
    def __call__(self):
        pass


def test_pool_releases_initializer_when_collected():
    init = Init()
    wr = weakref.ref(init)
    p = chanpool.WorkerPool(2, initializer=init)
    assert p.submit(mul, 3, 3).result(timeout=30) == 9
    p.shutdown()
    del p, init
    gc.collect()
    assert wr() is None


def test_dropping_unshut_pool_still_runs_queued_work():
    """Like an unreferenced ThreadPoolExecutor, queued work still runs; workers then exit."""
    gate = threading.Event()
    done = []
    p = chanpool.WorkerPool(1, thread_name_prefix="cpdrop")
    p.submit(gate.wait, 30)
    fs = [p.submit(done.append, i) for i in range(100)]
    del p
    gc.collect()
    gate.set()
    for f in fs:
        f.result(timeout=30)
    assert done == list(range(100))
    wait_until(
        lambda: not [n for n in native_thread_names() if n.startswith("cpdrop")],
        what="workers of the dropped pool to exit",
    )


# ------------------------------------------------------------------------------------ initializer


def test_initializer_runs_once_per_worker(make_pool):
    seen = []
    local = threading.local()
    lock = threading.Lock()

    def init(tag, extra):
        with lock:
            seen.append((tag, extra, threading.get_native_id()))
        local.tag = tag

    gate = threading.Event()

    def task():
        gate.wait(30)
        return local.tag

    p = make_pool(3, initializer=init, initargs=["x", 7])  # any sequence works, like TPE
    try:
        fs = [p.submit(task) for _ in range(9)]
        wait_until(lambda: p.stats()["running"] == 3, what="3 running tasks")
    finally:
        gate.set()
    assert [f.result(timeout=30) for f in fs] == ["x"] * 9
    assert len(seen) == 3
    assert {s[:2] for s in seen} == {("x", 7)}
    assert len({s[2] for s in seen}) == 3


def test_initializer_failure_breaks_pool(make_pool, caplog):
    """CPython's FailingInitializer tests: pending work fails with BrokenThreadPool."""
    caplog.set_level(logging.DEBUG, logger="chanpool")
    go = threading.Event()

    def init():
        go.wait(30)
        raise ValueError("error in initializer")

    p = make_pool(2, initializer=init)
    fs = [p.submit(mul, i, 1) for i in range(10)]
    go.set()
    for f in fs:
        e = f.exception(timeout=30)
        assert isinstance(e, chanpool.BrokenThreadPool), e
        assert isinstance(e, cf.BrokenExecutor)
        with pytest.raises(chanpool.BrokenThreadPool):
            f.result()
    # From the moment one future failed that way, the pool is broken for everyone.
    assert p._broken
    with pytest.raises(chanpool.BrokenThreadPool):
        p.submit(mul, 1, 1)
    with pytest.raises(chanpool.BrokenThreadPool):
        p.try_submit(mul, 1, 1)
    with pytest.raises(chanpool.BrokenThreadPool):
        p.map(str, range(3))
    p.shutdown()
    exact(p, submitted=10, completed=0, failed=10, cancelled=0, workers=0, queued=0)
    records = [r for r in caplog.records if r.name == "chanpool" and r.levelno >= logging.ERROR]
    assert records, "the initializer failure was not logged on 'chanpool'"
    assert any(
        r.exc_info
        and isinstance(r.exc_info[1], ValueError)
        and "error in initializer" in str(r.exc_info[1])
        for r in records
    ), [r.getMessage() for r in records]


def test_initializer_failure_with_pending_map(make_pool, caplog):
    caplog.set_level(logging.CRITICAL, logger="chanpool")
    go = threading.Event()

    def init():
        go.wait(30)
        raise ValueError("error in initializer")

    p = make_pool(2, initializer=init)
    eager = p.map(str, range(20))
    lazy = p.map(str, range(20), buffersize=3)
    go.set()
    with pytest.raises(chanpool.BrokenThreadPool):
        watchdog(lambda: next(eager), what="eager map on a broken pool")
    with pytest.raises(chanpool.BrokenThreadPool):
        watchdog(lambda: next(lazy), what="lazy map on a broken pool")
    assert list(eager) == [] and list(lazy) == []
    p.shutdown()
    settled(p)
    assert p.stats()["completed"] == 0


def test_initializer_failure_while_submit_blocked_on_full_queue(make_pool, caplog):
    """A submit blocked on a full queue when the pool breaks must not hand out a dead future.

    Either the blocked submit raises BrokenThreadPool, or the future it returns fails with
    BrokenThreadPool. Observed: the job lands in the queue after the broken pool drained it, no
    worker is left, and the future stays pending forever (stats shows queued=1).
    """
    caplog.set_level(logging.CRITICAL, logger="chanpool")
    for _ in range(5):
        go = threading.Event()

        def init(go=go):
            go.wait(30)
            raise ValueError("error in initializer")

        p = make_pool(1, queue_size=1, initializer=init)
        # The first job goes to the new worker (stuck in init), the second fills the queue.
        first = p.submit(mul, 1, 1)
        second = p.submit(mul, 1, 1)
        out = {}

        def producer(p=p, out=out):
            try:
                out["future"] = p.submit(mul, 2, 2)
            except BaseException as exc:
                out["error"] = exc

        code = producer.__code__
        t = threading.Thread(target=producer)
        t.start()
        wait_until(
            lambda t=t, code=code, p=p: top_frame_is(t.ident, code) and p.stats()["queued"] == 1,
            what="producer blocked in submit",
        )
        go.set()
        t.join(30)
        assert not t.is_alive()
        assert isinstance(first.exception(timeout=30), chanpool.BrokenThreadPool)
        assert isinstance(second.exception(timeout=30), chanpool.BrokenThreadPool)
        if "error" in out:
            assert isinstance(out["error"], chanpool.BrokenThreadPool), out
        else:
            try:
                e = out["future"].exception(timeout=5)
            except cf.TimeoutError:
                pytest.fail(f"future from a submit racing the breakage never finished: {p.stats()}")
            assert isinstance(e, chanpool.BrokenThreadPool), e
        settled(p)
