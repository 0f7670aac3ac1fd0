"""Go's errgroup for threads: run these, stop the rest on the first failure, wait for all.

A Group is thin Python over native parts: the counter is a native ``WaitGroup`` (waits with the
GIL released, Ctrl-C and timeouts honoured, refuses use after fork), the limit a native
``Semaphore`` (a blocked ``go()`` waits detached), the tasks run on a ``WorkerPool`` (the one
given, or the group's own, started on the first ``go()``), the cancellation is a ``Context``.
What is left in Python is one wrapper per task, which is what a per-task cost of about one
plain ``submit`` allows (ARCHITECTURE.md, "Groups").
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from chanpool import _core
from chanpool._context import Context, _current, current_context
from chanpool._pool import WorkerPool

__all__ = ["Group"]


class Group:
    """``chanpool.Group(*, context=None, limit=None, pool=None)``: Go's errgroup.Group with
    WithContext and SetLimit.

    ``go(fn, *args, **kwargs)`` starts a task, waiting (GIL released) while ``limit`` tasks are
    running; ``try_go`` returns False instead of waiting. ``wait()`` returns once every task has
    finished and raises the first task's exception; every failure is in ``exceptions``. The
    first failure cancels ``context`` (a child of ``context``, or of ``current_context()``):
    running tasks see it through ``current_context()``, queued ones never start. Used as a
    context manager the group waits on exit, and an exception in the body cancels it first.
    Tasks run on ``pool`` or on the group's own native threads (``limit`` of them, or the
    WorkerPool default). A group is done once ``wait()`` returned: ``go()`` then raises.
    """

    __slots__ = (
        "_ctx",
        "_errors",
        "_finished",
        "_limit",
        "_noted",
        "_own",
        "_pool",
        "_run",
        "_sem",
        "_wg",
    )

    def __init__(
        self,
        *,
        context: Optional[Context] = None,
        limit: Optional[int] = None,
        pool: Optional[_core.WorkerPool] = None,
    ) -> None:
        if context is not None and not isinstance(context, Context):
            raise TypeError(f"context must be a chanpool.Context, got {type(context).__name__}")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, got {type(limit).__name__}")
            if limit < 1:
                raise ValueError(f"limit must be >= 1, got {limit}")
        if pool is not None and not isinstance(pool, _core.WorkerPool):
            raise TypeError(f"pool must be a chanpool.WorkerPool, got {type(pool).__name__}")
        parent = context if context is not None else current_context()
        self._ctx = parent.with_cancel() if parent is not None else Context()
        self._limit = limit
        self._sem = _core.Semaphore(limit) if limit is not None else None
        self._wg = _core.WaitGroup()
        self._pool = pool
        self._own = pool is None
        self._errors: list[BaseException] = []
        self._finished = False
        self._noted = False
        self._run = self._task  # one bound method for every submit

    # -- starting

    def go(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Starts ``fn(*args, **kwargs)`` as a task, first waiting (GIL released, Ctrl-C
        honoured) while ``limit`` tasks are running. Once the group is cancelled the call is
        accepted and dropped: it never starts."""
        if not callable(fn):
            raise TypeError(f"go() needs a callable, got {type(fn).__name__}")
        if self._sem is not None:
            self._sem.acquire()
        self._start(fn, args, kwargs)

    def try_go(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> bool:
        """``go()`` without waiting: False (and nothing started) when ``limit`` tasks are
        running."""
        if not callable(fn):
            raise TypeError(f"try_go() needs a callable, got {type(fn).__name__}")
        sem = self._sem
        if sem is not None and not sem.try_acquire():
            return False
        self._start(fn, args, kwargs)
        return True

    def _start(self, fn: Callable[..., object], args: Any, kwargs: Any) -> None:
        """After the permit (if any) is held: refuse on a finished or cancelled group, else
        count the task and submit it; a failure to count or submit gives the permit back."""
        if self._finished or self._ctx._err is not None:
            self._refuse()
            return
        try:
            self._wg.add(1)
        except BaseException:
            if self._sem is not None:
                self._sem.release()
            raise
        try:
            (self._pool or self._own_pool()).submit(self._run, fn, args, kwargs)
        except BaseException:
            self._settle()
            raise

    def _refuse(self) -> None:
        """A go() on a finished group raises; on a cancelled one the call is dropped."""
        if self._sem is not None:
            self._sem.release()
        if self._finished:
            raise RuntimeError("this Group was already waited for; make a new one")

    def _own_pool(self) -> WorkerPool:
        pool = self._pool = WorkerPool(self._limit, thread_name_prefix="chanpool-group")
        return pool

    def _task(self, fn: Callable[..., object], args: Any, kwargs: Any) -> None:
        """One task on a worker: skipped if the group is cancelled, run under its context, a
        failure recorded and the group cancelled before the task counts as finished."""
        ctx = self._ctx
        if ctx._err is None:
            token = _current.set(ctx)
            try:
                fn(*args, **kwargs)
            except BaseException as e:  # handed to wait()
                # The group's own cancellation, raised by raise_if_cancelled(), is no failure
                # of its own.
                if e is not ctx._err:
                    self._errors.append(e)
                    ctx.cancel()
            finally:
                _current.reset(token)
        # _settle, inlined. The permit goes back before the count: once wait() returns, so has
        # every permit.
        if self._sem is not None:
            self._sem.release()
        self._wg.done()

    def _settle(self) -> None:
        if self._sem is not None:
            self._sem.release()
        self._wg.done()

    # -- waiting

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits (GIL released) until every task has finished, then cancels the group's
        context and raises the first task's exception, if any (a note on it says how many
        others failed; all of them are in ``exceptions``). TimeoutError if ``timeout`` passes
        first (the tasks go on). Ctrl-C (or any exception) while waiting cancels the group."""
        try:
            finished = self._wg.wait(timeout)
        except BaseException:
            self._ctx.cancel()
            raise
        if not finished:
            raise TimeoutError(f"the group's tasks did not finish within {timeout} s")
        self._finish()
        self._raise()

    async def wait_async(self, timeout: Optional[float] = None) -> None:
        """For coroutines: ``wait()`` on the event loop (``WaitGroup.wait_async``). A
        cancelled await cancels the group."""
        try:
            finished = await self._wg.wait_async(timeout)
        except BaseException:
            self._ctx.cancel()
            raise
        if not finished:
            raise TimeoutError(f"the group's tasks did not finish within {timeout} s")
        self._finish()
        self._raise()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._ctx.cancel()
        if self._own and self._pool is not None:
            # Every task has finished: its threads only have to notice and exit.
            self._pool.shutdown(wait=True)

    def _raise(self) -> None:
        errors = self._errors
        if not errors:
            return
        first = errors[0]
        if len(errors) > 1 and not self._noted:
            self._noted = True
            first.add_note(f"chanpool.Group: {len(errors) - 1} other task(s) failed too")
        raise first

    # -- observing

    @property
    def context(self) -> Context:
        """The group's context: cancelled by the first failure, and once ``wait()`` returns."""
        return self._ctx

    @property
    def limit(self) -> Optional[int]:
        return self._limit

    @property
    def running(self) -> int:
        """Tasks counted in and not finished (queued or running)."""
        return self._wg.count

    @property
    def exceptions(self) -> tuple[BaseException, ...]:
        """Every task failure so far, first first (the group's own cancellation excluded)."""
        return tuple(self._errors)

    def exception_group(self) -> Optional[BaseExceptionGroup[BaseException]]:
        """All the failures as one (Base)ExceptionGroup, for ``except*``; None if none."""
        if not self._errors:
            return None
        return BaseExceptionGroup("chanpool.Group tasks failed", list(self._errors))

    def __enter__(self) -> Group:
        return self

    def __exit__(self, exc_type: object, exc: Optional[BaseException], tb: object) -> None:
        if exc is None:
            self.wait()
            return
        # The body failed: stop the tasks, wait for them, and let the body's exception go on
        # (the tasks' failures stay in ``exceptions``).
        self._ctx.cancel()
        if self._wg.wait(None):
            self._finish()

    def __repr__(self) -> str:
        state = "cancelled" if self._ctx.cancelled else "active"
        if self._finished:
            state = "finished"
        return (
            f"<chanpool.Group {state}: running={self._wg.count} "
            f"failed={len(self._errors)} limit={self._limit}>"
        )
