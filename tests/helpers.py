"""Shared helpers for the chanpool test-suite (imported by the test modules and conftest)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from typing import Any, Callable, Optional

import pytest

# Upper bound for anything that "must finish": generous so a slow CI box never flakes, small
# enough that a deadlock fails the test long before the suite's overall budget is gone.
WATCHDOG = 60.0
SUBPROCESS_TIMEOUT = 60.0

STATS_KEYS = {
    "workers",
    "idle",
    "queued",
    "running",
    "submitted",
    "completed",
    "failed",
    "cancelled",
    "waits",
    "max_workers",
    "queue_size",
}


def all_stacks() -> str:
    """Every Python thread's stack, for watchdog failure messages."""
    out = []
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.append(f"--- thread {names.get(ident, ident)} ---")
        out.append("".join(traceback.format_stack(frame)))
    return "\n".join(out)


def watchdog(fn: Callable[[], Any], timeout: float = WATCHDOG, what: str = "scenario") -> Any:
    """Runs fn() in a daemon thread and fails if it does not finish within `timeout` seconds.

    Returns fn's result or re-raises its exception in the calling thread. (A scenario that
    deadlocks while *holding the GIL* would freeze this thread too; tests for that kind of
    deadlock run in a subprocess instead, see run_py.)
    """
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name=f"watchdog-{what}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"{what} did not finish within {timeout} s (deadlock?)\n{all_stacks()}")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def wait_until(
    pred: Callable[[], bool], timeout: float = WATCHDOG, what: str = "condition"
) -> None:
    """Polls pred() until it is true; fails the test after `timeout` seconds.

    Used only to observe states nothing signals (a thread being blocked inside a native call,
    a worker going idle); the poll interval is not part of any ordering argument.
    """
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{all_stacks()}")
        time.sleep(0.0005)


def native_thread_names() -> list:
    """Names (comm, truncated to 15 chars by Linux) of every OS thread of this process."""
    names = []
    for path in glob.glob("/proc/self/task/*/comm"):
        try:
            with open(path) as f:
                names.append(f.read().strip())
        except OSError:  # the thread exited between glob and open
            pass
    return names


def no_native_threads(prefix: str) -> None:
    """Waits until no OS thread whose name starts with prefix is listed in /proc.

    For threads already joined: pthread_join returns when the kernel clears the thread's id
    (early in its exit), and its /proc/self/task entry goes only when the kernel reaps it a
    moment later, so a joined thread can still be listed. Joining is what the caller checks
    (stats' workers == 0); this checks that the threads really end.
    """
    wait_until(
        lambda: not [n for n in native_thread_names() if n.startswith(prefix)],
        what=f"OS threads named {prefix}* to be reaped",
    )


def comm(name: str) -> str:
    return name[:15]


def frame_in(thread_id: int, code_names: set) -> bool:
    """True when the thread's current Python stack contains a frame of one of the functions."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code.co_name in code_names:
            return True
        frame = frame.f_back
    return False


def top_frame_is(thread_id: int, code: Any, lineno: Optional[int] = None) -> bool:
    """True when the thread's innermost Python frame runs `code` (at `lineno`, if given).

    A thread blocked inside a native method (WorkerPool.submit, MapIterator.__next__) shows the
    Python frame that called it, stopped at the line of the call.
    """
    frame = sys._current_frames().get(thread_id)
    if frame is None or frame.f_code is not code:
        return False
    return lineno is None or frame.f_lineno == lineno


def run_py(
    code: str,
    timeout: float = SUBPROCESS_TIMEOUT,
    env: Optional[dict] = None,
    dump_on_hang: bool = True,
):
    """Runs `code` with this interpreter in a fresh process and returns the CompletedProcess.

    With dump_on_hang the child arms faulthandler so that, if it hangs, it prints every thread's
    stack and exits before we kill it. Scripts that fork() must pass dump_on_hang=False: a forked
    child of a process with an armed faulthandler timer hangs in Py_Finalize waiting for the
    parent's watchdog thread (a CPython limitation, unrelated to chanpool).
    """
    prologue = "import sys\n"
    if dump_on_hang:
        prologue += (
            "import faulthandler\n"
            f"faulthandler.dump_traceback_later({max(timeout - 5, 1)!r}, exit=True)\n"
        )
    full_env = dict(os.environ)
    full_env.pop("PYTHONWARNINGS", None)
    if env:
        full_env.update(env)
    try:
        return subprocess.run(
            [sys.executable, "-c", prologue + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"subprocess did not finish within {timeout} s\n"
            f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}"
        )


def assert_clean_exit(proc, expect_stdout: Optional[str] = None) -> None:
    msg = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, msg
    for bad in ("Fatal Python error", "PyGILState", "panicked", "Segmentation fault", "Aborted"):
        assert bad not in proc.stderr, msg
    if expect_stdout is not None:
        assert proc.stdout.strip().splitlines()[-1:] == [expect_stdout], msg


def settled(pool) -> dict:
    """stats() after asserting the books balance: every accepted task ended exactly one way."""
    s = pool.stats()
    assert s["completed"] + s["failed"] + s["cancelled"] == s["submitted"], s
    return s


def exact(pool, **expected) -> dict:
    """Asserts the given stats() entries equal the expected values exactly."""
    s = pool.stats()
    got = {k: s[k] for k in expected}
    assert got == expected, f"stats mismatch: expected {expected}, got {got} (full: {s})"
    return s


# The start of every Ctrl-C scenario script: a watcher thread sends _thread.interrupt_main()
# once the main thread has been seen blocked (pred, continuously for 0.1 s), and the script
# checks that the blocked call raised KeyboardInterrupt soon after.
CTRL_C_PRELUDE = """
import _thread, os, sys, threading, time, chanpool
MAIN = threading.main_thread().ident

def frames():
    f = sys._current_frames().get(MAIN)
    while f is not None:
        yield f
        f = f.f_back

def blocked_in_function(name):
    return lambda: any(f.f_code.co_name == name for f in frames())

def blocked_at(code, line):
    def pred():
        f = sys._current_frames().get(MAIN)
        return f is not None and f.f_code is code and f.f_lineno == line
    return pred

def interrupt_when(pred, extra=lambda: True):
    def run():
        deadline = time.monotonic() + 20
        since = None
        while True:
            if time.monotonic() > deadline:
                print("main thread never blocked", flush=True)
                os._exit(3)
            if pred() and extra():
                since = since or time.monotonic()
                if time.monotonic() - since >= 0.1:
                    break
            else:
                since = None
            time.sleep(0.002)
        _thread.interrupt_main()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t

def expect_interrupt(fn, within=10):
    t0 = time.monotonic()
    try:
        fn()
    except KeyboardInterrupt:
        took = time.monotonic() - t0
        assert took < within, took
        return took
    print("no KeyboardInterrupt", flush=True)
    os._exit(4)

def interrupted(fn):
    # fn blocks on its first line: Ctrl-C it there.
    code = fn.__code__
    interrupt_when(blocked_at(code, code.co_firstlineno + 1))
    expect_interrupt(fn)
"""
