"""chanpool.inventory: an inventory manager whose stock lives in Rust.

``InventoryManager`` keeps one integer stock per product in a sharded native table. Each of
``add_stock``, ``remove_stock`` and ``check_stock`` queues the operation and returns a
:class:`chanpool.Future` (a ``concurrent.futures.Future``) at once; a pool of native workers
runs the operations without ever taking the GIL, and one completer thread takes it to complete
their futures, many at a time. Done-callbacks run on callback threads of their own (up to 32,
``stats()["callback_threads"]``; a second one starts only while others are stuck), so a
callback may wait for another operation's result: it never holds up the workers or the
completer.

Guarantees:

* Every check-and-change is atomic: ``remove_stock`` never oversells. When fewer units are in
  stock its future raises :class:`InsufficientStock` and the stock is unchanged.
* An accepted operation always runs (``cancel()`` returns False, as for a running task), also
  across ``shutdown()`` and interpreter exit, so a future's outcome always tells whether the
  stock changed. Results are the stock right after the operation.
* Operations submitted without waiting run concurrently, in any order: wait for a future
  when one operation must see another.
* Bad input (a product that is not a non-empty ``str``, a quantity that is not a positive
  ``int``) raises ``TypeError``/``ValueError`` from the call itself; nothing is queued. The
  constructor's counts (``workers``, ``queue_size``, ``low_threshold``) follow the same rules
  as every count in chanpool: ints or ``__index__`` objects, never bool; out of range is a
  ``ValueError``.
* A bounded ``queue_size`` makes callers wait (Ctrl-C works) when operations come faster than
  their futures can be completed.

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
