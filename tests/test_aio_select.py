"""chanpool.select_async: select's API from coroutines; exact counts with threads and
coroutines on several loops; cancellation storms that lose and duplicate nothing; unbuffered
send cases meeting blocked threads and recv_async; fairness among ready cases."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

import chanpool
import pytest
from chanpool import Channel, select_async

from tests.helpers import watchdog
from tests.test_aio_channel import in_loops

CAPACITIES = [0, 1, 3, None]


def run(coro_fn):
    return watchdog(lambda: asyncio.run(coro_fn()))


# ------------------------------------------------------------------ the API, as select's


def test_results_match_select():
    async def main():
        a, b, out = Channel(1), Channel(1), Channel(1)
        a.send("x")
        assert await select_async([a, b]) == (0, "x", True)
        assert await select_async([a, (out, 5)]) == (1, None, True)
        assert out.recv() == 5
        assert await select_async([a, b], default=True) == (None, None, False)
        assert await select_async([], default=True) == (None, None, False)
        with pytest.raises(TimeoutError, match="select timed out"):
            await select_async([a, b], timeout=0)
        with pytest.raises(TimeoutError, match="select timed out"):
            await select_async([a, b], timeout=0.01)
        b.close()
        assert await select_async([a, b]) == (1, None, False)
        with pytest.raises(chanpool.Closed, match="select case 1"):
            await select_async([a, (b, 1)])
        # A close reaches a waiting select.
        c = Channel(0)
        t = asyncio.ensure_future(select_async([c]))
        await asyncio.sleep(0)
        c.close()
        assert await t == (0, None, False)

    run(main)


def test_bad_arguments_raise_at_the_call_like_select():
    a = Channel(1)
    for bad in (42, [1], [(a,)], [(a, 1, 2)], [(1, 2)]):
        with pytest.raises(TypeError):
            select_async(bad)
        with pytest.raises(TypeError):
            chanpool.select(bad)
    with pytest.raises(ValueError):
        select_async([])
    with pytest.raises(ValueError):
        select_async([a], timeout=1, default=True)
    with pytest.raises(TypeError):
        select_async([a], timeout="1")
    # Nothing was registered by the rejected calls: the value goes to a plain receiver.
    a.send(1)
    assert a.recv() == 1


def test_a_waiting_select_is_woken_by_a_thread_on_either_channel():
    async def main():
        for k in range(200):
            a, b = Channel(k % 2), Channel(None)
            target = (a, b)[k % 2 == 0]
            t = asyncio.ensure_future(select_async([a, b]))
            await asyncio.sleep(0)
            th = threading.Thread(target=target.send, args=(k,))
            th.start()
            i, v, ok = await t
            th.join()
            assert (i, v, ok) == ((0, 1)[k % 2 == 0], k, True)

    run(main)


# ------------------------------------------------------------------ exact counts


@pytest.mark.parametrize("cap", CAPACITIES)
def test_threads_feed_two_channels_selects_on_two_loops_receive_every_value_once(cap):
    per = 1500
    a, b = Channel(cap), Channel(cap)
    got: Counter = Counter()
    lock = threading.Lock()

    def produce(ch, base):
        for i in range(per):
            ch.send(base + i)
        ch.close()

    async def consume(_i):
        async def one():
            open_ = {0, 1}
            chans = [a, b]
            while open_:
                i, v, ok = await select_async([chans[j] for j in sorted(open_)])
                j = sorted(open_)[i]
                if not ok:
                    open_.discard(j)
                    continue
                with lock:
                    got[v] += 1

        await asyncio.gather(*(one() for _ in range(3)))

    ps = [threading.Thread(target=produce, args=(c, base)) for c, base in ((a, 0), (b, 10**6))]
    for t in ps:
        t.start()
    watchdog(lambda: in_loops(2, consume))
    for t in ps:
        t.join()
    assert sum(got.values()) == 2 * per
    assert set(got) == set(range(per)) | set(range(10**6, 10**6 + per))
    assert all(c == 1 for c in got.values())


@pytest.mark.parametrize("cap", CAPACITIES)
def test_sending_selects_on_two_loops_reach_threads_and_recv_async_exactly_once(cap):
    """Coroutines on two loops send with select_async over two channels; a thread and a
    coroutine receive from each: every value once, on one of the two channels."""
    per = 800
    a, b = Channel(cap), Channel(cap)
    got: Counter = Counter()
    lock = threading.Lock()

    def thread_recv(ch):
        for v in ch:
            with lock:
                got[v] += 1

    def async_recv(ch):
        async def main():
            async for v in ch:
                with lock:
                    got[v] += 1

        asyncio.run(main())

    async def produce(i):
        for k in range(per):
            v = i * 10**6 + k
            j, _, ok = await select_async([(a, v), (b, v)])
            assert ok and j in (0, 1)

    rs = [threading.Thread(target=f, args=(c,)) for c in (a, b) for f in (thread_recv, async_recv)]
    for t in rs:
        t.start()
    watchdog(lambda: in_loops(2, produce))
    a.close()
    b.close()
    for t in rs:
        t.join(60)
        assert not t.is_alive()
    assert sum(got.values()) == 2 * per
    assert all(c == 1 for c in got.values())


def test_unbuffered_send_case_pairs_with_a_blocked_thread_and_with_recv_async():
    async def main():
        for k in range(300):
            ch, other = Channel(0), Channel(0)
            if k % 2:
                box: list = []
                th = threading.Thread(target=lambda ch=ch, box=box: box.append(ch.recv()))
                th.start()
                # Whether the thread is blocked yet or not, the send pairs with it.
                assert await select_async([other, (ch, k)]) == (1, None, True)
                th.join()
                assert box == [k]
            else:
                r = asyncio.ensure_future(ch.recv_async())
                if k % 4:
                    await asyncio.sleep(0)  # the receiver registers first
                assert await select_async([other, (ch, k)]) == (1, None, True)
                assert await r == k

    run(main)


def test_a_sending_select_meets_a_receiving_select_on_unbuffered_channels():
    async def main():
        for k in range(300):
            a, b = Channel(0), Channel(0)
            s = asyncio.ensure_future(select_async([(a, k), (b, -k)]))
            r = asyncio.ensure_future(select_async([a, b]))
            (si, _, sok), (ri, rv, rok) = await asyncio.gather(s, r)
            assert sok and rok and si == ri and rv == (k, -k)[si]

    run(main)


# ------------------------------------------------------------------ cancellation


@pytest.mark.parametrize("cap", [1, 3, None])
def test_cancelled_select_consumes_nothing_and_sends_nothing_buffered(cap):
    async def main():
        for k in range(300):
            a, b, full = Channel(cap), Channel(cap), Channel(1)
            full.send("old")
            t = asyncio.ensure_future(select_async([a, b, (full, "new")]))
            await asyncio.sleep(0)
            (a, b)[k % 2].send(k)  # wakes the select ...
            t.cancel()  # ... which is cancelled before it runs again
            with pytest.raises(asyncio.CancelledError):
                await t
            assert (a, b)[k % 2].try_recv() == (k, True)
            assert full.try_recv() == ("old", True)
            assert full.try_recv() == (None, False)

    run(main)


def test_cancelled_unbuffered_send_case_is_withdrawn_when_not_taken():
    async def main():
        for k in range(200):
            ch = Channel(0)
            t = asyncio.ensure_future(select_async([(ch, k)], timeout=None))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            assert ch.try_recv() == (None, False)
            # Timed out, not taken: nothing was sent either.
            with pytest.raises(TimeoutError):
                await select_async([(ch, k)], timeout=0.001)
            assert ch.try_recv() == (None, False)

    run(main)


def test_timed_out_select_whose_offer_was_taken_returns_the_send():
    """A thread takes the offer about when the timeout fires: the select returns the send
    exactly when the value was delivered."""

    async def main():
        sent = delivered = 0
        for k in range(200):
            ch = Channel(0)
            box: list = []

            def recv(ch=ch, box=box):
                try:
                    box.append(ch.recv(timeout=0.002))
                except TimeoutError:
                    pass

            th = threading.Thread(target=recv)
            th.start()
            try:
                assert await select_async([(ch, k)], timeout=0.001) == (0, None, True)
                sent += 1
            except TimeoutError:
                pass
            th.join()
            delivered += len(box)
        return sent, delivered

    sent, delivered = run(main)
    assert sent == delivered


@pytest.mark.parametrize("cap", CAPACITIES)
@pytest.mark.parametrize("seed", range(4))
def test_cancellation_storm_loses_and_duplicates_nothing(cap, seed):
    """Selects over two channels are cancelled or time out at random while threads and
    coroutines send: every value sent is received exactly once, by a select that returned."""
    rng = random.Random(seed)
    a, b = Channel(cap), Channel(cap)
    n = 300
    got: list = []
    lock = threading.Lock()

    def thread_producer(ch, base):
        for k in range(n):
            ch.send(base + k)

    async def scenario():
        async def producer(ch, base):
            for k in range(n):
                await ch.send_async(base + k)

        async def consumer():
            while True:
                try:
                    if rng.random() < 0.3:
                        r = await select_async([a, b], timeout=rng.choice([0, 0.0005, 0.002]))
                    else:
                        r = await select_async([a, b])
                except TimeoutError:
                    continue
                _, v, ok = r
                if not ok:
                    return
                with lock:
                    got.append(v)

        async def canceller():
            for _ in range(300):
                t = asyncio.ensure_future(select_async([a, b]))
                await asyncio.sleep(0)
                if rng.random() < 0.5:
                    await asyncio.sleep(0)
                if not t.done():
                    t.cancel()
                try:
                    _, v, ok = await t
                except asyncio.CancelledError:
                    continue
                if ok:
                    with lock:
                        got.append(v)

        prods = [asyncio.ensure_future(producer(c, base)) for c, base in ((a, 0), (b, 10**5))]
        cons = [asyncio.ensure_future(consumer()) for _ in range(3)]
        await canceller()
        await asyncio.gather(*prods)
        # Both channels close once the threads are done too: the consumers then end.
        for t in ths:
            await asyncio.to_thread(t.join)
        a.close()
        await asyncio.gather(*cons)

    ths = [
        threading.Thread(target=thread_producer, args=(c, base))
        for c, base in ((a, 2 * 10**5), (b, 3 * 10**5))
    ]
    for t in ths:
        t.start()
    watchdog(lambda: asyncio.run(scenario()))
    # a is closed and drained; b still open: whatever the consumers left in b is read here.
    rest = []
    while True:
        v, ok = b.try_recv()
        if not ok:
            break
        rest.append(v)
    c = Counter(got + rest)
    expected = {base + k for base in (0, 10**5, 2 * 10**5, 3 * 10**5) for k in range(n)}
    assert set(c) == expected
    assert all(x == 1 for x in c.values()), [v for v, x in c.items() if x != 1][:5]


# ------------------------------------------------------------------ fairness


@pytest.mark.parametrize("ready", [2, 3])
def test_every_ready_case_is_chosen_equally_often(ready):
    trials = 4000
    chans = [Channel(None) for _ in range(ready)]
    for c in chans:
        for _ in range(trials):
            c.send(None)
    cases = [Channel(0), *chans[:1], Channel(0), *chans[1:]]

    async def main():
        return Counter([(await select_async(cases))[0] for _ in range(trials)])

    hits = run(main)
    expected = trials / ready
    assert len(hits) == ready
    assert all(abs(h - expected) < expected * 0.15 for h in hits.values()), hits


def test_a_woken_select_chooses_uniformly_among_what_is_ready_then():
    """Both channels get a value while the select waits: it takes either, about equally."""

    async def main():
        counts: Counter = Counter()
        for _ in range(2000):
            a, b = Channel(1), Channel(1)
            t = asyncio.ensure_future(select_async([a, b]))
            await asyncio.sleep(0)
            a.send(0)
            b.send(1)
            counts[(await t)[1]] += 1
        return counts

    counts = run(main)
    assert abs(counts[0] - 1000) < 150, counts
