"""chanpool.Channel vs queue.Queue and queue.SimpleQueue moving ints between threads, in one run.

    python bench/channels.py [--n 200000] [--repeat 3] [--capacity 1024]

Each run moves ``--n`` ints from P producer threads to C consumer threads (1/1 and 4/4). Every
contender uses the same protocol: producers put their share in a plain loop; when all producers
are done the main thread puts one ``None`` sentinel per consumer; each consumer takes items until
it sees a sentinel, counting them (the counts are checked). Threads are started and wait at a
barrier; the clock runs from the barrier until every consumer has finished. Contenders:

- ``queue.Queue(capacity)`` put/get: the anchor, every ratio is against it;
- ``queue.SimpleQueue`` put/get (unbounded, C-implemented, no maxsize/task_done/join);
- ``Channel(capacity)`` and ``Channel(None)`` send/recv;
- ``Channel(capacity)`` put/get (the queue.Queue API);
- ``Channel(capacity)`` send / ``for x in ch`` (close instead of sentinels: idiomatic use).

A last section times single-threaded put-all-then-get-all per operation (no contention).
Every figure is the best of ``--repeat`` runs, contenders alternate, and ``gc.collect()`` runs
before each. This is a report, not a test: the exit status is 0 whether targets are met or not.
"""

from __future__ import annotations

import argparse
import gc
import platform
import queue
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import chanpool
from chanpool import Channel

TARGET = 5.0  # Channel send/recv vs queue.Queue


def sentinel_run(make: Callable[[], Any], put: str, get: str, n: int, p: int, c: int) -> float:
    q = make()
    per = n // p
    counts = [0] * c
    barrier = threading.Barrier(p + c + 1)

    def produce() -> None:
        send = getattr(q, put)
        barrier.wait()
        for i in range(per):
            send(i)

    def consume(k: int) -> None:
        take = getattr(q, get)
        barrier.wait()
        got = 0
        while True:
            if take() is None:
                break
            got += 1
        counts[k] = got

    producers = [threading.Thread(target=produce) for _ in range(p)]
    consumers = [threading.Thread(target=consume, args=(k,)) for k in range(c)]
    for t in consumers + producers:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in producers:
        t.join()
    send = getattr(q, put)
    for _ in range(c):
        send(None)
    for t in consumers:
        t.join()
    took = time.perf_counter() - t0
    assert sum(counts) == per * p, (counts, per * p)
    return took


def iter_run(cap: int, n: int, p: int, c: int) -> float:
    ch: Channel[int] = Channel(cap)
    per = n // p
    counts = [0] * c
    barrier = threading.Barrier(p + c + 1)

    def produce() -> None:
        send = ch.send
        barrier.wait()
        for i in range(per):
            send(i)

    def consume(k: int) -> None:
        barrier.wait()
        got = 0
        for _ in ch:
            got += 1
        counts[k] = got

    producers = [threading.Thread(target=produce) for _ in range(p)]
    consumers = [threading.Thread(target=consume, args=(k,)) for k in range(c)]
    for t in consumers + producers:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in producers:
        t.join()
    ch.close()
    for t in consumers:
        t.join()
    took = time.perf_counter() - t0
    assert sum(counts) == per * p, (counts, per * p)
    return took


def single_thread(make: Callable[[], Any], put: str, get: str, n: int) -> Tuple[float, float]:
    q = make()
    send, take = getattr(q, put), getattr(q, get)
    t0 = time.perf_counter()
    for i in range(n):
        send(i)
    t1 = time.perf_counter()
    for _ in range(n):
        take()
    t2 = time.perf_counter()
    return (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="ints moved per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--capacity", type=int, default=1024, help="bounded capacity")
    args = parser.parse_args(argv)
    n, cap = args.n, args.capacity

    print(
        f"chanpool {chanpool.__version__} | {platform.python_implementation()} "
        f"{platform.python_version()} | {sys.platform} | n={n} capacity={cap} "
        f"best of {args.repeat}"
    )
    contenders: Dict[str, Callable[[int, int], float]] = {
        f"queue.Queue({cap}) put/get": lambda p, c: sentinel_run(
            lambda: queue.Queue(cap), "put", "get", n, p, c
        ),
        "queue.SimpleQueue put/get": lambda p, c: sentinel_run(
            queue.SimpleQueue, "put", "get", n, p, c
        ),
        f"Channel({cap}) send/recv": lambda p, c: sentinel_run(
            lambda: Channel(cap), "send", "recv", n, p, c
        ),
        "Channel(None) send/recv": lambda p, c: sentinel_run(
            lambda: Channel(None), "send", "recv", n, p, c
        ),
        f"Channel({cap}) put/get": lambda p, c: sentinel_run(
            lambda: Channel(cap), "put", "get", n, p, c
        ),
        f"Channel({cap}) send/iter": lambda p, c: iter_run(cap, n, p, c),
    }
    names = list(contenders)
    anchor, simple = names[0], names[1]
    worst = float("inf")
    for p, c in ((1, 1), (4, 4)):
        best: Dict[str, float] = {}
        for r in range(args.repeat):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                gc.collect()
                took = contenders[name](p, c)
                best[name] = min(best.get(name, took), took)
        print(f"\n{p} producer(s) / {c} consumer(s)")
        print(
            f"  {'contender':30} {'seconds':>8} {'Mitems/s':>9} {'vs Queue':>9} {'vs Simple':>10}"
        )
        for name in names:
            t = best[name]
            print(
                f"  {name:30} {t:8.4f} {n / t / 1e6:9.2f} {best[anchor] / t:8.1f}x "
                f"{best[simple] / t:9.2f}x"
            )
        worst = min(worst, best[anchor] / best[f"Channel({cap}) send/recv"])
        worst = min(worst, best[anchor] / best["Channel(None) send/recv"])

    print("\nsingle thread, ns per operation (put all, then get all)")
    for label, make, put, get in (
        ("queue.Queue()", queue.Queue, "put", "get"),
        ("queue.SimpleQueue", queue.SimpleQueue, "put", "get"),
        ("Channel(None) send/recv", lambda: Channel(None), "send", "recv"),
        ("Channel(None) put/get", lambda: Channel(None), "put", "get"),
    ):
        runs = [single_thread(make, put, get, n) for _ in range(args.repeat)]
        print(
            f"  {label:30} put {min(r[0] for r in runs):6.0f}   get {min(r[1] for r in runs):6.0f}"
        )

    verdict = "met" if worst >= TARGET else "MISSED"
    print(
        f"\nChannel send/recv vs queue.Queue, worst case: {worst:.1f}x "
        f"(target {TARGET}x: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
