"""Go's errgroup and sync.WaitGroup tests, ported: ``golang.org/x/sync/errgroup/errgroup_test.go``
(TestZeroGroup, TestWithContext, TestGoLimit, TestTryGo, TestPanic's error half) and
``src/sync/waitgroup_test.go`` (TestWaitGroup, TestWaitGroupMisuse, TestWaitGroupRace).

Go is not Python, so the "original" side is a small reference model of the documented
semantics (``GoGroup``, ``GoWaitGroup`` below): every ``Go`` starts a goroutine (a thread) at
once, the first non-nil error is kept and cancels the derived context, ``Wait`` returns it and
cancels the context too, ``SetLimit`` bounds the active goroutines, a negative WaitGroup counter
panics. Both sides are driven through one vocabulary: a task returns an error (an exception
instance) or None, as a Go ``func() error``; on chanpool's side a returned error is raised, and
``wait`` reports what ``Group.wait()`` raised. Not ported: ``SetLimit`` changes on a used group
and ``SetLimit(0)`` (a chanpool group's limit is fixed at construction and at least 1),
``Goexit`` (no Python counterpart), the benchmarks and the examples.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import chanpool
import pytest

DEADLOCK = 20.0

# ---------------------------------------------------------------------------- the Go model


class GoPanic(Exception):
    """A run-time panic of the model (negative WaitGroup counter)."""


class GoWaitGroup:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._n = 0

    def add(self, n: int = 1) -> None:
        with self._cond:
            if self._n + n < 0:
                raise GoPanic("sync: negative WaitGroup counter")
            self._n += n
            if self._n == 0:
                self._cond.notify_all()

    def done(self) -> None:
        self.add(-1)

    def wait(self) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self._n == 0, DEADLOCK), "deadlock"


class GoGroup:
    """errgroup.Group (WithContext): a goroutine per Go, the first error kept."""

    def __init__(self, limit: Optional[int] = None) -> None:
        self._wg = GoWaitGroup()
        self._sem = threading.Semaphore(limit) if limit is not None else None
        self._lock = threading.Lock()
        self._err: Optional[BaseException] = None
        self.done = threading.Event()  # ctx.Done()

    def _run(self, fn: Callable[[], Optional[BaseException]]) -> None:
        try:
            err = fn()
        except BaseException as e:  # a panic in f: Wait re-panics with it
            err = e
        if err is not None:
            with self._lock:
                if self._err is None:
                    self._err = err
                    self.done.set()
        if self._sem is not None:
            self._sem.release()
        self._wg.done()

    def go(self, fn: Callable[[], Optional[BaseException]]) -> None:
        if self._sem is not None:
            assert self._sem.acquire(timeout=DEADLOCK), "deadlock"
        self._start(fn)

    def try_go(self, fn: Callable[[], Optional[BaseException]]) -> bool:
        if self._sem is not None and not self._sem.acquire(blocking=False):
            return False
        self._start(fn)
        return True

    def _start(self, fn: Callable[[], Optional[BaseException]]) -> None:
        self._wg.add(1)
        threading.Thread(target=self._run, args=(fn,), daemon=True).start()

    def wait(self) -> Optional[BaseException]:
        self._wg.wait()
        self.done.set()
        return self._err


class ChanpoolGroup:
    """The same vocabulary over chanpool.Group."""

    def __init__(self, limit: Optional[int] = None) -> None:
        self._g = chanpool.Group(limit=limit)
        self.done = self  # ctx.Done(): is_set() reads the group's context

    def is_set(self) -> bool:
        return self._g.context.cancelled

    @staticmethod
    def _task(fn: Callable[[], Optional[BaseException]]) -> Callable[[], None]:
        def task() -> None:
            err = fn()
            if err is not None:
                raise err

        return task

    def go(self, fn: Callable[[], Optional[BaseException]]) -> None:
        self._g.go(self._task(fn))

    def try_go(self, fn: Callable[[], Optional[BaseException]]) -> bool:
        return self._g.try_go(self._task(fn))

    def wait(self) -> Optional[BaseException]:
        try:
            self._g.wait(timeout=DEADLOCK)
        except TimeoutError:
            raise AssertionError("deadlock") from None
        except BaseException as e:
            return e
        return None


class Impl:
    def __init__(self, side: str) -> None:
        self.side = side
        self.group: Callable[..., Any] = GoGroup if side == "original" else ChanpoolGroup
        self.waitgroup: Callable[[], Any] = (
            GoWaitGroup if side == "original" else chanpool.WaitGroup
        )
        self.panic: type[BaseException] = GoPanic if side == "original" else ValueError


@pytest.fixture(params=["original", "chanpool"])
def impl(request: pytest.FixtureRequest) -> Impl:
    return Impl(request.param)


def go(fn: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------------------- errgroup_test.go

ERR1 = ValueError("errgroup_test: 1")
ERR2 = ValueError("errgroup_test: 2")


@pytest.mark.difference("go() after wait() raises RuntimeError")
def test_zero_group(impl: Impl) -> None:
    # Go calls Wait after every Go on the same group; a finished chanpool group refuses more
    # work (its context is cancelled, and it never starts work under a cancelled context), so
    # the chanpool side asserts that, then runs each prefix on a fresh group, one task at a time.
    cases: list[list[Optional[BaseException]]] = [
        [],
        [None],
        [ERR1],
        [ERR1, None],
        [ERR1, None, ERR2],
    ]
    for errs in cases:
        g = impl.group()
        first: Optional[BaseException] = None
        for i, err in enumerate(errs):
            if first is None and err is not None:
                first = err
            if impl.side == "original":
                g.go(lambda err=err: err)
                assert g.wait() is first
            else:
                # One at a time, as Go's Wait after each Go orders them.
                fresh = impl.group(limit=1)
                for e in errs[: i + 1]:
                    fresh.go(lambda e=e: e)
                assert fresh.wait() is first
        if impl.side == "chanpool" and errs:
            g.go(lambda: None)
            g.wait()
            with pytest.raises(RuntimeError, match="already waited"):
                g.go(lambda: None)


def test_with_context(impl: Impl) -> None:
    doom = ValueError("group_test: doomed")
    cases: list[tuple[list[Optional[BaseException]], Optional[BaseException]]] = [
        ([], None),
        ([None], None),
        ([doom], doom),
        ([doom, None], doom),
    ]
    for errs, want in cases:
        g = impl.group()
        for err in errs:
            g.go(lambda err=err: err)
        assert g.wait() is want
        assert g.done.is_set(), f"after Go(return err) for err in {errs}: ctx.Done() not closed"


def test_go_limit(impl: Impl) -> None:
    limit = 10
    g = impl.group(limit=limit)
    lock = threading.Lock()
    active = [0]

    def task() -> Optional[BaseException]:
        with lock:
            active[0] += 1
            n = active[0]
        if n > limit:
            return RuntimeError(f"saw {n} active goroutines; want <= {limit}")
        time.sleep(1e-6)
        with lock:
            active[0] -= 1
        return None

    for _ in range((1 << 10) + 1):
        g.go(task)
    assert g.wait() is None


@pytest.mark.difference("try_go() after wait() raises RuntimeError; no SetLimit changes")
def test_try_go(impl: Impl) -> None:
    n = 42
    g = impl.group(limit=n)
    ch = chanpool.Channel(0)

    def fn() -> None:
        ch.send(None, timeout=DEADLOCK)

    for i in range(n):
        assert g.try_go(fn), f"TryGo should succeed but got fail at {i}-th call."
    assert not g.try_go(fn), "TryGo is expected to fail but succeeded."
    drain = go(lambda: [ch.recv(timeout=DEADLOCK) for _ in range(n)])
    assert g.wait() is None
    drain.join(DEADLOCK)
    if impl.side == "original":
        assert g.try_go(fn), "TryGo should succeed but got fail after all goroutines."
        go(lambda: ch.recv(timeout=DEADLOCK))
        assert g.wait() is None
    else:
        with pytest.raises(RuntimeError):
            g.try_go(fn)


def test_panic_reaches_wait(impl: Impl) -> None:
    # TestPanic: a panic in a goroutine comes out of Wait with its value (Go re-panics).
    class Boom(BaseException):
        pass

    boom = Boom("errgroup_test: panic")

    def fn() -> None:
        raise boom

    g = impl.group()
    g.go(fn)
    assert g.wait() is boom


# ---------------------------------------------------------------------------- waitgroup_test.go


def _test_waitgroup(impl: Impl, wg1: Any, wg2: Any) -> None:
    n = 16
    wg1.add(n)
    wg2.add(n)
    exited = chanpool.Channel(n)

    def body() -> None:
        wg1.done()
        wg2.wait()
        exited.send(True)

    for _ in range(n):
        go(body)
    wg1.wait()
    for _ in range(n):
        _, ok = exited.try_recv()
        assert not ok, "WaitGroup released group too soon"
        wg2.done()
    for _ in range(n):
        exited.recv(timeout=DEADLOCK)  # blocks if the barrier fails to unlock someone


def test_waitgroup(impl: Impl) -> None:
    wg1, wg2 = impl.waitgroup(), impl.waitgroup()
    for _ in range(8):
        _test_waitgroup(impl, wg1, wg2)


def test_waitgroup_misuse(impl: Impl) -> None:
    wg = impl.waitgroup()
    wg.add(1)
    wg.done()
    with pytest.raises(impl.panic, match="negative WaitGroup counter"):
        wg.done()


def test_waitgroup_race(impl: Impl) -> None:
    def one_round() -> None:
        wg = impl.waitgroup()
        n = [0]
        lock = threading.Lock()

        def inc() -> None:
            with lock:
                n[0] += 1
            wg.done()

        wg.add(1)
        a = go(inc)
        wg.add(1)
        b = go(inc)
        wg.wait()
        assert n[0] == 2, "Spurious wakeup from Wait"
        a.join()
        b.join()

    for _ in range(1000):
        one_round()
