"""Go's singleflight_test.go (TestDo, TestDoErr, TestDoDupSuppress, TestForget) run against
the Python model and chanpool.SingleFlight; CPython test_functools TestLRU assertions (hit and
miss counts, eviction order, 1 == 1.0 keys when not typed) against lru_cache and @cached."""

import functools
import threading

import chanpool
import pytest
from go_singleflight_model import Group

GROUPS = {"original": Group, "chanpool": chanpool.SingleFlight}  # original: the Go model


@pytest.fixture(params=sorted(GROUPS))
def group(request):
    return GROUPS[request.param]()


def test_do(group):
    assert group.do("key", lambda: "bar") == "bar"


def test_do_err(group):
    err = ValueError("some error")

    def fn():
        raise err

    with pytest.raises(ValueError) as info:
        group.do("key", fn)
    assert info.value is err


def test_do_dup_suppress(group):
    n = 10
    first, release = threading.Event(), threading.Event()
    calls = []

    def fn():
        calls.append(1)
        first.set()
        release.wait(10)
        return "bar"

    out = []
    ts = [threading.Thread(target=lambda: out.append(group.do("key", fn))) for _ in range(n)]
    for t in ts:
        t.start()
    first.wait(10)
    release.set()
    for t in ts:
        t.join()
    assert out == ["bar"] * n
    assert 0 < len(calls) < n  # Go: "number of calls = %d; want over 0 and less than %d"


def test_forget(group):
    first_started, release = threading.Event(), threading.Event()

    def slow():
        first_started.set()
        release.wait(10)
        return 1

    t = threading.Thread(target=group.do, args=("key", slow))
    t.start()
    first_started.wait(10)
    group.forget("key")
    assert group.do("key", lambda: 2) == 2  # a forgotten key starts a new call
    release.set()
    t.join()
    assert group.do("key", lambda: 3) == 3


LRUS = {
    "original": functools.lru_cache,
    "chanpool": lambda maxsize=128, typed=False: chanpool.cached(maxsize=maxsize, typed=typed),
}


@pytest.fixture(params=sorted(LRUS))
def lru(request):
    return LRUS[request.param]


def test_lru_hits_and_misses(lru):
    @lru(maxsize=20)
    def f(x):
        return x * 10

    for x in [1, 2, 1, 3, 2, 1, 4]:
        assert f(x) == x * 10
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (3, 4, 4)
    f.cache_clear()
    assert tuple(f.cache_info()) == (0, 0, 20, 0)


def test_lru_eviction_order(lru):
    calls = []

    @lru(maxsize=2)
    def f(x):
        calls.append(x)
        return x

    f(1), f(2), f(1), f(3)  # 2 is evicted, 1 stays
    f(1)
    f(2)
    assert calls == [1, 2, 3, 2]


def test_lru_maxsize_zero(lru):
    @lru(maxsize=0)
    def f(x):
        return x

    f(1), f(1)
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (0, 2, 0)


def test_lru_untyped_keys_are_equal(lru):
    @lru()
    def f(x, y):
        return x

    f(1, 2)
    f(1.0, 2)
    assert f.cache_info().hits == 1


def test_lru_typed_keys_differ(lru):
    @lru(typed=True)
    def f(x):
        return x

    f(1)
    f(1.0)
    assert f.cache_info().misses == 2


def test_lru_kwargs_order_matters(lru):
    @lru()
    def f(**kw):
        return kw

    f(a=1, b=2)
    f(b=2, a=1)
    assert f.cache_info().misses == 2
