"""Issue 10's publish fast path keeps every behaviour: routes cached by topic object follow
subscribe/unsubscribe (also while other threads publish), bad topics are refused every time,
untracked Messages only for data that cannot be part of a cycle, and a busy subscription still
lets others have the dispatch thread."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
from test_pubsub_support import WATCHDOG, Recorder, blocked_in, wait_until

pytest_plugins = ["test_pubsub_support"]


def test_same_topic_object_follows_subscribe_and_unsubscribe(make_bus):
    bus = make_bus()
    topic = "fp.same"
    equal = "".join(["fp", ".", "same"])  # an equal str, another object
    assert equal == topic and equal is not topic
    subs = []
    for k in range(1, 41):
        subs.append(bus.subscribe("fp.*" if k % 2 else topic, capacity=8, overflow="drop_oldest"))
        assert bus.publish(topic, k) == k
        assert bus.publish(equal, k) == k
    for k in range(40, 0, -1):
        subs.pop().unsubscribe()
        assert bus.publish(topic) == k - 1
        assert bus.publish(equal) == k - 1
    assert bus.stats()["published"] == 160


@pytest.mark.parametrize("bad", ["", "a..b", "a.*", "a.>", ".a", "a b"])
def test_invalid_topic_is_refused_every_time(make_bus, bad):
    bus = make_bus()
    bus.subscribe(">", capacity=10)
    for _ in range(5):
        with pytest.raises(ValueError, match="topic"):
            bus.publish(bad, 1)
    assert bus.stats()["published"] == 0
    assert bus.stats()["pending"] == 0


def test_many_topic_objects_in_turn_each_reach_their_subscriber(make_bus):
    bus = make_bus()
    topics = [f"fp.t{i}" for i in range(50)]  # more topics than the fast path has slots
    subs = [bus.subscribe(t, capacity=100) for t in topics]
    for rnd in range(20):
        for i, t in enumerate(topics):
            assert bus.publish(t, (i, rnd)) == 1
    for i, s in enumerate(subs):
        got = [s.get(timeout=0).data for _ in range(20)]
        assert got == [(i, rnd) for rnd in range(20)]
        assert s.stats()["pending"] == 0


def test_a_subscription_is_seen_by_the_next_publish_while_others_publish(make_bus):
    bus = make_bus()
    topic = "fp.race"
    stop = threading.Event()
    started = threading.Event()
    spins = [0]

    def spinner():
        started.set()
        while not stop.is_set():
            bus.publish(topic, None)
            spins[0] += 1

    t = threading.Thread(target=spinner)
    t.start()
    try:
        assert started.wait(WATCHDOG)
        subs = []
        for k in range(1, 201):
            subs.append(bus.subscribe(topic, capacity=64, overflow="drop_oldest"))
            # This thread's own subscribe comes before its publish: all k must get it.
            assert bus.publish(topic, "mine") == k
            if k % 50 == 0:
                for s in subs[: k // 2]:
                    s.unsubscribe()
                subs = subs[k // 2 :]
                # Unsubscribes are seen at once too.
                assert bus.publish(topic, "mine") == len(subs)
                for _ in range(k // 2):
                    subs.append(bus.subscribe(topic, capacity=64, overflow="drop_oldest"))
    finally:
        stop.set()
        t.join(WATCHDOG)
    assert not t.is_alive() and spins[0] > 0


class Box:
    pass


@pytest.mark.parametrize("data", [7, 10**30, 1.5, "text", b"bytes", None, True])
def test_a_message_with_atomic_data_is_not_tracked_by_the_collector(make_bus, data):
    bus = make_bus()
    sub = bus.subscribe("fp.gc", capacity=10)
    bus.publish("fp.gc", data)
    m = sub.get(timeout=0)
    assert m.data == data and m.topic == "fp.gc"
    assert not gc.is_tracked(m)


class Text(str):
    pass


@pytest.mark.parametrize(
    "make", [list, dict, Box, lambda: Text("t"), lambda: (Box(),)], ids=lambda f: repr(f)
)
def test_a_message_whose_data_can_hold_references_is_tracked(make_bus, make):
    bus = make_bus()
    sub = bus.subscribe("fp.gc", capacity=10)
    bus.publish("fp.gc", make())
    assert gc.is_tracked(sub.get(timeout=0))


def test_a_cycle_through_a_message_and_its_data_is_collected(make_bus):
    bus = make_bus()
    sub = bus.subscribe("fp.gc", capacity=1000)
    refs = []
    for _ in range(200):
        box = Box()
        bus.publish("fp.gc", box)
        box.message = sub.get(timeout=0)  # box -> message -> box
        refs.append(weakref.ref(box))
        del box
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_a_busy_subscription_still_lets_another_have_the_only_thread(make_bus, gates):
    """max_workers=1: a subscription with thousands queued hands the thread over every turn
    when another one waits, even though turns no longer end when nobody waits."""
    for _ in range(5):
        bus = make_bus(max_workers=1)
        order = []
        gate = gates()
        first = Recorder(gate=gate, gate_on=-1)
        busy = bus.subscribe(
            "fp.busy", lambda m, f=first, o=order: (f(m), o.append("busy")), capacity=10**5
        )
        other = bus.subscribe("fp.other", lambda m, o=order: o.append("other"), capacity=100)
        bus.publish("fp.busy", -1)
        first.wait_entered()  # the only dispatch thread is held at the gate
        for i in range(3000):
            bus.publish("fp.busy", i)
        for i in range(10):
            bus.publish("fp.other", i)
        gate.set()
        wait_until(
            lambda b=busy, o=other: b.stats()["delivered"] == 3001 and o.stats()["delivered"] == 10
        )
        assert order.count("busy") == 3001 and order.count("other") == 10
        last_other = len(order) - 1 - order[::-1].index("other")
        # The other subscription ran after at most a couple of turns of the busy one.
        assert last_other < 1000, last_other
        bus.close()


@pytest.mark.parametrize("round_", range(10))
def test_publishers_blocked_on_a_full_queue_are_all_woken_when_it_has_room(make_bus, round_):
    """A full "block" queue wakes its blocked publishers once, when the first message is taken
    (not once per message): every one of several publishers blocked at the same time goes on,
    nothing is lost and each publisher's messages keep their order."""
    bus = make_bus()
    gate = threading.Event()
    seen = []

    def handler(m):
        gate.wait(WATCHDOG)
        seen.append(m.data)

    cap, publishers, each = 2, 4, 5
    sub = bus.subscribe("fp.block", handler, capacity=cap)
    sent = [0] * publishers

    def publish(k):
        for i in range(each):
            assert bus.publish("fp.block", (k, i)) == 1
            sent[k] += 1

    threads = [threading.Thread(target=publish, args=(k,), daemon=True) for k in range(publishers)]
    for t in threads:
        t.start()
    # One message in the gated handler, `cap` queued: every publisher waits in its publish call.
    wait_until(
        lambda: sum(sent) == cap + 1 and all(blocked_in(t, publish.__code__) for t in threads),
        what="every publisher blocked",
    )
    gate.set()
    for t in threads:
        t.join(WATCHDOG)
        assert not t.is_alive()
    assert sent == [each] * publishers
    assert bus.close(drain=True) is True
    assert sorted(seen) == [(k, i) for k in range(publishers) for i in range(each)]
    for k in range(publishers):
        assert [i for (p, i) in seen if p == k] == list(range(each))
    st = sub.stats()
    assert (st["delivered"], st["dropped"], st["pending"]) == (publishers * each, 0, 0)


@pytest.mark.parametrize("round_", range(10))
def test_pull_readers_blocked_at_once_each_get_one_message(make_bus, round_):
    """The push that makes a pull queue non-empty wakes one reader, and a reader that leaves
    messages behind wakes the next: readers all waiting in get() each get exactly one."""
    bus = make_bus()
    sub = bus.subscribe("fp.pull", capacity=16)
    readers = 4
    got = [None] * readers

    def read(k):
        got[k] = sub.get(timeout=WATCHDOG).data

    threads = [threading.Thread(target=read, args=(k,), daemon=True) for k in range(readers)]
    for t in threads:
        t.start()
    wait_until(lambda: all(blocked_in(t, read.__code__) for t in threads), what="readers wait")
    for i in range(readers):
        assert bus.publish("fp.pull", i) == 1
    for t in threads:
        t.join(WATCHDOG)
        assert not t.is_alive()
    assert sorted(got) == list(range(readers))
    st = sub.stats()
    assert (st["delivered"], st["pending"]) == (readers, 0)
