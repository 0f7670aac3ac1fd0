"""The threading.Thread a task sees on a WorkerPool worker: named like the OS thread (as
ThreadPoolExecutor's workers are), listed by threading.enumerate() only while the worker lives,
and sane across fork() and interpreter exit (those in subprocesses, many times).
"""

from __future__ import annotations

import logging
import os
import threading

import chanpool
import pytest
from helpers import assert_clean_exit, comm, native_thread_names, run_py, wait_until


def names_listed(prefix: str) -> list:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))


@pytest.mark.parametrize("round_", range(20))
def test_tasks_see_the_worker_name_and_enumerate_forgets_it(round_):
    p = chanpool.WorkerPool(3, thread_name_prefix=f"cptn{round_}")
    barrier = threading.Barrier(3, timeout=30)

    def task():
        barrier.wait()
        t = threading.current_thread()
        return t.name, t.ident == threading.get_ident(), t is threading.current_thread()

    fs = [p.submit(task) for _ in range(3)]
    got = sorted(f.result(timeout=30) for f in fs)
    expected = [f"cptn{round_}_{i}" for i in range(3)]
    assert got == [(n, True, True) for n in expected]
    # The OS thread carries the same name (cut to 15 bytes by Linux).
    assert sorted(n for n in native_thread_names() if n.startswith(f"cptn{round_}_")) == [
        comm(n) for n in expected
    ]
    assert names_listed(f"cptn{round_}_") == expected
    p.shutdown(wait=True)
    assert names_listed(f"cptn{round_}_") == []


def test_initializer_and_map_see_the_name():
    seen = []
    p = chanpool.WorkerPool(
        1,
        thread_name_prefix="cpinit",
        initializer=lambda: seen.append(threading.current_thread().name),
    )
    got = list(p.map(lambda _: threading.current_thread().name, range(100), chunksize=7))
    p.shutdown()
    assert seen == ["cpinit_0"]
    assert got == ["cpinit_0"] * 100


def test_idle_worker_keeps_its_name():
    """test_idle_thread_reuse's shape: one idle worker runs every task, under one name."""
    p = chanpool.WorkerPool(4, thread_name_prefix="cpidle")
    names = set()
    for _ in range(50):
        names.add(p.submit(lambda: threading.current_thread().name).result(timeout=30))
        wait_until(lambda: p.stats()["idle"] >= 1, what="worker to go idle")
    p.shutdown()
    assert names == {"cpidle_0"}
    assert names_listed("cpidle") == []


def test_logging_thread_name():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.threadName, record.thread))

    log = logging.getLogger("test_pool_thread_names")
    log.addHandler(keep := Keep())
    log.propagate = False
    try:
        with chanpool.WorkerPool(1, thread_name_prefix="cplog") as p:
            ident = p.submit(lambda: log.warning("hi") or threading.get_ident()).result(timeout=30)
    finally:
        log.removeHandler(keep)
    assert records == [("cplog_0", ident)]


def test_many_pools_leave_nothing_listed():
    before = len(threading.enumerate())
    for i in range(30):
        with chanpool.WorkerPool(2, thread_name_prefix=f"cpmany{i}") as p:
            got = set(p.map(lambda _: threading.current_thread().name, range(50), chunksize=1))
        # A reused thread id must not hand a task the previous pool's thread object.
        assert got <= {f"cpmany{i}_0", f"cpmany{i}_1"}, got
    assert len(threading.enumerate()) == before
    assert [t.name for t in threading.enumerate() if t.name.startswith("cpmany")] == []


EXIT_SCRIPT = """
import threading, chanpool
def task(i):
    t = threading.current_thread()
    sum(range(2000))
    return t.name
p = chanpool.WorkerPool(3, thread_name_prefix="cpexit")
first = p.submit(task, -1).result(timeout=30)
fs = [p.submit(task, i) for i in range(300)]
it = p.map(task, range(300))
print("exiting", first)
"""


def test_exit_with_named_workers_busy():
    for _ in range(10):
        assert_clean_exit(run_py(EXIT_SCRIPT), "exiting cpexit_0")


FORK_SCRIPT = """
import os, sys, threading, time, signal, chanpool
p = chanpool.WorkerPool(2, thread_name_prefix="cpfork")
gate = threading.Event()
fs = [p.submit(gate.wait, 30) for _ in range(2)]
while p.stats()["running"] < 2:
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    code = 0
    if [t.name for t in threading.enumerate()] != [threading.current_thread().name]:
        code |= 1
    q = chanpool.WorkerPool(1, thread_name_prefix="cpchild")
    if q.submit(lambda: threading.current_thread().name).result(timeout=10) != "cpchild_0":
        code |= 2
    q.shutdown()
    if [t.name for t in threading.enumerate() if t.name.startswith("cp")]:
        code |= 4
    os._exit(code)
_, status = os.waitpid(pid, 0)
gate.set()
p.shutdown()
print("child", os.waitstatus_to_exitcode(status),
      [t.name for t in threading.enumerate() if t.name.startswith("cp")])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_sees_only_its_own_threads():
    for _ in range(5):
        assert_clean_exit(run_py(FORK_SCRIPT, dump_on_hang=False), "child 0 []")
