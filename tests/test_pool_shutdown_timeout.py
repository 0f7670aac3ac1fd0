"""WorkerPool.shutdown(wait=True, *, cancel_futures=False, timeout=None) -> bool: True when
every worker stopped, False on timeout (the pool is shut down all the same)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import chanpool
import pytest
from helpers import settled


class Blocker:
    """A task that says it started, then waits for ``gate``."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self) -> bool:
        self.started.set()
        return self.gate.wait(30)


def test_blocked_task_returns_false_quickly_then_true():
    for _ in range(20):
        p = chanpool.WorkerPool(2)
        task = Blocker()
        f = p.submit(task)
        assert task.started.wait(10)
        t0 = time.monotonic()
        assert p.shutdown(timeout=0.05) is False
        assert time.monotonic() - t0 < 5
        assert p._shutdown
        with pytest.raises(RuntimeError):
            p.submit(int)
        assert p.shutdown(wait=False) is False
        task.gate.set()
        assert f.result(10) is True
        assert p.shutdown(timeout=10) is True
        assert p.shutdown(timeout=0) is True
        assert p.shutdown(wait=False) is True
        settled(p)


def test_idle_and_never_started_pools_return_true():
    assert chanpool.WorkerPool(2).shutdown() is True
    p = chanpool.WorkerPool(2)
    assert p.submit(int).result() == 0
    assert p.shutdown(timeout=10) is True
    # ThreadPoolExecutor returns None: the documented difference.
    assert ThreadPoolExecutor(1).shutdown() is None


def test_cancel_futures_with_timeout():
    for _ in range(20):
        p = chanpool.WorkerPool(1)
        task = Blocker()
        first = p.submit(task)
        assert task.started.wait(10)
        queued = [p.submit(int) for _ in range(100)]
        assert p.shutdown(cancel_futures=True, timeout=0.01) is False
        assert all(f.cancelled() for f in queued)
        task.gate.set()
        assert first.result(10) is True
        assert p.shutdown() is True
        s = settled(p)
        assert s["cancelled"] == 100 and s["completed"] == 1


def test_timeout_argument_checked():
    p = chanpool.WorkerPool(1)
    with pytest.raises(TypeError):
        p.shutdown(timeout="1")
    assert p.shutdown(timeout=None) is True
