"""chanpool.Group and WaitGroup where a fault could hang or kill the process: Ctrl-C in
wait() and in a go() blocked on the limit, fork() with a group in use, interpreter exit with
tasks still queued or running. Each scenario runs in fresh interpreters, many times."""

from __future__ import annotations

import os
import re

import pytest
from helpers import CTRL_C_PRELUDE
from test_ratelimit_process import run_many


def test_ctrl_c_interrupts_wait_and_cancels_the_group():
    run_many(
        CTRL_C_PRELUDE
        + """
wg = chanpool.WaitGroup()
wg.add(1)
for block in (lambda: wg.wait(), lambda: wg.wait(600)):
    interrupt_when(blocked_in_function("<lambda>"))
    expect_interrupt(block)
    assert wg.count == 1
wg.done()
assert wg.wait(0)

g = chanpool.Group()
seen = []
started = threading.Event()
def task():
    started.set()
    seen.append(chanpool.current_context().wait(60))
g.go(task)
assert started.wait(30)  # else the cancellation would rightly drop it unstarted
interrupt_when(blocked_in_function("wait"))
expect_interrupt(g.wait)
# Ctrl-C cancelled the group: the task ended, a second wait() returns.
g.wait()
assert seen == [True], seen
print("ok")
""",
        "ok",
        times=6,
        timeout=60,
    )


def test_ctrl_c_interrupts_a_go_blocked_on_the_limit():
    run_many(
        CTRL_C_PRELUDE
        + """
g = chanpool.Group(limit=2)
gate = threading.Event()
g.go(gate.wait, 60)
g.go(gate.wait, 60)
ran = []
interrupt_when(blocked_in_function("go"))
expect_interrupt(lambda: g.go(ran.append, 1))
assert g.running == 2, g.running
gate.set()
g.wait()
# The interrupted go() started nothing and held no permit afterwards.
assert ran == [], ran
g2 = chanpool.Group(limit=1)
for i in range(20):
    g2.go(ran.append, i)
g2.wait()
assert ran == list(range(20)), ran
print("ok")
""",
        "ok",
        times=6,
        timeout=60,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_refuses_an_inherited_group_and_makes_new_ones():
    run_many(
        """
import os, signal, threading, chanpool
g = chanpool.Group(limit=2)
gate = threading.Event()
g.go(gate.wait, 60)
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    code = 0
    for call in (lambda: g.go(print, "x"), lambda: g.wait(), lambda: g._wg.add(1)):
        try:
            call()
            code |= 1
        except RuntimeError as e:
            if "fork" not in str(e):
                code |= 2
    # A group made in the child works there.
    out = []
    with chanpool.Group(limit=2) as h:
        for i in range(100):
            h.go(out.append, i)
    if sorted(out) != list(range(100)):
        code |= 4
    os._exit(code)
_, status = os.waitpid(pid, 0)
gate.set()
g.wait()
print("child", os.waitstatus_to_exitcode(status))
""",
        "child 0",
        times=8,
        dump_on_hang=False,
        timeout=60,
    )


def test_exit_with_live_tasks_runs_them_all():
    # No wait(): the group's own pool runs what it accepted at interpreter exit, as
    # ThreadPoolExecutor does; nothing is lost and the process exits cleanly.
    procs = run_many(
        """
import sys, threading, time, chanpool
g = chanpool.Group(limit=4)
lock = threading.Lock()
def task(i):
    time.sleep(0.001)
    with lock:
        sys.stdout.write(f"ran {i}\\n")
        sys.stdout.flush()
for i in range(200):
    g.go(task, i)
print("leaving", flush=True)
""",
        times=8,
        timeout=60,
    )
    for proc in procs:
        # "leaving" is written unlocked: it may share a line with a task's output.
        ran = sorted(int(i) for i in re.findall(r"ran (\d+)", proc.stdout))
        assert ran == list(range(200)), proc.stdout


def test_exit_while_a_daemon_thread_waits():
    # A daemon thread blocked in WaitGroup.wait() and one blocked in a limited go() at exit.
    run_many(
        """
import threading, chanpool
wg = chanpool.WaitGroup()
wg.add(1)
g = chanpool.Group(limit=1)
gate = threading.Event()
g.go(gate.wait, 0.2)
threading.Thread(target=wg.wait, daemon=True).start()
threading.Thread(target=lambda: g.go(print, "late"), daemon=True).start()
print("bye")
""",
        times=8,
        timeout=60,
    )
