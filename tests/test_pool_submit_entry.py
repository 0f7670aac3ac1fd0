"""submit()'s fastcall entry (src/py/pool/entry.rs) takes every argument form the pyo3 one did."""

from __future__ import annotations

import inspect

import chanpool
import pytest


def echo(*args, **kwargs):
    return args, kwargs


@pytest.fixture
def pool():
    p = chanpool.WorkerPool(2)
    yield p
    p.shutdown(wait=True)


def test_argument_forms(pool):
    for i in range(200):
        assert pool.submit(echo).result() == ((), {})
        assert pool.submit(echo, i).result() == ((i,), {})
        assert pool.submit(echo, i, "x", None).result() == ((i, "x", None), {})
        assert pool.submit(echo, i, k=i).result() == ((i,), {"k": i})
        assert pool.submit(echo, fn=i).result() == ((), {"fn": i})  # fn is positional-only
        assert pool.submit(echo, *range(i % 7), **{"a": 1, "b": 2}).result() == (
            tuple(range(i % 7)),
            {"a": 1, "b": 2},
        )


def test_bad_calls_raise_before_queueing(pool):
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'fn'"):
        pool.submit()
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'fn'"):
        pool.submit(fn=abs)
    with pytest.raises(TypeError, match="needs a callable"):
        pool.submit(3)
    with pytest.raises(TypeError):
        chanpool.WorkerPool.submit(object(), abs)
    assert pool.stats()["submitted"] == 0


def test_signature():
    sig = inspect.signature(chanpool.WorkerPool.submit)
    assert str(sig) == "(self, fn, /, *args, **kwargs)"
    assert "Schedules fn" in (chanpool.WorkerPool.submit.__doc__ or "")
