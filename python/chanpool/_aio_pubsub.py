"""The coroutines behind PubSub's async face: pull ``get_async`` / ``async for``,
``publish_async``, and async handlers.

They follow ``chanpool._aio``'s protocol: a wait is a notify-only registration in the
subscription's mailbox (``Mailbox::pop_or_register`` / ``push_or_register`` in the core), woken
through the loop's waker on the mailbox's transitions; the woken coroutine commits with the
non-blocking step on its own loop thread. An async handler's subscription is a mailbox read
like a pull one by ``workers`` consumer tasks on the handler's loop: the dispatch threads never
call into the loop, and a batch of messages costs one wake-up.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import queue
from typing import Any, Optional

from chanpool._aio import _deadline, _round, on_close, waker
from chanpool._errors import Closed

__all__ = ["anext", "close", "get", "handler_loop", "publish", "start"]

logger = logging.getLogger("chanpool")


# Pull subscriptions.


async def get(sub: Any, timeout: Optional[float]) -> Any:
    m = sub._aio_try(False)
    if m is not None:
        return m
    if timeout == 0:
        raise queue.Empty
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    while True:
        fut = loop.create_future()
        v, ok = sub._aio_get(w, fut, False)
        if ok:
            return v
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            # Nothing was taken; a wake-up this get got goes to the next reader.
            sub._aio_leave(v)
            raise
        if not woken:
            sub._aio_leave(v)
            raise queue.Empty


async def anext(sub: Any) -> Any:
    try:
        return await get(sub, None)
    except Closed:
        raise StopAsyncIteration from None


# Publishing.


async def publish(bus: Any, topic: Any, data: Any) -> int:
    p = bus._aio_publish(topic, data)
    if type(p) is int:
        return p
    loop = asyncio.get_running_loop()
    w = waker(loop)
    while True:
        fut = loop.create_future()
        n = p.step(w, fut)
        if n is not None:
            return int(n)
        try:
            await fut
        except BaseException:
            # The subscriptions not reached yet never get it (README).
            p.cancel()
            raise


async def close(bus: Any, drain: bool, timeout: Optional[float]) -> bool:
    loop = asyncio.get_running_loop()
    done: bool = await loop.run_in_executor(None, functools.partial(bus.close, drain, timeout))
    return done


# Async handlers.


def handler_loop(handler: Any, loop: Any) -> Any:
    """The loop an async handler runs on, or None for a plain handler (subscribe's check)."""
    if not inspect.iscoroutinefunction(handler):
        if loop is not None:
            raise ValueError("loop= is for async handlers (coroutine functions)")
        return None
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "an async handler runs on an event loop: subscribe from a coroutine, or pass loop="
            ) from None
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop, got {type(loop).__name__}")
    if loop.is_closed():
        raise RuntimeError("loop is closed")
    return loop


class _Consumers:
    """The consumer tasks of one async subscription. When the last one ends without the
    subscription having ended (its loop stopped or closed), the subscription ends too: what is
    queued is discarded, counted and logged, as at interpreter exit."""

    __slots__ = ("busy", "live", "over", "sub", "tasks")

    def __init__(self, sub: Any) -> None:
        self.sub = sub
        self.live = 0
        self.busy = 0  # messages a handler call has, not yet done
        self.tasks: set[asyncio.Task[None]] = set()
        self.over = False

    def abandon(self) -> None:
        if self.over:
            return
        self.over = True
        for _ in range(self.busy):
            self.sub._aio_dropped()
        self.busy = 0
        n = self.sub._aio_abandon()
        if n:
            logger.warning(
                "async subscription %r: its event loop stopped with %d queued message(s); "
                "discarded",
                self.sub.pattern,
                n,
            )


def start(sub: Any, loop: asyncio.AbstractEventLoop, handler: Any, workers: int, rate: Any) -> None:
    """Starts ``workers`` consumer tasks on ``loop`` (at once if it runs in this thread)."""
    c = _Consumers(sub)

    def spawn() -> None:
        if c.over:
            return
        waker(loop)  # so that closing the loop runs on_close
        on_close(loop, c.abandon)
        for _ in range(workers):
            t = loop.create_task(_consume(sub, handler, rate, c))
            # A loop closed with the task pending: abandon() accounts for its messages.
            t._log_destroy_pending = False  # type: ignore[attr-defined]
            c.tasks.add(t)
            c.live += 1

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        spawn()
    else:
        loop.call_soon_threadsafe(spawn)


async def _consume(sub: Any, handler: Any, rate: Any, c: _Consumers) -> None:
    loop = asyncio.get_running_loop()
    w = waker(loop)
    try:
        while True:
            msg = sub._aio_try(True)
            if msg is None:
                fut = loop.create_future()
                v, ok = sub._aio_get(w, fut, True)
                if not ok:
                    try:
                        await fut
                    except BaseException:
                        sub._aio_leave(v)
                        raise
                    continue
                msg = v
            c.busy += 1
            try:
                if rate is not None:
                    await rate.acquire_async(1)
                await handler(msg)
            except Exception as e:
                c.busy -= 1
                sub._aio_done(msg, e)
            except BaseException:
                c.busy -= 1
                sub._aio_dropped()
                raise
            else:
                c.busy -= 1
                sub._aio_done(msg, None)
    except Closed:
        pass
    finally:
        c.live -= 1
        if c.live == 0:
            c.abandon()
