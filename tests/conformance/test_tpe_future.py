"""CPython 3.13 Lib/test/test_concurrent_futures/test_future.py, ported: every test runs
against concurrent.futures.Future ("original") and chanpool.Future. The originals' sleeps
("wait until the main thread is waiting") are replaced by watching the main thread's stack.
"""

from __future__ import annotations

import concurrent.futures as futures
import re
import threading
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING

import chanpool
import pytest
from helpers import frame_in, wait_until

CLASSES = {"original": futures.Future, "chanpool": chanpool.Future}


@pytest.fixture(params=["original", "chanpool"])
def impl(request):
    return CLASSES[request.param]


def make(cls, state=PENDING, exception=None, result=None):
    f = cls()
    f._state = state
    f._exception = exception
    f._result = result
    return f


def all_states(cls):
    return (
        make(cls, PENDING),
        make(cls, RUNNING),
        make(cls, CANCELLED),
        make(cls, CANCELLED_AND_NOTIFIED),
        make(cls, FINISHED, exception=OSError()),
        make(cls, FINISHED, result=42),
    )


def when_main_waits(action):
    """Runs action() in a thread once the main thread is blocked in a Future wait."""
    main = threading.main_thread().ident
    waits = {"result", "exception", "_wait_finished", "wait"}

    def run():
        wait_until(lambda: frame_in(main, waits), what="main thread waiting on the future")
        action()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_done_callback_with_result(impl):
    seen = []
    f = impl()
    f.add_done_callback(lambda cf: seen.append(cf.result()))
    f.set_result(5)
    assert seen == [5]


def test_done_callback_with_exception(impl):
    seen = []
    f = impl()
    f.add_done_callback(lambda cf: seen.append(cf.exception()))
    f.set_exception(Exception("test"))
    assert seen[0].args == ("test",)


def test_done_callback_with_cancel(impl):
    seen = []
    f = impl()
    f.add_done_callback(lambda cf: seen.append(cf.cancelled()))
    assert f.cancel()
    assert seen == [True]


def _raising(_):
    raise Exception("doh!")


def test_done_callback_raises(impl, caplog):
    called = []
    f = impl()
    f.add_done_callback(lambda cf: called.append("raising") or _raising(cf))
    f.add_done_callback(lambda cf: called.append("fn"))
    with caplog.at_level("ERROR", logger="concurrent.futures"):
        f.set_result(5)
    assert called == ["raising", "fn"]
    assert any("doh!" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_done_callback_already_successful(impl):
    seen = []
    f = impl()
    f.set_result(5)
    f.add_done_callback(lambda cf: seen.append(cf.result()))
    assert seen == [5]


def test_done_callback_already_failed(impl):
    seen = []
    f = impl()
    f.set_exception(Exception("test"))
    f.add_done_callback(lambda cf: seen.append(cf.exception()))
    assert seen[0].args == ("test",)


def test_done_callback_already_cancelled(impl):
    seen = []
    f = impl()
    assert f.cancel()
    f.add_done_callback(lambda cf: seen.append(cf.cancelled()))
    assert seen == [True]


def test_done_callback_raises_already_succeeded(impl, caplog):
    f = impl()
    f.set_result(5)
    with caplog.at_level("ERROR", logger="concurrent.futures"):
        f.add_done_callback(_raising)
    msgs = [r.getMessage() for r in caplog.records]
    assert any("exception calling callback for" in m for m in msgs), msgs
    assert any("doh!" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_repr(impl):
    pending, running, cancelled, notified, failed, ok = all_states(impl)
    assert re.match(r"<Future at 0x[0-9a-f]+ state=pending>", repr(pending))
    assert re.match(r"<Future at 0x[0-9a-f]+ state=running>", repr(running))
    assert re.match(r"<Future at 0x[0-9a-f]+ state=cancelled>", repr(cancelled))
    assert re.match(r"<Future at 0x[0-9a-f]+ state=cancelled>", repr(notified))
    assert re.match(r"<Future at 0x[0-9a-f]+ state=finished raised OSError>", repr(failed))
    assert re.match(r"<Future at 0x[0-9a-f]+ state=finished returned int>", repr(ok))


def test_cancel(impl):
    f1, f2, f3, f4, f5, f6 = all_states(impl)
    assert f1.cancel() and f1._state == CANCELLED
    assert not f2.cancel() and f2._state == RUNNING
    assert f3.cancel() and f3._state == CANCELLED
    assert f4.cancel() and f4._state == CANCELLED_AND_NOTIFIED
    assert not f5.cancel() and f5._state == FINISHED
    assert not f6.cancel() and f6._state == FINISHED


def test_cancelled(impl):
    assert [f.cancelled() for f in all_states(impl)] == [False, False, True, True, False, False]


def test_done(impl):
    assert [f.done() for f in all_states(impl)] == [False, False, True, True, True, True]


def test_running(impl):
    assert [f.running() for f in all_states(impl)] == [False, True, False, False, False, False]


def test_result_with_timeout(impl):
    pending, running, cancelled, notified, failed, ok = all_states(impl)
    for f, exc in (
        (pending, futures.TimeoutError),
        (running, futures.TimeoutError),
        (cancelled, futures.CancelledError),
        (notified, futures.CancelledError),
        (failed, OSError),
    ):
        with pytest.raises(exc):
            f.result(timeout=0)
    assert ok.result(timeout=0) == 42


def test_result_with_success(impl):
    f1 = make(impl, PENDING)
    t = when_main_waits(lambda: f1.set_result(42))
    assert f1.result(timeout=30) == 42
    t.join()


def test_result_with_cancel(impl):
    f1 = make(impl, PENDING)
    t = when_main_waits(f1.cancel)
    with pytest.raises(futures.CancelledError):
        f1.result(timeout=30)
    t.join()


def test_exception_with_timeout(impl):
    pending, running, cancelled, notified, failed, ok = all_states(impl)
    for f, exc in (
        (pending, futures.TimeoutError),
        (running, futures.TimeoutError),
        (cancelled, futures.CancelledError),
        (notified, futures.CancelledError),
    ):
        with pytest.raises(exc):
            f.exception(timeout=0)
    assert isinstance(failed.exception(timeout=0), OSError)
    assert ok.exception(timeout=0) is None


def test_exception_with_success(impl):
    f1 = make(impl, PENDING)

    def finish():
        with f1._condition:
            f1._state = FINISHED
            f1._exception = OSError()
            f1._condition.notify_all()

    t = when_main_waits(finish)
    assert isinstance(f1.exception(timeout=30), OSError)
    t.join()


def test_multiple_set_result(impl):
    f = make(impl, PENDING)
    f.set_result(1)
    with pytest.raises(
        futures.InvalidStateError,
        match=r"FINISHED: <Future at 0x[0-9a-f]+ state=finished returned int>",
    ):
        f.set_result(2)
    assert f.done() and f.result() == 1


def test_multiple_set_exception(impl):
    f = make(impl, PENDING)
    e = ValueError()
    f.set_exception(e)
    with pytest.raises(
        futures.InvalidStateError,
        match=r"FINISHED: <Future at 0x[0-9a-f]+ state=finished raised ValueError>",
    ):
        f.set_exception(Exception())
    assert f.exception() is e
