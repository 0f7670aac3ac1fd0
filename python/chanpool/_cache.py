"""The @cached decorator: functools.lru_cache's face over a chanpool.Cache, so concurrent
callers of the same arguments wait for one call instead of each computing it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from chanpool._core import Cache

F = TypeVar("F", bound=Callable[..., Any])


class CacheInfo(NamedTuple):
    """lru_cache's cache_info() fields."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class _Mark:
    """Separates positional from keyword arguments in a key (never equal to an argument)."""

    __slots__ = ()


_KWD_MARK = (_Mark(),)
_FAST = frozenset({int, str})


class _Key(list):  # type: ignore[type-arg]
    """A key holding the arguments, whose hash is computed once (lru_cache's _HashedSeq)."""

    __slots__ = ("hashvalue",)

    def __init__(self, items: tuple[Any, ...]) -> None:
        self[:] = items
        self.hashvalue = hash(items)

    def __hash__(self) -> int:  # type: ignore[override]
        return self.hashvalue


def make_key(args: tuple[Any, ...], kwds: dict[str, Any], typed: bool) -> Any:
    """The key lru_cache builds: equal arguments give equal keys (1 and 1.0 too unless typed),
    keyword order matters, a lone int or str argument is its own key."""
    key: tuple[Any, ...] = args
    if kwds:
        key += _KWD_MARK
        for item in kwds.items():
            key += item
    if typed:
        key += tuple(type(v) for v in args)
        if kwds:
            key += tuple(type(v) for v in kwds.values())
    elif len(key) == 1 and type(key[0]) in _FAST:
        return key[0]
    return _Key(key)


def cached(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    maxsize: int | None = 128,
    ttl: float | None = None,
    typed: bool = False,
    clock: Callable[[], float] | None = None,
) -> Any:
    """Memoizes fn like functools.lru_cache (cache_info, cache_clear, cache_parameters), in a
    chanpool.Cache: thread-safe, one call per missing key however many threads ask at once
    (the others wait for it, GIL released, and get the same object), exceptions not cached,
    optional ttl. `wrapper.cache` is the Cache."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError("cached expects a callable or keyword arguments")
        cache = Cache(maxsize=maxsize, ttl=ttl, clock=clock)
        call = cache._call

        def wrapper(*args: Any, **kwds: Any) -> Any:
            return call(make_key(args, kwds, typed), f, args, kwds or None)

        def cache_info() -> CacheInfo:
            s = cache.stats()
            return CacheInfo(
                int(s["hits"] or 0), int(s["misses"] or 0), maxsize, int(s["size"] or 0)
            )

        def cache_clear() -> None:
            cache.clear()
            cache.reset_stats()

        def cache_parameters() -> dict[str, Any]:
            return {"maxsize": maxsize, "typed": typed, "ttl": ttl}

        wrapper.cache = cache  # type: ignore[attr-defined]
        wrapper.cache_info = cache_info  # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear  # type: ignore[attr-defined]
        wrapper.cache_parameters = cache_parameters  # type: ignore[attr-defined]
        return functools.update_wrapper(wrapper, f)

    if fn is None:
        return decorate
    return decorate(fn)
