"""Cache faults in subprocesses: Ctrl-C in a waiter leaves the load running for the others;
a cache inherited across fork() keeps its values and ignores the parent's loads in flight."""

import os
import sys

import pytest
from helpers import CTRL_C_PRELUDE, assert_clean_exit, run_py


def test_ctrl_c_in_a_waiter_leaves_the_load_running():
    proc = run_py(
        CTRL_C_PRELUDE
        + """
for i in range(15):
    release = threading.Event()
    loads = []
    def load(k):
        loads.append(k)
        release.wait(30)
        return [k]
    c = chanpool.Cache(load)
    got = []
    leader = threading.Thread(target=lambda: got.append(c.get("k")))
    leader.start()
    while not loads:
        time.sleep(0.001)
    other = threading.Thread(target=lambda: got.append(c.get("k")))
    other.start()
    while c.stats()["coalesced"] < 1:
        time.sleep(0.001)
    interrupt_when(lambda: c.stats()["coalesced"] == 2)
    expect_interrupt(lambda: c.get("k"))
    release.set()
    leader.join(); other.join()
    assert len(loads) == 1, loads
    assert len(got) == 2 and got[0] is got[1], got
    assert c.get("k") is got[0]
    assert c.stats()["loads"] == 1
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork")
def test_a_cache_keeps_working_in_a_fork_child():
    proc = run_py(
        """
import os, threading, time, chanpool
for i in range(10):
    release = threading.Event()
    c = chanpool.Cache(lambda k: [k])
    kept = c.get("kept")
    started = threading.Event()
    def slow(k):
        started.set()
        release.wait(30)
        return "parent"
    t = threading.Thread(target=c.get, args=("busy", slow))
    t.start()
    started.wait(10)
    pid = os.fork()
    if pid == 0:
        ok = c.get("kept") is kept and c.get("busy", lambda k: "child") == "child"
        ok = ok and c.stats()["loads"] == 3
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    release.set()
    t.join()
    assert c.get("busy") == "parent"
print("ok")
""",
        dump_on_hang=False,
    )
    assert_clean_exit(proc, "ok")
