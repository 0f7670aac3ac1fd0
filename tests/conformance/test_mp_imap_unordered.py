"""CPython 3.13 Lib/test/_test_multiprocessing.py, the imap_unordered tests of _TestPool
(test_imap_unordered, test_imap_unordered_handle_iterable_exception), ported: each runs
against multiprocessing.pool.ThreadPool.imap_unordered ("original") and
chanpool.WorkerPool.map_unordered, eager (the default) and lazy (buffersize=2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import ThreadPool
from typing import Any

import chanpool
import pytest


class SayWhenError(ValueError):
    pass


def exception_throwing_generator(total: int, when: int) -> Iterator[int]:
    if when == -1:
        raise SayWhenError("Somebody said when")
    for i in range(total):
        if i == when:
            raise SayWhenError("Somebody said when")
        yield i


def sqr(x: int) -> int:
    return x * x


Imap = Callable[[Callable[[Any], Any], Iterable[Any], int], Iterator[Any]]


@pytest.fixture(params=["original", "chanpool", "chanpool-lazy"])
def impl(request):  # type: ignore[no-untyped-def]
    if request.param == "original":
        pool = ThreadPool(4)
        imap: Imap = pool.imap_unordered
        yield request.param, imap
        pool.terminate()
        pool.join()
        return
    wp = chanpool.WorkerPool(4)
    lazy = request.param == "chanpool-lazy"

    def imap_unordered(fn: Callable[[Any], Any], it: Iterable[Any], chunksize: int = 1):  # type: ignore[no-untyped-def]
        return wp.map_unordered(fn, it, chunksize=chunksize, buffersize=2 if lazy else None)

    yield request.param, imap_unordered
    assert wp.shutdown(timeout=30) is True


def test_imap_unordered(impl) -> None:  # type: ignore[no-untyped-def]
    _, imap_unordered = impl
    it = imap_unordered(sqr, list(range(10)))
    assert sorted(it) == list(map(sqr, list(range(10))))

    it = imap_unordered(sqr, list(range(1000)), 100)
    assert sorted(it) == list(map(sqr, list(range(1000))))


def _first_step(name: str, make: Callable[[], Iterator[Any]]) -> None:
    """The original raises an input error at the first __next__ (its feeder thread reads the
    input); chanpool reads the input (eager) or its first buffersize chunks (lazy) in the call,
    as Executor.map does, so the call itself raises (a deliberate difference)."""
    if name == "original":
        it = make()
        with pytest.raises(SayWhenError):
            next(it)
    else:
        with pytest.raises(SayWhenError):
            make()


@pytest.mark.difference("an input error among what the call reads is raised by the call")
def test_imap_unordered_handle_iterable_exception(impl) -> None:  # type: ignore[no-untyped-def]
    name, imap_unordered = impl
    # SayWhenError seen at the very first of the iterable
    _first_step(name, lambda: imap_unordered(sqr, exception_throwing_generator(1, -1), 1))
    # again, make sure it's reentrant
    _first_step(name, lambda: imap_unordered(sqr, exception_throwing_generator(1, -1), 1))

    for total, when, chunksize in [(10, 3, 1), (20, 7, 2)]:
        expected_values = list(map(sqr, list(range(total))))
        if name == "chanpool":
            # Eager: the whole input is read in the call.
            with pytest.raises(SayWhenError):
                imap_unordered(sqr, exception_throwing_generator(total, when), chunksize)
            continue
        it = imap_unordered(sqr, exception_throwing_generator(total, when), chunksize)
        with pytest.raises(SayWhenError):
            # imap_unordered makes it difficult to anticipate the SayWhenError
            for _ in range(total):
                value = next(it)
                assert value in expected_values
                expected_values.remove(value)
