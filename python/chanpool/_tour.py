"""The tour behind ``python -m chanpool`` (not a public API): one comparison per pattern.

Each step runs a small piece of work with chanpool and the same work with the standard library,
checks that both got the right answer, and returns rows for the comparison table. Contenders
alternate from round to round, every measurement starts after ``gc.collect()`` with the previous
run's results freed, and the figure kept is the best of ``repeat`` rounds. Full benchmarks, with
more peers and min/median figures, live in bench/.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from chanpool import WorkerPool, __version__

__all__ = ["TOUR", "TourRow", "TourSizes", "environment", "format_tour"]

Runner = Callable[[], object]


class Executor(Protocol):
    """What the cases need from a pool: ThreadPoolExecutor and WorkerPool both fit."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]: ...


def identity(x: object) -> object:
    return x


def time_once(fn: Runner) -> float:
    """Seconds taken by one ``fn()``, after a full collection; the result is freed untimed."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def best_times(runners: Mapping[str, Runner], repeat: int) -> dict[str, float]:
    """Best of ``repeat`` seconds per runner; the runners take turns, in a rotating order."""
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(max(1, repeat)):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(time_once(runners[name]))
    return {name: min(ts) for name, ts in times.items()}


def run_map(pool: Executor, items: range, chunksize: int = 1) -> list[Any]:
    return list(pool.map(identity, items, chunksize=chunksize))


def run_submit(pool: Executor, items: range) -> tuple[list[Future[Any]], list[Any]]:
    futures = [pool.submit(identity, x) for x in items]
    # The futures are handed back so that they are freed after the clock stops.
    return futures, [f.result() for f in futures]


def run_sleep(pool: Executor, n: int, seconds: float) -> tuple[list[Future[Any]], list[Any]]:
    futures = [pool.submit(time.sleep, seconds) for _ in range(n)]
    return futures, [f.result() for f in futures]


def loop_sleep(n: int, seconds: float) -> None:
    for _ in range(n):
        time.sleep(seconds)


def environment() -> dict[str, Any]:
    """Where the figures come from."""
    tpe = ThreadPoolExecutor()  # no thread starts until the first submit
    cp = WorkerPool()
    try:
        return {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "chanpool": __version__,
            "default_max_workers": {"tpe": tpe._max_workers, "chanpool": cp.max_workers},
        }
    finally:
        tpe.shutdown()
        cp.shutdown()


_STOP = object()


@dataclass
class TourRow:
    """One pattern's comparison: the same work done by chanpool and by its Python equivalent."""

    pattern: str
    case: str
    python: str  # what the Python side is
    python_s: float
    chanpool_s: float

    @property
    def ratio(self) -> float:
        return self.python_s / self.chanpool_s if self.chanpool_s > 0 else float("inf")


@dataclass
class TourSizes:
    """How big each pattern's comparison is (``scaled`` multiplies every count)."""

    scale: float = 1.0
    repeat: int = 3

    def scaled(self, n: int) -> int:
        return max(1, round(n * self.scale))


Say = Callable[[str], None]


def _compare_pools(
    run: Callable[[Executor], object], max_workers: int | None, repeat: int
) -> dict[str, float]:
    """Best of ``repeat`` for ``run`` on a warmed ThreadPoolExecutor and WorkerPool."""
    tpe = ThreadPoolExecutor(max_workers=max_workers)
    cp = WorkerPool(max_workers=max_workers)
    try:
        for pool in (tpe, cp):
            items = range(4 * (max_workers or 8))
            if run_map(pool, items) != list(items) or run_submit(pool, items)[1] != list(items):
                raise RuntimeError(f"{pool!r} gave wrong results")
        return best_times({"tpe": lambda: run(tpe), "chanpool": lambda: run(cp)}, repeat)
    finally:
        tpe.shutdown(wait=True)
        cp.shutdown(wait=True)


def _spin(n: int) -> int:
    """Pure-Python arithmetic: holds the GIL from start to end."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def _unordered_row(n: int, repeat: int) -> TourRow:
    """map_unordered against multiprocessing's imap_unordered (results as they complete)."""
    from multiprocessing.pool import ThreadPool

    mp, cp = ThreadPool(4), WorkerPool(max_workers=4)
    items, expect = range(n), list(range(n))
    try:
        for run in (
            lambda: mp.imap_unordered(identity, items),
            lambda: cp.map_unordered(identity, items),
        ):
            if sorted(run()) != expect:  # type: ignore[type-var]
                raise RuntimeError("map_unordered gave wrong results")
        t = best_times(
            {
                "mp": lambda: list(mp.imap_unordered(identity, items)),
                "cp": lambda: list(cp.map_unordered(identity, items)),
            },
            repeat,
        )
    finally:
        mp.terminate()
        mp.join()
        cp.shutdown()
    return TourRow(
        "worker pool", f"map_unordered ({n:,})", "mp ThreadPool.imap_unordered", t["mp"], t["cp"]
    )


def tour_pool(sizes: TourSizes, say: Say) -> list[TourRow]:
    """WorkerPool vs ThreadPoolExecutor: map, submit+result, GIL-releasing and CPU-bound tasks."""
    n, sleep_n = sizes.scaled(20_000), sizes.scaled(200)
    items = range(n)
    python = "ThreadPoolExecutor"
    cases: list[tuple[str, Callable[[Executor], object], int | None]] = [
        (f"map ({n:,})", lambda p: run_map(p, items), None),
        (f"submit+result ({n:,})", lambda p: run_submit(p, items), None),
        (f"GIL-releasing ({sleep_n:,})", lambda p: run_sleep(p, sleep_n, 0.001), 16),
    ]
    rows = []
    for case, run, max_workers in cases:
        t = _compare_pools(run, max_workers, sizes.repeat)
        rows.append(TourRow("worker pool", case, python, t["tpe"], t["chanpool"]))

    tasks, spin, workers = sizes.scaled(16), 20_000, 4
    expect = [_spin(spin)] * tasks
    tpe, cp = ThreadPoolExecutor(max_workers=workers), WorkerPool(max_workers=workers)
    try:

        def on(pool: Executor) -> Runner:
            def go() -> None:
                if list(pool.map(_spin, [spin] * tasks)) != expect:
                    raise RuntimeError("wrong results")

            return go

        t = best_times(
            {"py": on(tpe), "cp": on(cp), "loop": lambda: list(map(_spin, [spin] * tasks))},
            sizes.repeat,
        )
    finally:
        tpe.shutdown()
        cp.shutdown()
    rows.append(
        TourRow("worker pool", f"CPU-bound pure Python ({tasks})", python, t["py"], t["cp"])
    )
    rows.append(_unordered_row(n, sizes.repeat))
    say(
        f"WorkerPool: {n:,} trivial tasks through map() and submit()+result(), {sleep_n}"
        f" sleep(1 ms) tasks on 16 workers, {tasks} pure-Python loops on {workers} workers"
        f" (a plain for-loop took {t['loop'] * 1e3:.0f} ms: the GIL lets no pool beat it);"
        f" {n:,} results in completion order through map_unordered; answers checked"
    )
    return rows


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


def tour_context(sizes: TourSizes, say: Say) -> list[TourRow]:
    """Deadlines that cancel queued work, and run_with_timeout vs Future.result(timeout)."""
    from chanpool import Context, current_context, run_with_timeout

    jobs, give_up, slow_s = sizes.scaled(400), 0.02, 0.1

    def job_cp() -> None:
        ctx = current_context()
        assert ctx is not None
        ctx.raise_if_cancelled()
        time.sleep(0.001)

    def cancel_cp() -> tuple[int, int]:
        with WorkerPool(max_workers=2) as pool:
            ctx = Context().with_timeout(give_up)
            futures = [pool.submit_with(ctx, job_cp) for _ in range(jobs)]
            wait(futures)
            cancelled = sum(f.cancelled() for f in futures)
        return cancelled, jobs - cancelled

    stop = threading.Event()

    def job_py() -> None:
        if stop.is_set():
            raise TimeoutError("gave up")
        time.sleep(0.001)

    def cancel_py() -> tuple[int, int]:
        stop.clear()
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(job_py) for _ in range(jobs)]
            _, pending = wait(futures, timeout=give_up)
            stop.set()
            for f in pending:
                f.cancel()
            wait(futures)
            cancelled = sum(f.cancelled() for f in futures)
        return cancelled, jobs - cancelled

    t = best_times({"py": cancel_py, "cp": cancel_cp}, sizes.repeat)
    cancelled, ran = cancel_cp()

    def slow() -> str:
        time.sleep(slow_s)
        return "late"

    def timeout_cp() -> None:
        try:
            run_with_timeout(slow, give_up)
        except TimeoutError:
            return
        raise RuntimeError("run_with_timeout did not time out")

    def timeout_py() -> None:
        try:
            with ThreadPoolExecutor(max_workers=1) as ex:
                ex.submit(slow).result(timeout=give_up)
        except FuturesTimeout:
            return
        raise RuntimeError("result(timeout=) did not time out")

    t2 = best_times({"py": timeout_py, "cp": timeout_cp}, 1)
    say(
        f"Context: a {give_up * 1e3:g} ms deadline on {jobs} queued 1 ms jobs (2 workers): {ran}"
        f" ran, {cancelled} never started; run_with_timeout() gave up on a {slow_s * 1e3:g} ms"
        f" call after {t2['cp'] * 1e3:.0f} ms (leaving a `with ThreadPoolExecutor()` block waits"
        " for it)"
    )
    return [
        TourRow(
            "context",
            f"deadline cancels {jobs} queued jobs",
            "TPE + Event + cancel()",
            t["py"],
            t["cp"],
        ),
        TourRow(
            "context",
            f"{give_up * 1e3:g} ms timeout, {slow_s * 1e3:g} ms call",
            "TPE result(timeout)",
            t2["py"],
            t2["cp"],
        ),
    ]


class PyTokenBucket:
    """The usual pure-Python token bucket: refill from the clock under a lock, sleep when short."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> bool:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return True
                short = (1 - self.tokens) / self.rate
            time.sleep(short)


def _paced(bucket: Any, tokens: int, threads: int) -> float:
    """Seconds for ``threads`` threads to take ``tokens`` tokens between them."""
    per = tokens // threads
    start = threading.Barrier(threads + 1)

    def run() -> None:
        start.wait()
        for _ in range(per):
            bucket.acquire()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def _loop(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        fn()


def tour_ratelimit(sizes: TourSizes, say: Say) -> list[TourRow]:
    """TokenBucket accuracy and cost; Semaphore cost; rate_limit= on a pool."""
    from chanpool import Semaphore, TokenBucket

    rate, threads = 2_000, 4
    tokens = max(1, sizes.scaled(300) // threads) * threads
    paced_py = _paced(PyTokenBucket(rate), tokens, threads)
    paced_cp = _paced(TokenBucket(rate, 1), tokens, threads)
    ideal = (tokens - 1) / rate  # the first token is there at once
    ops = sizes.scaled(100_000)
    full_py, full_cp = PyTokenBucket(1e12, 10**12), TokenBucket(1e12, 10**12)
    sem_py, sem_cp = threading.Semaphore(1), Semaphore(1)

    def sem_pair(s: Any) -> Callable[[], None]:
        acquire, release = s.acquire, s.release

        def pair() -> None:
            acquire()
            release()

        return pair

    t = best_times(
        {
            "bpy": lambda: _loop(full_py.acquire, ops),
            "bcp": lambda: _loop(full_cp.acquire, ops),
            "spy": lambda: _loop(sem_pair(sem_py), ops),
            "scp": lambda: _loop(sem_pair(sem_cp), ops),
        },
        sizes.repeat,
    )
    calls, limit = sizes.scaled(20), 200
    with WorkerPool(max_workers=4, rate_limit=limit) as pool:
        t0 = time.perf_counter()
        wait([pool.submit(int) for _ in range(calls)])
        limited = time.perf_counter() - t0
    say(
        f"TokenBucket({rate}/s): {tokens} tokens over {threads} threads took"
        f" {paced_cp * 1e3:.0f} ms (ideal {ideal * 1e3:.0f} ms; the sleep-based Python bucket"
        f" {paced_py * 1e3:.0f} ms); WorkerPool(rate_limit={limit}) ran {calls} calls in"
        f" {limited * 1e3:.0f} ms (ideal {(calls - 1) / limit * 1e3:.0f} ms)"
    )
    return [
        TourRow(
            "rate limit",
            f"{tokens} tokens at {rate}/s (ideal {ideal * 1e3:.0f} ms)",
            "Python token bucket",
            paced_py,
            paced_cp,
        ),
        TourRow(
            "rate limit",
            f"acquire() x {ops:,}, full bucket",
            "Python token bucket",
            t["bpy"],
            t["bcp"],
        ),
        TourRow(
            "semaphore", f"acquire+release x {ops:,}", "threading.Semaphore", t["spy"], t["scp"]
        ),
    ]


class PyInventory:
    """The Python equivalent of the inventory manager: a dict, a lock and a thread pool."""

    def __init__(self, workers: int) -> None:
        self.stock: dict[str, int] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def _change(self, product: str, delta: int) -> int:
        with self.lock:
            new = self.stock.get(product, 0) + delta
            if new < 0:
                raise ValueError(f"only {new - delta} of {product!r} in stock")
            self.stock[product] = new
            return new

    def add_stock(self, product: str, qty: int) -> Future[int]:
        return self.pool.submit(self._change, product, qty)

    def remove_stock(self, product: str, qty: int) -> Future[int]:
        return self.pool.submit(self._change, product, -qty)

    def check_stock(self, product: str) -> Future[int]:
        return self.pool.submit(self._change, product, 0)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


def tour_inventory(sizes: TourSizes, say: Say) -> list[TourRow]:
    """InventoryManager vs a dict + Lock + ThreadPoolExecutor."""
    from chanpool import PubSub
    from chanpool.inventory import InventoryManager

    n, workers = sizes.scaled(20_000), 4
    products = [f"sku-{i}" for i in range(100)]
    start = 3 * n
    ops = [("add" if i % 2 else "remove", products[(i * 7) % 100], 1 + i % 3) for i in range(n)]
    expect = dict.fromkeys(products, start)
    for op, product, qty in ops:
        expect[product] += qty if op == "add" else -qty

    def run(make: Callable[[int], Any]) -> Callable[[], None]:
        def go() -> None:
            inv = make(workers)
            try:
                wait([inv.add_stock(p, start) for p in products])
                futures = [
                    (inv.add_stock if op == "add" else inv.remove_stock)(p, q) for op, p, q in ops
                ]
                wait(futures)
                stock = {p: inv.check_stock(p).result() for p in products}
                if stock != expect or any(f.exception() for f in futures):
                    raise RuntimeError("inventory lost an update")
            finally:
                inv.shutdown()

        return go

    t = best_times(
        {"py": run(PyInventory), "cp": run(lambda w: InventoryManager(workers=w))}, sizes.repeat
    )
    bus = PubSub()
    events = bus.subscribe("inventory.>")
    with InventoryManager(workers=2, bus=bus, low_threshold=2) as inv:
        inv.add_stock("apple", 3).result()
        inv.remove_stock("apple", 3).result()
    bus.close(drain=True)
    topics = [m.topic for m in events]
    say(
        f"InventoryManager: {n:,} adds/removes over {len(products)} products on {workers}"
        f" workers, final stock checked; selling out published {topics}"
    )
    return [TourRow("inventory", f"{n:,} operations", "dict + Lock + TPE", t["py"], t["cp"])]


TOUR: list[Callable[[TourSizes, Say], list[TourRow]]] = [
    tour_pool,
    tour_pubsub,
    tour_channels,
    tour_pipeline,
    tour_context,
    tour_ratelimit,
    tour_inventory,
]


def format_tour(rows: Iterable[TourRow]) -> str:
    """A plain-text table: times in ms, speed-up = Python ms / chanpool ms."""
    header = ("pattern", "case", "Python equivalent", "Python ms", "chanpool ms", "speed-up")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        lines.append(
            (
                r.pattern,
                r.case,
                r.python,
                f"{r.python_s * 1e3:.1f}",
                f"{r.chanpool_s * 1e3:.1f}",
                f"{r.ratio:.2f}x",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        cells = [
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=False))
        ]
        out.append("  ".join(cells))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
