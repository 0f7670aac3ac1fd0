"""Cache rows of bench/structured.py: the hit path against functools.lru_cache + Lock and
cachetools.LRUCache + Lock (each as its user writes it), and coalesced misses against an
unprotected dict cache (loader calls counted, not timed)."""

from __future__ import annotations

import argparse
import functools
import threading
import time

import chanpool
from _harness import Case, rounds, scaled

try:
    import cachetools
except ImportError:  # `make bench` installs it
    cachetools = None


def _hits(args: argparse.Namespace) -> Case:
    n = scaled(200_000, args.scale)
    keys = list(range(100)) * (n // 100)
    cache = chanpool.Cache(lambda k: k, maxsize=1000)
    for k in range(100):
        cache.get(k)
    get = cache.get

    lock = threading.Lock()

    @functools.lru_cache(maxsize=1000)
    def lru(k):
        return k

    def lru_locked(k):
        with lock:
            return lru(k)

    def chan():
        for k in keys:
            get(k)

    def anchor():
        for k in keys:
            lru_locked(k)

    runners = {"lru_cache + Lock": anchor, "chanpool.Cache.get": chan}
    if cachetools is not None:
        tc: cachetools.LRUCache = cachetools.LRUCache(maxsize=1000)
        ct_lock = threading.Lock()

        @cachetools.cached(tc, lock=ct_lock)
        def ct(k):
            return k

        def cachetools_run():
            for k in keys:
                ct(k)

        runners["cachetools + Lock"] = cachetools_run
    for k in range(100):
        lru_locked(k)
    return Case(
        "cache hit (100 hot keys)", len(keys), "lru_cache + Lock", rounds(runners, args.repeat)
    )


def _coalesced(args: argparse.Namespace) -> Case:
    threads, keys = 8, 50

    def run(get_factory):
        calls = []
        lock = threading.Lock()

        def load(k):
            with lock:
                calls.append(k)
            time.sleep(0.0005)
            return k

        get = get_factory(load)
        start = threading.Barrier(threads)

        def worker():
            start.wait()
            for k in range(keys):
                get(k)

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return len(calls)

    def unprotected(load):
        d: dict = {}

        def get(k):
            if k not in d:
                d[k] = load(k)
            return d[k]

        return get

    counts = {"dict (unprotected)": [], "chanpool.Cache": []}

    def a():
        counts["dict (unprotected)"].append(run(unprotected))

    def c():
        counts["chanpool.Cache"].append(run(lambda load: chanpool.Cache(load).get))

    stats = rounds({"dict (unprotected)": a, "chanpool.Cache": c}, args.repeat)
    note = f"loader calls for {keys} keys x {threads} threads: " + ", ".join(
        f"{who} {sorted(v)}" for who, v in counts.items()
    )
    return Case("coalesced misses", threads * keys, "dict (unprotected)", stats, note)


def cases(args: argparse.Namespace) -> list[Case]:
    return [_hits(args), _coalesced(args)]
