"""Channel from coroutines: send_async / recv_async / async for, mixed with threads and with
coroutines on several event loops at once; cancellation and timeouts that lose nothing;
close and loop close while coroutines wait."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

import chanpool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import watchdog

CAPACITIES = [0, 1, 3, None]


def in_loops(n: int, make_coro) -> list:
    """Runs make_coro(i) in its own event loop in its own thread, i = 0..n-1; returns results."""
    results: list = [None] * n
    errors: list = []
    barrier = threading.Barrier(n)

    def target(i: int) -> None:
        async def main():
            barrier.wait()
            return await make_coro(i)

        try:
            results[i] = asyncio.run(main())
        except BaseException as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def threads_to_coroutines(cap, producers: int, consumers: int, per: int) -> Counter:
    ch = chanpool.Channel(cap)
    total = producers * per
    got: Counter = Counter()
    lock = threading.Lock()

    def produce(p: int) -> None:
        for i in range(per):
            ch.send(p * per + i)

    async def consume(i: int) -> None:
        async def one() -> None:
            async for v in ch:
                with lock:
                    got[v] += 1

        await asyncio.gather(*(one() for _ in range(consumers)))

    ps = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in ps:
        t.start()
    closer = threading.Thread(target=lambda: ([t.join() for t in ps], ch.close()))
    closer.start()
    in_loops(2, consume)
    closer.join()
    assert sum(got.values()) == total
    return got


def coroutines_to_threads(cap, producers: int, consumers: int, per: int) -> Counter:
    ch = chanpool.Channel(cap)
    got: Counter = Counter()
    lock = threading.Lock()

    def consume() -> None:
        for v in ch:
            with lock:
                got[v] += 1

    cs = [threading.Thread(target=consume) for _ in range(consumers)]
    for t in cs:
        t.start()

    async def produce(loop_index: int) -> None:
        async def one(p: int) -> None:
            base = (loop_index * producers + p) * per
            for i in range(per):
                await ch.send_async(base + i)

        await asyncio.gather(*(one(p) for p in range(producers)))

    in_loops(2, produce)
    ch.close()
    for t in cs:
        t.join()
    return got


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cap=st.sampled_from(CAPACITIES),
    producers=st.integers(1, 4),
    consumers=st.integers(1, 4),
    per=st.integers(0, 300),
)
def test_threads_to_coroutines_on_two_loops_every_item_once(cap, producers, consumers, per):
    got = watchdog(lambda: threads_to_coroutines(cap, producers, consumers, per))
    assert got == Counter(range(producers * per))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cap=st.sampled_from(CAPACITIES),
    producers=st.integers(1, 4),
    consumers=st.integers(1, 4),
    per=st.integers(0, 300),
)
def test_coroutines_on_two_loops_to_threads_every_item_once(cap, producers, consumers, per):
    got = watchdog(lambda: coroutines_to_threads(cap, producers, consumers, per))
    assert got == Counter(range(2 * producers * per))


@pytest.mark.parametrize("cap", CAPACITIES)
def test_coroutine_to_coroutine_across_loops_in_order_per_producer(cap):
    ch = chanpool.Channel(cap)
    n = 3000

    async def side(i: int):
        if i == 0:
            for k in range(n):
                await ch.send_async(k)
            ch.close()
            return None
        return [v async for v in ch]

    _, got = watchdog(lambda: in_loops(2, side))
    assert got == list(range(n))


@pytest.mark.parametrize("cap", CAPACITIES)
@pytest.mark.parametrize("seed", range(5))
def test_cancellation_storm_loses_and_duplicates_nothing(cap, seed):
    """Receivers and senders are cancelled or time out at random while values flow: every
    value a sender reports sent is received exactly once, none that failed ever is."""
    rng = random.Random(seed)
    ch = chanpool.Channel(cap)
    n = 400

    async def scenario():
        sent: list = []
        got: list = []

        async def producer(base: int) -> None:
            for k in range(n):
                v = base + k
                try:
                    if rng.random() < 0.3:
                        await ch.send_async(v, timeout=rng.choice([0, 0.0005, 0.002]))
                    else:
                        await ch.send_async(v)
                except TimeoutError:
                    continue
                sent.append(v)

        async def consumer() -> None:
            while True:
                try:
                    if rng.random() < 0.3:
                        v = await ch.recv_async(timeout=rng.choice([0, 0.0005, 0.002]))
                    else:
                        v = await ch.recv_async()
                except TimeoutError:
                    continue
                except chanpool.Closed:
                    return
                got.append(v)

        async def canceller(tasks) -> None:
            # Cancels random recv_async/send_async waits via short-lived tasks of their own.
            for _ in range(200):
                t = asyncio.ensure_future(ch.recv_async())
                await asyncio.sleep(0)
                if not t.done():
                    t.cancel()
                try:
                    got.append(await t)
                except (asyncio.CancelledError, chanpool.Closed):
                    pass
                s = asyncio.ensure_future(ch.send_async(-1))
                await asyncio.sleep(0)
                if not s.done():
                    s.cancel()
                try:
                    await s
                    sent.append(-1)
                except asyncio.CancelledError:
                    # Unbuffered offers may be taken just before the cancel: see README.
                    pass

        prods = [asyncio.ensure_future(producer(i * 10_000)) for i in range(3)]
        cons = [asyncio.ensure_future(consumer()) for _ in range(3)]
        await canceller(prods)
        await asyncio.gather(*prods)
        ch.close()
        await asyncio.gather(*cons)
        while True:
            v, ok = ch.try_recv() if not ch.closed or len(ch) else (None, False)
            if not ok:
                break
            got.append(v)
        return sent, got

    sent, got = watchdog(lambda: asyncio.run(scenario()))
    real_sent = Counter(v for v in sent if v != -1)
    real_got = Counter(v for v in got if v != -1)
    assert real_got == real_sent
    assert all(c == 1 for c in real_got.values())
    if cap != 0:
        # Buffered: a cancelled send_async never delivers, so the -1s match exactly.
        assert Counter(got)[-1] == Counter(sent)[-1]


@pytest.mark.parametrize("cap", [1, 3, None])
def test_cancelled_recv_async_consumes_nothing(cap):
    async def scenario():
        ch = chanpool.Channel(cap)
        waiters = [asyncio.ensure_future(ch.recv_async()) for _ in range(5)]
        await asyncio.sleep(0)
        ch.send(1)  # wakes the first waiter ...
        waiters[0].cancel()  # ... which is cancelled before it retries
        for w in waiters[2:]:
            w.cancel()
        got = await waiters[1]  # the wake-up was passed on
        results = await asyncio.gather(*waiters[2:], waiters[0], return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        return got, len(ch)

    assert watchdog(lambda: asyncio.run(scenario())) == (1, 0)


@pytest.mark.parametrize("cap", [1, 3])
def test_cancelled_send_async_never_delivers_buffered(cap):
    async def scenario():
        ch = chanpool.Channel(cap)
        for i in range(cap):
            ch.send(i)
        s = asyncio.ensure_future(ch.send_async("late"))
        await asyncio.sleep(0)
        ch.recv()  # room: the sender is woken ...
        s.cancel()  # ... and cancelled before it commits
        with pytest.raises(asyncio.CancelledError):
            await s
        return [ch.try_recv()[0] for _ in range(len(ch))]

    assert watchdog(lambda: asyncio.run(scenario())) == list(range(1, cap))


def test_unbuffered_cancelled_send_async_is_withdrawn_when_not_taken():
    async def scenario():
        ch = chanpool.Channel(0)
        s = asyncio.ensure_future(ch.send_async("x"))
        await asyncio.sleep(0)
        s.cancel()
        with pytest.raises(asyncio.CancelledError):
            await s
        return ch.try_recv()

    assert watchdog(lambda: asyncio.run(scenario())) == (None, False)


@pytest.mark.parametrize("cap", CAPACITIES)
def test_close_wakes_every_waiting_receiver_with_closed(cap):
    async def scenario():
        ch = chanpool.Channel(cap)
        receivers = [asyncio.ensure_future(ch.recv_async()) for _ in range(4)]
        iterate = asyncio.ensure_future(_drain(ch))
        await asyncio.sleep(0)
        ch.close()
        rs = await asyncio.gather(*receivers, return_exceptions=True)
        assert all(isinstance(r, chanpool.Closed) for r in rs), rs
        assert await iterate == []

    watchdog(lambda: asyncio.run(scenario()))


@pytest.mark.parametrize("cap", [0, 1, 3])
def test_close_wakes_every_waiting_sender_with_closed(cap):
    async def scenario():
        ch = chanpool.Channel(cap)
        for i in range(cap):
            ch.send(i)
        senders = [asyncio.ensure_future(ch.send_async(9)) for _ in range(4)]
        await asyncio.sleep(0)
        ch.close()
        rs = await asyncio.gather(*senders, return_exceptions=True)
        assert all(isinstance(r, chanpool.Closed) for r in rs), rs
        # What was buffered still drains; no sender's value got in.
        assert await _drain(ch) == list(range(cap))

    watchdog(lambda: asyncio.run(scenario()))


async def _drain(ch):
    return [v async for v in ch]


def test_async_for_raises_the_close_error():
    async def scenario():
        ch = chanpool.Channel(2)
        ch.send(1)
        ch.close(ValueError("boom"))
        got = []
        with pytest.raises(ValueError, match="boom"):
            async for v in ch:
                got.append(v)
        return got

    assert watchdog(lambda: asyncio.run(scenario())) == [1]


def test_timeouts_raise_what_the_sync_call_raises():
    async def scenario():
        ch = chanpool.Channel(0)
        with pytest.raises(TimeoutError, match="recv timed out"):
            await ch.recv_async(timeout=0.01)
        with pytest.raises(TimeoutError, match="send timed out"):
            await ch.send_async(1, timeout=0.01)
        with pytest.raises(TimeoutError):
            await ch.recv_async(timeout=0)
        with pytest.raises(TimeoutError):  # negative means "now", as in recv()
            await ch.recv_async(timeout=-1)
        # Nothing left behind: a thread's send still needs a receiver.
        assert not ch.try_send(1)

    watchdog(lambda: asyncio.run(scenario()))


def test_bad_timeout_is_rejected_before_anything_is_queued():
    ch = chanpool.Channel(1)
    with pytest.raises(ValueError, match="timeout"):
        ch.recv_async(timeout=float("nan"))
    with pytest.raises(ValueError, match="timeout"):
        ch.send_async(1, timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout"):
        ch.recv_async(timeout="1")
    assert len(ch) == 0


def test_huge_timeout_waits_forever():
    async def scenario():
        ch = chanpool.Channel(2)
        t = asyncio.ensure_future(ch.recv_async(timeout=1e300))
        t2 = asyncio.ensure_future(ch.recv_async(timeout=float("inf")))
        await asyncio.sleep(0)
        ch.send(1)
        ch.send(2)
        return sorted(await asyncio.gather(t, t2))

    assert watchdog(lambda: asyncio.run(scenario())) == [1, 2]


@pytest.mark.parametrize("cap", [0, 1])
def test_loop_closed_while_a_coroutine_waits_passes_the_wakeup_on(cap):
    """A loop is closed under a pending recv_async (its task never cancelled): a value sent
    afterwards (or just before) reaches a coroutine on another loop."""
    for _ in range(20):
        ch = chanpool.Channel(cap)
        other_waiting = threading.Event()
        dead_waiting = threading.Event()
        result: list = []

        def other(ch=ch, other_waiting=other_waiting, result=result) -> None:
            async def main():
                t = asyncio.ensure_future(ch.recv_async())
                await asyncio.sleep(0)
                other_waiting.set()
                result.append(await t)

            asyncio.run(main())

        t_other = threading.Thread(target=other)
        # The dead loop's coroutine registers first, so it is woken first.
        loop = asyncio.new_event_loop()
        task = loop.create_task(ch.recv_async())
        loop.run_until_complete(asyncio.sleep(0))
        dead_waiting.set()
        t_other.start()
        other_waiting.wait()
        if cap:
            ch.send(1)  # woken: the dead loop's coroutine, whose loop never runs again
        loop.close()
        if not cap:
            ch.send(1, timeout=30)  # unbuffered: a blocked sender wakes the next coroutine
        t_other.join(30)
        assert not t_other.is_alive()
        assert result == [1]
        del task


def test_same_channel_from_threads_and_coroutines_at_once():
    """A thread and two loops send, a thread and two loops receive; the last producer to
    finish closes the channel."""
    ch = chanpool.Channel(2)
    n = 2000
    got: Counter = Counter()
    lock = threading.Lock()
    left = [3]

    def finished() -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            ch.close()

    def thread_consumer() -> None:
        for v in ch:
            with lock:
                got[v] += 1

    def thread_producer() -> None:
        for k in range(n):
            ch.send(2 * n + k)
        finished()

    async def loop_side(i: int) -> None:
        async def consume() -> None:
            async for v in ch:
                with lock:
                    got[v] += 1

        async def produce() -> None:
            for k in range(n):
                await ch.send_async(i * n + k)
            finished()

        await asyncio.gather(consume(), produce())

    threads = [threading.Thread(target=thread_consumer), threading.Thread(target=thread_producer)]
    for t in threads:
        t.start()
    watchdog(lambda: in_loops(2, loop_side))
    for t in threads:
        t.join()
    assert got == Counter(range(3 * n))
