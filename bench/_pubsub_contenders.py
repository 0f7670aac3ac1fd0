"""The contenders of bench/pubsub.py: chanpool.PubSub, Queue+Thread / SimpleQueue+Thread,
blinker and pyee, each one timed run of ``k`` subscribers and ``n`` messages, plus the helpers
they share (OS thread counts, /proc/self/status, handlers). The runner is bench/pubsub.py.
"""

from __future__ import annotations

import gc
import importlib
import os
import queue
import resource
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, List, Optional, Tuple

import chanpool

TOPIC = "bench.events"
QT = "Queue+Thread"
SQT = "SimpleQueue+Thread"

Handler = Callable[[Any], None]


def optional_module(name: str) -> Optional[ModuleType]:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def os_threads() -> Optional[int]:
    """OS threads in this process (Linux), None where /proc is not available."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def proc_status_kib(key: str) -> Optional[int]:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), None where it is not available."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def make_noop() -> Handler:
    """A distinct do-nothing handler (same code, new function object)."""

    def noop(_: Any) -> None:
        return None

    return noop


def make_counter() -> Tuple[Handler, List[int]]:
    count = [0]

    def handler(_: Any) -> None:
        count[0] += 1

    return handler, count


def settle_threads(base: Optional[int], timeout: float = 1.0) -> None:
    """Waits (untimed) until threads of earlier runs have exited: Thread.join() returns a little
    before the OS thread is gone, and a leftover would be counted in the next run."""
    deadline = time.monotonic() + timeout
    while base is not None and time.monotonic() < deadline:
        now = os_threads()
        if now is None or now <= base:
            return
        time.sleep(0.001)


def added(before: Optional[int], after: Optional[int]) -> Optional[int]:
    return None if before is None or after is None else after - before


class WrongCount(RuntimeError):
    """A contender lost, duplicated or failed deliveries."""


@dataclass
class Run:
    seconds: float
    threads: Optional[int]
    #: Time spent in the publish loop alone (until the last publish returned).
    publish_seconds: Optional[float] = None
    #: Voluntary context switches of the whole process per 1,000 messages: how often a thread
    #: went to sleep to be woken again (a wake each), for the dispatch wake protocol.
    wakes_per_1k: Optional[float] = None


def voluntary_switches() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def per_1k(switches: int, n: int) -> float:
    return switches * 1000 / max(1, n)


# --- the contenders -----------------------------------------------------------------------


def run_chanpool(k: int, n: int, max_workers: Optional[int] = None) -> Run:
    before = os_threads()
    bus = chanpool.PubSub(max_workers=max_workers)
    try:
        subs = [bus.subscribe(TOPIC, make_noop()) for _ in range(k)]
        publish = bus.publish
        gc.collect()
        switches = voluntary_switches()
        start = time.perf_counter()
        for i in range(n):
            publish(TOPIC, i)
        published = time.perf_counter() - start
        threads = os_threads()
        bus.close(drain=True)
        seconds = time.perf_counter() - start
        switches = voluntary_switches() - switches
    finally:
        bus.close(drain=False)
    for s in subs:
        st = s.stats()
        if (st["delivered"], st["dropped"], st["errors"], st["pending"]) != (n, 0, 0, 0):
            raise WrongCount(f"chanpool subscription stats {st}, expected {n} delivered")
    return Run(seconds, added(before, threads), published, per_1k(switches, n))


_STOP = object()


def run_queue_thread(k: int, n: int, kind: Callable[[], Any] = queue.Queue) -> Run:
    """One ``kind()`` queue (queue.Queue, or queue.SimpleQueue: issue 10's peer) and one thread
    per subscriber."""
    before = os_threads()
    queues: List[Any] = [kind() for _ in range(k)]
    counts = [0] * k

    def consume(idx: int, q: Any, handler: Handler) -> None:
        get = q.get
        c = 0
        while True:
            item = get()
            if item is _STOP:
                break
            handler(item)
            c += 1
        counts[idx] = c

    workers = [
        threading.Thread(target=consume, args=(i, q, make_noop()), daemon=True)
        for i, q in enumerate(queues)
    ]
    for w in workers:
        w.start()
    puts = [q.put for q in queues]
    gc.collect()
    switches = voluntary_switches()
    start = time.perf_counter()
    for i in range(n):
        for put in puts:
            put(i)
    published = time.perf_counter() - start
    threads = os_threads()
    for put in puts:
        put(_STOP)
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    switches = voluntary_switches() - switches
    if counts != [n] * k:
        raise WrongCount(f"Queue+Thread consumers handled {counts}, expected {n} each")
    return Run(seconds, added(before, threads), published, per_1k(switches, n))


def run_blinker(
    blinker: ModuleType, k: int, n: int, handlers: Optional[List[Handler]] = None
) -> Run:
    before = os_threads()
    signal = blinker.Signal()
    for h in handlers if handlers is not None else [make_noop() for _ in range(k)]:
        signal.connect(h, weak=False)
    if len(signal.receivers) != k:
        raise WrongCount(f"blinker has {len(signal.receivers)} receivers, expected {k}")
    send = signal.send
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        send(i)
    threads = os_threads()
    seconds = time.perf_counter() - start
    return Run(seconds, added(before, threads))


def run_pyee(pyee: ModuleType, k: int, n: int, handlers: Optional[List[Handler]] = None) -> Run:
    before = os_threads()
    emitter = pyee.EventEmitter()
    for h in handlers if handlers is not None else [make_noop() for _ in range(k)]:
        emitter.on(TOPIC, h)
    if len(emitter.listeners(TOPIC)) != k:
        raise WrongCount(f"pyee has {len(emitter.listeners(TOPIC))} listeners, expected {k}")
    emit = emitter.emit
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        emit(TOPIC, i)
    threads = os_threads()
    seconds = time.perf_counter() - start
    return Run(seconds, added(before, threads))


def check_sync(runner: Callable[..., Run], k: int, n: int) -> None:
    """Untimed: with counting handlers, every handler must see every message exactly once."""
    counters = [make_counter() for _ in range(k)]
    runner(k, n, [h for h, _ in counters])
    got = [c[0] for _, c in counters]
    if got != [n] * k:
        raise WrongCount(f"handlers received {got}, expected {n} each")
