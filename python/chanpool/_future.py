"""chanpool.Future: a real concurrent.futures.Future that is cheap when nobody is watching.

A stock Future builds a threading.Condition up front and takes it on every state change, which
costs more than a trivial task itself. Here the condition is built on first use: the worker
threads (in Rust, holding the GIL) move an unobserved future from PENDING to RUNNING to FINISHED
with plain attribute writes, and fall back to the locked methods as soon as anyone has touched
the condition (result() waiting, add_done_callback, cancel, wait, as_completed, asyncio). Every
Python-level reader goes through ``_condition`` first, so the two paths never interleave.

result() and exception() do not wait on the condition either: they sleep on a native one-shot
event (``_signal``, a ``chanpool._core._OneShot``) with the GIL released, in slices so Ctrl-C (and
``_thread.interrupt_main``) gets through, and whoever finishes or cancels the future sets it (the
Rust worker right after its plain writes; the locked methods before running the callbacks). A
waiter installs the event before it reads the state and a completer writes the state before it
reads the event, both holding the GIL, so one of them always sees the other. Waiting leaves the
future unobserved, so the worker keeps its fast path; add_done_callback, wait, as_completed and
asyncio still use the condition and its waiters list.

An exception that is never retrieved is logged on the ``chanpool`` logger when the future is
garbage collected.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from concurrent.futures import _base
from typing import Any, Generator, Optional, TypeVar

__all__ = ["Future"]

_T = TypeVar("_T")

_PENDING = _base.PENDING
_RUNNING = _base.RUNNING
_CANCELLED = _base.CANCELLED
_CANCELLED_AND_NOTIFIED = _base.CANCELLED_AND_NOTIFIED
_FINISHED = _base.FINISHED

logger = logging.getLogger("chanpool")

# chanpool._core hands these in when it is imported (importing it here would be a circle: _core
# imports this module while it initialises). _wait_future(fut, timeout) installs the future's
# _OneShot and waits on it: it returns once FINISHED, raises CancelledError or TimeoutError.
_OneShot: Any = None
_wait_future: Any = None
# _finish_unobserved(fut, result, exc): set_result / set_exception's fast path for a future
# nobody observes (plain writes and the native wake, under the GIL); False: take the stock path.
_finish_unobserved: Any = None


class _UnretrievedException:
    """Logs the exception when collected unless someone looked at it first."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc: Optional[BaseException] = exc

    def __del__(self) -> None:
        exc = self.exc
        if exc is not None:
            self.exc = None
            logger.error(
                "chanpool Future exception was never retrieved",
                exc_info=(type(exc), exc, exc.__traceback__),
            )


class Future(cf.Future[_T]):
    """A concurrent.futures.Future (isinstance works, every method is the stock one's)."""

    # Class-level defaults: an instance stores only what changed.
    _state = _PENDING
    _result: Any = None
    _exception: Optional[BaseException] = None
    _cond: Optional[threading.Condition] = None
    _unretrieved: Optional[_UnretrievedException] = None
    _signal: Any = None  # a _OneShot once someone waits in result() / exception()
    _user = False  # made by Future() (the pool's futures skip __init__)

    def __init__(self) -> None:
        # For futures made in Python; the pool makes its own through tp_new and sets _state and
        # _result there, so a worker's attribute writes never allocate (and never run the GC).
        # Likewise every attribute _finish_unobserved writes for a set_result/set_exception.
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._unretrieved = None
        self._user = True

    def set_result(self, result: _T) -> None:
        # A future made here (not by a pool: its worker owns the state while nobody observes
        # it) that nobody observes is finished like a worker finishes one.
        if not (self._user and _finish_unobserved(self, result, None)):
            super().set_result(result)

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        cond = self._cond
        if cond is None:
            d = self.__dict__
            d.setdefault("_waiters", [])
            d.setdefault("_done_callbacks", [])
            cond = d.setdefault("_cond", threading.Condition())
        return cond

    def set_exception(self, exception: Optional[BaseException]) -> None:
        if self._user and exception is not None and _finish_unobserved(self, None, exception):
            return
        with self._condition:
            if self._state in (_PENDING, _RUNNING) and exception is not None:
                self._unretrieved = _UnretrievedException(exception)
            super().set_exception(exception)

    def _settle(self, result: object, exc: Optional[BaseException]) -> bool:
        """What set_result / set_exception do except running the done-callbacks, for a completer
        that hands them to another thread (a blocking callback must not delay the next future).
        Returns whether there are callbacks to run (``_invoke_callbacks()``)."""
        with self._condition:
            if exc is None:
                self._result = result
            else:
                self._unretrieved = _UnretrievedException(exc)
                self._exception = exc
            self._state = _FINISHED
            for waiter in self._waiters:
                if exc is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            self._condition.notify_all()
        self._wake()
        return bool(self._done_callbacks)  # type: ignore[attr-defined]

    def _wake(self) -> None:
        sig = self._signal
        if sig is not None:
            sig.set()

    def _invoke_callbacks(self) -> None:
        # Every stock path that finishes or cancels the future ends here: wake the result()
        # waiters before a slow callback can delay them.
        self._wake()
        super()._invoke_callbacks()  # type: ignore[misc]

    def _retrieved(self) -> None:
        u = self._unretrieved
        if u is not None:
            u.exc = None
            self._unretrieved = None

    def _finished_result(self) -> Any:
        exc = self._exception
        if exc is not None:
            self._retrieved()
            try:
                raise exc
            finally:
                # Break the cycle exception -> traceback -> frame -> self.
                exc = None
                self = None  # type: ignore[assignment]
        return self._result

    def _wait_finished(self, timeout: Optional[float]) -> None:
        if timeout is not None and timeout != timeout:
            # The stock Future's lock wait refuses NaN the same way.
            raise ValueError("Invalid value NaN (not a number)")
        _wait_future(self, timeout)

    def result(self, timeout: Optional[float] = None) -> _T:
        if self._state is not _FINISHED:
            self._wait_finished(timeout)
        if self._exception is None:
            value: _T = self._result  # the common case, without a further call
            return value
        result: _T = self._finished_result()
        return result

    def __await__(self) -> Generator[Any, None, _T]:
        """``await fut`` in a coroutine: asyncio.wrap_future's semantics (cancelling the await
        cancels the future if it has not started), woken through the loop's waker (_aio.py)."""
        from chanpool import _aio

        return _aio.await_future(self)  # type: ignore[no-any-return]

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if self._state is not _FINISHED:
            self._wait_finished(timeout)
        self._retrieved()
        return self._exception
