"""Exceptions chanpool raises that are its own."""

from __future__ import annotations

import queue
import sys

__all__ = ["Closed", "QueueFull", "ShutDown"]

if sys.version_info >= (3, 13):
    from queue import ShutDown as ShutDown
else:

    class ShutDown(Exception):
        """Raised by put() or get() on a queue that was shut down (queue.ShutDown, 3.13+)."""


class Closed(ShutDown):
    """The channel or subscription has ended: it was closed and nothing is left to read.

    A subclass of queue.ShutDown, so code written for queue.Queue.shutdown() handles it too.
    """


class QueueFull(queue.Full):
    """A subscriber's queue is full and its overflow policy is ``"error"``."""
