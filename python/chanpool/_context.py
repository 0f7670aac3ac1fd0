"""Go's context for Python threads: cancellation and deadlines that flow from parent to child.

A Context is cancelled once, by ``cancel()``, by its deadline, or by its parent; after that
``err`` says why and ``done`` (a closed Channel) wakes everyone waiting on it or selecting on it,
with the GIL released. Deadlines of every context share one timer thread, which never runs user
code: the callbacks of contexts it ends run on callback threads, so a slow or failing callback
delays no other deadline. Timeouts follow Go's WithTimeout: negative means already expired, inf
(or anything the clock cannot reach) means never; NaN is a ValueError.

Work started with ``WorkerPool.submit_with(ctx, ...)`` sees its context as ``current_context()``;
queued work whose context is cancelled never starts.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import heapq
import itertools
import logging
import math
import os
import queue
import threading
import time
import weakref
from typing import Any, Callable, Optional, TypeVar

from chanpool._core import Channel, select

__all__ = [
    "Cancelled",
    "Context",
    "DeadlineExceeded",
    "current_context",
    "run_with_timeout",
]


_T = TypeVar("_T")
logger = logging.getLogger("chanpool")


class Cancelled(cf.CancelledError):
    """The context was cancelled (Go's ``context.Canceled``)."""


# Before 3.11 concurrent.futures had its own TimeoutError; be both wherever they differ.
_TIMEOUT_ERRORS: tuple[type[BaseException], ...]
_TIMEOUT_ERRORS = (TimeoutError,)


class DeadlineExceeded(Cancelled, *_TIMEOUT_ERRORS):  # type: ignore[misc]
    """The context's deadline passed (Go's ``context.DeadlineExceeded``); also a TimeoutError."""


# What ending one context leaves to do: its children to end, its callbacks to run.
_Ended = tuple[set["Context"], list[Callable[[], object]]]

_current: contextvars.ContextVar[Optional[Context]] = contextvars.ContextVar(
    "chanpool_context", default=None
)


def current_context() -> Context | None:
    """The context the running task was submitted with, if any."""
    return _current.get()


def _check_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float: as far away as inf
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        raise ValueError(f"{what} must not be NaN")
    return seconds


class Context:
    """A cancellation scope. ``Context()`` is a root that only ``cancel()`` ends.

    Children made with ``with_cancel``, ``with_timeout`` or ``with_deadline`` end when their
    parent does, never the other way round. Used as a context manager, a context is cancelled
    on exit, like Go's ``defer cancel()``.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_children",
        "_deadline",
        "_done",
        "_err",
        "_lock",
        "_parent",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parent: Context | None = None
        self._err: BaseException | None = None
        self._done: Channel[Any] = Channel(0)
        self._deadline: float | None = None
        self._children: set[Context] = set()
        self._callbacks: dict[int, Callable[[], object]] = {}

    # -- making children

    def with_cancel(self) -> Context:
        """A child that can be cancelled on its own."""
        child = Context()
        child._deadline = self._deadline
        self._adopt(child)
        return child

    def with_timeout(self, timeout: float) -> Context:
        """A child cancelled with DeadlineExceeded ``timeout`` seconds from now."""
        seconds = _check_seconds(timeout, "timeout")
        return self.with_deadline(time.monotonic() + seconds)

    def with_deadline(self, deadline: float) -> Context:
        """A child cancelled with DeadlineExceeded at ``deadline`` (a time.monotonic() value).

        A deadline already passed ends the child before it is returned; an infinite one means
        none (the parent's, if it has one)."""
        when: float | None = _check_seconds(deadline, "deadline")
        if when == math.inf:
            when = None
        child = Context()
        if when is None or (self._deadline is not None and self._deadline <= when):
            child._deadline = self._deadline
        else:
            child._deadline = when
        self._adopt(child)
        if child._deadline is not None and child._deadline != self._deadline:
            if child._deadline <= time.monotonic():
                child._expire()
            else:
                _timer.schedule(child)
        return child

    def _adopt(self, child: Context) -> None:
        child._parent = self
        with self._lock:
            err = self._err
            if err is None:
                self._children.add(child)
        if err is not None:
            child._end(err)

    # -- ending

    def cancel(self) -> bool:
        """Cancels this context and its children; False if it had already ended.

        Every callback of every context it ends runs, on this thread, even when one raises:
        what they raise is logged on the ``chanpool`` logger, except that a KeyboardInterrupt
        or SystemExit (the first one) is raised again here once all of them have run."""
        return self._end(Cancelled("context cancelled"))

    def _end(self, err: BaseException, *, from_timer: bool = False) -> bool:
        """Ends this context and every descendant still active (iteratively: a chain of any
        depth), then runs their callbacks, descendants' first: here, or from the timer on a
        callback thread."""
        first = self._end_one(err)
        if first is None:
            return False
        ended = [first]
        stack = list(first[0])
        while stack:
            got = stack.pop()._end_one(err)
            if got is not None:
                ended.append(got)
                stack.extend(got[0])
        callbacks = [fn for _, fns in reversed(ended) for fn in fns]
        if callbacks:
            if from_timer:
                _callbacks.submit(callbacks)
            else:
                _run_callbacks(callbacks, reraise=True)
        return True

    def _end_one(self, err: BaseException) -> _Ended | None:
        """Ends this context alone: (its children, its callbacks), or None if it had ended."""
        with self._lock:
            if self._err is not None:
                return None
            self._err = err
            children, self._children = self._children, set()
            callbacks, self._callbacks = self._callbacks, {}
        self._done.close()
        _timer.forget(self)
        parent, self._parent = self._parent, None
        if parent is not None:
            # A child that ends first must not stay reachable from a long-lived parent.
            with parent._lock:
                parent._children.discard(self)
        return children, list(callbacks.values())

    def _expire(self, *, from_timer: bool = False) -> None:
        self._end(DeadlineExceeded("context deadline exceeded"), from_timer=from_timer)

    # -- observing

    @property
    def done(self) -> Channel[Any]:
        """A channel that is closed when the context ends: receive or select on it to wait."""
        return self._done

    @property
    def err(self) -> BaseException | None:
        """None while active; then a Cancelled or DeadlineExceeded instance."""
        return self._err

    @property
    def cancelled(self) -> bool:
        return self._err is not None

    @property
    def deadline(self) -> float | None:
        """The time.monotonic() instant this context expires, if it has a deadline."""
        return self._deadline

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0.0 once passed); None without a deadline."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def wait(self, timeout: float | None = None) -> bool:
        """Waits (GIL released) until the context ends; False if ``timeout`` passed first.
        None, inf or a timeout beyond what the clock can reach waits for as long as it takes."""
        if timeout is not None:
            timeout = max(0.0, _check_seconds(timeout, "timeout"))
        if self._err is not None:
            return True
        try:
            self._done.recv(timeout)
        except TimeoutError:
            return self._err is not None
        except Exception:
            return True
        raise AssertionError("nothing is ever sent on a context's done channel")

    async def done_async(self, timeout: float | None = None) -> bool:
        """For coroutines: waits on the event loop until the context ends; False if
        ``timeout`` passed first (the same rules as ``wait``)."""
        if timeout is not None:
            timeout = max(0.0, _check_seconds(timeout, "timeout"))
        if self._err is not None:
            return True
        try:
            await self._done.recv_async(timeout)
        except TimeoutError:
            return self._err is not None
        except Exception:
            return True
        raise AssertionError("nothing is ever sent on a context's done channel")

    def task_scope(self) -> _TaskScope:
        """``async with ctx.task_scope() as child:`` ties a child context to the current
        asyncio task both ways. The child is cancelled when the block ends, so when the task
        is cancelled (work given ``child``, e.g. ``pool.submit_with(child, ...)``, sees it);
        and if the child ends first (``cancel()`` from any thread, its parent, its deadline),
        the task is cancelled and the block raises the child's ``err`` (Cancelled or
        DeadlineExceeded) instead of CancelledError, as asyncio.timeout raises TimeoutError."""
        return _TaskScope(self)

    def raise_if_cancelled(self) -> None:
        """Raises ``err`` if the context has ended: a cheap check for long-running work."""
        err = self._err
        if err is not None:
            raise err.with_traceback(None)  # the same instance each time, without stale frames

    def on_cancel(self, fn: Callable[[], object]) -> Callable[[], None]:
        """Calls ``fn()`` once when the context ends (at once if it has). Returns a function
        that unregisters it."""
        if not callable(fn):
            raise TypeError(f"on_cancel() takes a callable, got {type(fn).__name__}")
        key = next(_keys)
        with self._lock:
            if self._err is None:
                self._callbacks[key] = fn
                registered = True
            else:
                registered = False
        if not registered:
            fn()

        def unregister() -> None:
            with self._lock:
                self._callbacks.pop(key, None)

        return unregister

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        if self._err is not None:
            state = type(self._err).__name__
        elif self._deadline is not None:
            left = self.remaining() or 0.0
            state = f"active, {left:.3f}s left" if left < 1e9 else f"active, {left:.3g}s left"
        else:
            state = "active"
        return f"<chanpool.Context {state}>"


_keys = itertools.count()


class _TaskScope:
    """``Context.task_scope()``: see there."""

    def __init__(self, parent: Context) -> None:
        self._parent = parent
        self._ended_by_context = False
        self._exited = False

    async def __aenter__(self) -> Context:
        import asyncio

        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("task_scope() must be used inside an asyncio task")
        loop = asyncio.get_running_loop()
        self._task = task
        self._cancelling = task.cancelling()
        self._ctx = child = self._parent.with_cancel()

        def cancel_task() -> None:  # on the loop thread
            if not self._exited:
                self._ended_by_context = True
                task.cancel()

        def ended() -> None:  # any thread
            try:
                loop.call_soon_threadsafe(cancel_task)
            except RuntimeError:  # the loop is closed: nothing left to cancel
                pass

        self._unregister = child.on_cancel(ended)
        return child

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        import asyncio

        self._exited = True
        self._unregister()
        err = self._ctx.err
        if (
            self._ended_by_context
            and exc_type is asyncio.CancelledError
            and self._task.uncancel() <= self._cancelling
            and err is not None
        ):
            raise err.with_traceback(None) from None
        # The block is over (done, failed, or its task cancelled): so is its context.
        self._ctx.cancel()


def _run_callbacks(callbacks: list[Callable[[], object]], *, reraise: bool) -> None:
    """Runs every callback even when one raises, logging what they raise. With ``reraise``
    (on the thread that called cancel()), the first KeyboardInterrupt or SystemExit is raised
    again once all have run instead of being logged."""
    again: BaseException | None = None
    for fn in callbacks:
        try:
            fn()
        except BaseException as e:  # every callback runs; see the docstring for what is kept
            if reraise and again is None and not isinstance(e, Exception):
                again = e
            else:
                logger.error("context callback failed", exc_info=(type(e), e, e.__traceback__))
    if again is not None:
        try:
            raise again
        finally:
            again = None


# A callback thread waits this long for more work before it exits.
_IDLE = 5.0


class _Callbacks:
    """Runs the callbacks of the contexts the timer ends, off the timer thread.

    A callback thread starts whenever callbacks arrive and no thread is idle (the idle count
    is a semaphore, as in ThreadPoolExecutor), so a slow callback holds up only the ones that
    came with it; idle threads exit after a while. Callbacks that raise are logged, whatever
    they raise.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[list[Callable[[], object]]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)

    def submit(self, callbacks: list[Callable[[], object]]) -> None:
        self._jobs.put(callbacks)
        if self._idle.acquire(blocking=False):
            return
        try:
            threading.Thread(
                target=self._run, name="chanpool-context-callbacks", daemon=True
            ).start()
        except RuntimeError:
            # No new threads while the interpreter shuts down: run what is queued right here.
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            _run_callbacks(job, reraise=False)

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE)
            except queue.Empty:
                # Idle for a while: leave, unless a submit counted on us meanwhile (it took our
                # token, and its job is on its way).
                if self._idle.acquire(blocking=False):
                    return
                continue
            _run_callbacks(job, reraise=False)
            del job
            self._idle.release()

    def _after_fork(self) -> None:
        # The threads did not survive the fork; the callbacks queued belong to the parent.
        self.__init__()  # type: ignore[misc]


_callbacks = _Callbacks()

# The timer waits at most this long at a time (threading's waits refuse timeouts above
# _thread.TIMEOUT_MAX, about 292 years: a deadline of 1e300 s is simply looked at again then).
_MAX_WAIT = 3600.0


class _Timer:
    """One daemon thread expiring every deadline, earliest first. It never dies and never runs
    user code: the callbacks of what it ends go to ``_callbacks``.

    Pending contexts are held strongly (in ``_live``): whoever only kept ``ctx.done`` must still
    see it close. The heap itself holds weak references, so a context that ended some other way
    is released at once; its stale entry is skipped, and purged now and then.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, weakref.ref[Context]]] = []
        self._live: dict[int, Context] = {}
        self._thread: threading.Thread | None = None

    def schedule(self, ctx: Context) -> None:
        assert ctx._deadline is not None
        with self._cond:
            key = id(ctx)
            self._live[key] = ctx
            heapq.heappush(self._heap, (ctx._deadline, next(_keys), weakref.ref(ctx)))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="chanpool-context-timer", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2]() is ctx:
                self._cond.notify()

    def forget(self, ctx: Context) -> None:
        with self._cond:
            self._live.pop(id(ctx), None)
            # Purge ended entries now and then so early-cancelled contexts do not pile up.
            if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
                self._heap = [e for e in self._heap if self._is_live(e[2]())]
                heapq.heapify(self._heap)

    def _is_live(self, ctx: Context | None) -> bool:
        return ctx is not None and self._live.get(id(ctx)) is ctx

    def _due(self) -> list[Context]:
        """Waits for the earliest deadline; the contexts that are due, taken off the books."""
        due: list[Context] = []
        with self._cond:
            while not due:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    ctx = heapq.heappop(self._heap)[2]()
                    if self._is_live(ctx):
                        assert ctx is not None
                        del self._live[id(ctx)]
                        due.append(ctx)
                if due:
                    break
                wait = min(self._heap[0][0] - now, _MAX_WAIT) if self._heap else None
                self._cond.wait(wait)
        return due

    def _run(self) -> None:
        while True:
            try:
                due = self._due()
                while due:
                    due.pop()._expire(from_timer=True)
            except BaseException:  # the timer must outlive anything; say what happened
                logger.exception("chanpool context timer: unexpected error (deadlines go on)")

    def _after_fork(self) -> None:
        # The thread did not survive the fork; contexts inherited with deadlines are rescheduled.
        self._cond = threading.Condition(threading.Lock())
        self._thread = None
        pending = [ctx for ctx in self._live.values() if ctx._err is None]
        self._heap = []
        self._live = {}
        for ctx in pending:
            self.schedule(ctx)


_timer = _Timer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_callbacks._after_fork)
    os.register_at_fork(after_in_child=_timer._after_fork)


def _run_in(ctx: Context, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
    ctx.raise_if_cancelled()
    token = _current.set(ctx)
    try:
        return fn(*args, **kwargs)
    finally:
        _current.reset(token)


def run_with_timeout(fn: Callable[..., _T], timeout: float, /, *args: Any, **kwargs: Any) -> _T:
    """Runs ``fn(*args, **kwargs)`` on its own thread and returns its result, or raises
    DeadlineExceeded (a TimeoutError) after ``timeout`` seconds (Go's DoWorkWithTimeout).

    Python cannot stop a thread: on timeout ``fn`` keeps running, but its ``current_context()``
    is cancelled so cooperative code can notice and return. The thread is a daemon, so a call
    that never returns does not hold up interpreter exit. The deadline is also bounded by the
    caller's own context when there is one.
    """
    if not callable(fn):
        raise TypeError(f"run_with_timeout() takes a callable, got {type(fn).__name__}")
    seconds = _check_seconds(timeout, "timeout")
    ctx = (current_context() or Context()).with_timeout(seconds)
    fut: cf.Future[_T] = cf.Future()
    finished: Channel[Any] = Channel(0)

    def body() -> None:
        try:
            if fut.set_running_or_notify_cancel():
                try:
                    result = _run_in(ctx, fn, args, kwargs)
                except BaseException as e:  # handed to the caller
                    fut.set_exception(e)
                else:
                    fut.set_result(result)
        finally:
            finished.close()

    name = getattr(fn, "__qualname__", None) or repr(fn)
    threading.Thread(target=body, name=f"chanpool-timeout-{name}", daemon=True).start()
    try:
        try:
            select([finished, ctx.done], timeout=seconds)
        except TimeoutError:
            pass
        if fut.done():
            return fut.result()  # it may have finished right at the deadline
        fut.cancel()
        ctx._expire()
        err = ctx.err
        assert err is not None
        if isinstance(err, DeadlineExceeded) and err.args == ("context deadline exceeded",):
            raise DeadlineExceeded(f"{name} did not finish within {seconds} s") from None
        raise err.with_traceback(None)  # the caller's own context ended first
    finally:
        ctx.cancel()
