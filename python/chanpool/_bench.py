"""Timing helpers shared by ``python -m chanpool`` and ``bench/pool.py`` (not a public API).

Three cases compare chanpool.WorkerPool with concurrent.futures.ThreadPoolExecutor, with a plain
single-threaded loop as the limit for pure-Python work:

* ``map``: ``list(pool.map(identity, items))``, default chunksize=1 for both;
* ``submit+result``: submit every item, then call ``result()`` on every future;
* ``GIL-releasing``: tasks that ``time.sleep()`` (the GIL is free while they wait).

Each contender runs on its own pool, the contenders alternate from round to round, every
measurement is preceded by ``gc.collect()``, and what a run returns (lists of futures included)
is released before the next one starts: a live list of 100k stock futures makes later
collections much slower. The figure kept is the best of ``repeat`` rounds.
"""

from __future__ import annotations

import functools
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

__all__ = [
    "TARGETS",
    "Executor",
    "Row",
    "Sizes",
    "best_times",
    "environment",
    "format_table",
    "run_cases",
    "time_once",
]

#: Minimum TPE/chanpool ratio for each case (None: shown for information only).
TARGETS: dict[str, float | None] = {"map": 40.0, "submit+result": 10.0, "GIL-releasing": 1.0}

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


@dataclass
class Row:
    """One line of the comparison table (times in seconds; None where not measured)."""

    case: str
    n: int
    workers: int
    loop: float | None
    tpe: float
    chanpool: float
    target: float | None

    @property
    def ratio(self) -> float:
        return self.tpe / self.chanpool if self.chanpool > 0 else float("inf")

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.ratio >= self.target else "MISS"

    def as_dict(self) -> dict[str, Any]:
        def ms(s: float | None) -> float | None:
            return None if s is None else round(s * 1e3, 3)

        return {
            "case": self.case,
            "n": self.n,
            "workers": self.workers,
            "loop_ms": ms(self.loop),
            "tpe_ms": ms(self.tpe),
            "chanpool_ms": ms(self.chanpool),
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "status": self.status,
        }


@dataclass
class Sizes:
    """How big, and how many times, to run the three cases."""

    n: int = 100_000
    sleep_tasks: int = 1_000
    sleep_s: float = 0.001
    sleep_workers: int = 16
    repeat: int = 5
    extra_chunksize: int | None = 256


def _warm(pool: Executor, workers: int) -> None:
    """Start the pool's threads and check the answers once, outside the clock."""
    items = range(4 * workers)
    for chunksize in (1, 3):
        if run_map(pool, items, chunksize) != list(items):
            raise RuntimeError(f"{pool!r}: map(chunksize={chunksize}) gave wrong results")
    if run_submit(pool, items)[1] != list(items):
        raise RuntimeError(f"{pool!r}: submit/result gave wrong results")
    run_sleep(pool, workers, 0.001)


def _compare(
    runners: Mapping[str, Callable[[Executor], object]],
    loop: Runner | None,
    max_workers: int | None,
    repeat: int,
) -> tuple[dict[str, float], int]:
    """Best of ``repeat`` for ``runners`` (each on its own warmed pool: a name is ``tpe`` or
    ``chanpool``, optionally followed by ``:label``) and for ``loop``; also the pool size."""
    tpe = ThreadPoolExecutor(max_workers=max_workers)
    cp = WorkerPool(max_workers=max_workers)
    try:
        workers = cp.max_workers
        _warm(tpe, workers)
        _warm(cp, workers)
        pools: dict[str, Executor] = {"tpe": tpe, "chanpool": cp}
        timed: dict[str, Runner] = {
            name: functools.partial(run, pools[name.split(":")[0]]) for name, run in runners.items()
        }
        if loop is not None:
            timed["loop"] = loop
        return best_times(timed, repeat), workers
    finally:
        tpe.shutdown(wait=True)
        cp.shutdown(wait=True)


def run_cases(sizes: Sizes, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run map, submit+result and the GIL-releasing case: one Row each, plus the extra map."""
    n, repeat, extra = sizes.n, sizes.repeat, sizes.extra_chunksize
    items = range(n)
    rows: list[Row] = []

    def say(msg: str) -> None:
        if progress is not None:
            progress(msg)

    say(f"map over {n:,} items ...")
    map_runners: dict[str, Callable[[Executor], object]] = {
        "tpe": lambda p: run_map(p, items),
        "chanpool": lambda p: run_map(p, items),
    }
    if extra is not None:
        map_runners["chanpool:chunked"] = lambda p: run_map(p, items, chunksize=extra)
    t, workers = _compare(map_runners, lambda: list(map(identity, items)), None, repeat)
    rows.append(Row("map", n, workers, t["loop"], t["tpe"], t["chanpool"], TARGETS["map"]))
    if extra is not None:
        label = f"map chunksize={extra}"
        rows.append(Row(label, n, workers, t["loop"], t["tpe"], t["chanpool:chunked"], None))

    say(f"submit+result of {n:,} futures ...")
    t, workers = _compare(
        {"tpe": lambda p: run_submit(p, items), "chanpool": lambda p: run_submit(p, items)},
        lambda: [identity(x) for x in items],
        None,
        repeat,
    )
    target = TARGETS["submit+result"]
    rows.append(Row("submit+result", n, workers, t["loop"], t["tpe"], t["chanpool"], target))

    k, secs, sw = sizes.sleep_tasks, sizes.sleep_s, sizes.sleep_workers
    say(f"{k:,} GIL-releasing tasks (sleep {secs * 1e3:g} ms) on {sw} workers ...")
    t, workers = _compare(
        {"tpe": lambda p: run_sleep(p, k, secs), "chanpool": lambda p: run_sleep(p, k, secs)},
        lambda: loop_sleep(k, secs),
        sw,
        repeat,
    )
    target = TARGETS["GIL-releasing"]
    rows.append(Row("GIL-releasing", k, workers, t["loop"], t["tpe"], t["chanpool"], target))
    return rows


def format_table(rows: Iterable[Row]) -> str:
    """A plain-text table: times in ms, ratio = TPE / chanpool."""
    header = (
        "case",
        "n",
        "workers",
        "for-loop ms",
        "TPE ms",
        "chanpool ms",
        "TPE/chanpool",
        "target",
        "result",
    )
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        lines.append(
            (
                r.case,
                f"{r.n:,}",
                str(r.workers),
                "-" if r.loop is None else f"{r.loop * 1e3:.1f}",
                f"{r.tpe * 1e3:.1f}",
                f"{r.chanpool * 1e3:.1f}",
                f"{r.ratio:.2f}x",
                "-" if r.target is None else f">= {r.target:g}x",
                r.status,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


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
