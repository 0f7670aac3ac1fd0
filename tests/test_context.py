"""Context (Go's context.Context), run_with_timeout and WorkerPool.submit_with."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import logging
import random
import threading
import time
import weakref

import chanpool
import pytest
from chanpool import _context
from helpers import assert_clean_exit, run_py, wait_until, watchdog

# ------------------------------------------------------------------------------ basics


def test_root_context_is_active_until_cancelled():
    ctx = chanpool.Context()
    assert ctx.err is None and not ctx.cancelled
    assert ctx.deadline is None and ctx.remaining() is None
    assert ctx.wait(0) is False
    ctx.raise_if_cancelled()
    assert ctx.cancel() is True
    assert ctx.cancel() is False
    assert isinstance(ctx.err, chanpool.Cancelled)
    assert isinstance(ctx.err, cf.CancelledError)
    assert not isinstance(ctx.err, chanpool.DeadlineExceeded)
    assert ctx.cancelled and ctx.wait() is True and ctx.wait(0) is True
    with pytest.raises(chanpool.Cancelled):
        ctx.raise_if_cancelled()
    # done is a closed channel: receiving ends at once, and select sees it.
    assert ctx.done.closed
    with pytest.raises(chanpool.Closed):
        ctx.done.recv()
    assert chanpool.select([chanpool.Channel(), ctx.done]) == (1, None, False)


def test_raise_if_cancelled_does_not_pile_up_tracebacks():
    ctx = chanpool.Context()
    ctx.cancel()
    depths = []
    for _ in range(3):
        try:
            ctx.raise_if_cancelled()
        except chanpool.Cancelled as e:
            tb, n = e.__traceback__, 0
            while tb is not None:
                n, tb = n + 1, tb.tb_next
            depths.append(n)
    assert depths[0] == depths[1] == depths[2]


def test_cancel_reaches_every_descendant_but_never_the_parent():
    root = chanpool.Context()
    a, b = root.with_cancel(), root.with_cancel()
    a1, a2 = a.with_cancel(), a.with_timeout(3600)
    a11 = a1.with_cancel()
    assert a.cancel()
    assert all(c.cancelled for c in (a, a1, a2, a11))
    assert a1.err is a.err and a11.err is a.err and a2.err is a.err
    assert not root.cancelled and not b.cancelled
    root.cancel()
    assert b.cancelled and b.err is root.err


def test_child_of_an_ended_context_starts_ended():
    root = chanpool.Context()
    root.cancel()
    for child in (root.with_cancel(), root.with_timeout(3600), root.with_deadline(1e12)):
        assert child.cancelled and child.err is root.err
        assert child.wait(0)


def test_ended_children_are_released_by_the_parent():
    root = chanpool.Context()
    refs = []
    for _ in range(2000):
        c = root.with_timeout(3600)
        refs.append(weakref.ref(c))
        c.cancel()
    del c
    assert len(root._children) == 0
    gc.collect()
    assert all(r() is None for r in refs)
    # The timer does not keep thousands of dead entries either.
    assert len(_context._timer._heap) <= 2 * len(_context._timer._live) + 64


def test_context_manager_cancels_on_exit():
    with chanpool.Context().with_cancel() as ctx:
        assert not ctx.cancelled
    assert isinstance(ctx.err, chanpool.Cancelled)


# ------------------------------------------------------------------------------ deadlines


def test_timeout_expires_with_deadline_exceeded():
    ctx = chanpool.Context().with_timeout(0.05)
    assert ctx.deadline is not None and 0 < ctx.remaining() <= 0.05
    t0 = time.monotonic()
    assert ctx.wait(30)
    assert time.monotonic() - t0 >= 0.04
    assert isinstance(ctx.err, chanpool.DeadlineExceeded)
    assert isinstance(ctx.err, TimeoutError) and isinstance(ctx.err, cf.TimeoutError)
    assert isinstance(ctx.err, chanpool.Cancelled)
    assert ctx.remaining() == 0.0


def test_child_deadline_never_outlives_the_parent():
    parent = chanpool.Context().with_timeout(0.05)
    child = parent.with_timeout(3600)
    assert child.deadline == parent.deadline
    assert child.wait(30)
    assert child.err is parent.err
    earlier = chanpool.Context().with_timeout(3600).with_timeout(0.01)
    assert earlier.wait(30) and isinstance(earlier.err, chanpool.DeadlineExceeded)


@pytest.mark.parametrize("timeout", [0, -1, 0.0])
def test_past_deadlines_expire_promptly(timeout):
    ctx = chanpool.Context().with_timeout(timeout)
    assert ctx.wait(30)
    assert isinstance(ctx.err, chanpool.DeadlineExceeded)


def test_many_deadlines_from_many_threads_all_fire_once():
    n_threads, per_thread = 8, 250
    fired = []
    lock = threading.Lock()
    contexts = []
    rng = random.Random(7)
    delays = [[rng.uniform(0, 0.05) for _ in range(per_thread)] for _ in range(n_threads)]

    def make(ds):
        mine = []
        for d in ds:
            c = chanpool.Context().with_timeout(d)
            c.on_cancel(lambda c=c: (lock.acquire(), fired.append(id(c)), lock.release()))
            mine.append(c)
        with lock:
            contexts.extend(mine)

    ts = [threading.Thread(target=make, args=(ds,)) for ds in delays]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for c in contexts:
        assert c.wait(30)
        assert isinstance(c.err, chanpool.DeadlineExceeded)
    wait_until(lambda: len(fired) == n_threads * per_thread, what="every callback")
    assert sorted(fired) == sorted(id(c) for c in contexts)


def test_concurrent_cancel_ends_the_context_exactly_once():
    for _ in range(200):
        ctx = chanpool.Context()
        calls = []
        ctx.on_cancel(lambda calls=calls: calls.append(1))
        barrier = threading.Barrier(6)
        results = []

        def go(ctx=ctx, barrier=barrier, results=results):
            barrier.wait()
            results.append(ctx.cancel())

        ts = [threading.Thread(target=go) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(results) == [False] * 5 + [True]
        assert calls == [1]


# ------------------------------------------------------------------------------ callbacks


def test_on_cancel_runs_once_and_can_be_unregistered():
    ctx = chanpool.Context()
    calls = []
    ctx.on_cancel(lambda: calls.append("a"))
    unregister = ctx.on_cancel(lambda: calls.append("b"))
    unregister()
    ctx.cancel()
    ctx.cancel()
    assert calls == ["a"]
    ctx.on_cancel(lambda: calls.append("late"))  # already ended: runs at once
    assert calls == ["a", "late"]


def test_a_failing_callback_is_logged_and_the_others_still_run(caplog):
    ctx = chanpool.Context()
    calls = []
    ctx.on_cancel(lambda: 1 / 0)
    ctx.on_cancel(lambda: calls.append(1))
    with caplog.at_level(logging.ERROR, logger="chanpool"):
        assert ctx.cancel()
    assert calls == [1]
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda c: c.with_timeout("1"), TypeError),
        (lambda c: c.with_timeout(None), TypeError),
        (lambda c: c.with_timeout(True), TypeError),
        (lambda c: c.with_timeout(float("nan")), ValueError),
        (lambda c: c.with_deadline([]), TypeError),
        (lambda c: c.on_cancel(3), TypeError),
        (lambda c: c.wait("x"), TypeError),
    ],
)
def test_bad_input_is_refused_clearly(call, exc):
    ctx = chanpool.Context()
    with pytest.raises(exc):
        call(ctx)
    assert not ctx.cancelled and len(ctx._children) == 0


# ------------------------------------------------------------------------------ submit_with


def test_cancel_reaches_queued_work(make_pool):
    for _round in range(20):
        p = make_pool(1)
        gate = threading.Event()
        blocker = p.submit(gate.wait, 30)
        ctx = chanpool.Context()
        ran = []
        futures = [p.submit_with(ctx, ran.append, i) for i in range(100)]
        ctx.cancel()
        gate.set()
        assert blocker.result(timeout=30) is True
        assert all(f.cancelled() for f in futures)
        p.shutdown(wait=True)
        assert ran == []
        s = p.stats()
        assert s["cancelled"] == 100 and s["completed"] == 1, s


def test_deadline_reaches_queued_work(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    p.submit(gate.wait, 30)
    ctx = chanpool.Context().with_timeout(0.02)
    futures = [p.submit_with(ctx, int, i) for i in range(50)]
    assert ctx.wait(30)
    gate.set()
    for f in futures:
        with pytest.raises(cf.CancelledError):
            f.result(timeout=30)


def test_running_work_sees_its_context_and_can_stop(make_pool):
    p = make_pool(4)
    ctx = chanpool.Context()
    started = threading.Barrier(5)

    def task(i):
        me = chanpool.current_context()
        assert me is ctx
        started.wait(30)
        assert me.wait(30)  # cooperative: stops once cancelled
        return i

    futures = [p.submit_with(ctx, task, i) for i in range(4)]
    started.wait(30)
    ctx.cancel()
    assert [f.result(timeout=30) for f in futures] == [0, 1, 2, 3]
    assert chanpool.current_context() is None
    # The context does not leak into later plain submits on the same threads.
    assert [p.submit(chanpool.current_context).result(timeout=30) for _ in range(8)] == [None] * 8


def test_submit_with_an_ended_context_never_runs(make_pool):
    p = make_pool(2)
    ctx = chanpool.Context()
    ctx.cancel()
    ran = []
    f = p.submit_with(ctx, ran.append, 1)
    with pytest.raises(cf.CancelledError):
        f.result(timeout=30)
    p.shutdown(wait=True)
    assert ran == []


def test_finished_work_unregisters_from_a_long_lived_context(make_pool):
    p = make_pool(2)
    ctx = chanpool.Context()
    futures = [p.submit_with(ctx, abs, -i) for i in range(500)]
    assert [f.result(timeout=30) for f in futures] == list(range(500))
    wait_until(lambda: len(ctx._callbacks) == 0, what="callbacks unregistered")


def test_submit_with_bad_input(make_pool):
    p = make_pool(1)
    with pytest.raises(TypeError, match="Context"):
        p.submit_with(None, abs, 1)
    with pytest.raises(TypeError, match="callable"):
        p.submit_with(chanpool.Context(), 3)
    assert p.stats()["submitted"] == 0


# ------------------------------------------------------------------------------ run_with_timeout


def test_run_with_timeout_returns_the_result_or_raises_its_exception():
    assert chanpool.run_with_timeout(pow, 5, 2, 10) == 1024
    assert chanpool.run_with_timeout(dict, 5, a=1) == {"a": 1}
    with pytest.raises(ZeroDivisionError):
        chanpool.run_with_timeout(lambda: 1 / 0, 5)


def test_run_with_timeout_gives_up_and_cancels_the_work_context():
    saw_cancel = threading.Event()
    gate = threading.Event()

    def slow():
        ctx = chanpool.current_context()
        assert ctx is not None
        ctx.wait(30)
        if isinstance(ctx.err, chanpool.DeadlineExceeded):
            saw_cancel.set()
        gate.wait(30)
        return "late"

    t0 = time.monotonic()
    with pytest.raises(chanpool.DeadlineExceeded, match="did not finish within"):
        chanpool.run_with_timeout(slow, 0.05)
    assert time.monotonic() - t0 >= 0.04
    assert saw_cancel.wait(30)
    gate.set()


def test_run_with_timeout_honours_the_callers_context(make_pool):
    p = make_pool(1)
    outer = chanpool.Context()
    entered = threading.Event()

    def inner():
        entered.set()
        threading.Event().wait(30)

    def caller():
        return chanpool.run_with_timeout(inner, 3600)

    f = p.submit_with(outer, caller)
    assert entered.wait(30)
    outer.cancel()
    with pytest.raises(chanpool.Cancelled) as info:
        f.result(timeout=30)
    assert not isinstance(info.value, chanpool.DeadlineExceeded)


def test_run_with_timeout_many_calls_exact():
    results = watchdog(lambda: [chanpool.run_with_timeout(abs, 10, -i) for i in range(300)])
    assert results == list(range(300))


@pytest.mark.parametrize(
    "args, exc",
    [((3, 1), TypeError), ((abs, "1"), TypeError), ((abs, float("nan")), ValueError)],
)
def test_run_with_timeout_bad_input(args, exc):
    with pytest.raises(exc):
        chanpool.run_with_timeout(*args)


# ------------------------------------------------------------------------------ processes


def test_ctrl_c_interrupts_context_wait():
    proc = run_py(
        """
import _thread, sys, threading, time, chanpool
main = threading.main_thread().ident
def ctrl_c():
    while True:
        f = sys._current_frames().get(main)
        names = set()
        while f is not None:
            names.add((f.f_code.co_name, f.f_code.co_filename.rsplit("/", 1)[-1]))
            f = f.f_back
        if ("wait", "_context.py") in names:
            break
    _thread.interrupt_main()
threading.Thread(target=ctrl_c, daemon=True).start()
ctx = chanpool.Context()
try:
    ctx.wait()
except KeyboardInterrupt:
    print("ok")
""",
        timeout=45,
    )
    assert_clean_exit(proc, "ok")


def test_exit_with_pending_deadlines_and_blocked_waiters_is_clean():
    for _ in range(3):
        proc = run_py(
            """
import threading, chanpool
root = chanpool.Context()
ctxs = [root.with_timeout(3600 + i) for i in range(100)]
p = chanpool.WorkerPool(1)
p.submit(sum, range(10**6))
for c in ctxs:
    p.submit_with(c, c.wait, 0.001)   # queued at exit: cancelled, never run
threading.Thread(target=root.wait, daemon=True).start()
print("ok")
""",
            timeout=45,
        )
        assert_clean_exit(proc, "ok")


def test_deadlines_work_in_a_forked_child():
    proc = run_py(
        """
import os, chanpool
ctx = chanpool.Context().with_timeout(0.01)
assert ctx.wait(30)
pid = os.fork()
if pid == 0:
    c = chanpool.Context().with_timeout(0.01)
    os._exit(0 if c.wait(30) and isinstance(c.err, chanpool.DeadlineExceeded) else 5)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
print("ok")
""",
        timeout=45,
        dump_on_hang=False,
    )
    assert_clean_exit(proc, "ok")
