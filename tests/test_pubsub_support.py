"""Shared helpers and fixtures for the chanpool.PubSub tests (no tests of its own).

Kept apart from tests/helpers.py and tests/conftest.py, which belong to the WorkerPool suite.
The PubSub test modules import what they need from here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any, List, Optional

import chanpool
import pytest
from helpers import all_stacks, wait_until, watchdog  # noqa: F401 (re-exported)

# Upper bound for anything that "must finish": a deadlock detector, never a synchronisation.
WATCHDOG = 30.0
SUBPROCESS_TIMEOUT = 60.0

BUS_STATS_KEYS = {
    "published",
    "unrouted",
    "subscriptions",
    "delivered",
    "dropped",
    "errors",
    "pending",
    "discarded",
    "workers",
}
SUB_STATS_KEYS = {"delivered", "dropped", "pending", "errors", "active"}


# watchdog, wait_until and all_stacks are the suite's shared ones (tests/helpers.py).


def blocked_in(thread: threading.Thread, code: Any) -> bool:
    """True when the thread's innermost Python frame runs `code`: a thread parked inside a
    native call shows the frame that made the call."""
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code is code


class Recorder:
    """A handler that records every message; waiters count with a Condition."""

    def __init__(self, gate: Optional[threading.Event] = None, gate_on: Any = None) -> None:
        self.cond = threading.Condition()
        self.messages: List[Any] = []
        self.gate = gate
        self.gate_on = gate_on
        self.entered = threading.Event()
        self.inflight = 0
        self.max_inflight = 0

    def __call__(self, msg: Any) -> None:
        with self.cond:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            self.messages.append(msg)
            self.cond.notify_all()
        try:
            if self.gate is not None and (self.gate_on is None or msg.data == self.gate_on):
                self.entered.set()
                if not self.gate.wait(WATCHDOG):
                    raise AssertionError("gate never opened")
        finally:
            with self.cond:
                self.inflight -= 1

    @property
    def data(self) -> List[Any]:
        with self.cond:
            return [m.data for m in self.messages]

    def __len__(self) -> int:
        with self.cond:
            return len(self.messages)

    def wait_count(self, n: int, timeout: float = WATCHDOG) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.messages) >= n, timeout)
            got = len(self.messages)
        assert ok, f"expected {n} messages within {timeout} s, got {got}\n{all_stacks()}"

    def wait_entered(self, timeout: float = WATCHDOG) -> None:
        assert self.entered.wait(timeout), f"handler never reached its gate\n{all_stacks()}"


@pytest.fixture
def gates():
    """Factory for Events that gate handlers; make_bus opens them all before closing buses."""
    made: List[threading.Event] = []

    def make() -> threading.Event:
        ev = threading.Event()
        made.append(ev)
        return ev

    make.all = made  # type: ignore[attr-defined]
    yield make
    for ev in made:
        ev.set()


@pytest.fixture
def make_bus(gates):
    """Factory for PubSubs that are always closed (under a watchdog) after the test."""
    buses: List[Any] = []

    def make(**kwargs: Any) -> Any:
        b = chanpool.PubSub(**kwargs)
        buses.append(b)
        return b

    yield make
    for ev in gates.all:
        ev.set()
    for b in buses:
        watchdog(lambda b=b: b.close(drain=False), what="teardown close")


def run_py(
    code: str, timeout: float = SUBPROCESS_TIMEOUT, dump_on_hang: bool = True
) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter; a hang dumps every stack (faulthandler) and fails.

    Scripts whose forked child exits through the interpreter (atexit, finalization) must pass
    dump_on_hang=False: a child forked while faulthandler's timer is armed blocks forever in
    finalization, waiting for the parent's watchdog thread (a CPython limitation, unrelated to
    chanpool). Their hangs are still caught by the timeout.
    """
    return wait_py(start_py(code, timeout, dump_on_hang=dump_on_hang), timeout)


def start_py(
    code: str, timeout: float = SUBPROCESS_TIMEOUT, args: tuple = (), dump_on_hang: bool = True
) -> Any:
    prologue = "import sys\n"
    if dump_on_hang:
        prologue += (
            "import faulthandler\n"
            f"faulthandler.dump_traceback_later({max(timeout - 5, 1)!r}, exit=True)\n"
        )
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", prologue + textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Its own process group, so that a timeout also kills what it forked: a leftover
        # child holding the pipes would keep communicate() waiting forever.
        start_new_session=True,
    )
    return proc


def wait_py(proc: Any, timeout: float = SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"subprocess did not finish within {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_clean_exit(proc: subprocess.CompletedProcess, expect_last: Optional[str] = None):
    msg = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, msg
    for bad in ("Fatal Python error", "PyGILState", "panicked", "Segmentation fault", "Aborted"):
        assert bad not in proc.stderr, msg
    if expect_last is not None:
        assert proc.stdout.strip().splitlines()[-1:] == [expect_last], msg


def matches(pattern: str, topic: str) -> bool:
    """Reference NATS matcher: `*` one token, `>` one or more trailing tokens."""
    p = pattern.split(".")
    t = topic.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t):
            return False
        if tok != "*" and tok != t[i]:
            return False
    return len(t) == len(p)
