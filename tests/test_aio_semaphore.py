"""Semaphore and TokenBucket from coroutines: acquire_async and async with, mixed with threads
and with coroutines on two loops; cancellation and timeouts never leak or lose a permit."""

from __future__ import annotations

import asyncio
import random
import threading

import chanpool
import pytest

from tests.helpers import watchdog


def test_async_with_never_exceeds_the_permits_across_threads_and_two_loops():
    sem = chanpool.Semaphore(3)
    lock = threading.Lock()
    inside = [0, 0]  # now, peak
    rounds = 300

    def enter() -> None:
        with lock:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])

    def leave() -> None:
        with lock:
            inside[0] -= 1

    def thread_side() -> None:
        for _ in range(rounds):
            with sem:
                enter()
                leave()

    async def loop_side() -> None:
        async def one() -> None:
            for _ in range(rounds):
                async with sem:
                    enter()
                    await asyncio.sleep(0)
                    leave()

        await asyncio.gather(*(one() for _ in range(4)))

    ts = [threading.Thread(target=thread_side) for _ in range(2)]
    ts += [threading.Thread(target=lambda: asyncio.run(loop_side())) for _ in range(2)]
    for t in ts:
        t.start()
    watchdog(lambda: [t.join() for t in ts])
    assert inside == [0, 3]
    assert sem.available == 3


@pytest.mark.parametrize("seed", range(5))
def test_cancellation_storm_leaks_no_permit(seed):
    rng = random.Random(seed)

    async def scenario():
        sem = chanpool.Semaphore(2)
        held = 0

        async def user() -> None:
            nonlocal held
            for _ in range(50):
                try:
                    if await sem.acquire_async(timeout=rng.choice([None, 0, 0.001])):
                        held += 1
                        assert held <= 2
                        try:
                            await asyncio.sleep(0)
                        finally:
                            held -= 1
                            sem.release()
                except asyncio.CancelledError:
                    return

        tasks = [asyncio.ensure_future(user()) for _ in range(8)]
        for _ in range(60):
            await asyncio.sleep(0)
            t = rng.choice(tasks)
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sem.available, sem.waiting

    assert watchdog(lambda: asyncio.run(scenario())) == (2, 0)


def test_cancelled_waiter_passes_the_permit_on():
    async def scenario():
        sem = chanpool.Semaphore(0)
        a = asyncio.ensure_future(sem.acquire_async())
        b = asyncio.ensure_future(sem.acquire_async())
        await asyncio.sleep(0)
        sem.release()  # wakes a ...
        a.cancel()  # ... which is cancelled before it takes
        assert await b is True
        with pytest.raises(asyncio.CancelledError):
            await a
        return sem.available

    assert watchdog(lambda: asyncio.run(scenario())) == 0


def test_big_request_keeps_its_place_among_coroutines():
    async def scenario():
        sem = chanpool.Semaphore(0)
        order = []

        async def want(n: int) -> None:
            await sem.acquire_async(n)
            order.append(n)

        big = asyncio.ensure_future(want(3))
        await asyncio.sleep(0)
        small = asyncio.ensure_future(want(1))
        await asyncio.sleep(0)
        for _ in range(4):
            sem.release()
            await asyncio.sleep(0)
        await asyncio.gather(big, small)
        return order

    assert watchdog(lambda: asyncio.run(scenario())) == [3, 1]


def test_threads_and_coroutines_share_permits_handed_back_by_threads():
    sem = chanpool.Semaphore(0)
    n = 200

    async def scenario():
        got = 0
        for _ in range(n):
            assert await sem.acquire_async()
            got += 1
        return got

    releaser = threading.Thread(target=lambda: [sem.release() for _ in range(n)])
    releaser.start()
    assert watchdog(lambda: asyncio.run(scenario())) == n
    releaser.join()
    assert sem.available == 0


def test_semaphore_timeout_returns_false_and_bad_input_is_rejected():
    async def scenario():
        sem = chanpool.Semaphore(0)
        assert await sem.acquire_async(timeout=0.01) is False
        assert await sem.acquire_async(timeout=0) is False
        sem.release()
        assert await sem.acquire_async(timeout=0) is True

    watchdog(lambda: asyncio.run(scenario()))
    sem = chanpool.Semaphore(1, bounded=True)
    with pytest.raises(ValueError, match="n"):
        sem.acquire_async(n=0)
    with pytest.raises(ValueError, match="bound"):
        sem.acquire_async(n=2)
    with pytest.raises(ValueError, match="timeout"):
        sem.acquire_async(timeout=float("nan"))
    assert sem.available == 1


def test_token_bucket_async_paces_and_async_with_takes_one():
    async def scenario():
        bucket = chanpool.TokenBucket(500, 5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(5 + 50):
            async with bucket:
                pass
        # 5 from the full bucket, then 50 earned at 500/s: at least 0.1 s.
        return loop.time() - start

    assert watchdog(lambda: asyncio.run(scenario())) >= 0.099


def test_token_bucket_async_waits_behind_threads_in_line():
    bucket = chanpool.TokenBucket(100, 1)
    assert bucket.try_acquire()
    in_line = threading.Event()

    def thread_side() -> bool:
        in_line.set()
        return bucket.acquire(1, timeout=30)

    async def scenario():
        t = threading.Thread(target=thread_side)
        t.start()
        await asyncio.get_running_loop().run_in_executor(None, in_line.wait)
        ok = await bucket.acquire_async(timeout=30)
        t.join()
        return ok

    assert watchdog(lambda: asyncio.run(scenario())) is True


def test_token_bucket_timeout_and_bad_input():
    async def scenario():
        bucket = chanpool.TokenBucket(1, 1)
        assert bucket.try_acquire()
        assert await bucket.acquire_async(timeout=0.01) is False
        assert await bucket.acquire_async(timeout=0) is False

    watchdog(lambda: asyncio.run(scenario()))
    bucket = chanpool.TokenBucket(10, 2)
    with pytest.raises(ValueError):
        bucket.acquire_async(n=3)
    with pytest.raises(ValueError, match="timeout"):
        bucket.acquire_async(timeout=float("nan"))
