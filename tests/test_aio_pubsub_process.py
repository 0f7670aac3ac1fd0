"""PubSub's async face under faults, in subprocesses, many runs each: asyncio.run ending with
messages queued for an async handler, a loop closed under its consumers, interpreter exit with
async subscriptions live on a daemon loop thread, Ctrl-C during asyncio.run. No crash, no hang,
no asyncio complaint about chanpool's tasks; what is lost is counted and logged."""

from __future__ import annotations

import pytest

from tests.helpers import assert_clean_exit, run_py
from tests.test_aio_process import COMPLAINTS

RUNS = 6


def clean(proc, expect: str) -> None:
    assert_clean_exit(proc, expect)
    for bad in COMPLAINTS:
        assert bad not in proc.stderr, proc.stderr


@pytest.mark.parametrize("run", range(RUNS))
def test_asyncio_run_ends_with_messages_queued_for_an_async_handler(run):
    proc = run_py(
        """
        import asyncio, chanpool
        bus = chanpool.PubSub()
        started = asyncio.Event()

        async def handler(m):
            started.set()
            await asyncio.Event().wait()  # never set

        async def main():
            global sub
            sub = bus.subscribe("q", handler, capacity=1000)
            for i in range(100):
                bus.publish("q", i)
            await started.wait()

        asyncio.run(main())
        s = bus.stats()
        assert not sub.active
        assert (s["discarded"], sub.stats()["dropped"]) == (99, 100), s
        assert bus.publish("q", 1) == 0
        assert bus.close(timeout=10)
        print("counted")
        """
    )
    clean(proc, "counted")
    assert "stopped with 99 queued message(s)" in proc.stderr


@pytest.mark.parametrize("run", range(RUNS))
def test_loop_closed_under_its_consumers_then_exit(run):
    proc = run_py(
        """
        import asyncio, gc, chanpool
        bus = chanpool.PubSub()
        loop = asyncio.new_event_loop()
        gate = asyncio.Event()

        async def handler(m):
            await gate.wait()

        async def setup():
            return bus.subscribe("q", handler, workers=3), bus.subscribe("p")

        sub, pull = loop.run_until_complete(setup())
        waits = [loop.create_task(pull.get_async()) for _ in range(2)]
        for i in range(10):
            bus.publish("q", i)
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        del waits
        gc.collect()
        assert sub.stats()["dropped"] == 10 and bus.stats()["discarded"] == 7
        # The pull subscription still works from a thread; the dead loop's gets took nothing.
        bus.publish("p", "x")
        assert pull.get(timeout=30).data == "x"
        assert bus.close(timeout=10)
        print("closed cleanly")
        """
    )
    clean(proc, "closed cleanly")


@pytest.mark.parametrize("run", range(RUNS))
def test_exit_with_async_subscriptions_live_on_a_daemon_loop_thread(run):
    proc = run_py(
        """
        import asyncio, threading, chanpool
        bus = chanpool.PubSub()
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        flowing = threading.Event()
        count = 0

        async def handler(m):
            global count
            count += 1
            if count >= 3:
                flowing.set()
            await asyncio.sleep(0)

        async def blocked(m):
            await asyncio.Event().wait()

        async def setup():
            bus.subscribe("h", handler, workers=2)
            bus.subscribe("h", blocked, capacity=4)
            sub = bus.subscribe("h")
            asyncio.ensure_future(sub.get_async())

        asyncio.run_coroutine_threadsafe(setup(), loop).result(30)

        def publisher():
            async def pub():
                i = 0
                while True:
                    await bus.publish_async("h", i)  # blocks on the full `blocked` one
                    i += 1
            try:
                asyncio.run(pub())
            except RuntimeError:
                pass  # exit closed the bus under it

        threading.Thread(target=publisher, daemon=True).start()
        assert flowing.wait(30)
        print("exiting")
        """,
    )
    assert_clean_exit(proc, "exiting")
    for bad in ("Traceback", "Task was destroyed but it is pending"):
        assert bad not in proc.stderr, proc.stderr


@pytest.mark.parametrize("run", range(RUNS))
def test_ctrl_c_during_asyncio_run_with_async_subscriptions(run):
    proc = run_py(
        """
        import asyncio, _thread, chanpool
        bus = chanpool.PubSub()
        pull = bus.subscribe("p", capacity=1)

        async def handler(m):
            await asyncio.Event().wait()

        async def main():
            bus.subscribe("h", handler)
            bus.publish("h", 0)
            bus.publish("p", 0)
            tasks = [asyncio.ensure_future(bus.publish_async("p", i)) for i in (1, 2)]
            await asyncio.sleep(0.01)
            asyncio.get_running_loop().call_soon(_thread.interrupt_main)
            await asyncio.gather(*tasks)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        # The cancelled publishes never delivered; the first message is still there.
        assert pull.get(timeout=0).data == 0
        assert pull.stats()["pending"] == 0
        assert bus.close(timeout=10)
        print("interrupted cleanly")
        """
    )
    clean(proc, "interrupted cleanly")
