"""pool.map_async: results in order, at most buffersize calls in flight, errors at their item,
leaving early cancels what is queued, bad arguments refused before anything is submitted."""

from __future__ import annotations

import asyncio
import threading

import chanpool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import watchdog


class Flight:
    """Counts calls started and not yet yielded to the consumer (exact, under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def start(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def taken(self) -> None:
        with self.lock:
            self.now -= 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 300),
    workers=st.integers(1, 4),
    buffersize=st.one_of(st.none(), st.integers(1, 8)),
)
def test_results_in_order_with_at_most_buffersize_in_flight(n, workers, buffersize):
    flight = Flight()

    def f(x: int) -> int:
        flight.start()
        return x * x

    async def main(pool):
        out = []
        async for r in pool.map_async(f, range(n), buffersize=buffersize):
            flight.taken()
            out.append(r)
        return out

    with chanpool.WorkerPool(workers) as pool:
        out = watchdog(lambda: asyncio.run(main(pool)))
    assert out == [x * x for x in range(n)]
    assert flight.peak <= (buffersize or 2 * workers)
    assert flight.now == 0


def test_several_iterables_and_lazy_reading():
    read = []

    def items():
        for i in range(100):
            read.append(i)
            yield i

    async def main(pool):
        it = pool.map_async(lambda a, b: a + b, items(), range(100, 200), buffersize=3)
        first = await it.__anext__()
        # Only the window was read: the iterable is consumed as results are taken.
        assert len(read) <= 4
        return [first] + [r async for r in it]

    with chanpool.WorkerPool(2) as pool:
        out = watchdog(lambda: asyncio.run(main(pool)))
    assert out == [i + 100 + i for i in range(100)]


def test_error_raised_at_its_item_and_the_rest_cancelled():
    gate = threading.Event()
    ran = []

    def f(x: int) -> int:
        if x == 3:
            raise ValueError(x)
        if x > 3:
            gate.wait(30)
        ran.append(x)
        return x

    async def main(pool):
        out = []
        with pytest.raises(ValueError, match="3"):
            async for r in pool.map_async(f, range(100), buffersize=4):
                out.append(r)
        return out

    with chanpool.WorkerPool(1) as pool:
        out = watchdog(lambda: asyncio.run(main(pool)))
        gate.set()
    assert out == [0, 1, 2]
    # The window held at most 4 calls past the failure; the queued ones were cancelled.
    assert len(ran) <= 3 + 4


def test_leaving_early_cancels_what_is_queued():
    gate = threading.Event()
    started = []

    def f(x: int) -> int:
        started.append(x)
        gate.wait(30)
        return x

    async def main(pool):
        agen = pool.map_async(f, range(1000), buffersize=5)
        t = asyncio.ensure_future(agen.__anext__())
        await asyncio.sleep(0.01)
        gate.set()
        assert await t == 0
        await agen.aclose()

    with chanpool.WorkerPool(1) as pool:
        watchdog(lambda: asyncio.run(main(pool)))
        pool.shutdown(wait=True)
        assert len(started) <= 6


def test_cancelling_the_consumer_cancels_the_window():
    release = threading.Event()
    ran = []

    def f(x: int) -> int:
        release.wait(30)
        ran.append(x)
        return x

    async def main(pool):
        async def consume():
            return [r async for r in pool.map_async(f, range(50), buffersize=4)]

        t = asyncio.ensure_future(consume())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        release.set()

    with chanpool.WorkerPool(1) as pool:
        watchdog(lambda: asyncio.run(main(pool)))
        pool.shutdown(wait=True)
    # The running call finishes; of the four in the window only it ran.
    assert ran == [0]


def test_bad_arguments_refused_before_anything_is_submitted():
    calls = []
    with chanpool.WorkerPool(2) as pool:
        for bad, exc in [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)]:
            with pytest.raises(exc, match="buffersize"):
                pool.map_async(calls.append, range(3), buffersize=bad)
        with pytest.raises(TypeError, match="callable"):
            pool.map_async(42, range(3))
    assert calls == []
