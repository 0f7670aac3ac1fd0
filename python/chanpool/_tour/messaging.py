"""The tour's messaging steps: PubSub, channels, fan-out and pipelines."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable

from chanpool._tour.common import (
    _STOP,
    Say,
    TourRow,
    TourSizes,
    best_times,
)


def _pubsub_chanpool(k: int, n: int) -> int:
    from chanpool import PubSub

    counts = [0] * k

    def make(i: int) -> Callable[[Any], None]:
        def handler(_: Any) -> None:
            counts[i] += 1

        return handler

    bus = PubSub()
    for i in range(k):
        bus.subscribe("tour.events", make(i))
    for i in range(n):
        bus.publish("tour.events", i)
    bus.close(drain=True)
    if counts != [n] * k:
        raise RuntimeError(f"PubSub delivered {counts}, expected {n} each")
    return sum(counts)


def _pubsub_queue_thread(k: int, n: int) -> int:
    queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(k)]
    counts = [0] * k

    def consume(i: int) -> None:
        get = queues[i].get
        while get() is not _STOP:
            counts[i] += 1

    threads = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(k)]
    for t in threads:
        t.start()
    puts = [q.put for q in queues]
    for i in range(n):
        for put in puts:
            put(i)
    for put in puts:
        put(_STOP)
    for t in threads:
        t.join()
    if counts != [n] * k:
        raise RuntimeError(f"Queue+Thread delivered {counts}, expected {n} each")
    return sum(counts)


def tour_pubsub(sizes: TourSizes, say: Say) -> list[TourRow]:
    """PubSub vs a queue.Queue and a Thread per subscriber."""
    from chanpool import PubSub

    k, n = 10, sizes.scaled(5_000)
    t = best_times(
        {
            "py": lambda: _pubsub_queue_thread(k, n),
            "cp": lambda: _pubsub_chanpool(k, n),
        },
        sizes.repeat,
    )
    bus = PubSub()
    try:
        shares = [0, 0]

        def member(i: int) -> Callable[[Any], None]:
            def handler(msg: Any) -> None:
                if msg.data == "bad":
                    raise ValueError("cannot handle this order")
                shares[i] += 1

            return handler

        for i in range(2):
            bus.subscribe("orders.*", member(i), group="workers")
        dead = bus.subscribe("_errors.>")
        logger = logging.getLogger("chanpool")
        level = logger.level
        logger.setLevel(logging.CRITICAL)  # the failure below is on purpose: keep it quiet
        try:
            for i in range(4):
                bus.publish("orders.new", i)
            bus.publish("orders.new", "bad")
            letter = dead.get(timeout=10)
        finally:
            logger.setLevel(level)
        say(
            f"PubSub: {n:,} messages to {k} subscribers, {k * n:,} deliveries counted"
            f" (Queue+Thread needs {k} threads); a queue group of 2 on orders.* shared 4 messages"
            f" {shares}; a failing handler's message came back on {letter.topic}"
        )
    finally:
        bus.close()
    return [
        TourRow("pub/sub", f"{k} subscribers x {n:,} msgs", "Queue+Thread each", t["py"], t["cp"])
    ]


def _transfer(send: Callable[[Any], Any], recv: Callable[[], Any], n: int) -> int:
    def producer() -> None:
        for i in range(n):
            send(i)

    t = threading.Thread(target=producer)
    t.start()
    total = 0
    for _ in range(n):
        total += recv()
    t.join()
    if total != n * (n - 1) // 2:
        raise RuntimeError("items were lost or duplicated")
    return total


def tour_channels(sizes: TourSizes, say: Say) -> list[TourRow]:
    """Channel vs queue.Queue (one producer thread, one consumer), and select()."""
    from chanpool import Channel, select

    n, cap = sizes.scaled(50_000), 64

    def with_queue() -> int:
        q: queue.Queue[Any] = queue.Queue(cap)
        return _transfer(q.put, q.get, n)

    def with_channel() -> int:
        ch: Channel[Any] = Channel(cap)
        return _transfer(ch.send, ch.recv, n)

    t = best_times({"py": with_queue, "cp": with_channel}, sizes.repeat)

    jobs: Channel[int] = Channel(8)
    results: Channel[int] = Channel(8)
    quit_: Channel[None] = Channel(0)

    def worker() -> None:
        while True:
            index, item, ok = select([jobs, quit_])
            if index == 1 or not ok:
                results.close()
                return
            results.send(item * item)

    th = threading.Thread(target=worker)
    th.start()
    for i in range(5):
        jobs.send(i)
    picked = [results.recv() for _ in range(5)]
    quit_.close()
    th.join()
    try:
        select([Channel(1)], timeout=0.005)
        timed_out = False
    except TimeoutError:
        timed_out = True
    say(
        f"Channel({cap}): {n:,} items from a producer thread, sum checked; a select() loop over"
        f" jobs and quit squared {picked}, then stopped when quit closed"
        f" (results closed: {results.closed}); select(timeout=) raised TimeoutError: {timed_out}"
    )
    return [
        TourRow("channels", f"Channel({cap}), {n:,} items", f"queue.Queue({cap})", t["py"], t["cp"])
    ]


def _queue_pipeline(
    source: Iterable[Any], stages: list[tuple[Callable[[Any], Any], int]], capacity: int = 64
) -> list[Any]:
    """The hand-written Python pipeline: queues between stages, a sentinel per stage."""
    first: queue.Queue[Any] = queue.Queue(capacity)

    def feed() -> None:
        for item in source:
            first.put(item)
        first.put(_STOP)

    threads = [threading.Thread(target=feed)]
    q_in = first
    for fn, workers in stages:
        q_out: queue.Queue[Any] = queue.Queue(capacity)
        left = [workers]
        lock = threading.Lock()

        def work(
            q_in: queue.Queue[Any] = q_in,
            q_out: queue.Queue[Any] = q_out,
            fn: Callable[[Any], Any] = fn,
            left: list[int] = left,
            lock: threading.Lock = lock,
        ) -> None:
            while (item := q_in.get()) is not _STOP:
                q_out.put(fn(item))
            q_in.put(_STOP)  # for this stage's other workers
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    q_out.put(_STOP)

        threads += [threading.Thread(target=work) for _ in range(workers)]
        q_in = q_out
    for t in threads:
        t.start()
    out = []
    while (item := q_in.get()) is not _STOP:
        out.append(item)
    for t in threads:
        t.join()
    return out


def _inc(x: int) -> int:
    return x + 1


def _double(x: int) -> int:
    return x * 2


def tour_pipeline(sizes: TourSizes, say: Say) -> list[TourRow]:
    """fan_out + as_completed-style collection, and a three-stage pipeline."""
    from chanpool import fan_out, pipeline

    n = sizes.scaled(20_000)
    items = range(n)
    expect_fan = sum(_double(x) for x in items)

    def fan_py() -> int:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(_double, x) for x in items]
            total = sum(f.result() for f in as_completed(futures))
        if total != expect_fan:
            raise RuntimeError("fan-out lost results")
        return total

    def fan_cp() -> int:
        total = sum(fan_out(items, _double, workers=4))
        if total != expect_fan:
            raise RuntimeError("fan_out lost results")
        return total

    stages: list[tuple[Callable[[Any], Any], int]] = [(_inc, 1), (_double, 1), (str, 1)]
    expect_pipe = [str((x + 1) * 2) for x in items]

    def pipe_py() -> list[Any]:
        out = _queue_pipeline(items, stages)
        if out != expect_pipe:
            raise RuntimeError("queue pipeline lost or reordered items")
        return out

    def pipe_cp() -> list[Any]:
        out = list(pipeline(items, *stages))
        if out != expect_pipe:
            raise RuntimeError("pipeline lost or reordered items")
        return out

    t = best_times({"fpy": fan_py, "fcp": fan_cp, "ppy": pipe_py, "pcp": pipe_cp}, sizes.repeat)

    def fragile(x: int) -> int:
        if x == 3:
            raise KeyError(x)
        return x

    got: list[int] = []
    try:
        for v in pipeline(range(100), fragile, _inc):
            got.append(v)
        error = "none"
    except KeyError as e:
        error = repr(e)
    say(
        f"fan_out/pipeline: {n:,} items on 4 workers and through 3 one-worker stages (order"
        f" kept, results checked); a stage error reaches the consumer after {got}: {error}"
    )
    return [
        TourRow(
            "fan-out/fan-in", f"fan_out, 4 workers, {n:,}", "TPE + as_completed", t["fpy"], t["fcp"]
        ),
        TourRow("pipeline", f"3 stages, {n:,} items", "Queue + threads", t["ppy"], t["pcp"]),
    ]
