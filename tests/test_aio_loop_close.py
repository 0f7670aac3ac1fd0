"""Loops closed while coroutines still wait on long-lived objects (their tasks never
cancelled): the registrations they left behind, and the futures, tasks, loops and wake-up
pipes those hold, are freed (swept out at the object's next registration), not kept for as
long as the object lives."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import weakref

import chanpool
import pytest


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_closed_loops_with_waiters_leave_nothing_behind(caplog):
    caplog.set_level(logging.CRITICAL, logger="asyncio")  # "Task was destroyed but it is pending"
    ch, full, sem = chanpool.Channel(1), chanpool.Channel(1), chanpool.Semaphore(0)
    full.send(0)

    async def probe():
        with pytest.raises(TimeoutError):
            await ch.recv_async(timeout=0.001)

    # chanpool._aio caches the last loop's waker (one pipe) until another loop is used: the
    # baseline holds one too.
    asyncio.run(probe())
    gc.collect()
    fds = open_fds()
    tasks: list = []
    loops: list = []
    for _ in range(40):
        loop = asyncio.new_event_loop()
        for t in (
            loop.create_task(ch.recv_async()),
            loop.create_task(chanpool.select_async([ch, (full, 1)])),
            loop.create_task(full.send_async(2)),
            loop.create_task(sem.acquire_async()),
        ):
            tasks.append(weakref.ref(t))
        loop.run_until_complete(asyncio.sleep(0))  # every task ran up to its wait
        loops.append(weakref.ref(loop))
        loop.close()
        del loop, t

    # One more registration on each object sweeps the last loop's out too.
    async def once():
        for aw in (ch.recv_async(timeout=0.001), full.send_async(3, timeout=0.001)):
            with pytest.raises(TimeoutError):
                await aw
        with pytest.raises(TimeoutError):
            await chanpool.select_async([ch], timeout=0.001)
        assert not await sem.acquire_async(timeout=0.001)

    asyncio.run(once())
    gc.collect()
    assert sum(r() is not None for r in tasks) == 0
    assert sum(r() is not None for r in loops) == 0
    # Each loop had its own wake-up pipe (and its selector's descriptors): all closed.
    assert open_fds() == fds
    # The objects still work, and nothing the dead coroutines did consumed a value.
    assert full.try_recv() == (0, True)
    ch.send(7)
    assert asyncio.run(ch.recv_async()) == 7


class _NoReaderLoop(asyncio.SelectorEventLoop):
    """As Windows' ProactorEventLoop: no add_reader."""

    def add_reader(self, *args, **kwargs):
        raise NotImplementedError


def test_a_loop_without_add_reader_is_a_clear_error():
    ch = chanpool.Channel(1)
    loop = _NoReaderLoop()
    try:
        with pytest.raises(RuntimeError, match=r"add_reader.*SelectorEventLoop"):
            loop.run_until_complete(ch.recv_async())
        with pytest.raises(RuntimeError, match="add_reader"):
            loop.run_until_complete(chanpool.select_async([ch]))
        # Nothing was registered: the value goes to a plain receiver.
        ch.send(1)
        assert ch.recv() == 1
    finally:
        loop.close()
