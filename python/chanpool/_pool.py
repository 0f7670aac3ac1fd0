"""WorkerPool as exported: the native pool plus the parts that are natural in Python."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from chanpool import _core
from chanpool._context import Context, _run_in
from chanpool._future import Future

__all__ = ["WorkerPool"]

_T = TypeVar("_T")


class WorkerPool(_core.WorkerPool):
    __doc__ = _core.WorkerPool.__doc__

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
