"""The tour's WorkerPool step: WorkerPool vs ThreadPoolExecutor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from chanpool import WorkerPool
from chanpool._tour.common import (
    Executor,
    Runner,
    Say,
    TourRow,
    TourSizes,
    _compare_pools,
    best_times,
    identity,
    run_map,
    run_sleep,
    run_submit,
)


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
