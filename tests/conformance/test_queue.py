"""CPython 3.13 ``Lib/test/test_queue.py``, ``QueueTest`` (BaseQueueTestMixin on ``Queue``), ported.

Each test runs against the original (``queue.Queue``; on Pythons before 3.13, whose queue module
has no ``shutdown``, the 3.13 pure-Python ``queue.py`` from the pyenv install on this machine) and
against chanpool (``chanpool.Queue``: the queue.Queue-shaped constructor of a Channel). The
original's trigger thread sleeps 0.1 s before unblocking the call under test; here it acts once
the calling thread has been seen waiting inside that call for a while, and threads are joined
with a bound instead of forever.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import queue as stdlib_queue
import sys
import threading
import time
import types
from typing import Any, Callable

import chanpool
import pytest
from helpers import WATCHDOG, all_stacks

QUEUE_SIZE = 5


def _original_queue_module() -> types.ModuleType | None:
    """A queue module with shutdown(): the running one on 3.13+, else 3.13's own queue.py."""
    if hasattr(stdlib_queue.Queue, "shutdown"):
        return stdlib_queue
    pattern = os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/lib/python3.1[3-9]/queue.py")
    for path in sorted(glob.glob(pattern)):
        spec = importlib.util.spec_from_file_location("_original_queue", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module.Queue, "shutdown"):
            return module
    return None


_ORIGINAL = _original_queue_module()


class Impl(types.SimpleNamespace):
    Queue: Callable[..., Any]
    Full: type[BaseException]
    Empty: type[BaseException]
    ShutDown: type[BaseException]


@pytest.fixture(params=["original", "chanpool"])
def impl(request: pytest.FixtureRequest) -> Impl:
    if request.param == "original":
        if _ORIGINAL is None:
            pytest.skip("no queue.py with shutdown() (CPython 3.13+) on this machine")
        m = _ORIGINAL
        return Impl(Queue=m.Queue, Full=m.Full, Empty=m.Empty, ShutDown=m.ShutDown)
    return Impl(
        Queue=chanpool.Queue,
        Full=stdlib_queue.Full,
        Empty=stdlib_queue.Empty,
        ShutDown=chanpool.ShutDown,
    )


def qfull(q: Any) -> bool:
    return bool(q.maxsize > 0 and q.qsize() == q.maxsize)


def join_all(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + WATCHDOG
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            pytest.fail(f"thread {t.name} did not finish (deadlock?)\n{all_stacks()}")


# ---------------------------------------------------------------- BlockingTestMixin


_HELD = 0.05  # how long the caller must be seen inside the call before it counts as blocked


def _inside(ident: int, code: types.CodeType, line: int) -> bool:
    frame = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code is code:
            return frame.f_lineno == line
        frame = frame.f_back
    return False


class _Trigger(threading.Thread):
    """Runs ``fn(*args)`` once thread ``ident`` has been inside the blocking call for _HELD s."""

    def __init__(self, ident: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        super().__init__(daemon=True)
        self.ident_to_watch, self.fn, self.args = ident, fn, args
        self.started_event = threading.Event()
        self.gave_up = False

    def run(self) -> None:
        deadline = time.monotonic() + WATCHDOG
        since = None
        while time.monotonic() < deadline:
            if _inside(self.ident_to_watch, _blocking_call.__code__, _BLOCKING_LINE):
                since = since or time.monotonic()
                if time.monotonic() - since >= _HELD:
                    break
            else:
                since = None
            time.sleep(0.001)
        else:
            self.gave_up = True
        self.started_event.set()
        self.fn(*self.args)


def _blocking_call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(*args)


_BLOCKING_LINE = _blocking_call.__code__.co_firstlineno + 1


def do_blocking_test(
    block_func: Callable[..., Any],
    block_args: tuple[Any, ...],
    trigger_func: Callable[..., Any],
    trigger_args: tuple[Any, ...],
) -> Any:
    trigger = _Trigger(threading.get_ident(), trigger_func, trigger_args)
    trigger.start()
    try:
        result = _blocking_call(block_func, block_args)
        assert trigger.started_event.is_set(), f"{block_func!r} appeared not to block"
        assert not trigger.gave_up
        return result
    finally:
        join_all([trigger])


# ---------------------------------------------------------------- BaseQueueTestMixin


def basic_queue_test(impl: Impl, q: Any) -> None:
    assert not q.qsize(), "call this with an empty queue"
    assert q.empty()
    assert not q.full()
    q.put(111)
    q.put(333)
    q.put(222)
    assert [q.get(), q.get(), q.get()] == [111, 333, 222]
    for i in range(QUEUE_SIZE - 1):
        q.put(i)
        assert q.qsize()
    assert not qfull(q)
    last = 2 * QUEUE_SIZE
    full = 3 * 2 * QUEUE_SIZE
    q.put(last)
    assert qfull(q)
    assert not q.empty()
    assert q.full()
    with pytest.raises(impl.Full):
        q.put(full, block=0)
    with pytest.raises(impl.Full):
        q.put(full, timeout=0.01)
    do_blocking_test(q.put, (full,), q.get, ())
    do_blocking_test(q.put, (full, True, 10), q.get, ())
    for _ in range(QUEUE_SIZE):
        q.get()
    assert not q.qsize()
    with pytest.raises(impl.Empty):
        q.get(block=0)
    with pytest.raises(impl.Empty):
        q.get(timeout=0.01)
    do_blocking_test(q.get, (), q.put, ("empty",))
    do_blocking_test(q.get, (True, 10), q.put, ("empty",))


class Sum:
    def __init__(self) -> None:
        self.cum = 0
        self.lock = threading.Lock()


def worker(q: Any, acc: Sum) -> None:
    while True:
        x = q.get()
        if x < 0:
            q.task_done()
            return
        with acc.lock:
            acc.cum += x
        q.task_done()


def queue_join_test(q: Any) -> None:
    acc = Sum()
    threads = [threading.Thread(target=worker, args=(q, acc), daemon=True) for _ in (0, 1)]
    for t in threads:
        t.start()
    for i in range(100):
        q.put(i)
    q.join()
    assert acc.cum == sum(range(100)), "join() did not wait until every task was done"
    for _ in (0, 1):
        q.put(-1)
    q.join()  # joining twice works
    join_all(threads)


def test_queue_task_done(impl: Impl) -> None:
    q = impl.Queue()
    with pytest.raises(ValueError):
        q.task_done()


def test_queue_join(impl: Impl) -> None:
    q = impl.Queue()
    queue_join_test(q)
    queue_join_test(q)
    with pytest.raises(ValueError):
        q.task_done()


def test_basic(impl: Impl) -> None:
    q = impl.Queue(QUEUE_SIZE)
    basic_queue_test(impl, q)
    basic_queue_test(impl, q)


def test_negative_timeout_raises_exception(impl: Impl) -> None:
    q = impl.Queue(QUEUE_SIZE)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError):
        q.get(1, timeout=-1)


def test_nowait(impl: Impl) -> None:
    q = impl.Queue(QUEUE_SIZE)
    for _ in range(QUEUE_SIZE):
        q.put_nowait(1)
    with pytest.raises(impl.Full):
        q.put_nowait(1)
    for _ in range(QUEUE_SIZE):
        q.get_nowait()
    with pytest.raises(impl.Empty):
        q.get_nowait()


def test_shrinking_queue(impl: Impl) -> None:
    q = impl.Queue(3)
    q.put(1)
    q.put(2)
    q.put(3)
    with pytest.raises(impl.Full):
        q.put_nowait(4)
    assert q.qsize() == 3
    q.maxsize = 2  # shrink the queue
    with pytest.raises(impl.Full):
        q.put_nowait(4)


def test_shutdown_empty(impl: Impl) -> None:
    q = impl.Queue()
    q.shutdown()
    with pytest.raises(impl.ShutDown):
        q.put("data")
    with pytest.raises(impl.ShutDown):
        q.get()


def test_shutdown_nonempty(impl: Impl) -> None:
    q = impl.Queue()
    q.put("data")
    q.shutdown()
    q.get()
    with pytest.raises(impl.ShutDown):
        q.get()


def test_shutdown_immediate(impl: Impl) -> None:
    q = impl.Queue()
    q.put("data")
    q.shutdown(immediate=True)
    with pytest.raises(impl.ShutDown):
        q.get()


def test_shutdown_allowed_transitions(impl: Impl) -> None:
    q = impl.Queue()
    assert not q.is_shutdown
    q.shutdown()
    assert q.is_shutdown
    q.shutdown(immediate=True)
    assert q.is_shutdown
    q.shutdown(immediate=False)


def shutdown_all_methods_in_one_thread(impl: Impl, immediate: bool) -> None:
    q = impl.Queue(2)
    q.put("L")
    q.put_nowait("O")
    q.shutdown(immediate)
    with pytest.raises(impl.ShutDown):
        q.put("E")
    with pytest.raises(impl.ShutDown):
        q.put_nowait("W")
    if immediate:
        with pytest.raises(impl.ShutDown):
            q.get()
        with pytest.raises(impl.ShutDown):
            q.get_nowait()
        with pytest.raises(ValueError):
            q.task_done()
        q.join()
    else:
        assert q.get() in "LO"
        q.task_done()
        assert q.get() in "LO"
        q.task_done()
        q.join()
        # Shut down (not immediately) and empty: every kind of get raises ShutDown.
        with pytest.raises(impl.ShutDown):
            q.get()
        with pytest.raises(impl.ShutDown):
            q.get_nowait()
        with pytest.raises(impl.ShutDown):
            q.get(True, 1.0)


def test_shutdown_all_methods_in_one_thread(impl: Impl) -> None:
    shutdown_all_methods_in_one_thread(impl, False)


def test_shutdown_immediate_all_methods_in_one_thread(impl: Impl) -> None:
    shutdown_all_methods_in_one_thread(impl, True)


def shutdown_all_methods_in_many_threads(impl: Impl, immediate: bool) -> None:
    q = impl.Queue()
    res_puts: list[bool] = []
    res_gets: list[bool] = []
    res_shutdown: list[bool] = []
    write_threads, read_threads, join_threads = 4, 6, 2
    nb_msgs = 1024 * 64
    nb_msgs_w = nb_msgs // write_threads
    when_exec_shutdown = nb_msgs_w // 2
    nparties = write_threads + read_threads + (join_threads if immediate else 0)
    barrier_start = threading.Barrier(nparties)
    ev_exec_shutdown = threading.Event()

    def write_msg() -> None:
        for i in range(when_exec_shutdown // 2):
            q.put((i, "LOYD"))
        barrier_start.wait()
        for i in range(when_exec_shutdown // 2, nb_msgs_w):
            try:
                q.put((i, "YDLO"))
            except impl.ShutDown:
                res_puts.append(False)
                break
            if i == when_exec_shutdown and not ev_exec_shutdown.is_set():
                ev_exec_shutdown.set()
                res_puts.append(True)

    def read_msg() -> None:
        q.get(True)
        q.task_done()
        barrier_start.wait()
        while True:
            try:
                q.get(False)
                q.task_done()
            except impl.ShutDown:
                res_gets.append(True)
                break
            except impl.Empty:
                pass

    def shutdown() -> None:
        ev_exec_shutdown.wait()
        q.shutdown(immediate)
        res_shutdown.append(q.qsize() == 0)

    def join() -> None:
        barrier_start.wait()
        q.join()

    plan: list[tuple[Callable[[], None], int]] = [
        (write_msg, write_threads),
        (read_msg, read_threads),
        (shutdown, 1),
    ]
    if immediate:
        plan.append((join, join_threads))
    threads = [threading.Thread(target=f, daemon=True) for f, n in plan for _ in range(n)]
    for t in threads:
        t.start()
    join_all(threads)
    assert True in res_puts
    assert res_gets.count(True) == read_threads
    if immediate:
        assert res_shutdown == [True]
        assert q.empty()


def test_shutdown_all_methods_in_many_threads(impl: Impl) -> None:
    shutdown_all_methods_in_many_threads(impl, False)


def test_shutdown_immediate_all_methods_in_many_threads(impl: Impl) -> None:
    shutdown_all_methods_in_many_threads(impl, True)


def _run(targets: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in targets]
    for t in threads:
        t.start()
    return threads


def _get(impl: Impl, q: Any, go: threading.Event, results: list[bool], shutdown: bool) -> None:
    go.wait()
    try:
        q.get()
        results.append(not shutdown)
    except impl.ShutDown:
        results.append(shutdown)


def _get_task_done(impl: Impl, q: Any, go: threading.Event, results: list[bool]) -> None:
    go.wait()
    try:
        q.get()
        q.task_done()
        results.append(True)
    except impl.ShutDown:
        results.append(False)


def _put(
    impl: Impl, q: Any, msg: Any, go: threading.Event, results: list[bool], shutdown: bool
) -> None:
    go.wait()
    try:
        q.put(msg)
        results.append(not shutdown)
    except impl.ShutDown:
        results.append(shutdown)


def _join(impl: Impl, q: Any, results: list[bool]) -> None:
    try:
        q.join()
        results.append(True)
    except impl.ShutDown:
        results.append(False)


def shutdown_get(impl: Impl, immediate: bool) -> None:
    q = impl.Queue(2)
    results: list[bool] = []
    go = threading.Event()
    q.put("Y")
    q.put("D")  # full
    n = 2 if immediate else 3
    # Shut down immediately, both gets fail; otherwise one of the three finds nothing.
    threads = _run([(_get, (impl, q, go, results, immediate)) for _ in range(n)])
    q.shutdown(immediate)
    go.set()
    join_all(threads)
    if immediate:
        assert results == [True, True]
    else:
        assert sorted(results) == [False, True, True]


def test_shutdown_get(impl: Impl) -> None:
    shutdown_get(impl, False)


def test_shutdown_immediate_get(impl: Impl) -> None:
    shutdown_get(impl, True)


def shutdown_put(impl: Impl, immediate: bool) -> None:
    q = impl.Queue(2)
    results: list[bool] = []
    go = threading.Event()
    q.put("Y")
    q.put("D")  # full
    threads = _run([(_put, (impl, q, msg, go, results, True)) for msg in ("E", "W")])
    q.shutdown()  # as the original: immediate or not, the puts fail
    go.set()
    join_all(threads)
    assert results == [True, True]


def test_shutdown_put(impl: Impl) -> None:
    shutdown_put(impl, False)


def test_shutdown_immediate_put(impl: Impl) -> None:
    shutdown_put(impl, True)


def shutdown_join(impl: Impl, immediate: bool) -> None:
    q = impl.Queue()
    results: list[bool] = []
    q.put("Y")
    go = threading.Event()
    nb = q.qsize()
    targets: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (_join, (impl, q, results)),
        (_join, (impl, q, results)),
    ]
    res: list[bool] = []
    if not immediate:
        targets += [(_get_task_done, (impl, q, go, res)) for _ in range(nb)]
    threads = _run(targets)
    q.shutdown(immediate)
    go.set()
    join_all(threads)
    assert results == [True, True]


def test_shutdown_immediate_join(impl: Impl) -> None:
    shutdown_join(impl, True)


def test_shutdown_join(impl: Impl) -> None:
    shutdown_join(impl, False)


def shutdown_put_join(impl: Impl, immediate: bool) -> None:
    q = impl.Queue(2)
    results: list[bool] = []
    go = threading.Event()
    q.put("Y")  # not full
    threads = _run([(_put, (impl, q, "E", go, results, True)), (_join, (impl, q, results))])
    assert q.unfinished_tasks == 1
    q.shutdown(immediate)
    go.set()
    if immediate:
        with pytest.raises(impl.ShutDown):
            q.get_nowait()
    else:
        assert q.get() == "Y"
        q.task_done()
    join_all(threads)
    assert results == [True, True]


def test_shutdown_immediate_put_join(impl: Impl) -> None:
    shutdown_put_join(impl, True)


def test_shutdown_put_join(impl: Impl) -> None:
    shutdown_put_join(impl, False)


def test_shutdown_get_task_done_join(impl: Impl) -> None:
    q = impl.Queue(2)
    results: list[bool] = []
    go = threading.Event()
    q.put("Y")
    q.put("D")
    assert q.unfinished_tasks == q.qsize()
    threads = _run(
        [
            (_get_task_done, (impl, q, go, results)),
            (_get_task_done, (impl, q, go, results)),
            (_join, (impl, q, results)),
            (_join, (impl, q, results)),
        ]
    )
    go.set()
    q.shutdown(False)
    join_all(threads)
    assert results == [True] * 4


def test_shutdown_pending_get(impl: Impl) -> None:
    q = impl.Queue()
    results: list[Any] = []

    def get() -> None:
        try:
            results.append(q.get())
        except Exception as e:
            results.append(e)

    t = threading.Thread(target=get, daemon=True)
    t.start()
    q.shutdown(immediate=False)
    join_all([t])
    assert len(results) == 1
    assert isinstance(results[0], impl.ShutDown)
