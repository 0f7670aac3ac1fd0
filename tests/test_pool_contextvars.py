"""WorkerPool(contextvars=True): every submit/map call runs in a copy of its submitter's
context (as asyncio.to_thread); default off, as ThreadPoolExecutor."""

from __future__ import annotations

import contextvars
import threading

import chanpool
import pytest

var: contextvars.ContextVar[object] = contextvars.ContextVar("var", default="unset")
ITERATIONS = 200


def read_and_set(value: object) -> object:
    seen = var.get()
    var.set(value)
    return seen


def test_default_off_like_threadpoolexecutor():
    token = var.set("main")
    try:
        with chanpool.WorkerPool(2) as p:
            assert p.contextvars is False
            assert p.submit(var.get).result() == "unset"
            assert list(p.map(lambda _: var.get(), range(3))) == ["unset"] * 3
    finally:
        var.reset(token)


def test_submit_sees_the_submitters_value_and_nothing_leaks():
    token = var.set("main")
    try:
        # One worker: every task runs on the same thread, after the previous one set var.
        with chanpool.WorkerPool(1, contextvars=True) as p:
            assert p.contextvars is True
            fs = [p.submit(read_and_set, i) for i in range(ITERATIONS)]
            assert [f.result() for f in fs] == ["main"] * ITERATIONS
            assert var.get() == "main"
            fs = [
                p.submit(
                    read_and_set,
                    i,
                )
                for i in range(ITERATIONS)
            ]
            assert [f.result() for f in fs] == ["main"] * ITERATIONS
            f = p.try_submit(var.get)
            assert f is not None and f.result() == "main"
    finally:
        var.reset(token)


def test_value_at_submit_time_is_captured():
    with chanpool.WorkerPool(1, contextvars=True) as p:
        gate = threading.Event()
        p.submit(gate.wait)
        fs = []
        for i in range(ITERATIONS):
            var.set(i)
            fs.append(p.submit(var.get))
        gate.set()
        assert [f.result() for f in fs] == list(range(ITERATIONS))
        var.set("unset")


def test_kwargs_pass_through():
    with chanpool.WorkerPool(1, contextvars=True) as p:
        assert p.submit(dict, a=1, b=2).result() == {"a": 1, "b": 2}
        assert p.submit(lambda *a, **k: (a, k), 1, 2, x=3).result() == ((1, 2), {"x": 3})


@pytest.mark.parametrize("how", ["map", "map_unordered"])
def test_map_items_each_get_their_own_copy(how):
    token = var.set("main")
    try:
        with chanpool.WorkerPool(2, contextvars=True) as p:
            for _ in range(20):
                got = list(getattr(p, how)(read_and_set, range(500)))
                assert got == ["main"] * 500
            assert var.get() == "main"
            if how == "map":
                assert list(p.map(lambda a, b: (var.get(), a + b), [1, 2], [3, 4])) == [
                    ("main", 4),
                    ("main", 6),
                ]
    finally:
        var.reset(token)


def test_submitters_in_different_threads_see_their_own_values():
    with chanpool.WorkerPool(4, contextvars=True) as p:
        results: dict[int, list[object]] = {}

        def submitter(k: int) -> None:
            var.set(k)
            results[k] = [f.result() for f in [p.submit(read_and_set, -1) for _ in range(200)]]

        ts = [threading.Thread(target=submitter, args=(k,)) for k in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert results == {k: [k] * 200 for k in range(6)}


def test_errors_propagate_through_the_context_wrapper():
    with chanpool.WorkerPool(1, contextvars=True) as p:
        with pytest.raises(ZeroDivisionError):
            p.submit(lambda: 1 / 0).result()
        with pytest.raises(TypeError, match="callable"):
            p.submit(5)
