"""Go's channel tests, ported: ``src/runtime/chan_test.go``, ``test/chan/{select,select3,select6,
select7,nonblock,doubleselect,fifo,sieve1,goroutines}.go`` and ``test/closedchan.go``.

Go is not Python, so the "original" side is ``GoModel`` (go_chan_model.py, next to this file):
a small reference model of the semantics the Go spec and those tests pin down (unbuffered
rendezvous, FIFO buffers, close, select choosing uniformly at random among ready cases,
``default``). Go's panics (send on a closed channel, closing twice) are raised as ``GoPanic``;
Go's zero value is ``None``.

Both sides are driven through the same small vocabulary (``make``, ``send``, ``recv`` for
``<-c``, ``recv2`` for ``v, ok := <-c``, ``select``, ``close``, ``len``, ``cap``); chanpool's side
maps each word to its own API. Goroutines are threads. Go's tests wait with ``time.Sleep`` for
a goroutine to block; here a goroutine counts as blocked once it has been seen inside a channel
operation for a while, and every blocking operation has a generous timeout, so that a deadlock
fails the test instead of hanging the run. Iteration counts are Go's ``testing.Short()`` ones,
or smaller where a goroutine per item would be a thread per item.

Not ported: nil-channel cases (chanpool has no nil channel; where a Go test uses one as "never
ready", a channel nobody uses stands in), and tests of the Go runtime itself (stack shrinking,
TestSelectStackAdjust, TestChanSendInterface; TestShrinkStackDuringBlockedSend is kept with a
garbage collection in place of the stack shrink).
"""

from __future__ import annotations

import collections
import gc
import threading
import time
import types
from typing import Any, Callable

import chanpool
import pytest
from go_chan_model import (
    SHORT,
    WATCHDOG,
    Chanpool,
    Go,
    GoModel,
    GoPanic,
    blocks,
    join_all,
)


@pytest.fixture(params=["original", "chanpool"])
def impl(request: pytest.FixtureRequest) -> GoModel:
    return GoModel() if request.param == "original" else Chanpool()


# ============================================================== src/runtime/chan_test.go

CAPS = range(20)  # TestChan runs chanCap 0..19 in short mode


def test_TestChan_receive_from_empty_chan_blocks(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        got = [False, False]

        def recv1(c: Any = c, got: list[bool] = got) -> None:
            impl.recv(c)
            got[0] = True

        def recv2(c: Any = c, got: list[bool] = got) -> None:
            impl.recv2(c)
            got[1] = True

        gs = [Go(recv1), Go(recv2)]
        assert all(g.blocked() for g in gs)
        assert got == [False, False], f"chan[{cap}]: receive from empty chan"
        # A non-blocking receive does not block (both of Go's forms).
        assert impl.select([c], default=True) == (None, None, False)
        assert impl.select([c], default=True) == (None, None, False)
        impl.send(c, 0)
        impl.send(c, 0)
        join_all(gs)
        assert got == [True, True]


def test_TestChan_send_to_full_chan_blocks(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        for i in range(cap):
            impl.send(c, i)
        sent: list[None] = []
        g = Go(lambda c=c, sent=sent: sent.append(impl.send(c, 0)))
        assert g.blocked()
        assert sent == [], f"chan[{cap}]: send to full chan"
        assert impl.select([(c, 0)], default=True) == (None, None, False)
        impl.recv(c)
        g.join()
        assert sent == [None]


@pytest.mark.difference("recv() on a closed, drained channel raises Closed, not a zero value")
def test_TestChan_receive_zero_from_closed_chan(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        for i in range(cap):
            impl.send(c, i)
        impl.close(c)
        for i in range(cap):
            assert impl.recv(c) == i
        if impl.name == "chanpool":
            with pytest.raises(chanpool.Closed):
                impl.recv(c)
        else:
            assert impl.recv(c) is None
        assert impl.recv2(c) == (None, False)
        assert impl.select([c]) == (0, None, False)


def test_TestChan_close_unblocks_receive(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        done = impl.make(0)

        def receive(c: Any = c, done: Any = done) -> None:
            v, ok = impl.recv2(c)
            impl.send(done, v is None and ok is False)

        g = Go(receive)
        assert g.blocked()
        impl.close(c)
        assert impl.recv(done) is True, f"chan[{cap}]: received non-zero from closed chan"
        g.join()


def test_TestChan_fifo(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        g = Go(lambda c=c: [impl.send(c, i) for i in range(100)])
        for i in range(100):
            assert impl.recv(c) == i, f"chan[{cap}]: received out of order"
        g.join()


def test_TestChan_fifo_recv2(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        g = Go(lambda c=c: [impl.send(c, i) for i in range(100)])
        for i in range(100):
            assert impl.recv2(c) == (i, True), f"chan[{cap}]: received out of order"
        g.join()


def test_TestChan_send_1000_integers_in_4_goroutines(impl: GoModel) -> None:
    P, L = 4, 1000
    for cap in CAPS:
        c = impl.make(cap)
        done = impl.make(0)

        def receiver(c: Any = c, done: Any = done) -> None:
            recv: collections.Counter[int] = collections.Counter()
            for _ in range(L):
                recv[impl.recv(c)] += 1
            impl.send(done, recv)

        gs = [Go(lambda c=c: [impl.send(c, i) for i in range(L)]) for _ in range(P)]
        gs += [Go(receiver) for _ in range(P)]
        total: collections.Counter[int] = collections.Counter()
        for _ in range(P):
            total += impl.recv(done)
        join_all(gs)
        assert len(total) == L, f"chan[{cap}]: received {len(total)} distinct values"
        assert set(total.values()) == {P}, f"chan[{cap}]: some value not received {P} times"


def test_TestChan_len_cap(impl: GoModel) -> None:
    for cap in CAPS:
        c = impl.make(cap)
        assert (impl.len(c), impl.cap(c)) == (0, cap)
        for i in range(cap):
            impl.send(c, i)
        assert (impl.len(c), impl.cap(c)) == (cap, cap)


def test_TestNonblockRecvRace(impl: GoModel) -> None:
    for _ in range(300):
        c = impl.make(1)
        impl.send(c, 1)
        g = Go(lambda c=c: impl.select([c], default=True))
        impl.close(c)
        impl.recv2(c)
        idx, _, _ = g.join()
        assert idx == 0, "chan is not ready"


def test_TestNonblockSelectRace(impl: GoModel) -> None:
    # From the goroutine's start on, c1 or c2 is always ready: its select must never default.
    for _ in range(1000):
        c1, c2 = impl.make(1), impl.make(1)
        impl.send(c1, 1)
        g = Go(lambda c1=c1, c2=c2: impl.select([c1, c2], default=True)[0] is not None)
        impl.send(c2, 1)
        impl.select([c1], default=True)
        assert g.join(), "no chan is ready"


def test_TestNonblockSelectRace2(impl: GoModel) -> None:
    for _ in range(1000):
        c1, c2 = impl.make(1), impl.make(1)
        impl.send(c1, 1)
        g = Go(lambda c1=c1, c2=c2: impl.select([c1, c2], default=True)[0] is not None)
        impl.close(c2)
        impl.select([c1], default=True)
        assert g.join(), "no chan is ready"


def test_TestSelfSelect(impl: GoModel) -> None:
    # Send and receive on the same channel in one select: no crash, no deadlock, and on an
    # unbuffered channel a goroutine never receives its own value.
    for cap in (0, 10):
        c = impl.make(cap)

        def run(p: int, c: Any = c, cap: int = cap) -> None:
            for i in range(1000):
                if p == 0 or i % 2 == 0:
                    idx, v, _ = impl.select([(c, p), c])
                    received = idx == 1
                else:
                    idx, v, _ = impl.select([c, (c, p)])
                    received = idx == 0
                assert not (cap == 0 and received and v == p), "self receive"

        join_all([Go(run, 0), Go(run, 1)])


def test_TestSelectStress(impl: GoModel) -> None:
    c = [impl.make(0), impl.make(0), impl.make(2), impl.make(3)]
    N = 1000
    gs = []
    for k in range(4):
        gs.append(Go(lambda k=k: [impl.send(c[k], 0) for _ in range(N)]))
        gs.append(Go(lambda k=k: [impl.recv(c[k]) for _ in range(N)]))

    def select_sender() -> None:
        n = [0] * 4
        live = [3, 2, 0, 1]
        for _ in range(4 * N):
            idx, _, _ = impl.select([(c[k], 0) for k in live])
            assert idx is not None
            k = live[idx]
            n[k] += 1
            if n[k] == N:
                live.remove(k)

    def select_receiver() -> None:
        n = [0] * 4
        live = [0, 1, 2, 3]
        for _ in range(4 * N):
            idx, _, ok = impl.select([c[k] for k in live])
            assert idx is not None and ok
            k = live[idx]
            n[k] += 1
            if n[k] == N:
                live.remove(k)

    gs += [Go(select_sender), Go(select_receiver)]
    join_all(gs)


def test_TestSelectFairness(impl: GoModel) -> None:
    trials = 10000
    c1, c2 = impl.make(trials + 1), impl.make(trials + 1)
    for _ in range(trials + 1):
        impl.send(c1, 1)
        impl.send(c2, 2)
    c3, c4 = impl.make(0), impl.make(0)
    out, done = impl.make(0), impl.make(0)

    def chooser() -> None:
        while True:
            _, b, _ = impl.select([c3, c4, c1, c2])
            idx, _, _ = impl.select([(out, b), done])
            if idx == 1:
                return

    g = Go(chooser)
    counts = collections.Counter(impl.recv(out) for _ in range(trials))
    assert set(counts) <= {1, 2}
    # 10 sigma around trials/2, as the original.
    mean, stddev = trials * 0.5, (trials * 0.5 * 0.5) ** 0.5
    assert abs(counts[1] - mean) <= 10 * stddev, f"unfair select: {counts[1]}, {counts[2]}"
    impl.close(done)
    g.join()


def test_TestPseudoRandomSend(impl: GoModel) -> None:
    n = 100
    for cap in (0, n):
        c = impl.make(cap)
        got: list[int] = []

        def receiver(c: Any = c, got: list[int] = got) -> None:
            for _ in range(n):
                time.sleep(0)  # runtime.Gosched()
                got.append(impl.recv(c))

        g = Go(receiver)
        for _ in range(n):
            impl.select([(c, 1), (c, 0)])
        g.join()
        n0, n1 = got.count(0), got.count(1)
        assert n0 > n / 10 and n1 > n / 10, f"want pseudorandom, got {n0} zeros, {n1} ones"


def test_TestMultiConsumer(impl: GoModel) -> None:
    nwork, niter = 23, 27183
    pn = [2, 3, 7, 11, 13, 17, 19, 23, 27, 31]
    q, r = impl.make(nwork * 3), impl.make(nwork * 3)

    def work(w: int) -> None:
        for v in impl.range(q):
            if pn[w % len(pn)] == v:
                time.sleep(0)  # mess with the fifo-ish nature of range
            impl.send(r, v)

    workers = [Go(work, w) for w in range(nwork)]
    expect = 0

    def feed() -> None:
        nonlocal expect
        for i in range(niter):
            v = pn[i % len(pn)]
            expect += v
            impl.send(q, v)
        impl.close(q)
        join_all(workers)
        impl.close(r)

    feeder = Go(feed)
    n = s = 0
    for v in impl.range(r):
        n += 1
        s += v
    feeder.join()
    assert (n, s) == (niter, expect)


def test_TestShrinkStackDuringBlockedSend(impl: GoModel) -> None:
    # Python's analogue of shrinking a blocked sender's stack: collect garbage (chanpool's
    # channels take part in GC) while the sender is blocked, after it used deep recursion.
    n = 10
    c, done = impl.make(0), impl.make(0)

    def deep(k: int) -> int:
        return 0 if k == 0 else 1 + deep(k - 1)

    def sender() -> None:
        for i in range(n):
            impl.send(c, i)
            deep(200)
        impl.send(done, None)

    g = Go(sender)
    for i in range(n):
        assert impl.recv(c) == i, "bad channel read"
        assert g.blocked()
        gc.collect()
    impl.recv(done)
    g.join()


def test_TestSelectDuplicateChannel(impl: GoModel) -> None:
    # A select may be queued on one channel several times.
    c, d, e = impl.make(0), impl.make(0), impl.make(0)

    def a() -> None:
        impl.select([c, c, d])
        impl.send(e, 9)

    ga = Go(a)
    assert ga.blocked()  # A is queued on c first
    gb = Go(lambda: impl.recv(c))
    assert gb.blocked()  # then B
    impl.send(d, 7)  # wakes A, which leaves c's queue
    assert impl.recv(e) == 9
    impl.send(c, 8)  # must reach B
    join_all([ga, gb])


def _chan_send_barrier(impl: GoModel, use_select: bool) -> None:
    class MyError(Exception):
        pass

    def do_request() -> Any:
        ch, done = impl.make(0), impl.make(0)
        if use_select:
            g = Go(lambda: impl.select([(ch, MyError()), done]))
        else:
            g = Go(lambda: impl.send(ch, MyError()))
        r = impl.recv(ch)
        time.sleep(0)  # runtime.Gosched()
        g.join()
        return r

    def outer() -> None:
        for _ in range(100):
            assert isinstance(do_request(), MyError)

    join_all([Go(outer) for _ in range(4)])


def test_TestChanSendBarrier(impl: GoModel) -> None:
    _chan_send_barrier(impl, use_select=False)


def test_TestChanSendSelectBarrier(impl: GoModel) -> None:
    _chan_send_barrier(impl, use_select=True)


# ============================================================== test/chan/select.go


def test_select(impl: GoModel) -> None:
    # Every send expression is evaluated once per select, whether its case is chosen or not.
    # Go's nil channel (never ready) is a channel nobody receives from.
    counter = shift = 0

    def get_value() -> int:
        nonlocal counter
        counter += 1
        return 1 << shift

    def send(a: Any, b: Any) -> int:
        nonlocal shift
        nil = impl.make(0)
        i = 0
        while True:
            cases = [(nil if a is None else a, get_value()), (nil if b is None else b, get_value())]
            idx, _, _ = impl.select(cases, default=True)
            if idx is None:
                return i
            i += 1
            if idx == 0:
                a = None
            else:
                b = None
            shift += 1

    a, b = impl.make(1), impl.make(1)
    assert send(a, b) == 2
    assert impl.recv(a) | impl.recv(b) == 3
    assert send(a, None) == 1
    assert counter == 10


# ============================================================== test/chan/select3.go


def closed_chan(impl: GoModel) -> Any:
    c = impl.make(0)
    impl.close(c)
    return c


def test_select3_send_to_async_chan_with_room_never_blocks(impl: GoModel) -> None:
    ch = impl.make(1)
    assert not blocks(lambda t: impl.send(ch, 7, timeout=t))


def test_select3_receive_from_closed_chan_never_blocks(impl: GoModel) -> None:
    closed = closed_chan(impl)
    for _ in range(10):
        assert not blocks(lambda t: impl.select([closed], timeout=t))
        assert impl.recv2(closed, timeout=SHORT) == (None, False)


@pytest.mark.difference("recv() on a closed, drained channel raises Closed, not a zero value")
def test_select3_receive_zero_from_closed_chan(impl: GoModel) -> None:
    closed = closed_chan(impl)
    for _ in range(10):
        if impl.name == "chanpool":
            with pytest.raises(chanpool.Closed):
                impl.recv(closed, timeout=SHORT)
        else:
            assert impl.recv(closed, timeout=SHORT) is None


def test_select3_send_to_closed_chan_panics(impl: GoModel) -> None:
    closed = closed_chan(impl)
    with pytest.raises(impl.Panic):
        impl.send(closed, 7)


def test_select3_receive_from_non_ready_chan_blocks(impl: GoModel) -> None:
    ch = impl.make(0)
    assert blocks(lambda t: impl.recv(ch, timeout=t))


@pytest.mark.difference("select([]) raises ValueError instead of blocking forever")
def test_select3_empty_select_blocks(impl: GoModel) -> None:
    if impl.name == "chanpool":
        with pytest.raises(ValueError):
            impl.select([])
    else:
        assert blocks(lambda t: impl.select([], timeout=t))


def test_select3_select_on_non_ready_chans_blocks(impl: GoModel) -> None:
    ch = impl.make(0)
    assert blocks(lambda t: impl.select([ch], timeout=t))
    assert blocks(lambda t: impl.select([(ch, 7)], timeout=t))
    assert blocks(lambda t: impl.select([ch, (impl.make(0), 7)], timeout=t))


def test_select3_select_with_default_never_blocks(impl: GoModel) -> None:
    ch = impl.make(0)
    assert impl.select([], default=True) == (None, None, False)
    assert impl.select([ch], default=True) == (None, None, False)
    assert impl.select([(ch, 7)], default=True) == (None, None, False)


def test_select3_select_on_ready_chans_does_not_block(impl: GoModel) -> None:
    ch = impl.make(1)
    assert impl.select([(ch, 7)], default=True) == (0, None, True)
    ch = impl.make(1)
    impl.send(ch, 7)
    assert impl.select([ch], default=True) == (0, 7, True)


def test_select3_select_on_closed_chans_behaves_like_the_operation(impl: GoModel) -> None:
    closed = closed_chan(impl)
    for _ in range(3):  # Go's three receive forms: <-c, x := <-c, x, ok := <-c
        assert not blocks(lambda t: impl.select([closed], timeout=t))
    with pytest.raises(impl.Panic):
        impl.select([(closed, 7)])


def test_select3_select_does_not_pair_with_itself(impl: GoModel) -> None:
    c = impl.make(0)
    assert blocks(lambda t: impl.select([(c, 1), c], timeout=t))


# ============================================================== test/chan/select6.go


def test_select6(impl: GoModel) -> None:
    # Issue 2075: a select that loses on c1 must leave c1's queue of other waiters intact.
    c1, c2, c3 = impl.make(0), impl.make(0), impl.make(0)

    def b() -> None:
        idx, _, _ = impl.select([c1, c2])
        assert idx == 1, "dummy"
        impl.send(c3, True)
        impl.recv(c1)

    gs = [Go(lambda: impl.recv(c1)), Go(b), Go(lambda: impl.send(c2, True))]
    impl.recv(c3)
    impl.send(c1, True)
    impl.send(c1, True)
    join_all(gs)


# ============================================================== test/chan/select7.go

RECVS = {
    "recv1": lambda impl, c: impl.recv(c),
    "recv2": lambda impl, c: impl.select([c]),
    "recv3": lambda impl, c: impl.select([c, impl.make(0)]),
}
SENDS = {
    "send1": lambda impl, c: impl.send(c, 1),
    "send2": lambda impl, c: impl.select([(c, 1)]),
    "send3": lambda impl, c: impl.select([(c, 1), (impl.make(0), 1)]),
}


@pytest.mark.parametrize("send", sorted(SENDS))
@pytest.mark.parametrize("recv", sorted(RECVS))
def test_select7(impl: GoModel, send: str, recv: str) -> None:
    # Every way of sending meets every way of receiving on an unbuffered channel.
    for _ in range(20):
        c = impl.make(0)
        g = Go(RECVS[recv], impl, c)
        time.sleep(0)  # runtime.Gosched()
        SENDS[send](impl, c)
        g.join()


# ============================================================== test/chan/nonblock.go


@pytest.mark.parametrize("buffer", [0, 1])
def test_nonblock(impl: GoModel, buffer: int) -> None:
    def retry(case: Any) -> tuple[int | None, Any, bool]:
        # Up to maxTries non-blocking attempts, pausing between them, as the original.
        deadline = time.monotonic() + WATCHDOG
        while time.monotonic() < deadline:
            r = impl.select([case], default=True)
            if r[0] is not None:
                return r
            time.sleep(0.0001)
        pytest.fail(f"buffer={buffer}: a non-blocking operation never found its peer ready")

    for first, second in ((123, 234), (123456, 234567), (True, False), ("hello", "hello again")):
        c, sync = impl.make(buffer), impl.make(0)
        assert impl.select([c], default=True) == (None, None, False), "blocked sender"

        def receiver(c: Any = c, sync: Any = sync, first: Any = first) -> None:
            assert impl.recv(c) == first
            impl.send(sync, True)

        def sender(c: Any = c, sync: Any = sync, second: Any = second) -> None:
            impl.send(c, second)
            impl.send(sync, True)

        g = Go(receiver)
        retry((c, first))
        impl.recv(sync)
        g.join()
        g = Go(sender)
        if buffer > 0:
            impl.recv(sync)
        assert retry(c)[1] == second
        if buffer == 0:
            impl.recv(sync)
        g.join()


# ============================================================== test/chan/doubleselect.go


def test_doubleselect(impl: GoModel) -> None:
    # If two cases of one select both ran, a value would arrive twice.
    n = 5000
    cs = [impl.make(0) for _ in range(4)]
    cmux, done = impl.make(0), impl.make(0)

    def sender() -> None:
        for i in range(n):
            impl.select([(c, i) for c in cs])
        for c in cs:
            impl.close(c)

    def mux(inp: Any) -> None:
        for v in impl.range(inp):
            impl.send(cmux, v)
        impl.send(done, True)

    def recver() -> int:
        seen: set[int] = set()
        for v in impl.range(cmux):
            assert v not in seen, f"got duplicate value: {v}"
            seen.add(v)
        return len(seen)

    gs = [Go(sender), *(Go(mux, c) for c in cs)]
    r = Go(recver)
    for _ in range(4):
        impl.recv(done)
    impl.close(cmux)
    join_all(gs)
    assert r.join() == n


# ============================================================== test/chan/fifo.go

FIFO_N = 10


def test_fifo_AsynchFifo(impl: GoModel) -> None:
    ch = impl.make(FIFO_N)
    for i in range(FIFO_N):
        impl.send(ch, i)
    for i in range(FIFO_N):
        assert impl.recv(ch) == i, "bad receive"


def test_fifo_SynchFifo(impl: GoModel) -> None:
    # A daisy chain of goroutines reads the elements in sequence.
    ch = impl.make(0)
    inp = start = impl.make(0)
    gs = []

    def chain(val: int, inp: Any, out: Any) -> None:
        impl.recv(inp)
        assert impl.recv(ch) == val
        impl.send(out, 1)

    for i in range(FIFO_N):
        out = impl.make(0)
        gs.append(Go(chain, i, inp, out))
        inp = out
    impl.send(start, 0)
    for i in range(FIFO_N):
        impl.send(ch, i)
    impl.recv(inp)
    join_all(gs)


# ============================================================== test/chan/sieve1.go


def test_sieve1(impl: GoModel) -> None:
    # Every goroutine ends when a channel it uses is closed (Go's just stay blocked).
    made: list[Any] = []
    lock = threading.Lock()
    torn_down = False

    def make() -> Any:
        # A channel made after the teardown (the sieve adds a filter after the last prime the
        # test reads) is closed at once, or the sieve would wait on it forever.
        c = impl.make(0)
        with lock:
            made.append(c)
            if torn_down:
                close_quietly(c)
        return c

    def close_quietly(c: Any) -> None:
        try:
            impl.close(c)
        except GoPanic:
            pass

    def stopped(f: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                f()
            except impl.Panic:
                pass  # its output was closed at teardown

        return run

    def generate(ch: Any) -> None:
        i = 2
        while True:
            impl.send(ch, i)
            i += 1

    def filt(inp: Any, out: Any, prime: int) -> None:
        for i in impl.range(inp):
            if i % prime != 0:
                impl.send(out, i)

    gs: list[Go] = []

    def sieve(primes: Any) -> None:
        ch = make()
        gs.append(Go(stopped(lambda: generate(ch))))
        while True:
            prime, ok = impl.recv2(ch)
            if not ok:
                return
            impl.send(primes, prime)
            ch1 = make()
            gs.append(Go(stopped(lambda ch=ch, ch1=ch1, p=prime: filt(ch, ch1, p))))
            ch = ch1

    primes = make()
    s = Go(stopped(lambda: sieve(primes)))
    want = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73]
    want += [79, 83, 89, 97]
    assert [impl.recv(primes) for _ in want] == want
    with lock:
        torn_down = True
        for c in made:
            close_quietly(c)
    s.join()
    join_all(list(gs))


# ============================================================== test/chan/goroutines.go


def test_goroutines(impl: GoModel) -> None:
    # Many goroutines threaded together and torn down cleanly.
    n = 100
    leftmost = left = impl.make(0)
    gs = []
    for _ in range(n):
        right = impl.make(0)
        gs.append(Go(lambda left=left, right=right: impl.send(left, impl.recv(right))))
        left = right
    gs.append(Go(lambda: impl.send(right, 1)))
    assert impl.recv(leftmost) == 1
    join_all(gs)


# ============================================================== test/closedchan.go
#
# The original drives every check through three implementations of one interface: direct
# channel operations (XChan), one-case selects (SChan) and selects with an extra case that is
# never ready (SSChan); the non-blocking forms are selects with a default in all three.


class Way(types.SimpleNamespace):
    send: Callable[[Any, Any], None]
    recv: Callable[[Any], Any]
    recv2: Callable[[Any], tuple[Any, bool]]
    nbsend: Callable[[Any, Any], bool]
    nbrecv: Callable[[Any], tuple[Any, bool]]
    nbrecv2: Callable[[Any], tuple[Any, bool, bool]]


def way(impl: GoModel, kind: str) -> Way:
    extra = [impl.make(0)] if kind == "SSChan" else []

    def sel(case: Any, default: bool = False) -> tuple[int | None, Any, bool]:
        idx, v, ok = impl.select([*extra, case], default=default)
        assert idx in (None, len(extra)), "the dummy case is never ready"
        return None if idx is None else 0, v, ok

    def nbrecv2(c: Any) -> tuple[Any, bool, bool]:
        idx, v, ok = sel(c, default=True)
        return v, ok, idx is not None

    if kind == "XChan":
        send, recv, recv2 = impl.send, impl.recv, impl.recv2
    else:

        def send(c: Any, v: Any) -> None:
            sel((c, v))

        def recv(c: Any) -> Any:
            return sel(c)[1]

        def recv2(c: Any) -> tuple[Any, bool]:
            _, v, ok = sel(c)
            return v, ok

    return Way(
        send=send,
        recv=recv,
        recv2=recv2,
        nbsend=lambda c, v: sel((c, v), default=True)[0] is not None,
        nbrecv=lambda c: (lambda r: (r[0], r[2]))(nbrecv2(c)),
        nbrecv2=nbrecv2,
    )


WAYS = ["XChan", "SChan", "SSChan"]


def closedsync(impl: GoModel) -> Any:
    c = impl.make(0)
    impl.close(c)
    return c


def closedasync(impl: GoModel) -> Any:
    c = impl.make(2)
    impl.send(c, 1)
    impl.close(c)
    return c


def _recv_zero(impl: GoModel, w: Way, kind: str, c: Any) -> None:
    """Go's ``x := c.Recv(); x != 0`` on a closed channel (see the zero-value tests)."""
    if impl.name == "chanpool" and kind == "XChan":
        with pytest.raises(chanpool.Closed):
            w.recv(c)
    else:
        assert w.recv(c) is None


def _test1(impl: GoModel, w: Way, kind: str, c: Any) -> None:
    for _ in range(3):
        _recv_zero(impl, w, kind, c)
        assert w.recv2(c) == (None, False)
        # Received without blocking: selected.
        assert w.nbrecv(c) == (None, True)
        assert w.nbrecv2(c) == (None, False, True)
    with pytest.raises(impl.Panic):
        w.nbsend(c, 1)
    _recv_zero(impl, w, kind, c)  # the value was discarded
    with pytest.raises(impl.Panic):
        w.send(c, 2)
    _recv_zero(impl, w, kind, c)


def _closedchan_difference(kind: str) -> list[Any]:
    return [
        pytest.param(
            k,
            marks=[pytest.mark.difference("direct recv() on a closed channel raises Closed")]
            if k == "XChan"
            else [],
        )
        for k in WAYS
    ]


@pytest.mark.parametrize("kind", _closedchan_difference("test1"))
def test_closedchan_test1(impl: GoModel, kind: str) -> None:
    _test1(impl, way(impl, kind), kind, closedsync(impl))


TESTASYNC = {
    "testasync1": lambda w, c: w.recv(c) == 1,
    "testasync2": lambda w, c: w.recv2(c) == (1, True),
    "testasync3": lambda w, c: w.nbrecv(c) == (1, True),
    "testasync4": lambda w, c: w.nbrecv2(c) == (1, True, True),
}


@pytest.mark.parametrize("kind", _closedchan_difference("testasync"))
@pytest.mark.parametrize("name", sorted(TESTASYNC))
def test_closedchan_testasync(impl: GoModel, name: str, kind: str) -> None:
    # The last buffered value is still received after close, by every form of receive.
    w = way(impl, kind)
    c = closedasync(impl)
    assert TESTASYNC[name](w, c)
    _test1(impl, w, kind, c)


@pytest.mark.difference("closing a closed channel returns False instead of panicking")
def test_closedchan_close_of_closed_panics(impl: GoModel) -> None:
    ch = impl.make(0)
    impl.close(ch)
    if impl.name == "chanpool":
        assert ch.close() is False
    else:
        with pytest.raises(GoPanic):
            impl.close(ch)
