"""chanpool.PubSub: API surface, validation, wildcard routing, exact counts, pull subscriptions,
lifecycle (unsubscribe, close) and stats."""

from __future__ import annotations

import queue
import threading
import time

import chanpool
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pubsub_support import (
    BUS_STATS_KEYS,
    SUB_STATS_KEYS,
    WATCHDOG,
    Recorder,
    matches,
    wait_until,
    watchdog,
)

# The fixtures (make_bus, gates) live there too.
pytest_plugins = ["test_pubsub_support"]

# ------------------------------------------------------------------------------------ surface


def test_exports_and_exception_types():
    assert issubclass(chanpool.QueueFull, queue.Full)
    assert issubclass(chanpool.Closed, Exception)
    assert not issubclass(chanpool.Closed, queue.Empty)
    for name in ("PubSub", "Subscription", "Message", "Closed", "QueueFull"):
        assert name in chanpool.__all__
        assert hasattr(chanpool, name)


def test_stats_keys_and_initial_values(make_bus):
    bus = make_bus()
    s = bus.stats()
    assert set(s) == BUS_STATS_KEYS
    assert s == {k: 0 for k in BUS_STATS_KEYS}, "dispatch threads start on demand"
    sub = bus.subscribe("a")
    assert set(sub.stats()) == SUB_STATS_KEYS
    assert sub.stats() == {"delivered": 0, "dropped": 0, "pending": 0, "errors": 0, "active": True}
    assert bus.stats()["subscriptions"] == 1
    assert bus.stats()["workers"] == 0, "a pull subscription needs no dispatch thread"


def test_subscription_properties(make_bus):
    bus = make_bus()
    a = bus.subscribe("orders.*", lambda m: None)
    b = bus.subscribe("orders.>", group="workers")
    assert isinstance(a, chanpool.Subscription)
    assert (a.pattern, a.group, a.active) == ("orders.*", None, True)
    assert (b.pattern, b.group, b.active) == ("orders.>", "workers", True)
    a.unsubscribe()
    assert not a.active and b.active
    a.unsubscribe()  # idempotent
    assert not a.active
    assert bus.stats()["subscriptions"] == 1


def test_max_workers_validation():
    with pytest.raises(ValueError):
        chanpool.PubSub(max_workers=0)
    with pytest.raises(ValueError):
        chanpool.PubSub(max_workers=-3)
    with pytest.raises(TypeError):
        chanpool.PubSub(4)  # keyword-only


# --------------------------------------------------------------------------------- validation

BAD_PATTERNS = [
    "",
    ".",
    "..",
    "a.",
    ".a",
    "a..b",
    "a b",
    " a",
    "a ",
    "a\tb",
    "a\nb",
    "a.>.b",
    ">.a",
    "a..>",
    "a.>.>",
]

BAD_TOPICS = [
    "",
    ".",
    "a.",
    ".a",
    "a..b",
    "a b",
    "a\tb",
    "*",
    ">",
    "a.*",
    "a.>",
    "*.a",
]

# Wildcard characters inside a token are plain characters (NATS): valid as patterns and topics.
LITERAL_TOKENS = ["a*", "*a", "a.b*", "a.*b", "a>", ">a", "a.>>", ">>", "**", "a.b>", "x*y"]


@pytest.mark.parametrize("literal", LITERAL_TOKENS)
def test_wildcard_characters_inside_tokens_are_literal(make_bus, literal):
    bus = make_bus()
    sub = bus.subscribe(literal)
    assert bus.publish(literal, 1) == 1
    assert sub.get(timeout=0).data == 1


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_invalid_pattern_is_value_error(make_bus, pattern):
    bus = make_bus()
    with pytest.raises(ValueError):
        bus.subscribe(pattern)
    with pytest.raises(ValueError):
        bus.subscribe(pattern, lambda m: None)
    assert bus.stats()["subscriptions"] == 0, "a refused subscribe must not register anything"


@pytest.mark.parametrize("topic", BAD_TOPICS)
def test_invalid_topic_is_value_error(make_bus, topic):
    bus = make_bus()
    catch_all = bus.subscribe(">")
    with pytest.raises(ValueError):
        bus.publish(topic, 1)
    assert catch_all.stats()["pending"] == 0


@pytest.mark.parametrize("pattern", ["a", "*", ">", "a.*", "a.>", "*.*", "*.b.>", "a.*.c", "ü.x"])
def test_valid_patterns_are_accepted(make_bus, pattern):
    assert make_bus().subscribe(pattern).pattern == pattern


def test_wrong_argument_types(make_bus):
    bus = make_bus()
    with pytest.raises(TypeError):
        bus.publish(None)
    with pytest.raises(TypeError):
        bus.publish(3, "x")
    with pytest.raises(TypeError):
        bus.subscribe(None)


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"overflow": "nope"}, ValueError),
        ({"overflow": ""}, ValueError),
        ({"overflow": "drop"}, ValueError),
        ({"capacity": 0}, ValueError),
        ({"capacity": -1}, ValueError),
        ({"workers": 0}, ValueError),
        ({"workers": -2}, ValueError),
        ({"handler": 42}, TypeError),
        ({"handler": "print"}, TypeError),
        ({"handler": lambda m: None, "on_error": 1}, TypeError),
        ({"handler": lambda m: None, "on_error": "x"}, TypeError),
    ],
)
def test_invalid_subscribe_options(make_bus, kwargs, exc):
    bus = make_bus()
    handler = kwargs.pop("handler", lambda m: None)
    with pytest.raises(exc):
        bus.subscribe("a.b", handler, **kwargs)
    assert bus.stats()["subscriptions"] == 0


@pytest.mark.parametrize("overflow", ["block", "drop_oldest", "drop_newest", "error"])
def test_every_overflow_policy_is_accepted(make_bus, overflow):
    bus = make_bus()
    sub = bus.subscribe("a", capacity=1, overflow=overflow)
    assert bus.publish("a", 1) == 1
    assert sub.get(timeout=WATCHDOG).data == 1


# ---------------------------------------------------------------------------------- wildcards

MATCH_TABLE = [
    ("a", "a", True),
    ("a", "b", False),
    ("a", "a.b", False),
    ("a", "A", False),
    ("a.b", "a", False),
    ("a.b", "a.b", True),
    ("a.b", "a.c", False),
    ("a.b", "a.b.c", False),
    ("a.b", "b.a", False),
    ("a.*", "a.b", True),
    ("a.*", "a.xyz", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("a.*", "b.a", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.b", "a.b", True),
    ("*.b", "x.b", True),
    ("*.b", "a.c", False),
    ("*.b", "b", False),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
    ("*.*", "a.b.c", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.b.d", False),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a.b.b.c", False),
    ("a.>", "a", False),  # '>' needs at least one token
    ("a.>", "a.b", True),
    ("a.>", "a.b.c.d.e", True),
    ("a.>", "b.c", False),
    ("a.>", "ab.c", False),
    (">", "a", True),
    (">", "a.b.c", True),
    ("*.>", "a", False),
    ("*.>", "a.b", True),
    ("*.>", "a.b.c", True),
    ("*.b.>", "a.b.c", True),
    ("*.b.>", "a.b", False),
    ("*.b.>", "a.c.d", False),
    ("a.b.>", "a.b", False),
    ("a.b.>", "a.b.c", True),
    ("a.*.>", "a.b", False),
    ("a.*.>", "a.b.c", True),
    ("orders.eu-1.created", "orders.eu-1.created", True),
    ("orders.eu_1.*", "orders.eu_1.x", True),
    ("orders.eu_1.*", "orders.eu-1.x", False),
    ("_errors.>", "_errors.orders.new", True),
    ("ü.*", "ü.x", True),
    ("ü.*", "u.x", False),
    ("1.2", "1.2", True),
]


@pytest.mark.parametrize("pattern, topic, expected", MATCH_TABLE)
def test_wildcard_matching_table(make_bus, pattern, topic, expected):
    assert matches(pattern, topic) == expected, "reference matcher disagrees with the table"
    bus = make_bus()
    sub = bus.subscribe(pattern)
    assert bus.publish(topic, "x") == int(expected)
    if expected:
        m = sub.get(timeout=WATCHDOG)
        assert (m.topic, m.data) == (topic, "x")
    with pytest.raises(queue.Empty):
        sub.get(timeout=0)


def test_many_patterns_on_one_bus_route_like_the_reference(make_bus):
    """Patterns sharing prefixes in one topic tree: every publish reaches exactly the matching
    subscriptions, each exactly once, in publish order."""
    patterns = sorted({p for p, _, _ in MATCH_TABLE})
    topics = sorted({t for _, t, _ in MATCH_TABLE})
    bus = make_bus()
    subs = {p: bus.subscribe(p, capacity=10_000) for p in patterns}
    dup = bus.subscribe("a.*", capacity=10_000)  # a second subscription on the same pattern
    expected = {p: [] for p in patterns}
    for rnd in range(3):
        for t in topics:
            want = [p for p in patterns if matches(p, t)]
            n = bus.publish(t, (rnd, t))
            assert n == len(want) + matches("a.*", t), (t, want)
            for p in want:
                expected[p].append((rnd, t))
    for p, sub in subs.items():
        got = []
        while True:
            try:
                got.append(sub.get(timeout=0).data)
            except queue.Empty:
                break
        assert got == expected[p], p
    dup_got = [dup.get(timeout=0).data for _ in range(len(expected["a.*"]))]
    assert dup_got == expected["a.*"]
    assert bus.stats()["published"] == 3 * len(topics)


TOKENS = st.sampled_from(["a", "b", "c"])
PATTERN_TOKENS = st.sampled_from(["a", "b", "c", "*"])


@st.composite
def patterns(draw):
    toks = draw(st.lists(PATTERN_TOKENS, min_size=0, max_size=3))
    if draw(st.booleans()) or not toks:
        toks.append(">")
    return ".".join(toks)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pats=st.lists(patterns(), min_size=1, max_size=6),
    topics=st.lists(st.lists(TOKENS, min_size=1, max_size=4).map(".".join), max_size=12),
    unsub=st.sets(st.integers(0, 5)),
)
def test_routing_property_against_reference(pats, topics, unsub):
    bus = chanpool.PubSub()
    try:
        subs = [bus.subscribe(p, capacity=100) for p in pats]
        for i in unsub:
            if i < len(subs):
                subs[i].unsubscribe()
        live = [i for i in range(len(subs)) if i not in unsub]
        for t in topics:
            want = [i for i in live if matches(pats[i], t)]
            assert bus.publish(t, t) == len(want), (pats, t)
        for i in live:
            expect = [t for t in topics if matches(pats[i], t)]
            got = [subs[i].get(timeout=0).data for _ in expect]
            assert got == expect
            with pytest.raises(queue.Empty):
                subs[i].get(timeout=0)
    finally:
        bus.close(drain=False)


# ----------------------------------------------------------------------------- exact delivery


def test_exact_delivery_counts_for_several_subscribers(make_bus):
    bus = make_bus()
    recs = {p: Recorder() for p in ("orders.*", "orders.>", "orders.eu.*", ">")}
    subs = {p: bus.subscribe(p, r) for p, r in recs.items()}
    pull = bus.subscribe("*.eu.new", capacity=1000)
    topics = ["orders.new", "orders.eu.new", "orders.eu.old", "users.new", "orders.us.new"]
    expected = {p: 0 for p in recs}
    pull_expected = 0
    for i in range(100):
        t = topics[i % len(topics)]
        want = [p for p in recs if matches(p, t)]
        n = bus.publish(t, i)
        assert n == len(want) + matches("*.eu.new", t)
        for p in want:
            expected[p] += 1
        pull_expected += matches("*.eu.new", t)
    for p, r in recs.items():
        r.wait_count(expected[p])
    assert watchdog(lambda: bus.close(drain=True)) is True
    for p, r in recs.items():
        assert len(r) == expected[p], p
        assert subs[p].stats()["delivered"] == expected[p]
        # each handler saw its messages in publish order
        assert r.data == sorted(r.data)
    assert [m.data for m in pull] == [i for i in range(100) if topics[i % 5] == "orders.eu.new"]
    assert pull_expected == 20
    assert expected == {"orders.*": 20, "orders.>": 80, "orders.eu.*": 40, ">": 100}


def test_publish_with_no_subscribers_returns_zero_and_counts(make_bus):
    bus = make_bus()
    assert bus.publish("nobody.home") == 0
    assert bus.publish("nobody.home", {"x": 1}) == 0
    assert bus.stats()["published"] == 2
    assert bus.stats()["delivered"] == 0


def test_message_attributes(make_bus):
    bus = make_bus()
    r1, r2 = Recorder(), Recorder()
    bus.subscribe("m.*", r1)
    bus.subscribe("m.>", r2)
    payload = {"k": [1, 2, 3]}
    t0 = time.time()
    assert bus.publish("m.one", payload) == 2
    assert bus.publish("nowhere") == 0
    assert bus.publish("m.two") == 2
    t1 = time.time()
    r1.wait_count(2)
    r2.wait_count(2)
    a, b = r1.messages
    assert isinstance(a, chanpool.Message)
    assert (a.topic, b.topic) == ("m.one", "m.two")
    assert a.data is payload, "data is passed by reference, not copied"
    assert b.data is None, "data defaults to None"
    assert a.seq < b.seq, "seq increases with every publish on the bus"
    assert [m.seq for m in r2.messages] == [a.seq, b.seq], "one message, one seq for everyone"
    assert t0 - 1e-3 <= a.timestamp <= b.timestamp <= t1 + 1e-3
    with pytest.raises(AttributeError):
        a.topic = "x"


def test_seq_is_unique_and_increasing_across_threads(make_bus):
    bus = make_bus()
    pull = bus.subscribe(">", capacity=100_000)

    def producer(k):
        for i in range(500):
            bus.publish(f"t.{k}", i)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WATCHDOG)
    msgs = [pull.get(timeout=0) for _ in range(2000)]
    seqs = [m.seq for m in msgs]
    assert len(set(seqs)) == 2000
    for k in range(4):
        mine = [m for m in msgs if m.topic == f"t.{k}"]
        assert [m.data for m in mine] == list(range(500))
        assert [m.seq for m in mine] == sorted(m.seq for m in mine)


# ---------------------------------------------------------------------------- pull subscriptions


def test_pull_get_timeout_and_order(make_bus):
    bus = make_bus()
    sub = bus.subscribe("p.*")
    with pytest.raises(queue.Empty):
        sub.get(timeout=0)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        sub.get(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    for i in range(10):
        assert bus.publish(f"p.{i % 3}", i) == 1
    assert sub.stats()["pending"] == 10
    assert [sub.get(timeout=0).data for _ in range(10)] == list(range(10))
    assert sub.stats()["pending"] == 0
    assert sub.stats()["delivered"] == 10


def test_get_on_push_subscription_is_type_error(make_bus):
    sub = make_bus().subscribe("a", lambda m: None)
    with pytest.raises(TypeError):
        sub.get(timeout=0)
    with pytest.raises(TypeError):
        sub.get()


def test_pull_blocked_get_wakes_on_publish(make_bus):
    bus = make_bus()
    sub = bus.subscribe("w")
    box = {}
    started = threading.Event()

    def reader():
        started.set()
        box["m"] = sub.get(timeout=WATCHDOG)

    t = threading.Thread(target=reader)
    t.start()
    started.wait()
    bus.publish("w", "hello")
    t.join(WATCHDOG)
    assert box["m"].data == "hello"


def test_unsubscribe_discards_queued_and_ends_pull(make_bus):
    bus = make_bus()
    sub = bus.subscribe("u")
    for i in range(5):
        bus.publish("u", i)
    sub.unsubscribe()
    assert sub.stats() == {"delivered": 0, "dropped": 5, "pending": 0, "errors": 0, "active": False}
    with pytest.raises(chanpool.Closed):
        sub.get(timeout=1)
    with pytest.raises(chanpool.Closed):
        sub.get()
    assert list(sub) == []
    assert bus.publish("u", 99) == 0


def test_get_with_zero_timeout_on_ended_subscription_raises_closed(make_bus):
    """An ended, empty subscription must say so (Closed) whatever the timeout: get(timeout=0)
    currently raises queue.Empty, so a polling reader never learns it is finished."""
    bus = make_bus()
    sub = bus.subscribe("u")
    sub.unsubscribe()
    with pytest.raises(chanpool.Closed):
        sub.get(timeout=0)


def test_blocked_get_wakes_with_closed_on_unsubscribe_and_close(make_bus):
    for end in ("unsubscribe", "close"):
        bus = make_bus()
        sub = bus.subscribe("w")
        box = {}

        def reader(sub=sub, box=box):
            try:
                sub.get()
            except BaseException as e:
                box["e"] = e

        t = threading.Thread(target=reader)
        t.start()
        wait_until(lambda t=t: t.ident is not None)
        if end == "unsubscribe":
            sub.unsubscribe()
        else:
            bus.close()
        t.join(WATCHDOG)
        assert not t.is_alive(), end
        assert isinstance(box.get("e"), chanpool.Closed), (end, box)


def test_pull_after_close_drain_reads_rest_then_ends(make_bus):
    bus = make_bus()
    sub = bus.subscribe("d.>")
    for i in range(7):
        bus.publish("d.x", i)
    assert bus.close(drain=True) is True
    assert not sub.active
    assert [m.data for m in sub] == list(range(7))
    with pytest.raises(chanpool.Closed):
        sub.get(timeout=0.01)
    assert list(sub) == []
    assert bus.stats()["discarded"] == 0


def test_pull_after_close_without_drain_is_discarded(make_bus):
    bus = make_bus()
    sub = bus.subscribe("d.>")
    for i in range(7):
        bus.publish("d.x", i)
    assert bus.close(drain=False) is True
    assert list(sub) == []
    assert bus.stats()["discarded"] == 7


def test_iterating_push_subscription_is_type_error(make_bus):
    sub = make_bus().subscribe("a", lambda m: None)
    with pytest.raises(TypeError):
        iter(sub)


def test_subscription_context_manager_unsubscribes(make_bus):
    bus = make_bus()
    r = Recorder()
    with bus.subscribe("c", r) as sub:
        assert sub.active
        assert bus.publish("c", 1) == 1
        r.wait_count(1)
    assert not sub.active
    assert bus.publish("c", 2) == 0
    assert r.data == [1]


# -------------------------------------------------------------------------------- bus lifecycle


def test_close_is_idempotent_and_blocks_publish_and_subscribe(make_bus):
    bus = make_bus()
    sub = bus.subscribe("a", lambda m: None)
    assert not bus.closed
    assert bus.close() is True
    assert bus.closed
    assert not sub.active
    assert bus.close() is True
    assert bus.close(drain=False) is True
    with pytest.raises(RuntimeError):
        bus.publish("a", 1)
    with pytest.raises(RuntimeError):
        bus.subscribe("a")
    with pytest.raises(RuntimeError):
        bus.subscribe("a", lambda m: None)


def test_context_manager_drains_on_exit():
    r = Recorder()
    with chanpool.PubSub() as bus:
        assert bus.__enter__() is bus
        sub = bus.subscribe("x", r, capacity=16)
        for i in range(500):
            bus.publish("x", i)
    assert bus.closed
    assert r.data == list(range(500)), "exit drains before returning"
    assert sub.stats()["delivered"] == 500


def test_context_manager_does_not_swallow_exceptions():
    with pytest.raises(KeyError):
        with chanpool.PubSub() as bus:
            raise KeyError("x")
    assert bus.closed


def test_repr_does_not_crash(make_bus):
    bus = make_bus()
    sub = bus.subscribe("a.*", group="g")
    assert "PubSub" in repr(bus)
    assert "a.*" in repr(sub)
    bus.publish("a.b", [1])
    assert "a.b" in repr(sub.get(timeout=0))


def test_workers_started_on_demand_and_bounded(make_bus, gates):
    """max_workers bounds the dispatch threads, hence concurrent handlers, whatever a
    subscription's `workers` says."""
    gate = gates()
    bus = make_bus(max_workers=2)
    r = Recorder(gate=gate)
    sub = bus.subscribe("x", r, workers=8)
    assert bus.stats()["workers"] == 0
    # One at a time, so that each publish finds the earlier handlers parked at the gate.
    bus.publish("x", 0)
    r.wait_count(1)
    bus.publish("x", 1)
    r.wait_count(2)
    for i in range(2, 6):
        bus.publish("x", i)
    assert bus.stats()["workers"] == 2
    gate.set()
    r.wait_count(6)
    assert watchdog(bus.close) is True
    assert r.max_inflight == 2
    assert sorted(r.data) == list(range(6))
    assert sub.stats()["delivered"] == 6


def test_bus_stats_totals_survive_unsubscribe_and_close(make_bus):
    """Bus-level counters should be totals like `published` and `discarded`: today `delivered`,
    `dropped` and `errors` only sum the subscriptions still registered, so they fall back to 0
    after unsubscribe()/close() (after `with PubSub() as bus:` stats() reports delivered=0)."""
    bus = make_bus()
    r = Recorder()
    sub = bus.subscribe("x", r)
    pull = bus.subscribe("y")
    for i in range(10):
        bus.publish("x", i)
    bus.publish("y", 0)
    pull.unsubscribe()  # one queued message dropped
    r.wait_count(10)
    assert bus.close(drain=True) is True
    assert sub.stats()["delivered"] == 10
    s = bus.stats()
    assert (s["published"], s["delivered"], s["dropped"]) == (11, 10, 1), s
