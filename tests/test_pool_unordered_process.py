"""map_unordered, contextvars and shutdown(timeout) at process level, each in a fresh
interpreter, many times: exit with work in flight, fork() with a live iterator."""

from __future__ import annotations

import concurrent.futures as cf
import os

import pytest
from helpers import assert_clean_exit, run_py

SCENARIOS = {
    "exit_with_unordered_map_in_flight": """
import time, chanpool
p = chanpool.WorkerPool(2)
it = p.map_unordered(time.sleep, [0.005] * 100)
next(it)
it2 = p.map_unordered(time.sleep, [0.005] * 100, buffersize=3)
next(it2)
print("exiting")
""",
    "exit_after_shutdown_timeout": """
import time, chanpool
p = chanpool.WorkerPool(2, contextvars=True)
p.submit(time.sleep, 0.2)
for _ in range(50):
    p.submit(time.sleep, 0.001)
assert p.shutdown(timeout=0.01) is False
print("exiting")
""",
    "exit_from_daemon_thread_iterating_unordered": """
import threading, time, chanpool
p = chanpool.WorkerPool(2)
def consumer():
    while True:
        try:
            for _ in p.map_unordered(time.sleep, [0.002] * 20, buffersize=2):
                pass
        except Exception:
            return
threading.Thread(target=consumer, daemon=True).start()
while p.stats()["completed"] < 3:
    time.sleep(0.001)
print("exiting")
""",
}

FORK = """
import os, threading, contextvars, chanpool
v = contextvars.ContextVar("v", default=0)
p = chanpool.WorkerPool(2, contextvars=True)
gate = threading.Event()
def f(x):
    if x:
        gate.wait(10)
    return x + v.get()
v.set(100)
it = p.map_unordered(f, range(50))
assert next(it) == 100
pid = os.fork()
if pid == 0:
    try:
        next(it)
        os._exit(3)
    except RuntimeError:
        pass
    assert p.shutdown(timeout=1) is True
    gate.set()
    q = chanpool.WorkerPool(2, contextvars=True)
    assert sorted(q.map_unordered(f, range(1, 20))) == list(range(101, 120))
    assert q.shutdown(timeout=10) is True
    os._exit(0)
gate.set()
_, status = os.waitpid(pid, 0)
assert sorted(it) == list(range(101, 150)), "parent lost results"
assert p.shutdown(timeout=10) is True
print("child", os.waitstatus_to_exitcode(status))
"""


def test_exit_scenarios():
    jobs = [name for name in SCENARIOS for _ in range(8)]
    with cf.ThreadPoolExecutor(4) as ex:
        procs = list(ex.map(lambda n: (n, run_py(SCENARIOS[n], timeout=45)), jobs))
    for name, proc in procs:
        try:
            assert_clean_exit(proc, "exiting")
        except AssertionError as e:
            raise AssertionError(f"scenario {name!r} failed:\n{e}") from None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_with_live_unordered_map():
    with cf.ThreadPoolExecutor(4) as ex:
        procs = list(ex.map(lambda _: run_py(FORK, timeout=45, dump_on_hang=False), range(12)))
    for proc in procs:
        assert_clean_exit(proc, "child 0")
