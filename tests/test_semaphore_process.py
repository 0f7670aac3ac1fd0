"""chanpool.Semaphore where a fault could hang or kill the process: Ctrl-C in a wait (also
racing other waiters), fork() while other threads wait, interpreter exit with daemon threads
inside waits. Each scenario runs in fresh interpreters (many times where it races)."""

from __future__ import annotations

import os

import pytest
from helpers import assert_clean_exit, run_py
from test_ratelimit_process import FORK_WHILE_BUSY, INTERRUPT_PRELUDE, run_many


def test_ctrl_c_interrupts_a_blocked_acquire():
    proc = run_py(
        INTERRUPT_PRELUDE
        + """
s = chanpool.Semaphore(0)
def with_block():
    with s:
        raise AssertionError("entered without a permit")
for block in (lambda: s.acquire(), lambda: s.acquire(True, 600), lambda: s.acquire(n=2),
              with_block):
    interrupt_when(lambda: s.waiting == 1)
    expect_interrupt(block)
    assert (s.waiting, s.available) == (0, 0), (s.waiting, s.available)
s.release()
assert s.acquire(timeout=30)
print("ok")
""",
        timeout=45,
    )
    assert_clean_exit(proc, "ok")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_a_working_semaphore():
    proc = run_py(
        """
import os, signal, threading, time, chanpool

s = chanpool.Semaphore(0)
ghost = []
t = threading.Thread(target=lambda: ghost.append(s.acquire(timeout=30)))
t.start()
while s.waiting != 1:
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    code = 0
    if s.waiting != 0:          # the parent's waiter does not exist here
        code |= 1
    s.release()
    if not s.acquire(timeout=10):
        code |= 2
    # Contended use from the child's own threads.
    inside, peak, lock = [0], [0], threading.Lock()
    def worker():
        for _ in range(200):
            with s:
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                with lock:
                    inside[0] -= 1
    s.release(2)
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    if peak[0] > 2 or s.available != 2 or s.waiting != 0:
        code |= 4
    os._exit(code)
_, status = os.waitpid(pid, 0)
print("child exit code:", os.waitstatus_to_exitcode(status))
s.release()
t.join(30)
assert ghost == [True], ghost
print("parent ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.split() == "child exit code: 0 parent ok".split(), proc.stdout


INTERRUPTION_RACE = (
    INTERRUPT_PRELUDE
    + """
# The main thread keeps joining the line at its head for more permits than exist, and is
# Ctrl-C'd there while workers wait behind it with timeouts: each interruption must hand the
# line on, and nothing may be taken by a wait that was interrupted or timed out.
s = chanpool.Semaphore(2)
lock = threading.Lock()
state = dict(inside=0, peak=0, ok=0, gave_up=0)
go = threading.Event()
def worker(k):
    go.wait()
    for r in range(150):
        t = (None, 0.001, 0.05, 5.0)[(k + r) % 4]
        if not s.acquire(timeout=t):
            with lock:
                state["gave_up"] += 1
            continue
        with lock:
            state["inside"] += 1
            state["peak"] = max(state["peak"], state["inside"])
        with lock:
            state["inside"] -= 1
            state["ok"] += 1
        s.release()
workers = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for w in workers:
    w.start()
def busy():
    return any(w.is_alive() for w in workers)
interrupts = 0
done = False
def interrupter():
    while not done:
        # Ctrl-C the main thread once it is seen waiting in line, then wait for it to land.
        if blocked_in_function("head")() and s.waiting >= 1:
            go.set()  # the workers start once the main thread is first seen in line
            seen = interrupts
            _thread.interrupt_main()
            while interrupts == seen:
                time.sleep(0.0005)
        time.sleep(0.001)
def head():
    s.acquire(n=3)
threading.Thread(target=interrupter, daemon=True).start()
while busy():
    try:
        head()
        raise AssertionError("took 3 of 2 permits")
    except KeyboardInterrupt:
        interrupts += 1
done = True
for w in workers:
    w.join()
assert interrupts > 0
assert state["ok"] + state["gave_up"] == 600, state
assert state["peak"] <= 2 and state["inside"] == 0, state
assert (s.available, s.waiting) == (2, 0), (s.available, s.waiting)
print("ok")
"""
)


def test_ctrl_c_racing_waiters_keeps_exact_counts():
    run_many(INTERRUPTION_RACE, "ok", times=4, timeout=90)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_threads_wait_inside_acquire():
    proc = run_py(
        FORK_WHILE_BUSY.format(kind="semaphore", forks=60), dump_on_hang=False, timeout=90
    )
    assert_clean_exit(proc, "failed children: []")


def test_interpreter_exit_with_threads_waiting():
    run_many(
        """
import threading, chanpool
never = chanpool.Semaphore(0)
busy = chanpool.Semaphore(2)
started = threading.Barrier(5)
def stuck():
    started.wait()
    never.acquire()
def cycle():
    started.wait()
    while True:
        with busy:
            pass
threading.Thread(target=stuck, daemon=True).start()
for _ in range(3):
    threading.Thread(target=cycle, daemon=True).start()
started.wait()
print("exiting")
""",
        "exiting",
    )
