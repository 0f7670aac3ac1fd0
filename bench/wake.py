"""Wake-up latency of every blocking wait: from the waking call to the waiter running again.

    python bench/wake.py [--trials 300] [--json FILE]

For each contender a waiter thread blocks (recv, get, acquire, result, select, ...), tells the
waker it is about to block, and the waker gives it ~1 ms to fall asleep, then takes
``t0 = perf_counter()`` and makes the waking call (send, put, release, set_result, publish; for
TokenBucket ``t0`` is the moment the next token is due, as the bucket sleeps until then). The
waiter takes ``t1`` as soon as its call returns; the latency is ``t1 - t0``. Contenders take
turns trial by trial (interleaved), and the table shows the median and the 99th percentile in
microseconds, and each median against chanpool's plain ``Channel.recv`` (the goal: within 2x)
and against ``threading.Event``. A wait that polls in slices instead of being woken shows up as
a median near the slice (20 ms). This is a report: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable

import chanpool
from chanpool import Channel, Future, PubSub, Semaphore, TokenBucket, WorkerPool, select

# A contender: given the clock to stamp, returns (block, wake). block() returns when woken;
# wake() makes the waking call and returns t0.
Make = Callable[[], tuple[Callable[[], object], Callable[[], float]]]
now = time.perf_counter


def stamped(call: Callable[[], object]) -> Callable[[], float]:
    def wake() -> float:
        t0 = now()
        call()
        return t0

    return wake


def event() -> tuple[Callable[[], object], Callable[[], float]]:
    e = threading.Event()
    return e.wait, stamped(e.set)


def simple_queue() -> tuple[Callable[[], object], Callable[[], float]]:
    q: queue.SimpleQueue[int] = queue.SimpleQueue()
    return q.get, stamped(lambda: q.put(1))


def recv() -> tuple[Callable[[], object], Callable[[], float]]:
    c: Channel[int] = Channel(0)
    return c.recv, stamped(lambda: c.send(1))


def recv_buffered() -> tuple[Callable[[], object], Callable[[], float]]:
    c: Channel[int] = Channel(None)
    return c.recv, stamped(lambda: c.send(1))


def send() -> tuple[Callable[[], object], Callable[[], float]]:
    c: Channel[int] = Channel(1)
    c.send(0)
    return (lambda: c.send(1)), stamped(c.recv)


def select_recv() -> tuple[Callable[[], object], Callable[[], float]]:
    a: Channel[int] = Channel(0)
    b: Channel[int] = Channel(0)
    return (lambda: select([a, b])), stamped(lambda: b.send(1))


def semaphore() -> tuple[Callable[[], object], Callable[[], float]]:
    s = Semaphore(0)
    return s.acquire, stamped(s.release)


def token_bucket() -> tuple[Callable[[], object], Callable[[], float]]:
    # One token every 2 ms, none left: the waiter's token is due 2 ms after the drain.
    rate = 500.0
    tb = TokenBucket(rate, 1)
    due = [0.0]

    def block() -> object:
        assert tb.try_acquire()
        due[0] = now() + 1 / rate
        return tb.acquire()

    def wake() -> float:
        # The token comes by itself; t0 is when it was due (after the drain, so at most late).
        while due[0] == 0.0:
            time.sleep(0)
        return due[0]

    return block, wake


def future_set_result() -> tuple[Callable[[], object], Callable[[], float]]:
    f: Future[int] = Future()
    return f.result, stamped(lambda: f.set_result(1))


_POOL: WorkerPool | None = None


def future_worker() -> tuple[Callable[[], object], Callable[[], float]]:
    # The real path: a pool worker finishes the task (the Rust completion), the waiter wakes.
    global _POOL
    if _POOL is None:
        _POOL = WorkerPool(2)
    go = threading.Event()
    t0 = [0.0]

    def task() -> int:
        go.wait()
        t0[0] = now()
        return 1

    f = _POOL.submit(task)

    def wake() -> float:
        go.set()
        while t0[0] == 0.0:
            time.sleep(0)
        return t0[0]

    return f.result, wake


def cf_future() -> tuple[Callable[[], object], Callable[[], float]]:
    import concurrent.futures as cf

    f: cf.Future[int] = cf.Future()
    return f.result, stamped(lambda: f.set_result(1))


_BUS: PubSub | None = None


def pull_get() -> tuple[Callable[[], object], Callable[[], float]]:
    global _BUS
    if _BUS is None:
        _BUS = PubSub()
    sub = _BUS.subscribe("wake.x")
    bus = _BUS

    def block() -> object:
        m = sub.get()
        sub.unsubscribe()
        return m

    return block, stamped(lambda: bus.publish("wake.x", 1))


CONTENDERS: dict[str, Make] = {
    "threading.Event wait/set": event,
    "queue.SimpleQueue get/put": simple_queue,
    "concurrent.futures.Future result": cf_future,
    "Channel(0) recv": recv,
    "Channel(None) recv": recv_buffered,
    "Channel(1) send (full)": send,
    "select (2 recv cases)": select_recv,
    "Semaphore.acquire": semaphore,
    "TokenBucket.acquire": token_bucket,
    "Future.result (set_result)": future_set_result,
    "Future.result (pool worker)": future_worker,
    "Subscription.get (pull)": pull_get,
}
ANCHOR = "Channel(0) recv"


def trial(make: Make) -> float:
    block, wake = make()
    ready = threading.Event()
    out = [0.0]

    def waiter() -> None:
        ready.set()
        block()
        out[0] = now()

    t = threading.Thread(target=waiter)
    t.start()
    ready.wait()
    time.sleep(0.001)  # let the waiter fall asleep (a benchmark, not a test)
    t0 = wake()
    t.join()
    return out[0] - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=300, help="wake-ups per contender")
    p.add_argument("--only", nargs="*", help="contenders whose name contains one of these")
    p.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = p.parse_args(argv)
    names = [n for n in CONTENDERS if not args.only or any(o in n for o in args.only)]
    if ANCHOR not in names:
        names.insert(0, ANCHOR)
    lat: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.trials):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            lat[n].append(trial(CONTENDERS[n]))
    rows = []
    for n in names:
        xs = sorted(lat[n])
        med = statistics.median(xs)
        p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
        rows.append({"contender": n, "median_us": med * 1e6, "p99_us": p99 * 1e6})
    anchor = next(r for r in rows if r["contender"] == ANCHOR)["median_us"]
    ev = next((r["median_us"] for r in rows if r["contender"].startswith("threading.Event")), None)
    print(
        f"wake-up latency | chanpool {chanpool.__version__} | Python {sys.version.split()[0]} | "
        f"{args.trials} trials each, interleaved"
    )
    print()
    w = max(len(n) for n in names)
    print(f"{'contender':<{w}}  {'median us':>9}  {'p99 us':>9}  {'x recv':>7}  {'x Event':>7}")
    for r in rows:
        x_ev = f"{r['median_us'] / ev:.2f}" if ev else "-"
        print(
            f"{r['contender']:<{w}}  {r['median_us']:>9.1f}  {r['p99_us']:>9.1f}  "
            f"{r['median_us'] / anchor:>7.2f}  {x_ev:>7}"
        )
    print()
    print("x recv = median / Channel(0) recv's median (goal: <= 2.00); x Event likewise.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"trials": args.trials, "rows": rows}, fh, indent=2)
            fh.write("\n")
    if _POOL is not None:
        _POOL.shutdown()
    if _BUS is not None:
        _BUS.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
