"""chanpool.inventory.InventoryManager: exact stock under concurrency, oversell refusal, events
at exact crossings, bad input, backpressure, shutdown, and the process around it (interpreter
exit, Ctrl-C, fork) in subprocesses."""

from __future__ import annotations

import concurrent.futures as cf
import queue
import random
import threading
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, List, Tuple

import chanpool
import pytest
from chanpool.inventory import InsufficientStock, InventoryManager
from helpers import (
    WATCHDOG,
    wait_until,
    watchdog,
)

MAX = 2**63 - 1


def drain_messages(sub: Any, n: int) -> List[Any]:
    """Takes exactly n messages from a pull subscription (fails on a missing one)."""
    return [sub.get(timeout=WATCHDOG) for _ in range(n)]


def events_settled(ims: InventoryManager) -> Callable[[], bool]:
    return lambda: ims.stats()["events_pending"] == 0


def books(ims: InventoryManager) -> Dict[str, int]:
    """stats() after checking that every accepted operation completed exactly once."""
    s = ims.stats()
    assert s["completed"] == s["submitted"], s
    assert s["events_emitted"] == (
        s["events_published"] + s["events_failed"] + s["events_dropped"] + s["events_pending"]
    ), s
    return s


# --------------------------------------------------------------------------------- basics


def test_operations_return_futures_with_the_new_stock(make_ims):
    ims = make_ims()
    f = ims.add_stock("apple", 10)
    assert isinstance(f, cf.Future) and isinstance(f, chanpool.Future)
    assert f.result(timeout=WATCHDOG) == 10
    assert f.cancel() is False  # an accepted operation is never cancelled
    assert ims.remove_stock("apple", 3).result(timeout=WATCHDOG) == 7
    assert ims.add_stock("apple", 5).result(timeout=WATCHDOG) == 12
    assert ims.check_stock("apple").result(timeout=WATCHDOG) == 12
    assert ims.check_stock("never-seen").result(timeout=WATCHDOG) == 0
    fs = [ims.add_stock("pear", 1) for _ in range(100)]
    _, not_done = cf.wait(fs, timeout=WATCHDOG)
    assert not not_done
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=WATCHDOG)) == list(range(1, 101))
    assert ims.snapshot() == {"apple": 12, "pear": 100}
    s = books(ims)
    assert (s["submitted"], s["refused"], s["products"]) == (105, 0, 2)


def test_remove_beyond_stock_raises_insufficient_and_changes_nothing(make_ims):
    ims = make_ims()
    ims.add_stock("apple", 4).result(timeout=WATCHDOG)
    f = ims.remove_stock("apple", 5)
    with pytest.raises(InsufficientStock) as ei:
        f.result(timeout=WATCHDOG)
    e = ei.value
    assert isinstance(e, ValueError)
    assert (e.product, e.requested, e.available) == ("apple", 5, 4)
    assert "apple" in str(e) and "5" in str(e) and "4" in str(e)
    assert ims.check_stock("apple").result(timeout=WATCHDOG) == 4
    # Unknown products have nothing to remove and are not created by the attempt.
    with pytest.raises(InsufficientStock) as ei:
        ims.remove_stock("ghost", 1).result(timeout=WATCHDOG)
    assert ei.value.available == 0
    assert ims.snapshot() == {"apple": 4}
    # Exactly the stock can be removed.
    assert ims.remove_stock("apple", 4).result(timeout=WATCHDOG) == 0
    assert books(ims)["refused"] == 2


def test_insufficient_stock_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(InsufficientStock("a", 3, 1)))
    assert (e.product, e.requested, e.available, str(e)) == (
        "a",
        3,
        1,
        "cannot remove 3 of 'a': only 1 in stock",
    )


def test_observed_futures_complete_through_callbacks(make_ims):
    ims = make_ims(workers=2)
    ims.add_stock("a", 50).result(timeout=WATCHDOG)
    seen: List[Tuple[str, Any]] = []
    lock = threading.Lock()

    def cb(f: cf.Future) -> None:
        exc = f.exception()
        with lock:
            seen.append(("err", type(exc)) if exc else ("ok", f.result()))

    fs = [ims.remove_stock("a", 1) for _ in range(80)]
    for f in fs:
        f.add_done_callback(cb)
    cf.wait(fs, timeout=WATCHDOG)
    wait_until(lambda: len(seen) == 80, what="every callback")
    kinds = Counter(k for k, _ in seen)
    assert kinds == {"ok": 50, "err": 30}
    assert sorted(v for k, v in seen if k == "ok") == list(range(50))
    assert {v for k, v in seen if k == "err"} == {InsufficientStock}


def test_overflowing_add_is_refused_with_overflow_error(make_ims):
    ims = make_ims()
    assert ims.add_stock("big", MAX - 1).result(timeout=WATCHDOG) == MAX - 1
    with pytest.raises(OverflowError, match="big"):
        ims.add_stock("big", 2).result(timeout=WATCHDOG)
    assert ims.check_stock("big").result(timeout=WATCHDOG) == MAX - 1
    assert ims.add_stock("big", 1).result(timeout=WATCHDOG) == MAX
    assert books(ims)["overflowed"] == 1


BAD_QTY = [
    (0, ValueError),
    (-1, ValueError),
    (-(2**70), ValueError),
    (2**63, ValueError),
    (1.0, TypeError),
    ("1", TypeError),
    (None, TypeError),
    (True, TypeError),
    (False, TypeError),
]


@pytest.mark.parametrize("qty, exc", BAD_QTY)
@pytest.mark.parametrize("op", ["add_stock", "remove_stock"])
def test_bad_quantity_raises_at_once_and_queues_nothing(make_ims, op, qty, exc):
    ims = make_ims()
    ims.add_stock("a", 5).result(timeout=WATCHDOG)
    with pytest.raises(exc, match="qty"):
        getattr(ims, op)("a", qty)
    assert ims.stats()["submitted"] == 1
    assert ims.snapshot() == {"a": 5}


@pytest.mark.parametrize("product, exc", [(1, TypeError), (b"a", TypeError), ("", ValueError)])
def test_bad_product_raises_at_once(make_ims, product, exc):
    ims = make_ims()
    for call in (
        lambda: ims.add_stock(product, 1),
        lambda: ims.remove_stock(product, 1),
        lambda: ims.check_stock(product),
    ):
        with pytest.raises(exc, match="product"):
            call()
    assert ims.stats()["submitted"] == 0


def test_with_a_bus_products_must_be_one_topic_token(make_ims):
    bus = chanpool.PubSub()
    ims = make_ims(bus=bus)
    for bad in ("a.b", "a b", "*", "x>"):
        with pytest.raises(ValueError, match="token"):
            ims.add_stock(bad, 1)
    assert ims.stats()["submitted"] == 0
    # Without a bus, any non-empty str is a product.
    plain = make_ims()
    assert plain.add_stock("a.b c", 2).result(timeout=WATCHDOG) == 2
    bus.close()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": -(2**70)}, ValueError, "workers"),
        ({"workers": 2**64}, ValueError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"workers": 2.0}, TypeError, "workers"),
        ({"queue_size": -1}, ValueError, "queue_size"),
        ({"queue_size": 2**70}, ValueError, "queue_size"),
        ({"queue_size": False}, TypeError, "queue_size"),
        ({"queue_size": "8"}, TypeError, "queue_size"),
        ({"bus": "BUS", "low_threshold": 2**63}, ValueError, "low_threshold"),
        ({"bus": "BUS", "low_threshold": -(2**70)}, ValueError, "low_threshold"),
        ({"low_threshold": 3}, ValueError, "bus"),
        ({"bus": object()}, TypeError, "bus"),
        ({"bus": "bus"}, TypeError, "bus"),
        ({"bus": "BUS", "low_threshold": -1}, ValueError, "low_threshold"),
        ({"bus": "BUS", "low_threshold": 1.5}, TypeError, "low_threshold"),
        ({"bus": "BUS", "low_threshold": True}, TypeError, "low_threshold"),
        ({"bus": "BUS", "topic_prefix": "a..b"}, ValueError, "topic_prefix"),
        ({"bus": "BUS", "topic_prefix": "inv.*"}, ValueError, "topic_prefix"),
    ],
)
def test_constructor_validation(kwargs, exc, match):
    bus = chanpool.PubSub()
    kwargs = {k: (bus if v == "BUS" else v) for k, v in kwargs.items()}
    with pytest.raises(exc, match=match):
        InventoryManager(**kwargs)
    bus.close()


def test_constructor_takes_int_likes_like_every_count(make_ims):
    """The same argument rules as every count in chanpool (Semaphore, TokenBucket, pools): ints
    and __index__ objects, never bool or float; out of range is a ValueError."""

    class Index:
        def __init__(self, v: int) -> None:
            self.v = v

        def __index__(self) -> int:
            return self.v

    bus = chanpool.PubSub()
    ims = make_ims(Index(2), Index(5), bus=bus, low_threshold=Index(1))
    assert (ims.max_workers, ims.queue_size, ims.low_threshold) == (2, 5, 1)
    assert ims.add_stock("a", Index(3)).result(timeout=WATCHDOG) == 3
    assert ims.remove_stock("a", Index(1)).result(timeout=WATCHDOG) == 2
    bus.close()


def test_properties_and_repr(make_ims):
    bus = chanpool.PubSub()
    ims = make_ims(3, 7, bus=bus, low_threshold=2, topic_prefix="wh1.inv")
    assert (ims.max_workers, ims.queue_size, ims.low_threshold, ims.topic_prefix) == (
        3,
        7,
        2,
        "wh1.inv",
    )
    assert ims.bus is bus and not ims.closed
    assert "InventoryManager" in repr(ims)
    plain = make_ims()
    assert (plain.bus, plain.low_threshold, plain.topic_prefix) == (None, None, None)
    assert (plain.max_workers, plain.queue_size) == (10, 0)
    bus.close()


# -------------------------------------------------------------------------- concurrency


def test_100k_concurrent_operations_end_exact_and_never_negative(make_ims):
    """8 Python threads fire 100,000 random operations on a few products. Each future says
    whether its operation was accepted and the stock right after it; fed those outcomes, a
    sequential model must agree with the final stock (check_stock and snapshot) and with the
    events published (one `out` per removal that reached 0, one `low` per removal that crossed
    the threshold)."""
    threads, per_thread, products, low = 8, 12_500, 6, 20
    bus = chanpool.PubSub()
    sub = bus.subscribe("inventory.>", capacity=1_000_000)
    ims = make_ims(bus=bus, low_threshold=low)
    names = [f"sku{i}" for i in range(products)]
    logs: List[List[Tuple[str, str, int, Any]]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def client(t: int) -> None:
        rnd = random.Random(1000 + t)
        log = logs[t]
        start.wait()
        for _ in range(per_thread):
            p = rnd.choice(names)
            r = rnd.random()
            if r < 0.45:
                q = rnd.randint(1, 9)
                log.append(("add", p, q, ims.add_stock(p, q)))
            elif r < 0.95:
                q = rnd.randint(1, 9)
                log.append(("remove", p, q, ims.remove_stock(p, q)))
            else:
                log.append(("check", p, 0, ims.check_stock(p)))

    def run() -> None:
        ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    watchdog(run, what="100k operations")
    model: Dict[str, int] = defaultdict(int)
    want_events: Counter = Counter()
    refused = 0
    for log in logs:
        for kind, p, q, f in log:
            exc = f.exception(timeout=WATCHDOG)
            if kind == "add":
                assert exc is None
                assert f.result() >= q
                model[p] += q
            elif kind == "check":
                assert exc is None and f.result() >= 0
            elif exc is None:
                after = f.result()
                assert after >= 0
                model[p] -= q
                if after + q > low >= after:
                    want_events[(p, "low", after)] += 1
                if after == 0:
                    want_events[(p, "out", 0)] += 1
            else:
                assert isinstance(exc, InsufficientStock), exc
                assert (exc.product, exc.requested) == (p, q)
                assert 0 <= exc.available < q
                refused += 1
    assert all(v >= 0 for v in model.values())
    assert ims.snapshot() == dict(model)
    for p in names:
        assert ims.check_stock(p).result(timeout=WATCHDOG) == model[p]
    assert refused > 0 and want_events, "the mix never refused or crossed: test is too weak"
    s = books(ims)
    assert (s["submitted"], s["refused"]) == (threads * per_thread + products, refused)
    wait_until(events_settled(ims), what="events published")
    total = sum(want_events.values())
    assert ims.stats()["events_published"] == total
    msgs = drain_messages(sub, total)
    got = Counter((m.data["product"], m.data["event"], m.data["stock"]) for m in msgs)
    assert got == want_events
    for m in msgs:
        assert m.topic == f"inventory.{m.data['product']}.{m.data['event']}"
        assert m.data["threshold"] == low
    bus.close()


@pytest.mark.parametrize("round_", range(5))
def test_racing_removals_sell_exactly_the_stock(make_ims, round_):
    stock, threads, tries = 1000, 8, 250
    bus = chanpool.PubSub()
    sub = bus.subscribe("inventory.hot.*", capacity=100)
    ims = make_ims(workers=4 + round_, bus=bus)
    ims.add_stock("hot", stock).result(timeout=WATCHDOG)
    go = threading.Barrier(threads)
    futures: List[List[Any]] = [[] for _ in range(threads)]

    def buyer(t: int) -> None:
        go.wait()
        futures[t] = [ims.remove_stock("hot", 1) for _ in range(tries)]

    def run() -> None:
        ts = [threading.Thread(target=buyer, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    watchdog(run, what="racing buyers")
    results = [f.exception(timeout=WATCHDOG) for fs in futures for f in fs]
    sold = [f.result() for fs in futures for f in fs if f.exception() is None]
    assert len(sold) == stock
    # Each unit was sold once: the stocks left after each sale are exactly 0..stock-1.
    assert sorted(sold) == list(range(stock))
    assert all(isinstance(e, InsufficientStock) and e.available == 0 for e in results if e)
    assert ims.check_stock("hot").result(timeout=WATCHDOG) == 0
    wait_until(events_settled(ims), what="events published")
    (m,) = drain_messages(sub, 1)
    assert (m.topic, m.data["stock"]) == ("inventory.hot.out", 0)
    assert ims.stats()["events_published"] == 1
    bus.close()


def test_completions_are_batched(make_ims):
    """Many operations, few attaches: the completer role combines workers' results."""
    ims = make_ims()
    fs = [ims.add_stock(f"p{i % 10}", 1) for i in range(20_000)]
    cf.wait(fs, timeout=WATCHDOG)
    s = books(ims)
    assert 1 <= s["completion_batches"] <= s["completed"] == 20_000


def test_small_bursts_never_strand_a_completion(make_ims):
    """Many rounds of a few operations each, every one waited for: a completion handed to a
    completer that had just finished would hang one of these rounds."""
    ims = make_ims(workers=4)

    def client(t: int) -> None:
        for r in range(2000):
            for f in [ims.add_stock(f"p{t}", 1) for _ in range(1 + r % 3)]:
                f.result(timeout=WATCHDOG)

    def run() -> None:
        ts = [threading.Thread(target=client, args=(t,)) for t in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    watchdog(run, what="small bursts")
    assert ims.snapshot() == {f"p{t}": 3999 for t in range(4)}
    books(ims)


# ------------------------------------------------------------------------------- events


def test_events_fire_exactly_at_the_crossings_in_order(make_ims):
    bus = chanpool.PubSub()
    sub = bus.subscribe("wh.inv.>", capacity=100)
    other = bus.subscribe("wh.inv.*.out", capacity=100)
    ims = make_ims(bus=bus, low_threshold=10, topic_prefix="wh.inv")

    def do(op: str, qty: int) -> int:
        r: int = getattr(ims, op)("p", qty).result(timeout=WATCHDOG)
        return r

    steps = [
        ("add_stock", 20, 20, []),
        ("remove_stock", 5, 15, []),
        ("remove_stock", 5, 10, [("low", 10)]),
        ("remove_stock", 4, 6, []),  # still low: nothing new
        ("add_stock", 1, 7, []),
        ("remove_stock", 7, 0, [("out", 0)]),
        ("add_stock", 30, 30, []),
        ("remove_stock", 30, 0, [("low", 0), ("out", 0)]),  # both, low first
        ("add_stock", 11, 11, []),
        ("remove_stock", 1, 10, [("low", 10)]),
    ]
    expected = []
    for op, qty, after, evs in steps:
        assert do(op, qty) == after
        expected += evs
    with pytest.raises(InsufficientStock):
        ims.remove_stock("p", 11).result(timeout=WATCHDOG)  # refusals publish nothing
    wait_until(events_settled(ims), what="events published")
    msgs = drain_messages(sub, len(expected))
    assert [(m.data["event"], m.data["stock"]) for m in msgs] == expected
    assert [m.topic for m in msgs] == [f"wh.inv.p.{e}" for e, _ in expected]
    assert msgs[0].data == {"product": "p", "event": "low", "stock": 10, "threshold": 10}
    assert [m.seq for m in msgs] == sorted(m.seq for m in msgs)
    assert [m.topic for m in drain_messages(other, 2)] == ["wh.inv.p.out"] * 2
    s = ims.stats()
    assert (s["events_emitted"], s["events_published"], s["events_failed"]) == (5, 5, 0)
    with pytest.raises(queue.Empty):
        sub.get(timeout=0)
    bus.close()


def test_without_low_threshold_only_out_is_published(make_ims):
    bus = chanpool.PubSub()
    sub = bus.subscribe("inventory.>", capacity=100)
    ims = make_ims(bus=bus)
    ims.add_stock("p", 3).result(timeout=WATCHDOG)
    ims.remove_stock("p", 2).result(timeout=WATCHDOG)
    ims.remove_stock("p", 1).result(timeout=WATCHDOG)
    ims.shutdown(wait=True)  # returns after the events were published
    (m,) = drain_messages(sub, 1)
    assert m.topic == "inventory.p.out"
    assert m.data == {"product": "p", "event": "out", "stock": 0, "threshold": None}
    bus.close()


def test_a_full_blocking_subscriber_delays_events_not_operations(make_ims):
    """overflow='block' is the subscriber's choice: event delivery waits for room, but every
    operation still completes, and no event is lost once the subscriber reads again."""
    bus = chanpool.PubSub()
    sub = bus.subscribe("inventory.>", capacity=1, overflow="block")
    ims = make_ims(workers=2, bus=bus)

    def cycles() -> None:
        for _ in range(50):
            ims.add_stock("p", 2).result(timeout=WATCHDOG)
            ims.remove_stock("p", 2).result(timeout=WATCHDOG)

    watchdog(cycles, what="operations while events are blocked")
    s = ims.stats()
    assert s["events_emitted"] == 50 and s["events_pending"] > 0, s
    msgs = watchdog(lambda: drain_messages(sub, 50), what="reading the events")
    assert [m.topic for m in msgs] == ["inventory.p.out"] * 50
    wait_until(events_settled(ims), what="events published")
    assert ims.stats()["events_published"] == 50
    bus.close()


@pytest.mark.parametrize("workers", [1, 4])
def test_a_handler_may_restock_and_wait_for_the_result(make_ims, workers):
    """The seeds' IMS: a subscriber reacts to `low` by restocking and waits for it. Neither the
    single worker nor the publisher may be waiting on the handler meanwhile."""
    bus = chanpool.PubSub()
    ims = make_ims(workers=workers, bus=bus, low_threshold=5)
    restocks: List[int] = []

    def restock(msg: Any) -> None:
        restocks.append(ims.add_stock(msg.data["product"], 100).result(timeout=WATCHDOG))

    bus.subscribe("inventory.*.low", restock)
    lows_seen = bus.subscribe("inventory.*.low", capacity=10_000)
    ims.add_stock("w", 20).result(timeout=WATCHDOG)

    def sell() -> List[Any]:
        fs = [ims.remove_stock("w", 1) for _ in range(600)]
        return [f.exception(timeout=WATCHDOG) for f in fs]

    errors = watchdog(sell, what="selling while a handler restocks")
    sold = sum(e is None for e in errors)
    assert all(isinstance(e, InsufficientStock) for e in errors if e is not None)
    wait_until(events_settled(ims), what="events published")
    assert watchdog(lambda: bus.close(drain=True), what="bus drain") is True
    lows = len(list(lows_seen))  # a pull subscription keeps its messages through close()
    assert lows >= 1 and len(restocks) == lows
    assert ims.check_stock("w").result(timeout=WATCHDOG) == 20 + 100 * lows - sold


def test_event_publish_failures_are_counted_and_logged(make_ims, caplog):
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0
            self.closed = False

        def publish(self, topic: str, data: object) -> int:
            self.calls += 1
            if self.calls % 2:
                raise RuntimeError("boom")
            return 1

    bus = Flaky()
    ims = make_ims(bus=bus)
    for _ in range(4):
        ims.add_stock("p", 1).result(timeout=WATCHDOG)
        ims.remove_stock("p", 1).result(timeout=WATCHDOG)
    with caplog.at_level("ERROR", logger="chanpool"):
        ims.shutdown(wait=True)
        wait_until(events_settled(ims))
    s = books(ims)
    assert (s["events_emitted"], s["events_published"], s["events_failed"]) == (4, 2, 2)
    assert bus.calls == 4


def test_a_closed_bus_drops_events_with_one_warning(make_ims, caplog):
    bus = chanpool.PubSub()
    ims = make_ims(bus=bus)
    bus.close()
    with caplog.at_level("WARNING", logger="chanpool"):
        for _ in range(5):
            ims.add_stock("p", 1).result(timeout=WATCHDOG)
            ims.remove_stock("p", 1).result(timeout=WATCHDOG)
        ims.shutdown(wait=True)
    s = books(ims)
    assert s["events_emitted"] == 5 and s["events_published"] == 0
    assert s["events_failed"] + s["events_dropped"] == 5 and s["events_failed"] >= 1
    warnings = [r for r in caplog.records if "closed" in r.getMessage()]
    assert len(warnings) == 1, caplog.records


def test_reference_cycle_through_the_bus_is_collected():
    """A handler that refers to the manager publishing to it: GC must break the cycle."""
    import gc

    def live() -> int:
        return sum(type(o) is InventoryManager for o in gc.get_objects())

    gc.collect()
    before = live()
    for _ in range(10):
        bus = chanpool.PubSub()
        ims = InventoryManager(bus=bus)
        bus.subscribe("inventory.>", lambda m, ims=ims: ims.stats(), capacity=10)
        ims.add_stock("x", 1).result(timeout=WATCHDOG)
        ims.remove_stock("x", 1).result(timeout=WATCHDOG)
        ims.shutdown()
        del bus, ims
    gc.collect()
    assert live() == before


def test_module_exports():
    import chanpool.inventory as inv

    assert inv.__all__ == ["InsufficientStock", "InventoryManager"]
    assert inv.InventoryManager is chanpool._core.InventoryManager
    assert issubclass(inv.InsufficientStock, ValueError)
