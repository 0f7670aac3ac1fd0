"""Faults around asyncio, in subprocesses, many runs each: interpreter exit with awaits still
pending, Ctrl-C during asyncio.run, a loop closed under pending waits. No crash, no hang, and
no asyncio complaint about chanpool's tasks or futures."""

from __future__ import annotations

import pytest

from tests.helpers import assert_clean_exit, run_py

COMPLAINTS = (
    "Task was destroyed but it is pending",
    "Future exception was never retrieved",
    "Traceback",
    "Exception ignored",
)

RUNS = 8


def clean(proc, expect: str) -> None:
    assert_clean_exit(proc, expect)
    for bad in COMPLAINTS:
        assert bad not in proc.stderr, proc.stderr


@pytest.mark.parametrize("run", range(RUNS))
def test_exit_with_pending_awaits_on_a_daemon_loop_thread(run):
    proc = run_py(
        """
        import asyncio, threading, chanpool
        ch = chanpool.Channel(0)
        sem = chanpool.Semaphore(0)
        pool = chanpool.WorkerPool(2)
        ready = threading.Event()
        gate = threading.Event()

        async def main():
            tasks = [asyncio.ensure_future(ch.recv_async()) for _ in range(5)]
            tasks += [asyncio.ensure_future(ch.send_async(i)) for i in range(5)]
            tasks.append(asyncio.ensure_future(sem.acquire_async()))
            tasks.append(asyncio.ensure_future(pool.run(gate.wait, 0.2)))
            await asyncio.sleep(0)
            ready.set()
            await asyncio.gather(*tasks)

        threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
        ready.wait(30)
        # Values keep flowing from this thread while the interpreter exits.
        for i in range(3):
            ch.try_send(i)
        print("exiting")
        """
    )
    clean(proc, "exiting")


# It aborted 15 times in 80 while chanpool._aio was imported on the first `async for`.
@pytest.mark.parametrize("run", range(30))
def test_exit_while_values_flow_between_a_thread_and_coroutines(run):
    proc = run_py(
        """
        import asyncio, threading, chanpool
        ch = chanpool.Channel(4)
        started = threading.Event()

        def producer():
            i = 0
            while True:
                try:
                    ch.send(i)
                except chanpool.Closed:
                    return
                i += 1

        async def consumer():
            started.set()
            async for _ in ch:
                pass

        threading.Thread(target=producer, daemon=True).start()
        threading.Thread(target=lambda: asyncio.run(consumer()), daemon=True).start()
        started.wait(30)
        print("exiting")
        """
    )
    clean(proc, "exiting")


@pytest.mark.parametrize("run", range(RUNS))
def test_ctrl_c_during_asyncio_run_with_pending_awaits(run):
    proc = run_py(
        """
        import asyncio, signal, threading, _thread, chanpool
        ch = chanpool.Channel(0)
        sem = chanpool.Semaphore(0)
        ctx = chanpool.Context()

        async def main():
            tasks = [asyncio.ensure_future(ch.recv_async()) for _ in range(3)]
            tasks += [asyncio.ensure_future(ch.send_async(1)) for _ in range(3)]
            tasks.append(asyncio.ensure_future(sem.acquire_async()))
            tasks.append(asyncio.ensure_future(ctx.done_async()))
            await asyncio.sleep(0)
            asyncio.get_running_loop().call_soon(_thread.interrupt_main)
            await asyncio.gather(*tasks)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        # Nothing was left registered: the channel works from a thread afterwards.
        t = threading.Thread(target=lambda: ch.send("after"))
        t.start()
        assert ch.recv(timeout=30) == "after"
        t.join()
        assert sem.available == 0
        print("interrupted cleanly")
        """
    )
    clean(proc, "interrupted cleanly")


@pytest.mark.parametrize("run", range(RUNS))
def test_loop_closed_under_pending_waits_then_exit(run):
    proc = run_py(
        """
        import asyncio, gc, chanpool
        ch = chanpool.Channel(1)
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(ch.recv_async()) for _ in range(3)]
        loop.run_until_complete(asyncio.sleep(0))
        ch.send(1)
        loop.close()
        # Another loop still gets the value the dead loop's coroutine was woken for.
        async def other():
            return await ch.recv_async(timeout=30)
        print(asyncio.run(other()))
        """
    )
    # asyncio itself reports the never-finished tasks of the closed loop at exit.
    assert_clean_exit(proc, "1")
