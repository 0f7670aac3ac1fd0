"""The tour's steps on limits: deadlines and cancellation, rate limiting, semaphores."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any, Callable

from chanpool import WorkerPool
from chanpool._tour.common import (
    Say,
    TourRow,
    TourSizes,
    best_times,
)


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
