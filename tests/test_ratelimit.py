"""chanpool.TokenBucket: parameters, exact token accounting, long-run rate, FIFO fairness,
timeouts, the context manager and decorator, GIL release, Ctrl-C and fork().

Exact-count tests use a bucket so slow (rate 1e-3) that nothing refills while they run.
Anything that could hang or kill the interpreter runs in a subprocess.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import math
import pickle
import threading
import time
import weakref

import chanpool
import pytest
from helpers import WATCHDOG, wait_until, watchdog

FROZEN = 1e-3  # tokens a second: one every 1000 s, so no refill during a test


def drained(rate: float, burst: int) -> chanpool.TokenBucket:
    b = chanpool.TokenBucket(rate, burst)
    assert b.try_acquire(burst)
    return b


def run_threads(targets, timeout: float = WATCHDOG) -> None:
    """Runs every callable on its own thread; re-raises the first failure in the caller."""
    errors: list = []

    def guard(fn):
        try:
            fn()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=guard, args=(t,), daemon=True) for t in targets]
    for t in threads:
        t.start()

    def join_all():
        for t in threads:
            t.join()

    watchdog(join_all, timeout=timeout, what="threads")
    if errors:
        raise errors[0]


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "rate", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, 10**400], ids=repr
)
def test_bad_rate_is_a_value_error(rate):
    with pytest.raises(ValueError, match="rate"):
        chanpool.TokenBucket(rate, 1)


@pytest.mark.parametrize("rate", [True, False, "1", None, [1], 1j], ids=repr)
def test_non_numeric_rate_is_a_type_error(rate):
    with pytest.raises(TypeError, match="rate"):
        chanpool.TokenBucket(rate, 1)


@pytest.mark.parametrize("burst", [0, -1, -(10**30), 10**30], ids=repr)
def test_bad_burst_is_a_value_error(burst):
    with pytest.raises(ValueError, match="burst"):
        chanpool.TokenBucket(1, burst)


@pytest.mark.parametrize("burst", [1.0, 1.5, "2", True, [2]], ids=repr)
def test_non_integer_burst_is_a_type_error(burst):
    with pytest.raises(TypeError):
        chanpool.TokenBucket(1, burst)


def test_int_likes_are_accepted():
    class Index:
        def __index__(self):
            return 2

    b = chanpool.TokenBucket(Index(), Index())
    assert (b.rate, b.burst) == (2.0, 2)
    assert b.try_acquire(Index()) and not b.try_acquire()


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.1, 1), (1, 1), (2.5, 3), (100, 100), (1e300, 2**64 - 1)]
)
def test_default_burst_is_one_second_of_tokens(rate, burst):
    b = chanpool.TokenBucket(rate)
    assert (b.rate, b.burst) == (rate, burst)
    assert b.available == float(burst)  # starts full


def test_properties_and_repr():
    b = chanpool.TokenBucket(rate=2.5, burst=4)
    assert (b.rate, b.burst, b.waiting) == (2.5, 4, 0)
    assert "rate=2.5/s" in repr(b) and "burst=4" in repr(b)
    assert "1e-300" in repr(chanpool.TokenBucket(1e-300, 1))
    with pytest.raises(TypeError):
        chanpool.TokenBucket()
    with pytest.raises(TypeError):
        chanpool.TokenBucket(1, 1, 1)


@pytest.mark.parametrize("method", ["acquire", "try_acquire"])
def test_bad_request_sizes_lose_nothing(method):
    b = chanpool.TokenBucket(FROZEN, 3)
    call = getattr(b, method)
    for n in (0, -1, -(2**70)):
        with pytest.raises(ValueError, match="n must be >= 1"):
            call(n)
    for n in (4, 2**64 - 1):
        with pytest.raises(ValueError, match="exceeds burst"):
            call(n)
    with pytest.raises(ValueError, match="too large"):
        call(2**70)
    for n in (1.0, "1", None, True):
        with pytest.raises(TypeError):
            call(n)
    # Nothing was taken by any of the refused calls.
    assert b.try_acquire(3)
    assert not b.try_acquire(1)


def test_bad_timeout_loses_nothing():
    b = chanpool.TokenBucket(FROZEN, 2)
    with pytest.raises(ValueError, match="NaN"):
        b.acquire(1, timeout=math.nan)
    with pytest.raises(TypeError):
        b.acquire(1, timeout="1")
    assert b.try_acquire(2)


HUGE_TIMEOUTS = [math.inf, 1e10, 9.3e18, 1e19, 1.8e19, 1e300]


@pytest.mark.parametrize("timeout", HUGE_TIMEOUTS, ids=repr)
def test_huge_timeouts_wait_as_long_as_it_takes(timeout):
    """inf or beyond what the clock can represent means no deadline, never a PanicException
    (timeouts in about [9.2e18, 1.8e19] s once overflowed the deadline arithmetic)."""
    b = chanpool.TokenBucket(FROZEN, 1)
    assert b.acquire(timeout=timeout)  # there: taken at once
    fast = drained(50.0, 1)
    assert watchdog(lambda: fast.acquire(timeout=timeout), what="huge-timeout acquire")
    assert fast.waiting == 0
    with pytest.raises(ValueError, match="NaN"):
        b.acquire(timeout=math.nan)
    assert b.acquire(timeout=-math.inf) is False  # negative: only tries
    assert b.waiting == 0


# ---------------------------------------------------------------------------- exact counts


def test_try_acquire_is_exact():
    b = chanpool.TokenBucket(FROZEN, 5)
    assert b.try_acquire(2)
    assert b.try_acquire(3)
    assert not b.try_acquire(1)
    assert b.available < 0.01
    b = chanpool.TokenBucket(FROZEN, 5)
    assert b.try_acquire(4)
    assert not b.try_acquire(2)  # refused whole: the lone token stays
    assert b.try_acquire(1)


def test_acquire_takes_what_is_there_without_waiting():
    b = chanpool.TokenBucket(FROZEN, 6)
    assert b.acquire()
    assert b.acquire(2, timeout=0)
    assert b.acquire(3, timeout=-1)
    # Empty: a zero or negative timeout gives up at once.
    assert b.acquire(1, timeout=0) is False
    assert b.acquire(1, timeout=-5) is False
    assert b.waiting == 0


@pytest.mark.parametrize("n", [1, 3])
def test_threads_share_the_tokens_exactly(n):
    burst, threads = 3001, 8
    for _round in range(5):
        b = chanpool.TokenBucket(FROZEN, burst)
        start = threading.Barrier(threads)
        got = [0] * threads

        def taker(k, b=b, start=start, got=got):
            start.wait()
            while b.try_acquire(n):
                got[k] += n

        run_threads([functools.partial(taker, k) for k in range(threads)])
        assert sum(got) == (burst // n) * n
        left = burst % n
        assert b.try_acquire(left) if left else True
        assert not b.try_acquire()
        assert b.waiting == 0


# ---------------------------------------------------------------------------- rate accuracy


@pytest.mark.parametrize("burst", [1, 8])
def test_long_run_rate_across_threads(burst):
    """4 threads take tokens one at a time for ~2 s: never more than was earned, and (with a
    generous tolerance for a noisy machine) not much less either."""
    rate, window, threads = 200.0, 2.0, 4
    b = drained(rate, burst)
    t0 = time.monotonic()
    counts = [0] * threads
    last = [t0] * threads

    def taker(k):
        while True:
            assert b.acquire(timeout=WATCHDOG)
            now = time.monotonic()
            counts[k] += 1
            last[k] = now
            if now - t0 >= window:
                return

    run_threads([functools.partial(taker, k) for k in range(threads)])
    total, elapsed = sum(counts), max(last) - t0
    # Hard upper bound: the bucket was empty at t0 and earns `rate` a second, capped at burst.
    assert total <= rate * elapsed + 2, (total, elapsed)
    measured = total / elapsed
    assert abs(measured - rate) <= 0.1 * rate, f"{measured:.1f}/s for {rate}/s ({total} tokens)"
    assert all(c > 0 for c in counts), counts
    assert b.waiting == 0


# ------------------------------------------------------------------------------- fairness


def test_big_request_is_not_starved_by_small_ones():
    """A 10-token request waits in line; three threads hammer the bucket for 1 token each.
    Without a line they would take every token as it appears and the big one would wait
    forever."""
    b = drained(200.0, 10)
    big_done = threading.Event()
    small_before = []

    def big():
        assert b.acquire(10, timeout=WATCHDOG)
        big_done.set()

    def small():
        taken = 0
        while not big_done.is_set():
            if b.try_acquire() or b.acquire(1, timeout=0.005):
                taken += 1
        small_before.append(taken)

    t = threading.Thread(target=big, daemon=True)
    t.start()
    wait_until(lambda: b.waiting == 1, what="big request in line")
    run_threads([small, small, small])
    assert big_done.is_set()
    t.join(WATCHDOG)
    assert b.waiting == 0


def test_later_arrival_waits_behind_the_head():
    """FIFO, checked without timing races: the head needs 5 s of refill; a 1-token request
    that joins behind it cannot be served before the head, so it times out even though tokens
    appear every 0.1 s."""
    b = drained(10.0, 50)
    results = {}

    def head():
        results["head"] = b.acquire(50, timeout=1.5)

    def behind():
        results["behind"] = b.acquire(1, timeout=0.5)

    t_head = threading.Thread(target=head, daemon=True)
    t_head.start()
    wait_until(lambda: b.waiting == 1, what="head in line")
    t_behind = threading.Thread(target=behind, daemon=True)
    t_behind.start()
    wait_until(lambda: b.waiting == 2, what="second in line")
    assert not b.try_acquire()  # never jumps the line, although tokens are there
    t_behind.join(WATCHDOG)
    assert results["behind"] is False
    assert b.waiting == 1
    t_head.join(WATCHDOG)
    assert results["head"] is False
    assert b.waiting == 0
    # Nothing was set aside for either: the tokens earned meanwhile are all there.
    assert b.try_acquire(14)  # at least 1.5 s at 10/s


def test_timeout_leaves_the_line_and_waits_with_the_gil_released():
    b = drained(FROZEN, 1)
    result = []
    t = threading.Thread(target=lambda: result.append(b.acquire(timeout=1.0)), daemon=True)
    t.start()
    # If the waiter held the GIL this thread could not run until it gave up (waiting == 0).
    wait_until(lambda: b.waiting == 1, what="waiter in line")
    assert sum(range(10_000)) == 49_995_000
    t.join(WATCHDOG)
    assert result == [False]
    assert b.waiting == 0


# ------------------------------------------------------------------- context manager, decorator


def test_context_manager_takes_one_token_each_time():
    b = chanpool.TokenBucket(FROZEN, 3)
    with b as got:
        assert got is b
    with pytest.raises(KeyError):
        with b:
            raise KeyError("boom")  # propagates; the token is spent anyway
    with b:
        pass
    assert not b.try_acquire()


def limited_square(x: int, *, scale: int = 1) -> int:
    """Squares x."""
    return x * x * scale


PICKLE_BUCKET = chanpool.TokenBucket(1e6, 1000)
limited_square = PICKLE_BUCKET(limited_square)


def test_decorator_keeps_the_metadata():
    assert limited_square.__name__ == "limited_square"
    assert limited_square.__qualname__ == "limited_square"
    assert limited_square.__doc__ == "Squares x."
    assert limited_square.__module__ == __name__
    assert limited_square.__wrapped__.__name__ == "limited_square"
    assert str(inspect.signature(limited_square)) == "(x: 'int', *, scale: 'int' = 1) -> 'int'"
    assert limited_square.bucket is PICKLE_BUCKET
    assert "limited_square" in repr(limited_square)
    assert pickle.loads(pickle.dumps(limited_square)) is limited_square


def test_decorator_takes_a_token_per_call_and_passes_everything_through():
    b = chanpool.TokenBucket(FROZEN, 3)
    calls = []

    @b
    def f(*args, **kwargs):
        calls.append((args, kwargs))
        if kwargs.get("fail"):
            raise ValueError("inner")
        return len(calls)

    assert f(1, 2, k=3) == 1
    with pytest.raises(ValueError, match="inner"):
        f(fail=True)
    assert f() == 3
    assert calls == [((1, 2), {"k": 3}), ((), {"fail": True}), ((), {})]
    assert not b.try_acquire()  # three calls, three tokens
    assert f.bucket is b


def test_decorator_on_methods():
    b = chanpool.TokenBucket(FROZEN, 4)

    class Client:
        def __init__(self, name):
            self.name = name

        @b
        def get(self, path):
            """Fetches."""
            return f"{self.name}:{path}"

    c = Client("x")
    assert c.get("/a") == "x:/a"
    assert Client.get(c, "/b") == "x:/b"
    bound = c.get
    assert bound.__self__ is c and bound("/c") == "x:/c"
    assert Client.get.__name__ == "get" and Client.get.__doc__ == "Fetches."
    assert Client.get.__qualname__.endswith("Client.get")
    assert b.try_acquire()  # 3 of 4 tokens were taken
    assert not b.try_acquire()


def test_decorator_refuses_what_it_cannot_limit():
    b = chanpool.TokenBucket(10, 1)

    async def coro():
        await asyncio.sleep(0)

    async def agen():
        yield 1

    with pytest.raises(TypeError, match="coroutine"):
        b(coro)
    with pytest.raises(TypeError, match="coroutine"):
        b(functools.partial(coro))
    with pytest.raises(TypeError, match="async generator"):
        b(agen)
    for bad in (None, 3, "f"):
        with pytest.raises(TypeError, match="callables"):
            b(bad)
    assert b.try_acquire()  # nothing taken


def test_decorated_function_cycle_is_collected():
    b = chanpool.TokenBucket(1e6, 100)

    def make():
        def f():
            return f  # f's closure refers to the wrapper: a cycle through RateLimited

        f = b(f)
        return weakref.ref(f.__wrapped__), f

    ref, f = make()
    assert f() is f
    del f
    gc.collect()
    assert ref() is None


def test_contended_bucket_never_over_grants():
    """Threads race with every kind of take (try, short and long timeouts, several tokens at a
    time) on a bucket that refills: what was granted never exceeds the burst plus what the rate
    earned over the run, and a frozen bucket grants exactly its burst."""
    for rate, burst in ((FROZEN, 25), (2000.0, 10)):
        b = chanpool.TokenBucket(rate, burst)
        lock = threading.Lock()
        granted = [0]
        start = time.monotonic()

        def taker(k: int, b=b, lock=lock, granted=granted) -> None:
            for r in range(300):
                n = 1 + (k + r) % 3
                style = (k * 7 + r) % 4
                if style == 0:
                    ok = b.try_acquire(n)
                elif style == 1:
                    ok = b.acquire(n, timeout=0)
                elif style == 2:
                    ok = b.acquire(n, timeout=0.002)
                else:
                    ok = b.acquire(n, timeout=0.02)
                if ok:
                    with lock:
                        granted[0] += n

        run_threads([functools.partial(taker, k) for k in range(8)])
        elapsed = time.monotonic() - start
        assert b.waiting == 0
        if rate == FROZEN:
            assert granted[0] == burst
        else:
            assert granted[0] <= burst + math.ceil(rate * elapsed), (granted[0], elapsed)
            assert granted[0] > burst  # it did refill and grant while the threads raced


def test_a_timeout_that_is_not_a_number_is_a_type_error_and_a_bool_is_its_int():
    # The shared Timeout argument: a bool is 0 or 1 seconds, as threading takes it.
    b = drained(FROZEN, 1)
    with pytest.raises(TypeError, match="timeout"):
        b.acquire(1, timeout="1")
    assert b.waiting == 0
    assert b.acquire(1, timeout=False) is False
    assert b.waiting == 0


def test_an_int_timeout_too_big_for_a_float_waits_for_good():
    b = chanpool.TokenBucket(1e9, 1)
    assert b.acquire(1, timeout=10**400)
