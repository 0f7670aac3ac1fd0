"""Interpreter exit, each scenario in fresh interpreters, many times: nothing accepted is lost,
no crash, no hang; Ctrl-C ends an exit that waits for a task that never finishes.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import SUBPROCESS_TIMEOUT, assert_clean_exit, run_py

REPEAT = 20


def run_many(code: str, repeat: int = REPEAT, timeout: float = 45):
    with cf.ThreadPoolExecutor(4) as ex:
        return list(ex.map(lambda _: run_py(code, timeout=timeout), range(repeat)))


def test_task_submitted_just_before_exit_runs():
    procs = run_many(
        """
import sys, chanpool
p = chanpool.WorkerPool(2)
for i in range(3):
    p.submit(sys.stdout.write, f"ran {i}\\n")
"""
    )
    for proc in procs:
        assert_clean_exit(proc)
        assert sorted(proc.stdout.split("\n")[:-1]) == ["ran 0", "ran 1", "ran 2"], proc.stdout


def test_queued_work_runs_at_exit_after_shutdown_without_wait():
    procs = run_many(
        """
import threading, chanpool
gate = threading.Event()
p = chanpool.WorkerPool(1)
p.submit(gate.wait)
fs = [p.submit(print, "queued", i, flush=True) for i in range(50)]
p.shutdown(wait=False)
gate.set()
"""
    )
    for proc in procs:
        assert_clean_exit(proc)
        assert proc.stdout.split("\n")[:-1] == [f"queued {i}" for i in range(50)], proc.stdout


def test_cancel_futures_is_still_honoured_at_exit():
    procs = run_many(
        """
import threading, chanpool
gate = threading.Event()
p = chanpool.WorkerPool(1)
first = p.submit(gate.wait)
fs = [p.submit(print, "must not run") for i in range(50)]
p.shutdown(wait=False, cancel_futures=True)
assert all(f.cancelled() for f in fs)
gate.set()
print("exiting")
""",
        repeat=5,
    )
    for proc in procs:
        assert_clean_exit(proc, "exiting")
        assert "must not run" not in proc.stdout


@pytest.mark.parametrize("how", ["submit", "map", "try_submit"])
def test_submit_from_a_later_atexit_hook_is_refused_like_tpe(how):
    """An atexit hook registered after the pool (so it runs before chanpool's own atexit
    hook) must still find the pool shut down, as with ThreadPoolExecutor."""
    proc = run_py(
        f"""
import atexit, chanpool
p = chanpool.WorkerPool(2)
assert p.submit(pow, 2, 3).result() == 8
@atexit.register
def late():
    try:
        p.{how}(abs, [1]) if {how!r} == "map" else p.{how}(abs, 1)
    except RuntimeError as e:
        print("refused:", e)
    else:
        print("accepted")
"""
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip() == (
        "refused: cannot schedule new futures after interpreter shutdown"
    ), proc.stdout


# --------------------------------------------------------------------- daemon threads at exit

DAEMON_SCENARIO = """
import threading, time, chanpool
p = chanpool.WorkerPool(2, queue_size=2)
ch = chanpool.Channel()
sem = chanpool.Semaphore(0)
bucket = chanpool.TokenBucket(1000, 1)
def new():
    chanpool.WorkerPool(1)
def map_():
    for _ in p.map(time.sleep, [0.002] * 10):
        pass
def lazymap():
    for _ in p.map(time.sleep, [0.002] * 10, buffersize=1):
        pass
def submit():
    p.submit(time.sleep, 0.002)
def result():
    p.submit(time.sleep, 0.002).result()
def shutdown():
    q = chanpool.WorkerPool(1)
    q.submit(time.sleep, 0.003)
    q.shutdown(wait=True)
def chan():
    ch.recv(timeout=0.002)
def sem_():
    sem.acquire(timeout=0.002)
def bucket_():
    bucket.acquire()
fn = {"new": new, "map": map_, "lazymap": lazymap, "submit": submit, "result": result,
      "shutdown": shutdown, "chan": chan, "sem": sem_, "bucket": bucket_}[WHAT]
calls = [0]
def forever():
    while True:
        try:
            fn()
        except BaseException:
            pass
        calls[0] += 1
for _ in range(4):
    threading.Thread(target=forever, daemon=True).start()
while calls[0] < 8:
    time.sleep(0.001)
print("exiting")
"""


@pytest.mark.parametrize(
    "what", ["new", "map", "lazymap", "submit", "result", "shutdown", "chan", "sem", "bucket"]
)
def test_exit_with_daemon_threads_inside_chanpool_calls(what):
    """Daemon threads looping in chanpool calls while the interpreter exits: CPython ends such
    threads with pthread_exit, which aborted (or crashed) the process when it unwound through
    native frames (reproduced 30/30 for `new`, 27/30 for `shutdown`)."""
    procs = run_many(f"WHAT = {what!r}\n" + DAEMON_SCENARIO, repeat=24)
    for proc in procs:
        assert proc.returncode == 0 and "exiting" in proc.stdout, (
            f"rc={proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr[-2000:]}"
        )
        assert "Fatal Python error" not in proc.stderr, proc.stderr[-2000:]


# -------------------------------------------------------------------- Ctrl-C during the exit


def _interrupt_exit(code: str) -> tuple[float, subprocess.CompletedProcess]:
    """Starts `code`, waits for it to print "exiting", then sends SIGINT every 0.2 s until it
    ends: a SIGINT that lands before the exit join is consumed by the script's last lines, a
    later one must end the join. Returns seconds from "exiting" to the end."""
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        lines = []
        while not lines or "exiting" not in lines[-1]:
            line = p.stdout.readline()
            assert line, lines
            lines.append(line.strip())
        t0 = time.monotonic()
        deadline = t0 + SUBPROCESS_TIMEOUT / 2
        while p.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail("the exit was not interrupted by SIGINT (hangs)")
            os.kill(p.pid, signal.SIGINT)
            try:
                p.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        out, err = p.communicate()
        return time.monotonic() - t0, subprocess.CompletedProcess(p.args, p.returncode, out, err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


BLOCKED_AT_EXIT = {
    "event": "import threading\nblocker = threading.Event()\nblock = blocker.wait\n",
    "channel": "import chanpool\nch = chanpool.Channel()\nblock = ch.recv\n",
}


@pytest.mark.parametrize("blocker", sorted(BLOCKED_AT_EXIT))
@pytest.mark.parametrize("executor", ["chanpool.WorkerPool", "cf.ThreadPoolExecutor"])
def test_ctrl_c_ends_an_exit_waiting_for_a_blocked_task(blocker, executor):
    for _ in range(3):
        took, proc = _interrupt_exit(
            BLOCKED_AT_EXIT[blocker]
            + f"""
import threading, concurrent.futures as cf, chanpool
started = threading.Event()
def task():
    started.set()
    block()
p = {executor}(2)
p.submit(task)
queued = p.submit(pow, 2, 2)
started.wait()
print("exiting", flush=True)
"""
        )
        assert took < 10, took
        for bad in ("Fatal Python error", "panicked", "Segmentation fault"):
            assert bad not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1, -signal.SIGINT, 130), proc


def test_dropped_work_after_ctrl_c_at_exit_is_counted_and_logged():
    _, proc = _interrupt_exit(
        """
import logging, threading, chanpool
logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
started = threading.Event()
blocker = threading.Event()
def task():
    started.set()
    blocker.wait()
p = chanpool.WorkerPool(1)
p.submit(task)
fs = [p.submit(print, "must not run") for _ in range(5)]
started.wait()
print("exiting", flush=True)
"""
    )
    assert "must not run" not in proc.stdout
    assert "chanpool WARNING exit interrupted: 5 queued task(s) cancelled" in proc.stderr, (
        proc.stderr
    )


def test_exit_with_run_with_timeout_in_flight():
    """run_with_timeout calls still running (their daemon threads inside chanpool waits: a
    Channel and a pool future) while the interpreter exits, with pool work queued."""
    procs = run_many(
        """
import threading, time, chanpool
p = chanpool.WorkerPool(1)
ch = chanpool.Channel()
def waits_on_pool():
    return p.submit(time.sleep, 0.05).result()
def caller(fn):
    try:
        chanpool.run_with_timeout(fn, 0.01)
    except TimeoutError:
        pass
for fn in (ch.recv, waits_on_pool, ch.recv):
    caller(fn)
threading.Thread(target=caller, args=(ch.recv,), daemon=True).start()
fs = [p.submit(time.sleep, 0.001) for _ in range(20)]
print("exiting")
"""
    )
    for proc in procs:
        assert_clean_exit(proc, "exiting")
