"""chanpool.Group (errgroup) and chanpool.WaitGroup in one process: exact counts under
concurrency, failures, cancellation, limits, context-manager rules, the asyncio face."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time

import chanpool
import pytest
from chanpool import Cancelled, Context, Group, WaitGroup, WorkerPool, current_context

# -- WaitGroup


def test_waitgroup_counts_and_refuses_negative():
    wg = WaitGroup()
    assert wg.count == 0 and wg.wait() is True and wg.wait(0) is True
    wg.add(3)
    wg.done()
    assert wg.count == 2
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.add(-3)
    assert wg.count == 2
    wg.add(-2)
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.done()
    assert wg.count == 0
    wg.add(0)
    assert wg.wait(0) is True


def test_waitgroup_bad_arguments():
    wg = WaitGroup()
    for bad in (1.0, "1", True, None):
        with pytest.raises(TypeError):
            wg.add(bad)
    with pytest.raises(OverflowError):
        wg.add(2**63)
    wg.add(2**63 - 1)
    with pytest.raises(OverflowError):
        wg.add(1)
    assert wg.count == 2**63 - 1
    with pytest.raises(ValueError):
        wg.wait(float("nan"))
    with pytest.raises(TypeError):
        wg.wait("1")


def test_waitgroup_timeout_returns_false():
    wg = WaitGroup()
    wg.add(1)
    t0 = time.monotonic()
    assert wg.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.05
    assert wg.wait(0) is False
    assert wg.wait(-1) is False
    wg.done()
    assert wg.wait(1e300) is True


def test_waitgroup_many_threads_exact():
    def one_round() -> None:
        wg = WaitGroup()
        n = 16
        finished = []
        wg.add(n)

        def work(i):
            finished.append(i)
            wg.done()

        ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        waiters_saw = []
        ws = [
            threading.Thread(target=lambda: waiters_saw.append((wg.wait(30), len(finished))))
            for _ in range(3)
        ]
        for t in ws + ts:
            t.start()
        for t in ws + ts:
            t.join()
        assert waiters_saw == [(True, n)] * 3
        assert sorted(finished) == list(range(n)) and wg.count == 0

    for _ in range(30):
        one_round()


def test_waitgroup_wait_async():
    async def main():
        wg = WaitGroup()
        assert await wg.wait_async() is True
        wg.add(2)
        assert await wg.wait_async(0) is False
        assert await wg.wait_async(0.02) is False
        threading.Timer(0.02, wg.done).start()
        threading.Timer(0.04, wg.done).start()
        waiters = [asyncio.ensure_future(wg.wait_async(30)) for _ in range(5)]
        assert await asyncio.gather(*waiters) == [True] * 5
        assert wg.count == 0
        # A cancelled wait leaves nothing behind: a later zero still wakes the others.
        wg.add(1)
        a = asyncio.ensure_future(wg.wait_async())
        b = asyncio.ensure_future(wg.wait_async())
        await asyncio.sleep(0.01)
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        wg.done()
        assert await asyncio.wait_for(b, 10) is True

    asyncio.run(main())


# -- Group basics


def test_group_runs_everything_and_waits():
    for pool in (None, WorkerPool(4)):
        g = Group(pool=pool)
        out = []
        for i in range(1000):
            g.go(out.append, i)
        assert g.wait() is None
        assert sorted(out) == list(range(1000))
        assert g.running == 0 and g.exceptions == () and g.context.cancelled
        with pytest.raises(RuntimeError, match="already waited"):
            g.go(out.append, 0)
        if pool is not None:
            pool.shutdown()


def test_group_arguments_are_checked():
    with pytest.raises(TypeError, match="context"):
        Group(context=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit"):
        Group(limit=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit"):
        Group(limit=True)
    with pytest.raises(ValueError, match="limit"):
        Group(limit=0)
    with pytest.raises(TypeError, match="pool"):
        Group(pool=object())  # type: ignore[arg-type]
    g = Group()
    with pytest.raises(TypeError, match="callable"):
        g.go(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        g.try_go(42)  # type: ignore[arg-type]
    g.wait()


def test_tasks_see_the_group_context_and_kwargs():
    g = Group()
    seen = []
    g.go(lambda *, k: seen.append((current_context() is g.context, k)), k=7)
    g.wait()
    assert seen == [(True, 7)]
    assert current_context() is None


def test_the_group_context_is_a_child_of_the_given_one():
    parent = Context()
    g = Group(context=parent)
    started = threading.Event()

    def until_cancelled():
        started.set()
        current_context().wait(30)
        current_context().raise_if_cancelled()

    g.go(until_cancelled)
    assert started.wait(30)
    parent.cancel()
    # The group's own cancellation is no failure of a task.
    g.wait()
    assert g.exceptions == ()
    assert not Context().cancelled


def test_a_nested_group_inherits_the_running_task_context():
    outer = Group()
    inner_ctx = []

    def task():
        inner = Group()
        inner_ctx.append(inner.context)
        inner.go(lambda: None)
        inner.wait()

    outer.go(task)
    outer.wait()
    # The inner group's context was a child of the outer one: ended with it.
    assert inner_ctx[0].cancelled


# -- failures


def test_wait_raises_the_first_failure_and_keeps_all():
    g = Group(limit=2)
    release = threading.Event()
    arrived = WaitGroup()
    arrived.add(2)

    def fail(tag):
        arrived.done()
        release.wait(30)
        raise KeyError(tag)

    g.go(fail, "a")
    g.go(fail, "b")
    assert arrived.wait(30)
    release.set()
    with pytest.raises(KeyError) as info:
        g.wait()
    errs = g.exceptions
    assert len(errs) == 2 and {e.args[0] for e in errs} == {"a", "b"}
    assert info.value is errs[0]
    assert info.value.__notes__ == ["chanpool.Group: 1 other task(s) failed too"]
    eg = g.exception_group()
    assert isinstance(eg, ExceptionGroup) and list(eg.exceptions) == list(errs)
    # Waiting again raises the same first failure, the note not repeated.
    with pytest.raises(KeyError) as again:
        g.wait()
    assert again.value is errs[0] and len(again.value.__notes__) == 1


def test_base_exceptions_are_failures_too():
    g = Group()
    g.go(lambda: (_ for _ in ()).throw(SystemExit(3)))
    with pytest.raises(SystemExit):
        g.wait()
    eg = g.exception_group()
    assert type(eg) is BaseExceptionGroup and isinstance(eg.exceptions[0], SystemExit)
    assert Group().exception_group() is None


def test_a_failure_cancels_running_and_drops_queued():
    pool = WorkerPool(2)
    g = Group(pool=pool)
    started = []
    gate = threading.Event()

    def runner(i):
        started.append(i)
        if i == 0:
            gate.wait(30)
            raise ValueError("boom")
        # The other running task stops when the group is cancelled.
        assert current_context().wait(30)

    for i in range(50):
        g.go(runner, i)
    while len(started) < 2:
        time.sleep(0.001)
    gate.set()
    with pytest.raises(ValueError, match="boom"):
        g.wait()
    assert sorted(started) == [0, 1]
    # After the cancellation go() accepts and drops.
    g2 = Group(pool=pool)
    g2.context.cancel()
    g2.go(started.append, 99)
    assert g2.try_go(started.append, 99) is True
    g2.wait()
    assert 99 not in started
    pool.shutdown()


@pytest.mark.parametrize("workers", [1, 4])
def test_ten_thousand_tasks_with_random_failures(workers):
    """Each task runs at most once; after the group observed its first failure (its context
    was cancelled) no queued task starts, except those already past the start check on the
    `workers` threads; wait() always returns."""
    rng = random.Random(1234 + workers)

    def one_round() -> None:
        n = 10_000
        fail_at = set(rng.sample(range(n), rng.randint(1, 20)))
        pool = WorkerPool(workers)
        g = Group(pool=pool)
        runs = [0] * n
        after_observed = []
        observed = []
        g.context.on_cancel(lambda: observed.append(True))
        order = itertools.count()

        def task(i):
            runs[i] += 1
            if observed:
                after_observed.append(next(order))
            if i in fail_at:
                raise RuntimeError(i)

        for i in range(n):
            g.go(task, i)
        with pytest.raises(RuntimeError) as info:
            g.wait()
        assert max(runs) == 1
        assert info.value.args[0] in fail_at
        assert {e.args[0] for e in g.exceptions} <= fail_at
        # Only a task already past its start check on another worker can begin after.
        assert len(after_observed) <= workers - 1
        if workers == 1:
            # One worker: nothing at all after the failing task.
            assert sum(runs) == min(fail_at) + 1
            assert [e.args[0] for e in g.exceptions] == [min(fail_at)]
        pool.shutdown()

    for _ in range(5):
        one_round()


def test_ten_thousand_tasks_on_own_threads_with_limit():
    g = Group(limit=3)
    runs = [0] * 10_000
    fail = 7_777

    def task(i):
        runs[i] += 1
        if i == fail:
            raise LookupError(i)

    for i in range(10_000):
        g.go(task, i)
    with pytest.raises(LookupError):
        g.wait()
    assert max(runs) == 1 and runs[fail] == 1


# -- limit


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_is_exact(limit):
    def one_round(pool: WorkerPool | None) -> None:
        g = Group(limit=limit, pool=pool)
        lock = threading.Lock()
        inside = [0]
        peak = [0]

        def task(i):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            # Hold on until the limit has been reached once, so the maximum is observed.
            while peak[0] < limit:
                time.sleep(0.0005)
            for _ in range(i % 3):
                time.sleep(0)
            with lock:
                inside[0] -= 1

        for i in range(600):
            g.go(task, i)
        g.wait()
        assert peak[0] == limit
        assert inside[0] == 0
        if pool is not None:
            pool.shutdown()

    for pool in (None, WorkerPool(8)):
        one_round(pool)


def test_try_go_refuses_when_full():
    g = Group(limit=2)
    gate = threading.Event()
    assert g.try_go(gate.wait, 30)
    assert g.try_go(gate.wait, 30)
    assert not g.try_go(gate.wait, 30)
    assert g.running == 2
    gate.set()
    g.wait()
    assert g.running == 0


def test_blocked_go_resumes_when_a_task_finishes():
    g = Group(limit=1)
    gate = threading.Event()
    g.go(gate.wait, 30)
    done = []
    t = threading.Thread(target=lambda: (g.go(done.append, 1), done.append("went")))
    t.start()
    while g._sem.waiting != 1:  # the second go() waits for the permit
        time.sleep(0.001)
    assert done == []
    gate.set()
    t.join(30)
    g.wait()
    assert sorted(map(str, done)) == ["1", "went"]


# -- context manager


def test_context_manager_waits_and_raises():
    out = []
    with Group() as g:
        for i in range(100):
            g.go(out.append, i)
    assert len(out) == 100 and g.running == 0
    with pytest.raises(ZeroDivisionError):
        with Group() as g:
            g.go(lambda: 1 / 0)


def test_exception_in_the_body_cancels_and_wins():
    started = threading.Event()
    seen = []

    def task():
        started.set()
        seen.append(current_context().wait(30))
        raise OSError("task")

    with pytest.raises(KeyError):
        with Group() as g:
            g.go(task)
            assert started.wait(30)
            raise KeyError("body")
    assert seen == [True] and g.running == 0
    assert [type(e) for e in g.exceptions] == [OSError]


def test_cancelled_error_type_is_from_the_context():
    g = Group()
    g.context.cancel()
    assert isinstance(g.context.err, Cancelled)
    assert "cancelled" in repr(g)
    g.wait()
    assert "finished" in repr(g)


def test_wait_timeout():
    g = Group()
    gate = threading.Event()
    g.go(gate.wait, 30)
    with pytest.raises(TimeoutError):
        g.wait(timeout=0.02)
    assert not g.context.cancelled
    gate.set()
    g.wait()


def test_group_wait_async():
    async def main():
        g = Group()
        out = []
        for i in range(100):
            g.go(out.append, i)
        await g.wait_async()
        assert len(out) == 100
        g = Group()
        g.go(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            await g.wait_async()

    asyncio.run(main())


def test_exports():
    assert chanpool.Group is Group and chanpool.WaitGroup is WaitGroup
    assert "Group" in chanpool.__all__ and "WaitGroup" in chanpool.__all__
