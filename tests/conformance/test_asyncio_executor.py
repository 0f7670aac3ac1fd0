"""CPython 3.13 Lib/test/test_asyncio tests of wrap_future (test_futures.py), run_in_executor
(test_events.py), the default executor (test_base_events.py) and to_thread (test_threads.py),
ported: "original" uses ThreadPoolExecutor / concurrent.futures.Future, "chanpool" uses
WorkerPool / chanpool.Future, installed with loop.set_default_executor where asyncio picks the
executor itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
import warnings
from contextvars import ContextVar
from unittest import mock

import chanpool
import pytest

IMPLS = {
    "original": (concurrent.futures.ThreadPoolExecutor, concurrent.futures.Future),
    "chanpool": (chanpool.WorkerPool, chanpool.Future),
}


@pytest.fixture(params=["original", "chanpool"])
def impl(request):
    return IMPLS[request.param]


@pytest.fixture
def loop(impl):
    executor_cls, _ = impl
    loop = asyncio.new_event_loop()
    loop.set_default_executor(executor_cls())
    yield loop
    if not loop.is_closed():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    asyncio.set_event_loop(None)


def run(arg):
    return (arg, threading.get_ident())


def run_briefly(loop):
    async def once():
        pass

    loop.run_until_complete(once())


# ------------------------------------------------------------------------ test_futures.py


def test_wrap_future(impl, loop):
    ex = impl[0](1)
    f1 = ex.submit(run, "oi")
    f2 = asyncio.wrap_future(f1, loop=loop)
    res, ident = loop.run_until_complete(f2)
    assert asyncio.isfuture(f2)
    assert res == "oi"
    assert ident != threading.get_ident()
    ex.shutdown(wait=True)


def test_wrap_future_without_loop(impl):
    ex = impl[0](1)
    f1 = ex.submit(run, "oi")
    with pytest.raises(RuntimeError, match="no current event loop"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.wrap_future(f1)
    ex.shutdown(wait=True)


def test_wrap_future_use_running_loop(impl, loop):
    ex = impl[0](1)
    f1 = ex.submit(run, "oi")

    async def test():
        return asyncio.wrap_future(f1)

    f2 = loop.run_until_complete(test())
    assert f2._loop is loop
    ex.shutdown(wait=True)


def test_wrap_future_use_global_loop(impl, loop):
    asyncio.set_event_loop(loop)
    ex = impl[0](1)
    f1 = ex.submit(run, "oi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        f2 = asyncio.wrap_future(f1)
    assert f2._loop is loop
    ex.shutdown(wait=True)


def test_wrap_future_cancel(impl, loop):
    f1 = impl[1]()
    f2 = asyncio.wrap_future(f1, loop=loop)
    f2.cancel()
    run_briefly(loop)
    assert f1.cancelled()
    assert f2.cancelled()


def test_wrap_future_cancel2(impl, loop):
    f1 = impl[1]()
    f2 = asyncio.wrap_future(f1, loop=loop)
    f1.set_result(42)
    f2.cancel()
    run_briefly(loop)
    assert not f1.cancelled()
    assert f1.result() == 42
    assert f2.cancelled()


# ------------------------------------------------------------------------- test_events.py


def test_run_in_executor(loop):
    f2 = loop.run_in_executor(None, run, "yo")
    res, thread_id = loop.run_until_complete(f2)
    assert res == "yo"
    assert thread_id != threading.get_ident()


def test_run_in_executor_cancel(loop):
    called = False

    def patched_call_soon(*args):
        nonlocal called
        called = True

    f2 = loop.run_in_executor(None, time.sleep, 0.05)
    f2.cancel()
    # Joins the executor: its done callbacks (which would call call_soon_threadsafe) have run
    # by the time this returns, so no later call can come.
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    loop.call_soon = patched_call_soon
    loop.call_soon_threadsafe = patched_call_soon
    assert not called


# -------------------------------------------------------------------- test_base_events.py


def test_set_default_executor(impl):
    class DummyExecutor(impl[0]):
        def submit(self, fn, *args, **kwargs):
            raise NotImplementedError("cannot submit into a dummy executor")

    loop = asyncio.new_event_loop()
    try:
        executor = DummyExecutor()
        loop.set_default_executor(executor)
        assert loop._default_executor is executor
        executor.shutdown()
    finally:
        loop.close()


def test_set_default_executor_error(impl):
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="executor must be ThreadPoolExecutor instance"):
            loop.set_default_executor(mock.Mock())
        assert loop._default_executor is None
        # ...and the executor under test is accepted where the mock is not.
        ex = impl[0](1)
        loop.set_default_executor(ex)
        assert loop._default_executor is ex
        ex.shutdown()
    finally:
        loop.close()


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="shutdown_default_executor(timeout=) is 3.12+"
)
def test_shutdown_default_executor_timeout(impl):
    class DummyExecutor(impl[0]):
        def shutdown(self, wait=True, *, cancel_futures=False):
            if wait:
                time.sleep(0.1)
            super().shutdown(wait=wait, cancel_futures=cancel_futures)

    loop = asyncio.new_event_loop()
    try:
        loop.set_default_executor(DummyExecutor())
        with pytest.warns(RuntimeWarning, match="The executor did not finishing joining"):
            loop.run_until_complete(loop.shutdown_default_executor(timeout=0.01))
    finally:
        loop.close()


# ------------------------------------------------------------------------ test_threads.py


def test_to_thread(loop):
    assert loop.run_until_complete(asyncio.to_thread(sum, [40, 2])) == 42


def test_to_thread_exception(loop):
    def raise_runtime():
        raise RuntimeError("test")

    with pytest.raises(RuntimeError, match="test"):
        loop.run_until_complete(asyncio.to_thread(raise_runtime))


def test_to_thread_once(loop):
    func = mock.Mock()
    loop.run_until_complete(asyncio.to_thread(func))
    func.assert_called_once()


def test_to_thread_concurrent(loop):
    calls = []

    async def main():
        await asyncio.gather(*[asyncio.to_thread(calls.append, 1) for _ in range(10)])

    loop.run_until_complete(main())
    assert sum(calls) == 10


def test_to_thread_args_kwargs(loop):
    func = mock.Mock()
    loop.run_until_complete(asyncio.to_thread(func, "test", something=True))
    func.assert_called_once_with("test", something=True)


def test_to_thread_contextvars(loop):
    test_ctx = ContextVar("test_ctx")

    async def main():
        test_ctx.set("parrot")
        return await asyncio.to_thread(test_ctx.get)

    assert loop.run_until_complete(main()) == "parrot"
