"""WorkerPool.map_unordered: results in completion order, errors at their item, timeouts,
cancelling on early exit, lazy input with buffersize, exact stats books."""

from __future__ import annotations

import gc
import threading

import chanpool
import pytest
from helpers import settled

ITERATIONS = 50


class HoldLast:
    """A map function whose item ``held`` waits until every other item has run (then returns
    it, or raises ValueError(held) with ``fail``)."""

    def __init__(self, n: int, held: int, fail: bool = False) -> None:
        self.n, self.held, self.fail = n, held, fail
        self.lock = threading.Lock()
        self.others_done = threading.Event()
        self.count = 0

    def __call__(self, x: int) -> int:
        if x == self.held:
            assert self.others_done.wait(10)
            if self.fail:
                raise ValueError(x)
            return x
        with self.lock:
            self.count += 1
            if self.count == self.n - 1:
                self.others_done.set()
        return x


class Gated:
    """A map function counting the items that started; every item but 0 waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.ran = 0

    def __call__(self, x: int) -> int:
        with self.lock:
            self.ran += 1
        if x != 0:
            assert self.gate.wait(10)
        return x


class CountingSource:
    """range(n), counting the items read."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reads = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(self.n):
            self.reads += 1
            yield i


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("chunksize", [1, 3, 64])
@pytest.mark.parametrize("buffersize", [None, 1, 4])
def test_every_result_exactly_once(chunksize, buffersize):
    with chanpool.WorkerPool(4) as p:
        for _ in range(ITERATIONS):
            got = list(
                p.map_unordered(square, range(500), chunksize=chunksize, buffersize=buffersize)
            )
            assert sorted(got) == [x * x for x in range(500)]
        s = settled(p)
        assert s["completed"] == 500 * ITERATIONS
        assert s["failed"] == s["cancelled"] == 0


@pytest.mark.parametrize("buffersize", [None, 8])
def test_slow_first_item_comes_last(buffersize):
    """Item 0 is held until every other item has run: completion order puts it last (an
    ordered map would have to wait for it first)."""
    n = 40
    with chanpool.WorkerPool(4) as p:
        for _ in range(ITERATIONS):
            fn = HoldLast(n, 0)
            got = list(p.map_unordered(fn, range(n), buffersize=buffersize))
            assert got[-1] == 0
            assert sorted(got) == list(range(n))


def test_error_raised_at_its_item_in_completion_order():
    n = 30
    with chanpool.WorkerPool(3) as p:
        for _ in range(ITERATIONS):
            fn = HoldLast(n, 5, fail=True)
            it = p.map_unordered(fn, range(n))
            got = [next(it) for _ in range(n - 1)]
            assert sorted(got) == [x for x in range(n) if x != 5]
            with pytest.raises(ValueError, match="5"):
                next(it)
            assert list(it) == []
        s = settled(p)
        assert s["failed"] == ITERATIONS
        assert s["completed"] == (n - 1) * ITERATIONS


def test_timeout_like_map():
    with chanpool.WorkerPool(2) as p:
        gate = threading.Event()
        it = p.map_unordered(gate.wait, [10.0, 10.0], timeout=0.05)
        with pytest.raises(TimeoutError):
            next(it)
        gate.set()


@pytest.mark.parametrize("buffersize", [None, 2])
def test_leaving_early_cancels_what_is_queued(buffersize):
    n = 1000
    for _ in range(ITERATIONS):
        with chanpool.WorkerPool(2) as p:
            fn = Gated()
            it = p.map_unordered(fn, range(n), buffersize=buffersize)
            assert next(it) == 0
            it.close()
            fn.gate.set()
            assert list(it) == []
            assert p.shutdown(timeout=10) is True
            s = settled(p)
            # Item 0 plus the items the two workers had started before close().
            assert 2 <= fn.ran <= 3, fn.ran
            assert s["completed"] == fn.ran
            if buffersize is None:
                assert s["cancelled"] == n - fn.ran


def test_breaking_out_of_a_for_loop_cancels():
    n = 500
    for _ in range(ITERATIONS):
        with chanpool.WorkerPool(2) as p:
            fn = Gated()
            for r in p.map_unordered(fn, range(n)):
                assert r == 0
                break
            del r
            gc.collect()
            fn.gate.set()
            p.shutdown()
            s = settled(p)
            assert s["completed"] <= 3
            assert s["cancelled"] == n - s["completed"]


def test_buffersize_bounds_reads_of_the_input():
    n, b = 200, 3
    with chanpool.WorkerPool(4) as p:
        for _ in range(ITERATIONS):
            src = CountingSource(n)
            it = p.map_unordered(square, iter(src), buffersize=b)
            assert src.reads == b
            got = []
            for k, r in enumerate(it, 1):
                got.append(r)
                assert src.reads <= k + b, (k, src.reads)
            assert sorted(got) == [x * x for x in range(n)]
            assert src.reads == n


def test_bad_arguments():
    with chanpool.WorkerPool(1) as p:
        with pytest.raises(TypeError, match="map_unordered"):
            p.map_unordered(1, [1])
        with pytest.raises(TypeError):
            p.map_unordered(square, 5)
        with pytest.raises(ValueError, match="chunksize"):
            p.map_unordered(square, [1], chunksize=0)
        with pytest.raises(ValueError, match="buffersize"):
            p.map_unordered(square, [1], buffersize=0)
        assert list(p.map_unordered(square, [])) == []
    with pytest.raises(RuntimeError):
        p.map_unordered(square, [1])


def test_input_error_in_lazy_read_is_raised_at_the_step():
    def source():
        yield 1
        yield 2
        raise KeyError("input")

    with chanpool.WorkerPool(2) as p:
        it = p.map_unordered(square, source(), buffersize=1)
        with pytest.raises(KeyError):
            for _ in it:
                pass
