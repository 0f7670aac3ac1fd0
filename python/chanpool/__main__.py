"""``python -m chanpool``: a short tour of chanpool next to concurrent.futures.ThreadPoolExecutor.

    python -m chanpool [--n 20000] [--repeat 3] [--plot FILE.png]

Runs small versions of the benchmark in bench/pool.py (a few seconds), prints the table, then
shows two Go-style extras: a bounded queue that pushes back, and stats().
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from typing import Any

from chanpool import WorkerPool, _bench


def _have_matplotlib() -> bool:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return False
    return True


def plot(rows: list[_bench.Row], path: str) -> None:
    """A bar chart (log scale, ms) of ThreadPoolExecutor vs chanpool for each case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.case for r in rows]
    xs = list(range(len(rows)))
    width = 0.38
    fig, ax = plt.subplots(figsize=(8, 4.5))
    tpe = ax.bar(
        [x - width / 2 for x in xs],
        [r.tpe * 1e3 for r in rows],
        width,
        label="ThreadPoolExecutor",
        color="#9e9e9e",
    )
    cp = ax.bar(
        [x + width / 2 for x in xs],
        [r.chanpool * 1e3 for r in rows],
        width,
        label="chanpool.WorkerPool",
        color="#d9480f",
    )
    ax.bar_label(tpe, fmt="%.1f", fontsize=8)
    ax.bar_label(cp, labels=[f"{r.chanpool * 1e3:.1f}\n{r.ratio:.2f}x" for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms (best run, lower is better)")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{label}\n(n={r.n:,})" for label, r in zip(labels, rows)], fontsize=8)
    ax.set_title("chanpool vs concurrent.futures.ThreadPoolExecutor")
    ax.legend()
    ax.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def extras() -> None:
    """Backpressure from a bounded queue, and the pool's counters."""
    print("Go-style extras")
    started, release = threading.Event(), threading.Event()

    def blocker() -> str:
        started.set()
        release.wait()
        return "done"

    with WorkerPool(max_workers=1, queue_size=2, thread_name_prefix="demo") as pool:
        try:
            first = pool.submit(blocker)
            started.wait()
            queued: list[Any | None] = [pool.try_submit(pow, 2, k) for k in (10, 20)]
            full = pool.try_submit(pow, 2, 30)
            print("  WorkerPool(max_workers=1, queue_size=2): 1 running, 2 queued by try_submit()")
            print(f"  try_submit() on the full queue returned {full!r} (nothing was queued)")
            threading.Timer(0.05, release.set).start()
            t0 = time.perf_counter()
            late = pool.submit(pow, 2, 40)
            waited = (time.perf_counter() - t0) * 1e3
            print(f"  submit() on the full queue blocked {waited:.0f} ms, until a slot freed up")
        finally:
            release.set()
        done = [f.result() for f in queued if f is not None]
        print(f"  results: {[first.result(), *done, late.result()]}")
        print(f"  stats(): {pool.stats()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chanpool", description="chanpool vs ThreadPoolExecutor, a short tour"
    )
    parser.add_argument("--n", type=int, default=20_000, help="items for map and submit")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per case (best is kept)")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG bar chart (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.plot and not _have_matplotlib():
        print(
            "--plot needs matplotlib, which is not importable here: pip install matplotlib",
            file=sys.stderr,
        )
        return 2

    env = _bench.environment()
    workers = env["default_max_workers"]["chanpool"]
    print(f"chanpool {env['chanpool']}: Go-style worker pools on native threads")
    print(
        f"{env['implementation']} {env['python']}, {env['cpus']} CPUs, default max_workers="
        f"{workers}, best of {args.repeat}; trivial task is `def f(x): return x`"
    )
    print()
    sizes = _bench.Sizes(n=args.n, sleep_tasks=200, repeat=args.repeat)
    rows = _bench.run_cases(sizes)
    print(_bench.format_table(rows))
    print()
    print("ratio = ThreadPoolExecutor ms / chanpool ms; full benchmark: python bench/pool.py")
    print()
    extras()
    if args.plot:
        plot(rows, args.plot)
        print()
        print(f"Wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
