"""await chanpool.Future and await pool.run(): asyncio.wrap_future's semantics, contextvars
copied as asyncio.to_thread does, woken through the loop's waker."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import chanpool
import pytest

from tests.helpers import watchdog

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def pool():
    p = chanpool.WorkerPool(4)
    yield p
    p.shutdown(wait=True)


def test_await_future_result_and_exception(pool):
    async def scenario():
        assert await pool.submit(pow, 2, 10) == 1024
        with pytest.raises(ZeroDivisionError):
            await pool.submit(lambda: 1 / 0)
        done = pool.submit(int, "7")
        done.result()
        assert await done == 7  # already finished: no wait at all

    watchdog(lambda: asyncio.run(scenario()))


def test_many_futures_every_result_exactly_once(pool):
    n = 2000

    async def scenario():
        futs = [pool.submit(lambda i=i: i * 2) for i in range(n)]
        return await asyncio.gather(*(asyncio.ensure_future(_aw(f)) for f in futs))

    assert watchdog(lambda: asyncio.run(scenario())) == [2 * i for i in range(n)]


async def _aw(f):
    return await f


def test_futures_awaited_from_two_loops(pool):
    n = 500
    results: dict = {}

    def side(i: int) -> None:
        async def main():
            return await asyncio.gather(*(pool.run(lambda k=k: (i, k)) for k in range(n)))

        results[i] = asyncio.run(main())

    ts = [threading.Thread(target=side, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert results == {i: [(i, k) for k in range(n)] for i in range(2)}


def test_cancelling_the_await_cancels_a_future_that_has_not_started():
    gate = threading.Event()
    started = threading.Event()
    pool = chanpool.WorkerPool(1)
    try:
        blocker = pool.submit(lambda: (started.set(), gate.wait(30)))
        queued = pool.submit(lambda: "ran")

        async def scenario():
            started.wait(30)
            t = asyncio.ensure_future(_aw(queued))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t

        watchdog(lambda: asyncio.run(scenario()))
        assert queued.cancelled()
        gate.set()
        assert blocker.result(30) == (None, True)
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_cancelling_the_await_of_a_running_future_leaves_it_running():
    gate = threading.Event()
    started = threading.Event()
    pool = chanpool.WorkerPool(1)
    try:
        running = pool.submit(lambda: (started.set(), gate.wait(30))[1])

        async def scenario():
            started.wait(30)
            t = asyncio.ensure_future(_aw(running))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t

        watchdog(lambda: asyncio.run(scenario()))
        gate.set()
        assert running.result(30) is True
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_a_future_cancelled_elsewhere_raises_cancelled_error():
    gate = threading.Event()
    pool = chanpool.WorkerPool(1)
    try:
        pool.submit(gate.wait, 30)
        queued = pool.submit(int)

        async def scenario():
            loop = asyncio.get_running_loop()
            loop.call_soon(queued.cancel)
            with pytest.raises(asyncio.CancelledError):
                await queued

        watchdog(lambda: asyncio.run(scenario()))
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_pool_run_copies_the_callers_contextvars(pool):
    async def scenario():
        var.set("caller")

        def read_and_set():
            seen = var.get()
            var.set("worker")  # a copy: the caller's value stays
            return seen

        seen = await pool.run(read_and_set)
        return seen, var.get()

    assert watchdog(lambda: asyncio.run(scenario())) == ("caller", "caller")


def test_pool_run_passes_args_and_kwargs(pool):
    async def scenario():
        return await pool.run(lambda a, b=0, *, c: (a, b, c), 1, b=2, c=3)

    assert watchdog(lambda: asyncio.run(scenario())) == (1, 2, 3)


def test_pool_run_rejects_a_non_callable_before_queueing(pool):
    with pytest.raises(TypeError, match="callable"):
        pool.run(42)
    assert pool.stats()["submitted"] == 0


def test_pool_run_returns_a_future_of_the_running_loop(pool):
    async def scenario():
        f = pool.run(pow, 3, 4)
        assert isinstance(f, asyncio.Future)
        assert f.get_loop() is asyncio.get_running_loop()
        assert await f == 81
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0)

    watchdog(lambda: asyncio.run(scenario()))


def test_pool_run_without_a_running_loop_queues_nothing(pool):
    with pytest.raises(RuntimeError):
        pool.run(int)
    assert pool.stats()["submitted"] == 0


def test_pool_run_many_every_result_exactly_once(pool):
    n = 3000

    async def scenario():
        out = []
        for base in range(0, n, 8):
            out += await asyncio.gather(
                *(pool.run(lambda i=i: i * 3) for i in range(base, base + 8))
            )
        return out

    assert watchdog(lambda: asyncio.run(scenario())) == [3 * i for i in range(n + (-n % 8))]


def test_pool_run_cancelled_before_it_starts_never_runs():
    gate = threading.Event()
    started = threading.Event()
    pool = chanpool.WorkerPool(1)
    ran = []
    try:
        blocker = pool.submit(lambda: (started.set(), gate.wait(30)))

        async def scenario():
            started.wait(30)
            f = pool.run(ran.append, 1)
            await asyncio.sleep(0)
            f.cancel()
            with pytest.raises(asyncio.CancelledError):
                await f

        watchdog(lambda: asyncio.run(scenario()))
        gate.set()
        blocker.result(30)
        pool.shutdown(wait=True)
        assert ran == []
        assert pool.stats()["cancelled"] == 1
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_pool_run_cancelled_in_the_pool_cancels_the_await():
    """shutdown(cancel_futures=True) cancels a queued call: its await raises CancelledError."""
    gate = threading.Event()
    started = threading.Event()
    pool = chanpool.WorkerPool(1)
    try:
        pool.submit(lambda: (started.set(), gate.wait(30)))

        async def scenario():
            started.wait(30)
            f = pool.run(int)
            await asyncio.sleep(0)
            asyncio.get_running_loop().call_soon(
                lambda: pool.shutdown(wait=False, cancel_futures=True)
            )
            with pytest.raises(asyncio.CancelledError):
                await f

        watchdog(lambda: asyncio.run(scenario()))
    finally:
        gate.set()
        pool.shutdown(wait=True)


def _cancel_while_running() -> None:
    gate = threading.Event()
    started = threading.Event()
    pool = chanpool.WorkerPool(1)
    try:

        async def scenario():
            f = pool.run(lambda: (started.set(), gate.wait(30))[1])
            await asyncio.to_thread(started.wait, 30)
            f.cancel()
            with pytest.raises(asyncio.CancelledError):
                await f
            gate.set()
            # The next call's outcome still arrives.
            return await pool.run(int, "5")

        assert watchdog(lambda: asyncio.run(scenario())) == 5
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_pool_run_cancelled_while_running_keeps_running_and_loses_nothing():
    """Cancelling the await of a running call: the call finishes; the loop is not disturbed
    when its outcome arrives for a future that is already cancelled."""
    for _ in range(20):
        _cancel_while_running()
