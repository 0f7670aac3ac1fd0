"""Channels at the process level, each scenario in a fresh interpreter: Ctrl-C
(_thread.interrupt_main) while blocked in every kind of wait, fork() children, and interpreter
exit while threads are blocked on channels.
"""

from __future__ import annotations

import concurrent.futures as cf
import os

import pytest
from helpers import CTRL_C_PRELUDE, assert_clean_exit, run_py

# ------------------------------------------------------------------------------------ Ctrl-C

INTERRUPT_PRELUDE = CTRL_C_PRELUDE + "import queue\nfrom chanpool import Channel, Closed, select\n"

INTERRUPT_SCENARIOS = {
    "recv_unbuffered": """
c = Channel(0)
def op():
    return c.recv()
interrupted(op)
t = threading.Thread(target=c.send, args=("after",)); t.start()
assert c.recv(timeout=30) == "after"; t.join()
print("ok")
""",
    "recv_buffered_and_iteration": """
c = Channel(4)
def op():
    return c.recv()
interrupted(op)
def it():
    return next(iter(c))
interrupted(it)
c.send(1)
assert c.recv() == 1 and len(c) == 0
print("ok")
""",
    "send_full": """
c = Channel(1)
c.send("first")
def op():
    c.send("blocked")
interrupted(op)
assert len(c) == 1 and c.recv() == "first"
assert c.try_recv() == (None, False)   # the interrupted value was not sent
print("ok")
""",
    "send_unbuffered": """
c = Channel(0)
def op():
    c.send("blocked")
interrupted(op)
assert c.try_recv() == (None, False)   # the offer was withdrawn
got = []
t = threading.Thread(target=lambda: got.append(c.recv())); t.start()
c.send("next"); t.join()
assert got == ["next"]
print("ok")
""",
    "queue_get_and_put": """
q = Channel(1)
def get():
    return q.get()
interrupted(get)
q.put(1)
def put():
    q.put(2)
interrupted(put)
assert q.qsize() == 1 and q.get_nowait() == 1
print("ok")
""",
    "queue_join": """
q = Channel(None)
q.put(1)
def op():
    q.join()
interrupted(op)
q.get(); q.task_done(); q.join()
print("ok")
""",
    "select_recv_and_send": """
a, b = Channel(0), Channel(1)
b.send("full")
def op():
    return select([a, (b, "blocked")])
interrupted(op)
assert b.recv() == "full" and b.try_recv() == (None, False)
def with_timeout():
    return select([a], timeout=120)
interrupted(with_timeout)
print("ok")
""",
    "fan_in_output": """
a = Channel(0)
out = chanpool.fan_in(a)
def op():
    return out.recv()
interrupted(op)
t = threading.Thread(target=a.send, args=(5,)); t.start()
assert out.recv(timeout=30) == 5; t.join()
print("ok")
""",
}


@pytest.mark.parametrize("name", sorted(INTERRUPT_SCENARIOS))
def test_ctrl_c_interrupts_a_blocked_wait(name):
    proc = run_py(INTERRUPT_PRELUDE + INTERRUPT_SCENARIOS[name], timeout=45)
    assert_clean_exit(proc, "ok")


def test_ctrl_c_does_not_disturb_other_threads_waits():
    """Only the main thread sees signals: a worker thread blocked in recv keeps waiting and still
    gets its value after the main thread was interrupted."""
    proc = run_py(
        INTERRUPT_PRELUDE
        + """
c, mine = Channel(0), Channel(0)
got = []
t = threading.Thread(target=lambda: got.append(c.recv()), daemon=True); t.start()
def op():
    return mine.recv()
interrupted(op)
c.send("still waiting"); t.join(30)
assert got == ["still waiting"]
print("ok")
""",
        timeout=45,
    )
    assert_clean_exit(proc, "ok")


# ------------------------------------------------------------------------------------ fork

FORK_PRELUDE = """
import os, sys, time, threading, chanpool
from chanpool import Channel, Closed
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
def in_child(fn):
    pid = os.fork()
    if pid == 0:
        import signal
        signal.alarm(20)      # a hang ends the child (the parent then sees a signal exit)
        code = 1
        try:
            code = fn()
        except BaseException as e:
            print("child:", type(e).__name__, e, flush=True)
        os._exit(code)
    return wait_child(pid)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_a_copy_and_forgets_blocked_threads():
    proc = run_py(
        FORK_PRELUDE
        + """
buf = Channel(None)
for i in range(5):
    buf.send(i)
receiving = Channel(0)                    # a parent thread is blocked in recv()
r = threading.Thread(target=lambda: print("parent got", receiving.recv(), flush=True))
r.start()
sending = Channel(0)                      # a parent thread is blocked in an unbuffered send
s = threading.Thread(target=lambda: sending.send("from parent thread"))
s.start()
src = Channel(None)
merged = chanpool.fan_in(src)
src.send("forwarded")
assert merged.recv(timeout=30) == "forwarded"
def in_call(t):
    f = sys._current_frames().get(t.ident)
    return f is not None and f.f_code.co_name == "<lambda>"
def forwarder_parked():
    # The fan_in thread asleep (state S) in its wait, not inside a channel operation: forking
    # while it holds a channel's lock would (rightly) make that channel unusable in the child.
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if f.read().strip() != "chanpool-fan_in":
                    continue
            with open(f"/proc/self/task/{task}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "S"
        except OSError:
            pass
    return False
deadline = time.monotonic() + 30
since = None
while time.monotonic() < deadline:
    if in_call(r) and in_call(s) and forwarder_parked():
        since = since or time.monotonic()
        if time.monotonic() - since > 0.02:
            break
    else:
        since = None
    time.sleep(0.001)

def child():
    code = 0
    if [buf.recv() for _ in range(5)] != [0, 1, 2, 3, 4] or len(buf) != 0:
        code |= 1
    # The parent's blocked receiver does not exist here: a send cannot hand over to it.
    if receiving.try_send("nobody") is not False:
        code |= 2
    # The parent's blocked sender's value is not offered here.
    if sending.try_recv() != (None, False):
        code |= 4
    # The fan_in forwarder does not exist here: its output is closed.
    if list(merged) != [] or not merged.closed:
        code |= 8
    c = Channel(2)
    t = threading.Thread(target=lambda: [c.send(i) for i in range(100)] and c.close())
    t.start()
    if list(c) != list(range(100)):
        code |= 16
    t.join()
    return code

print("child exit code:", in_child(child))
assert [buf.recv() for _ in range(5)] == [0, 1, 2, 3, 4]    # the parent's copy is intact
receiving.send("y")
r.join(30)
assert sending.recv(timeout=30) == "from parent thread"
s.join(30)
src.send("again")
assert merged.recv(timeout=30) == "again"
print("parent ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc)
    lines = proc.stdout.strip().splitlines()
    assert lines == ["child exit code: 0", "parent got y", "parent ok"], proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_threads_hammer_a_channel_never_hangs_the_child():
    """Forks while other threads are inside channel operations: in the child the channel either
    works or raises RuntimeError (its lock was held at fork); it never hangs."""
    proc = run_py(
        FORK_PRELUDE
        + """
c = Channel(8)
stop = threading.Event()
def produce():
    i = 0
    while not stop.is_set():
        try:
            c.send(i, timeout=0.01)
        except TimeoutError:
            pass
        i += 1
def consume():
    while not stop.is_set():
        try:
            c.recv(timeout=0.01)
        except TimeoutError:
            pass
threads = [threading.Thread(target=f) for f in (produce, produce, consume)]
for t in threads:
    t.start()
def child():
    try:
        for i in range(20):
            c.try_send(i)
            c.try_recv()
        c.close()
        list(c)
        return 0
    except RuntimeError as e:
        return 0 if "fork" in str(e) else 5
codes = [in_child(child) for _ in range(20)]
stop.set()
for t in threads:
    t.join()
print("codes:", sorted(set(codes)))
""",
        dump_on_hang=False,
        timeout=120,
    )
    assert_clean_exit(proc)
    assert proc.stdout.strip().splitlines()[-1] == "codes: [0]", proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_channel_unusable_after_fork_keeps_refusing_and_never_hangs():
    """A channel whose lock a parent thread held at fork() refuses every use in the child, not
    only the first: a second call must not go on to wait for that lock (it hung before)."""
    proc = run_py(
        FORK_PRELUDE
        + """
import signal
c = Channel(8)
stop = threading.Event()
def produce():
    while not stop.is_set():
        try:
            c.send(0, timeout=0.0005)
        except TimeoutError:
            pass
def consume():
    while not stop.is_set():
        try:
            c.recv(timeout=0.0005)
        except TimeoutError:
            pass
threads = [threading.Thread(target=f) for f in (produce, produce, consume, consume)]
for t in threads:
    t.start()
def child():
    signal.alarm(5)
    try:
        c.try_send(1)
        return 0                  # usable: the lock was free at fork
    except RuntimeError:
        pass
    for op in (c.try_recv, lambda: c.try_send(2), lambda: len(c), lambda: c.recv(timeout=1)):
        try:
            op()
            return 4
        except RuntimeError as e:
            if "fork" not in str(e):
                return 5
    return 3                      # unusable, and said so every time
codes = {}
for _ in range(3000):
    code = in_child(child)
    codes[code] = codes.get(code, 0) + 1
    if codes.get(3, 0) >= 3:
        break
stop.set()
for t in threads:
    t.join()
print("codes:", sorted(codes), "unusable:", codes.get(3, 0))
""",
        dump_on_hang=False,
        timeout=240,
    )
    assert_clean_exit(proc)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("codes: [0, 3] unusable: "), proc.stdout


# ------------------------------------------------------------------------------------ exit

EXIT_SCENARIOS = {
    "daemon_threads_blocked": """
import threading, chanpool
from chanpool import Channel, select
full = Channel(1); full.send(0)
chans = [Channel(0), Channel(4), Channel(None), full, Channel(0)]
jq = Channel(None); jq.put(1)
targets = [chans[0].recv, chans[1].recv, lambda: chans[3].send(1), lambda: chans[4].send(2),
           lambda: select([chans[0], chans[2]]), jq.join, lambda: list(chans[2]),
           lambda: chanpool.fan_in(chans[0]).recv()]
started = threading.Barrier(len(targets) + 1)
def run(f):
    started.wait()
    f()
for f in targets:
    threading.Thread(target=run, args=(f,), daemon=True).start()
started.wait()
print("exiting")
""",
    "daemon_threads_busy_during_exit": """
import threading, chanpool
from chanpool import Channel, Closed
c = Channel(16)
u = Channel(0)
def produce(ch):
    i = 0
    while True:
        ch.send(i)
        i += 1
def consume(ch):
    for _ in ch:
        pass
for ch in (c, u):
    for f in (produce, produce, consume, consume):
        threading.Thread(target=f, args=(ch,), daemon=True).start()
while len(c) == 0:
    pass
print("exiting")
""",
    "fan_in_running": """
import threading, chanpool
from chanpool import Channel
ins = [Channel(2) for _ in range(3)]
out = chanpool.fan_in(*ins, capacity=1)
def produce(ch):
    while True:
        ch.send(object())
for ch in ins:
    threading.Thread(target=produce, args=(ch,), daemon=True).start()
out.recv()
print("exiting")
""",
    "selects_blocked_and_pairing": """
import threading, chanpool
from chanpool import Channel, select
idle = [Channel(0) for _ in range(3)]
pair = Channel(0)
def blocked_send():
    select([(c, 1) for c in idle])
def blocked_recv():
    select([*idle, Channel(0)])
def ping():
    while True:
        select([(pair, 1), idle[0]])
def pong():
    while True:
        select([pair, (idle[1], 2)])
started = threading.Barrier(7)
def run(f):
    started.wait()
    f()
for f in (blocked_send, blocked_send, blocked_recv, blocked_recv, ping, pong):
    threading.Thread(target=run, args=(f,), daemon=True).start()
started.wait()
print("exiting")
""",
    "pipeline_and_fan_out_running": """
import itertools, chanpool
out = chanpool.pipeline(itertools.count(), lambda x: x + 1, (abs, 3), str, capacity=0)
for _ in range(10):
    out.recv()
fo = chanpool.fan_out(itertools.count(), lambda x: x * 2, workers=4, capacity=0)
for _ in range(10):
    fo.recv()
idle = chanpool.pipeline(chanpool.Channel(0), abs, abs)   # stages blocked on an empty source
print("exiting")
""",
    "fan_in_output_closed_while_forwarding": """
import threading, chanpool
from chanpool import Channel
ins = [Channel(0) for _ in range(3)]
out = chanpool.fan_in(*ins, capacity=0)
def produce(ch):
    while True:
        ch.send(object())
for ch in ins:
    threading.Thread(target=produce, args=(ch,), daemon=True).start()
out.recv()
out.close()
print("exiting")
""",
    "close_from_atexit_before_chanpool_hook": """
import atexit, threading, chanpool
from chanpool import Channel
c = Channel(0)
done = threading.Event()
def waiter():
    done.set()
    for _ in c:
        pass
threading.Thread(target=waiter, daemon=True).start()
done.wait()
atexit.register(c.close)   # runs before chanpool's own exit hook (LIFO)
print("exiting")
""",
    # The woken daemon threads re-attach while the interpreter exits (CPython ends them).
    "close_from_atexit_after_chanpool_hook": """
import atexit, threading
chans = []
def close_all():
    for c in chans:
        c.close()
atexit.register(close_all)   # registered first: runs after chanpool's exit hook
from chanpool import Channel, select
chans.extend([Channel(0), Channel(1), Channel(0)])
chans[1].send("full")
started = threading.Barrier(4)
def run(f):
    started.wait()
    try:
        f()
    except Exception:
        pass
for f in (chans[0].recv, lambda: chans[1].send(2), lambda: select([chans[2]])):
    threading.Thread(target=run, args=(f,), daemon=True).start()
started.wait()
print("exiting")
""",
}


def _run_exit_scenario(name, repeat):
    with cf.ThreadPoolExecutor(2) as ex:
        procs = list(ex.map(lambda _: run_py(EXIT_SCENARIOS[name], timeout=45), range(repeat)))
    for proc in procs:
        assert_clean_exit(proc, "exiting")
        assert proc.stderr == "", proc.stderr


@pytest.mark.parametrize("name", sorted(EXIT_SCENARIOS))
def test_interpreter_exit_with_threads_on_channels(name):
    _run_exit_scenario(name, repeat=20)
