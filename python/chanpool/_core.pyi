# Hand-written stubs for the Rust extension; `make lint` checks them with mypy.stubtest.
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, final

from typing_extensions import ParamSpec, Self, disjoint_base

from chanpool._future import Future

_T = TypeVar("_T")
_P = ParamSpec("_P")

__version__: str
__all__ = [
    "MapIterator",
    "WorkerPool",
    "_after_fork_child",
    "_after_fork_parent",
    "_before_fork",
    "_shutdown_all",
    "__version__",
]

@final
class MapIterator(Iterator[_T]):
    def __iter__(self) -> Self: ...
    def __next__(self) -> _T: ...
    def close(self) -> None:
        """Stop iterating and cancel the items that have not started."""

@disjoint_base
class WorkerPool:
    """A drop-in for concurrent.futures.ThreadPoolExecutor on native threads."""

    def __new__(
        cls,
        max_workers: int | None = None,
        *,
        queue_size: int = 0,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] | None = None,
    ) -> Self: ...
    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Future[_T]: ...
    def try_submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Future[_T] | None: ...
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapIterator[_T]: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool: ...
    @property
    def max_workers(self) -> int: ...
    @property
    def _max_workers(self) -> int: ...
    @property
    def queue_size(self) -> int: ...
    @property
    def _thread_name_prefix(self) -> str: ...
    @property
    def _broken(self) -> str | None: ...
    @property
    def _shutdown(self) -> bool: ...

def _shutdown_all() -> None: ...
def _before_fork() -> None: ...
def _after_fork_parent() -> None: ...
def _after_fork_child() -> None: ...
