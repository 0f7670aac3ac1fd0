"""CPython 3.13 ``Lib/test/lock_tests.py``, semaphore suites (BaseSemaphoreTests, SemaphoreTests,
BoundedSemaphoreTests), ported.

Each test runs against the original (``threading.Semaphore`` / ``threading.BoundedSemaphore``)
and against chanpool (``chanpool.Semaphore(bounded=False)`` / ``(bounded=True)``). The original
waits for threads to block with fixed sleeps; here a thread counts as blocked once it is seen
waiting inside ``acquire`` (chanpool: in its line; threading: inside ``Condition.wait``), and
threads are joined under a watchdog instead of being polled.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import time
from typing import Any, Callable

import chanpool
import pytest
from helpers import WATCHDOG, all_stacks, wait_until

MAKERS: dict[tuple[str, bool], Callable[..., Any]] = {
    ("original", False): threading.Semaphore,
    ("original", True): threading.BoundedSemaphore,
    ("chanpool", False): chanpool.Semaphore,
    ("chanpool", True): functools.partial(chanpool.Semaphore, bounded=True),
}


@pytest.fixture(params=["original", "chanpool"])
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_COND_WAIT = threading.Condition.wait.__code__


def _waiting_in_condition(ident: int) -> bool:
    frame = sys._current_frames().get(ident)
    return frame is not None and frame.f_code is _COND_WAIT


def blocked(impl: str, sem: Any, idents: list[int]) -> int:
    """How many threads are waiting inside ``sem.acquire`` right now."""
    if impl == "chanpool":
        return int(sem.waiting)
    return sum(_waiting_in_condition(i) for i in idents)


class Bunch:
    """``nthread`` threads all running ``func``; leaving the block joins them (watchdog) and
    re-raises what they raised."""

    def __init__(self, func: Callable[[], None], nthread: int) -> None:
        self.func = func
        self.started: list[int] = []
        self.finished: list[int] = []
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._task, daemon=True) for _ in range(nthread)]

    def _task(self) -> None:
        self.started.append(threading.get_ident())
        try:
            self.func()
        except BaseException as e:  # re-raised by __exit__
            self.errors.append(e)
        finally:
            self.finished.append(threading.get_ident())

    @property
    def idents(self) -> list[int]:
        # Live threads only: a finished thread's ident may have been reused by a later one.
        return [t.ident for t in self.threads if t.is_alive() and t.ident is not None]

    def __enter__(self) -> Bunch:
        for t in self.threads:
            t.start()
        wait_until(lambda: len(self.started) == len(self.threads), what="threads started")
        return self

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + WATCHDOG
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                pytest.fail(f"thread did not finish\n{all_stacks()}")
        if self.errors:
            raise self.errors[0]


def assert_timeout(actual: float, expected: float) -> None:
    # The original's tolerance: the wait really happened, and nothing absurd.
    assert actual >= expected * 0.6
    assert actual < expected * 10.0


class _BaseSemaphoreTests:
    """BaseSemaphoreTests: common to bounded and unbounded semaphores."""

    bounded = False

    @pytest.fixture
    def semtype(self, impl: str) -> Callable[..., Any]:
        return MAKERS[(impl, self.bounded)]

    def test_constructor(self, semtype):
        with pytest.raises(ValueError):
            semtype(value=-1)
        with pytest.raises(ValueError):
            semtype(value=-sys.maxsize)

    def test_acquire(self, semtype):
        one = semtype(1)
        assert one.acquire()
        one.release()
        two = semtype(2)
        assert two.acquire()
        assert two.acquire()
        two.release()
        two.release()
        assert two.acquire(False) and two.acquire(False) and not two.acquire(False)

    def test_acquire_destroy(self, semtype):
        sem = semtype()
        assert sem.acquire()
        del sem  # dropping a held semaphore is fine

    def _phases(self, impl: str, semtype: Callable[..., Any], multi: bool) -> list[bool]:
        """The body of test_acquire_contended (release one at a time) and test_multirelease
        (release(n)): 10 threads each take two permits of a 7-permit semaphore, in phases."""
        value = 7
        sem = semtype(value)
        assert sem.acquire()
        got: list[bool] = []
        first: list[int] = []
        second: list[int] = []
        phase = [0]

        def func() -> None:
            got.append(sem.acquire())
            first.append(phase[0])
            got.append(sem.acquire())
            second.append(phase[0])

        def done() -> int:
            return len(first) + len(second)

        def release(n: int) -> None:
            if multi:
                sem.release(n)
            else:
                for _ in range(n):
                    sem.release()

        threads = 10

        def settled() -> bool:
            # Every thread that has not taken both permits is waiting for one.
            return blocked(impl, sem, bunch.idents) == threads - len(second)

        with Bunch(func, threads) as bunch:
            # Phase 0: the 6 free permits are taken, then everyone else waits.
            count1 = value - 1
            wait_until(lambda: done() == count1, what="phase 0")
            wait_until(settled, what="phase 0 settled")
            assert first + second == [0] * count1

            phase[0] = 1
            count2 = value
            release(count2)
            wait_until(lambda: done() == count1 + count2, what="phase 1")
            wait_until(settled, what="phase 1 settled")
            assert sorted(first + second) == [0] * count1 + [1] * count2

            phase[0] = 2
            count3 = value - 1
            release(count3)
            wait_until(lambda: done() == count1 + count2 + count3, what="phase 2")
            wait_until(settled, what="phase 2 settled")
            assert sorted(first + second) == [0] * count1 + [1] * count2 + [2] * count3
            # Still locked: the last thread waits for the final permit.
            assert not sem.acquire(False)
            sem.release()
        return got

    def test_acquire_contended(self, impl, semtype):
        got = self._phases(impl, semtype, multi=False)
        assert got == [True] * 20

    def test_multirelease(self, impl, semtype):
        got = self._phases(impl, semtype, multi=True)
        assert got == [True] * 20

    def test_try_acquire(self, semtype):
        sem = semtype(2)
        assert sem.acquire(False)
        assert sem.acquire(False)
        assert not sem.acquire(False)
        sem.release()
        assert sem.acquire(False)

    def test_try_acquire_contended(self, semtype):
        sem = semtype(4)
        assert sem.acquire()
        results: list[bool] = []

        def f() -> None:
            results.append(sem.acquire(False))
            results.append(sem.acquire(False))

        with Bunch(f, 5):
            pass
        # Appends race with the takes: only the counts are fixed.
        assert sorted(results) == [False] * 7 + [True] * 3

    def test_acquire_timeout(self, semtype):
        sem = semtype(2)
        with pytest.raises(ValueError):
            sem.acquire(False, timeout=1.0)
        assert sem.acquire(timeout=0.005)
        assert sem.acquire(timeout=0.005)
        assert not sem.acquire(timeout=0.005)
        sem.release()
        assert sem.acquire(timeout=0.005)
        start = time.monotonic()
        assert not sem.acquire(timeout=0.5)
        assert_timeout(time.monotonic() - start, 0.5)

    def test_default_value(self, impl, semtype):
        sem = semtype()  # one permit
        assert sem.acquire()

        def f() -> None:
            assert sem.acquire()
            sem.release()

        with Bunch(f, 1) as bunch:
            wait_until(lambda: blocked(impl, sem, bunch.idents) == 1, what="thread blocked")
            assert not bunch.finished
            sem.release()
        assert bunch.finished

    def test_with(self, semtype):
        sem = semtype(2)

        def inside(err: type[BaseException] | None = None) -> None:
            with sem:
                assert sem.acquire(False)
                sem.release()
                with sem:
                    assert not sem.acquire(False)
                    if err:
                        raise err

        inside()
        assert sem.acquire(False)
        sem.release()
        with pytest.raises(TypeError):
            inside(TypeError)
        assert sem.acquire(False)  # both permits came back on the way out of the exception
        sem.release()


class TestSemaphore(_BaseSemaphoreTests):
    """SemaphoreTests: unbounded."""

    bounded = False

    def test_release_unacquired(self, semtype):
        # Releasing more than was acquired raises the value.
        sem = semtype(1)
        sem.release()
        assert sem.acquire()
        assert sem.acquire()
        assert not sem.acquire(False)
        sem.release()

    def test_repr(self, semtype):
        sem = semtype(3)
        assert _search(r"<\w+\.Semaphore at .*: value=3>", repr(sem))
        sem.acquire()
        assert _search(r"<\w+\.Semaphore at .*: value=2>", repr(sem))
        sem.release()
        sem.release()
        assert _search(r"<\w+\.Semaphore at .*: value=4>", repr(sem))


class TestBoundedSemaphore(_BaseSemaphoreTests):
    """BoundedSemaphoreTests."""

    bounded = True

    def test_release_unacquired(self, semtype):
        # Never above the initial value.
        sem = semtype()
        with pytest.raises(ValueError):
            sem.release()
        assert sem.acquire()
        sem.release()
        with pytest.raises(ValueError):
            sem.release()

    @pytest.mark.difference(
        "one class: chanpool.Semaphore(bounded=True) names its real class, chanpool.Semaphore"
    )
    def test_repr(self, impl, semtype):
        name = "BoundedSemaphore" if impl == "original" else "Semaphore"
        sem = semtype(3)
        assert _search(rf"<\w+\.{name} at .*: value=3/3>", repr(sem))
        sem.acquire()
        assert _search(rf"<\w+\.{name} at .*: value=2/3>", repr(sem))


def _search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None
