"""Context (Go's context.Context), run_with_timeout and WorkerPool.submit_with."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import logging
import math
import random
import sys
import threading
import time
import weakref

import chanpool
import pytest
from chanpool import _context
from helpers import wait_until, watchdog

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


@pytest.mark.parametrize(
    "timeout",
    [0, -1, 0.0, -math.inf, -1e300, -(10**400)],
    ids=["0", "-1", "0.0", "-inf", "-1e300", "-10**400"],
)
def test_past_deadlines_have_expired_on_return(timeout):
    """Go's WithTimeout: a deadline already passed ends the child before it is returned."""
    parent = chanpool.Context()
    ctx = parent.with_timeout(timeout)
    assert isinstance(ctx.err, chanpool.DeadlineExceeded) and ctx.wait(0)
    assert ctx.remaining() == 0.0 and not parent.cancelled
    assert isinstance(parent.with_deadline(time.monotonic() - 1).err, chanpool.DeadlineExceeded)


@pytest.mark.parametrize(
    "timeout",
    [math.inf, 1e10, 9.3e18, 1e19, 1.8e19, 1e300, 10**400],
    ids=["inf", "1e10", "9.3e18", "1e19", "1.8e19", "1e300", "10**400"],
)
def test_huge_timeouts_mean_never_or_the_far_future(timeout):
    ctx = chanpool.Context().with_timeout(timeout)
    assert not ctx.cancelled and not ctx.wait(0.01)
    if timeout in (math.inf, 10**400):
        assert ctx.deadline is None and ctx.remaining() is None
    else:
        assert ctx.remaining() > 1e9
    assert "left" in repr(ctx) or "active" in repr(ctx)
    # A parent's real deadline still ends it.
    child = chanpool.Context().with_timeout(0.02).with_timeout(timeout)
    assert child.wait(30) and isinstance(child.err, chanpool.DeadlineExceeded)
    ctx.cancel()


@pytest.mark.parametrize("timeout", [math.inf, 1e19, 1e300], ids=repr)
def test_waits_with_huge_timeouts_last_until_the_end(timeout):
    ctx = chanpool.Context()
    ended = threading.Event()
    t = threading.Thread(target=lambda: ended.set() if ctx.wait(timeout) else None, daemon=True)
    t.start()
    wait_until(lambda: t.ident is not None)
    ctx.cancel()
    assert ended.wait(30)
    assert chanpool.run_with_timeout(abs, timeout, -3) == 3
    with pytest.raises(ValueError, match="NaN"):
        ctx.wait(math.nan)
    with pytest.raises(ValueError, match="NaN"):
        chanpool.run_with_timeout(abs, math.nan, -3)


def test_deep_chains_end_without_recursion():
    """Ending a context ends its descendants iteratively: a chain far deeper than the
    recursion limit ends whole, and every callback along it runs, innermost first."""
    depth = 5 * sys.getrecursionlimit()
    root = chanpool.Context()
    ctx, order = root, []
    for i in range(depth):
        ctx = ctx.with_cancel()
        ctx.on_cancel(lambda i=i: order.append(i))
    root.cancel()
    assert ctx.cancelled and ctx.err is root.err
    assert order == list(range(depth - 1, -1, -1))
    # And from the timer.
    top = chanpool.Context().with_timeout(0.05)
    ctx = top
    fired = []
    for _ in range(depth):
        ctx = ctx.with_cancel()
    ctx.on_cancel(lambda: fired.append(1))
    assert ctx.wait(30) and isinstance(ctx.err, chanpool.DeadlineExceeded)
    wait_until(lambda: fired == [1], what="the innermost callback")


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


def test_a_base_exception_in_cancel_runs_every_callback_then_propagates(caplog):
    """KeyboardInterrupt or SystemExit in a callback does not skip the others (of this context
    or its children); the first one is raised again by cancel(), the rest are logged."""
    for raised in (KeyboardInterrupt, SystemExit):
        ctx = chanpool.Context()
        child = ctx.with_cancel()
        calls = []

        def boom(raised=raised):
            raise raised("from a callback")

        child.on_cancel(lambda calls=calls: calls.append("child"))
        child.on_cancel(boom)
        ctx.on_cancel(lambda calls=calls: calls.append("a"))
        ctx.on_cancel(boom)
        ctx.on_cancel(lambda: 1 / 0)
        ctx.on_cancel(lambda calls=calls: calls.append("b"))
        with caplog.at_level(logging.ERROR, logger="chanpool"):
            with pytest.raises(raised, match="from a callback"):
                ctx.cancel()
        assert calls == ["child", "a", "b"]
        assert child.cancelled and ctx.cancelled
        texts = [r.exc_text or "" for r in caplog.records]
        assert any("ZeroDivisionError" in t for t in texts)
        assert any(raised.__name__ in t for t in texts)  # the second one, logged
        caplog.clear()


def test_timer_callbacks_run_off_the_timer_and_their_errors_are_logged(caplog):
    """What a callback of an expired context raises, BaseException included, is logged on the
    chanpool logger, and every other callback still runs."""
    ran = []
    with caplog.at_level(logging.ERROR, logger="chanpool"):
        ctx = chanpool.Context().with_timeout(0.01)
        ctx.on_cancel(lambda: ran.append(threading.current_thread().name))

        def stop():
            raise SystemExit("callback")

        ctx.on_cancel(stop)
        ctx.on_cancel(lambda: ran.append("after"))
        assert ctx.wait(30)
        wait_until(lambda: len(ran) == 2, what="callbacks")
        wait_until(lambda: any("SystemExit" in (r.exc_text or "") for r in caplog.records))
    assert ran == ["chanpool-context-callbacks", "after"]


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
