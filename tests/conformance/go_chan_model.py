"""The "original" side of test_go_chan.py: a reference model of Go's channel semantics, the
vocabulary both sides are driven through, and goroutines (threads) for the ported tests.

The model is written for clarity, not speed: one lock for every channel; each blocked
operation (a select included) is a waiter that whoever completes it completes exactly once;
select polls its cases in a random order, so it chooses uniformly among the ready ones. Go's
panics (send on a closed channel, closing twice) are raised as ``GoPanic``; Go's zero value is
``None``.
"""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import chanpool
import pytest
from helpers import WATCHDOG, all_stacks

DEADLOCK = 20.0  # a blocking operation that waits this long is taken for a deadlock
SHORT = 0.02  # how long an operation that must block is given before it counts as blocked

# ---------------------------------------------------------------------------- the Go model


class GoPanic(Exception):
    """A run-time panic of the Go model: send on a closed channel, close of a closed channel."""


_MODEL = threading.Lock()
_SENT_ON_CLOSED = object()


class _Waiter:
    """A blocked goroutine's operation (recv, send or a whole select): completed exactly once."""

    def __init__(self) -> None:
        self.done = False
        self.result: tuple[int | None, Any, bool] = (None, None, False)
        self.cond = threading.Condition(_MODEL)


class ModelChan:
    def __init__(self, cap: int = 0) -> None:
        if cap < 0:
            raise ValueError("makechan: size out of range")
        self.cap = cap
        self.buf: collections.deque[Any] = collections.deque()
        self.closed = False
        # (waiter, case index, value) of blocked receives and sends, oldest first.
        self.recvq: collections.deque[tuple[_Waiter, int, Any]] = collections.deque()
        self.sendq: collections.deque[tuple[_Waiter, int, Any]] = collections.deque()

    def __len__(self) -> int:
        return len(self.buf)


def _first_live(q: collections.deque[tuple[_Waiter, int, Any]]) -> tuple[_Waiter, int, Any] | None:
    while q:
        entry = q.popleft()
        if not entry[0].done:
            return entry
    return None


def _complete(w: _Waiter, result: tuple[int | None, Any, bool]) -> None:
    w.done, w.result = True, result
    w.cond.notify()


def _attempt(i: int, ch: ModelChan, is_send: bool, value: Any) -> tuple[int, Any, bool] | None:
    """Case i, if it can proceed now (the model lock held)."""
    if is_send:
        if ch.closed:
            raise GoPanic("send on closed channel")
        r = _first_live(ch.recvq)
        if r is not None:
            _complete(r[0], (r[1], value, True))
            return i, None, True
        if len(ch.buf) < ch.cap:
            ch.buf.append(value)
            return i, None, True
        return None
    if ch.buf:
        v = ch.buf.popleft()
        s = _first_live(ch.sendq)
        if s is not None:  # room again: the oldest blocked sender's value joins the buffer
            ch.buf.append(s[2])
            _complete(s[0], (s[1], None, True))
        return i, v, True
    s = _first_live(ch.sendq)
    if s is not None:
        _complete(s[0], (s[1], None, True))
        return i, s[2], True
    if ch.closed:
        return i, None, False
    return None


def model_select(
    cases: list[Any], timeout: float | None = None, default: bool = False
) -> tuple[int | None, Any, bool]:
    parsed = [(c, False, None) if isinstance(c, ModelChan) else (c[0], True, c[1]) for c in cases]
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    with _MODEL:
        order = list(range(len(parsed)))
        random.shuffle(order)
        for i in order:
            r = _attempt(i, *parsed[i])
            if r is not None:
                return r
        if default:
            return None, None, False
        w = _Waiter()
        for i in order:
            ch, is_send, value = parsed[i]
            (ch.sendq if is_send else ch.recvq).append((w, i, value))
        while not w.done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            w.cond.wait(left)
        for ch, _, _ in parsed:
            ch.recvq = collections.deque(e for e in ch.recvq if e[0] is not w)
            ch.sendq = collections.deque(e for e in ch.sendq if e[0] is not w)
        if not w.done:
            w.done = True
            raise TimeoutError("select timed out")
        if w.result[1] is _SENT_ON_CLOSED:
            raise GoPanic("send on closed channel")
        return w.result


def model_close(ch: ModelChan) -> None:
    with _MODEL:
        if ch.closed:
            raise GoPanic("close of closed channel")
        ch.closed = True
        while (r := _first_live(ch.recvq)) is not None:
            _complete(r[0], (r[1], None, False))
        while (s := _first_live(ch.sendq)) is not None:
            _complete(s[0], (s[1], _SENT_ON_CLOSED, False))


# ---------------------------------------------------------------------------- the two sides


def _blocking(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return f(*args, **kwargs)  # every channel operation runs here: see blocked()


_BLOCKING_LINE = _blocking.__code__.co_firstlineno + 1


class GoModel:
    name = "original"
    Panic: type[BaseException] = GoPanic

    def make(self, cap: int = 0) -> Any:
        return ModelChan(cap)

    def select(
        self, cases: list[Any], timeout: float | None = DEADLOCK, default: bool = False
    ) -> tuple[int | None, Any, bool]:
        return _blocking(model_select, cases, timeout=timeout, default=default)  # type: ignore[no-any-return]

    def send(self, c: Any, v: Any, timeout: float | None = DEADLOCK) -> None:
        self.select([(c, v)], timeout)

    def recv(self, c: Any, timeout: float | None = DEADLOCK) -> Any:
        return self.select([c], timeout)[1]

    def recv2(self, c: Any, timeout: float | None = DEADLOCK) -> tuple[Any, bool]:
        _, v, ok = self.select([c], timeout)
        return v, ok

    def close(self, c: Any) -> None:
        model_close(c)

    def len(self, c: Any) -> int:
        return len(c)

    def cap(self, c: Any) -> int:
        return int(c.cap)

    def range(self, c: Any) -> Iterator[Any]:
        while True:
            v, ok = self.recv2(c)
            if not ok:
                return
            yield v


class Chanpool(GoModel):
    name = "chanpool"
    Panic = chanpool.Closed

    def make(self, cap: int = 0) -> Any:
        return chanpool.Channel(cap)

    def select(
        self, cases: list[Any], timeout: float | None = DEADLOCK, default: bool = False
    ) -> tuple[int | None, Any, bool]:
        if default:
            return _blocking(chanpool.select, cases, default=True)  # type: ignore[no-any-return]
        return _blocking(chanpool.select, cases, timeout=timeout)  # type: ignore[no-any-return]

    def send(self, c: Any, v: Any, timeout: float | None = DEADLOCK) -> None:
        _blocking(c.send, v, timeout=timeout)

    def recv(self, c: Any, timeout: float | None = DEADLOCK) -> Any:
        return _blocking(c.recv, timeout=timeout)

    def recv2(self, c: Any, timeout: float | None = DEADLOCK) -> tuple[Any, bool]:
        try:
            return _blocking(c.recv, timeout=timeout), True
        except chanpool.Closed:
            return None, False

    def close(self, c: Any) -> None:
        c.close()

    def cap(self, c: Any) -> int:
        return int(c.capacity)


# ---------------------------------------------------------------------------- goroutines


class Go:
    """A goroutine: a daemon thread whose exception is re-raised by join()."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.error: BaseException | None = None
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.result = fn(*args)
        except BaseException as e:
            self.error = e

    def join(self) -> Any:
        self.thread.join(WATCHDOG)
        if self.thread.is_alive():
            pytest.fail(f"goroutine did not finish (deadlock?)\n{all_stacks()}")
        if self.error is not None:
            raise self.error
        return self.result

    def blocked(self) -> bool:
        """Waits until the goroutine has been inside one channel operation for a while."""
        deadline = time.monotonic() + WATCHDOG
        since = None
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                return False
            frame = sys._current_frames().get(self.thread.ident or 0)
            inside = False
            while frame is not None:
                if frame.f_code is _blocking.__code__:
                    inside = frame.f_lineno == _BLOCKING_LINE
                    break
                frame = frame.f_back
            if inside:
                since = since or time.monotonic()
                if time.monotonic() - since >= SHORT:
                    return True
            else:
                since = None
            time.sleep(0.0005)
        return False


def join_all(gs: list[Go]) -> list[Any]:
    return [g.join() for g in gs]


def blocks(f: Callable[[float], Any]) -> bool:
    """Go's testBlock: True if ``f(timeout)`` does not finish within a short timeout."""
    try:
        f(SHORT)
    except TimeoutError:
        return True
    return False
