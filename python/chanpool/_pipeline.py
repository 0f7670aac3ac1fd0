"""fan_out and pipeline: stages of native worker threads joined by channels, Go-style.

Each stage's workers receive from the stage's input, call the stage function and send to its
output. A stage's output closes when its last worker is done, so closing spreads downstream on
its own, and so do errors: the first exception in a stage (its function, its input closed with
an error, the source iterator) stops that stage, which closes its output with the exception
after the results it already produced; downstream stages pass those on, then fail the same way,
so the consumer reads every result that got out ahead of the error, then gets the error.
Upstream stages are cancelled at once, as are all stages when the caller's context ends or the
consumer closes the output. Stage functions see their stage's context as ``current_context()``.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Callable, TypeVar, Union

from chanpool._context import Context, _current
from chanpool._core import Channel, WorkerPool, select
from chanpool._errors import Closed

__all__ = ["fan_out", "pipeline"]

_T = TypeVar("_T")
_R = TypeVar("_R")

DEFAULT_CAPACITY = 64

Stage = Union[Callable[[Any], Any], tuple[Callable[[Any], Any], int]]


def _root(context: Context | None) -> Context:
    if context is not None and not isinstance(context, Context):
        raise TypeError(f"context must be a chanpool.Context, got {type(context).__name__}")
    return (context or Context()).with_cancel()


# Stages still running at interpreter exit are cancelled first, so no worker is left blocked on
# a channel while the pools' exit hook waits for it.
_live: weakref.WeakSet[Context] = weakref.WeakSet()


@atexit.register
def _cancel_live_runs() -> None:
    for ctx in list(_live):
        ctx.cancel()


# Pools stop (and wait for running work) in threading's exit hooks, before atexit: cancel there
# too. Registered after chanpool._core's hook, so it runs before it.
threading._register_atexit(_cancel_live_runs)  # type: ignore[attr-defined]


class _Source:
    """The input of a stage: a Channel, or any iterable read under a lock."""

    def __init__(self, source: Channel[Any] | Iterable[Any]) -> None:
        self.chan: Channel[Any] | None = None
        self.iter: Iterator[Any] | None = None
        if isinstance(source, Channel):
            self.chan = source
        elif isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
            raise TypeError(f"source must be a Channel or an iterable, got {type(source).__name__}")
        else:
            self.iter = iter(source)
            self.lock = threading.Lock()

    def next(self, done: Channel[Any]) -> tuple[Any, bool]:
        """(item, True), or (None, False) once the input is exhausted or the run has ended.
        Raises the error an input channel was closed with."""
        if self.iter is not None:
            with self.lock:
                for item in self.iter:
                    return item, True
                return None, False
        chan = self.chan
        assert chan is not None
        try:
            item, ok = chan.try_recv()
            if ok:
                return item, True
            index, item, ok = select([chan, done])
            if index == 0 and ok:
                return item, True
            if index == 0:
                chan.try_recv()  # closed and drained: raises its close error, or Closed
        except Closed:
            pass
        return None, False


class _Stage:
    def __init__(
        self,
        source: _Source,
        fn: Callable[[Any], Any],
        workers: int,
        out: Channel[Any],
        root: Context,
        upstream: list[_Stage],
    ) -> None:
        self.source, self.fn, self.out, self.upstream = source, fn, out, upstream
        self.ctx = root.with_cancel()
        self.error: BaseException | None = None
        self.stopped = False
        self.left = workers
        self.lock = threading.Lock()
        _live.add(root)

    def stop(self, error: BaseException | None) -> None:
        """Ends this stage (its workers finish their current item) and cancels upstream."""
        with self.lock:
            if error is not None and self.error is None:
                self.error = error
            self.stopped = True
        for stage in self.upstream:
            stage.ctx.cancel()

    def work(self) -> None:
        ctx, out, fn, source = self.ctx, self.out, self.fn, self.source
        done = ctx.done
        token = _current.set(ctx)
        try:
            while not self.stopped and ctx.err is None:
                item, ok = source.next(done)
                if not ok:
                    break
                if not self.send(fn(item)):
                    break
        except BaseException as e:  # goes downstream with the output's close
            self.stop(e)
        finally:
            _current.reset(token)
            with self.lock:
                self.left -= 1
                last = self.left == 0
            if last:
                out.close(self.error if self.error is not None else ctx.err)

    def send(self, result: Any) -> bool:
        """Passes a result on; False when the stage has ended or the consumer closed the output."""
        out = self.out
        try:
            if out.try_send(result):
                return True
            index, _, _ = select([(out, result), self.ctx.done])
            return index == 0
        except Closed:
            # The consumer closed the output: nobody wants more, so stop everything upstream.
            self.stop(None)
            self.ctx.cancel()
            return False


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


def _start(stage: _Stage, workers: int) -> None:
    pool = WorkerPool(workers, thread_name_prefix="chanpool-stage")
    try:
        for _ in range(workers):
            pool.submit(stage.work)
    finally:
        pool.shutdown(wait=False)  # its threads end with the stage


def _check_stage(fn: object, what: str) -> Callable[[Any], Any]:
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
    return fn


def fan_out(
    source: Channel[_T] | Iterable[_T],
    fn: Callable[[_T], _R],
    workers: int = 4,
    *,
    capacity: int | None = DEFAULT_CAPACITY,
    context: Context | None = None,
) -> Channel[_R]:
    """Calls ``fn`` on every item of ``source`` on ``workers`` native threads.

    Results arrive on the returned channel in completion order; it closes when the source is
    exhausted (a Channel closed, an iterable ended) and all calls have returned. The first
    exception stops the workers; the output closes with it once the calls in progress have
    delivered their results. Cancelling ``context`` does the same with the context's error.
    """
    fn = _check_stage(fn, "fn")
    n = _check_workers(workers)
    src = _Source(source)
    out: Channel[_R] = Channel(capacity)
    _start(_Stage(src, fn, n, out, _root(context), []), n)
    return out


def pipeline(
    source: Channel[Any] | Iterable[Any],
    *stages: Stage,
    workers: int = 1,
    capacity: int | None = DEFAULT_CAPACITY,
    context: Context | None = None,
) -> Channel[Any]:
    """Chains stages: each is a function, or a ``(function, workers)`` pair overriding
    ``workers`` for that stage. Returns the last stage's output channel.

    With one worker a stage keeps the order of its input. Errors and cancellation behave as in
    fan_out, across the whole pipeline: the first failure stops every stage.
    """
    if not stages:
        raise ValueError("pipeline() needs at least one stage")
    plan: list[tuple[Callable[[Any], Any], int]] = []
    default = _check_workers(workers)
    for i, stage in enumerate(stages):
        if isinstance(stage, tuple):
            if len(stage) != 2:
                raise TypeError(f"stage {i}: a tuple stage is (function, workers)")
            plan.append((_check_stage(stage[0], f"stage {i}"), _check_workers(stage[1])))
        else:
            plan.append((_check_stage(stage, f"stage {i}"), default))
    src = _Source(source)
    root = _root(context)
    built: list[tuple[_Stage, int]] = []
    out: Channel[Any] | None = None
    for fn, n in plan:
        # Between stages both ends wait in select(): selects meet on any channel, unbuffered
        # ones included, so every channel has the capacity asked for.
        out = Channel(capacity)
        built.append((_Stage(src, fn, n, out, root, [b for b, _ in built]), n))
        src = _Source(out)
    for st, n in built:
        _start(st, n)
    assert out is not None
    return out
