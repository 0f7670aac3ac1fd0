"""chanpool.Cache, SingleFlight and @cached: exact load counts under contention, identical
objects for every waiter, errors not cached, LRU and TTL, stats, GC, bad arguments."""

import gc
import random
import threading
import time
import weakref
from collections import Counter

import chanpool
import pytest
from chanpool import Cache, SingleFlight, cached
from helpers import watchdog


class Clock:
    """A clock the test moves by hand (TTL without sleeping)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def hammer(cache, keys, threads=8, loader=None):
    """Every thread gets every key (shuffled), all starting together; returns what each got."""
    start = threading.Barrier(threads)
    got = [dict() for _ in range(threads)]

    def run(i):
        order = list(keys)
        random.Random(i).shuffle(order)
        start.wait()
        for k in order:
            got[i][k] = cache.get(k, loader) if loader else cache.get(k)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return got


def slow_counting_loader(counts, lock, pause=0.0005):
    def load(k):
        with lock:
            counts[k] += 1
        time.sleep(pause)  # makes loads overlap; the counts below do not depend on it
        return [k]  # a fresh object per load: waiters must all get the same one

    return load


@pytest.mark.parametrize("maxsize", [None, 1000])
def test_each_key_loads_once_and_every_waiter_gets_the_same_object(maxsize):
    for _ in range(10):
        counts, lock = Counter(), threading.Lock()
        c = Cache(slow_counting_loader(counts, lock), maxsize=maxsize)
        got = watchdog(lambda: hammer(c, range(100)))  # noqa: B023 (used within the iteration)
        assert counts == Counter({k: 1 for k in range(100)})
        for k in range(100):
            assert all(g[k] is got[0][k] for g in got), k
            assert got[0][k] == [k]
        s = c.stats()
        assert s["loads"] == 100 and s["size"] == 100 and s["evictions"] == 0
        assert s["hits"] + s["misses"] == 800
        assert s["misses"] >= s["loads"] + s["coalesced"]


def test_ttl_reloads_each_key_once_per_expiry():
    clock = Clock()
    counts, lock = Counter(), threading.Lock()
    c = Cache(slow_counting_loader(counts, lock), ttl=10, clock=clock)
    for rnd in range(1, 6):
        watchdog(lambda: hammer(c, range(100)))
        assert counts == Counter({k: rnd for k in range(100)}), rnd
        clock.t += 9.5  # still fresh
        watchdog(lambda: hammer(c, range(100)))
        assert counts == Counter({k: rnd for k in range(100)}), rnd
        clock.t += 0.5  # now expired
    assert c.stats()["expired"] == 400
    assert c.ttl == 10


def test_a_failing_load_reaches_every_waiter_and_is_retried():
    for _ in range(20):
        release = threading.Event()
        calls = []

        def failing(k):
            calls.append(k)  # noqa: B023 (used within the iteration)
            release.wait(10)  # noqa: B023 (used within the iteration)
            raise ValueError(f"boom {len(calls)}")  # noqa: B023 (used within the iteration)

        c = Cache(failing)
        errors = []

        def waiter():
            try:
                c.get("k")  # noqa: B023 (used within the iteration)
            except ValueError as e:
                errors.append(e)  # noqa: B023 (used within the iteration)

        ts = [threading.Thread(target=waiter) for _ in range(6)]
        for t in ts:
            t.start()
        deadline = time.monotonic() + 10
        while c.stats()["coalesced"] < 5 and time.monotonic() < deadline:
            time.sleep(0.001)
        release.set()
        for t in ts:
            t.join()
        assert len(calls) == 1
        assert len(errors) == 6 and all(e is errors[0] for e in errors)
        assert "k" not in c and len(c) == 0
        assert c.get("k", lambda k: "fine") == "fine"
        assert c.get("k") == "fine"
        assert c.stats()["loads"] == 2


def test_a_base_exception_abandons_the_load_and_a_waiter_retries():
    started, release = threading.Event(), threading.Event()
    c = Cache()
    out = []

    def interrupted_load(k):
        started.set()
        release.wait(10)
        raise KeyboardInterrupt

    def leader():
        try:
            c.get("k", interrupted_load)
        except KeyboardInterrupt:
            out.append("interrupted")

    t = threading.Thread(target=leader)
    t.start()
    started.wait(10)
    w = threading.Thread(target=lambda: out.append(c.get("k", lambda k: "second")))
    w.start()
    while c.stats()["coalesced"] < 1:
        time.sleep(0.001)
    release.set()
    t.join()
    w.join()
    assert sorted(out) == ["interrupted", "second"]
    assert c.peek("k") == "second"
    assert c.stats()["loads"] == 2


def test_a_waiter_times_out_and_the_load_goes_on():
    release = threading.Event()
    c = Cache(lambda k: release.wait(10) and "v")
    t = threading.Thread(target=c.get, args=("k",))
    t.start()
    while "k" not in c and c.stats()["loads"] < 1:
        time.sleep(0.001)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.get("k", timeout=0.05)
    assert time.monotonic() - t0 < 5
    release.set()
    t.join()
    assert c.get("k", timeout=0) == "v"
    assert c.stats()["loads"] == 1


def test_lru_eviction_order_and_counts():
    c = Cache(lambda k: k * 10, maxsize=3)
    for k in (1, 2, 3):
        c.get(k)
    c.get(1)  # 2 is now the least recently used
    c.get(4)
    assert 2 not in c and all(k in c for k in (1, 3, 4))
    c.put(5, 50)  # evicts 3
    assert 3 not in c and c.peek(5) == 50
    assert c.stats()["evictions"] == 2 and len(c) == 3
    c.put(1, 11)  # replaces, no eviction
    assert c.peek(1) == 11 and c.stats()["evictions"] == 2 and len(c) == 3
    assert c.invalidate(1) and not c.invalidate(1)
    assert len(c) == 2
    c.clear()
    assert len(c) == 0 and c.stats()["size"] == 0


def test_lru_matches_a_reference_under_random_operations():
    from collections import OrderedDict

    c = Cache(lambda k: -k, maxsize=16)
    model: OrderedDict = OrderedDict()
    rnd = random.Random(7)
    for _ in range(20_000):
        k = rnd.randrange(40)
        op = rnd.randrange(4)
        if op < 2:
            assert c.get(k) == -k
            if k in model:
                model.move_to_end(k)
            model[k] = -k
        elif op == 2:
            assert c.invalidate(k) == (model.pop(k, None) is not None)
        else:
            c.put(k, -k)
            model[k] = -k
            model.move_to_end(k)
        while len(model) > 16:
            model.popitem(last=False)
        assert len(c) == len(model)
    assert all(k in c for k in model)


def test_maxsize_zero_caches_nothing_but_still_coalesces():
    c = Cache(lambda k: [k], maxsize=0)
    assert c.get(1) == [1] and c.get(1) == [1]
    assert len(c) == 0 and c.stats()["loads"] == 2


def test_keys_use_python_equality():
    c = Cache(lambda k: object())
    assert c.get(1) is c.get(1.0) is c.get(True)
    assert c.stats()["loads"] == 1


class SlowEq:
    """A key whose __eq__ releases the GIL (and whose hashes all collide)."""

    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return 1

    def __eq__(self, other):
        time.sleep(0)
        return isinstance(other, SlowEq) and other.v == self.v


def test_keys_whose_eq_releases_the_gil_still_load_once():
    for _ in range(5):
        counts, lock = Counter(), threading.Lock()
        load = slow_counting_loader(counts, lock, pause=0)
        c = Cache(lambda k: load(k.v), maxsize=30)  # noqa: B023 (used within the iteration)
        keys = [SlowEq(i) for i in range(20)]
        got = watchdog(lambda: hammer(c, keys, threads=4))  # noqa: B023 (used within the iteration)
        assert counts == Counter({i: 1 for i in range(20)})
        for k in keys:
            assert all(g[k] is got[0][k] for g in got)


def test_the_garbage_collector_frees_cycles_through_a_cache():
    class Value:
        pass

    for maxsize in (None, 4):
        c = Cache(maxsize=maxsize)
        v = Value()
        v.cache = c
        c.put("k", v)
        refs = weakref.ref(v)
        del v, c
        gc.collect()
        assert refs() is None, maxsize


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="maxsize"):
        Cache(maxsize=-1)
    with pytest.raises(TypeError, match="maxsize"):
        Cache(maxsize="3")
    with pytest.raises(ValueError, match="ttl"):
        Cache(ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        Cache(ttl=float("nan"))
    with pytest.raises(TypeError, match="ttl"):
        Cache(ttl="1")
    with pytest.raises(TypeError, match="loader"):
        Cache(3)
    with pytest.raises(TypeError, match="loader"):
        Cache().get(1)
    with pytest.raises(TypeError):
        Cache().get([1], lambda k: k)  # unhashable key
    with pytest.raises(ValueError, match="timeout"):
        Cache(lambda k: k).get(1, timeout=float("nan"))
    with pytest.raises(TypeError, match="fn"):
        SingleFlight().do(1, None)


def test_singleflight_shares_one_call_and_forgets():
    sf = SingleFlight()
    release = threading.Event()
    calls = []

    def fn():
        calls.append(1)
        release.wait(10)
        return object()

    out = []
    ts = [threading.Thread(target=lambda: out.append(sf.do_shared("k", fn))) for _ in range(8)]
    for t in ts:
        t.start()
    while sf.in_flight == 0:
        time.sleep(0.001)
    time.sleep(0.05)  # lets the others join (the count below holds either way)
    release.set()
    for t in ts:
        t.join()
    values = {id(v) for v, _ in out}
    assert len(calls) == len(values)
    assert sum(1 for _, shared in out if not shared) == len(calls)
    assert sf.in_flight == 0
    assert sf.do("k", lambda: 2) == 2  # nothing is remembered after the call


def test_cached_is_lru_cache_shaped():
    calls = []

    @cached(maxsize=2)
    def square(x, *, plus=0):
        calls.append(x)
        return x * x + plus

    assert square(3) == 9 and square(3) == 9 and square(3, plus=1) == 10
    assert square.cache_info() == chanpool.CacheInfo(1, 2, 2, 2)
    assert square.__name__ == "square"
    square.cache_clear()
    assert square.cache_info() == (0, 0, 2, 0)
    assert square.cache_parameters()["maxsize"] == 2
    assert isinstance(square.cache, Cache)


def test_cached_runs_once_per_argument_under_threads():
    counts, lock = Counter(), threading.Lock()

    @cached(maxsize=None)
    def f(x):
        with lock:
            counts[x] += 1
        time.sleep(0.0005)
        return [x]

    class Shim:
        def get(self, k):
            return f(k)

    got = watchdog(lambda: hammer(Shim(), range(50)))
    assert counts == Counter({k: 1 for k in range(50)})
    assert all(g[k] is got[0][k] for g in got for k in range(50))
