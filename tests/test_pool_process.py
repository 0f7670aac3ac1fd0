"""Process-level behaviour, each in a fresh interpreter: exit with work in flight, fork(),
and Ctrl-C (_thread.interrupt_main) while blocked in result(), submit() and map iteration.
"""

from __future__ import annotations

import concurrent.futures as cf
import os

import pytest
from helpers import CTRL_C_PRELUDE, assert_clean_exit, run_py

# ------------------------------------------------------------------------------------ exit

EXIT_SCENARIOS = {
    "running_and_queued": """
import time, chanpool
p = chanpool.WorkerPool(2)
fs = [p.submit(time.sleep, 0.01) for _ in range(200)]
print("exiting")
""",
    "several_pools_bounded_and_maps": """
import time, chanpool
a = chanpool.WorkerPool(3, queue_size=5)
b = chanpool.WorkerPool(1)
for i in range(5):
    a.submit(time.sleep, 0.01)
it1 = b.map(time.sleep, [0.01] * 50)
it2 = a.map(time.sleep, [0.01] * 50, buffersize=4)
next(it1)
print("exiting")
""",
    "python_work_in_flight": """
import chanpool
def spin(n):
    t = 0
    for i in range(n):
        t += i
    return t
p = chanpool.WorkerPool(2)
fs = [p.submit(spin, 200000) for _ in range(10)]
it = p.map(spin, [100000] * 10, chunksize=2)
print("exiting")
""",
    "pool_dropped_without_shutdown": """
import time, gc, chanpool
p = chanpool.WorkerPool(2)
for _ in range(20):
    p.submit(time.sleep, 0.01)
del p
gc.collect()
print("exiting")
""",
    "daemon_thread_blocked_in_submit": """
import threading, time, chanpool
p = chanpool.WorkerPool(1, queue_size=1)
def producer():
    while True:
        try:
            p.submit(time.sleep, 0.01)
        except RuntimeError:
            return
t = threading.Thread(target=producer, daemon=True)
t.start()
while p.stats()["submitted"] < 3:
    time.sleep(0.001)
print("exiting")
""",
    "daemon_thread_iterating_map": """
import threading, time, chanpool
p = chanpool.WorkerPool(2)
def consumer():
    while True:
        try:
            for _ in p.map(time.sleep, [0.01] * 20, buffersize=2):
                pass
        except Exception:
            return
t = threading.Thread(target=consumer, daemon=True)
t.start()
while p.stats()["completed"] < 3:
    time.sleep(0.001)
print("exiting")
""",
    "tasks_submitting_during_exit": """
import time, chanpool
p = chanpool.WorkerPool(2)
def resubmit(n):
    time.sleep(0.005)
    if n:
        try:
            p.submit(resubmit, n - 1)
        except RuntimeError:
            pass
for _ in range(4):
    p.submit(resubmit, 1000)
print("exiting")
""",
    "sys_exit_from_main": """
import sys, time, chanpool
p = chanpool.WorkerPool(2)
for _ in range(100):
    p.submit(time.sleep, 0.01)
print("exiting")
sys.exit(0)
""",
}


def _run_exit_scenarios(names, repeat):
    jobs = [name for name in names for _ in range(repeat)]
    with cf.ThreadPoolExecutor(4) as ex:
        procs = list(ex.map(lambda n: (n, run_py(EXIT_SCENARIOS[n], timeout=45)), jobs))
    for name, proc in procs:
        try:
            assert_clean_exit(proc, "exiting")
        except AssertionError as e:
            raise AssertionError(f"exit scenario {name!r} failed:\n{e}") from None


def test_exit_with_work_in_flight_repeated():
    _run_exit_scenarios(["running_and_queued"], repeat=20)


@pytest.mark.parametrize("name", sorted(set(EXIT_SCENARIOS) - {"running_and_queued"}))
def test_exit_scenarios(name):
    _run_exit_scenarios([name], repeat=3)


def test_exit_runs_queued_work_like_thread_pool_executor():
    """At exit the pool stops taking work but runs what it accepted (queued included), as
    ThreadPoolExecutor does: nothing accepted is lost. Pools stop in threading's exit hooks,
    before any atexit hook, so an atexit hook sees the outcome.
    """
    proc = run_py(
        """
import atexit, threading, time
state = {}
def inspect():
    running, queued = state["running"], state["queued"]
    print("running done:", running.done(), running.result() if running.done() else None)
    print("queued done:", sum(f.done() and not f.cancelled() for f in queued), "of", len(queued))
    s = state["pool"].stats()
    print("stats:", s["submitted"], s["completed"], s["cancelled"], s["workers"])
atexit.register(inspect)
import chanpool
p = chanpool.WorkerPool(1)
started = threading.Event()
def slow():
    started.set()
    time.sleep(0.2)
    return "finished"
state["pool"] = p
state["running"] = p.submit(slow)
started.wait(10)
state["queued"] = [p.submit(print, "queued task ran") for _ in range(100)]
"""
    )
    assert_clean_exit(proc)
    lines = proc.stdout.strip().splitlines()
    assert lines == ["queued task ran"] * 100 + [
        "running done: True finished",
        "queued done: 100 of 100",
        "stats: 101 101 0 0",
    ], proc.stdout


def test_interpreter_shutdown_runs_the_running_task():
    """CPython's test_interpreter_shutdown: exit with a task running; it completes (its output
    appears) and nothing is printed on stderr."""
    proc = run_py(
        """
import threading, time, chanpool
started = threading.Event()
def sleep_and_print(t, msg):
    started.set()
    time.sleep(t)
    print(msg, flush=True)
t = chanpool.WorkerPool(5)
t.submit(sleep_and_print, 0.3, "apple")
started.wait(10)
"""
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip() == "apple"
    assert proc.stderr == ""


def test_cancel_futures_wait_false_at_exit():
    """CPython's test_cancel_futures_wait_false."""
    proc = run_py(
        """
import threading, time, chanpool
started = threading.Event()
def sleep_and_print(t, msg):
    started.set()
    time.sleep(t)
    print(msg, flush=True)
t = chanpool.WorkerPool(1)
t.submit(sleep_and_print, 0.2, "apple")
started.wait(10)
t.submit(sleep_and_print, 0.2, "banana")   # queued: cancelled
t.shutdown(wait=False, cancel_futures=True)
"""
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip() == "apple"


def test_submit_after_interpreter_shutdown():
    """CPython's test_submit_after_interpreter_shutdown: a late atexit hook cannot submit."""
    proc = run_py(
        """
import atexit
@atexit.register
def run_last():
    for call in (lambda: t.submit(id, None), lambda: t.map(id, [1]), lambda: t.try_submit(id, 1)):
        try:
            call()
        except RuntimeError as e:
            print("runtime-error:", e)
import chanpool
t = chanpool.WorkerPool(5)
assert t.submit(id, 42).result() == id(42)
"""
    )
    assert_clean_exit(proc)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(
        line.startswith("runtime-error: cannot schedule new futures") for line in lines
    ), proc.stdout


def test_exit_with_unretrieved_exception_does_not_crash():
    proc = run_py(
        """
import chanpool
p = chanpool.WorkerPool(1)
fs = [p.submit(int, "not a number") for _ in range(5)]
print("exiting")
"""
    )
    assert_clean_exit(proc, "exiting")


# ------------------------------------------------------------------------------------ fork

FORK_PRELUDE = """
import os, sys, time, threading, chanpool
def spin(n):
    t = 0
    for i in range(n):
        t += i
    return t
def wait_child(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        r, status = os.waitpid(pid, os.WNOHANG)
        if r:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.01)
def check_child(old_pool):
    # Child watchdog. (Not faulthandler: re-arming its timer in a forked child waits forever
    # for the parent's watchdog thread, which does not exist here.)
    import signal
    signal.alarm(20)
    code = 0
    for bit, call in ((1, lambda: old_pool.submit(spin, 10)),
                      (2, lambda: old_pool.map(spin, [1, 2])),
                      (4, lambda: old_pool.try_submit(spin, 10))):
        try:
            call()
        except RuntimeError:
            pass
        except BaseException as e:
            print("child: unexpected", type(e).__name__, e, flush=True)
            code |= bit
        else:
            code |= bit
    q = chanpool.WorkerPool(2)
    if q.submit(spin, 100).result(timeout=10) != spin(100):
        code |= 8
    if list(q.map(spin, range(20), chunksize=3)) != [spin(i) for i in range(20)]:
        code |= 16
    s = q.stats()
    if s["submitted"] != 21 or s["completed"] != 21:
        code |= 32
    return q, code
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_with_pool_busy():
    proc = run_py(
        FORK_PRELUDE
        + """
p = chanpool.WorkerPool(2)
gate = threading.Event()
blocker = p.submit(gate.wait, 30)
busy = [p.submit(spin, 20000) for _ in range(50)]   # queued and running while we fork
pid = os.fork()
if pid == 0:
    q, code = check_child(p)
    q.shutdown()
    sys.exit(code)          # a normal exit: atexit must ignore the parent's pool
print("child exit code:", wait_child(pid))
gate.set()
assert all(f.result(timeout=30) == spin(20000) for f in busy)
assert p.submit(spin, 5).result(timeout=30) == spin(5)
p.shutdown()
s = p.stats()
assert s["submitted"] == s["completed"] == 52, s
print("parent ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip().splitlines() == ["child exit code: 0", "parent ok"], proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_exits_with_work_in_flight():
    """The child's own pool still has work at exit; the parent's is untouched in the child."""
    proc = run_py(
        FORK_PRELUDE
        + """
p = chanpool.WorkerPool(2, queue_size=4)
for _ in range(4):
    p.submit(spin, 50000)
codes = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        q, code = check_child(p)
        for _ in range(50):
            q.submit(time.sleep, 0.01)
        it = q.map(spin, [1000] * 100, buffersize=4)
        next(it)
        sys.exit(code)      # no shutdown: the exit hook must deal with q
    codes.append(wait_child(pid))
print("child exit codes:", codes)
p.shutdown()
print("parent ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip().splitlines() == [
        "child exit codes: [0, 0, 0, 0, 0]",
        "parent ok",
    ], proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_old_pool_shutdown_in_child_does_not_hang():
    proc = run_py(
        FORK_PRELUDE
        + """
p = chanpool.WorkerPool(1)
gate = threading.Event()
p.submit(gate.wait, 30)
pid = os.fork()
if pid == 0:
    try:
        p.shutdown(wait=True)      # the parent's worker does not exist here
    except RuntimeError:
        pass
    del p
    import gc; gc.collect()
    os._exit(0)
print("child exit code:", wait_child(pid))
gate.set()
p.shutdown()
print("parent ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip().splitlines() == ["child exit code: 0", "parent ok"], proc.stdout


# ------------------------------------------------------------------------------------ Ctrl-C

INTERRUPT_PRELUDE = CTRL_C_PRELUDE

INTERRUPT_SCENARIOS = {
    "result": """
p = chanpool.WorkerPool(1)
gate = threading.Event()
f = p.submit(gate.wait, 60)
interrupt_when(blocked_in_function("_wait_finished"))
took = expect_interrupt(lambda: f.result())
assert took < 10, took
interrupt_when(blocked_in_function("_wait_finished"))
expect_interrupt(lambda: f.exception())
gate.set()
assert f.result(timeout=30) is True
assert p.submit(pow, 2, 5).result(timeout=30) == 32
p.shutdown()
s = p.stats()
assert (s["submitted"], s["completed"]) == (2, 2), s
print("ok")
""",
    "submit_full_queue": """
p = chanpool.WorkerPool(1, queue_size=2)
gate = threading.Event()
p.submit(gate.wait, 60)
queued = [p.submit(pow, 2, i) for i in range(2)]
def blocked_submit():
    p.submit(pow, 3, 3)   # the queue is full: blocks until Ctrl-C
code = blocked_submit.__code__
interrupt_when(blocked_at(code, code.co_firstlineno + 1), lambda: p.stats()["queued"] == 2)
expect_interrupt(blocked_submit)
s = p.stats()
assert s["submitted"] == 3, s        # the interrupted submit was not accepted
gate.set()
assert [f.result(timeout=30) for f in queued] == [1, 2]
assert p.submit(pow, 2, 10).result(timeout=30) == 1024
p.shutdown()
s = p.stats()
assert (s["submitted"], s["completed"], s["cancelled"]) == (4, 4, 0), s
print("ok")
""",
    "map_iteration": """
p = chanpool.WorkerPool(2)
gate = threading.Event()
def f(i):
    if i == 1:
        gate.wait(60)
    return i
it = p.map(f, range(10))
assert next(it) == 0
def consume():
    return next(it)      # item 1 is blocked: waits until Ctrl-C
code = consume.__code__
interrupt_when(blocked_at(code, code.co_firstlineno + 1))
expect_interrupt(consume)
gate.set()
assert list(p.map(f, range(5))) == list(range(5))
p.shutdown()
s = p.stats()
assert s["completed"] + s["failed"] + s["cancelled"] == s["submitted"] == 15, s
print("ok")
""",
    "lazy_map_iteration": """
p = chanpool.WorkerPool(2)
gate = threading.Event()
def f(i):
    if i == 1:
        gate.wait(60)
    return i
it = p.map(f, range(10), buffersize=2)
assert next(it) == 0
def consume():
    return next(it)
code = consume.__code__
interrupt_when(blocked_at(code, code.co_firstlineno + 1))
expect_interrupt(consume)
gate.set()
assert list(p.map(f, range(5), buffersize=2)) == list(range(5))
p.shutdown()
s = p.stats()
assert s["completed"] + s["failed"] + s["cancelled"] == s["submitted"], s
print("ok")
""",
    "shutdown_wait": """
p = chanpool.WorkerPool(1)
gate = threading.Event()
f = p.submit(gate.wait, 60)
def close():
    p.shutdown(wait=True)   # the task is blocked: waits until Ctrl-C
# (shutdown is the Python method, which waits inside the native one.)
interrupt_when(blocked_in_function("shutdown"))
expect_interrupt(close)
gate.set()
p.shutdown(wait=True)
assert f.result() is True
assert p.stats()["workers"] == 0
print("ok")
""",
}


@pytest.mark.parametrize("name", sorted(INTERRUPT_SCENARIOS))
def test_ctrl_c(name):
    proc = run_py(INTERRUPT_PRELUDE + INTERRUPT_SCENARIOS[name], timeout=45)
    assert_clean_exit(proc, "ok")
