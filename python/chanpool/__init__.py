"""chanpool: Go's concurrency patterns for Python, on native threads.

The GIL is released whenever chanpool waits or runs work off the calling thread.
"""

from concurrent.futures.thread import BrokenThreadPool

from chanpool._core import (
    MapIterator,
    Message,
    PubSub,
    Subscription,
    WorkerPool,
    __version__,
)
from chanpool._errors import Closed, QueueFull
from chanpool._future import Future

__all__ = [
    "BrokenThreadPool",
    "Closed",
    "Future",
    "MapIterator",
    "Message",
    "PubSub",
    "QueueFull",
    "Subscription",
    "WorkerPool",
    "__version__",
]
