"""chanpool.Channel, select and fan_in: semantics, queue.Queue compatibility, concurrency (exact
multisets, per-producer order), timeouts and garbage collection. Process-level behaviour (Ctrl-C,
fork, interpreter exit) is in test_channel_process.py.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
import time
import weakref
from collections import Counter

import chanpool
import pytest
from chanpool import Channel, Closed, ShutDown, fan_in, select
from helpers import WATCHDOG, native_thread_names, wait_until, watchdog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CAPACITIES = [0, 1, 7, None]
QUEUE_SHUTDOWN = getattr(queue, "ShutDown", ShutDown)


def start(fn, *args) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def blocked_at_call(t: threading.Thread, fn) -> bool:
    """The thread is running `fn` at the line after its `def` (the blocking call it makes there
    is running or about to run: either way the test's outcome must hold). Native calls add no
    frame; queue.Queue's Python frames sit above fn's."""
    code = fn.__code__
    frame = sys._current_frames().get(t.ident)
    while frame is not None:
        if frame.f_code is code:
            return frame.f_lineno == code.co_firstlineno + 1
        frame = frame.f_back
    return False


def fan_in_threads() -> int:
    return native_thread_names().count("chanpool-fan_in")


# ----------------------------------------------------------------------------- construction


def test_capacity_kinds():
    assert Channel().capacity == 0
    assert Channel(0).capacity == 0
    assert Channel(5).capacity == 5
    assert Channel(None).capacity is None
    assert Channel(capacity=None).capacity is None
    assert (Channel(5).maxsize, Channel(None).maxsize) == (5, 0)
    assert "capacity=None" in repr(Channel(None))
    assert Channel[int] is not None and bool(Channel(3))


def test_unbounded_never_blocks_a_sender():
    def fill():
        c = Channel(None)
        for i in range(20000):
            c.send(i)
        return c

    c = watchdog(fill)
    assert len(c) == 20000 and not c.full()
    assert [c.recv() for _ in range(20000)] == list(range(20000))


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: Channel(-1), ValueError),
        (lambda: Channel("3"), TypeError),
        (lambda: Channel(True), TypeError),
        (lambda: Channel(2.5), TypeError),
        (lambda: Channel(1).send(1, timeout=float("nan")), ValueError),
        (lambda: Channel(1).send(1, timeout="soon"), TypeError),
        (lambda: Channel(1).recv(timeout=float("nan")), ValueError),
        (lambda: Channel(1).get(timeout=-1), ValueError),
        (lambda: Channel(1).put(1, timeout=-1), ValueError),
        (lambda: Channel(1).close(3), TypeError),
        (lambda: Channel(1).close("boom"), TypeError),
        (lambda: select(5), TypeError),
        (lambda: select([1]), TypeError),
        (lambda: select([(Channel(1),)]), TypeError),
        (lambda: select([(1, 2)]), TypeError),
        (lambda: select([]), ValueError),
        (lambda: select([Channel(1)], timeout=1, default=True), ValueError),
        (lambda: select([Channel(1)], timeout=float("nan")), ValueError),
        (lambda: fan_in(1), TypeError),
        (lambda: fan_in(Channel(1), capacity=-1), ValueError),
        (lambda: fan_in(Channel(1), capacity="x"), TypeError),
    ],
)
def test_bad_input_raises_clear_errors(call, exc):
    with pytest.raises(exc):
        call()


def test_bad_input_loses_nothing():
    c = Channel(2)
    c.send("kept")
    with pytest.raises(TypeError):
        select([c, 42])  # every case is checked before any is tried
    with pytest.raises(ValueError):
        c.send("not sent", timeout=float("nan"))
    with pytest.raises(TypeError):
        fan_in(c, "not a channel")  # no forwarder may start reading c
    assert len(c) == 1 and c.recv() == "kept"
    assert c.try_recv() == (None, False)


# ----------------------------------------------------------------------------- basics


@pytest.mark.parametrize("cap", [1, 5, None])
def test_buffered_fifo_len_and_full(cap):
    c = Channel(cap)
    n = cap or 50
    for i in range(n):
        assert c.try_send(i) is True
        assert len(c) == i + 1
    if cap is not None:
        assert c.full() and c.try_send("x") is False
    assert [c.recv() for _ in range(n)] == list(range(n))
    assert len(c) == 0 and c.empty()
    assert c.try_recv() == (None, False)


def test_try_recv_returns_falsy_values_with_ok():
    c = Channel(3)
    for v in (None, 0, ""):
        c.send(v)
    assert [c.try_recv() for _ in range(3)] == [(None, True), (0, True), ("", True)]
    assert c.try_recv() == (None, False)


def test_close_semantics():
    c = Channel(3)
    c.send(1)
    c.send(2)
    assert not c.closed
    assert c.close() is True
    assert c.close() is False and c.closed
    with pytest.raises(Closed):
        c.send(3)
    with pytest.raises(Closed):
        c.try_send(3)
    assert issubclass(Closed, ShutDown) and issubclass(Closed, QUEUE_SHUTDOWN)
    assert c.recv() == 1
    assert list(c) == [2]
    assert list(c) == []
    for op in (c.recv, c.try_recv, c.get, c.get_nowait):
        with pytest.raises(Closed):
            op()


@pytest.mark.parametrize("error", [ValueError("boom"), KeyError])
def test_close_error_is_raised_after_the_drain(error):
    c = Channel(None)
    for i in range(3):
        c.send(i)
    c.close(error)
    c.close(RuntimeError("second close is ignored"))
    it = iter(c)
    assert [next(it), c.recv(), c.get()] == [0, 1, 2]
    expected = error if isinstance(error, type) else type(error)
    for op in (c.recv, c.try_recv, c.get, lambda: next(it)):
        with pytest.raises(expected):
            op()
    with pytest.raises(expected):
        list(c)
    with pytest.raises(Closed):
        c.send(9)  # senders still see Closed


def test_iteration_ends_on_close_from_another_thread():
    c = Channel(4)
    got = []
    t = start(lambda: got.extend(c))
    for i in range(100):
        c.send(i)
    c.close()
    t.join(WATCHDOG)
    assert not t.is_alive() and got == list(range(100))


@pytest.mark.parametrize("cap", CAPACITIES)
def test_close_wakes_blocked_receivers(cap):
    c = Channel(cap)
    errors = []

    def receive():
        return c.recv()

    def run():
        try:
            receive()
        except Closed:
            errors.append("closed")

    threads = [start(run) for _ in range(3)]
    wait_until(lambda: all(blocked_at_call(t, receive) for t in threads))
    c.close()
    for t in threads:
        t.join(WATCHDOG)
    assert errors == ["closed"] * 3


@pytest.mark.parametrize("cap", [0, 1])
def test_close_wakes_blocked_senders_and_keeps_nothing(cap):
    c = Channel(cap)
    if cap:
        c.send("buffered")
    outcome = []

    def send():
        c.send("blocked")

    def run():
        try:
            send()
            outcome.append("sent")
        except Closed:
            outcome.append("closed")

    t = start(run)
    wait_until(lambda: blocked_at_call(t, send))
    c.close()
    t.join(WATCHDOG)
    assert outcome == ["closed"]
    assert list(c) == (["buffered"] if cap else [])


# ----------------------------------------------------------------------------- unbuffered


def test_unbuffered_send_waits_for_a_receiver():
    for i in range(20):
        c = Channel(0)
        done = threading.Event()

        def send(c=c, i=i, done=done):
            c.send(i)
            done.set()

        t = start(send)
        wait_until(lambda t=t, send=send: blocked_at_call(t, send))
        assert not done.is_set()
        assert len(c) == 0  # a blocked sender's value is not "buffered"
        assert c.try_send("other") is False  # nobody is receiving
        assert c.recv() == i
        assert done.wait(WATCHDOG)
        t.join(WATCHDOG)
        assert c.try_recv() == (None, False)


def test_unbuffered_try_send_succeeds_only_with_a_blocked_receiver():
    c = Channel(0)
    assert c.try_send(1) is False
    got = []
    t = start(lambda: got.append(c.recv()))
    wait_until(lambda: c.try_send("hello"))
    t.join(WATCHDOG)
    assert got == ["hello"]
    assert c.try_send(2) is False


def test_unbuffered_timed_out_send_is_withdrawn():
    c = Channel(0)
    with pytest.raises(TimeoutError):
        c.send("late", timeout=0.05)
    assert c.try_recv() == (None, False)
    got = []
    t = start(lambda: got.append(c.recv()))
    c.send("on time")
    t.join(WATCHDOG)
    assert got == ["on time"]


def test_unbuffered_ping_pong_is_in_lockstep():
    ping, pong = Channel(0), Channel(0)

    def player():
        for v in ping:
            pong.send(v + 1)

    t = start(player)
    v = 0
    for _ in range(500):
        ping.send(v)
        v = pong.recv()
    ping.close()
    t.join(WATCHDOG)
    assert v == 500


# ----------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("cap", CAPACITIES)
def test_recv_timeout(cap):
    c = Channel(cap)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.recv(timeout=0.05)
    took = time.monotonic() - t0
    assert 0.05 <= took < 10
    with pytest.raises(TimeoutError):
        c.recv(timeout=0)
    with pytest.raises(queue.Empty):
        c.get(timeout=0.01)


@pytest.mark.parametrize("cap", [0, 2])
def test_send_timeout_keeps_nothing(cap):
    c = Channel(cap)
    for i in range(cap):
        c.send(i)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.send("x", timeout=0.05)
    assert 0.05 <= time.monotonic() - t0 < 10
    with pytest.raises(queue.Full):
        c.put("y", timeout=0.01)
    with pytest.raises(queue.Full):
        c.put_nowait("z")
    assert len(c) == cap
    c.close()
    assert list(c) == list(range(cap))


def test_recv_with_timeout_gets_a_value_sent_meanwhile():
    for _ in range(20):
        c = Channel(1)
        got: list = []
        t = start(lambda c=c, got=got: got.append(c.recv(timeout=WATCHDOG)))
        c.send("v")
        t.join(WATCHDOG)
        assert got == ["v"]


# ----------------------------------------------------------------------------- queue.Queue


def make_queue(kind, maxsize=0):
    if kind == "Queue":
        return queue.Queue(maxsize)
    return Channel(maxsize or None)


KINDS = ["Queue", "Channel"]


@pytest.mark.parametrize("kind", KINDS)
def test_queue_basic(kind):
    # After CPython's test_queue.BaseQueueTestMixin.simple_queue_test.
    q = make_queue(kind, 3)
    assert q.empty() and not q.full() and q.qsize() == 0 and q.maxsize == 3
    for v in (111, 333, 222):
        q.put(v)
    assert q.full() and not q.empty() and q.qsize() == 3
    with pytest.raises(queue.Full):
        q.put_nowait(444)
    with pytest.raises(queue.Full):
        q.put(444, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put(444, block=False)
    assert [q.get(), q.get_nowait(), q.get(block=False)] == [111, 333, 222]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get(False)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    q.put(5, block=False)
    assert q.get(True, 0.01) == 5


@pytest.mark.parametrize("kind", KINDS)
def test_queue_blocking_put_and_get_in_threads(kind):
    q = make_queue(kind, 1)
    out = []

    def consumer():
        for _ in range(200):
            out.append(q.get())
            q.task_done()

    t = start(consumer)
    for i in range(200):
        q.put(i)
    q.join()
    t.join(WATCHDOG)
    assert out == list(range(200))


@pytest.mark.parametrize("kind", KINDS)
def test_queue_task_done_and_join(kind):
    # After CPython's test_queue_task_done / test_queue_join.
    q = make_queue(kind)
    with pytest.raises(ValueError):
        q.task_done()
    total = []
    lock = threading.Lock()

    def worker():
        while True:
            x = q.get()
            if x < 0:
                q.task_done()
                return
            with lock:
                total.append(x)
            q.task_done()

    threads = [start(worker) for _ in range(2)]
    for _round in range(2):
        for i in range(100):
            q.put(i)
        watchdog(q.join)
        assert sum(total) == sum(range(100)) * (_round + 1)
    for _ in threads:
        q.put(-1)
    watchdog(q.join)
    for t in threads:
        t.join(WATCHDOG)
    with pytest.raises(ValueError):
        q.task_done()


def _shutdown_kinds():
    return ["Channel", "Queue"] if sys.version_info >= (3, 13) else ["Channel"]


@pytest.mark.parametrize("kind", _shutdown_kinds())
def test_queue_shutdown(kind):
    # After CPython 3.13's test_shutdown_* tests.
    q = make_queue(kind, 3)
    q.put("a")
    q.put("b")
    assert not q.is_shutdown
    q.shutdown()
    assert q.is_shutdown
    with pytest.raises(QUEUE_SHUTDOWN):
        q.put("c")
    with pytest.raises(QUEUE_SHUTDOWN):
        q.put_nowait("c")
    assert q.get() == "a"
    assert q.get_nowait() == "b"
    with pytest.raises(QUEUE_SHUTDOWN):
        q.get()
    with pytest.raises(QUEUE_SHUTDOWN):
        q.get(timeout=0.01)
    q.task_done()
    q.task_done()
    watchdog(q.join)


@pytest.mark.parametrize("kind", _shutdown_kinds())
def test_queue_shutdown_immediate(kind):
    q = make_queue(kind, 3)
    for v in "abc":
        q.put(v)
    q.shutdown(immediate=True)
    assert q.qsize() == 0 and q.empty()
    with pytest.raises(QUEUE_SHUTDOWN):
        q.get()
    with pytest.raises(QUEUE_SHUTDOWN):
        q.put("d")
    watchdog(q.join)  # the discarded items count as done
    with pytest.raises(ValueError):
        q.task_done()


@pytest.mark.parametrize("kind", _shutdown_kinds())
@pytest.mark.parametrize("immediate", [False, True])
def test_queue_shutdown_wakes_blocked_getters_putters_and_joiners(kind, immediate):
    full = make_queue(kind, 1)
    full.put("x")
    empty = make_queue(kind, 1)
    results = []

    def put():
        full.put("y")

    def get():
        return empty.get()

    def run(fn, name):
        try:
            fn()
            results.append(name)
        except QUEUE_SHUTDOWN:
            results.append(name + "-shutdown")

    def join():
        full.join()
        results.append("joined")

    threads = [start(run, put, "put"), start(run, get, "get")]
    joiner = start(join)
    wait_until(lambda: blocked_at_call(threads[0], put) and blocked_at_call(threads[1], get))
    full.shutdown(immediate=immediate)
    empty.shutdown(immediate=immediate)
    for t in threads:
        t.join(WATCHDOG)
    assert sorted(r for r in results if r != "joined") == ["get-shutdown", "put-shutdown"]
    if immediate:
        joiner.join(WATCHDOG)
        assert "joined" in results
    else:
        assert full.get() == "x"
        full.task_done()
        joiner.join(WATCHDOG)
        assert results[-1] == "joined"


# ----------------------------------------------------------------------------- select


def test_select_recv_send_default_and_closed_cases():
    a, b = Channel(1), Channel(1)
    assert select([a, b], default=True) == (None, None, False)
    assert select([], default=True) == (None, None, False)
    b.send("B")
    assert select([a, b]) == (1, "B", True)
    assert select([a, (b, "sent")]) == (1, None, True)
    assert b.recv() == "sent"
    assert select((c for c in [a, b]), default=True) == (None, None, False)
    a.close()
    assert select([a, b]) == (0, None, False)
    with pytest.raises(Closed):
        select([(a, 1)])
    assert b.try_send("still works") is True


def test_select_timeout_consumes_and_delivers_nothing():
    a, full = Channel(1), Channel(1)
    full.send("first")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        select([a, (full, "second")], timeout=0.05)
    assert 0.05 <= time.monotonic() - t0 < 10
    assert len(a) == 0 and list_now(full) == ["first"]


def list_now(c):
    out = []
    while True:
        v, ok = c.try_recv()
        if not ok:
            return out
        out.append(v)


def test_select_is_fair_between_ready_receive_cases():
    chans = [Channel(None) for _ in range(3)]
    for c in chans:
        for i in range(3000):
            c.send(i)
    hits = Counter(select(chans)[0] for _ in range(3000))
    assert set(hits) == {0, 1, 2}
    assert min(hits.values()) > 700, hits  # 1000 expected each


def test_select_is_fair_between_ready_send_cases():
    a, b = Channel(None), Channel(None)
    hits = Counter(select([(a, i), (b, i)])[0] for i in range(2000))
    assert min(hits.values()) > 700, hits
    assert len(a) + len(b) == 2000


def test_blocked_select_wakes_for_a_value_from_another_thread():
    for i in range(30):
        a, b = Channel(0), Channel(0)
        t = start(b.send, i)
        assert watchdog(lambda a=a, b=b: select([a, b])) == (1, i, True)
        t.join(WATCHDOG)


def test_blocked_select_send_case_proceeds_when_a_receiver_arrives():
    for i in range(30):
        a = Channel(0)
        got: list = []
        t = start(lambda a=a, got=got: got.append(a.recv()))
        assert watchdog(lambda a=a, i=i: select([(a, i)])) == (0, None, True)
        t.join(WATCHDOG)
        assert got == [i]


def test_blocked_select_wakes_on_close():
    a = Channel(0)
    result = []

    def sel():
        result.append(select([a]))

    t = start(sel)
    wait_until(lambda: blocked_at_call(t, sel))
    a.close()
    t.join(WATCHDOG)
    assert result == [(0, None, False)]


def test_select_as_a_multiplexer_moves_every_value_once():
    ins = [Channel(2) for _ in range(3)]

    def produce(k, c):
        for i in range(300):
            c.send((k, i))
        c.close()

    producers = [start(produce, k, c) for k, c in enumerate(ins)]
    got = []
    open_ = list(ins)
    while open_:
        i, v, ok = watchdog(lambda: select(open_))
        if ok:
            got.append(v)
        else:
            open_.pop(i)
    for t in producers:
        t.join(WATCHDOG)
    for k in range(3):
        assert [i for kk, i in got if kk == k] == list(range(300))


# ----------------------------------------------------------------------------- fan_in


def test_fan_in_merges_everything_in_per_input_order():
    ins = [Channel(4) for _ in range(6)]
    out = fan_in(*ins)

    def produce(k, c):
        for i in range(400):
            c.send((k, i))
        c.close()

    producers = [start(produce, k, c) for k, c in enumerate(ins)]
    got = watchdog(lambda: list(out))
    for t in producers:
        t.join(WATCHDOG)
    assert Counter(got) == Counter((k, i) for k in range(6) for i in range(400))
    for k in range(6):
        assert [i for kk, i in got if kk == k] == list(range(400))
    assert out.closed


@pytest.mark.parametrize("cap", [0, 1, None])
def test_fan_in_capacity(cap):
    a = Channel(None)
    out = fan_in(a, capacity=cap)
    assert out.capacity == cap
    for i in range(50):
        a.send(i)
    a.close()
    assert watchdog(lambda: list(out)) == list(range(50))


def test_fan_in_of_nothing_is_closed():
    out = fan_in()
    assert out.closed and list(out) == []


def test_fan_in_propagates_the_close_error_after_the_values():
    class Boom(Exception):
        pass

    a, b = Channel(None), Channel(None)
    out = fan_in(a, b)
    a.send(1)
    b.send(2)
    a.close(Boom("from a"))
    b.close()
    got = []

    def drain():
        for v in out:
            got.append(v)

    with pytest.raises(Boom, match="from a"):
        watchdog(drain)
    assert sorted(got) == [1, 2]


def test_fan_in_stops_when_its_output_is_closed_or_dropped():
    before = fan_in_threads()
    a = Channel(None)
    out = fan_in(a)
    a.send(1)
    assert out.recv(timeout=WATCHDOG) == 1
    wait_until(lambda: fan_in_threads() == before + 1, what="forwarder started")
    out.close()
    wait_until(lambda: fan_in_threads() == before, what="forwarder stopped after close")
    a.send(2)
    assert a.recv() == 2  # nothing more was taken from the input

    out = fan_in(a)
    wait_until(lambda: fan_in_threads() == before + 1)
    del out
    gc.collect()
    wait_until(lambda: fan_in_threads() == before, what="forwarder stopped after drop")
    assert not a.closed


# ----------------------------------------------------------------------------- many threads


def run_many(cap, producers, consumers, per, how="recv"):
    """Producers send (p, i) in order; consumers receive until Closed. Returns what each
    consumer got."""
    c = Channel(cap)
    got = [[] for _ in range(consumers)]

    def produce(p):
        for i in range(per):
            c.send((p, i))

    def consume(k):
        mine = got[k]
        if how == "iter":
            mine.extend(c)
        elif how == "get":
            try:
                while True:
                    mine.append(c.get())
            except ShutDown:
                pass
        elif how == "select":
            while True:
                _, v, ok = select([c])
                if not ok:
                    return
                mine.append(v)
        else:
            try:
                while True:
                    mine.append(c.recv())
            except Closed:
                pass

    def scenario():
        cs = [start(consume, k) for k in range(consumers)]
        ps = [start(produce, p) for p in range(producers)]
        for t in ps:
            t.join()
        c.close()
        for t in cs:
            t.join()

    watchdog(scenario)
    return got


def check_exact(got, producers, per):
    flat = [v for mine in got for v in mine]
    assert Counter(flat) == Counter((p, i) for p in range(producers) for i in range(per))
    for mine in got:  # FIFO per producer, as each consumer sees it
        for p in range(producers):
            seq = [i for pp, i in mine if pp == p]
            assert seq == sorted(seq)


@pytest.mark.parametrize("cap", [*CAPACITIES, 64])
@pytest.mark.parametrize("how", ["recv", "iter", "get", "select"])
def test_many_producers_and_consumers_exact(cap, how):
    for _ in range(3):
        check_exact(run_many(cap, 4, 4, 400, how), 4, 400)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    cap=st.sampled_from([0, 1, 2, 3, 16, None]),
    producers=st.integers(1, 5),
    consumers=st.integers(1, 5),
    per=st.integers(0, 300),
    how=st.sampled_from(["recv", "iter", "get", "select"]),
)
def test_property_no_item_lost_or_duplicated(cap, producers, consumers, per, how):
    check_exact(run_many(cap, producers, consumers, per, how), producers, per)


@pytest.mark.parametrize("cap", [0, 1, 8])
def test_sends_racing_a_close_are_either_received_or_refused(cap):
    for _ in range(10):
        c = Channel(cap)
        sent, got = [], []
        lock = threading.Lock()

        def produce(p, c=c, sent=sent, lock=lock):
            for i in range(10**6):
                try:
                    c.send((p, i))
                except Closed:
                    return
                with lock:
                    sent.append((p, i))

        def consume(c=c, got=got):
            got.extend(c)

        cs = [start(consume) for _ in range(2)]
        ps = [start(produce, p) for p in range(3)]
        wait_until(lambda sent=sent: len(sent) >= 300)
        c.close()
        for t in ps + cs:
            t.join(WATCHDOG)
        assert Counter(got) == Counter(sent)


@pytest.mark.parametrize("cap", [0, 2])
def test_timed_out_sends_and_receives_lose_and_duplicate_nothing(cap):
    """Senders and receivers give up constantly (tiny timeouts): every send that succeeded is
    received exactly once and no timed-out send's value is ever received."""
    c = Channel(cap)
    sent, got = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def produce(p):
        for i in range(400):
            while True:
                try:
                    c.send((p, i), timeout=0.0005)
                    break
                except TimeoutError:
                    with lock:
                        sent.append(("timeout", p, i))
            with lock:
                sent.append((p, i))

    def consume():
        while not stop.is_set():
            try:
                v = c.recv(timeout=0.0005)
            except TimeoutError:
                continue
            except Closed:
                return
            with lock:
                got.append(v)

    def scenario():
        cs = [start(consume) for _ in range(3)]
        ps = [start(produce, p) for p in range(3)]
        for t in ps:
            t.join()
        c.close()
        for t in cs:
            t.join()

    watchdog(scenario)
    ok = [s for s in sent if s[0] != "timeout"]
    assert Counter(got) == Counter(ok)
    assert len(ok) == 1200


# ----------------------------------------------------------------------------- GC


class Box:
    pass


@pytest.mark.parametrize("cap", [1, None])
def test_values_are_freed_with_the_channel(cap):
    c = Channel(cap)
    b = Box()
    ref = weakref.ref(b)
    c.send(b)
    del b
    assert ref() is not None
    del c
    assert ref() is None


def test_reference_cycle_through_a_buffered_value_is_collected():
    gc.collect()
    c = Channel(None)
    b = Box()
    b.chan = c
    c.send(b)
    c.send(c)
    ref = weakref.ref(b)
    del b, c
    gc.collect()
    assert ref() is None


def test_reference_cycle_through_the_close_error_is_collected():
    class Err(Exception):
        pass

    c = Channel(1)
    e = Err()
    e.chan = c
    c.close(e)
    ref = weakref.ref(e)
    del c, e
    gc.collect()
    assert ref() is None


def test_gc_while_other_threads_use_channels():
    c = Channel(8)
    n = 3000

    def produce():
        for _ in range(n):
            c.send(Box())
        c.close()

    got = []
    threads = [start(produce), start(lambda: got.extend(c))]
    for _ in range(50):
        gc.collect()
    for t in threads:
        t.join(WATCHDOG)
    assert len(got) == n


def test_module_exports():
    assert chanpool.Channel is Channel and chanpool.select is select and chanpool.fan_in is fan_in


# ------------------------------------------------------- the shared argument types (issue 9)


@pytest.mark.parametrize(
    "call",
    [
        lambda: Channel(1).send(1, timeout="1"),
        lambda: Channel(1).recv(timeout=[1.0]),
        lambda: Channel(1).put(1, timeout="1"),
        lambda: Channel(1).get(True, "0"),
        lambda: select([Channel(1)], timeout="1"),
    ],
)
def test_a_timeout_that_is_not_a_number_is_a_type_error_naming_the_parameter(call):
    with pytest.raises(TypeError, match="timeout"):
        call()


def test_a_bool_timeout_is_its_int_as_in_queue_queue():
    # queue.Queue, threading and ThreadPoolExecutor take a bool timeout as 0 or 1 seconds.
    c = Channel(1)
    assert c.send(1, timeout=True) is None
    with pytest.raises(TimeoutError):
        c.send(2, timeout=False)  # full: False is 0, "now"
    assert c.recv(timeout=False) == 1
    with pytest.raises(queue.Empty):
        c.get(True, False)
    with pytest.raises(TimeoutError):
        select([c], timeout=False)


@pytest.mark.parametrize(
    "call",
    [lambda: Channel("3"), lambda: Channel(2.5), lambda: fan_in(Channel(1), capacity="x")],
)
def test_a_bad_capacity_type_error_names_the_parameter(call):
    with pytest.raises(TypeError, match="capacity"):
        call()


def test_capacity_takes_what_has_index_and_refuses_out_of_range_ints():
    class Index:
        def __index__(self) -> int:
            return 3

    c = Channel(Index())
    assert c.capacity == 3
    for bad in (-1, 2**63, 2**200):
        with pytest.raises(ValueError, match="capacity"):
            Channel(bad)


def test_an_int_timeout_too_big_for_a_float_waits_for_good():
    c = Channel(0)
    got = []
    t = start(lambda: got.append(c.recv(timeout=10**400)))
    c.send("there", timeout=10**400)
    t.join(WATCHDOG)
    assert got == ["there"]
    q = Channel(1)
    q.put(1, True, 10**400)
    assert q.get(True, 10**400) == 1
    assert select([(q, 2)], timeout=10**400) == (0, None, True)


def test_the_queue_api_ignores_a_nan_timeout_when_not_blocking():
    # queue.Queue does not look at the timeout when block is false; neither do put/get.
    q = Channel(1)
    q.put(1, False, float("nan"))
    assert q.get(False, float("nan")) == 1
    with pytest.raises(TypeError, match="timeout"):
        q.put(1, False, "soon")  # the type is still checked, as before
