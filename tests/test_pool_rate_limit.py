"""WorkerPool(rate_limit=...): every call and every map item first takes a token."""

from __future__ import annotations

import threading
import time

import chanpool
import pytest
from helpers import exact, watchdog


def test_calls_are_paced_by_the_limit(make_pool):
    p = make_pool(4, rate_limit=200)
    t0 = time.monotonic()
    futures = [p.submit(abs, -i) for i in range(101)]
    assert [f.result(timeout=30) for f in futures] == list(range(101))
    # burst 1: the first call is free, the next 100 need 100 / 200 s.
    assert time.monotonic() - t0 >= 0.45
    p.shutdown()
    exact(p, submitted=101, completed=101, cancelled=0)


def test_map_items_are_paced_too(make_pool):
    p = make_pool(2, rate_limit=200)
    t0 = time.monotonic()
    assert list(p.map(abs, range(-50, 1), chunksize=7)) == list(range(50, -1, -1))
    assert time.monotonic() - t0 >= 0.2


def test_a_shared_bucket_limits_several_pools_together(make_pool):
    bucket = chanpool.TokenBucket(100, 1)
    a, b = make_pool(2, rate_limit=bucket), make_pool(2, rate_limit=bucket)
    t0 = time.monotonic()
    futures = [pool.submit(abs, 1) for pool in (a, b) for _ in range(25)]
    assert sum(f.result(timeout=30) for f in futures) == 50
    assert time.monotonic() - t0 >= 0.45


def test_cancel_futures_is_not_held_up_by_a_slow_limit(make_pool):
    for _ in range(5):
        p = make_pool(2, rate_limit=0.001)  # one call now, the next in 1000 s
        futures = [p.submit(abs, -i) for i in range(20)]
        watchdog(lambda p=p: p.shutdown(wait=True, cancel_futures=True), timeout=30)
        s = p.stats()
        assert s["completed"] <= 1
        assert s["completed"] + s["cancelled"] == 20, s
        assert sum(f.cancelled() for f in futures) == s["cancelled"]


def test_a_future_cancelled_while_queued_spends_no_token(make_pool):
    bucket = chanpool.TokenBucket(0.001, 2)
    p = make_pool(1, rate_limit=bucket)
    gate = threading.Event()
    first = p.submit(gate.wait, 30)  # takes token 1 of 2
    doomed = [p.submit(abs, 1) for _ in range(5)]
    assert all(f.cancel() for f in doomed)
    last = p.submit(abs, -7)
    gate.set()
    assert first.result(timeout=30) is True
    assert last.result(timeout=30) == 7  # token 2 was still there


@pytest.mark.parametrize(
    "bad, exc",
    [
        ("fast", TypeError),
        (True, TypeError),
        (0, ValueError),
        (-5, ValueError),
        (float("nan"), ValueError),
    ],
)
def test_bad_rate_limit_is_refused(bad, exc):
    with pytest.raises(exc):
        chanpool.WorkerPool(1, rate_limit=bad)
