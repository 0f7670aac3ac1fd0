"""chanpool: Go's concurrency patterns for Python, on native threads.

The GIL is released whenever chanpool waits or runs work off the calling thread.
"""

from concurrent.futures.thread import BrokenThreadPool

from chanpool._core import (
    Channel,
    MapIterator,
    Message,
    PubSub,
    Semaphore,
    Subscription,
    TokenBucket,
    WorkerPool,
    __version__,
    fan_in,
    select,
)
from chanpool._errors import Closed, QueueFull, ShutDown
from chanpool._future import Future

__all__ = [
    "BrokenThreadPool",
    "Channel",
    "Closed",
    "Future",
    "MapIterator",
    "Message",
    "PubSub",
    "QueueFull",
    "Semaphore",
    "ShutDown",
    "Subscription",
    "TokenBucket",
    "WorkerPool",
    "__version__",
    "fan_in",
    "select",
]
