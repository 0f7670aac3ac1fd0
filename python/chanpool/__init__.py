"""chanpool: Go's concurrency patterns for Python, on native threads.

The GIL is released whenever chanpool waits or runs work off the calling thread.
"""

from concurrent.futures.thread import BrokenThreadPool

from chanpool._core import MapIterator, WorkerPool, __version__
from chanpool._future import Future

__all__ = ["BrokenThreadPool", "Future", "MapIterator", "WorkerPool", "__version__"]
