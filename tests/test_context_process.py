"""Context and run_with_timeout where a fault could take the process down: huge and NaN
timeouts, callbacks that raise BaseException or block, Ctrl-C, interpreter exit with timers,
callbacks and calls in flight, fork(). Each scenario runs in fresh interpreters, many times."""

from __future__ import annotations

import pytest
from helpers import assert_clean_exit, run_py
from test_ratelimit_process import run_many

TIMER_SURVIVES = """
import logging, math, threading, time, chanpool
from chanpool import Context

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("chanpool").addHandler(Keep())

def fires(timeout=0.05, within=10.0):
    c = Context().with_timeout(timeout)
    return c.wait(within) and isinstance(c.err, chanpool.DeadlineExceeded)
"""

HUGE_TIMEOUTS = """
# Huge timeouts and deadlines never kill the timer thread, and never fire.
huge = [Context().with_timeout(t) for t in (math.inf, 1e10, 9.3e18, 1e19, 1.8e19, 1e300)]
huge += [Context().with_deadline(t) for t in (math.inf, 1e300)]
huge += [Context().with_timeout(1e300).with_timeout(math.inf)]
assert fires(), "a deadline after huge ones"
assert not any(c.cancelled for c in huge)
for t in (math.inf, 1e19, 1e300):
    assert chanpool.run_with_timeout(abs, t, -2) == 2
    assert fires(), t
print("ok")
"""

RAISING_CALLBACKS = """
# A callback that raises SystemExit or KeyboardInterrupt when the timer ends its context: the
# callbacks after it still run, what it raised is logged, and later deadlines still fire.
for raised in (SystemExit, KeyboardInterrupt):
    c = Context().with_timeout(0.01)
    ran = threading.Event()
    def boom(raised=raised):
        raise raised("callback")
    c.on_cancel(boom)
    c.on_cancel(ran.set)
    assert c.wait(10) and ran.wait(10), raised
    assert fires(), raised
deadline = time.monotonic() + 10
while not {"SystemExit", "KeyboardInterrupt"} <= {
    r.exc_info[0].__name__ for r in records if r.exc_info
}:
    assert time.monotonic() < deadline, records
    time.sleep(0.01)
print("ok")
"""

BLOCKED_CALLBACK = """
# A callback that blocks delays no other deadline (it once held one of 0.2 s to 2.05 s).
# A context that has already ended runs a new callback at once, on the caller's thread: under
# load 10 ms can pass before on_cancel, so that round is retried with a longer timeout.
gate = threading.Event()
main = threading.main_thread()
for timeout in (0.01, 0.1, 1.0, 5.0):
    inline = []
    started = threading.Event()
    def block(inline=inline, started=started):
        if threading.current_thread() is main:
            inline.append(True)   # on_cancel came after the deadline: ran at once, here
            return
        started.set()
        gate.wait(60)
    slow = Context().with_timeout(timeout)
    slow.on_cancel(block)
    if not inline:
        assert started.wait(10), "the blocking callback never ran"
        break
else:
    raise AssertionError("every deadline passed before on_cancel")
other = Context().with_timeout(0.2)
other.on_cancel(lambda: None)
assert other.wait(5), "a deadline stuck behind a blocked callback"
assert fires(), "and the next one"
gate.set()
print("ok")
"""


@pytest.mark.parametrize(
    "scenario",
    [HUGE_TIMEOUTS, RAISING_CALLBACKS, BLOCKED_CALLBACK],
    ids=["huge-timeouts", "raising-callbacks", "blocked-callback"],
)
def test_the_timer_survives_huge_timeouts_and_bad_callbacks(scenario):
    run_many(TIMER_SURVIVES + scenario, "ok", times=8)


EXIT_WITH_TIMERS = """
import threading, time, chanpool
from chanpool import Context
root = Context()
gate = threading.Event()
fired = []
main = threading.main_thread()
def off_main(fn):
    # A context that has already ended runs a new callback at once, here: not these.
    return lambda: None if threading.current_thread() is main else fn()
def stop():
    raise SystemExit("at exit")
for i in range(200):
    c = root.with_timeout(0.02 + 0.001 * (i % 50))   # firing while the interpreter exits
    c.on_cancel(lambda i=i: fired.append(i))
    if i % 20 == 0:
        c.on_cancel(off_main(lambda: gate.wait(3600)))   # a callback thread blocked at exit
    if i % 30 == 0:
        c.on_cancel(off_main(stop))
far = [root.with_timeout(3600 + i) for i in range(100)]    # live timers at exit
for c in far:
    c.on_cancel(lambda: fired.append(-1))
def forever():
    chanpool.current_context().wait()
    gate.wait(3600)
# run_with_timeout in flight on other threads: one waiting for its call, one whose call outlived
# its timeout and still runs.
threading.Thread(target=chanpool.run_with_timeout, args=(forever, 3600), daemon=True).start()
def late():
    try:
        chanpool.run_with_timeout(gate.wait, 0.01, 3600)
    except chanpool.DeadlineExceeded:
        pass
threading.Thread(target=late, daemon=True).start()
threading.Thread(target=root.wait, daemon=True).start()
time.sleep(0.03)   # not synchronisation: only lets some deadlines fall due before the exit
print("exiting")
"""


def test_exit_with_live_timers_callbacks_and_calls_in_flight():
    run_many(EXIT_WITH_TIMERS, "exiting", times=20)


def test_ctrl_c_interrupts_context_wait():
    proc = run_py(
        """
import _thread, sys, threading, time, chanpool
main = threading.main_thread().ident
def ctrl_c():
    while True:
        f = sys._current_frames().get(main)
        names = set()
        while f is not None:
            names.add((f.f_code.co_name, f.f_code.co_filename.rsplit("/", 1)[-1]))
            f = f.f_back
        if ("wait", "_context.py") in names:
            break
    _thread.interrupt_main()
threading.Thread(target=ctrl_c, daemon=True).start()
ctx = chanpool.Context()
try:
    ctx.wait()
except KeyboardInterrupt:
    print("ok")
""",
        timeout=45,
    )
    assert_clean_exit(proc, "ok")


def test_exit_with_pending_deadlines_and_blocked_waiters_is_clean():
    run_many(
        """
import threading, chanpool
root = chanpool.Context()
ctxs = [root.with_timeout(3600 + i) for i in range(100)]
p = chanpool.WorkerPool(1)
p.submit(sum, range(10**6))
for c in ctxs:
    p.submit_with(c, c.wait, 0.001)   # queued at exit: cancelled, never run
threading.Thread(target=root.wait, daemon=True).start()
print("ok")
""",
        "ok",
        times=20,
        timeout=45,
    )


def test_deadlines_work_in_a_forked_child():
    proc = run_py(
        """
import os, chanpool
ctx = chanpool.Context().with_timeout(0.01)
assert ctx.wait(30)
pid = os.fork()
if pid == 0:
    c = chanpool.Context().with_timeout(0.01)
    os._exit(0 if c.wait(30) and isinstance(c.err, chanpool.DeadlineExceeded) else 5)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
print("ok")
""",
        timeout=45,
        dump_on_hang=False,
    )
    assert_clean_exit(proc, "ok")
