"""chanpool.TokenBucket and chanpool.Semaphore vs pure-Python / threading equivalents, in one run.

    python bench/ratelimit.py [--n 100000] [--repeat 3] [--threads 4]

a) TokenBucket.acquire() overhead: a bucket that never runs dry (huge rate and burst), against
   the usual pure-Python token bucket (a float refilled from time.monotonic() under a
   threading.Lock).
b) Semaphore: ``acquire(); release()`` pairs, against threading.Semaphore. Uncontended it has
   as many permits as threads; contended it has half as many, so threads really wait.

Each case runs with 1 thread and with ``--threads`` threads sharing ``--n`` operations. The
figure kept is the best of ``--repeat`` runs (contenders alternate); ns/op is wall time divided
by the total number of operations. ratio = Python ns / chanpool ns (higher is better for
chanpool). A report, not a test: the exit status is always 0.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from typing import Any, Callable, List

import chanpool

BIG = 2**62
SEMAPHORES = (chanpool.Semaphore, threading.Semaphore)


class PyTokenBucket:
    """The pure-Python anchor: refill from the clock, take under a lock, sleep when short."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self, n: int = 1) -> bool:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= n:
                    self.tokens -= n
                    return True
                short = (n - self.tokens) / self.rate
            time.sleep(short)


def bucket_loop(b: Any, ops: int) -> None:
    acquire = b.acquire
    for _ in range(ops):
        acquire()


def semaphore_loop(s: Any, ops: int) -> None:
    acquire, release = s.acquire, s.release
    for _ in range(ops):
        acquire()
        release()


def timed(obj: Any, loop: Callable[[Any, int], None], n: int, threads: int) -> float:
    """Wall seconds for `threads` threads to run n operations on obj between them."""
    per = n // threads
    start = threading.Barrier(threads + 1)

    def run() -> None:
        start.wait()
        loop(obj, per)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    gc.collect()
    t0 = time.perf_counter()
    start.wait()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="operations per case")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is kept)")
    parser.add_argument("--threads", type=int, default=4, help="threads in the contended rows")
    args = parser.parse_args(argv)
    n, k = args.n, args.threads

    half = max(k // 2, 1)
    cases = [
        ("TokenBucket.acquire", 1, bucket_loop, chanpool.TokenBucket, PyTokenBucket, (1e15, BIG)),
        ("TokenBucket.acquire", k, bucket_loop, chanpool.TokenBucket, PyTokenBucket, (1e15, BIG)),
        ("Semaphore acquire+release", 1, semaphore_loop, *SEMAPHORES, (1,)),
        (f"Semaphore, {k} permits", k, semaphore_loop, *SEMAPHORES, (k,)),
        (f"Semaphore, {half} permits", k, semaphore_loop, *SEMAPHORES, (half,)),
    ]
    version = sys.version.split()[0]
    print(f"chanpool {chanpool.__version__} | Python {version} | n={n} | best of {args.repeat}")
    print(f"{'case':<28}{'threads':>8}{'chanpool ns/op':>16}{'Python ns/op':>14}{'ratio':>8}")
    t_start = time.perf_counter()
    for name, threads, loop, ours, theirs, params in cases:
        best_ours = best_theirs = float("inf")
        for _ in range(args.repeat):
            best_ours = min(best_ours, timed(ours(*params), loop, n, threads))
            best_theirs = min(best_theirs, timed(theirs(*params), loop, n, threads))
        ns_ours, ns_theirs = best_ours / n * 1e9, best_theirs / n * 1e9
        print(
            f"{name:<28}{threads:>8}{ns_ours:>16.0f}{ns_theirs:>14.0f}{ns_theirs / ns_ours:>8.2f}"
        )
    print("Python = pure-Python token bucket with threading.Lock / threading.Semaphore.")
    print(f"Benchmark time: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
