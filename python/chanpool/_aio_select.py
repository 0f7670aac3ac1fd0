"""``chanpool.select_async``: select for coroutines, natively (no thread per await).

Each round tries every case (in random order, so ready cases are chosen uniformly) and, if
none is ready, registers the round's asyncio future on every case's channel in the same
critical section (``_core._SelectWait.step``): one notify-only registration per channel, and
the values of send cases on unbuffered channels parked in one withdrawable offer. Woken, the
coroutine runs the next round on its loop thread. Cancelled or timed out, it leaves every
registration (``leave``): a wake-up it got goes to the next waiter, so it has received
nothing and sent nothing, except a send case's offer a receiver had already taken on an
unbuffered channel (as ``send_async``: a timeout then returns that case; a cancellation is
still raised).
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Iterable, Optional

from chanpool import _core
from chanpool._aio import _deadline, _round, waker

__all__ = ["select_async"]


def select_async(
    cases: Iterable[Any],
    *,
    timeout: Optional[float] = None,
    default: bool = False,
) -> Coroutine[Any, Any, tuple[Optional[int], Any, bool]]:
    """``await select_async(cases, timeout=None, default=False)``: ``chanpool.select`` for
    coroutines (same cases, same result, same errors; bad cases raise at the call)."""
    return _select(_core._SelectWait(cases, timeout, default))


async def _select(sel: Any) -> tuple[Optional[int], Any, bool]:
    r = sel.step()
    if r is not None:
        return r  # type: ignore[no-any-return]
    timeout = sel.timeout
    if timeout == 0:
        raise TimeoutError("select timed out")
    loop = asyncio.get_running_loop()
    w = waker(loop)
    deadline = _deadline(loop, timeout)
    while True:
        fut = loop.create_future()
        r = sel.step(w, fut)
        if r is not None:
            return r  # type: ignore[no-any-return]
        try:
            woken = await _round(loop, fut, deadline)
        except BaseException:
            sel.leave()
            raise
        if not woken:
            r = sel.leave()
            if r is not None:
                return r  # type: ignore[no-any-return]
            raise TimeoutError("select timed out")
