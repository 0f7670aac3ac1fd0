"""The tour's inventory step: the inventory manager vs a dict, a lock and a pool."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from chanpool._tour.common import (
    Say,
    TourRow,
    TourSizes,
    best_times,
)


class PyInventory:
    """The Python equivalent of the inventory manager: a dict, a lock and a thread pool."""

    def __init__(self, workers: int) -> None:
        self.stock: dict[str, int] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def _change(self, product: str, delta: int) -> int:
        with self.lock:
            new = self.stock.get(product, 0) + delta
            if new < 0:
                raise ValueError(f"only {new - delta} of {product!r} in stock")
            self.stock[product] = new
            return new

    def add_stock(self, product: str, qty: int) -> Future[int]:
        return self.pool.submit(self._change, product, qty)

    def remove_stock(self, product: str, qty: int) -> Future[int]:
        return self.pool.submit(self._change, product, -qty)

    def check_stock(self, product: str) -> Future[int]:
        return self.pool.submit(self._change, product, 0)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


def tour_inventory(sizes: TourSizes, say: Say) -> list[TourRow]:
    """InventoryManager vs a dict + Lock + ThreadPoolExecutor."""
    from chanpool import PubSub
    from chanpool.inventory import InventoryManager

    n, workers = sizes.scaled(20_000), 4
    products = [f"sku-{i}" for i in range(100)]
    start = 3 * n
    ops = [("add" if i % 2 else "remove", products[(i * 7) % 100], 1 + i % 3) for i in range(n)]
    expect = dict.fromkeys(products, start)
    for op, product, qty in ops:
        expect[product] += qty if op == "add" else -qty

    def run(make: Callable[[int], Any]) -> Callable[[], None]:
        def go() -> None:
            inv = make(workers)
            try:
                wait([inv.add_stock(p, start) for p in products])
                futures = [
                    (inv.add_stock if op == "add" else inv.remove_stock)(p, q) for op, p, q in ops
                ]
                wait(futures)
                stock = {p: inv.check_stock(p).result() for p in products}
                if stock != expect or any(f.exception() for f in futures):
                    raise RuntimeError("inventory lost an update")
            finally:
                inv.shutdown()

        return go

    t = best_times(
        {"py": run(PyInventory), "cp": run(lambda w: InventoryManager(workers=w))}, sizes.repeat
    )
    bus = PubSub()
    events = bus.subscribe("inventory.>")
    with InventoryManager(workers=2, bus=bus, low_threshold=2) as inv:
        inv.add_stock("apple", 3).result()
        inv.remove_stock("apple", 3).result()
    bus.close(drain=True)
    topics = [m.topic for m in events]
    say(
        f"InventoryManager: {n:,} adds/removes over {len(products)} products on {workers}"
        f" workers, final stock checked; selling out published {topics}"
    )
    say(f"  a batch order as a Group (errgroup): {_batch_order()}")
    say(f"  product lookups through a Cache (single-flight): {_product_lookups()}")
    return [TourRow("inventory", f"{n:,} operations", "dict + Lock + TPE", t["py"], t["cp"])]


def _batch_order() -> str:
    """A batch of stock operations as one Group: each line of the order is a task, the first
    InsufficientStock cancels the lines not started yet, wait() raises it."""
    from chanpool import Group
    from chanpool.inventory import InsufficientStock, InventoryManager

    with InventoryManager(workers=2) as inv:
        for p in ("pear", "plum", "fig"):
            inv.add_stock(p, 2).result()
        g = Group(limit=2)
        for p, q in (("pear", 1), ("plum", 5), ("fig", 1)):
            g.go(lambda p=p, q=q: inv.remove_stock(p, q).result())
        try:
            g.wait()
            outcome = "every line removed"
        except InsufficientStock as e:
            outcome = f"stopped by {e}"
        left = {p: inv.check_stock(p).result() for p in ("pear", "plum", "fig")}
    return f"{outcome}; stock now {left}"


def _product_lookups() -> str:
    """A slow catalog lookup (an I/O-like wait) behind a Cache: 8 threads asking for the same 10
    products at once load each product once, the others wait for that load."""
    import threading

    from chanpool import Cache

    loads: list[str] = []

    def lookup(sku: str) -> dict[str, Any]:
        loads.append(sku)
        time.sleep(0.005)  # the catalog's latency (GIL released, as real I/O)
        return {"sku": sku, "name": sku.upper()}

    catalog = Cache(lookup, maxsize=1_000)
    skus = [f"sku-{i}" for i in range(10)]
    start = threading.Barrier(8)

    def shopper() -> None:
        start.wait()
        for _ in range(20):
            for sku in skus:
                catalog.get(sku)

    threads = [threading.Thread(target=shopper) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    s = catalog.stats()
    if sorted(loads) != sorted(skus):
        raise RuntimeError(f"the cache loaded {len(loads)} times for {len(skus)} products")
    return (
        f"{8 * 20 * len(skus):,} lookups, {len(loads)} loads, {s['coalesced']} waited for a load"
        f" in flight, {s['hits']:,} hits"
    )
