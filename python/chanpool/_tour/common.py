"""What every step of the tour shares: timing, the row type, the table."""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from chanpool import WorkerPool, __version__

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
