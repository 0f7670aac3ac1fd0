"""chanpool.TokenBucket where a fault could hang or kill the process: Ctrl-C in a wait, fork()
while other threads wait, interpreter exit with daemon threads inside waits. Each scenario
runs in fresh interpreters (many times where it races). Also the helpers the Semaphore's
process tests share."""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Optional

import pytest
from helpers import CTRL_C_PRELUDE, assert_clean_exit, run_py

INTERRUPT_PRELUDE = CTRL_C_PRELUDE


def run_many(
    code: str, expect: Optional[str] = None, times: int = 20, parallel: int = 4, **kwargs
) -> list:
    """Runs the same scenario script in `times` fresh interpreters, `parallel` at a time, and
    checks that each one exited cleanly (with `expect` as its last line of output)."""
    with cf.ThreadPoolExecutor(parallel) as ex:
        procs = list(ex.map(lambda _: run_py(code, **kwargs), range(times)))
    for proc in procs:
        assert_clean_exit(proc, expect)
    return procs


# A fork() while other threads are in the middle of waits: the first use in the child must not
# wait on a lock one of them held at that instant, and the object must keep working there.
FORK_WHILE_BUSY = """
import os, signal, threading, time, chanpool
KIND = {kind!r}
if KIND == "semaphore":
    obj = chanpool.Semaphore(2)
    def hammer():
        while not stop:
            if obj.acquire(timeout=1):
                obj.release()
else:
    obj = chanpool.TokenBucket(200000.0, 1)
    def hammer():
        while not stop:
            obj.acquire(timeout=1)
stop = False
ts = [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
for t in ts:
    t.start()
failed = []
for i in range({forks}):
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)                # a hang ends the child with SIGALRM
        if KIND == "semaphore":
            obj.release(6)              # permits the parent's threads held are gone here
        ok = obj.acquire(timeout=5) and obj.waiting == 0
        got = []
        th = [threading.Thread(target=lambda: got.append(obj.acquire(timeout=5)))
              for _ in range(3)]
        for x in th:
            x.start()
        for x in th:
            x.join()
        os._exit(0 if ok and got == [True] * 3 else 2)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        failed.append((i, code))
        break
stop = True
for t in ts:
    t.join(10)
print("failed children:", failed)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_threads_wait_inside_acquire():
    proc = run_py(FORK_WHILE_BUSY.format(kind="bucket", forks=150), dump_on_hang=False, timeout=90)
    assert_clean_exit(proc, "failed children: []")


def test_ctrl_c_interrupts_a_blocked_acquire():
    proc = run_py(
        INTERRUPT_PRELUDE
        + """
b = chanpool.TokenBucket(1e-3, 2)
assert b.try_acquire(2)

@b
def limited():
    return "ran"

for block in (lambda: b.acquire(), lambda: b.acquire(2, timeout=600), limited):
    interrupt_when(lambda: b.waiting == 1)
    expect_interrupt(block)
    assert b.waiting == 0, b.waiting

def with_block():
    with b:
        raise AssertionError("entered without a token")
interrupt_when(lambda: b.waiting == 1)
expect_interrupt(with_block)

# Another thread in line is not disturbed by the main thread's interruption.
fast = chanpool.TokenBucket(0.5, 1)
assert fast.try_acquire()
other = []
t = threading.Thread(target=lambda: other.append(fast.acquire(timeout=30)))
t.start()
while fast.waiting != 1:
    time.sleep(0.001)
interrupt_when(lambda: fast.waiting == 2)
expect_interrupt(lambda: fast.acquire(1))
assert fast.waiting == 1, fast.waiting
t.join(30)
assert other == [True], other
print("ok")
""",
        timeout=45,
    )
    assert_clean_exit(proc, "ok")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_a_working_bucket():
    proc = run_py(
        """
import os, signal, threading, time, chanpool

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

b = chanpool.TokenBucket(20.0, 40)
assert b.try_acquire(40)
ghost = []
t = threading.Thread(target=lambda: ghost.append(b.acquire(40, timeout=1.5)))
t.start()
while b.waiting != 1:
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    code = 0
    if b.waiting != 0:          # the parent's waiter does not exist here
        code |= 1
    if not b.acquire(2, timeout=10):
        code |= 2
    got = []
    ts = [threading.Thread(target=lambda: got.append(b.acquire(timeout=10))) for _ in range(4)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    if got != [True] * 4 or b.waiting != 0:
        code |= 4
    os._exit(code)
print("child exit code:", wait_child(pid))
t.join(30)
assert ghost == [False], ghost   # 40 tokens take 2 s
assert b.waiting == 0
assert b.acquire(1, timeout=30)
print("parent ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    assert proc.stdout.split() == "child exit code: 0 parent ok".split(), proc.stdout


def test_interpreter_exit_with_threads_waiting():
    run_many(
        """
import threading, chanpool
slow = chanpool.TokenBucket(1e-3, 1)
slow.try_acquire()
fast = chanpool.TokenBucket(5000.0, 1)
started = threading.Barrier(5)
def stuck():
    started.wait()
    slow.acquire()
def busy():
    started.wait()
    while True:
        fast.acquire()
threading.Thread(target=stuck, daemon=True).start()
for _ in range(3):
    threading.Thread(target=busy, daemon=True).start()
started.wait()
print("exiting")
""",
        "exiting",
    )
