"""PubSub from coroutines: pull subscriptions read with get_async / async for, publish_async
waiting for room under overflow="block", and async handlers on event loops; exact counts
with publisher threads and loops in several threads, cancellation storms, every overflow
policy, errors, drains and loops that go away."""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
from collections import Counter

import chanpool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import watchdog

POLICIES = ["block", "drop_oldest", "drop_newest", "error"]


class LoopThread:
    """An event loop running in its own thread (the async handlers' loop in these tests)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        async def finish() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def loops():
    made: list = []

    def make(n: int) -> list:
        made.extend(LoopThread() for _ in range(n))
        return made[-n:]

    yield make
    for lt in made:
        lt.stop()


def publish_from_threads(bus, topic: str, publishers: int, per: int) -> None:
    def pub(p: int) -> None:
        for i in range(per):
            bus.publish(topic, (p, i))

    ts = [threading.Thread(target=pub, args=(p,)) for p in range(publishers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


# Pull subscriptions.


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    publishers=st.integers(1, 3),
    readers=st.integers(1, 3),
    per=st.integers(1, 300),
    capacity=st.sampled_from([1, 4, 1024]),
)
def test_pull_threads_to_coroutines_on_two_loops_every_message_once(
    publishers, readers, per, capacity
):
    bus = chanpool.PubSub()
    sub = bus.subscribe("t.>", capacity=capacity)
    got: Counter = Counter()
    lock = threading.Lock()

    def side(k: int):
        async def main():
            async def reader() -> None:
                async for m in sub:
                    with lock:
                        got[m.data] += 1

            await asyncio.gather(*(reader() for _ in range(readers)))

        return asyncio.run(main())

    def scenario() -> None:
        ts = [threading.Thread(target=side, args=(k,)) for k in range(2)]
        for t in ts:
            t.start()
        publish_from_threads(bus, "t.x", publishers, per)
        bus.close()  # keeps what pull readers have queued; iteration ends once drained
        for t in ts:
            t.join()

    watchdog(scenario)
    assert got == Counter({(p, i): 1 for p in range(publishers) for i in range(per)})
    assert bus.stats()["delivered"] == publishers * per


def test_async_for_is_in_order_and_ends_on_unsubscribe():
    bus = chanpool.PubSub()
    sub = bus.subscribe("a")

    async def main():
        async def reader():
            return [m.data async for m in sub]

        t = asyncio.ensure_future(reader())
        for i in range(500):
            await bus.publish_async("a", i)
            if i % 7 == 0:
                await asyncio.sleep(0)
        while sub.stats()["pending"]:
            await asyncio.sleep(0)
        sub.unsubscribe()
        return await t

    assert watchdog(lambda: asyncio.run(main())) == list(range(500))


def test_cancelled_get_async_consumes_nothing():
    bus = chanpool.PubSub()
    sub = bus.subscribe("a")

    async def main():
        got = []
        for i in range(50):
            t = asyncio.ensure_future(sub.get_async())
            await asyncio.sleep(0)  # registered
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            bus.publish("a", i)
            got.append(sub.get(timeout=0).data)  # still there for the next reader
        return got

    assert watchdog(lambda: asyncio.run(main())) == list(range(50))
    assert sub.stats()["delivered"] == 50


def test_woken_then_cancelled_get_passes_the_message_to_the_next_reader():
    bus = chanpool.PubSub()
    sub = bus.subscribe("a")

    async def main():
        first = asyncio.ensure_future(sub.get_async())
        second = asyncio.ensure_future(sub.get_async())
        await asyncio.sleep(0)
        bus.publish("a", 1)  # wakes the first; it is cancelled before it runs
        first.cancel()
        m = await asyncio.wait_for(second, 10)
        with pytest.raises(asyncio.CancelledError):
            await first
        return m.data

    assert watchdog(lambda: asyncio.run(main())) == 1


@pytest.mark.parametrize("seed", range(4))
def test_get_async_cancellation_storm_every_message_once(seed):
    rng = random.Random(seed)
    bus = chanpool.PubSub()
    sub = bus.subscribe("s", capacity=8)
    n = 600

    async def main():
        got: list = []

        async def reader() -> None:
            while True:
                try:
                    if rng.random() < 0.3:
                        m = await sub.get_async(timeout=rng.choice([0, 0.0005, 0.002]))
                    else:
                        m = await sub.get_async()
                except queue.Empty:
                    continue
                except chanpool.Closed:
                    return
                got.append(m.data)

        async def canceller() -> None:
            for _ in range(300):
                t = asyncio.ensure_future(sub.get_async())
                await asyncio.sleep(0)
                if not t.done():
                    t.cancel()
                try:
                    got.append((await t).data)
                except (asyncio.CancelledError, chanpool.Closed):
                    pass

        readers = [asyncio.ensure_future(reader()) for _ in range(3)]
        pub = threading.Thread(target=lambda: [bus.publish("s", i) for i in range(n)])
        pub.start()
        await canceller()
        await asyncio.to_thread(pub.join)
        bus.close()
        await asyncio.gather(*readers)
        return got

    got = watchdog(lambda: asyncio.run(main()))
    assert sorted(got) == list(range(n))
    assert bus.stats()["delivered"] == n


def test_get_async_timeouts_and_errors():
    bus = chanpool.PubSub()
    sub = bus.subscribe("a")
    push = bus.subscribe("b", lambda m: None)

    async def main():
        with pytest.raises(queue.Empty):
            await sub.get_async(timeout=0)
        with pytest.raises(queue.Empty):
            await sub.get_async(timeout=0.01)
        with pytest.raises(ValueError):
            await sub.get_async(timeout=float("nan"))
        with pytest.raises(TypeError):
            push.get_async()
        with pytest.raises(TypeError):
            push.__aiter__()
        w = asyncio.ensure_future(sub.get_async())
        await asyncio.sleep(0)
        sub.unsubscribe()
        with pytest.raises(chanpool.Closed):
            await asyncio.wait_for(w, 10)

    watchdog(lambda: asyncio.run(main()))
    bus.close()


# publish_async.


def test_publish_async_waits_for_room_without_blocking_the_loop():
    bus = chanpool.PubSub()
    sub = bus.subscribe("a", capacity=1)

    async def main():
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tk = asyncio.ensure_future(ticker())
        await bus.publish_async("a", 0)
        blocked = asyncio.ensure_future(bus.publish_async("a", 1))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not blocked.done()  # full: waiting, while the loop runs
        before = ticks
        assert before >= 20
        assert (await sub.get_async()).data == 0
        assert await asyncio.wait_for(blocked, 10) == 1
        assert (await sub.get_async()).data == 1
        tk.cancel()

    watchdog(lambda: asyncio.run(main()))
    bus.close()


def test_cancelled_publish_async_reaches_no_subscription_after_the_full_one():
    bus = chanpool.PubSub()
    first = bus.subscribe("a", capacity=4)
    full = bus.subscribe("a", capacity=1)
    after = bus.subscribe("a", capacity=4)

    async def main():
        assert await bus.publish_async("a", "fill-1") == 3
        first.get(timeout=0)
        after.get(timeout=0)  # only `full` is full now
        t = asyncio.ensure_future(bus.publish_async("a", "x"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not t.done()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    watchdog(lambda: asyncio.run(main()))
    assert first.get(timeout=0).data == "x"  # reached before the wait
    with pytest.raises(queue.Empty):
        after.get(timeout=0)  # never reached
    assert full.get(timeout=0).data == "fill-1"
    assert full.stats()["dropped"] == 1  # offered and not taken, as a Ctrl-C'd publish
    bus.close()


@pytest.mark.parametrize("seed", range(4))
def test_publish_async_cancellation_storm_delivers_exactly_what_returned(seed):
    rng = random.Random(seed)
    bus = chanpool.PubSub()
    sub = bus.subscribe("s", capacity=2)

    async def main():
        sent: list = []
        got: list = []

        async def publisher(base: int) -> None:
            for k in range(200):
                t = asyncio.ensure_future(bus.publish_async("s", base + k))
                if rng.random() < 0.4:
                    await asyncio.sleep(0)
                    if not t.done():
                        t.cancel()
                try:
                    if await t == 1:
                        sent.append(base + k)
                except asyncio.CancelledError:
                    pass

        async def reader() -> None:
            async for m in sub:
                got.append(m.data)
                if rng.random() < 0.3:
                    await asyncio.sleep(0)

        r = asyncio.ensure_future(reader())
        await asyncio.gather(*(publisher(i * 10_000) for i in range(3)))
        while sub.stats()["pending"]:
            await asyncio.sleep(0)
        sub.unsubscribe()
        await r
        return sent, got

    sent, got = watchdog(lambda: asyncio.run(main()))
    assert sorted(got) == sorted(sent)
    assert len(set(got)) == len(got)
    st_ = sub.stats()
    assert st_["delivered"] == len(got)
    assert bus.stats()["published"] == 600


def test_publish_async_behaves_as_publish_for_other_policies_and_errors():
    bus = chanpool.PubSub()
    err = bus.subscribe("e", capacity=1, overflow="error")

    async def main():
        assert await bus.publish_async("nobody", 1) == 0
        assert await bus.publish_async("e", 1) == 1
        with pytest.raises(queue.Full):
            await bus.publish_async("e", 2)
        with pytest.raises(ValueError):
            await bus.publish_async("bad..topic", 1)
        bus.close(drain=False)
        with pytest.raises(RuntimeError):
            await bus.publish_async("e", 3)

    watchdog(lambda: asyncio.run(main()))
    assert err.stats()["dropped"] == 2  # the one refused, then the one queued at close
    assert bus.stats()["unrouted"] == 1


def test_publish_async_to_a_queue_group_takes_one_member():
    bus = chanpool.PubSub()
    members = [bus.subscribe("g", group="q", capacity=1) for _ in range(3)]

    async def main():
        for i in range(3):
            assert await bus.publish_async("g", i) == 1
        t = asyncio.ensure_future(bus.publish_async("g", 3))  # every member is full
        await asyncio.sleep(0)
        assert not t.done()
        got = [m.get(timeout=0).data for m in members]
        assert await asyncio.wait_for(t, 10) == 1
        return got

    got = watchdog(lambda: asyncio.run(main()))
    assert sorted(got) == [0, 1, 2]
    assert sum(m.stats()["pending"] for m in members) == 1
    bus.close()


# Async handlers.


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    publishers=st.integers(1, 3),
    per=st.integers(1, 200),
    workers=st.integers(1, 4),
    capacity=st.sampled_from([1, 8, 1024]),
)
def test_async_handlers_on_two_loops_exact_counts(publishers, per, workers, capacity):
    lts = [LoopThread() for _ in range(2)]
    try:
        bus = chanpool.PubSub()
        seen: list = [Counter() for _ in lts]
        order: list = [[] for _ in lts]
        running = [0, 0]
        peak = [0, 0]

        def handler_for(k: int):
            async def handler(m) -> None:
                running[k] += 1
                peak[k] = max(peak[k], running[k])
                await asyncio.sleep(0)
                seen[k][m.data] += 1
                order[k].append(m.data)
                running[k] -= 1

            return handler

        subs = [
            bus.subscribe("h.*", handler_for(k), workers=workers, capacity=capacity, loop=lt.loop)
            for k, lt in enumerate(lts)
        ]
        watchdog(lambda: publish_from_threads(bus, "h.x", publishers, per))
        assert watchdog(lambda: bus.close(drain=True, timeout=60)) is True
        want = Counter({(p, i): 1 for p in range(publishers) for i in range(per)})
        for k in range(2):
            assert seen[k] == want
            assert peak[k] <= workers
            assert subs[k].stats()["delivered"] == publishers * per
            if workers == 1:
                for p in range(publishers):
                    assert [i for q, i in order[k] if q == p] == list(range(per))
        assert bus.stats()["delivered"] == 2 * publishers * per
    finally:
        for lt in lts:
            lt.stop()


def test_async_handler_uses_up_to_workers_coroutines_at_once(loops):
    (lt,) = loops(1)
    bus = chanpool.PubSub()
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def handler(m) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    async def setup():
        return bus.subscribe("c", handler, workers=3)

    lt.call(setup())
    for i in range(10):
        bus.publish("c", i)

    async def check():
        while running < 3:
            await asyncio.sleep(0.001)
        for _ in range(20):
            await asyncio.sleep(0)
        assert running == 3
        gate.set()

    watchdog(lambda: lt.call(check()))
    assert watchdog(lambda: bus.close(timeout=60)) is True
    assert peak == 3
    assert bus.stats()["delivered"] == 10


def test_async_handler_errors_go_to_on_error_or_dead_letters(loops, caplog):
    (lt,) = loops(1)
    bus = chanpool.PubSub()
    errors: list = []
    letters: list = []

    async def bad(m) -> None:
        await asyncio.sleep(0)
        if m.data % 2:
            raise ValueError(m.data)

    async def setup():
        bus.subscribe("x", bad, on_error=lambda e, m: errors.append((type(e), m.data)))
        bus.subscribe("y", bad)
        bus.subscribe("_errors.y", lambda m: letters.append(m.data["message"].data))

    lt.call(setup())
    with caplog.at_level(logging.ERROR, logger="chanpool"):
        for i in range(20):
            bus.publish("x", i)
            bus.publish("y", i)
        assert watchdog(lambda: bus.close(timeout=60)) is True
    assert sorted(errors) == [(ValueError, i) for i in range(1, 20, 2)]
    assert sorted(letters) == list(range(1, 20, 2))
    s = bus.stats()
    assert s["errors"] == 20
    assert s["delivered"] == 20 + 10  # the good ones of x and y, and the dead letters
    assert sum("handler of subscription" in r.getMessage() for r in caplog.records) == 10


@pytest.mark.parametrize("policy", POLICIES)
def test_every_overflow_policy_exact_with_async_handlers(loops, policy):
    (lt,) = loops(1)
    bus = chanpool.PubSub()
    gate = asyncio.Event()
    started = threading.Event()
    seen: list = []
    cap, n = 4, 20

    async def handler(m) -> None:
        started.set()
        await gate.wait()
        seen.append(m.data)

    async def setup():
        return bus.subscribe("p", handler, capacity=cap, overflow=policy)

    sub = lt.call(setup())
    bus.publish("p", 0)
    assert started.wait(30)  # message 0 is in the handler; the mailbox is empty
    refused = 0
    if policy == "block":

        async def fill():
            for i in range(1, n):
                await bus.publish_async("p", i)

        fut = asyncio.run_coroutine_threadsafe(fill(), lt.loop)
        while sub.stats()["pending"] < cap:
            threading.Event().wait(0.001)
        assert not fut.done()  # blocked for room, the loop is still free
        lt.loop.call_soon_threadsafe(gate.set)
        fut.result(60)
    else:
        for i in range(1, n):
            try:
                bus.publish("p", i)
            except queue.Full:
                refused += 1
        lt.loop.call_soon_threadsafe(gate.set)
    assert watchdog(lambda: bus.close(timeout=60)) is True
    s = sub.stats()
    if policy == "block":
        assert seen == list(range(n))
        assert s["dropped"] == 0
    elif policy == "drop_oldest":
        assert seen == [0, *range(n - cap, n)]
        assert s["dropped"] == n - 1 - cap
    elif policy == "drop_newest":
        assert seen == list(range(cap + 1))
        assert s["dropped"] == n - 1 - cap
    else:
        assert seen == list(range(cap + 1))
        assert refused == s["dropped"] == n - 1 - cap
    assert s["delivered"] == len(seen)
    assert bus.stats()["discarded"] == 0


def test_drain_and_unsubscribe_wait_for_running_coroutines(loops):
    (lt,) = loops(1)
    bus = chanpool.PubSub()
    done: list = []
    release = threading.Event()
    u_started = threading.Event()

    async def slow(m) -> None:
        if m.data == "u":
            u_started.set()
        await asyncio.to_thread(release.wait)
        done.append(m.data)

    async def setup():
        return bus.subscribe("d", slow, workers=2), bus.subscribe("u", slow)

    _d, u = lt.call(setup())
    for i in range(6):
        bus.publish("d", i)
    bus.publish("u", "u")
    assert u_started.wait(30)  # "u" is in its handler, not queued (that would be discarded)
    t = threading.Timer(0.05, release.set)
    t.start()
    u.unsubscribe()  # off the loop: waits for the coroutine in progress
    assert "u" in done
    assert watchdog(lambda: bus.close(drain=True, timeout=60)) is True
    assert sorted(x for x in done if x != "u") == list(range(6))
    t.join()


def test_close_drain_on_the_handlers_loop_is_refused_close_async_drains():
    bus = chanpool.PubSub()
    seen: list = []

    async def handler(m) -> None:
        await asyncio.sleep(0)
        seen.append(m.data)

    async def main():
        bus.subscribe("z", handler)
        for i in range(50):
            bus.publish("z", i)
        with pytest.raises(RuntimeError, match="close_async"):
            bus.close()
        assert await bus.close_async() is True

    watchdog(lambda: asyncio.run(main()))
    assert seen == list(range(50))


def test_subscribe_async_handler_argument_errors():
    bus = chanpool.PubSub()

    async def handler(m) -> None:
        pass

    with pytest.raises(RuntimeError, match="event loop"):
        bus.subscribe("a", handler)
    with pytest.raises(TypeError, match="loop"):
        bus.subscribe("a", handler, loop=object())
    with pytest.raises(ValueError, match="loop"):
        bus.subscribe("a", lambda m: None, loop=asyncio.new_event_loop())
    with pytest.raises(ValueError, match="loop"):
        bus.subscribe("a", loop=asyncio.new_event_loop())
    closed = asyncio.new_event_loop()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        bus.subscribe("a", handler, loop=closed)
    assert bus.stats()["subscriptions"] == 0
    bus.close()


def test_async_handler_with_rate_limit_paces_on_the_loop(loops):
    (lt,) = loops(1)
    bus = chanpool.PubSub()
    seen: list = []

    async def handler(m) -> None:
        seen.append(m.data)

    async def setup():
        return bus.subscribe("r", handler, rate_limit=chanpool.TokenBucket(1000, 5))

    lt.call(setup())
    for i in range(30):
        bus.publish("r", i)
    assert watchdog(lambda: bus.close(timeout=60)) is True
    assert seen == list(range(30))


def test_loop_closed_with_queued_messages_counts_and_logs_them(caplog):
    bus = chanpool.PubSub()
    loop = asyncio.new_event_loop()
    gate = asyncio.Event()

    async def handler(m) -> None:
        await gate.wait()

    async def setup():
        return bus.subscribe("q", handler)

    sub = loop.run_until_complete(setup())
    for i in range(5):
        bus.publish("q", i)
    loop.run_until_complete(asyncio.sleep(0.01))  # message 0 is in the handler
    with caplog.at_level(logging.WARNING, logger="chanpool"):
        loop.close()
    assert not sub.active
    s = bus.stats()
    assert s["discarded"] == 4
    assert sub.stats()["dropped"] == 5  # the one in progress and the four queued
    assert any("4 queued message" in r.getMessage() for r in caplog.records)
    assert bus.publish("q", 9) == 0  # the subscription has ended
    assert watchdog(lambda: bus.close(timeout=10)) is True
