"""chanpool.inventory.InventoryManager under pressure: backpressure with completion stalled,
shutdown (also from a done-callback and racing submitters), done-callbacks that wait for other
operations, and the process around it (interpreter exit, Ctrl-C, fork) in subprocesses."""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import sys
import threading
from typing import Any, Callable, List

import pytest
from chanpool.inventory import InventoryManager
from helpers import (
    CTRL_C_PRELUDE,
    WATCHDOG,
    assert_clean_exit,
    run_py,
    top_frame_is,
    wait_until,
    watchdog,
)
from test_inventory import books
from test_ratelimit_process import run_many

# ---------------------------------------------------------------------- backpressure, shutdown


def stall_completion(ims: Any) -> Callable[[], None]:
    """Holds the completer up: takes the lock of a future it has yet to complete, so that it
    waits there (in the lock's own wait, GIL released) when it comes to that future. Nothing
    completes meanwhile: the workers fill the completer's backlog, then wait, and a bounded
    queue fills up. Call the returned function to let it go on."""
    while True:
        f = ims.check_stock("stall")
        cond = f._condition  # the future is observed from now on: completing it takes this lock
        cond.acquire()
        if not f.done():
            return cond.release
        cond.release()  # completed before we got to it: try again


def stall_source() -> str:
    """stall_completion's source, for scenario scripts."""
    src = inspect.getsource(stall_completion).replace("Callable[[], None]", "object")
    return src.replace("Any", "object")


def stalled(make: Any, **kwargs: Any) -> tuple:
    ims = make(**kwargs)
    return ims, stall_completion(ims)


def test_bounded_queue_blocks_the_submitter_until_there_is_room(make_ims):
    ims, release = stalled(make_ims, workers=1, queue_size=2)
    out: List[Any] = []

    def submitter() -> None:
        for _ in range(100_000):
            out.append(ims.add_stock("a", 1))  # blocks once the queue is full

    t = threading.Thread(target=submitter, daemon=True)
    t.start()
    code = submitter.__code__
    wait_until(
        lambda: ims.stats()["queued"] == 2 and top_frame_is(t.ident, code, code.co_firstlineno + 2),
        what="submitter blocked on a full queue",
    )
    assert t.is_alive() and len(out) < 100_000
    release()
    t.join(WATCHDOG)
    assert not t.is_alive()
    assert sorted(f.result(timeout=WATCHDOG) for f in out) == list(range(1, 100_001))
    books(ims)


def test_a_stalled_completion_holds_up_no_other_manager(make_ims):
    held, release = stalled(make_ims, workers=1, queue_size=2)
    other = make_ims(workers=1, queue_size=2)
    assert watchdog(lambda: [other.add_stock("x", 1).result() for _ in range(2000)])[-1] == 2000
    release()
    books(held)


def test_shutdown_runs_what_is_queued_then_refuses(make_ims):
    ims, release = stalled(make_ims, workers=1)
    fs = [ims.add_stock("a", 1) for _ in range(30_000)]  # more than the backlog holds
    ims.shutdown(wait=False)
    assert ims.closed
    with pytest.raises(RuntimeError, match="shutdown"):
        ims.add_stock("a", 1)
    with pytest.raises(RuntimeError, match="shutdown"):
        ims.check_stock("a")
    assert ims.stats()["queued"] > 0 and not all(f.done() for f in fs)
    release()
    watchdog(lambda: ims.shutdown(wait=True), what="shutdown(wait=True)")
    assert all(f.done() for f in fs)
    assert sorted(f.result() for f in fs) == list(range(1, 30_001))
    assert ims.snapshot() == {"a": 30_000}
    books(ims)
    ims.shutdown()  # idempotent
    ims.shutdown(wait=0)  # wait is read by truth value


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_done_callback_may_wait_for_another_operation(make_ims, workers):
    """The docstring's promise: callbacks run on completer threads, never on the workers, so a
    callback that waits for another operation's result gets it (it once timed out every time
    with one worker)."""
    ims = make_ims(workers=workers)
    lock = threading.Lock()
    seen: List[Any] = []
    main = threading.get_ident()

    def cb(f: Any) -> None:
        try:
            got = ims.add_stock("b", 1).result(timeout=10)
        except BaseException as e:  # reported below
            got = e
        with lock:
            seen.append((threading.get_ident() != main, got))

    for _ in range(20):
        fs = [ims.add_stock("a", 1) for _ in range(50)]
        for f in fs:
            f.add_done_callback(cb)
    wait_until(lambda: len(seen) == 1000, what="every callback")
    failures = [got for _, got in seen if not isinstance(got, int)]
    assert not failures, failures[:3]
    assert sorted(got for _, got in seen) == list(range(1, 1001))
    assert any(off_main for off_main, _ in seen)  # some really ran on a completer
    books(ims)


def os_thread_name() -> str:
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_callbacks_never_run_on_the_workers(make_ims):
    ims = make_ims(workers=2)
    names: List[str] = []
    fs = [ims.add_stock("a", 1) for _ in range(2000)]
    for f in fs:
        f.add_done_callback(lambda _f: names.append(os_thread_name()))
    cf.wait(fs, timeout=WATCHDOG)
    wait_until(lambda: len(names) == 2000)
    # Callback threads are "chanpool-ims-cb_<n>" (truncated by Linux); workers "chanpool-ims_<n>".
    assert set(names) <= {os_thread_name(), "chanpool-ims-cb"}, set(names)
    assert ims.stats()["callback_threads"] >= 1


def test_shutdown_from_a_done_callback_on_a_completer(make_ims):
    """shutdown(wait=True) from a done-callback waits for everything but its own thread, and
    completes the rest of that thread's batch itself before it returns."""
    main = threading.get_ident()
    for _ in range(100):
        ims = make_ims(workers=2)
        fs = [ims.add_stock("a", 1) for _ in range(500)]
        ran: List[Any] = []

        def cb(
            _f: Any, ims: InventoryManager = ims, ran: List[Any] = ran, fs: List[Any] = fs
        ) -> None:
            ims.shutdown(wait=True)
            # shutdown(wait=True) returned: everything accepted has completed.
            ran.append((threading.get_ident(), all(f.done() for f in fs)))

        ims.add_stock("a", 1).add_done_callback(cb)
        wait_until(lambda ran=ran: bool(ran), what="shutdown inside a callback")
        assert ims.closed
        cf.wait(fs, timeout=WATCHDOG)
        assert ims.snapshot() == {"a": 501}
        books(ims)
        ident, all_done = ran[0]
        assert all_done
        if ident != main:
            return
    pytest.fail("the callback never ran on a completer thread")


def test_context_manager_waits_for_operations():
    with InventoryManager() as ims:
        fs = [ims.add_stock("a", 2) for _ in range(5000)]
    assert all(f.done() for f in fs)
    assert ims.snapshot() == {"a": 10_000}


def shutdown_under_load() -> None:
    ims = InventoryManager(workers=3, queue_size=16)
    accepted: List[List[Any]] = [[] for _ in range(4)]
    go = threading.Barrier(5)

    def client(i: int) -> None:
        go.wait()
        try:
            while True:
                accepted[i].append(ims.add_stock("a", 1))
        except RuntimeError:
            pass

    ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for t in ts:
        t.start()
    go.wait()
    wait_until(lambda: ims.stats()["submitted"] > 200)
    watchdog(lambda: ims.shutdown(wait=True), what="shutdown under load")
    for t in ts:
        t.join(WATCHDOG)
    fs = [f for a in accepted for f in a]
    assert all(f.done() for f in fs)
    assert ims.snapshot() == {"a": len(fs)}
    assert books(ims)["completed"] == len(fs)


def test_shutdown_racing_submitters_loses_nothing():
    """Whatever a submit accepted completes by the time shutdown(wait=True) returns."""
    for _ in range(10):
        shutdown_under_load()


# ----------------------------------------------------------------------------- process


EXIT_SCRIPT = r"""
import atexit, threading
VARIANT = {variant}
state = {{}}

def verify():
    # Registered before chanpool is imported, so it runs after chanpool's exit hook: every
    # accepted operation must have run, and the stock must match their outcomes.
    from chanpool.inventory import InsufficientStock
    model = {{}}
    for kind, p, q, f in state["log"]:
        assert f.done()
        exc = f.exception()
        if kind == "add":
            assert exc is None
            model[p] = model.get(p, 0) + q
        elif kind == "remove":
            if exc is None:
                model[p] = model.get(p, 0) - q
            else:
                assert isinstance(exc, InsufficientStock), exc
    if VARIANT == 0:
        assert state["ims"].snapshot() == model, (state["ims"].snapshot(), model)
    assert len(state["called"]) == state["callbacks"], (len(state["called"]), state["callbacks"])
    s = state["ims"].stats()
    assert s["submitted"] == s["completed"], s
    assert s["events_emitted"] == s["events_published"] + s["events_dropped"], s
    print("verified", len(state["log"]), flush=True)

atexit.register(verify)
import chanpool
from chanpool.inventory import InventoryManager

bus = chanpool.PubSub()
bus.subscribe("inventory.>", lambda m: None, capacity=10)
ims = InventoryManager(workers=3, bus=bus, low_threshold=50)
state["ims"] = ims
log = state["log"] = []
called = state["called"] = []
state["callbacks"] = 0
{stall}
# Completion is held up while everything is submitted and let go only at exit (atexit runs
# this before chanpool's own hook): the process exits with operations queued, finished ones
# waiting for completion, done-callbacks and events still to come.
atexit.register(stall_completion(ims))
for i in range(8000):
    p = "p%d" % (i % 7)
    if i % 3 == 0:
        log.append(("check", p, 0, ims.check_stock(p)))
    else:
        log.append(("add", p, 3, ims.add_stock(p, 3)))
        log.append(("remove", p, 2, ims.remove_stock(p, 2)))
    if i % 50 == 0:
        log[-1][-1].add_done_callback(called.append)
        state["callbacks"] += 1
if VARIANT == 1:
    def spam():
        try:
            while True:
                ims.remove_stock("p1", 1)
                ims.add_stock("p1", 1)
        except RuntimeError:
            pass  # closed at exit: expected
    threading.Thread(target=spam, daemon=True).start()
print("pending", sum(not f.done() for *_, f in log), flush=True)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("variant", [0, 1])
def test_interpreter_exit_with_queued_operations(variant):
    script = EXIT_SCRIPT.format(variant=variant, stall=stall_source())
    for proc in run_many(script, times=20):
        lines = proc.stdout.split()
        assert "exiting" in lines and "verified" in lines, proc.stdout
        assert int(lines[lines.index("pending") + 1]) > 0, proc.stdout


EVENTS_AT_EXIT = r"""
import threading, chanpool
from chanpool.inventory import InventoryManager
# Every event shutdown(wait=True) promised reaches the bus before the process exits, even with
# a slow subscriber and operations still queued when shutdown starts.
bus = chanpool.PubSub()
got = []
gate = threading.Event()
def slow(m):
    gate.wait(0.001)
    got.append((m.topic, m.data["stock"]))
bus.subscribe("inventory.>", slow, capacity=4)
ims = InventoryManager(workers=2, bus=bus, low_threshold=3)
fs = []
for i in range(300):
    p = "p%d" % (i % 5)
    fs.append(ims.add_stock(p, 5))
    fs.append(ims.remove_stock(p, 5))   # each pair crosses low and out once, if in order
ims.shutdown(wait=True)
s = ims.stats()
assert all(f.done() for f in fs)
assert s["events_pending"] == 0 and s["events_published"] == s["events_emitted"] > 0, s
assert bus.close(drain=True, timeout=60)
assert len(got) == s["events_published"], (len(got), s)
print("events", len(got))
"""


def test_events_promised_by_shutdown_arrive_before_exit():
    for proc in run_many(EVENTS_AT_EXIT, times=20):
        assert proc.stdout.startswith("events "), proc.stdout


CTRL_C_SCRIPT = r"""
import threading, time
from chanpool.inventory import InventoryManager
{stall}
ims = InventoryManager(workers=1, queue_size=1)
release = stall_completion(ims)
accepted = []

def submit():
    accepted.append(ims.add_stock("a", 1))   # blocks once the backlog and the queue are full

# Blocked for real only once the queue is full (the stalled worker never empties it): an add
# merely descheduled at that line under load could still be accepted.
interrupt_when(
    blocked_at(submit.__code__, submit.__code__.co_firstlineno + 1),
    extra=lambda: ims.stats()["queued"] == 1,
)
def until_blocked():
    while True:
        submit()
expect_interrupt(until_blocked, within=30)
release()
assert sorted(f.result(timeout=30) for f in accepted) == list(range(1, len(accepted) + 1))
ims.shutdown()
# The interrupted add never happened.
assert ims.snapshot() == {{"a": len(accepted)}}, ims.snapshot()
s = ims.stats()
assert s["submitted"] == s["completed"] == len(accepted) + 1, s
print("ok")
"""


@pytest.mark.parametrize("run", range(2))
def test_ctrl_c_while_blocked_on_a_full_queue(run):
    script = CTRL_C_PRELUDE + CTRL_C_SCRIPT.format(stall=stall_source())
    assert_clean_exit(run_py(script), "ok")


FORK_SCRIPT = r"""
import os, sys
from chanpool.inventory import InventoryManager
ims = InventoryManager(workers=2)
assert ims.add_stock("a", 5).result(timeout=30) == 5
pid = os.fork()
if pid == 0:
    code = 0
    for call in (lambda: ims.add_stock("a", 1), lambda: ims.check_stock("a"), ims.snapshot):
        try:
            call()
            code = 10
        except RuntimeError as e:
            if "fork" not in str(e):
                code = 11
    ims.shutdown()  # a no-op in the child
    fresh = InventoryManager()
    if fresh.add_stock("b", 2).result(timeout=30) != 2 or fresh.snapshot() != {"b": 2}:
        code = 12
    fresh.shutdown()
    del ims
    os._exit(code)
_, status = os.waitpid(pid, 0)
print("child exit code:", os.waitstatus_to_exitcode(status))
assert ims.remove_stock("a", 2).result(timeout=30) == 3
ims.shutdown()
print("parent ok")
"""


@pytest.mark.skipif(not hasattr(sys.modules["os"], "fork"), reason="needs fork()")
def test_fork_child_gets_a_clear_error_and_can_start_afresh():
    proc = run_py(FORK_SCRIPT, dump_on_hang=False)
    assert_clean_exit(proc)
    assert proc.stdout.strip().splitlines() == ["child exit code: 0", "parent ok"], proc.stdout
