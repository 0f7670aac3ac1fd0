"""chanpool.inventory: an inventory manager whose stock lives in Rust.

``InventoryManager`` keeps one integer stock per product in a sharded native table. Each of
``add_stock``, ``remove_stock`` and ``check_stock`` queues the operation and returns a
:class:`chanpool.Future` (a ``concurrent.futures.Future``) at once; a pool of native workers
runs the operations without the GIL and attaches only to complete futures, many at a time.

Guarantees:

* Every check-and-change is atomic: ``remove_stock`` never oversells. When fewer units are in
  stock its future raises :class:`InsufficientStock` and the stock is unchanged.
* An accepted operation always runs (``cancel()`` returns False, as for a running task), also
  across ``shutdown()`` and interpreter exit, so a future's outcome always tells whether the
  stock changed. Results are the stock right after the operation.
* Operations submitted without waiting run concurrently, in any order: wait for a future
  when one operation must see another.
* Bad input (a product that is not a non-empty ``str``, a quantity that is not a positive
  ``int``) raises ``TypeError``/``ValueError`` from the call itself; nothing is queued.

With ``bus=PubSub()`` the manager publishes ``<topic_prefix>.<product>.low`` when a removal
takes the stock from above ``low_threshold`` to at or below it, and
``<topic_prefix>.<product>.out`` when it reaches zero (a single removal may publish both, low
first). The data is ``{"product", "event", "stock", "threshold"}``. Events are queued while the
stock is locked, so those about one product arrive in the order the changes happened; one
publisher thread delivers them, so a subscriber with a full queue (``overflow="block"``) delays
only events, never operations. ``stats()["events_pending"]`` says how many are still on their
way; ``shutdown(wait=True)`` returns after they were published.
"""

from __future__ import annotations

from chanpool._core import InventoryManager

__all__ = ["InsufficientStock", "InventoryManager"]


class InsufficientStock(ValueError):
    """A removal asked for more units than were in stock; the stock was left unchanged."""

    product: str
    requested: int
    available: int

    def __init__(self, product: str, requested: int, available: int) -> None:
        # The fields as args keep the exception picklable.
        super().__init__(product, requested, available)
        self.product = product
        self.requested = requested
        self.available = available

    def __str__(self) -> str:
        return f"cannot remove {self.requested} of {self.product!r}: only {self.available} in stock"
