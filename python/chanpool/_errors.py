"""Exceptions chanpool raises that are its own."""

from __future__ import annotations

import queue

__all__ = ["Closed", "QueueFull"]


class Closed(Exception):
    """The subscription or channel has ended: it was closed and nothing is left to read."""


class QueueFull(queue.Full):
    """A subscriber's queue is full and its overflow policy is ``"error"``."""
