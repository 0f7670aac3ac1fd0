"""chanpool.Queue: queue.Queue's constructor for a Channel.

``Channel(0)`` is unbuffered, as in Go; ``queue.Queue(0)`` is unbounded. Code written for
queue.Queue says ``Queue(maxsize)``, so this is that: a Channel whose capacity follows
queue.Queue's rule (``maxsize <= 0``: unbounded). Everything else is the Channel's own
queue.Queue API (put/get/task_done/join/shutdown, an assignable ``maxsize``).
"""

from __future__ import annotations

from typing import TypeVar

from chanpool._core import Channel

__all__ = ["Queue"]

_T = TypeVar("_T")


class Queue(Channel[_T]):
    """A queue.Queue drop-in: ``Queue(maxsize=0)``, unbounded when ``maxsize <= 0``."""

    __slots__ = ()

    def __new__(cls, maxsize: int = 0) -> Queue[_T]:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}")
        return super().__new__(cls, maxsize if maxsize > 0 else None)
