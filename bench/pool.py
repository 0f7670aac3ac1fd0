"""chanpool.WorkerPool against ThreadPoolExecutor, multiprocessing's ThreadPool and plain loops.

    python bench/pool.py [--repeat 5] [--scale 1.0] [--json FILE]

Cases (trivial task = ``def f(x): return x``; ``--scale`` multiplies every size):

* map over 10k, 100k and 1M items on 4 workers: ``list(pool.map(f, items))`` (chanpool with its
  default chunksize and with chunksize=256), ``ThreadPoolExecutor.map`` (not at 1M: a Future
  per item makes each round take many seconds),
  ``multiprocessing.pool.ThreadPool.map`` (automatic chunksize; the anchor: the fastest peer)
  and the plain loop ``list(map(f, items))`` (the limit);
* submit + result of 100k and 1M tasks on 4 workers: every submit, then every ``result()``; peers
  ThreadPoolExecutor (anchor) and ``ThreadPool.apply_async`` + ``get()``; the limit is a deque of
  ``(f, x)`` drained by a loop;
* round trip, one task at a time, 16 workers: ``pool.submit(f, i).result()`` in a loop; peers
  ThreadPoolExecutor (anchor) and a ``queue.SimpleQueue`` ping-pong with one thread (the limit);
* 1,000 GIL-releasing tasks (``time.sleep(0.001)``) on 16 workers: the pools should tie;
* memory per queued task: 100k tasks queued behind a blocked worker, counted with glibc's
  ``mallinfo2`` in a child process run with ``PYTHONMALLOC=malloc`` (so Python objects and Rust
  allocations are both counted); the limit is a deque of ``(f, x)`` tuples.
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h
from chanpool import WorkerPool


def f(x: object) -> object:
    return x


def map_case(n: int, repeat: int, with_tpe: bool = True) -> h.Case:
    items = range(n)
    tpe, cp, mp = ThreadPoolExecutor(4), WorkerPool(4), ThreadPool(4)
    try:
        expect = list(items)
        runners = {
            "chanpool": lambda: list(cp.map(f, items)),
            "chanpool chunksize=256": lambda: list(cp.map(f, items, chunksize=256)),
            "ThreadPoolExecutor": lambda: list(tpe.map(f, items)),
            "mp.ThreadPool": lambda: mp.map(f, items),
            "loop": lambda: list(map(f, items)),
        }
        if not with_tpe:
            del runners["ThreadPoolExecutor"]
        for name, run in runners.items():
            if run() != expect:
                raise RuntimeError(f"{name}: wrong results")
        stats = h.rounds(runners, repeat)
    finally:
        tpe.shutdown()
        cp.shutdown()
        mp.terminate()
        mp.join()
    return h.Case(f"map {n:,}, 4 workers", n, "mp.ThreadPool", stats)


def submit_case(n: int, repeat: int) -> h.Case:
    items = range(n)
    tpe, cp, mp = ThreadPoolExecutor(4), WorkerPool(4), ThreadPool(4)

    def via(submit):  # type: ignore[no-untyped-def]
        def go() -> tuple[list[object], list[object]]:
            futures = [submit(x) for x in items]
            # Handed back so that they are freed after the clock stops.
            return futures, [fut.result() for fut in futures]

        return go

    def mp_run() -> tuple[list[object], list[object]]:
        res = [mp.apply_async(f, (x,)) for x in items]
        return res, [r.get() for r in res]

    def limit() -> list[object]:
        d = collections.deque((f, x) for x in items)
        out = []
        while d:
            fn, x = d.popleft()
            out.append(fn(x))
        return out

    try:
        runners = {
            "chanpool": via(lambda x: cp.submit(f, x)),
            "ThreadPoolExecutor": via(lambda x: tpe.submit(f, x)),
            "mp.ThreadPool apply_async": mp_run,
            "deque of (f, x)": limit,
        }
        stats = h.rounds(runners, repeat)
    finally:
        tpe.shutdown()
        cp.shutdown()
        mp.terminate()
        mp.join()
    return h.Case(f"submit+result {n:,}, 4 workers", n, "ThreadPoolExecutor", stats)


def round_trip_case(n: int, repeat: int) -> h.Case:
    tpe, cp = ThreadPoolExecutor(16), WorkerPool(16)
    q_in: queue.SimpleQueue[object] = queue.SimpleQueue()
    q_out: queue.SimpleQueue[object] = queue.SimpleQueue()
    stop = object()

    def serve() -> None:
        while (x := q_in.get()) is not stop:
            q_out.put(f(x))

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    def one_by_one(pool):  # type: ignore[no-untyped-def]
        def go() -> None:
            for i in range(n):
                if pool.submit(f, i).result() != i:
                    raise RuntimeError("wrong result")

        return go

    def ping_pong() -> None:
        for i in range(n):
            q_in.put(i)
            if q_out.get() != i:
                raise RuntimeError("wrong result")

    try:
        runners = {
            "chanpool": one_by_one(cp),
            "ThreadPoolExecutor": one_by_one(tpe),
            "SimpleQueue ping-pong": ping_pong,
        }
        stats = h.rounds(runners, repeat)
    finally:
        q_in.put(stop)
        t.join()
        tpe.shutdown()
        cp.shutdown()
    return h.Case(f"round trip x{n:,}, 16 workers", n, "ThreadPoolExecutor", stats)


def sleep_case(n: int, repeat: int) -> h.Case:
    tpe, cp = ThreadPoolExecutor(16), WorkerPool(16)

    def run(pool):  # type: ignore[no-untyped-def]
        def go() -> list[object]:
            futures = [pool.submit(time.sleep, 0.001) for _ in range(n)]
            return [fut.result() for fut in futures]

        return go

    try:
        stats = h.rounds({"chanpool": run(cp), "ThreadPoolExecutor": run(tpe)}, repeat)
    finally:
        tpe.shutdown()
        cp.shutdown()
    return h.Case(
        f"{n:,} x sleep(1 ms), 16 workers", n, "ThreadPoolExecutor", stats, "should be 1.0x"
    )


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_bytes() -> int:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _memory_child(which: str, n: int) -> None:
    """Runs in a child (PYTHONMALLOC=malloc): bytes per task for ``n`` queued tasks."""
    gate = threading.Event()
    kept: object
    if which == "deque":
        before = _heap_bytes()
        kept = collections.deque((f, x) for x in range(n))
        after = _heap_bytes()
    else:
        pool = WorkerPool(1) if which == "chanpool" else ThreadPoolExecutor(1)
        pool.submit(gate.wait).done()
        time.sleep(0.05)  # let the worker start and block (not a synchronisation)
        before = _heap_bytes()
        kept = [pool.submit(f, x) for x in range(n)]
        after = _heap_bytes()
        gate.set()
        pool.shutdown(wait=True)
    del kept
    print(json.dumps({"bytes_per_task": (after - before) / n}))


def memory_rows(n: int) -> list[tuple[str, float]]:
    env = dict(os.environ, PYTHONMALLOC="malloc")
    out = []
    for which in ("chanpool", "ThreadPoolExecutor", "deque"):
        r = subprocess.run(
            [sys.executable, __file__, "--memory-child", which, str(n)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        out.append((which, json.loads(r.stdout)["bytes_per_task"]))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--memory-child"]:
        _memory_child(argv[1], int(argv[2]))
        return 0
    args = h.parser(__doc__).parse_args(argv)
    started = time.perf_counter()
    s = args.scale
    cases = []
    for n in (10_000, 100_000, 1_000_000):
        print(f"  map {h.scaled(n, s):,} ...", file=sys.stderr)
        cases.append(map_case(h.scaled(n, s), args.repeat, with_tpe=n < 1_000_000))
    for n in (100_000, 1_000_000):
        print(f"  submit+result {h.scaled(n, s):,} ...", file=sys.stderr)
        cases.append(submit_case(h.scaled(n, s), args.repeat))
    print("  round trip ...", file=sys.stderr)
    cases.append(round_trip_case(h.scaled(5_000, s), args.repeat))
    print("  GIL-releasing ...", file=sys.stderr)
    cases.append(sleep_case(h.scaled(1_000, s), args.repeat))
    h.report("bench/pool.py", args, cases, started)
    mem = memory_rows(h.scaled(100_000, s))
    print()
    print("memory per queued task (bytes): " + ", ".join(f"{w} {b:.0f}" for w, b in mem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
