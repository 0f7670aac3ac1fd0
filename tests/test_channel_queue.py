"""A Channel as a queue.Queue: chanpool.Queue (queue.Queue's constructor: maxsize 0 means
unbounded), truthy ``block``/``immediate``/``default`` flags, timeout checking, an assignable
maxsize and unfinished_tasks; and every kind of timeout on every kind of wait (inf, 1e19,
1e300: no deadline; NaN: ValueError; negative: ValueError for the queue API, at once for Go's)."""

from __future__ import annotations

import queue
import threading
import time

import chanpool
import pytest
from chanpool import Channel, Queue, select
from helpers import WATCHDOG, wait_until


def start(fn, *args) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


# ------------------------------------------------------------------ chanpool.Queue


@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_queue_with_maxsize_zero_or_less_is_unbounded_like_queue_queue(maxsize):
    q = Queue(maxsize)
    ref: queue.Queue[int] = queue.Queue(maxsize)
    for i in range(10000):
        q.put_nowait(i)
        ref.put_nowait(i)
    assert q.capacity is None and not q.full() and q.qsize() == ref.qsize() == 10000
    assert q.maxsize == 0  # queue.Queue keeps a negative maxsize as given; both are unbounded
    assert [q.get_nowait() for _ in range(10000)] == list(range(10000))


def test_queue_default_is_unbounded_and_bounded_maxsize_bounds():
    assert Queue().capacity is None and Queue().maxsize == 0
    q = Queue(maxsize=2)
    assert isinstance(q, Channel) and q.capacity == 2 and q.maxsize == 2
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put(3, block=False)
    assert chanpool.Queue is Queue
    assert Queue[int] is not None


@pytest.mark.parametrize("bad, exc", [("3", TypeError), (2.5, TypeError), (None, TypeError)])
def test_queue_rejects_a_maxsize_that_is_not_an_int(bad, exc):
    with pytest.raises(exc, match="maxsize"):
        Queue(bad)


def test_maxsize_is_assignable_and_takes_effect():
    q = Queue(3)
    for i in range(3):
        q.put(i)
    q.maxsize = 2  # shrinking keeps what is queued and refuses more
    assert q.maxsize == 2 and q.qsize() == 3
    with pytest.raises(queue.Full):
        q.put_nowait(9)
    q.get()
    with pytest.raises(queue.Full):
        q.put_nowait(9)
    q.get()
    q.put_nowait(9)
    q.maxsize = 0  # queue.Queue's unbounded
    for i in range(100):
        q.put_nowait(i)
    assert q.capacity is None and q.qsize() == 102


def test_growing_maxsize_lets_blocked_putters_in():
    q = Queue(1)
    q.put("first")
    done = []
    ts = [start(lambda i=i: done.append(q.put(i, timeout=WATCHDOG))) for i in range(3)]
    wait_until(lambda: all(t.is_alive() for t in ts))
    q.maxsize = 4
    for t in ts:
        t.join(WATCHDOG)
    assert done == [None, None, None] and q.qsize() == 4


def test_maxsize_rejects_bad_values():
    q = Queue(1)
    with pytest.raises(TypeError, match="maxsize"):
        q.maxsize = "2"
    with pytest.raises(TypeError, match="maxsize"):
        q.maxsize = 2.5
    with pytest.raises(AttributeError):
        del q.maxsize
    assert q.maxsize == 1


def test_unfinished_tasks_counts_puts_until_task_done():
    q = Queue()
    assert q.unfinished_tasks == 0
    for i in range(5):
        q.put(i)
    assert q.unfinished_tasks == 5
    q.get()
    assert q.unfinished_tasks == 5
    q.task_done()
    assert q.unfinished_tasks == 4
    q.shutdown(immediate=True)
    assert q.unfinished_tasks == 0


# ------------------------------------------------------------------ truthy flags


@pytest.mark.parametrize("flag", [0, 0.0, "", [], None, False])
def test_falsy_block_means_do_not_block(flag):
    q = Queue(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, flag)
    with pytest.raises(queue.Full):
        q.put(2, block=flag)
    assert q.get(flag) == 1
    with pytest.raises(queue.Empty):
        q.get(block=flag)


@pytest.mark.parametrize("flag", [1, 2, "yes", [0], True])
def test_truthy_block_blocks_with_its_timeout(flag):
    q = Queue(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, flag, 0.01)
    assert q.get(flag, 1) == 1
    with pytest.raises(queue.Empty):
        q.get(block=flag, timeout=0.01)


def test_truthy_immediate_and_default():
    q = Queue()
    q.put(1)
    q.shutdown(immediate=1)
    assert q.qsize() == 0 and q.is_shutdown
    q2 = Queue()
    q2.put(1)
    q2.shutdown(0)
    assert q2.get() == 1
    c = Channel(1)
    assert select([c], default=1) == (None, None, False)
    c.send(5)
    assert select([c], default=0) == (0, 5, True)


def test_falsy_default_waits():
    c = Channel(0)
    with pytest.raises(TimeoutError):
        select([c], default=0, timeout=0.01)


def test_a_flag_whose_truth_fails_raises_that_error():
    class Bad:
        def __bool__(self):
            raise ZeroDivisionError

    q = Queue(1)
    with pytest.raises(ZeroDivisionError):
        q.put(1, Bad())
    assert q.qsize() == 0


# ------------------------------------------------------------------ timeouts


NEGATIVE_MSG = "'timeout' must be a non-negative number"


@pytest.mark.parametrize("timeout", [-1, -0.001, float("-inf")])
def test_queue_api_rejects_a_negative_timeout_like_queue_queue(timeout):
    q = Queue(1)
    with pytest.raises(ValueError, match=NEGATIVE_MSG):
        q.put(1, timeout=timeout)
    with pytest.raises(ValueError, match=NEGATIVE_MSG):
        q.get(True, timeout)
    assert q.qsize() == 0
    ref: queue.Queue[int] = queue.Queue(1)
    with pytest.raises(ValueError, match=NEGATIVE_MSG):
        ref.put(1, timeout=timeout)


def test_queue_api_ignores_the_timeout_when_not_blocking():
    q = Queue(1)
    q.put(1, False, -5)
    assert q.get(False, -5) == 1


@pytest.mark.parametrize("timeout", [-1, -1e300, float("-inf"), 0])
def test_go_api_negative_or_zero_timeout_tries_once(timeout):
    c = Channel(1)
    c.send("ready", timeout=timeout)
    with pytest.raises(TimeoutError):
        c.send("full", timeout=timeout)
    assert c.recv(timeout=timeout) == "ready"
    with pytest.raises(TimeoutError):
        c.recv(timeout=timeout)
    with pytest.raises(TimeoutError):
        select([c], timeout=timeout)
    c.send(1)
    assert select([c], timeout=timeout) == (0, 1, True)


def test_nan_timeout_is_a_value_error_everywhere():
    nan = float("nan")
    c = Channel(1)
    for call in (
        lambda: c.send(1, timeout=nan),
        lambda: c.recv(timeout=nan),
        lambda: select([c], timeout=nan),
        lambda: c.put(1, timeout=nan),
        lambda: c.get(timeout=nan),
    ):
        with pytest.raises(ValueError):
            call()
    assert len(c) == 0


HUGE = [float("inf"), 1e19, 9.3e18, 1.8e19, 1e300, 10**30]


@pytest.mark.parametrize("timeout", HUGE)
def test_huge_timeouts_wait_for_good(timeout):
    # Each wait blocks (no PanicException, no instant timeout) until a peer comes.
    c = Channel(0)
    results = []

    def peer():
        results.append(c.recv(timeout=timeout))
        c.send("back", timeout=timeout)
        results.append(select([c], timeout=timeout))
        results.append(c.get(timeout=timeout))

    t = start(peer)
    c.send("there", timeout=timeout)
    assert c.recv(timeout=timeout) == "back"
    assert select([(c, "sel")], timeout=timeout) == (0, None, True)
    c.put("put", timeout=timeout)
    t.join(WATCHDOG)
    assert results == ["there", (0, "sel", True), "put"]


@pytest.mark.parametrize("timeout", HUGE)
def test_huge_timeouts_on_ready_channels_return_at_once(timeout):
    c = Channel(2)
    c.send(1, timeout=timeout)
    c.put(2, True, timeout)
    assert c.recv(timeout=timeout) == 1
    assert select([c], timeout=timeout) == (0, 2, True)
    c.send(3)
    assert c.get(True, timeout) == 3


def test_a_short_timeout_really_waits():
    c = Channel(0)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.recv(timeout=0.05)
    with pytest.raises(queue.Empty):
        c.get(timeout=0.05)
    assert time.monotonic() - t0 >= 0.1
