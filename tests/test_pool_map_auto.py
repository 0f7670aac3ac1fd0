"""WorkerPool.map without a chunksize: automatic chunks (as multiprocessing's ThreadPool.map
cuts them) for an eager map, one item per chunk for a lazy one. Results, their order, where an
exception is raised, timeouts and buffersize's lazy reading stay Executor.map's (3.14)."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest
from helpers import exact, wait_until


class Counting:
    """An iterable that records how many items have been read from it."""

    def __init__(self, items):
        self.items = list(items)
        self.read = 0

    def __iter__(self):
        for x in self.items:
            self.read += 1
            yield x


@pytest.mark.parametrize("n", [0, 1, 7, 16, 17, 1000, 20_001])
@pytest.mark.parametrize("workers", [1, 3, 4])
def test_auto_chunks_keep_results_and_order(make_pool, n, workers):
    p = make_pool(workers)
    for _ in range(5):
        assert list(p.map(str, range(n))) == [str(i) for i in range(n)]
        assert list(p.map(divmod, range(n), [7] * n)) == [divmod(i, 7) for i in range(n)]
    p.shutdown()
    exact(p, submitted=10 * n, completed=10 * n, failed=0, cancelled=0)


@pytest.mark.parametrize("bad", [0, 1, 499, 998, 999])
def test_auto_chunks_raise_at_the_failing_item(make_pool, bad):
    p = make_pool(4)

    def f(x):
        if x == bad:
            raise KeyError(x)
        return x

    for _ in range(20):
        it = p.map(f, range(1000))
        got = []
        with pytest.raises(KeyError) as e:
            for v in it:
                got.append(v)
        assert e.value.args == (bad,)
        assert got == list(range(bad))


def test_auto_chunks_share_the_input_between_workers(make_pool):
    # 4 workers, 64 items: every worker's first item waits for the other three, so this only
    # finishes if the input is cut into chunks that four workers run at once.
    p = make_pool(4)
    barrier = threading.Barrier(4, timeout=30)
    first = set(range(0, 64, 4))

    def f(x):
        if x in first and x < 16:
            barrier.wait()
        return x

    assert list(p.map(f, range(64))) == list(range(64))


def test_auto_chunks_a_finished_item_is_seen_while_its_chunk_runs(make_pool):
    # Item 0 and item 1 share a chunk (1 worker, 8 items: 2 per chunk); item 0's result must
    # reach the iterator while item 1 still runs, within a timeout.
    p = make_pool(1)
    release = threading.Event()

    def f(x):
        if x == 1:
            assert release.wait(30)
        return x

    it = p.map(f, range(8), timeout=30)
    assert next(it) == 0
    release.set()
    assert list(it) == list(range(1, 8))


def test_auto_chunks_timeout_still_applies(make_pool):
    p = make_pool(2)
    release = threading.Event()

    def f(x):
        if x == 5:
            assert release.wait(30)
        return x

    it = p.map(f, range(100), timeout=0.2)
    assert [next(it) for _ in range(5)] == list(range(5))
    with pytest.raises(cf.TimeoutError):
        next(it)
    release.set()


@pytest.mark.parametrize("buffersize", [1, 2, 5])
def test_lazy_map_without_chunksize_reads_one_item_per_chunk(make_pool, buffersize):
    p = make_pool(2)
    src = Counting(range(100))
    it = p.map(str, src, buffersize=buffersize)
    assert src.read == buffersize
    for k in range(1, 30):
        assert next(it) == str(k - 1)
        assert src.read == min(100, buffersize + k), k
    it.close()


def test_chunksize_none_is_the_default(make_pool):
    p = make_pool(2)
    assert list(p.map(abs, range(-50, 50), chunksize=None)) == [abs(i) for i in range(-50, 50)]
    with pytest.raises(TypeError, match="chunksize"):
        p.map(abs, range(3), chunksize="4")


@pytest.mark.parametrize("workers", [1, 3])
def test_auto_chunks_cancel_futures_cancels_every_item_not_started(make_pool, workers):
    # Automatic chunks of 2 (20 items, 3 workers) or 5 (1 worker): the first item of each
    # running chunk runs; every other item has not started and ends cancelled.
    p = make_pool(workers)
    gate = threading.Event()
    ran = []
    chunk = -(-20 // (4 * workers))
    firsts = list(range(0, chunk * workers, chunk))

    def f(i):
        ran.append(i)
        gate.wait(30)
        return i

    it = p.map(f, range(20))
    wait_until(lambda: p.stats()["running"] == workers, what="the first items to run")
    p.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert next(it) == 0
    with pytest.raises(cf.CancelledError):
        next(it)
    assert list(it) == []
    p.shutdown(wait=True)
    assert sorted(ran) == firsts
    exact(p, submitted=20, completed=workers, cancelled=20 - workers, failed=0)


# ------------------------------------------------- per-chunk runs: the iterator's wake-ups


@pytest.mark.parametrize("round_", range(30))
def test_later_chunks_finishing_first_do_not_lose_the_wake(make_pool, round_):
    """The iterator sleeps until its own chunk publishes: later chunks finishing first (and
    the outcome it waits for arriving last) must neither wake it with nothing nor be lost."""
    p = make_pool(3)
    gate = threading.Event()
    later_done = threading.Barrier(3, timeout=30)

    def f(x):
        if x == 0:
            gate.wait(30)
        elif x in (2, 4):
            later_done.wait()
        return x * 10

    it = p.map(f, range(6), chunksize=2)
    later_done.wait()  # chunks 1 and 2 have their first outcome while chunk 0 has none
    threading.Timer(0.01, gate.set).start()
    assert list(it) == [x * 10 for x in range(6)]


def test_cancelled_runs_and_errors_keep_their_items(make_pool):
    """Errors and claimed-but-cancelled items stay at their own index within a chunk's run."""
    p = make_pool(2)

    def f(x):
        if x % 7 == 3:
            raise ValueError(x)
        return x

    it = p.map(f, range(100), chunksize=10)
    got = []
    while True:
        try:
            got.append(next(it))
        except ValueError as e:
            got.append(("err", e.args[0]))
            break
        except StopIteration:
            break
    assert got == [0, 1, 2, ("err", 3)]
    with pytest.raises(StopIteration):
        next(it)
