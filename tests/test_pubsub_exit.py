"""chanpool.PubSub at interpreter exit, in subprocesses, many times: handlers blocked for good
(an Event nobody sets, a Channel nobody sends on), pull readers and publishers waiting in
daemon threads, buses never closed. No crash, no hang; Ctrl-C ends an exit that waits for a
handler; exit delivers what is queued (as close(drain=True)) within its grace period, and
what it has to discard is counted and logged."""

from __future__ import annotations

import time

from test_pubsub_support import assert_clean_exit, start_py, wait_py

pytest_plugins = ["test_pubsub_support"]

#: chanpool delivers what is queued at exit for this long, then waits this long again for
#: handler calls in progress (exit.rs DRAIN_GRACE, EXIT_GRACE).
EXIT_GRACE = 5.0

SCRIPT = r"""
import atexit, logging, sys, threading, time
# Registered before chanpool's own exit hook, so they run after it: what did exit deliver
# ("deliver" variant) and discard?
got = []
atexit.register(lambda: print("discarded", bus.stats()["discarded"], flush=True))
atexit.register(
    lambda: variant == "deliver"
    and print("delivered", len(got), sorted(got) == list(range(2000)), flush=True)
)
variant = sys.argv[1]
import chanpool
logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

variant = sys.argv[1]
bus = chanpool.PubSub()
entered = threading.Event()

if variant == "event":
    never = threading.Event()
    def h(msg):
        entered.set()
        never.wait()
    bus.subscribe("t", h)
    for i in range(10):
        bus.publish("t", i)
elif variant == "channel":
    ch = chanpool.Channel()
    def h(msg):
        entered.set()
        ch.recv()
    bus.subscribe("t", h)
    for i in range(10):
        bus.publish("t", i)
elif variant == "pull":
    subs = [bus.subscribe("p.*", capacity=2) for _ in range(3)]
    waiting = threading.Semaphore(0)
    def reader(s, k):
        waiting.release()
        if k % 2:
            for m in s:
                pass
        else:
            while True:
                s.get()
    def publisher():
        waiting.release()
        while True:
            bus.publish("q", 1)  # blocks on a full queue nobody reads
    q = bus.subscribe("q", capacity=1)
    for k, s in enumerate(subs):
        threading.Thread(target=reader, args=(s, k), daemon=True).start()
    threading.Thread(target=publisher, daemon=True).start()
    for _ in range(4):
        waiting.acquire()
    entered.set()
elif variant == "deliver":
    # Handlers slower than the publisher: most of the 2,000 are still queued at exit.
    def slow(msg):
        entered.set()
        time.sleep(0.0005)
        got.append(msg.data)
    bus.subscribe("d", slow, capacity=10_000)
    for i in range(2000):
        bus.publish("d", i)
elif variant == "mixed":
    # Several buses, never closed, one dropped, handlers that finish, queued work left.
    other = chanpool.PubSub()
    done = threading.Semaphore(0)
    def quick(msg):
        entered.set()
        done.release()
    other.subscribe("o", quick, capacity=10_000)
    for i in range(500):
        other.publish("o", i)
    del other
    gate = threading.Event()
    def slow(msg):
        gate.wait(0.001)
    bus.subscribe("s.>", slow, capacity=10_000, workers=2)
    for i in range(3000):
        bus.publish("s.x", i)
    pull = bus.subscribe("p")
    for i in range(50):
        bus.publish("p", i)
    done.acquire()

assert entered.wait(30)
print("ok", flush=True)
"""


def run_many(variant: str, runs: int, parallel: int = 10) -> list:
    results = []
    for _ in range(0, runs, parallel):
        procs = [(time.monotonic(), start_py(SCRIPT, args=(variant,))) for _ in range(parallel)]
        for t0, p in procs:
            res = wait_py(p)
            results.append((time.monotonic() - t0, res))
    for took, res in results:
        assert_clean_exit(res)
        assert res.stdout.splitlines()[0] == "ok", res.stdout
        assert took < 2 * EXIT_GRACE + 20, took
    return results


def discarded(res) -> int:
    return int(res.stdout.split("discarded", 1)[1].split()[0])


def test_exit_with_a_handler_blocked_on_an_event_that_never_fires():
    for _took, res in run_many("event", 20):
        assert "still in a handler at interpreter exit" in res.stderr, res.stderr
        assert "9 queued message(s) discarded at interpreter exit" in res.stderr, res.stderr
        assert discarded(res) == 9


def test_exit_delivers_what_is_queued_when_handlers_keep_up():
    for _took, res in run_many("deliver", 20):
        assert "delivered 2000 True" in res.stdout, res.stdout + res.stderr
        assert discarded(res) == 0
        assert "discarded at interpreter exit" not in res.stderr, res.stderr


def test_exit_with_a_handler_blocked_on_a_channel_recv():
    for _took, res in run_many("channel", 20):
        assert "still in a handler at interpreter exit" in res.stderr, res.stderr


def test_exit_with_pull_readers_and_a_publisher_waiting_in_daemon_threads():
    for took, _res in run_many("pull", 20):
        assert took < EXIT_GRACE, "nothing ran a handler, so exit waits for nothing"


def test_exit_with_buses_never_closed_discards_and_logs_what_was_queued():
    for _took, res in run_many("mixed", 20):
        n = discarded(res)
        assert n >= 50, "the pull subscription's 50 at least"
        assert f"{n} queued message(s) discarded at interpreter exit" in res.stderr, res.stderr


CTRL_C_SCRIPT = r"""
import _thread, atexit, sys, threading, time
import chanpool

bus = chanpool.PubSub()
entered = threading.Event()
never = threading.Event()
def h(msg):
    entered.set()
    never.wait()
bus.subscribe("t", h)
bus.publish("t", 1)
assert entered.wait(30)
MAIN = threading.main_thread().ident

def ctrl_c_once_exit_waits():
    # Registered after chanpool, so it runs first: once the main thread has left Python code
    # (it is in chanpool's exit hook, waiting for the handler) for 0.2 s, press Ctrl-C.
    def watch():
        since = None
        while True:
            busy = sys._current_frames().get(MAIN) is not None
            if busy:
                since = None
            else:
                since = since or time.monotonic()
                if time.monotonic() - since > 0.2:
                    break
            time.sleep(0.005)
        _thread.interrupt_main()
    threading.Thread(target=watch, daemon=True).start()
    print("exiting", time.time(), flush=True)

atexit.register(ctrl_c_once_exit_waits)
print("ok", flush=True)
"""


def test_ctrl_c_ends_an_exit_that_waits_for_a_handler():
    for _ in range(5):
        procs = [start_py(CTRL_C_SCRIPT) for _ in range(4)]
        for p in procs:
            res = wait_py(p)
            ended = time.time()
            msg = f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"
            for bad in ("Fatal Python error", "PyGILState", "panicked", "Segmentation", "Abort"):
                assert bad not in res.stderr, msg
            started = float(res.stdout.split("exiting", 1)[1].split()[0])
            assert ended - started < EXIT_GRACE - 1.5, f"Ctrl-C did not end the exit\n{msg}"
            assert "(interrupted)" in res.stderr, msg
