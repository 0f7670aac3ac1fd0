"""WorkerPool.map: Executor.map semantics as of Python 3.14 (timeout, buffersize), chunksize.

Ideas ported from CPython's Lib/test/test_concurrent_futures/executor.py; the code is our own.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import itertools
import operator
import threading
import time
import weakref

import chanpool
import pytest
from helpers import exact, settled, watchdog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def add(a, b):
    return a + b


def add3(a, b, c):
    return a + b + c


class Counting:
    """An iterable that records how many items have been read from it."""

    def __init__(self, items):
        self.items = list(items)
        self.read = 0

    def __iter__(self):
        for x in self.items:
            self.read += 1
            yield x


# ------------------------------------------------------------------------------------ results


def test_map_basic(make_pool):
    p = make_pool(4)
    it = p.map(pow, range(10), [2] * 10)
    assert isinstance(it, chanpool.MapIterator)
    assert iter(it) is it
    assert list(it) == [i * i for i in range(10)]
    p.shutdown()
    exact(p, submitted=10, completed=10, failed=0, cancelled=0)


@pytest.mark.parametrize("chunksize", [1, 2, 3, 7, 64, 1000, 5000])
@pytest.mark.parametrize("buffersize", [None, 1, 3])
def test_map_equals_builtin_map(make_pool, chunksize, buffersize):
    p = make_pool(3)
    n = 2000
    a, b, c = range(n), range(3, n + 10), [7] * (n // 2 + 1)
    assert list(p.map(str, a, chunksize=chunksize, buffersize=buffersize)) == list(map(str, a))
    # Several iterables of unequal length stop at the shortest, like zip()/map().
    assert list(p.map(add, a, b, chunksize=chunksize, buffersize=buffersize)) == list(
        map(add, a, b)
    )
    assert list(p.map(add3, b, c, a, chunksize=chunksize, buffersize=buffersize)) == list(
        map(add3, b, c, a)
    )
    p.shutdown()
    m = n + n + (n // 2 + 1)
    exact(p, submitted=m, completed=m, failed=0, cancelled=0, running=0, queued=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.integers(-1000, 1000), max_size=300),
    other=st.lists(st.integers(-1000, 1000), max_size=300),
    chunksize=st.integers(1, 50),
    buffersize=st.one_of(st.none(), st.integers(1, 10)),
    workers=st.integers(1, 4),
)
def test_map_property(data, other, chunksize, buffersize, workers):
    with chanpool.WorkerPool(workers) as p:
        got1 = list(p.map(abs, data, chunksize=chunksize, buffersize=buffersize))
        got2 = list(p.map(operator.sub, data, other, chunksize=chunksize, buffersize=buffersize))
    assert got1 == list(map(abs, data))
    assert got2 == list(map(operator.sub, data, other))
    n = len(data) + min(len(data), len(other))
    exact(p, submitted=n, completed=n, failed=0, cancelled=0)


def test_map_results_in_order_when_finishing_out_of_order(make_pool):
    p = make_pool(4)
    gates = [threading.Event() for _ in range(4)]  # all four items run at once

    def f(i):
        # Item i may finish only after item i+1 (the last one is free).
        if i + 1 < len(gates):
            assert gates[i + 1].wait(30)
        gates[i].set()
        return i

    assert watchdog(lambda: list(p.map(f, range(4)))) == list(range(4))


def test_map_empty_and_without_iterables(make_pool):
    p = make_pool(2)
    assert list(p.map(str, [])) == []
    assert list(p.map(str, [], chunksize=5)) == []
    assert list(p.map(str)) == []
    assert list(p.map(add, [1, 2], [])) == []
    p.shutdown()
    exact(p, submitted=0, completed=0)


def test_map_reads_all_input_at_call_time(make_pool):
    p = make_pool(2)
    src = Counting(range(100))
    it = p.map(str, src)
    assert src.read == 100
    assert list(it) == [str(i) for i in range(100)]


def test_map_submits_without_iteration(make_pool):
    """CPython issue #11777: map() schedules everything even if its result is never iterated."""
    p = make_pool(2)
    finished = []
    p.map(finished.append, range(100))
    p.shutdown(wait=True)
    assert sorted(finished) == list(range(100))
    exact(p, submitted=100, completed=100, cancelled=0)


def test_map_submits_without_iteration_lazy(make_pool):
    """With buffersize, the first `buffersize` chunks are submitted by the call itself and run."""
    p = make_pool(2)
    finished = []
    p.map(finished.append, range(10), buffersize=3)
    p.shutdown(wait=True)
    assert sorted(finished) == [0, 1, 2]
    exact(p, submitted=3, completed=3, cancelled=0)


def test_map_input_error_raised_by_eager_call(make_pool):
    p = make_pool(2)

    def gen():
        yield 1
        yield 2
        raise OSError("input broke")

    with pytest.raises(OSError, match="input broke"):
        p.map(str, gen())
    p.shutdown()
    settled(p)


def test_map_input_error_raised_by_lazy_iteration(make_pool):
    p = make_pool(2)

    def gen():
        yield from range(5)
        raise OSError("input broke")

    it = p.map(str, gen(), buffersize=2)
    got = []
    with pytest.raises(OSError, match="input broke"):
        for x in it:
            got.append(x)
    assert got == [str(i) for i in range(len(got))]
    assert list(it) == []
    p.shutdown()
    settled(p)


def test_map_non_callable(make_pool):
    p = make_pool(2)
    with pytest.raises(TypeError):
        p.map(None, range(3))
    with pytest.raises(TypeError):
        p.map(42, range(3), buffersize=2)
    p.shutdown()
    exact(p, submitted=0)


def test_map_non_iterable(make_pool):
    p = make_pool(2)
    with pytest.raises(TypeError):
        p.map(str, 5)
    with pytest.raises(TypeError):
        p.map(str, 5, buffersize=1)
    with pytest.raises(TypeError):
        p.map(add, range(3), 5)
    p.shutdown()
    exact(p, submitted=0)


# ----------------------------------------------------------------------------------- chunksize


@pytest.mark.parametrize("chunksize", [0, -1, -10])
def test_map_chunksize_must_be_positive(make_pool, chunksize):
    p = make_pool(2)
    with pytest.raises(ValueError):
        p.map(str, range(4), chunksize=chunksize)
    with pytest.raises(ValueError):
        p.map(str, range(4), chunksize=chunksize, buffersize=2)
    p.shutdown()
    exact(p, submitted=0)


def test_map_chunk_exception_belongs_to_its_item(make_pool):
    p = make_pool(2)

    def f(i):
        if i == 5:
            raise ValueError(i)
        return i

    it = p.map(f, range(10), chunksize=4)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="5"):
        next(it)
    assert list(it) == []


# ----------------------------------------------------------------------------------- buffersize


@pytest.mark.parametrize("buffersize", ["foo", 2.0, 1j, [1]])
def test_map_buffersize_type_validation(make_pool, buffersize):
    p = make_pool(2)
    with pytest.raises(TypeError):
        p.map(str, range(4), buffersize=buffersize)
    p.shutdown()
    exact(p, submitted=0)


@pytest.mark.parametrize("buffersize", [0, -1, -100])
def test_map_buffersize_value_validation(make_pool, buffersize):
    p = make_pool(2)
    with pytest.raises(ValueError):
        p.map(str, range(4), buffersize=buffersize)
    p.shutdown()
    exact(p, submitted=0)


def test_map_buffersize_none_is_eager(make_pool):
    p = make_pool(2)
    src = Counting(range(10))
    it = p.map(str, src, buffersize=None)
    assert src.read == 10
    assert list(it) == [str(i) for i in range(10)]


@pytest.mark.parametrize("buffersize", [1, 2, 4, 8])
def test_map_buffersize(make_pool, buffersize):
    p = make_pool(2)
    assert list(p.map(str, range(4), buffersize=buffersize)) == ["0", "1", "2", "3"]
    assert list(p.map(add, range(4), range(4), buffersize=buffersize)) == [0, 2, 4, 6]


def test_map_buffersize_on_infinite_iterable(make_pool):
    p = make_pool(2)
    it = p.map(str, itertools.count(), buffersize=2)
    assert [next(it, None) for _ in range(3)] == ["0", "1", "2"]
    it.close()


def test_map_buffersize_on_multiple_infinite_iterables(make_pool):
    p = make_pool(2)
    it = p.map(add, itertools.count(), itertools.count(), buffersize=2)
    assert [next(it, None) for _ in range(3)] == [0, 2, 4]
    it.close()


def test_map_buffersize_on_empty_iterable(make_pool):
    p = make_pool(2)
    assert next(p.map(str, [], buffersize=2), None) is None


def test_map_buffersize_without_iterable(make_pool):
    p = make_pool(2)
    assert next(p.map(str, buffersize=2), None) is None


def test_map_buffersize_when_buffer_is_full(make_pool):
    """CPython's test: only `buffersize` items are read by the call."""
    p = make_pool(2)
    ints = iter(range(4))
    p.map(str, ints, buffersize=2)
    p.shutdown(wait=True)
    assert next(ints) == 2


@pytest.mark.parametrize("chunksize,buffersize", [(1, 1), (1, 3), (3, 2), (5, 1)])
def test_map_buffersize_reads_as_results_are_consumed(make_pool, chunksize, buffersize):
    p = make_pool(2)
    src = Counting(range(200))
    it = p.map(str, src, chunksize=chunksize, buffersize=buffersize)
    # The call reads `buffersize` chunks; each next() first tops the buffer up by one chunk
    # (one item per chunk consumed), as 3.14's result iterator does before it waits.
    assert src.read == buffersize * chunksize
    for k in range(1, 40):
        assert next(it) == str(k - 1)
        chunks_started = (k - 1) // chunksize + 1
        assert src.read == min(200, (buffersize + chunks_started) * chunksize), k
    it.close()


def test_map_buffersize_chunks_read_at_call_time(make_pool):
    p = make_pool(2)
    ints = iter(range(100))
    p.map(str, ints, chunksize=3, buffersize=2)
    assert next(ints) == 6


def test_map_buffersize_bounds_queued_work(make_pool):
    p = make_pool(1)
    gate = threading.Event()

    def f(i):
        if i == 0:
            gate.wait(30)
        return i

    it = p.map(f, range(1000), buffersize=4)
    try:
        assert p.stats()["submitted"] == 4
    finally:
        gate.set()
    assert list(it) == list(range(1000))
    p.shutdown()
    exact(p, submitted=1000, completed=1000)


# --------------------------------------------------------------------------------- exceptions


def test_map_exception(make_pool):
    """CPython's test_map_exception, plus: the iterator is finished after the exception."""
    p = make_pool(2)
    it = p.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(it) == (0, 1)
    assert next(it) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("buffersize", [None, 2])
def test_map_exception_cancels_items_not_started(make_pool, buffersize):
    """After the failing item is raised, items that have not started are cancelled."""
    p = make_pool(1)
    release = threading.Event()
    ran = []

    def f(i):
        ran.append(i)
        if i == 0:
            raise ValueError("first")
        if i == 1:
            # Item 1 is running while the consumer sees item 0's exception. (Not asserted:
            # test_map_result_is_available_as_soon_as_it_is_done covers promptness.)
            release.wait(10)
        return i

    it = p.map(f, range(10), buffersize=buffersize)
    try:
        with pytest.raises(ValueError, match="first"):
            watchdog(lambda: next(it))
        assert list(it) == []
    finally:
        release.set()
    p.shutdown(wait=True)
    assert ran == [0, 1]
    submitted = 10 if buffersize is None else buffersize + 1
    exact(p, submitted=submitted, completed=1, failed=1, cancelled=submitted - 2)


def test_map_iterator_close_cancels_items_not_started(make_pool):
    p = make_pool(1)
    started, release = threading.Event(), threading.Event()
    ran = []

    def f(i):
        ran.append(i)
        if i == 1:
            started.set()
            release.wait(10)
        return i

    it = p.map(f, range(50))
    assert next(it) == 0
    assert started.wait(30)
    it.close()
    release.set()
    with pytest.raises(StopIteration):
        next(it)
    p.shutdown(wait=True)
    assert ran == [0, 1]
    exact(p, submitted=50, completed=2, failed=0, cancelled=48)


def test_map_iterator_dropped_after_start_cancels_items_not_started(make_pool):
    p = make_pool(1)
    started, release = threading.Event(), threading.Event()
    ran = []

    def f(i):
        ran.append(i)
        if i == 1:
            started.set()
            release.wait(10)
        return i

    it = p.map(f, range(50), chunksize=1)
    assert next(it) == 0
    assert started.wait(30)
    del it
    gc.collect()
    release.set()
    p.shutdown(wait=True)
    assert ran == [0, 1]
    exact(p, submitted=50, completed=2, failed=0, cancelled=48)


@pytest.mark.parametrize("chunksize,buffersize", [(1, None), (3, None), (1, 2), (3, 1)])
@pytest.mark.parametrize("outcome", ["value", "exception"])
def test_map_result_is_available_as_soon_as_it_is_done(make_pool, outcome, chunksize, buffersize):
    """A finished item's result (or exception) reaches the consumer while later items run.

    ThreadPoolExecutor hands out item 0 as soon as item 0 is done, whatever item 1 is doing.
    Here item 1 waits (up to 3 s) for the consumer to have received item 0; with chunksize=3
    both are in the same chunk, and the rule holds within a chunk too.
    """
    p = make_pool(1)
    started1, consumed = threading.Event(), threading.Event()

    def f(i):
        if i == 0:
            if outcome == "exception":
                raise ValueError("item 0")
            return "zero"
        if i == 1:
            started1.set()
            return consumed.wait(3)
        return i

    it = p.map(f, range(3), chunksize=chunksize, buffersize=buffersize)
    assert started1.wait(30)
    t0 = time.monotonic()
    if outcome == "value":
        assert next(it) == "zero"
    else:
        with pytest.raises(ValueError, match="item 0"):
            next(it)
    waited = time.monotonic() - t0
    consumed.set()
    assert waited < 2.5, f"item 0's outcome was held back {waited:.2f} s behind item 1"
    if outcome == "value":
        assert list(it) == [True, 2]


# ------------------------------------------------------------------------------------ timeout


def test_map_timeout(make_pool):
    """CPython's test_map_timeout, with an Event instead of a long sleep."""
    p = make_pool(2)
    gate = threading.Event()

    def f(i):
        if i == 2:
            gate.wait(30)
        return i

    results = []
    try:
        with pytest.raises(cf.TimeoutError):
            for r in p.map(f, range(3), timeout=0.3):
                results.append(r)
    finally:
        gate.set()
    assert results == [0, 1]


def test_map_timeout_is_measured_from_the_call(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    try:
        t0 = time.monotonic()
        it = p.map(gate.wait, [30], timeout=0.6)
        time.sleep(0.4)  # the subject of the test: time that passes before iteration starts
        with pytest.raises(cf.TimeoutError):
            next(it)
        elapsed = time.monotonic() - t0
    finally:
        gate.set()
    assert 0.6 <= elapsed < 0.95, elapsed
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("timeout", [0, -1])
def test_map_zero_timeout(make_pool, timeout):
    p = make_pool(1)
    gate = threading.Event()
    try:
        it = p.map(gate.wait, [30], timeout=timeout)
        with pytest.raises(cf.TimeoutError):
            next(it)
    finally:
        gate.set()


def test_map_timeout_cancels_items_not_started(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    ran = []

    def f(i):
        ran.append(i)
        if i == 0:
            gate.wait(30)
        return i

    try:
        it = p.map(f, range(20), timeout=0.2)
        with pytest.raises(cf.TimeoutError):
            next(it)
    finally:
        gate.set()
    p.shutdown(wait=True)
    assert ran == [0]
    exact(p, submitted=20, completed=1, cancelled=19, failed=0)


def test_map_timeout_not_hit_when_fast(make_pool):
    p = make_pool(2)
    assert list(p.map(str, range(500), timeout=30)) == [str(i) for i in range(500)]


# ----------------------------------------------------------------------------------- references


class Obj:
    pass


def make_obj(_):
    return Obj()


@pytest.mark.parametrize("buffersize", [None, 2])
def test_map_free_reference(make_pool, buffersize):
    """CPython issue #14406: the result iterator keeps no reference to results it yielded."""
    p = make_pool(2)
    for obj in p.map(make_obj, range(10), buffersize=buffersize):
        wr = weakref.ref(obj)
        del obj
        gc.collect()
        assert wr() is None


def test_map_after_shutdown(make_pool):
    p = make_pool(2)
    p.shutdown()
    with pytest.raises(RuntimeError):
        p.map(str, range(3))
    with pytest.raises(RuntimeError):
        p.map(str, range(3), buffersize=1)
    exact(p, submitted=0)


def test_map_counts_failures_per_item(make_pool):
    p = make_pool(3)

    def f(i):
        if i % 3 == 0:
            raise ValueError(i)
        return i

    outcomes = []
    for chunk_start in range(0, 30, 1):
        it = p.map(f, [chunk_start])
        try:
            outcomes.append(next(it))
        except ValueError:
            outcomes.append("err")
    assert outcomes == ["err" if i % 3 == 0 else i for i in range(30)]
    p.shutdown()
    exact(p, submitted=30, completed=20, failed=10, cancelled=0)
