"""The coroutines behind chanpool's async methods, and the per-loop waker they share.

A wait is registered in the Rust core (a notify-only registration holding the coroutine's
asyncio future), never a thread per await. Whoever makes progress possible, on any thread,
pushes the registration onto its loop's pending queue (``_core._LoopWaker``); the first push
into an empty queue writes one byte to the loop's wake-up pipe, and the loop's reader
(``_drain``) resolves every pending future that is not cancelled, on the loop thread. The
coroutine then commits with the non-blocking operation, here, where no cancellation can race
it. A coroutine that leaves a wait it was woken for (cancelled, timed out) passes the wake-up
on to the next waiter, so nothing is lost and a cancelled receive consumes nothing.

This module is the foundation later async faces (PubSub, map) build on: ``waker(loop)`` for
the loop's waker, ``_core._AioWait(waker, fut)`` as a done-callback that wakes ``fut``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import weakref
from typing import Any, Optional, TypeVar

from chanpool import _core
from chanpool._errors import Closed

__all__ = ["await_future", "on_close", "run", "waker"]

_T = TypeVar("_T")

_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _core._LoopWaker] = (
    weakref.WeakKeyDictionary()
)
# Callbacks to run when a loop closes (async handlers end their subscriptions there).
_on_close: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Any]] = (
    weakref.WeakKeyDictionary()
)
# The last loop looked up and its waker: most programs have one loop.
_last: tuple[Any, Any] = (None, None)


def waker(loop: asyncio.AbstractEventLoop) -> _core._LoopWaker:
    """The waker of ``loop`` (made on first use; ``loop`` must be running in this thread)."""
    global _last
    if _last[0] is loop:
        cached: _core._LoopWaker = _last[1]
        return cached
    w = _wakers.get(loop)
    if w is None:
        _sweep()
        w = _core._LoopWaker()
        try:
            loop.add_reader(w.fileno(), _drain, w)
        except NotImplementedError:
            # Windows' ProactorEventLoop has no add_reader (README: Windows).
            raise RuntimeError(
                f"chanpool's async methods need an event loop with add_reader(); "
                f"{type(loop).__name__} has none (on Windows use asyncio.SelectorEventLoop)"
            ) from None
        _wakers[loop] = w
        _kill_on_close(loop, w)
    _last = (loop, w)
    return w


def _drain(w: _core._LoopWaker) -> None:
    """The loop's reader of its wake-up pipe: every woken future that is not cancelled
    resolves (its coroutine then retries)."""
    for fut in w.take():
        if not fut.done():
            fut.set_result(None)


def _kill_on_close(loop: asyncio.AbstractEventLoop, w: _core._LoopWaker) -> None:
    """Closing the loop kills its waker first: wake-ups it got and never drained, and any
    that come later, go to the next waiter instead of a loop that will not run again."""
    close = loop.close

    def closing() -> None:
        if not loop.is_running() and not loop.is_closed():
            w.kill()
            loop.remove_reader(w.fileno())
            for fn in _on_close.pop(loop, ()):
                fn()
        close()

    try:
        loop.close = closing  # type: ignore[method-assign]
    except AttributeError:  # a loop type without instance attributes: see _sweep
        pass


def on_close(loop: asyncio.AbstractEventLoop, fn: Any) -> None:
    """Runs ``fn()`` when ``loop`` (whose waker exists) is closed."""
    _on_close.setdefault(loop, []).append(fn)


def _sweep() -> None:
    """Wakers of closed loops stop listening: their wake-ups go to the next waiter."""
    for loop, w in list(_wakers.items()):
        if loop.is_closed():
            w.kill()
            del _wakers[loop]
            for fn in _on_close.pop(loop, ()):
                fn()


# A timeout resolves the round's future with this (cancelling would look like the caller's
# cancel): the coroutine then leaves its wait as a cancelled one does and raises TimeoutError,
# unless what it waited for happened first (an unbuffered offer taken: the send succeeded).
_EXPIRED = object()


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(_EXPIRED)


def _deadline(loop: asyncio.AbstractEventLoop, timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else loop.time() + timeout


async def _round(loop: asyncio.AbstractEventLoop, fut: Any, deadline: Optional[float]) -> bool:
    """Waits for one wake-up; False if the deadline came first."""
    if deadline is None:
        await fut
        return True
    timer = loop.call_at(deadline, _expire, fut)
    try:
        return await fut is not _EXPIRED
    finally:
        timer.cancel()


# Channel.


async def recv(ch: Any, timeout: Optional[float]) -> Any:
    v, ok = ch.try_recv()
    if ok:
        return v
    if timeout == 0:
        raise TimeoutError("recv timed out")
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    while True:
        fut = loop.create_future()
        v, ok = ch._aio_recv(w, fut)
        if ok:
            return v
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            ch._aio_leave(v, True)
            raise
        if not woken:
            ch._aio_leave(v, True)
            raise TimeoutError("recv timed out")


async def send(ch: Any, item: Any, timeout: Optional[float]) -> None:
    if ch.try_send(item):
        return
    if timeout == 0:
        raise TimeoutError("send timed out")
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    while True:
        fut = loop.create_future()
        h = ch._aio_send(item, w, fut)
        if h is None:
            return
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            # Withdrawn, or (unbuffered) delivered if a receiver took the offer first: the
            # cancellation is raised either way (README).
            ch._aio_leave(h, False)
            raise
        if not woken:
            if ch._aio_leave(h, False):
                return
            raise TimeoutError("send timed out")
        if ch._aio_settle(h):
            return


async def anext(ch: Any) -> Any:
    try:
        return await recv(ch, None)
    except Closed:
        if ch._aio_ended_cleanly():
            raise StopAsyncIteration from None
        raise


# Semaphore and TokenBucket.


async def sem_acquire(sem: Any, n: int, timeout: Optional[float]) -> bool:
    if sem.try_acquire(n):
        return True
    if timeout == 0:
        return False
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    woken = False
    while True:
        fut = loop.create_future()
        reg = _core._AioWait(w, fut)
        # The permits are taken here, on the loop thread: no cancellation can come between.
        if sem._aio_acquire(n, reg, woken):
            return True
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            sem._aio_leave(reg)
            raise
        if not woken:
            sem._aio_leave(reg)
            return False


async def wg_wait(wg: Any, timeout: Optional[float]) -> bool:
    """WaitGroup.wait_async: every registration is woken when the counter reaches zero; a
    round that finds it above zero again (a later add) registers anew."""
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    while True:
        fut = loop.create_future()
        reg = _core._AioWait(w, fut)
        if wg._aio_zero(reg):
            return True
        if timeout == 0:
            wg._aio_leave(reg)
            return False
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            wg._aio_leave(reg)
            raise
        if not woken:
            wg._aio_leave(reg)
            return bool(wg.count == 0)


async def sem_release(sem: Any) -> None:
    sem.release()


async def nothing() -> None:
    pass


async def bucket_acquire(bucket: Any, n: int, timeout: Optional[float]) -> bool:
    if bucket.try_acquire(n):
        return True
    if timeout == 0:
        return False
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    while True:
        fut = loop.create_future()
        reg = _core._AioWait(w, fut)
        ok, delay = bucket._aio_acquire(n, reg)
        if ok:
            return True
        if deadline is not None and loop.time() >= deadline:
            if delay is None:
                bucket._aio_leave(reg)
            return False
        if delay is not None:
            # Not registered: the tokens will be there after `delay`; sleep until then.
            when = loop.time() + delay
            await _round(loop, fut, when if deadline is None else min(when, deadline))
            continue
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            bucket._aio_leave(reg)
            raise
        if not woken:
            bucket._aio_leave(reg)


# Futures and pools.


def await_future(fut: cf.Future[_T]) -> Any:
    """``fut.__await__()``: asyncio.wrap_future's semantics, woken through the loop's waker."""
    return _await_future(fut).__await__()


async def _await_future(fut: cf.Future[_T]) -> _T:
    if not fut.done():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        fut.add_done_callback(_core._AioWait(waker(loop), done))
        try:
            await done
        except BaseException:
            # As wrap_future: cancelling the await cancels the future if it has not started.
            fut.cancel()
            raise
    if fut.cancelled():
        raise asyncio.CancelledError()
    return fut.result()


class _Relay:
    """Stands in the waker's queue for ``pool.run``'s asyncio future: the drain's (or the
    same-loop path's) ``set_result`` copies the pool future's outcome into it."""

    __slots__ = ("dst", "src")

    def __init__(self, dst: asyncio.Future[Any], src: cf.Future[Any]) -> None:
        self.dst = dst
        self.src = src

    def done(self) -> bool:
        return self.dst.done()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.dst.get_loop()

    def set_result(self, _: object) -> None:
        src, dst = self.src, self.dst
        if src.cancelled():
            dst.cancel()
            return
        exc = src.exception()
        if exc is None:
            dst.set_result(src.result())
        else:
            dst.set_exception(exc)


def _cancel_call(src: cf.Future[Any], dst: asyncio.Future[Any]) -> None:
    # As asyncio.to_thread: cancelling the await cancels the call if it has not started.
    if dst.cancelled():
        src.cancel()


def run(pool: Any, fn: Any, args: Any, kwargs: Any) -> asyncio.Future[Any]:
    """``pool.run``: the call's outcome lands in an asyncio future of the running loop."""
    loop = asyncio.get_running_loop()
    w = _last[1] if _last[0] is loop else waker(loop)
    src = pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)
    dst = loop.create_future()
    src.add_done_callback(_core._AioWait(w, _Relay(dst, src)))
    dst.add_done_callback(functools.partial(_cancel_call, src))
    return dst
