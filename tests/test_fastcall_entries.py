"""The raw fastcall entries (src/py/fastcall.rs) of Channel's hot methods and PubSub.publish take
every argument form pyo3's wrappers took, fail with the same errors, and release what a call
drops at once (pyo3 does not know the thread is attached there: a dropped reference could
otherwise wait in pyo3's pool of deferred decrefs)."""

from __future__ import annotations

import inspect
import queue
import re
import threading
import weakref

import chanpool
import pytest
from chanpool import Channel, PubSub


class Box:
    """A value whose death a weakref can watch (ints are never freed)."""


def test_channel_argument_forms():
    c = Channel(None)
    for i in range(300):
        c.send(i)
        c.send(item=i)
        c.send(i, None)
        c.send(i, timeout=1)
        c.send(timeout=0.5, item=i)
        assert [c.recv(), c.recv(None), c.recv(timeout=1), c.recv(1), c.recv()] == [i] * 5
        assert c.try_send(i) is True
        assert c.try_send(item=i) is True
        assert c.try_recv() == (i, True)
        assert c.try_recv() == (i, True)
        assert c.try_recv() == (None, False)
        c.put(i)
        c.put(i, False)
        c.put(i, block=True, timeout=1)
        c.put(item=i, timeout=None)
        assert [c.get(), c.get(False), c.get(block=True, timeout=1), c.get(timeout=2)] == [i] * 4
        assert len(c) == 0


def test_channel_bad_calls():
    c = Channel(1)
    cases = [
        (lambda: c.send(), "Channel.send() missing 1 required positional argument: 'item'"),
        (
            lambda: c.send(1, 2, 3),
            "Channel.send() takes from 1 to 2 positional arguments but 3 were given",
        ),
        (lambda: c.send(1, item=2), "Channel.send() got multiple values for argument 'item'"),
        (lambda: c.send(1, tmo=2), "Channel.send() got an unexpected keyword argument 'tmo'"),
        (lambda: c.recv(1, 2), "Channel.recv() takes from 0 to 1 positional arguments but 2"),
        (lambda: c.try_send(), "Channel.try_send() missing 1 required positional argument"),
        (lambda: c.try_send(1, 2), "Channel.try_send() takes 1 positional arguments but 2"),
        (lambda: c.try_recv(1), "Channel.try_recv() takes no arguments (1 given)"),
        (lambda: c.try_recv(x=1), "Channel.try_recv() takes no keyword arguments"),
        (lambda: c.put(), "Channel.put() missing 1 required positional argument: 'item'"),
        (lambda: c.get(True, 1, 2), "Channel.get() takes from 0 to 2 positional arguments"),
    ]
    for call, msg in cases:
        with pytest.raises(TypeError, match=re.escape(msg)):
            call()
    for call in (lambda: c.send(1, timeout="soon"), lambda: c.recv(timeout=[])):
        with pytest.raises(TypeError, match="timeout must be a number") as e:
            call()
        assert e.value.__notes__ == ["while processing 'timeout'"]
    with pytest.raises(ValueError):
        c.get(timeout=-1)
    with pytest.raises(TypeError):
        Channel.send(object(), 1)  # an unbound call on something else
    assert len(c) == 0  # nothing was sent by a bad call


def test_publish_argument_forms_and_errors():
    seen = []
    with PubSub() as bus:
        bus.subscribe("t.x", seen.append)
        for i in range(300):
            assert bus.publish("t.x", i) == 1
            assert bus.publish("t.x") == 1
            assert bus.publish(topic="t.x", data=i) == 1
            assert bus.publish("t.x", data=i) == 1
        assert bus.publish("t.none") == 0
        with pytest.raises(TypeError, match=r"PubSub.publish\(\) missing 1 required positional"):
            bus.publish()
        with pytest.raises(TypeError) as e:
            bus.publish(None)
        assert e.value.__notes__ == ["while processing 'topic'"]
        with pytest.raises(TypeError, match="unexpected keyword argument 'payload'"):
            bus.publish("t.x", payload=1)
        with pytest.raises(ValueError):
            bus.publish("t..x", 1)
    assert len(seen) == 1200
    assert [m.data for m in seen[:4]] == [0, None, 0, 0]


def test_signatures():
    for name, sig in [
        ("send", "(self, /, item, timeout=None)"),
        ("recv", "(self, /, timeout=None)"),
        ("try_send", "(self, /, item)"),
        ("try_recv", "(self, /)"),
        ("put", "(self, /, item, block=True, timeout=None)"),
        ("get", "(self, /, block=True, timeout=None)"),
    ]:
        assert str(inspect.signature(getattr(Channel, name))) == sig
    assert str(inspect.signature(PubSub.publish)) == "(self, /, topic, data=None)"


def test_a_subclass_still_overrides():
    class Mine(Channel):
        def send(self, item, timeout=None):
            super().send(item * 2, timeout)

    m = Mine(None)
    m.send(21)
    assert m.recv() == 42


def test_what_a_channel_call_drops_is_freed_at_once():
    for _ in range(200):
        full = Channel(1)
        full.send(0)
        b = Box()
        r = weakref.ref(b)
        assert full.try_send(b) is False
        del b
        assert r() is None, "try_send's refused value outlived the call"

        closed = Channel(1)
        closed.close()
        b = Box()
        r = weakref.ref(b)
        with pytest.raises(chanpool.Closed):
            closed.send(b)
        del b
        assert r() is None, "send's refused value outlived the call"

        b = Box()
        r = weakref.ref(b)
        with pytest.raises(queue.Full):
            full.put(b, block=False)
        del b
        assert r() is None, "put's refused value outlived the call"

        b = Box()
        r = weakref.ref(b)
        with pytest.raises(TimeoutError):
            full.send(b, timeout=0.001)
        del b
        assert r() is None, "a timed-out send's value outlived the call"


@pytest.mark.parametrize("overflow", ["drop_newest", "error"])
def test_what_a_publish_drops_is_freed_at_once(overflow):
    bus = PubSub()
    gate = threading.Event()
    entered = threading.Event()

    def handler(m):
        entered.set()
        gate.wait()

    bus.subscribe("t.x", handler, capacity=1, overflow=overflow)
    try:
        bus.publish("t.x", Box())  # taken by the handler, which waits
        assert entered.wait(10)
        bus.publish("t.x", Box())  # fills the mailbox
        for _ in range(200):
            b = Box()
            r = weakref.ref(b)
            try:
                bus.publish("t.x", b)
            except queue.Full:
                assert overflow == "error"
            del b
            assert r() is None, f"{overflow}: the dropped message outlived publish()"
        # No subscription at all: the message is made and dropped within the call.
        b = Box()
        r = weakref.ref(b)
        assert bus.publish("t.nobody", b) == 0
        del b
        assert r() is None
    finally:
        gate.set()
        bus.close(drain=False)


def test_drop_oldest_frees_the_replaced_message_at_once():
    bus = PubSub()
    gate = threading.Event()
    entered = threading.Event()

    def handler(m):
        entered.set()
        gate.wait()

    bus.subscribe("t.x", handler, capacity=1, overflow="drop_oldest")
    try:
        bus.publish("t.x", 0)
        assert entered.wait(10)
        b = Box()
        r = weakref.ref(b)
        bus.publish("t.x", b)  # queued
        del b
        for i in range(200):
            assert r() is not None or i > 0
            b2 = Box()
            r2 = weakref.ref(b2)
            bus.publish("t.x", b2)  # replaces the queued one
            del b2
            assert r() is None, "the replaced message outlived publish()"
            r = r2
    finally:
        gate.set()
        bus.close(drain=False)
