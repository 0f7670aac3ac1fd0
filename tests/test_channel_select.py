"""select as Go has it: a blocked select is one waiter that a peer completes (once) on any of its
channels, so selects meet selects on unbuffered channels, non-blocking operations see peers
blocked in select, a select never depends on a polling slice to notice a value, and a select
chooses uniformly among its ready cases."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

import pytest
from chanpool import Channel, select
from helpers import WATCHDOG, wait_until, watchdog


def start(fn, *args) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def blocked_at_call(t: threading.Thread, fn, held: float = 0.01) -> bool:
    """The thread has been inside `fn`'s first-line call (a native wait adds no frame) for
    `held` seconds."""
    code = fn.__code__
    deadline = time.monotonic() + WATCHDOG
    since = None
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(t.ident or 0)
        at = False
        while frame is not None:
            if frame.f_code is code:
                at = frame.f_lineno == code.co_firstlineno + 1
                break
            frame = frame.f_back
        if at:
            since = since or time.monotonic()
            if time.monotonic() - since >= held:
                return True
        else:
            since = None
        time.sleep(0.0005)
    return False


def join(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(WATCHDOG)
        assert not t.is_alive(), "thread did not finish (deadlock?)"


# ------------------------------------------------------------------ selects meet selects


@pytest.mark.parametrize("extra", [False, True])
def test_a_sending_select_meets_a_receiving_select_on_an_unbuffered_channel(extra):
    # Go's select7: neither side is a plain send or recv; with `extra` each select also waits
    # on a channel that never becomes ready.
    for i in range(200):
        c = Channel(0)
        spare = [Channel(0)] if extra else []  # the receiver's; the sender has its own
        got = []

        def receive(c=c, spare=spare, got=got):
            got.append(select([*spare, c], timeout=WATCHDOG))

        t = start(receive)
        other = [(Channel(0), "never")] if extra else []
        assert select([(c, i), *other], timeout=WATCHDOG) == (
            0,
            None,
            True,
        )
        join(t)
        assert got == [(len(spare), i, True)]


def test_try_send_hands_a_value_to_a_select_blocked_on_receive():
    for i in range(20):
        c, other = Channel(0), Channel(0)
        got = []

        def sel(c=c, other=other, got=got):
            got.append(select([other, c]))

        t = start(sel)
        assert blocked_at_call(t, sel)
        assert c.try_send(i) is True
        join(t)
        assert got == [(1, i, True)]
        assert c.try_send("nobody") is False


def test_try_recv_takes_a_value_from_a_select_blocked_on_send():
    for i in range(20):
        c, other = Channel(0), Channel(0)
        got = []

        def sel(c=c, other=other, got=got, i=i):
            got.append(select([(other, "x"), (c, i)]))

        t = start(sel)
        assert blocked_at_call(t, sel)
        assert c.try_recv() == (i, True)
        join(t)
        assert got == [(1, None, True)]
        assert c.try_recv() == (None, False) and other.try_recv() == (None, False)


def test_non_blocking_select_sees_a_peer_blocked_in_select():
    c = Channel(0)
    got = []

    def sel():
        got.append(select([(c, "v")]))

    t = start(sel)
    assert blocked_at_call(t, sel)
    assert select([c], default=True) == (0, "v", True)
    join(t)
    assert got == [(0, None, True)]


def test_selects_on_both_ends_of_many_unbuffered_channels_move_every_value_once():
    # Every sender and receiver is a select over all four channels: only select-select
    # pairing can move anything.
    chans = [Channel(0) for _ in range(4)]
    n, senders, receivers = 300, 3, 3
    got: list = []
    lock = threading.Lock()

    def send(p):
        for i in range(n):
            select([(c, (p, i)) for c in chans], timeout=WATCHDOG)

    def receive():
        while True:
            _, v, ok = select(chans, timeout=WATCHDOG)
            if not ok:
                return
            with lock:
                got.append(v)

    rs = [start(receive) for _ in range(receivers)]
    join(*[start(send, p) for p in range(senders)])
    for c in chans:
        c.close()
    join(*rs)
    assert Counter(got) == Counter((p, i) for p in range(senders) for i in range(n))


def test_a_select_never_pairs_with_itself():
    c = Channel(0)
    with pytest.raises(TimeoutError):
        select([(c, 1), c], timeout=0.05)
    assert c.try_recv() == (None, False)


# ------------------------------------------------------------------ no lost wake-up


def test_select_whose_value_another_receiver_took_still_gets_the_next_one_at_once():
    # The select is woken for value 1, which the main thread takes back first; the select must
    # still be waiting (registered) for value 2, not find it at its next polling slice (20 ms).
    latencies = []
    for _ in range(40):
        a, b = Channel(1), Channel(0)
        returned = []

        def sel(a=a, b=b, returned=returned):
            returned.append((select([a, b], timeout=WATCHDOG), time.perf_counter()))

        t = start(sel)
        assert blocked_at_call(t, sel)
        a.send(1)
        a.try_recv()  # steals 1 if the select has not taken it yet
        # Lets a select that was woken for nothing go back to sleep (the outcome must not
        # depend on it: a registered waiter gets value 2 whenever it is sent).
        time.sleep(0.002)
        t0 = time.perf_counter()
        if a.try_send(2):  # the select got 1 after all: the buffer has room
            pass
        join(t)
        (_, value, _), t1 = returned[0]
        assert value in (1, 2)
        latencies.append(max(0.0, t1 - t0))
    # A wake-up left to the polling slice takes up to 20 ms; a registered waiter is woken at
    # once (well under 1 ms). Allow a few scheduling hiccups.
    assert sum(t > 0.01 for t in latencies) <= 4, sorted(latencies)


def test_close_reaches_a_select_at_once_after_a_stolen_wake_up():
    latencies = []
    for _ in range(40):
        a = Channel(1)
        returned = []

        def sel(a=a, returned=returned):
            returned.append((select([a], timeout=WATCHDOG), time.perf_counter()))

        t = start(sel)
        assert blocked_at_call(t, sel)
        a.send(1)
        a.try_recv()
        time.sleep(0.002)  # as above
        t0 = time.perf_counter()
        a.close()
        join(t)
        t1 = returned[0][1]
        latencies.append(max(0.0, t1 - t0))
    assert sum(t > 0.01 for t in latencies) <= 4, sorted(latencies)


def test_a_select_and_a_receiver_on_one_channel_both_get_a_value():
    # Two values sent while a select and a plain receiver both wait: each gets one.
    for i in range(100):
        a, b = Channel(1), Channel(0)
        got = []

        def sel(a=a, b=b, got=got):
            got.append(select([a, b], timeout=WATCHDOG)[1])

        def rec(a=a, got=got):
            got.append(a.recv(timeout=WATCHDOG))

        ts = [start(sel), start(rec)]
        assert blocked_at_call(ts[0], sel, held=0.0) and blocked_at_call(ts[1], rec, held=0.0)
        a.send(i)
        a.send(-i)
        join(*ts)
        assert sorted(got) == sorted([i, -i])


# ------------------------------------------------------------------ fairness


def test_select_chooses_uniformly_among_ready_cases_behind_empty_ones():
    # Go's TestSelectFairness: two empty cases first, then two always-ready ones.
    trials = 10000
    c1, c2 = Channel(None), Channel(None)
    for _ in range(trials):
        c1.send(1)
        c2.send(2)
    empty = [Channel(0), Channel(0)]
    counts = Counter(select([*empty, c1, c2])[1] for _ in range(trials))
    assert abs(counts[1] - trials / 2) <= 500, counts


@pytest.mark.parametrize("ready", [2, 3, 5])
def test_every_ready_case_is_chosen_equally_often(ready):
    trials = 6000
    chans = [Channel(None) for _ in range(ready)]
    for c in chans:
        for _ in range(trials):
            c.send(None)
    cases = [Channel(0), *chans[:1], Channel(0), *chans[1:]]
    hits = Counter(select(cases)[0] for _ in range(trials))
    expected = trials / ready
    assert len(hits) == ready
    assert all(abs(h - expected) < expected * 0.15 for h in hits.values()), hits


def test_a_blocked_select_with_two_sends_on_one_channel_picks_either():
    # Go's TestPseudoRandomSend, unbuffered: the receiver arrives after the select blocked.
    got = []
    c = Channel(0)
    for _ in range(200):

        def sel():
            select([(c, 1), (c, 0)])

        t = start(sel)
        assert blocked_at_call(t, sel, held=0.0)
        got.append(c.recv())
        join(t)
    assert min(got.count(0), got.count(1)) > 40, Counter(got)


# ------------------------------------------------------------------ one moment in time


def test_non_blocking_select_sees_the_channels_at_one_moment():
    # Go's TestNonblockSelectRace: from the goroutine's start, c1 or c2 is always ready.
    failures = 0
    for _ in range(2000):
        c1, c2 = Channel(1), Channel(1)
        c1.send(1)
        r = []
        t = start(lambda c1=c1, c2=c2, r=r: r.append(select([c1, c2], default=True)))
        c2.send(1)
        c1.try_recv()
        join(t)
        failures += r[0][0] is None
    assert failures == 0


def test_select_on_a_channel_listed_twice():
    c, d = Channel(0), Channel(0)
    got = []

    def sel():
        got.append(select([c, c, d]))

    t = start(sel)
    assert blocked_at_call(t, sel)
    r = start(lambda: got.append(c.recv(timeout=WATCHDOG)))
    wait_until(lambda: len(got) == 0 and r.is_alive())
    d.send(7)
    join(t)
    c.send(8)
    join(r)
    assert got == [(2, 7, True), 8]


def test_select_many_cases_on_many_threads_exact():
    chans = [Channel(k % 3) for k in range(6)]
    n = 2000

    def produce(p):
        for i in range(n):
            select([(c, (p, i)) for c in chans], timeout=WATCHDOG)

    def scenario():
        got = []
        ps = [start(produce, p) for p in range(3)]
        while len(got) < 3 * n:
            _, v, ok = select(chans, timeout=WATCHDOG)
            assert ok
            got.append(v)
        join(*ps)
        return got

    got = watchdog(scenario)
    assert Counter(got) == Counter((p, i) for p in range(3) for i in range(n))
