"""``python -m chanpool``: a short tour of every pattern, next to its Python-threading equivalent.

    python -m chanpool [--scale 1.0] [--repeat 3] [--plot FILE.png]

Each pattern (worker pool, pub/sub, channels and select, fan-out and pipelines, context
deadlines and cancellation, token bucket and semaphore, inventory manager) runs a small piece
of work with chanpool and the same work with the standard library, checks that both got the
right answer, says what happened, and adds a row to the comparison table. A few seconds in all;
``--scale`` makes every case bigger for steadier figures. Full benchmarks live in bench/.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
import threading
import time
from typing import Any

from chanpool import WorkerPool, _tour


def _have_matplotlib() -> bool:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return False
    return True


def plot(rows: list[_tour.TourRow], path: str) -> None:
    """Horizontal bars (log scale): how many times faster than the Python equivalent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.pattern}: {r.case}\nvs {r.python}" for r in rows]
    ratios = [r.ratio for r in rows]
    ys = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.5))
    # Within 10% either way is "the same" on a shared 2-core machine.
    colors = ["#d9480f" if x >= 1.1 else "#868e96" if x > 1 / 1.1 else "#1c7ed6" for x in ratios]
    bars = ax.barh(ys, ratios, color=colors)
    notes = [
        f" {x:.2f}x  ({r.python_s * 1e3:.1f} → {r.chanpool_s * 1e3:.1f} ms)"
        for x, r in zip(ratios, rows, strict=False)
    ]
    ax.bar_label(bars, labels=notes, fontsize=7)
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("speed-up = Python ms / chanpool ms (log scale; right of 1 = chanpool faster)")
    ax.set_title("chanpool vs the Python-threading equivalent, same work")
    ax.margins(x=0.35)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def backpressure(say: _tour.Say) -> None:
    """A bounded queue that pushes back: what ThreadPoolExecutor does not have."""
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
            threading.Timer(0.05, release.set).start()
            t0 = time.perf_counter()
            late = pool.submit(pow, 2, 40)
            waited = (time.perf_counter() - t0) * 1e3
        finally:
            release.set()
        results = [first.result(), *(f.result() for f in queued if f is not None), late.result()]
        stats = pool.stats()
    say(
        f"backpressure: WorkerPool(max_workers=1, queue_size=2) with 1 running and 2 queued:"
        f" try_submit() returned {full!r}, submit() waited {waited:.0f} ms for a slot;"
        f" results {results}; stats() completed={stats['completed']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chanpool",
        description="A tour of chanpool's patterns next to their Python-threading equivalents",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every case's size (default 1)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per case (best is kept)")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG chart (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.plot and not _have_matplotlib():
        print(
            "--plot needs matplotlib, which is not installed here: pip install matplotlib"
            " (or run without --plot)",
            file=sys.stderr,
        )
        return 2

    env = _tour.environment()
    print(f"chanpool {env['chanpool']}: Go's concurrency patterns on native threads")
    print(
        f"{env['implementation']} {env['python']}, {env['cpus']} CPUs, best of {args.repeat},"
        f" scale {args.scale:g}; every case checks its answers"
    )
    print()
    sizes = _tour.TourSizes(scale=args.scale, repeat=args.repeat)
    wrap = textwrap.TextWrapper(width=100, initial_indent="  ", subsequent_indent="    ")

    def say(line: str) -> None:
        print(wrap.fill(line), flush=True)

    start = time.perf_counter()
    rows: list[_tour.TourRow] = []
    for step in _tour.TOUR:
        rows += step(sizes, say)
        if step is _tour.tour_pool:
            backpressure(say)
    total = time.perf_counter() - start
    print()
    print(_tour.format_tour(rows))
    print()
    print("speed-up = Python ms / chanpool ms (best run; above 1 means chanpool was faster).")
    print("Work that holds the GIL (pure-Python CPU loops) is no faster on any thread pool.")
    print(f"Tour time: {total:.1f} s. Full benchmarks: make bench (bench/*.py)")
    if args.plot:
        plot(rows, args.plot)
        print(f"Wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
