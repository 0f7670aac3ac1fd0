"""WorkerPool as exported: the native pool plus the parts that are natural in Python.

It is a ``concurrent.futures.ThreadPoolExecutor`` (and so an ``Executor``) for isinstance
checks such as ``loop.set_default_executor``, without any of that class's machinery: every
method the executor protocol uses is the native one, ``__init__`` does not run the stock
one (no work queue, no Python threads), and the stock class's private helpers are hidden.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Literal, Optional, TypeVar

from chanpool import _aio, _core
from chanpool._context import Context, _run_in
from chanpool._future import Future

if TYPE_CHECKING:
    import asyncio

__all__ = ["WorkerPool"]

_T = TypeVar("_T")

logger = logging.getLogger("chanpool")


class _Hidden:
    """A ThreadPoolExecutor helper that has no meaning here: reads as a missing attribute."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: Optional[type] = None) -> Any:
        raise AttributeError(f"'WorkerPool' object has no attribute {self.name!r}")


# The native class answers ThreadPoolExecutor's private attributes with read-only properties.
class WorkerPool(_core.WorkerPool, cf.ThreadPoolExecutor):  # type: ignore[misc, override]
    __doc__ = _core.WorkerPool.__doc__

    # The stock executor's thread machinery, which must never run on a WorkerPool.
    _adjust_thread_count = _Hidden()
    _initializer_failed = _Hidden()
    _counter = _Hidden()

    def __init__(
        self,
        max_workers: Optional[int] = None,
        *,
        queue_size: int = 0,
        thread_name_prefix: str = "",
        initializer: Optional[Callable[..., object]] = None,
        initargs: Any = (),
        rate_limit: Any = None,
        contextvars: object = False,
    ) -> None:
        """max_workers threads at most, started on demand (default min(32, cpus + 4)); a
        bounded queue of queue_size jobs (0: unbounded); initializer(*initargs) runs first
        in every thread; rate_limit is a TokenBucket or a number of calls per second;
        contextvars=True runs every submit/map call in a copy of the submitter's context."""
        # Everything happened in the native __new__; ThreadPoolExecutor.__init__ must not run.
        # Logged here rather than natively: logging can release the GIL, which a daemon
        # thread must not do inside a native call while the interpreter exits.
        logger.debug(
            "WorkerPool %s started: max_workers=%d queue_size=%d",
            self._thread_name_prefix,
            self.max_workers,
            self.queue_size,
        )

    def shutdown(  # type: ignore[override]
        self,
        wait: object = True,
        *,
        cancel_futures: object = False,
        timeout: Optional[float] = None,
    ) -> bool:
        """Stops accepting work; optionally cancels what is still queued and waits (at most
        ``timeout`` seconds) for workers. Returns whether every worker has stopped (False on a
        timeout: the pool is shut down all the same; ThreadPoolExecutor returns None)."""
        stopped: bool = super().shutdown(wait, cancel_futures=cancel_futures, timeout=timeout)
        logger.debug("WorkerPool %s shut down", self._thread_name_prefix)
        return stopped

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> Literal[False]:
        self.shutdown(wait=True)
        return False

    def run(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> asyncio.Future[_T]:
        """For coroutines: ``await pool.run(fn, *args, **kwargs)`` runs fn on the pool in a copy
        of the caller's contextvars (as asyncio.to_thread). Submitted at once; returns an
        asyncio future of the running loop (no task, no coroutine in between: gather takes it
        as it is), resolved on the loop through its waker. Cancelling it cancels the call if
        it has not started; a call cancelled in the pool (shutdown) cancels it."""
        if not callable(fn):
            raise TypeError(f"run() needs a callable, got {type(fn).__name__}")
        return _aio.run(self, fn, args, kwargs)

    def map_async(
        self, fn: Callable[..., _T], /, *iterables: Any, buffersize: Optional[int] = None
    ) -> AsyncIterator[_T]:
        """For coroutines: ``async for r in pool.map_async(fn, items)`` yields fn's results in
        order, with at most ``buffersize`` calls (default 2 x max_workers) submitted and not
        yet yielded; the iterables are read as results are taken. Each result is a native
        Future await. An error is raised at its item; leaving early cancels what is queued."""
        if not callable(fn):
            raise TypeError(f"map_async() needs a callable, got {type(fn).__name__}")
        if buffersize is None:
            n = 2 * self.max_workers
        elif isinstance(buffersize, bool) or not isinstance(buffersize, int):
            raise TypeError(f"buffersize must be an int, got {type(buffersize).__name__}")
        elif buffersize < 1:
            raise ValueError(f"buffersize must be at least 1, got {buffersize}")
        else:
            n = buffersize
        return _map_async(self, fn, zip(*iterables, strict=False), n)

    def submit_with(
        self, context: Context, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> Future[_T]:
        """Like submit(), under a Context: if the context ends while the call is queued, the
        future is cancelled and the call never starts; while it runs, ``current_context()``
        returns the context so the call can check it and stop early."""
        if not isinstance(context, Context):
            raise TypeError(f"context must be a chanpool.Context, got {type(context).__name__}")
        if not callable(fn):
            raise TypeError(f"submit_with() needs a callable, got {type(fn).__name__}")
        fut: Future[_T] = self.submit(_run_in, context, fn, args, kwargs)
        unregister = context.on_cancel(fut.cancel)
        fut.add_done_callback(lambda _: unregister())
        return fut


async def _map_async(
    pool: WorkerPool, fn: Callable[..., _T], args: Iterator[tuple[Any, ...]], n: int
) -> AsyncIterator[_T]:
    """map_async's iterator: a window of ``n`` futures, refilled as each result is taken."""
    window: deque[Future[_T]] = deque()
    try:
        for a in args:
            window.append(pool.submit(fn, *a))
            if len(window) >= n:
                break
        while window:
            r = await window.popleft()
            nxt = next(args, None)
            if nxt is not None:
                window.append(pool.submit(fn, *nxt))
            yield r
    finally:
        for f in window:
            f.cancel()


def _in_context(ctx: contextvars.Context, fn: Callable[..., _T]) -> Callable[..., _T]:
    """A map's function under contextvars=True: each call runs in its own copy of ``ctx``."""

    def call(*args: Any) -> _T:
        return ctx.copy().run(fn, *args)

    return call
