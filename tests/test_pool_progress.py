"""map/map_unordered's progress= hook: called by the iterating thread, batched, with the number
of items that ran since its last call; the counts add up exactly. The tqdm recipe, with tqdm."""

from __future__ import annotations

import io
import threading

import chanpool
import pytest

ITERATIONS = 50


class Progress:
    """Records every progress call and the thread it came from."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, n: int) -> None:
        self.calls.append(n)
        self.threads.add(threading.get_ident())


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("how", ["map", "map_unordered"])
@pytest.mark.parametrize("buffersize", [None, 4])
@pytest.mark.parametrize("chunksize", [1, 16])
def test_counts_add_up_exactly_and_come_from_the_iterating_thread(how, buffersize, chunksize):
    n = 2000
    with chanpool.WorkerPool(4) as p:
        for _ in range(ITERATIONS):
            prog = Progress()
            it = getattr(p, how)(
                square, range(n), chunksize=chunksize, buffersize=buffersize, progress=prog
            )
            got = list(it)
            assert sorted(got) == [x * x for x in range(n)]
            assert sum(prog.calls) == n
            assert all(c > 0 for c in prog.calls)
            assert prog.threads == {threading.get_ident()}
            # Batched: fewer calls than items once work piles up (at most one per item).
            assert len(prog.calls) <= n


def test_batched_when_results_are_waiting():
    """Everything ran before the first next(): one call reports it all."""
    n = 500
    with chanpool.WorkerPool(2) as p:
        for _ in range(ITERATIONS):
            prog = Progress()
            done = threading.Semaphore(0)

            def fn(x: int, done: threading.Semaphore = done) -> int:
                done.release()
                return x

            it = p.map_unordered(fn, range(n), progress=prog)
            for _ in range(n):
                assert done.acquire(timeout=10)
            # The last item has called release() but may not have published yet.
            next(it)
            rest = list(it)
            assert len(rest) == n - 1
            assert sum(prog.calls) == n
            assert prog.calls[0] >= n - 2 * 2, prog.calls[:3]


def test_failed_items_count_cancelled_do_not():
    n = 100
    with chanpool.WorkerPool(2) as p:
        prog = Progress()

        def fn(x: int) -> int:
            if x % 10 == 3:
                raise ValueError(x)
            return x

        it = p.map_unordered(fn, range(n), progress=prog)
        errors = 0
        while True:
            try:
                next(it)
            except ValueError:
                errors += 1
                break
            except StopIteration:
                break
        assert errors == 1
        p.shutdown()
        s = p.stats()
        assert sum(prog.calls) <= s["completed"] + s["failed"]
        assert s["completed"] + s["failed"] + s["cancelled"] == n


def test_hook_errors_end_the_map_and_bad_hooks_are_refused():
    with chanpool.WorkerPool(2) as p:

        def boom(n: int) -> None:
            raise KeyError("hook")

        it = p.map(square, range(100), progress=boom)
        with pytest.raises(KeyError):
            next(it)
        assert list(it) == []
        with pytest.raises(TypeError, match="progress"):
            p.map(square, [1], progress=5)
        with pytest.raises(TypeError, match="progress"):
            p.map_unordered(square, [1], progress="x")
        assert list(p.map(square, [2], progress=None)) == [4]


@pytest.mark.parametrize("how", ["map", "map_unordered"])
def test_tqdm_recipe(how):
    """README's recipe: ``progress=bar.update`` with a real tqdm bar."""
    tqdm = pytest.importorskip("tqdm").tqdm
    n = 5000
    out = io.StringIO()
    with chanpool.WorkerPool(4) as p:
        with tqdm(total=n, file=out, mininterval=0) as bar:
            got = list(getattr(p, how)(square, range(n), progress=bar.update))
        assert bar.n == n
        assert sorted(got) == [x * x for x in range(n)]
    assert f"{n}/{n}" in out.getvalue()
