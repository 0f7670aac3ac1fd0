"""chanpool.Future as a concurrent.futures.Future: wait, as_completed, callbacks, cancel,
asyncio, timeouts and the log of exceptions nobody retrieved.

Ideas ported from CPython's Lib/test/test_concurrent_futures (test_wait.py, test_as_completed.py,
test_future.py, executor.py); the code is our own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import logging
import threading
import time

import chanpool
import pytest
from helpers import exact, settled, wait_until, watchdog


def mul(x, y):
    return x * y


def boom(msg="boom"):
    raise ValueError(msg)


@pytest.fixture
def blocked_pool(make_pool):
    """A one-worker pool whose worker is held by a running task until `release` is set."""
    release = threading.Event()
    started = threading.Event()

    def blocker():
        started.set()
        return release.wait(30)

    p = make_pool(1)
    first = p.submit(blocker)
    assert started.wait(30)
    yield p, first, release
    release.set()


# ------------------------------------------------------------------------------------ states


def test_future_type_and_repr(make_pool):
    p = make_pool(1)
    f = p.submit(mul, 6, 7)
    assert type(f) is chanpool.Future
    assert isinstance(f, cf.Future)
    assert f.result(timeout=30) == 42
    assert "finished" in repr(f)


def test_running_state(blocked_pool):
    p, first, release = blocked_pool
    assert first.running()
    assert not first.done()
    queued = p.submit(mul, 2, 3)
    assert not queued.running() and not queued.done()
    release.set()
    assert first.result(timeout=30) is True
    assert queued.result(timeout=30) == 6
    assert first.done() and not first.running()


def test_result_and_exception_timeout(blocked_pool):
    _p, first, release = blocked_pool
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        first.result(timeout=0.2)
    with pytest.raises(cf.TimeoutError):
        first.exception(timeout=0)
    assert time.monotonic() - t0 >= 0.2
    release.set()
    assert first.result(timeout=30) is True


# ------------------------------------------------------------------------------------- cancel


def test_cancel_before_start(blocked_pool):
    p, _first, release = blocked_pool
    ran = []
    victim = p.submit(ran.append, "victim")
    after = p.submit(mul, 3, 4)
    assert victim.cancel()
    assert victim.cancelled() and victim.done()
    assert victim.cancel()  # cancelling twice is fine
    with pytest.raises(cf.CancelledError):
        victim.result()
    with pytest.raises(cf.CancelledError):
        victim.exception()
    release.set()
    assert after.result(timeout=30) == 12
    p.shutdown()
    assert ran == []
    exact(p, submitted=3, completed=2, cancelled=1, failed=0)


def test_cancel_running_or_done_fails(blocked_pool):
    _p, first, release = blocked_pool
    assert not first.cancel()
    assert first.running()
    release.set()
    assert first.result(timeout=30) is True
    assert not first.cancel()
    assert not first.cancelled()


def test_cancel_many_queued(blocked_pool):
    p, _first, release = blocked_pool
    ran = []
    fs = [p.submit(ran.append, i) for i in range(200)]
    for f in fs[::2]:
        assert f.cancel()
    release.set()
    for f in fs[1::2]:
        f.result(timeout=30)
    p.shutdown()
    assert ran == list(range(1, 200, 2))
    exact(p, submitted=201, completed=101, cancelled=100, failed=0)


def test_cancel_runs_done_callbacks(blocked_pool):
    p, _first, _release = blocked_pool
    f = p.submit(mul, 1, 1)
    seen = []
    f.add_done_callback(seen.append)
    assert f.cancel()
    assert seen == [f]


# ---------------------------------------------------------------------------------- callbacks


def test_done_callback_added_before_completion(blocked_pool):
    p, _first, release = blocked_pool
    seen = []
    called_in = []

    def cb(fut):
        seen.append(fut.result())
        called_in.append(threading.get_ident())

    f = p.submit(mul, 5, 5)
    f.add_done_callback(cb)
    assert seen == []
    release.set()
    wait_until(lambda: seen == [25], what="done callback")
    # Like TPE: the callback runs in the thread that completed the future.
    assert called_in != [threading.get_ident()]


def test_done_callback_added_after_completion(make_pool):
    p = make_pool(1)
    f = p.submit(mul, 5, 5)
    f.result(timeout=30)
    seen = []
    f.add_done_callback(lambda fut: seen.append((fut, threading.get_ident())))
    assert seen == [(f, threading.get_ident())]


def test_done_callback_sees_exception(make_pool):
    p = make_pool(1)
    seen = threading.Event()
    box = []

    def cb(fut):
        box.append(fut.exception())
        seen.set()

    p.submit(boom, "cb").add_done_callback(cb)
    assert seen.wait(30)
    assert isinstance(box[0], ValueError)


def test_raising_done_callback_does_not_hurt_the_worker(make_pool, caplog):
    caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
    p = make_pool(1)
    order = []

    def bad_cb(_):
        order.append("bad")
        raise RuntimeError("callback failed")

    f = p.submit(mul, 2, 2)
    f.add_done_callback(bad_cb)
    f.add_done_callback(lambda _: order.append("good"))
    assert f.result(timeout=30) == 4
    assert p.submit(mul, 3, 3).result(timeout=30) == 9
    wait_until(lambda: order == ["bad", "good"], what="callbacks")
    assert p.stats()["workers"] == 1


def test_done_callbacks_race_with_completion(make_pool):
    """Callbacks added while the tasks finish (from another thread) each fire exactly once."""
    p = make_pool(2)
    n = 20000
    counts = [0] * n
    lock = threading.Lock()
    fs = []
    ready = threading.Semaphore(0)

    def cb_for(i):
        def cb(_):
            with lock:
                counts[i] += 1

        return cb

    def observer():
        for i in range(n):
            ready.acquire()
            fs[i].add_done_callback(cb_for(i))

    t = threading.Thread(target=observer)
    t.start()
    for i in range(n):
        fs.append(p.submit(mul, i, 2))
        ready.release()
    t.join(60)
    assert not t.is_alive()
    _done, not_done = cf.wait(fs, timeout=60)
    assert not not_done
    wait_until(lambda: sum(counts) == n, what="every callback")
    assert set(counts) == {1}
    assert [f.result() for f in fs] == [2 * i for i in range(n)]


# ---------------------------------------------------------------------------------- cf.wait


def test_wait_first_completed(blocked_pool):
    p, first, release = blocked_pool
    done_future = cf.Future()
    done_future.set_result(1)
    queued = p.submit(mul, 1, 1)
    done, not_done = cf.wait(
        [first, queued, done_future], timeout=0.1, return_when=cf.FIRST_COMPLETED
    )
    assert done == {done_future}
    assert not_done == {first, queued}

    done, not_done = cf.wait([first, queued], timeout=0.1, return_when=cf.FIRST_COMPLETED)
    assert done == set() and not_done == {first, queued}

    def waiter():
        return cf.wait([first, queued], return_when=cf.FIRST_COMPLETED)

    box = []
    t = threading.Thread(target=lambda: box.append(waiter()))
    t.start()
    release.set()
    t.join(30)
    assert not t.is_alive()
    done, not_done = box[0]
    assert first in done


def test_wait_first_exception(blocked_pool):
    _p, first, release = blocked_pool
    # A second pool so the failing task does not queue behind the blocker.
    with chanpool.WorkerPool(1) as other:
        failing = other.submit(boom, "first exception")
        ok = other.submit(mul, 2, 2)
        done, not_done = watchdog(
            lambda: cf.wait([first, failing, ok], return_when=cf.FIRST_EXCEPTION)
        )
        assert failing in done
        assert first in not_done
        assert isinstance(failing.exception(), ValueError)
        ok.result(timeout=30)
    release.set()


def test_wait_first_exception_some_already_failed(make_pool):
    p = make_pool(2)
    failed = p.submit(boom)
    failed.exception(timeout=30)
    gate = threading.Event()
    try:
        pending = p.submit(gate.wait, 30)
        done, not_done = cf.wait([failed, pending], timeout=5, return_when=cf.FIRST_EXCEPTION)
        assert done == {failed} and not_done == {pending}
    finally:
        gate.set()


def test_wait_all_completed(make_pool):
    p = make_pool(4)
    fs = [p.submit(mul, i, i) for i in range(100)] + [p.submit(boom)]
    done, not_done = watchdog(lambda: cf.wait(fs, return_when=cf.ALL_COMPLETED))
    assert done == set(fs) and not_done == set()
    assert [f.result() for f in fs[:-1]] == [i * i for i in range(100)]
    assert isinstance(fs[-1].exception(), ValueError)


def test_wait_timeout(blocked_pool):
    p, first, release = blocked_pool
    quick = p.submit(mul, 2, 2)  # queued behind the blocker
    t0 = time.monotonic()
    done, not_done = cf.wait([first, quick], timeout=0.3)
    assert time.monotonic() - t0 >= 0.3
    assert done == set() and not_done == {first, quick}
    release.set()
    done, not_done = watchdog(lambda: cf.wait([first, quick]))
    assert done == {first, quick}


def test_wait_many_futures_while_completing(make_pool):
    p = make_pool(4)
    for _ in range(5):
        fs = [p.submit(mul, i, 2) for i in range(3000)]
        done, not_done = watchdog(lambda fs=fs: cf.wait(fs, timeout=60))
        assert not not_done and len(done) == 3000
    p.shutdown()
    exact(p, submitted=15000, completed=15000)


# ------------------------------------------------------------------------------ as_completed


def test_as_completed(make_pool):
    p = make_pool(4)
    fs = {p.submit(mul, i, 3): i for i in range(500)}
    seen = [f for f in watchdog(lambda: list(cf.as_completed(fs, timeout=60)))]
    assert len(seen) == 500 and set(seen) == set(fs)
    assert sorted(f.result() for f in seen) == [3 * i for i in range(500)]


def test_as_completed_order_follows_completion(make_pool):
    p = make_pool(3)
    gates = [threading.Event() for _ in range(3)]
    fs = [p.submit(g.wait, 30) for g in gates]
    order = []

    def consume():
        for f in cf.as_completed(fs, timeout=60):
            order.append(fs.index(f))
            if len(order) < 3:
                gates[[2, 0, 1][len(order)]].set()

    t = threading.Thread(target=consume)
    t.start()
    gates[2].set()
    t.join(60)
    assert not t.is_alive()
    assert order == [2, 0, 1]


def test_as_completed_timeout(blocked_pool):
    _p, first, release = blocked_pool
    done_future = cf.Future()
    done_future.set_result(None)
    got = []
    with pytest.raises(cf.TimeoutError):
        for f in cf.as_completed([first, done_future], timeout=0.2):
            got.append(f)
    assert got == [done_future]
    release.set()


def test_as_completed_duplicates(make_pool):
    p = make_pool(2)
    f = p.submit(mul, 2, 2)
    assert list(cf.as_completed([f, f], timeout=30)) == [f]


# ------------------------------------------------------------------------------------- asyncio


def test_asyncio_wrap_future(make_pool):
    p = make_pool(2)

    async def main():
        a = await asyncio.wrap_future(p.submit(mul, 6, 7))
        with pytest.raises(ValueError, match="async boom"):
            await asyncio.wrap_future(p.submit(boom, "async boom"))
        loop = asyncio.get_running_loop()
        b = await loop.run_in_executor(p, mul, 3, 5)
        many = await asyncio.gather(*(asyncio.wrap_future(p.submit(mul, i, 1)) for i in range(300)))
        return a, b, many

    a, b, many = watchdog(lambda: asyncio.run(main()))
    assert (a, b) == (42, 15)
    assert many == list(range(300))


def test_asyncio_cancel_propagates_to_queued_future(blocked_pool):
    p, _first, release = blocked_pool
    ran = []

    async def main():
        cfut = p.submit(ran.append, 1)
        afut = asyncio.wrap_future(cfut)
        afut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await afut
        return cfut

    cfut = watchdog(lambda: asyncio.run(main()))
    assert cfut.cancelled()
    release.set()
    p.shutdown()
    assert ran == []
    exact(p, submitted=2, completed=1, cancelled=1)


def test_asyncio_wait_for_timeout(blocked_pool):
    p, _first, release = blocked_pool

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.wrap_future(p.submit(mul, 1, 1)), 0.1)

    watchdog(lambda: asyncio.run(main()))
    release.set()
    p.shutdown()
    settled(p)


# ---------------------------------------------------------------------- unretrieved exceptions


def _never_retrieved(caplog):
    return [
        r for r in caplog.records if r.name == "chanpool" and "never retrieved" in r.getMessage()
    ]


def test_unretrieved_exception_is_logged_on_gc(make_pool, caplog):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    p = make_pool(1)
    f = p.submit(boom, "nobody looked")
    cf.wait([f], timeout=30)
    assert f.done()
    assert _never_retrieved(caplog) == []
    del f
    gc.collect()
    recs = _never_retrieved(caplog)
    assert len(recs) == 1
    assert recs[0].levelno == logging.ERROR
    assert isinstance(recs[0].exc_info[1], ValueError)
    assert "nobody looked" in str(recs[0].exc_info[1])


def test_discarded_failing_future_is_logged(make_pool, caplog):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    p = make_pool(1)
    p.submit(boom, "fire and forget")
    p.shutdown(wait=True)
    gc.collect()
    recs = _never_retrieved(caplog)
    assert len(recs) == 1
    assert "fire and forget" in str(recs[0].exc_info[1])


@pytest.mark.parametrize("how", ["result", "exception", "callback", "asyncio"])
def test_retrieved_exception_is_not_logged(make_pool, caplog, how):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    p = make_pool(1)
    f = p.submit(boom, "looked at")
    if how == "result":
        with pytest.raises(ValueError):
            f.result(timeout=30)
    elif how == "exception":
        assert isinstance(f.exception(timeout=30), ValueError)
    elif how == "callback":
        seen = threading.Event()
        f.add_done_callback(lambda fut: (fut.exception(), seen.set()))
        assert seen.wait(30)
    else:

        async def main():
            with pytest.raises(ValueError):
                await asyncio.wrap_future(f)  # noqa: F821 - runs before `del f` below

        watchdog(lambda: asyncio.run(main()))
    del f
    gc.collect()
    assert _never_retrieved(caplog) == []


def test_successful_and_cancelled_futures_are_not_logged(blocked_pool, caplog):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    p, first, release = blocked_pool
    a = p.submit(mul, 1, 1)
    b = p.submit(mul, 1, 1)
    assert b.cancel()
    release.set()
    a.result(timeout=30)
    del a, b, first
    gc.collect()
    assert _never_retrieved(caplog) == []


# ------------------------------------------------------------------- result()'s native wait


def test_waited_result_leaves_the_future_unobserved(make_pool):
    # result() sleeps on the native one-shot, not on the condition: the worker keeps its plain
    # writes (the condition is never built), and every waiter wakes with its own value.
    p = make_pool(4)
    for i in range(2000):
        f = p.submit(mul, i, 3)
        assert f.result(timeout=30) == i * 3
        assert f.__dict__.get("_cond") is None
    assert exact(p, submitted=2000, completed=2000)["failed"] == 0


def hold(p):
    """Occupies the pool's one worker until the returned event is set."""
    release, started = threading.Event(), threading.Event()
    p.submit(lambda: (started.set(), release.wait(30)))
    assert started.wait(30)
    return release


def in_thread(fn):
    """Starts fn on a new thread once; returns the thread and an event set just before fn runs."""
    started = threading.Event()

    def run():
        started.set()
        fn()

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(30)
    return t


def many_wait_on_one(p):
    release = hold(p)
    f = p.submit(mul, 6, 7)
    got = []
    barrier = threading.Barrier(9)

    def waiter():
        barrier.wait()
        got.append(f.result(timeout=30))

    ts = [threading.Thread(target=waiter) for _ in range(8)]
    for t in ts:
        t.start()
    barrier.wait()
    release.set()
    for t in ts:
        t.join(30)
    assert got == [42] * 8


def test_many_threads_wait_on_one_future(make_pool):
    # Waiters that arrive together share one event (none waits on an orphaned one).
    p = make_pool(1)
    for _ in range(50):
        many_wait_on_one(p)


def wake_before_callbacks():
    f = chanpool.Future()
    woke = threading.Event()
    seen = []
    f.add_done_callback(lambda fut: seen.append(woke.wait(10)))

    def waiter():
        assert f.result(timeout=30) == 7
        woke.set()

    t = in_thread(waiter)
    f.set_result(7)
    t.join(30)
    assert seen == [True]


def test_waiter_wakes_before_slow_done_callbacks():
    # The done-callbacks run after the waiters are woken: a callback that waits for the waiter
    # would hang (until its timeout) if the wake came after the callbacks.
    for _ in range(100):
        wake_before_callbacks()


def wait_then_complete(p, how):
    release = hold(p)
    f = p.submit(mul, 2, 3) if how != "exception" else p.submit(boom, "late")
    out = []

    def waiter():
        try:
            out.append(f.result(timeout=30))
        except (cf.CancelledError, ValueError) as e:
            out.append(type(e))

    t = in_thread(waiter)
    if how == "cancel":
        assert f.cancel()
    elif how == "callback-then-result":
        f.add_done_callback(lambda fut: None)  # builds the condition mid-wait
    release.set()
    t.join(30)
    assert out == [{"cancel": cf.CancelledError, "exception": ValueError}.get(how, 6)]


@pytest.mark.parametrize("how", ["cancel", "exception", "callback-then-result"])
def test_native_wait_ends_on_every_completion(make_pool, how):
    p = make_pool(1)
    for _ in range(100):
        wait_then_complete(p, how)


def test_native_wait_times_out_then_completes(blocked_pool):
    p, _first, release = blocked_pool
    f = p.submit(mul, 4, 5)
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    with pytest.raises(cf.TimeoutError):
        f.exception(timeout=0)
    with pytest.raises(ValueError):
        f.result(timeout=float("nan"))
    with pytest.raises(TypeError):
        f.result(timeout="1")
    release.set()
    assert f.result(timeout=1e300) == 20
    assert f.exception(timeout=float("inf")) is None


# ------------------------------------- set_result / set_exception called from Python (Future())


def user_set_wakes_waiter(how):
    f = chanpool.Future()
    out = []

    def waiter():
        try:
            out.append(f.result(timeout=30))
        except KeyError as e:
            out.append(e)

    t = in_thread(waiter)
    err = KeyError("k")
    if how == "result":
        f.set_result(11)
    else:
        f.set_exception(err)
    t.join(30)
    assert out == [11 if how == "result" else err]
    # Finished like a worker finishes: plain writes and the native wake, no condition built.
    assert f.__dict__.get("_cond") is None
    assert f.done() and not f.cancelled()


@pytest.mark.parametrize("how", ["result", "exception"])
def test_user_set_wakes_a_native_waiter_without_the_condition(how):
    for _ in range(200):
        user_set_wakes_waiter(how)


def test_user_set_twice_or_after_cancel_raises_invalid_state():
    f = chanpool.Future()
    f.set_result(1)
    with pytest.raises(cf.InvalidStateError):
        f.set_result(2)
    with pytest.raises(cf.InvalidStateError):
        f.set_exception(ValueError("late"))
    assert f.result(timeout=0) == 1
    g = chanpool.Future()
    assert g.cancel()
    with pytest.raises(cf.InvalidStateError):
        g.set_result(1)
    with pytest.raises(cf.InvalidStateError):
        g.set_exception(ValueError("late"))
    with pytest.raises(cf.CancelledError):
        g.result(timeout=0)
    h = chanpool.Future()
    assert h.set_running_or_notify_cancel()
    h.set_exception(ValueError("x"))
    assert isinstance(h.exception(timeout=0), ValueError)
    assert not h.cancel()


def set_result_races_cancel(i):
    """One race of set_result(i) with cancel() on another thread."""
    f = chanpool.Future()
    barrier = threading.Barrier(2)
    got = []

    def canceller():
        barrier.wait()
        got.append(f.cancel())

    t = threading.Thread(target=canceller)
    t.start()
    barrier.wait()
    try:
        f.set_result(i)
        won_set = True
    except cf.InvalidStateError:
        won_set = False
    t.join(30)
    assert got[0] != won_set
    if won_set:
        assert f.result(timeout=0) == i
    else:
        with pytest.raises(cf.CancelledError):
            f.result(timeout=0)


def test_user_set_result_races_cancel():
    # Exactly one of set_result and cancel wins, every time; the loser sees the winner's state.
    for i in range(2000):
        set_result_races_cancel(i)


def test_user_set_exception_keeps_the_unretrieved_report(caplog):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    f = chanpool.Future()
    f.set_exception(ValueError("user nobody looked"))
    g = chanpool.Future()
    g.set_exception(ValueError("user looked"))
    assert isinstance(g.exception(timeout=0), ValueError)
    del f, g
    gc.collect()
    recs = _never_retrieved(caplog)
    assert [str(r.exc_info[1]) for r in recs] == ["user nobody looked"]


def test_user_set_on_a_pool_future_takes_the_stock_path(blocked_pool):
    # A pool's worker owns an unobserved future's state: a user set_result on a queued one goes
    # through the condition, so the worker sees it observed and uses the locked methods.
    p, _first, release = blocked_pool
    f = p.submit(mul, 2, 2)
    f.set_result("mine")
    assert f.__dict__.get("_cond") is not None
    release.set()
    assert f.result(timeout=30) == "mine"


# ------------------------------- a worker sets its waiter's event once it let go of the GIL


def next_job_blocks(p):
    gate, hold_next = threading.Event(), threading.Event()
    first = p.submit(gate.wait, 30)
    a = p.submit(mul, 3, 3)
    b = p.submit(hold_next.wait, 30)  # runs right after `a`, and blocks
    out = []
    t = in_thread(lambda: out.append(a.result(timeout=30)))
    gate.set()
    t.join(30)
    # Woken while the worker was already running (and blocked in) the next job.
    assert out == [9]
    assert not b.done()
    hold_next.set()
    assert b.result(timeout=30) is True and first.result(timeout=30) is True


def test_waiter_is_woken_before_the_workers_next_job():
    # The event of a completed task is set before the worker's next job starts, not when the
    # worker next waits for work (which a long next job would delay).
    with chanpool.WorkerPool(1) as p:
        for _ in range(50):
            next_job_blocks(p)


def last_task_then_close():
    p = chanpool.WorkerPool(1)
    gate = threading.Event()
    p.submit(gate.wait, 30)
    a = p.submit(mul, 2, 5)
    out = []
    t = in_thread(lambda: out.append(a.result(timeout=30)))
    p.shutdown(wait=False)
    gate.set()
    t.join(30)
    assert out == [10]
    p.shutdown(wait=True)


def test_waiter_is_woken_when_the_pool_closes_after_the_last_task():
    for _ in range(100):
        last_task_then_close()
