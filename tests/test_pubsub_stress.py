"""chanpool.PubSub under stress: many publisher threads, subscribe/unsubscribe churn, close()
racing the publishers, every overflow policy. The books must balance exactly: each
subscription's delivered + dropped + errors equals what reached it."""

from __future__ import annotations

import collections
import itertools
import random
import threading

import chanpool
from test_pubsub_support import WATCHDOG, watchdog

pytest_plugins = ["test_pubsub_support"]

POLICIES = ["block", "drop_oldest", "drop_newest", "error"]
PER_PUBLISHER = 5000


class Counting:
    """A handler that counts its calls and fails on every 7th message."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.failed = 0

    def __call__(self, msg) -> None:
        with self.lock:
            self.calls += 1
        if msg.data % 7 == 0:
            raise ValueError(msg.data)

    def on_error(self, exc, msg) -> None:
        with self.lock:
            self.failed += 1


def one_round(seed: int) -> tuple[bool, int]:
    rng = random.Random(seed)
    bus = chanpool.PubSub()
    # The oldest subscription, so first in delivery order: often full, and a publish that finds
    # it full must still reach every other subscription before it raises.
    early_h = Counting()
    early = bus.subscribe(
        "perm.*", early_h, capacity=2, overflow="error", on_error=early_h.on_error
    )
    perm = {}
    for p in POLICIES:
        h = Counting()
        perm[p] = (bus.subscribe(f"perm.{p}", h, capacity=4, overflow=p, on_error=h.on_error), h)
    churned: list = []
    stop = threading.Event()
    half = threading.Event()
    accepted = collections.Counter()
    acc_lock = threading.Lock()
    total = itertools.count()

    def churn(seed: int) -> None:
        r = random.Random(seed)
        live = []
        while not stop.is_set():
            h = Counting()
            try:
                s = bus.subscribe(
                    r.choice(["perm.*", ">", "perm.block", "perm.error"]),
                    h,
                    capacity=r.choice([1, 2, 8]),
                    overflow=r.choice(POLICIES),
                    group=r.choice([None, None, "g1", "g2"]),
                    workers=r.choice([1, 2]),
                    on_error=h.on_error,
                )
            except RuntimeError:
                return  # the bus closed
            churned.append((s, h))
            live.append(s)
            if len(live) > 3:
                live.pop(r.randrange(len(live))).unsubscribe()
            stop.wait(0.0005)  # pacing only: a few thousand subscriptions per round

    def publisher(k: int) -> None:
        mine = collections.Counter()
        try:
            for i in range(PER_PUBLISHER):
                p = POLICIES[(i + k) % 4]
                try:
                    bus.publish(f"perm.{p}", i)
                except chanpool.QueueFull:
                    pass  # delivered to the others; counted as dropped where full
                mine[p] += 1
                if next(total) == PER_PUBLISHER:
                    half.set()
        except RuntimeError:
            pass  # closed: this publish was refused before anything was queued
        finally:
            with acc_lock:
                accepted.update(mine)

    churners = [threading.Thread(target=churn, args=(rng.random(),)) for _ in range(2)]
    pubs = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for t in churners + pubs:
        t.start()
    assert half.wait(WATCHDOG)
    # close() races the publishers that are still going.
    assert watchdog(lambda: bus.close(drain=True)) is True
    for t in pubs:
        t.join(WATCHDOG)
    stop.set()
    for t in churners:
        t.join(WATCHDOG)
    assert not any(t.is_alive() for t in churners + pubs)

    for p, (sub, h) in perm.items():
        st = sub.stats()
        assert st["pending"] == 0, (p, st)
        assert st["delivered"] + st["dropped"] + st["errors"] == accepted[p], (p, st, accepted)
        assert h.calls == st["delivered"] + st["errors"], (p, st, h.calls)
        assert h.failed == st["errors"], (p, st, h.failed)
    st = early.stats()
    assert st["delivered"] + st["dropped"] + st["errors"] == sum(accepted.values()), st
    assert st["dropped"] > 0, "the early subscription was never full"
    assert early_h.calls == st["delivered"] + st["errors"], st
    subs = [early] + [s for s, _ in perm.values()] + [s for s, _ in churned]
    for s, h in churned:
        st = s.stats()
        assert st["pending"] == 0 and not st["active"], st
        assert h.calls == st["delivered"] + st["errors"], st
        assert h.failed == st["errors"], st
    raced = sum(accepted.values()) < 4 * PER_PUBLISHER
    b = bus.stats()
    assert b["delivered"] == sum(s.stats()["delivered"] for s in subs)
    assert b["errors"] == sum(s.stats()["errors"] for s in subs)
    assert b["dropped"] + b["discarded"] == sum(s.stats()["dropped"] for s in subs)
    assert b["pending"] == 0 and b["subscriptions"] == 0
    return raced, len(churned)


def test_stress_publishers_churn_close_and_every_overflow_policy():
    results = [one_round(seed) for seed in range(10)]
    assert sum(raced for raced, _ in results) >= 5, f"close() rarely raced publishers: {results}"
    assert all(n >= 10 for _, n in results), f"too little churn: {results}"
