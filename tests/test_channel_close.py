"""What a close hands on: a close error reaches every receiver without the tracebacks of the
receivers before it (nothing of theirs is kept alive), and fan_in never loses a value it took
when its output is closed under it."""

from __future__ import annotations

import gc
import threading
import traceback
import weakref

import pytest
from chanpool import Channel, fan_in, select
from helpers import WATCHDOG, native_thread_names, wait_until


class Marker:
    pass


class Boom(Exception):
    pass


def receive_in_a_frame(op, refs: list) -> BaseException:
    """Runs op() in a frame holding a Marker; returns what op raised."""
    marker = Marker()
    refs.append(weakref.ref(marker))
    try:
        op()
    except BaseException as e:
        return e
    raise AssertionError("op() did not raise")


@pytest.mark.parametrize(
    "how",
    ["recv", "try_recv", "get", "iter", "select_then_recv"],
)
def test_each_receiver_gets_the_close_error_without_earlier_receivers_tracebacks(how):
    c = Channel(0)
    err = Boom("stop")
    c.close(err)
    ops = {
        "recv": c.recv,
        "try_recv": c.try_recv,
        "get": c.get,
        "iter": lambda: list(c),
        "select_then_recv": lambda: (select([c]), c.recv()),
    }
    refs: list = []
    depths = []
    for _ in range(20):
        e = receive_in_a_frame(ops[how], refs)
        assert e is err  # the same error instance, as Go hands on the same error value
        depths.append(len(traceback.extract_tb(e.__traceback__)))
        del e
    assert len(set(depths)) == 1, f"the traceback grows: {depths}"
    gc.collect()
    alive = [r for r in refs if r() is not None]
    # Only the last receiver's frame may still be reachable (through the error's traceback).
    assert len(alive) <= 1, f"{len(alive)} receiving frames kept alive"


def test_a_receiver_that_re_raises_the_error_elsewhere_leaves_no_context_behind():
    # A receiver re-raises the error inside another except block, which sets its __context__
    # (and so references that receiver's frames); the next receiver gets the error as closed.
    c = Channel(1)
    err = Boom("stop")
    c.close(err)
    refs: list = []

    def re_raise():
        marker = Marker()
        refs.append(weakref.ref(marker))
        try:
            c.recv()
        except Boom as e:
            try:
                raise KeyError("handled")
            except KeyError:
                raise e from ValueError("cause")

    for _ in range(5):
        with pytest.raises(Boom) as info:
            re_raise()
        assert isinstance(info.value.__context__, KeyError)
        del info
    with pytest.raises(Boom) as info:
        c.recv()
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert not info.value.__suppress_context__
    del info
    gc.collect()
    assert sum(r() is not None for r in refs) == 0, "a receiver's frames are kept alive"


def test_the_close_error_keeps_the_traceback_it_was_closed_with():
    def fail():
        raise Boom("in the worker")

    try:
        fail()
    except Boom as e:
        err = e
    c = Channel(0)
    c.close(err)
    for _ in range(3):
        with pytest.raises(Boom) as info:
            c.recv()
        names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        # The receiving frame, then the traceback it was closed with (the call of fail() in
        # this function, and fail()): the same every time.
        assert names == [
            "test_the_close_error_keeps_the_traceback_it_was_closed_with",
            "test_the_close_error_keeps_the_traceback_it_was_closed_with",
            "fail",
        ]


def test_a_close_error_class_is_raised_as_a_fresh_instance_each_time():
    c = Channel(0)
    c.close(Boom)
    seen = []
    for _ in range(3):
        with pytest.raises(Boom) as info:
            c.recv()
        seen.append(info.value)
    assert len({id(e) for e in seen}) == 3


# ------------------------------------------------------------------ fan_in puts back


def fan_in_threads() -> int:
    return native_thread_names().count("chanpool-fan_in")


@pytest.mark.parametrize("cap", [0, 1, 4])
def test_fan_in_puts_back_a_value_it_could_not_deliver(cap):
    for _ in range(10):
        before = fan_in_threads()
        a = Channel(4)
        out = fan_in(a, capacity=0)
        if cap:
            for i in range(cap):
                a.send(i)
        else:
            threading.Thread(target=a.send, args=(0,), daemon=True).start()
        # The forwarder takes the first value and waits for a reader of `out`.
        wait_until(
            lambda a=a, cap=cap, before=before: (
                len(a) == max(cap - 1, 0) and fan_in_threads() > before
            )
        )
        if cap:
            wait_until(lambda a=a, cap=cap: len(a) == cap - 1)
        out.close()
        wait_until(lambda before=before: fan_in_threads() == before, what="forwarder stopped")
        got = []
        while True:
            v, ok = a.try_recv()
            if not ok:
                break
            got.append(v)
        assert got == list(range(max(cap, 1))), "the value the forwarder held was lost"


def test_fan_in_forwarding_racing_a_close_of_its_output_loses_nothing():
    for _ in range(30):
        ins = [Channel(8) for _ in range(3)]
        out = fan_in(*ins, capacity=0)
        sent = 0
        for c in ins:
            for i in range(8):
                c.send(i)
                sent += 1
        got = 0
        for _ in range(5):
            out.recv(timeout=WATCHDOG)
            got += 1
        out.close()
        wait_until(lambda: fan_in_threads() == 0, what="forwarder stopped")
        left = 0
        for c in ins:
            while c.try_recv()[1]:
                left += 1
        assert got + left == sent
