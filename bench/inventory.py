"""chanpool.inventory.InventoryManager vs the same design in plain Python, in one run.

    python bench/inventory.py [--n 100000] [--threads 4] [--products 100] [--repeat 5]

Workload: ``--n`` operations split over ``--threads`` Python threads, each thread submitting its
share (45% add, 45% remove, 10% check; quantities 1..9; random products out of ``--products``),
then waiting for every result. The operation lists are generated before the clock starts; the
clock stops when every thread has seen every outcome.

Contenders:

a) chanpool: ``InventoryManager()`` (defaults: 10 native workers, unbounded queue); every
   operation returns a future.
b) Python IMS on a pool: a dict guarded by one ``threading.Lock``, each operation submitted to a
   ``concurrent.futures.ThreadPoolExecutor(max_workers=10)`` that returns a future (the plain
   Python version of the seeds' design); refusals raise the same way.
c) Python, direct calls: the same locked dict called inline by the client threads, no pool and
   no futures (the floor for any design that hands operations to workers).

Each run checks its own books: the final stock of every product must equal the accepted adds
minus the accepted removes, and never be negative. The figure kept is the best of ``--repeat``;
contenders take turns and ``gc.collect()`` runs before each clock. This is a report, not a test:
the exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from typing import Callable, Dict, List, Tuple

import chanpool
from chanpool.inventory import InsufficientStock, InventoryManager

Op = Tuple[int, str, int]  # (kind, product, qty): 0 add, 1 remove, 2 check
ADD, REMOVE, CHECK = 0, 1, 2


def make_ops(n: int, threads: int, products: int, seed: int) -> List[List[Op]]:
    rnd = random.Random(seed)
    names = [f"sku{i}" for i in range(products)]
    out: List[List[Op]] = []
    for _ in range(threads):
        ops: List[Op] = []
        for _ in range(n // threads):
            r = rnd.random()
            kind = ADD if r < 0.45 else REMOVE if r < 0.90 else CHECK
            ops.append((kind, rnd.choice(names), rnd.randint(1, 9)))
        out.append(ops)
    return out


class PyInventory:
    """The plain-Python stock table: a dict and one lock."""

    def __init__(self) -> None:
        self.stock: Dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, product: str, qty: int) -> int:
        with self.lock:
            s = self.stock.get(product, 0) + qty
            self.stock[product] = s
            return s

    def remove(self, product: str, qty: int) -> int:
        with self.lock:
            s = self.stock.get(product, 0)
            if s < qty:
                raise InsufficientStock(product, qty, s)
            self.stock[product] = s - qty
            return s - qty

    def check(self, product: str) -> int:
        with self.lock:
            return self.stock.get(product, 0)


Outcome = Tuple[int, str, int, bool]  # kind, product, qty, accepted


def run_threads(
    per_thread: List[List[Op]], client: Callable[[List[Op]], List[Outcome]]
) -> Tuple[float, List[Outcome]]:
    results: List[List[Outcome]] = [[] for _ in per_thread]
    go = threading.Barrier(len(per_thread) + 1)

    def body(i: int) -> None:
        go.wait()
        results[i] = client(per_thread[i])

    ts = [threading.Thread(target=body, args=(i,)) for i in range(len(per_thread))]
    for t in ts:
        t.start()
    gc.collect()
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    return took, [o for r in results for o in r]


def outcomes_from_futures(ops: List[Op], futures: List[cf.Future]) -> List[Outcome]:
    out = []
    for (kind, p, q), f in zip(ops, futures, strict=False):
        exc = f.exception()
        if exc is not None and not isinstance(exc, InsufficientStock):
            raise exc
        out.append((kind, p, q, exc is None))
    return out


def chanpool_run(per_thread: List[List[Op]]) -> Tuple[float, List[Outcome], Dict[str, int], dict]:
    ims = InventoryManager()

    def client(ops: List[Op]) -> List[Outcome]:
        add, remove, check = ims.add_stock, ims.remove_stock, ims.check_stock
        fs = [
            add(p, q) if k == ADD else remove(p, q) if k == REMOVE else check(p) for k, p, q in ops
        ]
        return outcomes_from_futures(ops, fs)

    took, outcomes = run_threads(per_thread, client)
    final = ims.snapshot()
    stats = ims.stats()
    ims.shutdown()
    return took, outcomes, final, stats


def python_pool_run(
    per_thread: List[List[Op]],
) -> Tuple[float, List[Outcome], Dict[str, int], dict]:
    inv = PyInventory()
    pool = cf.ThreadPoolExecutor(max_workers=10)

    def client(ops: List[Op]) -> List[Outcome]:
        submit, add, remove, check = pool.submit, inv.add, inv.remove, inv.check
        fs = [
            submit(add, p, q)
            if k == ADD
            else submit(remove, p, q)
            if k == REMOVE
            else submit(check, p)
            for k, p, q in ops
        ]
        return outcomes_from_futures(ops, fs)

    took, outcomes = run_threads(per_thread, client)
    pool.shutdown()
    return took, outcomes, dict(inv.stock), {}


def python_direct_run(
    per_thread: List[List[Op]],
) -> Tuple[float, List[Outcome], Dict[str, int], dict]:
    inv = PyInventory()

    def client(ops: List[Op]) -> List[Outcome]:
        add, remove, check = inv.add, inv.remove, inv.check
        out = []
        for k, p, q in ops:
            ok = True
            if k == ADD:
                add(p, q)
            elif k == REMOVE:
                try:
                    remove(p, q)
                except InsufficientStock:
                    ok = False
            else:
                check(p)
            out.append((k, p, q, ok))
        return out

    took, outcomes = run_threads(per_thread, client)
    return took, outcomes, dict(inv.stock), {}


def check_books(name: str, outcomes: List[Outcome], final: Dict[str, int]) -> int:
    """Final stock == accepted adds - accepted removes, never negative. Returns refusals."""
    model: Dict[str, int] = defaultdict(int)
    refused = 0
    for kind, p, q, ok in outcomes:
        if kind == ADD:
            model[p] += q
        elif kind == REMOVE:
            if ok:
                model[p] -= q
            else:
                refused += 1
    touched = {p: v for p, v in model.items() if v or p in final}
    assert all(v >= 0 for v in final.values()), f"{name}: negative stock"
    assert {p: final.get(p, 0) for p in touched} == touched, f"{name}: books do not balance"
    return refused


CONTENDERS = {
    "chanpool InventoryManager": chanpool_run,
    "Python dict+Lock on ThreadPoolExecutor": python_pool_run,
    "Python dict+Lock, direct calls": python_direct_run,
}


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="operations in all")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--products", type=int, default=100, help="distinct products")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender (best kept)")
    args = parser.parse_args(argv)

    print(
        f"chanpool {chanpool.__version__} | {platform.python_implementation()} "
        f"{platform.python_version()} | {os.cpu_count()} CPUs | {args.n} ops from "
        f"{args.threads} threads over {args.products} products | best of {args.repeat}"
    )
    times: Dict[str, List[float]] = {name: [] for name in CONTENDERS}
    refusals: Dict[str, int] = {}
    batches: List[int] = []
    names = list(CONTENDERS)
    for r in range(args.repeat):
        per_thread = make_ops(args.n, args.threads, args.products, seed=r)
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            took, outcomes, final, stats = CONTENDERS[name](per_thread)
            refusals[name] = check_books(name, outcomes, final)
            times[name].append(took)
            if stats:
                batches.append(stats["completion_batches"])
            print(f"  run {r + 1}: {name}: {took * 1e3:.1f} ms", file=sys.stderr)
            del outcomes, final
            gc.collect()

    best = {name: min(ts) for name, ts in times.items()}
    ims = best["chanpool InventoryManager"]
    print()
    print(f"{'contender':42} {'best ms':>9} {'median ms':>10} {'us/op':>7} {'vs chanpool':>12}")
    for name, ts in times.items():
        b = best[name]
        print(
            f"{name:42} {b * 1e3:9.1f} {statistics.median(ts) * 1e3:10.1f} "
            f"{b / args.n * 1e6:7.2f} {b / ims:11.2f}x"
        )
    print()
    print("vs chanpool = contender time / chanpool time (above 1: chanpool is faster).")
    print(
        f"chanpool completed {args.n} futures in {min(batches)}..{max(batches)} GIL attaches "
        "(completion batches) per run."
    )
    print(
        "Refused removals in the last run: " + ", ".join(f"{v} ({k})" for k, v in refusals.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
