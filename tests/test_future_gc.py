"""A pool Future stays out of the cyclic GC while it holds only atomic values, and is tracked
(once, for good) the moment it may hold a container: a cycle through a Future is still
collected, whichever way it forms.

Each cycle test drops every outside reference, runs gc.collect and checks a weakref died: an
untracked future in a cycle would keep it alive forever.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import chanpool
import pytest
from helpers import assert_clean_exit, run_py

ROUNDS = 50


@pytest.fixture
def pool():
    p = chanpool.WorkerPool(4)
    yield p
    p.shutdown(wait=True)


def collected(ref: weakref.ref) -> bool:
    gc.collect()
    return ref() is None


def test_atomic_outcomes_stay_untracked(pool):
    for i in range(ROUNDS):
        f = pool.submit(abs, -i)
        assert not gc.is_tracked(f)
        assert f.result() == i  # a waiter's _signal (a _OneShot) holds no references
        assert not gc.is_tracked(f)
        assert f.exception() is None
        assert f.done() and gc.is_tracked(f)  # stock done() takes the condition: observed
        s = pool.submit(str, i)
        assert s.result() == str(i) and not gc.is_tracked(s)


def test_container_result_tracks(pool):
    for i in range(ROUNDS):
        f = pool.submit(list, (i,))
        assert f.result() == [i]
        assert gc.is_tracked(f)


def test_cycle_through_result_is_collected(pool):
    for i in range(ROUNDS):
        f = pool.submit(list, (i,))
        f.result().append(f)  # result -> future -> result
        ref = weakref.ref(f)
        del f
        assert collected(ref)


def test_cycle_through_done_callback_is_collected(pool):
    for _ in range(ROUNDS):
        gate = threading.Event()
        f = pool.submit(gate.wait, 10)
        f.add_done_callback(lambda _, f=f: f)  # the callback closes over its future
        assert gc.is_tracked(f)
        gate.set()
        assert f.result() is True
        ref = weakref.ref(f)
        del f
        assert collected(ref)


def holds_future(box, gate):
    gate.wait(10)
    fut = box[0]  # in this frame's locals, so in the traceback's frame
    raise ValueError(fut is not None)


def test_cycle_through_exception_traceback_is_collected(pool):
    for _ in range(ROUNDS):
        box: list = []
        gate = threading.Event()
        f = pool.submit(holds_future, box, gate)
        box.append(f)
        gate.set()
        exc = f.exception()
        assert isinstance(exc, ValueError)
        assert gc.is_tracked(f)
        ref = weakref.ref(f)
        del f, exc, box
        assert collected(ref)


def test_cycle_through_wrap_future_is_collected(pool):
    loop = asyncio.new_event_loop()
    try:
        for i in range(ROUNDS // 4):
            f = pool.submit(abs, -i)
            af = asyncio.wrap_future(f, loop=loop)  # callbacks both ways: a cycle
            assert loop.run_until_complete(af) == i
            assert gc.is_tracked(f)
            ref = weakref.ref(f)
            del f, af
            assert collected(ref)
    finally:
        loop.close()


def test_cycle_through_user_attribute_is_collected(pool):
    for i in range(ROUNDS):
        f = pool.submit(abs, -i)
        assert f.result() == i  # the worker let go of it
        f.tag = i  # atomic: no tracking needed
        assert not gc.is_tracked(f)
        f.me = [f]
        assert gc.is_tracked(f)
        ref = weakref.ref(f)
        del f
        assert collected(ref)


def test_cycle_through_instance_dict_is_collected(pool):
    for i in range(ROUNDS):
        f = pool.submit(abs, -i)
        f.result()
        d = vars(f)  # whoever holds the dict can put anything in it
        assert gc.is_tracked(f)
        d["me"] = f
        assert f.me is f
        ref = weakref.ref(f)
        del f, d
        assert collected(ref)


def test_dict_assignment_keeps_working(pool):
    f = pool.submit(abs, -3)
    assert f.result() == 3
    f.__dict__ = {"_state": f._state, "_result": 3, "extra": [f]}
    assert gc.is_tracked(f) and f.result() == 3 and f.extra[0] is f
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_setattr_and_delattr_behave_like_object(pool):
    f = pool.submit(abs, -1)
    f.result()
    with pytest.raises(TypeError):
        type(f).__setattr__(object(), "x", 1)  # the descriptor checks its instance
    f.x = 1
    del f.x
    with pytest.raises(AttributeError):
        del f.x
    with pytest.raises(AttributeError):
        f.x  # noqa: B018


def test_observed_future_is_tracked_before_its_condition(pool):
    gate = threading.Event()
    f = pool.submit(gate.wait, 10)
    assert not gc.is_tracked(f)
    f._condition  # noqa: B018  (what cancel, wait, as_completed and callbacks reach first)
    assert gc.is_tracked(f)
    gate.set()
    assert f.result() is True and gc.is_tracked(f)


def test_user_futures_are_tracked_from_birth():
    f = chanpool.Future()
    assert gc.is_tracked(f)
    f.set_result([1])
    assert gc.is_tracked(f)


def test_every_path_tracks_once_in_a_subprocess():
    """Tracking an already tracked object aborts the process: drive every path that can track
    (each one twice, interleaved with collections) many times and check the tracked bit at each
    step."""
    code = """
        import asyncio, concurrent.futures as cf, gc, threading, chanpool
        gc.set_threshold(1)  # a collection at nearly every allocation
        p = chanpool.WorkerPool(4)
        loop = asyncio.new_event_loop()
        for i in range(300):
            f = p.submit(abs, -i)
            assert not gc.is_tracked(f)
            f.a = 1; f.a = 2
            assert not gc.is_tracked(f)
            f.b = []; f.c = {}
            vars(f); f.__dict__
            f._condition; f._condition
            assert gc.is_tracked(f) and f.result() == i
            g = p.submit(list, (i,)); g.result(); g.result()
            assert gc.is_tracked(g)
            g.x = [g]; vars(g)
            e = p.submit(int, "x")
            assert isinstance(e.exception(), ValueError) and gc.is_tracked(e)
            e.y = e
            h = p.submit(abs, 1)
            h.add_done_callback(lambda _: None); h.add_done_callback(lambda _: None)
            assert gc.is_tracked(h)
            assert loop.run_until_complete(asyncio.wrap_future(p.submit(abs, -2), loop=loop)) == 2
            cf.wait([p.submit(abs, 1), p.submit(list, ())])
            list(cf.as_completed([p.submit(abs, 1)]))
            c = p.submit(threading.Event().wait, 0)
            c.cancel()
            gc.collect()
        loop.close()
        p.shutdown()
        print("ok")
    """
    for _ in range(3):
        assert_clean_exit(run_py(code), "ok")
