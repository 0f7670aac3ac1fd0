"""chanpool.Semaphore: threading.Semaphore / BoundedSemaphore compatibility, exact permit
accounting under contention, first-come-first-served waiters, timeouts, GIL release, a
property test against a model and threading itself, Ctrl-C and fork()."""

from __future__ import annotations

import functools
import math
import re
import threading
import time

import chanpool
import pytest
from helpers import WATCHDOG, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ratelimit import (
    HUGE_TIMEOUTS,
    run_threads,
)

# ------------------------------------------------------------------ threading compatibility


def test_defaults_match_threading():
    s = chanpool.Semaphore()
    assert (s.available, s.bounded, s.waiting) == (1, False, 0)
    assert s.acquire() is True
    assert s.acquire(False) is False
    assert s.acquire(blocking=False) is False
    assert s.acquire(0) is False  # blocking is read by truth value, as in threading
    assert s.acquire(timeout=0) is False
    assert s.acquire(True, -1) is False  # a negative timeout only tries, like threading
    assert s.release() is None
    assert s.available == 1


def test_acquire_with_timeout_gives_up_and_leaves_the_line():
    s = chanpool.Semaphore(0)
    assert s.acquire(timeout=0.05) is False
    assert s.acquire(True, 0.01) is False
    assert s.waiting == 0
    s.release()
    assert s.available == 1  # nothing was set aside for the waiters that gave up


def test_release_n_and_acquire_n():
    s = chanpool.Semaphore(0)
    s.release(3)
    assert s.available == 3
    assert s.acquire(n=2)
    assert not s.acquire(False, n=2)
    assert s.try_acquire(1)
    assert not s.try_acquire(1)
    s.release(n=5)
    assert s.available == 5


@pytest.mark.parametrize("make", [chanpool.Semaphore, threading.Semaphore])
def test_same_errors_as_threading(make):
    with pytest.raises(ValueError, match="initial value must be >= 0"):
        make(-1)
    s = make(1)
    with pytest.raises(ValueError, match="n must be one or more"):
        s.release(0)
    with pytest.raises(ValueError, match="n must be one or more"):
        s.release(-3)
    with pytest.raises(ValueError, match="can't specify timeout for non-blocking acquire"):
        s.acquire(False, 1)
    assert s.acquire(False)  # the refused calls changed nothing


@pytest.mark.parametrize("bounded", ["chanpool", "threading"])
def test_bounded_refuses_over_release_like_bounded_semaphore(bounded):
    s = (
        chanpool.Semaphore(2, bounded=True)
        if bounded == "chanpool"
        else threading.BoundedSemaphore(2)
    )
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        s.release()
    assert s.acquire() and s.acquire()
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        s.release(3)  # refused whole: the count is unchanged
    s.release(2)
    assert s.acquire(False) and s.acquire(False) and not s.acquire(False)


def test_bounded_property_and_impossible_requests():
    s = chanpool.Semaphore(2, bounded=True)
    assert s.bounded and not chanpool.Semaphore(2).bounded
    for call in (lambda: s.acquire(n=3), lambda: s.acquire(False, n=3), lambda: s.try_acquire(3)):
        with pytest.raises(ValueError, match="exceeds the bound"):
            call()
    assert s.available == 2


def test_repr_like_threading():
    """threading's format, so logs and doctests read the same (CPython's lock_tests test_repr)."""
    s = chanpool.Semaphore(3)
    assert re.fullmatch(r"<chanpool\.Semaphore at 0x[0-9a-f]+: value=3>", repr(s)), repr(s)
    b = chanpool.Semaphore(3, bounded=True)
    assert b.acquire()
    assert re.fullmatch(r"<chanpool\.Semaphore at 0x[0-9a-f]+: value=2/3>", repr(b)), repr(b)
    assert f"{id(b):#x}" in repr(b)

    class Pool(chanpool.Semaphore):
        pass

    assert re.match(rf"<{__name__}\.test_repr_like_threading\.<locals>\.Pool at ", repr(Pool(1)))


@pytest.mark.parametrize("value", [1.5, 1.0, "2", None, True, [1]], ids=repr)
def test_non_integer_value_is_a_type_error(value):
    with pytest.raises(TypeError):
        chanpool.Semaphore(value)


class Index:
    """An int-like that is not an int (numpy ints are like this)."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def test_int_likes_are_accepted():
    s = chanpool.Semaphore(Index(3), bounded=True)
    assert s.available == 3
    assert s.acquire(n=Index(2)) and s.try_acquire(Index(1))
    s.release(Index(3))
    assert s.available == 3
    with pytest.raises(TypeError, match="expected an int, got Index"):
        chanpool.Semaphore(Index(1.5))


@pytest.mark.parametrize("impl", ["chanpool", "threading"])
def test_flags_are_read_by_truth_value_like_threading(impl):
    """threading reads ``blocking`` by truth value (``acquire(0)``); chanpool reads both
    ``blocking`` and ``bounded`` that way."""
    s = chanpool.Semaphore(1, bounded=1) if impl == "chanpool" else threading.BoundedSemaphore(1)
    assert s.acquire(blocking=1) is True
    for falsy in (0, [], ""):
        assert s.acquire(falsy) is False
        assert s.acquire(blocking=falsy) is False
    s.release()
    with pytest.raises(ValueError):
        s.release()  # bounded=1 made it bounded
    if impl == "chanpool":
        assert s.bounded
        assert not chanpool.Semaphore(1, bounded=0).bounded
        assert not chanpool.Semaphore(1, bounded=None).bounded
        assert chanpool.Semaphore(1, bounded="yes").bounded


def test_bad_arguments():
    s = chanpool.Semaphore(1)
    with pytest.raises(TypeError):
        chanpool.Semaphore(1, True)  # bounded is keyword-only
    for n in (0, -1):
        with pytest.raises(ValueError, match="n must be >= 1"):
            s.acquire(n=n)
        with pytest.raises(ValueError, match="n must be >= 1"):
            s.try_acquire(n)
    for n in (1.0, "1", None, True):
        with pytest.raises(TypeError):
            s.acquire(n=n)
        with pytest.raises(TypeError):
            s.release(n)
    with pytest.raises(ValueError, match="NaN"):
        s.acquire(timeout=math.nan)
    with pytest.raises(TypeError):
        s.acquire(timeout="1")
    with pytest.raises(ValueError, match="too large"):
        chanpool.Semaphore(2**64)
    with pytest.raises(ValueError, match="too large"):
        s.release(2**64)
    assert s.available == 1  # nothing above changed the count
    s.release(2**64 - 2)
    assert s.available == 2**64 - 1
    with pytest.raises(OverflowError):
        s.release()
    assert s.available == 2**64 - 1


def test_context_manager_like_threading():
    s = chanpool.Semaphore(1)
    with s as got:
        assert got is True
        assert s.available == 0
    assert s.available == 1
    with pytest.raises(KeyError):
        with s:
            raise KeyError("boom")
    assert s.available == 1  # released on the way out of an exception too


def test_subclass():
    class Named(chanpool.Semaphore):
        def __init__(self, value=1, *, bounded=False, name=""):
            self.name = name

        def __new__(cls, value=1, *, bounded=False, name=""):
            return super().__new__(cls, value, bounded=bounded)

    s = Named(2, name="db")
    assert s.name == "db" and s.available == 2 and isinstance(s, chanpool.Semaphore)
    with s:
        assert s.available == 1


# --------------------------------------------------------------------------- contention


@pytest.mark.parametrize("permits", [1, 3])
def test_never_more_holders_than_permits(permits):
    """Threads x iterations, in every acquire style: the permits held at once (counted under a
    lock) never exceed the permits, and every iteration runs exactly once."""
    threads, rounds = 8, 1000
    s = chanpool.Semaphore(permits, bounded=True)
    lock = threading.Lock()
    state = {"inside": 0, "max": 0, "done": 0}

    def hold(n):
        with lock:
            state["inside"] += n
            state["max"] = max(state["max"], state["inside"])
        time.sleep(0)  # let other threads run while the permits are held
        with lock:
            state["inside"] -= n
            state["done"] += 1

    def worker(k):
        for r in range(rounds):
            style = (k + r) % 5
            n = 2 if style == 4 and permits >= 2 else 1
            if style == 0:
                with s:
                    hold(1)
                continue
            if style == 1:
                assert s.acquire(timeout=WATCHDOG)
            elif style == 2:
                while not s.acquire(False):
                    if s.acquire(timeout=0.001):
                        break
            else:
                assert s.acquire(n=n)
            hold(n)
            s.release(n)

    run_threads([functools.partial(worker, k) for k in range(threads)])
    assert state["max"] <= permits, state
    assert state == {"inside": 0, "max": state["max"], "done": threads * rounds}
    assert (s.available, s.waiting) == (permits, 0)


def test_all_permits_can_be_held_at_once():
    permits = 4
    s = chanpool.Semaphore(permits)
    together = threading.Barrier(permits + 1)
    leave = threading.Event()

    def holder():
        with s:
            together.wait(WATCHDOG)
            assert leave.wait(WATCHDOG)

    ts = [threading.Thread(target=holder, daemon=True) for _ in range(permits)]
    for t in ts:
        t.start()
    together.wait(WATCHDOG)  # all four are inside
    assert s.available == 0 and not s.acquire(False)
    leave.set()
    for t in ts:
        t.join(WATCHDOG)
    assert (s.available, s.waiting) == (permits, 0)


def test_waiters_are_served_in_arrival_order():
    """Permits are released one at a time; each goes to the head of the line, even when the
    head wants more than is free (later, smaller requests wait behind it)."""
    s = chanpool.Semaphore(0)
    order = []
    wants = [1, 3, 1, 2, 1]
    threads = []
    for i, n in enumerate(wants):

        def waiter(i=i, n=n):
            assert s.acquire(n=n, timeout=WATCHDOG)
            order.append(i)

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        threads.append(t)
        wait_until(lambda i=i: s.waiting == i + 1, what=f"waiter {i} in line")
    for i, n in enumerate(wants):
        for _ in range(n - 1):
            s.release()
            assert not s.try_acquire()  # the head does not have enough yet; nobody jumps it
            assert order == list(range(i))
        s.release()
        wait_until(lambda i=i: len(order) == i + 1, what=f"waiter {i} served")
        assert order == list(range(i + 1))
    for t in threads:
        t.join(WATCHDOG)
    assert (s.available, s.waiting) == (0, 0)


def test_head_giving_up_lets_the_next_one_in():
    s = chanpool.Semaphore(1)
    assert s.acquire()
    s.release()
    assert s.acquire()
    results = {}
    head = threading.Thread(target=lambda: results.update(head=s.acquire(n=3, timeout=0.3)))
    head.start()
    wait_until(lambda: s.waiting == 1, what="head in line")
    second = threading.Thread(target=lambda: results.update(second=s.acquire(timeout=WATCHDOG)))
    second.start()
    wait_until(lambda: s.waiting == 2, what="second in line")
    s.release()  # one permit: not enough for the head, which keeps it from the second one
    head.join(WATCHDOG)
    second.join(WATCHDOG)
    assert results == {"head": False, "second": True}
    assert (s.available, s.waiting) == (0, 0)


@pytest.mark.parametrize("timeout", HUGE_TIMEOUTS, ids=repr)
def test_huge_timeouts_wait_as_long_as_it_takes(timeout):
    """inf or beyond what the clock can represent means no deadline, never a PanicException."""
    s = chanpool.Semaphore(1)
    assert s.acquire(timeout=timeout)  # free: taken at once
    got = []
    t = threading.Thread(target=lambda: got.append(s.acquire(timeout=timeout)), daemon=True)
    t.start()
    wait_until(lambda: s.waiting == 1, what="waiter in line")
    s.release()
    t.join(WATCHDOG)
    assert got == [True] and (s.available, s.waiting) == (0, 0)
    with pytest.raises(ValueError, match="NaN"):
        s.acquire(timeout=math.nan)
    s.release()
    assert s.acquire(timeout=-math.inf) is True  # negative: only tries, like threading
    assert s.acquire(timeout=-math.inf) is False


def test_timeouts_racing_releases_keep_exact_counts():
    """Threads take 1 or 2 permits with every kind of wait (blocking, short and long timeouts,
    non-blocking, try_acquire) while others release: whatever timed out took nothing, the
    holders never exceed the permits, and every permit is back at the end."""
    permits, threads, rounds = 3, 8, 400
    s = chanpool.Semaphore(permits)
    lock = threading.Lock()
    state = {"inside": 0, "max": 0, "ok": 0, "gave_up": 0}

    def worker(k):
        for r in range(rounds):
            n = 1 + (k + r) % 2
            style = (k * 3 + r) % 5
            if style == 0:
                ok = s.acquire(n=n)
            elif style == 1:
                ok = s.acquire(timeout=0.0005, n=n)
            elif style == 2:
                ok = s.acquire(timeout=0.01, n=n)
            elif style == 3:
                ok = s.acquire(False, n=n)
            else:
                ok = s.try_acquire(n)
            with lock:
                if not ok:
                    state["gave_up"] += 1
                    continue
                state["inside"] += n
                state["max"] = max(state["max"], state["inside"])
            time.sleep(0)
            with lock:
                state["inside"] -= n
                state["ok"] += 1
            s.release(n)

    run_threads([functools.partial(worker, k) for k in range(threads)])
    assert state["ok"] + state["gave_up"] == threads * rounds
    assert state["inside"] == 0 and state["max"] <= permits
    assert state["ok"] > 0 and state["gave_up"] > 0  # both outcomes were exercised
    assert (s.available, s.waiting) == (permits, 0)


def test_waits_with_the_gil_released():
    s = chanpool.Semaphore(0)
    got = []
    t = threading.Thread(target=lambda: got.append(s.acquire()), daemon=True)
    t.start()
    # Holding the GIL while blocked would freeze this thread: waiting == 1 would never be seen.
    wait_until(lambda: s.waiting == 1, what="waiter in line")
    s.release()
    t.join(WATCHDOG)
    assert got == [True] and s.available == 0


# ------------------------------------------------------------------------------- property

OPS = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "try", "timeout0", "release", "with"]), st.integers(1, 4)
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(value=st.integers(0, 5), bounded=st.booleans(), ops=OPS)
def test_single_thread_sequences_match_a_model(value, bounded, ops):
    s = chanpool.Semaphore(value, bounded=bounded)
    ref = threading.BoundedSemaphore(value) if bounded else threading.Semaphore(value)
    count = value
    for op, n in ops:
        if op == "with":
            n = 1
        if op == "release":
            if bounded and count + n > value:
                with pytest.raises(ValueError):
                    s.release(n)
                with pytest.raises(ValueError):
                    ref.release(n)
            else:
                s.release(n)
                ref.release(n)
                count += n
        elif bounded and n > value:
            # Could never succeed: refused up front (threading would just fail or block).
            with pytest.raises(ValueError, match="exceeds the bound"):
                if op == "with":
                    with s:
                        pass
                else:
                    s.try_acquire(n)
        elif op == "with":
            if count >= 1:
                with s as got:
                    assert got is True
                    assert s.available == count - 1
            else:
                assert not s.acquire(False)
        else:
            if op == "acquire":
                ok = s.acquire(False, n=n)
            elif op == "try":
                ok = s.try_acquire(n)
            else:
                ok = s.acquire(timeout=0, n=n)
            assert ok == (count >= n)
            if n == 1:
                assert ref.acquire(False) == ok
            elif ok:
                for _ in range(n):
                    assert ref.acquire(False)
            if ok:
                count -= n
        assert s.available == count
        assert s.waiting == 0
    # threading agrees on the final count too.
    for _ in range(count):
        assert ref.acquire(False)
    assert not ref.acquire(False)
