"""The same-loop fast path: a coroutine woken by another coroutine (or loop-thread code) of its
own loop is resolved directly after the waking call, not through the loop's wake-up pipe; any
other wake-up still takes the pipe. Cancellation racing a direct wake-up loses nothing."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import chanpool
import pytest
from chanpool import _aio

from tests.helpers import watchdog

CAPACITIES = [0, 1, 3, None]


@pytest.fixture
def drains(monkeypatch):
    """Counts the loop's pipe drains that found something to wake (wakers made afterwards)."""
    count = [0]
    real = _aio._drain

    def counting(w):
        taken = w.take()
        count[0] += len(taken)
        for fut in taken:
            if not fut.done():
                fut.set_result(None)

    monkeypatch.setattr(_aio, "_drain", counting)
    monkeypatch.setattr(_aio, "_last", (None, None))
    yield count
    monkeypatch.setattr(_aio, "_drain", real)


@pytest.mark.parametrize("cap", CAPACITIES)
def test_coroutines_of_one_loop_wake_each_other_without_the_pipe(cap, drains):
    n = 3000

    async def scenario():
        ch = chanpool.Channel(cap)
        got: list = []

        async def produce(base: int) -> None:
            for i in range(n):
                await ch.send_async(base + i)

        async def consume() -> None:
            async for v in ch:
                got.append(v)

        cons = [asyncio.ensure_future(consume()) for _ in range(3)]
        await asyncio.gather(produce(0), produce(100_000))
        ch.close()
        await asyncio.gather(*cons)
        return got

    got = watchdog(lambda: asyncio.run(scenario()))
    assert Counter(got) == Counter([*range(n), *range(100_000, 100_000 + n)])
    assert drains[0] == 0


@pytest.mark.parametrize("cap", CAPACITIES)
def test_cancel_after_a_direct_wakeup_passes_it_on(cap, drains):
    """Within one loop step: a value arrives for a waiting receiver (resolved directly) and
    that receiver is cancelled before it runs. The value goes to the other receiver; across
    many rounds every value is received exactly once."""
    rounds = 500

    async def scenario():
        ch = chanpool.Channel(cap)
        got: list = []
        cancelled = 0
        for r in range(rounds):
            a = asyncio.ensure_future(ch.recv_async())
            b = asyncio.ensure_future(ch.recv_async())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if cap == 0:
                s = asyncio.ensure_future(ch.send_async(r))
                await asyncio.sleep(0)
            else:
                assert ch.try_send(r)
            a.cancel()
            for t in (a, b):
                try:
                    got.append(await t)
                except asyncio.CancelledError:
                    cancelled += 1
            if cap == 0:
                await s
        _, ok = ch.try_recv()
        assert not ok
        return got, cancelled

    got, cancelled = watchdog(lambda: asyncio.run(scenario()))
    assert sorted(got) == list(range(rounds))
    assert cancelled == rounds
    assert drains[0] == 0


def test_wakeup_from_the_loops_thread_while_it_is_not_running_takes_the_pipe():
    """Code on the loop's own thread wakes one of its coroutines while the loop is stopped:
    not resolved there (nothing would run it) but through the pipe, and the loop, run again
    (here on another thread), delivers."""
    for _ in range(50):
        ch = chanpool.Channel(1)
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(ch.recv_async())
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(asyncio.sleep(0))
            assert not task.done()
            assert ch.try_send("x")
            out: list = []

            def again(loop=loop, task=task, out=out) -> None:
                out.append(loop.run_until_complete(task))

            t = threading.Thread(target=again)
            t.start()
            t.join(10)
            assert out == ["x"]
        finally:
            loop.close()


def test_wakeups_across_loops_in_two_threads_stay_exact():
    """Each loop's coroutines both wake their own loop's (directly) and the other loop's
    (through its pipe): every value arrives exactly once."""
    n = 2000
    ch = chanpool.Channel(4)
    barrier = threading.Barrier(2)
    got: list[list] = [[], []]

    def side(i: int) -> None:
        async def main():
            barrier.wait()

            async def produce():
                for k in range(n):
                    await ch.send_async(i * 100_000 + k)

            async def consume():
                for _ in range(n):
                    got[i].append(await ch.recv_async())

            await asyncio.gather(produce(), consume())

        asyncio.run(main())

    threads = [threading.Thread(target=side, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert Counter(got[0] + got[1]) == Counter([*range(n), *range(100_000, 100_000 + n)])
