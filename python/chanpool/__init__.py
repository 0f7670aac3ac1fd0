"""chanpool: Go's concurrency patterns for Python, on native threads.

The GIL is released whenever chanpool waits or runs work off the calling thread.
"""

from concurrent.futures.thread import BrokenThreadPool

# Imported now, not on a coroutine's first await: _core looks its coroutines up there (PubSub's
# in _aio_pubsub), and an import reads files with the GIL released, which a daemon thread must
# not do inside a native frame while the interpreter exits (CPython then ends the thread with a
# forced unwind that aborts the process; ARCHITECTURE.md, the GIL rules).
from chanpool import _aio, _aio_pubsub  # noqa: F401
from chanpool._aio_select import select_async
from chanpool._cache import CacheInfo, cached
from chanpool._context import (
    Cancelled,
    Context,
    DeadlineExceeded,
    current_context,
    run_with_timeout,
)
from chanpool._core import (
    Cache,
    Channel,
    MapIterator,
    Message,
    PubSub,
    Semaphore,
    SingleFlight,
    Subscription,
    TokenBucket,
    WaitGroup,
    __version__,
    fan_in,
    select,
)
from chanpool._errors import Closed, QueueFull, ShutDown
from chanpool._future import Future
from chanpool._group import Group
from chanpool._pipeline import fan_out, pipeline
from chanpool._pool import WorkerPool
from chanpool._queue import Queue

__all__ = [
    "BrokenThreadPool",
    "Cache",
    "CacheInfo",
    "Cancelled",
    "Channel",
    "Closed",
    "Context",
    "DeadlineExceeded",
    "Future",
    "Group",
    "MapIterator",
    "Message",
    "PubSub",
    "Queue",
    "QueueFull",
    "Semaphore",
    "ShutDown",
    "SingleFlight",
    "Subscription",
    "TokenBucket",
    "WaitGroup",
    "WorkerPool",
    "__version__",
    "cached",
    "current_context",
    "fan_in",
    "fan_out",
    "pipeline",
    "run_with_timeout",
    "select",
    "select_async",
]
