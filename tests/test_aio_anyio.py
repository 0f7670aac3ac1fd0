"""chanpool's async API under anyio's asyncio backend (trio is not supported: README)."""

from __future__ import annotations

import threading

import anyio
import chanpool

from tests.helpers import watchdog


def test_channel_between_anyio_tasks_and_a_thread():
    n = 500

    async def main():
        ch = chanpool.Channel(2)
        got = []

        async def consume():
            async for v in ch:
                got.append(v)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(consume)
            t = threading.Thread(target=lambda: ([ch.send(i) for i in range(n)], ch.close()))
            t.start()
            await anyio.to_thread.run_sync(t.join)
        return sorted(got)

    assert watchdog(lambda: anyio.run(main, backend="asyncio")) == list(range(n))


def test_anyio_cancel_scope_cancels_a_recv_async_without_consuming():
    async def main():
        ch = chanpool.Channel(1)
        with anyio.move_on_after(0.02):
            await ch.recv_async()
        ch.send("kept")
        return await ch.recv_async()

    assert watchdog(lambda: anyio.run(main, backend="asyncio")) == "kept"


def test_semaphore_pool_and_context_under_anyio():
    async def main():
        sem = chanpool.Semaphore(1)
        pool = chanpool.WorkerPool(2)
        try:
            async with sem:
                r = await pool.run(sum, [1, 2, 3])
            ctx = chanpool.Context().with_timeout(0.01)
            assert await ctx.done_async() is True
            return r, sem.available
        finally:
            pool.shutdown(wait=True)

    assert watchdog(lambda: anyio.run(main, backend="asyncio")) == (6, 1)
