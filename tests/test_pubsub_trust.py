"""chanpool.PubSub: the reported failures of issue 8 ("Trust"), each pinned by a test that
failed before its fix. Subject semantics, queue groups, exact counters under churn, the
overflow='error' policy, draining, garbage collection, the dispatch pool's growth, deep
patterns, fork, timeouts and argument types."""

from __future__ import annotations

import gc
import math
import queue
import threading
import weakref

import chanpool
import pytest
from test_pubsub_support import WATCHDOG, Recorder, assert_clean_exit, run_py, wait_until

pytest_plugins = ["test_pubsub_support"]

# ------------------------------------------------------------------------- subject semantics


def test_wildcard_characters_inside_a_token_are_literals(make_bus):
    bus = make_bus()
    star = bus.subscribe("foo*.bar")
    front = bus.subscribe("*bar")
    arrow = bus.subscribe("a.>b")
    assert bus.publish("foo*.bar", 1) == 1
    assert star.get(timeout=0).data == 1
    assert bus.publish("fooX.bar", 2) == 0, "'foo*' is no wildcard"
    assert bus.publish("*bar", 3) == 1
    assert front.get(timeout=0).data == 3
    assert bus.publish("xbar", 4) == 0
    assert bus.publish("a.>b", 5) == 1
    assert arrow.get(timeout=0).data == 5
    assert bus.publish("a.x.b", 6) == 0
    for s in (star, front, arrow):
        with pytest.raises(queue.Empty):
            s.get(timeout=0)


def test_error_messages_quote_at_most_about_100_characters(make_bus):
    bus = make_bus()
    long = "x" * 5000
    for bad in (long + "..y", "a b" + long, long + ".>.b"):
        with pytest.raises(ValueError) as e:
            bus.subscribe(bad)
        assert len(str(e.value)) < 250, len(str(e.value))
    for bad in (long + "..y", long + ".*"):
        with pytest.raises(ValueError) as e:
            bus.publish(bad)
        assert len(str(e.value)) < 250, len(str(e.value))


# ------------------------------------------------------------------------------ queue groups


def test_queue_group_spans_patterns(make_bus):
    """NATS groups by queue name: a message matching two patterns of one group goes to ONE
    member, round robin over the members that match."""
    bus = make_bus()
    wide = bus.subscribe("foo.*", group="workers", capacity=10_000)
    narrow = bus.subscribe("foo.bar", group="workers", capacity=10_000)
    other = bus.subscribe("foo.bar", group="auditors", capacity=10_000)
    for i in range(100):
        assert bus.publish("foo.bar", i) == 2, "one per group"
    got = {s: s.stats()["pending"] for s in (wide, narrow, other)}
    assert got[wide] + got[narrow] == 100
    assert got[wide] == 50 and got[narrow] == 50
    assert got[other] == 100
    for i in range(10):
        assert bus.publish("foo.baz", i) == 1
    assert wide.stats()["pending"] == 60


def test_group_churn_never_makes_a_message_reach_nobody(make_bus):
    """One permanent member; others join and leave all the time, each leaving while the
    publisher waits for room in its full queue. Every publish still reaches exactly one member,
    and every message is accounted for exactly once."""
    bus = make_bus()
    permanent = bus.subscribe("jobs", group="g", capacity=100_000)
    stop = threading.Event()
    churned = []
    entered = []

    def handler(release):
        entered.append(1)
        release.wait(WATCHDOG)

    def churn():
        while not stop.is_set():
            release = threading.Event()
            s = bus.subscribe("jobs", lambda m, r=release: handler(r), group="g", capacity=1)
            churned.append(s)
            # Full (one message in the handler, one queued): the publisher now waits on it.
            while s.stats()["pending"] < 1 and not stop.is_set():
                stop.wait(0.0002)
            s.unsubscribe()
            release.set()

    t = threading.Thread(target=churn)
    t.start()
    try:
        counts = [bus.publish("jobs", i) for i in range(20_000)]
    finally:
        stop.set()
        t.join(WATCHDOG)
    assert counts.count(1) == 20_000, f"{counts.count(0)} publishes reached nobody"
    assert len(churned) > 10, "the churn did not overlap the publishes"
    # Every handler call that began has been counted (each is released right after its
    # subscription ends).
    wait_until(lambda: sum(s.stats()["delivered"] for s in churned) == len(entered))
    theirs = sum(s.stats()["delivered"] + s.stats()["dropped"] for s in churned)
    assert permanent.stats()["pending"] + theirs == 20_000
    assert bus.stats()["unrouted"] == 0


def test_a_message_that_reaches_nobody_is_counted(make_bus):
    bus = make_bus()
    assert bus.publish("nobody.home", 1) == 0
    sub = bus.subscribe("x")
    sub.unsubscribe()
    assert bus.publish("x", 2) == 0
    assert bus.stats()["unrouted"] == 2
    assert bus.stats()["published"] == 2


# ------------------------------------------------------------------------ overflow='error'


def test_overflow_error_delivers_to_the_others_first(make_bus):
    bus = make_bus()
    full = bus.subscribe("t", capacity=1, overflow="error")
    healthy = bus.subscribe("t", capacity=1000)
    also_full = bus.subscribe("t", capacity=1, overflow="error")
    assert bus.publish("t", 0) == 3
    for i in range(1, 200):
        with pytest.raises(chanpool.QueueFull) as e:
            bus.publish("t", i)
        text = str(e.value)
        assert '"t"' in text and text.count("#") == 2, text
    assert [healthy.get(timeout=0).data for _ in range(200)] == list(range(200))
    for s in (full, also_full):
        assert s.stats() == {
            "delivered": 0,
            "dropped": 199,
            "pending": 1,
            "errors": 0,
            "active": True,
        }
    st = bus.stats()
    assert st["dropped"] == 2 * 199 and st["delivered"] == 200


# ---------------------------------------------------------------------------------- draining


def test_drain_delivers_dead_letters_and_accepts_handler_publishes(make_bus, gates):
    bus = make_bus()
    gate = gates()
    dead = bus.subscribe("_errors.>", capacity=1000)
    relayed = Recorder()
    bus.subscribe("relayed", relayed, capacity=1000)

    def failing(msg):
        gate.wait(WATCHDOG)
        bus.publish("relayed", msg.data)
        raise ValueError(msg.data)

    bus.subscribe("work", failing, capacity=1000, on_error=None)
    for i in range(50):
        bus.publish("work", i)
    closer = threading.Thread(target=lambda: bus.close(drain=True))
    closer.start()
    # close() has begun (outside publishers are refused) before the handlers run.
    wait_until(lambda: bus.closed, what="close() to begin")
    gate.set()
    closer.join(WATCHDOG)
    assert not closer.is_alive()
    assert sorted(relayed.data) == list(range(50))
    letters = [dead.get(timeout=0).data for _ in range(50)]
    assert sorted(d["message"].data for d in letters) == list(range(50))
    with pytest.raises(chanpool.Closed):
        dead.get(timeout=0)
    st = bus.stats()
    assert st["errors"] == 50 and st["discarded"] == 0


# ----------------------------------------------------------------------- garbage collection


class Box:
    pass


@pytest.mark.parametrize("keep", ["bus", "sub", "neither"])
def test_queued_message_that_refers_to_its_bus_is_collected(keep):
    for _ in range(20):
        bus = chanpool.PubSub()
        sub = bus.subscribe("t")
        box = Box()
        box.bus = bus if keep != "sub" else None
        box.sub = sub if keep != "bus" else None
        bus.publish("t", box)
        ref = weakref.ref(box)
        del bus, sub, box
        gc.collect()
        assert ref() is None, "the queued message kept the cycle alive"


# -------------------------------------------------------------------- dispatch pool growth


def test_forty_handlers_that_wait_on_each_other_all_run(make_bus):
    bus = make_bus()
    n = 40
    barrier = threading.Barrier(n)
    passed = Recorder()

    def handler(msg):
        barrier.wait(WATCHDOG)
        passed(msg)

    for i in range(n):
        bus.subscribe(f"h.{i}", handler)
    for i in range(n):
        bus.publish(f"h.{i}", i)
    passed.wait_count(n)
    assert sorted(passed.data) == list(range(n))
    assert bus.stats()["workers"] >= n


def test_reaching_max_workers_is_logged():
    proc = run_py(
        """
        import logging, threading, chanpool
        logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
        capped = threading.Event()
        class Watch(logging.Handler):
            def emit(self, record):
                if "max_workers" in record.getMessage():
                    capped.set()
        logging.getLogger("chanpool").addHandler(Watch())
        bus = chanpool.PubSub(max_workers=2)
        gate = threading.Event()
        entered = threading.Semaphore(0)
        def h(msg):
            entered.release()
            gate.wait(30)
        for i in range(3):
            bus.subscribe(f"h.{i}", h)
            bus.publish(f"h.{i}", i)
        assert entered.acquire(timeout=20) and entered.acquire(timeout=20)
        # The third message waits for a thread the pool may not start: that is logged.
        assert capped.wait(20), "reaching max_workers was not logged"
        assert bus.stats()["workers"] == 2
        gate.set()
        bus.close()
        print("ok")
        """
    )
    assert_clean_exit(proc, expect_last="ok")
    assert "max_workers=2" in proc.stderr and "chanpool WARNING" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------ deep inputs


def test_deep_patterns_on_a_small_stack_and_huge_patterns():
    proc = run_py(
        """
        import threading, chanpool
        def small_stack():
            bus = chanpool.PubSub()
            p = ".".join(["t"] * 1000)
            s = bus.subscribe(p)
            w = bus.subscribe(".".join(["t"] * 999 + [">"]))
            assert bus.publish(p, 1) == 2
            assert s.get(timeout=0).data == 1
            s.unsubscribe(); w.unsubscribe()
            keep = bus.subscribe(".".join(["*"] * 1000))
            assert bus.publish(p, 2) == 1
            del keep
            bus.close()
            out.append("small ok")
        out = []
        threading.stack_size(256 * 1024)
        t = threading.Thread(target=small_stack)
        t.start(); t.join()
        threading.stack_size(0)
        assert out == ["small ok"], out
        bus = chanpool.PubSub()
        big = ".".join(f"k{i}" for i in range(50_000))
        s = bus.subscribe(big)
        s2 = bus.subscribe(big.rsplit(".", 1)[0] + ".>")
        assert bus.publish(big, 3) == 2
        s.unsubscribe()
        assert bus.publish(big, 4) == 1
        bus.subscribe(".".join(["*"] * 50_000))
        assert bus.publish(big, 5) == 2
        bus.close(drain=False)
        del bus, s, s2
        # A bus dropped with a huge pattern still subscribed.
        b2 = chanpool.PubSub()
        b2.subscribe(big)
        del b2
        print("ok")
        """
    )
    assert_clean_exit(proc, expect_last="ok")


# ------------------------------------------------------------------------------------- fork


def test_fork_while_other_threads_use_pubsubs_never_hangs_the_child():
    proc = run_py(
        """
        import os, threading, chanpool
        bus = chanpool.PubSub()
        sub = bus.subscribe("t", capacity=10)
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                b = chanpool.PubSub()
                s = b.subscribe("x", lambda m: None)
                b.publish("x", 1)
                s.unsubscribe()
                b.close()
        def traffic():
            while not stop.is_set():
                try:
                    bus.publish("t", 1)
                    sub.get(timeout=0)
                except Exception:
                    pass
        threads = [threading.Thread(target=f) for f in (churn, churn, traffic)]
        for t in threads: t.start()
        for i in range(30):
            pid = os.fork()
            if pid == 0:
                code = 0
                for call in (lambda: bus.publish("t", 1), lambda: sub.get(timeout=0),
                             bus.stats, sub.stats):
                    try:
                        call()
                        code = 10
                    except RuntimeError:
                        pass
                sub.unsubscribe()
                bus.close()
                mine = chanpool.PubSub()
                got = []
                mine.subscribe("y", got.append)
                mine.publish("y", 7)
                mine.close()
                if [m.data for m in got] != [7]:
                    code = 11
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, (i, status)
        stop.set()
        for t in threads: t.join()
        bus.close(drain=False)
        print("ok")
        """,
        dump_on_hang=False,
        timeout=120,
    )
    assert_clean_exit(proc, expect_last="ok")


# ---------------------------------------------------------------------- timeouts and bools


@pytest.mark.parametrize("timeout", [math.inf, 1e19, 1.5e19, 9.3e18, 1e300])
def test_huge_timeouts_mean_no_deadline(make_bus, timeout):
    bus = make_bus()
    sub = bus.subscribe("t")
    seen = Recorder()
    bus.subscribe("t", seen)
    bus.publish("t", 1)
    assert sub.get(timeout=timeout).data == 1
    closer = threading.Timer(0.05, lambda: bus.close(timeout=timeout))
    got: list = []

    def reader():
        try:
            sub.get(timeout=timeout)
        except chanpool.Closed:
            got.append("closed")

    r = threading.Thread(target=reader)
    r.start()
    closer.start()
    r.join(WATCHDOG)
    closer.join(WATCHDOG)
    assert got == ["closed"]
    assert seen.data == [1]
    assert bus.close(timeout=timeout) is True


def test_nan_timeouts_are_value_errors(make_bus):
    bus = make_bus()
    sub = bus.subscribe("t")
    with pytest.raises(ValueError, match="timeout"):
        sub.get(timeout=math.nan)
    with pytest.raises(ValueError, match="timeout"):
        bus.close(timeout=math.nan)
    assert not bus.closed, "a refused close must not close anything"


def test_timeouts_take_the_shared_timeout_type(make_bus):
    # Issue 9: get() and close() read their timeout like every other blocking call: a str is
    # a TypeError naming it, a bool is its int (0 or 1 s, as the stdlib takes it), an int too
    # big for a float waits as long as None does.
    bus = make_bus()
    sub = bus.subscribe("t")
    with pytest.raises(queue.Empty):
        sub.get(timeout=False)
    for bad in ("1", [1.0]):
        with pytest.raises(TypeError, match="timeout"):
            sub.get(timeout=bad)
        with pytest.raises(TypeError, match="timeout"):
            bus.close(timeout=bad)
    assert not bus.closed, "a refused close must not close anything"
    bus.publish("t", 1)
    assert sub.get(timeout=10**400).data == 1
    assert bus.close(timeout=10**400) is True


def test_group_takes_the_shared_group_type(make_bus):
    bus = make_bus()
    for bad, exc in ((3, TypeError), (b"g", TypeError), ("", ValueError)):
        with pytest.raises(exc, match="group"):
            bus.subscribe("t", lambda m: None, group=bad)
    assert bus.stats()["subscriptions"] == 0


def test_ints_for_bool_parameters(make_bus, gates):
    bus = make_bus()
    gate = gates()
    rec = Recorder(gate=gate)
    bus.subscribe("t", rec)
    for i in range(5):
        bus.publish("t", i)
    rec.wait_entered()
    t = threading.Thread(target=lambda: bus.close(drain=0))  # like drain=False
    t.start()
    wait_until(lambda: bus.closed, what="close() to begin")
    gate.set()
    t.join(WATCHDOG)
    assert rec.data == [0]
    assert bus.stats()["discarded"] == 4
    other = make_bus()
    other.subscribe("t", rec)
    other.publish("t", 9)
    assert other.close(1) is True  # like drain=True
    assert rec.data == [0, 9]
