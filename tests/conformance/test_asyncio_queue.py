"""CPython 3.13 ``Lib/test/test_asyncio/test_queues.py`` (QueueBasicTests, QueueGetTests,
QueuePutTests: get/put, cancellation of getters and putters keeping items, maxsize), ported.

Each test runs against the original (``asyncio.Queue``) and against chanpool: ``ChanQueue``
below, a thin asyncio.Queue-shaped adapter over a Channel's async face (``send_async`` /
``recv_async`` / ``try_send`` / ``try_recv``; maxsize <= 0 is an unbounded channel). The
adapter adds no synchronisation of its own. Tests that count ``asyncio.sleep(0)`` steps are
marked as differences where chanpool's wake-ups take one loop iteration longer (they come
through the loop's wake-up pipe, so any thread can send them); their chanpool side waits for
the same outcome with bounded yields instead. Tests of private members (``_getters``,
``_putters``) check chanpool's registrations are gone through the observable equivalent: a
later operation is not held up by them.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import chanpool
import pytest


class ChanQueue:
    """asyncio.Queue's surface over a chanpool.Channel."""

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._ch: chanpool.Channel[Any] = chanpool.Channel(maxsize if maxsize > 0 else None)

    async def put(self, item: Any) -> None:
        await self._ch.send_async(item)

    async def get(self) -> Any:
        return await self._ch.recv_async()

    def put_nowait(self, item: Any) -> None:
        if not self._ch.try_send(item):
            raise asyncio.QueueFull

    def get_nowait(self) -> Any:
        v, ok = self._ch.try_recv()
        if not ok:
            raise asyncio.QueueEmpty
        return v

    def qsize(self) -> int:
        return len(self._ch)

    def empty(self) -> bool:
        return len(self._ch) == 0

    def full(self) -> bool:
        return self._ch.full()


@pytest.fixture(params=["original", "chanpool"])
def impl(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    q = asyncio.Queue if request.param == "original" else ChanQueue
    return types.SimpleNamespace(name=request.param, Queue=q)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def until(pred: Any, steps: int = 1000) -> None:
    """Yields to the loop until pred() holds (a bound, not a sleep: each step is one yield)."""
    for _ in range(steps):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# QueueBasicTests


def test_empty(impl):
    async def body():
        q = impl.Queue()
        assert q.empty()
        await q.put(1)
        assert not q.empty()
        assert await q.get() == 1
        assert q.empty()

    run(body())


def test_full(impl):
    async def body():
        q = impl.Queue()
        assert not q.full()
        q = impl.Queue(maxsize=1)
        await q.put(1)
        assert q.full()

    run(body())


def test_order(impl):
    async def body():
        q = impl.Queue()
        for i in [1, 3, 2]:
            await q.put(i)
        assert [await q.get() for _ in range(3)] == [1, 3, 2]

    run(body())


def _maxsize_body(impl, exact_steps: bool):
    async def body():
        q = impl.Queue(maxsize=2)
        assert q.maxsize == 2
        have_been_put = []

        async def putter():
            for i in range(3):
                await q.put(i)
                have_been_put.append(i)
            return True

        t = asyncio.create_task(putter())
        for _ in range(2):
            await asyncio.sleep(0)
        assert have_been_put == [0, 1]
        assert await q.get() == 0
        if exact_steps:
            await asyncio.sleep(0)
        else:
            await until(lambda: len(have_been_put) == 3)
        assert have_been_put == [0, 1, 2]
        assert await q.get() == 1
        assert await q.get() == 2
        if not exact_steps:
            await until(t.done)
        assert t.done()
        assert t.result()

    return body()


@pytest.mark.difference("a woken putter resumes one loop iteration later (wake-up pipe)")
def test_maxsize(impl):
    run(_maxsize_body(impl, exact_steps=impl.name == "original"))


# QueueGetTests


def test_blocking_get(impl):
    async def body():
        q = impl.Queue()
        q.put_nowait(1)
        assert await q.get() == 1

    run(body())


def test_nonblocking_get(impl):
    q = impl.Queue()
    q.put_nowait(1)
    assert q.get_nowait() == 1


def test_nonblocking_get_exception(impl):
    with pytest.raises(asyncio.QueueEmpty):
        impl.Queue().get_nowait()


def test_get_cancelled_race(impl):
    async def body():
        q = impl.Queue()
        t1 = asyncio.create_task(q.get())
        t2 = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        t1.cancel()
        await asyncio.sleep(0)
        assert t1.done()
        await q.put("a")
        await asyncio.sleep(0)
        assert await t2 == "a"

    run(body())


def test_get_with_waiting_putters(impl):
    async def body():
        q = impl.Queue(maxsize=1)
        puts = [asyncio.create_task(q.put("a")), asyncio.create_task(q.put("b"))]
        assert await q.get() == "a"
        assert await q.get() == "b"
        await asyncio.gather(*puts)

    run(body())


def test_why_are_getters_waiting(impl):
    async def body():
        async def consumer(queue, n):
            for _ in range(n):
                await queue.get()

        async def producer(queue, n):
            for i in range(n):
                await queue.put(i)

        q = impl.Queue(1)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(producer(q, 5))
            tg.create_task(consumer(q, 5))

    run(body())


def test_cancelled_getters_not_being_held_in_self_getters(impl):
    async def body():
        q = impl.Queue(maxsize=5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(q.get(), 0.1)
        # No getter is left behind: an item put now stays for the next get.
        q.put_nowait(1)
        await asyncio.sleep(0)
        assert q.qsize() == 1
        if impl.name == "original":
            assert len(q._getters) == 0

    run(body())


# QueuePutTests


def test_blocking_put(impl):
    async def body():
        q = impl.Queue()
        await q.put(1)
        assert await q.get() == 1

    run(body())


def test_blocking_put_wait(impl):
    async def body():
        q = impl.Queue(maxsize=1)
        started = asyncio.Event()
        finished = False

        async def queue_put():
            nonlocal finished
            started.set()
            await q.put(1)
            await q.put(2)
            finished = True

        asyncio.get_running_loop().call_later(0.01, q.get_nowait)
        t = asyncio.create_task(queue_put())
        await started.wait()
        assert not finished
        await t
        assert finished

    run(body())


def test_nonblocking_put(impl):
    q = impl.Queue()
    q.put_nowait(1)
    assert q.get_nowait() == 1


def test_get_cancel_drop_one_pending_reader(impl):
    async def body():
        q = impl.Queue()
        reader = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.put_nowait(1)
        q.put_nowait(2)
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            reader = asyncio.create_task(q.get())
            await reader
        # 2 would mean 1 was dropped.
        assert reader.result() == 1

    run(body())


def test_get_cancel_drop_many_pending_readers(impl):
    async def body():
        q = impl.Queue()
        async with asyncio.TaskGroup() as tg:
            reader1 = tg.create_task(q.get())
            reader2 = tg.create_task(q.get())
            reader3 = tg.create_task(q.get())
            await asyncio.sleep(0)
            q.put_nowait(1)
            q.put_nowait(2)
            reader1.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader1
            await reader3
        assert {reader2.result(), reader3.result()} == {1, 2}

    run(body())


def test_put_cancel_drop(impl):
    async def body():
        q = impl.Queue(1)
        q.put_nowait(1)
        writer = asyncio.create_task(q.put(2))
        await asyncio.sleep(0)
        assert q.get_nowait() == 1
        writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            writer = asyncio.create_task(q.put(2))
            await writer
        assert q.get_nowait() == 2
        assert q.qsize() == 0

    run(body())


def test_nonblocking_put_exception(impl):
    q = impl.Queue(maxsize=1)
    q.put_nowait(1)
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(2)


def test_put_cancelled(impl):
    async def body():
        q = impl.Queue()

        async def queue_put():
            await q.put(1)
            return True

        t = asyncio.create_task(queue_put())
        assert await q.get() == 1
        if impl.name == "chanpool":
            await until(t.done)
        assert t.done()
        assert t.result()

    run(body())


@pytest.mark.difference("a woken putter resumes one loop iteration later (wake-up pipe)")
def test_put_cancelled_race(impl):
    async def body():
        q = impl.Queue(maxsize=1)
        put_a = asyncio.create_task(q.put("a"))
        put_b = asyncio.create_task(q.put("b"))
        put_c = asyncio.create_task(q.put("X"))
        await asyncio.sleep(0)
        assert put_a.done()
        assert not put_b.done()
        put_c.cancel()
        await asyncio.sleep(0)
        assert put_c.done()
        assert q.get_nowait() == "a"
        if impl.name == "original":
            await asyncio.sleep(0)
        else:
            await until(put_b.done)
        assert q.get_nowait() == "b"
        await put_b

    run(body())


def test_put_with_waiting_getters(impl):
    async def body():
        q = impl.Queue()
        t = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        await q.put("a")
        assert await t == "a"

    run(body())


def test_why_are_putters_waiting(impl):
    async def body():
        q = impl.Queue(2)

        async def putter(item):
            await q.put(item)

        async def getter():
            await asyncio.sleep(0)
            for _ in range(q.qsize()):
                q.get_nowait()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(getter())
            for i in range(4):
                tg.create_task(putter(i))

    run(body())


def test_cancelled_puts_not_being_held_in_self_putters(impl):
    async def body():
        q = impl.Queue(maxsize=1)
        q.put_nowait(1)
        put_task = asyncio.create_task(q.put(1))
        await asyncio.sleep(0)
        if impl.name == "original":
            assert len(q._putters) == 1
        put_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put_task
        # The cancelled putter left: freeing the slot lets a new put in at once.
        q.get_nowait()
        q.put_nowait(2)
        assert q.get_nowait() == 2
        if impl.name == "original":
            assert len(q._putters) == 0

    run(body())


def test_cancelled_put_silence_value_error_exception(impl):
    async def body():
        q = impl.Queue(1)
        q.put_nowait(1)
        put_task = asyncio.create_task(q.put(1))
        await asyncio.sleep(0)
        q.get_nowait()
        put_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put_task

    run(body())
