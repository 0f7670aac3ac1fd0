"""chanpool.PubSub and the process around it: interpreter exit, fork(), Ctrl-C, garbage
collection. Anything that could crash or hang the interpreter runs in a subprocess."""

from __future__ import annotations

import gc
import threading
import weakref

import chanpool
import pytest
from test_pubsub_support import (
    WATCHDOG,
    Recorder,
    assert_clean_exit,
    run_py,
    start_py,
    wait_py,
    wait_until,
)

# ------------------------------------------------------------------------------ interpreter exit

EXIT_SCRIPT = r"""
import logging, sys, threading, time
import chanpool

variant = int(sys.argv[1])
bus = chanpool.PubSub(max_workers=4)
entered = threading.Event()

def work(msg):
    entered.set()
    sum(range(3000))  # a little real work per message

if variant == 0:
    # Many queued messages for several push subscribers, nobody closes anything.
    for k in range(4):
        bus.subscribe("w.>", work, capacity=100_000, workers=1 + k % 2)
    for i in range(20_000):
        bus.publish("w.x", i)

elif variant == 1:
    # A daemon publisher parked on a full "block" queue when the interpreter exits.
    def slow(msg):
        entered.set()
        time.sleep(0.002)
    bus.subscribe("b", slow, capacity=1)
    def publisher():
        try:
            while True:
                bus.publish("b", 1)
        except RuntimeError:
            pass  # the bus closed under us: expected at exit
    threading.Thread(target=publisher, daemon=True).start()
    entered.wait(30)

elif variant == 2:
    # Pull subscriptions with queued messages, handlers that publish and fail (dead letters).
    logging.disable(logging.CRITICAL)
    pull = bus.subscribe("p.*", capacity=10_000)
    dead = bus.subscribe("_errors.>", capacity=10_000)
    def relay(msg):
        entered.set()
        bus.publish("p.relayed", msg.data)
        if msg.data % 3 == 0:
            raise ValueError(msg.data)
    bus.subscribe("r", relay, capacity=10_000)
    for i in range(3000):
        bus.publish("r", i)
        bus.publish("p.direct", i)

else:
    # Groups, workers>1, a second bus dropped without close, exit while handlers run.
    other = chanpool.PubSub()
    other.subscribe("o", work, capacity=10_000)
    for i in range(2000):
        other.publish("o", i)
    del other
    for _ in range(3):
        bus.subscribe("g.*", work, group="grp", workers=3, capacity=10_000)
    for i in range(5000):
        bus.publish("g.a", i)
    entered.wait(30)

print("ok", flush=True)
"""


def test_interpreter_exit_with_live_subscribers_never_crashes_or_hangs():
    runs = 20
    for batch in range(0, runs, 5):
        procs = [start_py(EXIT_SCRIPT, args=(i % 4,)) for i in range(batch, batch + 5)]
        for i, p in zip(range(batch, batch + 5), procs, strict=False):
            res = wait_py(p)
            assert "ok" in res.stdout, f"run {i}: {res.stdout}\n{res.stderr}"
            assert_clean_exit(res, expect_last="ok")


def test_exit_right_after_creating_and_using_a_bus():
    res = run_py(
        """
        import functools, sys
        import chanpool
        bus = chanpool.PubSub()
        # stderr: the delivery is asynchronous and may come after print("ok") (which must be
        # the last line on stdout).
        bus.subscribe("x", functools.partial(print, file=sys.stderr))
        bus.publish("x", "hello")
        print("ok")
        """
    )
    assert_clean_exit(res, expect_last="ok")


# -------------------------------------------------------------------------------------- fork

FORK_SCRIPT = r"""
import os, queue, threading
import chanpool

bus = chanpool.PubSub()
got = []
ev = threading.Event()
def h(m):
    got.append(m.data)
    ev.set()
bus.subscribe("x", h)
pull = bus.subscribe("p")
bus.publish("x", "before")
assert ev.wait(30)  # a dispatch thread is running when we fork
bus.publish("p", "queued")

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    out = []
    for name, f in [("publish", lambda: bus.publish("x", "child")),
                    ("subscribe", lambda: bus.subscribe("y")),
                    ("subscribe_handler", lambda: bus.subscribe("y", print))]:
        try:
            f()
            out.append(f"{name}:no-error")
        except RuntimeError:
            out.append(f"{name}:RuntimeError")
        except BaseException as e:
            out.append(f"{name}:{type(e).__name__}")
    # A fresh bus works in the child.
    child_got = []
    with chanpool.PubSub() as nb:
        nb.subscribe("z", lambda m: child_got.append(m.data))
        cp = nb.subscribe("z")
        nb.publish("z", 5)
    out.append(f"newbus:{child_got}:{[m.data for m in cp]}")
    os.write(w, ";".join(out).encode())
    os.close(w)
    raise SystemExit(0)  # normal interpreter exit in the child, atexit hooks included

os.close(w)
data = b""
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
print("child:", data.decode())
print("child_status:", status)
# The parent's bus is unaffected.
ev.clear()
n = bus.publish("x", "after")
assert ev.wait(30)
print("parent:", n, got, pull.get(timeout=30).data)
print("close:", bus.close())
"""


def test_fork_child_refuses_parent_bus_and_parent_keeps_working():
    # The child exits through the interpreter: see run_py about faulthandler and fork.
    res = run_py(FORK_SCRIPT, dump_on_hang=False)
    assert_clean_exit(res)
    lines = dict(line.split(": ", 1) for line in res.stdout.strip().splitlines())
    assert lines["child_status"] == "0", res.stdout + res.stderr
    assert lines["child"].split(";") == [
        "publish:RuntimeError",
        "subscribe:RuntimeError",
        "subscribe_handler:RuntimeError",
        "newbus:[5]:[5]",
    ]
    assert lines["parent"] == "1 ['before', 'after'] queued"
    assert lines["close"] == "True"


def test_fork_child_get_on_parent_subscription_raises_runtime_error():
    """In the child, a Subscription of the parent's bus should refuse to work like the bus does.
    Observed: get() hands out the parent's queued message (so it is consumed in both processes)
    and then waits for messages that can never come (get() without a timeout hangs forever)."""
    res = run_py(
        r"""
        import os, queue
        import chanpool
        bus = chanpool.PubSub()
        pull = bus.subscribe("p")
        bus.publish("p", "queued")
        pid = os.fork()
        if pid == 0:
            try:
                m = pull.get(timeout=0.5)
                print("child got", m.data, flush=True)
            except RuntimeError:
                print("child RuntimeError", flush=True)
            except queue.Empty:
                print("child Empty", flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        bus.close()
        """
    )
    assert_clean_exit(res)
    assert res.stdout.strip() == "child RuntimeError"


# ------------------------------------------------------------------------------------- Ctrl-C

CTRL_C_SCRIPT = r"""
import _thread, sys, threading, time
import chanpool

main = threading.main_thread().ident

def interrupt_when_in(code):
    # Waits until the main thread is inside the function that makes the blocking call, then
    # sends Ctrl-C. If the call ignores signals the faulthandler in the prologue ends the run.
    def run():
        while True:
            f = sys._current_frames().get(main)
            if f is not None and f.f_code is code:
                break
            time.sleep(0.001)
        _thread.interrupt_main()
    threading.Thread(target=run, daemon=True).start()

bus = chanpool.PubSub()
gate, entered = threading.Event(), threading.Event()
got = []
def h(m):
    got.append(m.data)
    entered.set()
    gate.wait(60)
sub = bus.subscribe("x", h, capacity=1)
bus.publish("x", 0)
entered.wait(30)
bus.publish("x", 1)   # the queue is now full and its handler is parked

def blocked_publish():
    return bus.publish("x", 2)

interrupt_when_in(blocked_publish.__code__)
try:
    blocked_publish()
    print("publish: returned")
except KeyboardInterrupt:
    print("publish: KeyboardInterrupt")

pull = bus.subscribe("p")

def blocked_get():
    return pull.get()

interrupt_when_in(blocked_get.__code__)
try:
    blocked_get()
    print("get: returned")
except KeyboardInterrupt:
    print("get: KeyboardInterrupt")

def blocked_get_timeout():
    return pull.get(timeout=60)

interrupt_when_in(blocked_get_timeout.__code__)
try:
    blocked_get_timeout()
    print("get_timeout: returned")
except KeyboardInterrupt:
    print("get_timeout: KeyboardInterrupt")

def blocked_iter():
    for m in pull:
        return m

interrupt_when_in(blocked_iter.__code__)
try:
    blocked_iter()
    print("iter: returned")
except KeyboardInterrupt:
    print("iter: KeyboardInterrupt")

# Everything still works afterwards; the interrupted publish queued nothing.
gate.set()
bus.publish("p", "later")
print("pull:", pull.get(timeout=30).data)
print("close:", bus.close())
print("got:", got)
"""


def test_ctrl_c_interrupts_blocked_publish_and_get():
    res = run_py(CTRL_C_SCRIPT, timeout=40)
    assert_clean_exit(res)
    assert res.stdout.strip().splitlines() == [
        "publish: KeyboardInterrupt",
        "get: KeyboardInterrupt",
        "get_timeout: KeyboardInterrupt",
        "iter: KeyboardInterrupt",
        "pull: later",
        "close: True",
        "got: [0, 1]",
    ], res.stdout + res.stderr


# ------------------------------------------------------------------------------------------ GC


class Owner:
    """Holds the bus; its bound methods are the handlers: a reference cycle through the bus."""

    def __init__(self, keep_sub=True, pull_too=False):
        self.bus = chanpool.PubSub()
        self.got = Recorder()
        sub = self.bus.subscribe("x", self.on_message, on_error=self.on_error)
        if keep_sub:
            self.sub = sub
        if pull_too:
            self.pull = self.bus.subscribe("x", capacity=100)

    def on_message(self, msg):
        self.got(msg)

    def on_error(self, exc, msg):
        pass


@pytest.mark.parametrize(
    "keep_sub, pull_too, publish",
    [(True, False, 0), (False, False, 0), (True, False, 20), (True, True, 20), (False, True, 5)],
)
def test_handler_cycle_through_the_bus_is_collected(keep_sub, pull_too, publish):
    owner = Owner(keep_sub=keep_sub, pull_too=pull_too)
    for i in range(publish):
        owner.bus.publish("x", i)
    owner.got.wait_count(publish)
    # Wait until the dispatch thread let go of the handler (the run has ended).
    wait_until(lambda o=owner: o.bus.stats()["pending"] == (publish if pull_too else 0))
    wait_until(lambda o=owner: o.bus.stats()["delivered"] == publish)
    ref = weakref.ref(owner)
    got = owner.got
    del owner
    # A dispatch thread drops its reference to the handler just after the last delivery, so
    # allow a few collections; a cycle the collector cannot see through never goes.
    wait_until(lambda: gc.collect() >= 0 and ref() is None, timeout=10, what="collection")
    assert got.data == list(range(publish))


def test_closure_handler_cycle_is_collected():
    class Token:
        pass

    def make():
        token = Token()
        bus = chanpool.PubSub()

        def handler(msg, token=token):
            bus.publish("y", msg.data)  # the closure holds the bus

        bus.subscribe("x", handler)
        token.bus = bus
        return weakref.ref(token)

    ref = make()
    gc.collect()
    assert ref() is None


def test_collected_bus_stops_its_dispatch_threads():
    def native_threads():
        import glob

        names = []
        for path in glob.glob("/proc/self/task/*/comm"):
            try:
                with open(path) as f:
                    names.append(f.read().strip())
            except OSError:
                pass
        return sum(n.startswith("chanpool-pubsub") for n in names)

    before = native_threads()
    owner = Owner()
    for i in range(10):
        owner.bus.publish("x", i)
    owner.got.wait_count(10)
    assert native_threads() > before
    ref = weakref.ref(owner)
    del owner
    gc.collect()
    assert ref() is None
    wait_until(lambda: native_threads() <= before, timeout=WATCHDOG, what="dispatch threads exit")


def test_gc_while_handlers_run_does_not_deadlock():
    """gc.collect() traverses the bus while dispatch threads deliver and subscribe."""
    bus = chanpool.PubSub()
    stop = threading.Event()
    r = Recorder()

    def churn(msg):
        s = bus.subscribe(f"tmp.{msg.data % 7}", lambda m: None)
        s.unsubscribe()
        r(msg)

    bus.subscribe("c", churn, workers=2)
    try:

        def collector():
            while not stop.is_set():
                gc.collect()

        t = threading.Thread(target=collector, daemon=True)
        t.start()
        for i in range(2000):
            bus.publish("c", i)
        r.wait_count(2000)
        stop.set()
        t.join(WATCHDOG)
        assert not t.is_alive()
    finally:
        stop.set()
        assert bus.close() is True
