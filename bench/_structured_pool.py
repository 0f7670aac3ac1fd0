"""bench/structured.py's pool rows: WorkerPool.map_unordered against multiprocessing's
ThreadPool.imap_unordered (the anchor), 4 workers, trivial task, 10k and 100k items.

Contenders: both at chunksize=1 (imap_unordered's default: one unit of work per item), both
at chunksize=256, and chanpool with buffersize=64 (lazy input, bounded in-flight work).
"""

from __future__ import annotations

import argparse
from multiprocessing.pool import ThreadPool

import _harness as h
from chanpool import WorkerPool


def f(x: object) -> object:
    return x


def unordered_case(n: int, repeat: int) -> h.Case:
    items = range(n)
    cp, mp = WorkerPool(4), ThreadPool(4)
    try:
        expect = list(items)
        runners = {
            "mp.ThreadPool.imap_unordered": lambda: list(mp.imap_unordered(f, items)),
            "chanpool map_unordered": lambda: list(cp.map_unordered(f, items)),
            "mp imap_unordered chunksize=256": lambda: list(mp.imap_unordered(f, items, 256)),
            "chanpool chunksize=256": lambda: list(cp.map_unordered(f, items, chunksize=256)),
            "chanpool buffersize=64": lambda: list(cp.map_unordered(f, items, buffersize=64)),
        }
        for name, run in runners.items():
            got = run()
            assert sorted(got) == expect, name  # type: ignore[call-overload]
        stats = h.rounds(runners, repeat)
    finally:
        cp.shutdown()
        mp.terminate()
        mp.join()
    return h.Case(f"map_unordered {n:,}, 4 workers", n, "mp.ThreadPool.imap_unordered", stats)


def cases(args: argparse.Namespace) -> list[h.Case]:
    return [unordered_case(h.scaled(n, args.scale), args.repeat) for n in (10_000, 100_000)]
