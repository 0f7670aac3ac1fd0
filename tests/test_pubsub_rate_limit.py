"""subscribe(..., rate_limit=...): a handler is called at most `rate` times a second."""

from __future__ import annotations

import threading
import time

import chanpool
import pytest
from helpers import wait_until


def test_handler_calls_are_paced_and_none_is_lost():
    with chanpool.PubSub() as bus:
        got = []
        done = threading.Event()

        def handler(m):
            got.append(m.data)
            if len(got) == 41:
                done.set()

        bus.subscribe("t", handler, rate_limit=200)
        t0 = time.monotonic()
        for i in range(41):
            assert bus.publish("t", i) == 1
        assert done.wait(30)
        assert time.monotonic() - t0 >= 0.18  # 40 calls after the first at 200/s
        assert got == list(range(41))


def test_a_slow_subscription_does_not_hold_up_the_others():
    with chanpool.PubSub() as bus:
        slow_calls, fast = [], threading.Event()
        bus.subscribe("t", slow_calls.append, rate_limit=0.001)  # one call, then 1000 s
        for k in range(3):
            bus.subscribe(f"other.{k}", lambda m: None, rate_limit=0.001)
        n = []
        bus.subscribe("t", lambda m: (n.append(1), len(n) == 100 and fast.set()))
        for k in range(3):
            for _ in range(3):
                bus.publish(f"other.{k}", 0)
        for i in range(100):
            bus.publish("t", i)
        assert fast.wait(30)
        assert len(slow_calls) == 1
        # Without drain, close discards what the limited subscriptions still hold.
        assert bus.close(drain=False, timeout=30)


def test_a_shared_bucket_paces_several_subscriptions_together():
    bucket = chanpool.TokenBucket(100, 1)
    with chanpool.PubSub() as bus:
        count = []
        lock = threading.Lock()

        def handler(m):
            with lock:
                count.append(1)

        for k in range(2):
            bus.subscribe(f"s.{k}", handler, rate_limit=bucket)
        t0 = time.monotonic()
        for i in range(25):
            bus.publish("s.0", i)
            bus.publish("s.1", i)
        wait_until(lambda: len(count) == 50, what="50 deliveries")
        assert time.monotonic() - t0 >= 0.45


@pytest.mark.parametrize("bad, exc", [("x", TypeError), (0, ValueError), (True, TypeError)])
def test_bad_rate_limit(bad, exc):
    with chanpool.PubSub() as bus:
        with pytest.raises(exc):
            bus.subscribe("t", print, rate_limit=bad)
        with pytest.raises(ValueError, match="needs a handler"):
            bus.subscribe("t", rate_limit=5)
        assert bus.stats()["subscriptions"] == 0
