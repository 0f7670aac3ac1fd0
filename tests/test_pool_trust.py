"""Issue 8 ("Trust"), WorkerPool part: each reported defect, reproduced as a test that failed
before its fix, plus the stress test that keeps the books exact under racing shutdowns.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import pydoc
import sys
import threading

import chanpool
import pytest
from helpers import assert_clean_exit, run_py, settled, top_frame_is, wait_until, watchdog

# ------------------------------------------------------------------ ThreadPoolExecutor face


def test_worker_pool_is_a_thread_pool_executor_without_its_machinery():
    before = set(threading.enumerate())
    p = chanpool.WorkerPool(2)
    try:
        assert isinstance(p, cf.ThreadPoolExecutor)
        assert isinstance(p, cf.Executor)
        # None of the stock executor's state or helpers exist, and no Python thread starts.
        for name in (
            "_work_queue",
            "_threads",
            "_idle_semaphore",
            "_adjust_thread_count",
            "_initializer_failed",
            "_counter",
            "_shutdown_lock",
        ):
            assert not hasattr(p, name), name
        assert [p.submit(pow, 2, i).result(timeout=30) for i in range(5)] == [1, 2, 4, 8, 16]
        # No Python thread is started: the only new entries are the native workers' own (named
        # like them, as the threads a task sees), and they leave with the workers.
        extra = [t for t in threading.enumerate() if t not in before]
        assert len(extra) == p.stats()["workers"], extra
        assert all(t.name.startswith(p._thread_name_prefix + "_") for t in extra), extra
        assert not any(type(t) is threading.Thread for t in extra), extra
        assert p._max_workers == 2 and p._shutdown is False
        text = pydoc.render_doc(chanpool.WorkerPool, renderer=pydoc.plaintext)
        assert "ThreadPoolExecutor" in text  # in the bases, which is the point
        assert "_adjust_thread_count" not in text
        assert "chunksize=None" in text and "Ellipsis" not in text
        assert "queue_size" in text and "thread_name_prefix" in text
    finally:
        p.shutdown()
    assert set(threading.enumerate()) == before


def test_set_default_executor_accepts_a_worker_pool():
    import asyncio

    p = chanpool.WorkerPool(2)

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(p)
        a = await loop.run_in_executor(None, pow, 2, 10)
        b = await asyncio.to_thread(pow, 3, 3)
        return a, b

    assert asyncio.run(main()) == (1024, 27)
    # asyncio.run shut the default executor down.
    assert p._shutdown


# ------------------------------------------------------------------ shutdown(cancel_futures)


def test_cancel_futures_right_after_submits_lets_started_tasks_finish():
    """CPython's test_cancel_futures: workers take their first job at once, so some of the 50
    run while most are cancelled (chanpool cancelled all 50)."""
    for _ in range(20):
        p = chanpool.WorkerPool(5)
        gate = threading.Event()
        fs = [p.submit(gate.wait, 30) for _ in range(50)]
        p.shutdown(wait=False, cancel_futures=True)
        # Each of the five threads was started with its job: exactly those five run.
        assert [f.cancelled() for f in fs] == [False] * 5 + [True] * 45
        gate.set()
        p.shutdown(wait=True)
        assert all(f.result() is True for f in fs[:5])
        s = settled(p)
        assert (s["cancelled"], s["completed"]) == (45, 5), s


# ------------------------------------------------------------------ thread names and spawn


def test_nul_in_thread_name_prefix_is_a_value_error_at_construction():
    with pytest.raises(ValueError, match="thread_name_prefix"):
        chanpool.WorkerPool(thread_name_prefix="a\x00b")


# ------------------------------------------------------------------ submit vs shutdown


def test_a_submit_blocked_before_shutdown_is_never_accepted_after_it():
    """The blocked submitter used a clone of the queue's sender, so it got in once the worker
    made room after shutdown(): a future accepted by a shut-down pool."""
    for _ in range(10):
        _blocked_submit_vs_shutdown()


def _blocked_submit_vs_shutdown():
    if True:
        p = chanpool.WorkerPool(1, queue_size=1)
        gate = threading.Event()
        running = p.submit(gate.wait, 30)  # the worker's first job
        queued = p.submit(pow, 2, 2)  # fills the queue
        out = {}

        def producer():
            try:
                out["future"] = p.submit(pow, 3, 3)
            except RuntimeError as e:
                out["error"] = e

        code = producer.__code__
        t = threading.Thread(target=producer)
        t.start()
        wait_until(lambda: top_frame_is(t.ident, code), what="producer blocked in submit")
        p.shutdown(wait=False)
        gate.set()
        t.join(30)
        assert "future" not in out, "a submit was accepted after shutdown"
        assert "after shutdown" in str(out["error"])
        assert running.result(timeout=30) is True and queued.result(timeout=30) == 4
        p.shutdown()
        s = settled(p)
        assert s["submitted"] == 2, s


# ------------------------------------------------------------------ timeouts


@pytest.mark.parametrize("timeout", [math.inf, 1e19, 9.3e18, 1.7e19])
def test_huge_timeouts_wait_forever_without_panicking(make_pool, timeout):
    p = make_pool(2)
    assert p.submit(pow, 2, 5).result(timeout=timeout) == 32
    assert p.submit(pow, 2, 5).exception(timeout=timeout) is None
    assert list(p.map(abs, [-1, -2], timeout=timeout)) == [1, 2]
    assert list(p.map(abs, [-1, -2], timeout=timeout, buffersize=1)) == [1, 2]
    p.shutdown(wait=True)


def test_nan_timeouts_are_value_errors(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    f = p.submit(gate.wait, 30)
    with pytest.raises(ValueError):
        f.result(timeout=math.nan)
    with pytest.raises(ValueError):
        f.exception(timeout=math.nan)
    with pytest.raises(ValueError):
        p.map(abs, [1], timeout=math.nan)
    gate.set()
    assert f.result(timeout=30) is True
    s = settled(p)
    assert s["submitted"] == 1, s


# ------------------------------------------------------------------ argument checks


def test_shutdown_reads_its_flags_by_truth_value_like_tpe(make_pool):
    for args, kwargs in (((0,), {}), ((), {"wait": 1, "cancel_futures": 0}), ((1,), {})):
        p = chanpool.WorkerPool(1)
        f = p.submit(pow, 2, 3)
        p.shutdown(*args, **kwargs)
        assert f.result(timeout=30) == 8
        t = cf.ThreadPoolExecutor(1)
        t.submit(pow, 2, 3)
        t.shutdown(*args, **kwargs)


def test_initargs_takes_any_iterable_like_tpe(make_pool):
    seen = []

    def init(*a):
        seen.append(a)

    for initargs in ([1, 2], (1, 2), iter([1, 2]), (x for x in (1, 2)), range(1, 3)):
        seen.clear()
        p = make_pool(1, initializer=init, initargs=initargs)
        p.submit(int).result(timeout=30)
        p.shutdown()
        assert seen == [(1, 2)]
    with pytest.raises(TypeError):
        chanpool.WorkerPool(1, initializer=init, initargs=5)


@pytest.mark.parametrize("name", ["max_workers", "queue_size"])
def test_out_of_range_counts_are_value_errors_naming_the_parameter(name):
    low = 0 if name == "max_workers" else -1
    for bad in (low, -(2**70), 2**70):
        with pytest.raises(ValueError, match=name):
            chanpool.WorkerPool(**{name: bad})
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError):
            chanpool.WorkerPool(**{name: bad})
    # ThreadPoolExecutor raises the same ValueError for max_workers <= 0.
    if name == "max_workers":
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            cf.ThreadPoolExecutor(0)
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            chanpool.WorkerPool(0)


def test_map_counts_are_checked_before_anything_is_queued(make_pool):
    p = make_pool(1)
    for kwargs, exc in (
        ({"chunksize": 0}, ValueError),
        ({"chunksize": 2**80}, ValueError),
        ({"chunksize": 1.0}, TypeError),
        ({"buffersize": 0}, ValueError),
        ({"buffersize": 1.0}, TypeError),
        ({"buffersize": True}, TypeError),
    ):
        with pytest.raises(exc):
            p.map(abs, [1, 2], **kwargs)
    assert p.stats()["submitted"] == 0


def test_map_timeout_is_refused_like_every_other_timeout_naming_it(make_pool):
    # Issue 9: map's timeout goes through the shared Timeout type (a bool is its int, as
    # ThreadPoolExecutor.map takes it).
    p = make_pool(1)
    for bad in ("1", [1.0]):
        for lazy in ({}, {"buffersize": 1}):
            with pytest.raises(TypeError, match="timeout"):
                p.map(abs, [1, 2], timeout=bad, **lazy)
    assert p.stats()["submitted"] == 0
    assert list(p.map(abs, [-1, -2], timeout=True)) == [1, 2]
    # A huge int is forever, as with Future.result and the other classes.
    assert list(p.map(abs, [-1, -2], timeout=10**400)) == [1, 2]


def test_map_iterator_entered_from_two_threads_is_a_clear_error(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    it = p.map(gate.wait, [30, 30])
    errors = []

    def consume():
        next(it)

    t = threading.Thread(target=consume)
    t.start()
    wait_until(lambda: top_frame_is(t.ident, consume.__code__), what="consumer inside next()")
    for call in (lambda: next(it), it.close):
        with pytest.raises(ValueError, match="already executing"):
            call()
    gate.set()
    t.join(30)
    assert not errors
    assert list(it) == [True]


# ------------------------------------------------------------------ native stacks


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="CPython 3.12+ caps C recursion itself (RecursionError long before 2 MiB)",
)
def test_deep_recursion_through_c_in_a_task_reaches_tpe_depth():
    """A recursive __repr__ recurses through C (PyObject_Repr), so it uses the native stack:
    on Rust's 2 MiB default it segfaulted where ThreadPoolExecutor's 8 MiB threads get
    through (15,000 levels of this recursion need more than 2 MiB)."""
    proc = run_py(
        """
import sys, concurrent.futures as cf, chanpool
sys.setrecursionlimit(1_000_000)
class Node:
    def __init__(self, child):
        self.child = child
    def __repr__(self):
        return "(" + (repr(self.child) if self.child is not None else "") + ")"
def deep(n):
    node = None
    for _ in range(n):
        node = Node(node)
    return len(repr(node))
with cf.ThreadPoolExecutor(1) as t:
    assert t.submit(deep, 15_000).result() == 30_000
print("tpe ok", flush=True)
with chanpool.WorkerPool(1) as p:
    assert p.submit(deep, 15_000).result() == 30_000
    assert list(p.map(deep, [15_000])) == [30_000]
print("ok")
""",
        timeout=120,
    )
    assert_clean_exit(proc, "ok")


STACK_SIZE_PROBE = """
import ctypes, ctypes.util, threading, chanpool
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
def stack_size():
    attr = ctypes.create_string_buffer(128)
    assert libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr) == 0
    size = ctypes.c_size_t()
    assert libc.pthread_attr_getstacksize(attr, ctypes.byref(size)) == 0
    libc.pthread_attr_destroy(attr)
    return size.value
libc.pthread_self.restype = ctypes.c_ulong
def on_thread():
    box = []
    t = threading.Thread(target=lambda: box.append(stack_size()))
    t.start(); t.join()
    return box[0]
"""


def test_worker_stacks_match_python_threads_and_honour_threading_stack_size():
    proc = run_py(
        STACK_SIZE_PROBE
        + """
default = on_thread()
with chanpool.WorkerPool(1) as p:
    assert p.submit(stack_size).result() == default, (p.submit(stack_size).result(), default)
threading.stack_size(32 << 20)
assert on_thread() == 32 << 20
with chanpool.WorkerPool(1) as p:
    got = p.submit(stack_size).result()
    assert got == 32 << 20, got
print("ok", default)
"""
    )
    assert_clean_exit(proc)
    assert proc.stdout.startswith("ok"), proc.stdout


# ------------------------------------------------------------------ fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_from_a_non_main_thread_makes_the_childs_thread_main():
    """Waits in the child ignored Ctrl-C: the main-thread identity was the parent's."""
    proc = run_py(
        """
import os, sys, threading, time, _thread, signal, chanpool
def child():
    signal.alarm(20)
    ch = chanpool.Channel()
    threading.Timer(0.3, _thread.interrupt_main).start()
    try:
        ch.recv()
    except KeyboardInterrupt:
        os._exit(0)
    os._exit(5)
def forker(out):
    pid = os.fork()
    if pid == 0:
        child()
    out.append(pid)
out = []
t = threading.Thread(target=forker, args=(out,))
t.start(); t.join()
_, status = os.waitpid(out[0], 0)
print("child", os.waitstatus_to_exitcode(status))
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip() == "child 0", proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_inherited_pool_and_iterator_refuse_without_touching_parent_held_locks():
    """Forked while another thread is blocked inside submit (it holds the queue's sender
    lock): every call on the inherited pool and map iterator answers at once in the child."""
    proc = run_py(
        """
import os, sys, threading, time, signal, chanpool
p = chanpool.WorkerPool(1, queue_size=2)
gate = threading.Event()
p.submit(gate.wait, 60)
p.submit(pow, 2, 2)
it = p.map(pow, [2, 2], [1, 2], buffersize=1)   # its first chunk fills the queue
started = threading.Event()
def producer():
    started.set()
    try:
        p.submit(pow, 3, 3)
    except RuntimeError:
        pass
threading.Thread(target=producer, daemon=True).start()
started.wait()
time.sleep(0.05)  # let the producer reach its blocking send (not a correctness wait)
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    code = 0
    for bit, call in ((1, lambda: p.submit(pow, 1, 1)), (2, lambda: p.try_submit(pow, 1, 1)),
                      (4, lambda: p.map(pow, [1], [1])), (8, lambda: next(it)),
                      (16, it.close)):
        try:
            call()
            code |= bit
        except RuntimeError:
            pass
    p.shutdown(wait=True)
    p.stats(); repr(p)
    os._exit(code)
_, status = os.waitpid(pid, 0)
gate.set()
print("child", os.waitstatus_to_exitcode(status))
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip() == "child 0", proc.stdout


# ------------------------------------------------------------------ stress


def test_submitters_cancel_and_shutdown_racing_keep_exact_books():
    """Many submitting threads, cancels and a shutdown(cancel_futures=True) racing: every
    accepted future ends exactly once (done, cancelled or failed) and stats() adds up."""

    def scenario():
        for round_ in range(30):
            _racing_round(round_)

    watchdog(scenario, timeout=120, what="racing submit/cancel/shutdown")


def _racing_round(round_):
    if True:
        if True:
            p = chanpool.WorkerPool(4, queue_size=8 if round_ % 2 else 0)
            accepted: list = []
            refused = [0]
            lock = threading.Lock()
            barrier = threading.Barrier(7)

            def submitter(k):
                barrier.wait()
                for i in range(300):
                    try:
                        f = p.submit(pow, 2, i % 10) if i % 3 else p.submit(int, "x")
                    except RuntimeError:
                        with lock:
                            refused[0] += 1
                        continue
                    if i % 7 == 0:
                        f.cancel()
                    with lock:
                        accepted.append(f)

            def stopper():
                barrier.wait()
                p.shutdown(wait=True, cancel_futures=True)

            threads = [threading.Thread(target=submitter, args=(k,)) for k in range(6)]
            threads.append(threading.Thread(target=stopper))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            p.shutdown(wait=True)
            ends = {"done": 0, "cancelled": 0, "failed": 0}
            for f in accepted:
                assert f.done()
                if f.cancelled():
                    ends["cancelled"] += 1
                elif f.exception() is not None:
                    ends["failed"] += 1
                else:
                    ends["done"] += 1
            assert len(accepted) + refused[0] == 6 * 300
            s = settled(p)
            assert s["submitted"] == len(accepted), (s, len(accepted))
            assert (s["completed"], s["failed"], s["cancelled"]) == (
                ends["done"],
                ends["failed"],
                ends["cancelled"],
            ), (s, ends)
            assert (s["queued"], s["running"], s["workers"]) == (0, 0, 0), s


def test_thread_spawn_failure_is_a_runtime_error_and_loses_nothing():
    """A worker that cannot be started (here: a stack no mmap can give) used to leave the task
    queued with no thread to run it; now submit and map raise, and nothing is accepted."""
    proc = run_py(
        """
import threading, chanpool
threading.stack_size(1 << 46)
p = chanpool.WorkerPool(2)
for call in (lambda: p.submit(pow, 2, 2), lambda: p.map(abs, [1, 2])):
    try:
        call()
    except RuntimeError as e:
        assert "can't start new thread" in str(e), e
    else:
        raise AssertionError("accepted without a thread")
s = p.stats()
assert (s["submitted"], s["queued"], s["workers"]) == (0, 0, 0), s
threading.stack_size(0)
q = chanpool.WorkerPool(2)
assert q.submit(pow, 2, 2).result(timeout=30) == 4
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")
