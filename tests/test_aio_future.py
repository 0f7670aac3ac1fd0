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
