"""Context from coroutines: done_async, and task_scope tying a context to an asyncio task both
ways."""

from __future__ import annotations

import asyncio
import threading

import chanpool
import pytest

from tests.helpers import watchdog


def test_done_async_wakes_when_cancelled_from_another_thread():
    async def scenario():
        ctx = chanpool.Context()
        waiters = [asyncio.ensure_future(ctx.done_async()) for _ in range(10)]
        await asyncio.sleep(0)
        t = threading.Thread(target=ctx.cancel)
        t.start()
        results = await asyncio.gather(*waiters)
        t.join()
        return results

    assert watchdog(lambda: asyncio.run(scenario())) == [True] * 10


def test_done_async_timeout_and_deadline():
    async def scenario():
        assert await chanpool.Context().done_async(0.01) is False
        assert await chanpool.Context().done_async(0) is False
        ctx = chanpool.Context().with_timeout(0.02)
        assert await ctx.done_async() is True
        assert isinstance(ctx.err, chanpool.DeadlineExceeded)
        assert await ctx.done_async() is True  # already ended

    watchdog(lambda: asyncio.run(scenario()))
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(chanpool.Context().done_async(float("nan")))


def test_cancelled_done_async_leaves_nothing_behind():
    async def scenario():
        ctx = chanpool.Context()
        for _ in range(100):
            t = asyncio.ensure_future(ctx.done_async())
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
        last = asyncio.ensure_future(ctx.done_async())
        await asyncio.sleep(0)
        ctx.cancel()
        return await last

    assert watchdog(lambda: asyncio.run(scenario())) is True


def test_task_cancel_cancels_the_scope_context_and_the_pool_work_sees_it():
    pool = chanpool.WorkerPool(2)
    started = threading.Event()
    try:

        async def scenario():
            seen = {}

            async def body():
                async with chanpool.Context().task_scope() as ctx:
                    seen["ctx"] = ctx
                    fut = pool.submit_with(ctx, lambda: (started.set(), ctx.wait(30))[1])
                    await fut

            t = asyncio.ensure_future(body())
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            return seen["ctx"]

        ctx = watchdog(lambda: asyncio.run(scenario()))
        assert isinstance(ctx.err, chanpool.Cancelled)
    finally:
        pool.shutdown(wait=True)


def test_context_cancel_from_a_thread_cancels_the_awaiting_task():
    async def scenario():
        parent = chanpool.Context()
        entered = threading.Event()
        threading.Thread(target=lambda: (entered.wait(30), parent.cancel())).start()
        with pytest.raises(chanpool.Cancelled):
            async with parent.task_scope():
                entered.set()
                await asyncio.sleep(60)
        # The task itself is not left cancelled: it goes on.
        await asyncio.sleep(0)
        return asyncio.current_task().cancelling()

    assert watchdog(lambda: asyncio.run(scenario())) == 0


def test_deadline_cancels_the_scope_with_deadline_exceeded():
    async def scenario():
        with pytest.raises(chanpool.DeadlineExceeded):
            async with chanpool.Context().with_timeout(0.02).task_scope():
                await asyncio.Event().wait()

    watchdog(lambda: asyncio.run(scenario()))


def test_scope_that_ends_normally_cancels_its_child_only():
    async def scenario():
        parent = chanpool.Context()
        async with parent.task_scope() as child:
            pass
        return parent.cancelled, child.cancelled

    assert watchdog(lambda: asyncio.run(scenario())) == (False, True)


def test_an_outer_cancel_is_not_swallowed_by_the_scope():
    async def scenario():
        ctx = chanpool.Context()

        async def body():
            async with ctx.task_scope():
                await asyncio.sleep(60)

        t = asyncio.ensure_future(body())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    watchdog(lambda: asyncio.run(scenario()))
