"""CPython 3.13 Lib/test/test_concurrent_futures/ (the thread-pool parts), ported: each test
runs against concurrent.futures.ThreadPoolExecutor ("original") and chanpool.WorkerPool.

Sources: executor.py (ExecutorTest), test_thread_pool.py, test_shutdown.py, test_wait.py,
test_as_completed.py, test_init.py. test_future.py is in test_tpe_future.py; test_deadlock.py
has only process-pool tests (pickling and worker crashes), nothing to port for threads.
Where the original reads ThreadPoolExecutor's private `_threads`, the `impl` adapter answers
the same question for WorkerPool (stats()["workers"], OS thread names).
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import gc
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
    Future,
)

import chanpool
import pytest
from helpers import native_thread_names, run_py


class Impl:
    def __init__(self, name: str, executor: type, qualname: str) -> None:
        self.name = name
        self.executor = executor
        self.qualname = qualname  # how a subprocess script spells it

    def __repr__(self) -> str:
        return self.name

    def thread_count(self, ex) -> int:
        if self.name == "original":
            return len(ex._threads)
        return ex.stats()["workers"]

    def thread_names(self, ex) -> list:
        if self.name == "original":
            return [t.name for t in ex._threads]
        prefix = ex._thread_name_prefix[:12]
        return [n for n in native_thread_names() if n.startswith(prefix)]

    def join_threads(self, ex) -> None:
        """What joining every t in ex._threads checks: all worker threads end."""
        if self.name == "original":
            for t in ex._threads:
                t.join()
        else:
            ex.shutdown(wait=True)
            assert ex.stats()["workers"] == 0


IMPLS = {
    "original": Impl(
        "original", futures.ThreadPoolExecutor, "concurrent.futures.ThreadPoolExecutor"
    ),
    "chanpool": Impl("chanpool", chanpool.WorkerPool, "chanpool.WorkerPool"),
}


@pytest.fixture(params=["original", "chanpool"])
def impl(request) -> Impl:
    return IMPLS[request.param]


WORKERS = 5


@pytest.fixture
def executor(impl):
    ex = impl.executor(max_workers=WORKERS)
    yield ex
    ex.shutdown(wait=True)


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


class MyObject:
    def my_method(self):
        pass


def make_dummy_object(_):
    return MyObject()


def create_future(state=PENDING, exception=None, result=None):
    f = Future()
    f._state = state
    f._exception = exception
    f._result = result
    return f


PENDING_FUTURE = create_future(state=PENDING)
RUNNING_FUTURE = create_future(state=RUNNING)
CANCELLED_FUTURE = create_future(state=CANCELLED)
CANCELLED_AND_NOTIFIED_FUTURE = create_future(state=CANCELLED_AND_NOTIFIED)
EXCEPTION_FUTURE = create_future(state=FINISHED, exception=OSError())
SUCCESSFUL_FUTURE = create_future(state=FINISHED, result=42)


def sleep_and_raise(t):
    time.sleep(t)
    raise Exception("this is an exception")


SLEEP_AND_PRINT = """
import sys, time, concurrent.futures, chanpool
def sleep_and_print(t, msg):
    time.sleep(t)
    print(msg)
    sys.stdout.flush()
"""

# ------------------------------------------------------------------------- executor.py


def test_submit(executor):
    assert executor.submit(pow, 2, 8).result() == 256


def test_submit_keyword(executor):
    assert executor.submit(mul, 2, y=8).result() == 16
    assert executor.submit(capture, 1, self=2, fn=3).result() == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


def test_map(executor):
    expected = list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10))) == expected
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == expected


def test_map_exception(executor):
    it = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert it.__next__() == (0, 1)
    assert it.__next__() == (0, 1)
    with pytest.raises(ZeroDivisionError):
        it.__next__()


def test_map_timeout(executor):
    results = []
    with pytest.raises(futures.TimeoutError):
        for r in executor.map(time.sleep, [0, 0, 3], timeout=1):
            results.append(r)
    assert results == [None, None]


def test_shutdown_race_issue12456(executor):
    executor.map(str, [2] * (WORKERS + 1))
    executor.shutdown()


def test_no_stale_references(executor):
    obj = MyObject()
    collected = threading.Event()
    ref = weakref.ref(obj, lambda _: collected.set())  # noqa: F841
    executor.submit(obj.my_method)
    del obj
    assert collected.wait(timeout=30), "stale reference not collected"


def test_max_workers_negative(impl):
    for number in (0, -1):
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            impl.executor(max_workers=number)


def test_free_reference(executor):
    for obj in executor.map(make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        gc.collect()
        assert wr() is None


# ------------------------------------------------------------------- test_thread_pool.py


def test_map_submits_without_iteration(executor):
    finished = []
    executor.map(finished.append, range(10))
    executor.shutdown(wait=True)
    assert sorted(finished) == list(range(10))


def test_default_workers(impl):
    ex = impl.executor()
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    if impl.name == "chanpool" and hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))  # what process_cpu_count() counts on 3.13
    assert ex._max_workers == min(32, cpus + 4)
    ex.shutdown()


def test_saturation(impl):
    ex = impl.executor(4)
    sem = threading.Semaphore(0)
    for _ in range(15 * ex._max_workers):
        ex.submit(sem.acquire)
    assert impl.thread_count(ex) == ex._max_workers
    for _ in range(15 * ex._max_workers):
        sem.release()
    ex.shutdown(wait=True)


def test_idle_thread_reuse(impl):
    ex = impl.executor()
    ex.submit(mul, 21, 2).result()
    ex.submit(mul, 6, 7).result()
    ex.submit(mul, 3, 14).result()
    assert impl.thread_count(ex) == 1
    ex.shutdown(wait=True)


def test_executor_map_current_future_cancel(impl):
    stop = threading.Event()
    log = []

    def log_n_wait(ident):
        log.append(f"{ident=} started")
        try:
            stop.wait()
        finally:
            log.append(f"{ident=} stopped")

    with impl.executor(max_workers=1) as pool:
        fut = pool.submit(log_n_wait, ident="first")
        try:
            with contextlib.closing(pool.map(log_n_wait, ["second", "third"], timeout=0)) as gen:
                with pytest.raises(TimeoutError):
                    next(gen)
        finally:
            stop.set()
        fut.result()
    assert log == ["ident='first' started", "ident='first' stopped"]


# ---------------------------------------------------------------------- test_shutdown.py


def test_run_after_shutdown(executor):
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 5)


def test_interpreter_shutdown(impl):
    proc = run_py(
        SLEEP_AND_PRINT
        + f"""
t = {impl.qualname}(5)
t.submit(sleep_and_print, 1.0, "apple")
"""
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() == "apple"


def test_submit_after_interpreter_shutdown(impl):
    proc = run_py(
        f"""
import atexit
@atexit.register
def run_last():
    try:
        t.submit(id, None)
    except RuntimeError:
        print("runtime-error")
        raise
import concurrent.futures, chanpool
t = {impl.qualname}(5)
t.submit(id, 42).result()
"""
    )
    assert proc.returncode == 0
    assert "RuntimeError: cannot schedule new futures" in proc.stderr
    assert proc.stdout.strip() == "runtime-error"


def test_hang_issue12364(executor):
    fs = [executor.submit(time.sleep, 0.01) for _ in range(50)]
    executor.shutdown()
    for f in fs:
        f.result()


def test_cancel_futures(executor):
    fs = [executor.submit(time.sleep, 0.1) for _ in range(50)]
    executor.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    assert len(cancelled) > 20
    others = [f for f in fs if not f.cancelled()]
    for f in others:
        assert f.done(), f._state
        assert f.exception() is None
    assert len(others) > 0


def test_hang_gh83386(impl):
    proc = run_py(
        SLEEP_AND_PRINT
        + f"""
t = {impl.qualname}(max_workers=3)
t.submit(sleep_and_print, 1.0, "apple")
t.shutdown(wait=False)
"""
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() == "apple"


def test_hang_gh94440(impl):
    import signal

    def timeout(_signum, _frame):
        raise RuntimeError("timed out waiting for shutdown")

    ex = impl.executor(max_workers=1)
    ex.submit(int).result()
    old = signal.signal(signal.SIGALRM, timeout)
    try:
        signal.alarm(5)
        ex.submit(int).cancel()
        ex.shutdown(wait=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_threads_terminate(impl, executor):
    sem = threading.Semaphore(0)
    for _ in range(3):
        executor.submit(sem.acquire)
    assert impl.thread_count(executor) == 3
    for _ in range(3):
        sem.release()
    executor.shutdown()
    impl.join_threads(executor)


def test_context_manager_shutdown(impl):
    with impl.executor(max_workers=5) as e:
        executor = e
        assert list(e.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    impl.join_threads(executor)


def test_del_shutdown(impl):
    executor = impl.executor(max_workers=5)
    res = executor.map(abs, range(-5, 5))
    if impl.name == "original":
        threads = executor._threads
        del executor
        for t in threads:
            t.join()
    else:
        core = weakref.ref(executor)
        del executor
        gc.collect()
        assert core() is None
    assert all(r == abs(v) for r, v in zip(res, range(-5, 5), strict=True))


def test_shutdown_no_wait(impl):
    executor = impl.executor(max_workers=5)
    res = executor.map(abs, range(-5, 5))
    executor.shutdown(wait=False)
    impl.join_threads(executor)
    assert all(r == abs(v) for r, v in zip(res, range(-5, 5), strict=True))


def test_thread_names_assigned(impl):
    executor = impl.executor(max_workers=5, thread_name_prefix="SpecialPool")
    gate, started = threading.Event(), threading.Semaphore(0)
    fs = [executor.submit(lambda: started.release() or gate.wait()) for _ in range(5)]
    for _ in range(5):
        assert started.acquire(timeout=30)  # every thread is running (and so named)
    names = impl.thread_names(executor)
    gate.set()
    assert len(names) == 5
    for n in names:
        assert __import__("re").match(r"^SpecialPool_[0-4]$", n), n
    executor.shutdown()
    assert all(f.result() for f in fs)


def test_thread_names_assigned_seen_by_tasks(impl):
    """test_thread_names_assigned, asked from inside: what a task (and logging's %(threadName)s)
    sees as its thread, and what threading.enumerate() lists while the workers live and after."""
    executor = impl.executor(max_workers=5, thread_name_prefix="SpecialPool")
    barrier = threading.Barrier(5, timeout=30)
    seen, records = [], []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.threadName)

    log = logging.getLogger("test_tpe.thread_names")
    log.addHandler(keep := Keep())
    log.propagate = False

    def task():
        seen.append(threading.current_thread().name)
        log.warning("from a worker")
        barrier.wait()  # all five run at once, so on five threads
        return threading.current_thread().name

    try:
        fs = [executor.submit(task) for _ in range(5)]
        names = sorted(f.result(timeout=30) for f in fs)
        listed = sorted(t.name for t in threading.enumerate() if t.name.startswith("SpecialPool"))
        executor.shutdown(wait=True)
        after = [t.name for t in threading.enumerate() if t.name.startswith("SpecialPool")]
    finally:
        log.removeHandler(keep)
        executor.shutdown()
    expected = [f"SpecialPool_{i}" for i in range(5)]
    assert names == expected
    assert sorted(seen) == expected
    assert sorted(records) == expected
    assert listed == expected
    assert after == []


@pytest.mark.difference("default thread names start with WorkerPool-, not ThreadPoolExecutor-")
def test_thread_names_default_seen_by_tasks(impl):
    """test_thread_names_default, asked from inside a task."""
    executor = impl.executor(max_workers=2)
    barrier = threading.Barrier(2, timeout=30)

    def task():
        barrier.wait()
        return threading.current_thread().name

    fs = [executor.submit(task) for _ in range(2)]
    names = sorted(f.result(timeout=30) for f in fs)
    executor.shutdown()
    if impl.name == "original":
        assert all(__import__("re").match(r"ThreadPoolExecutor-\d+_[01]$", n) for n in names)
    else:
        prefix = executor._thread_name_prefix
        assert names == [f"{prefix}_0", f"{prefix}_1"], names


@pytest.mark.difference("default thread names start with WorkerPool-, not ThreadPoolExecutor-")
def test_thread_names_default(impl):
    executor = impl.executor(max_workers=5)
    gate, started = threading.Event(), threading.Semaphore(0)
    fs = [executor.submit(lambda: started.release() or gate.wait()) for _ in range(5)]
    for _ in range(5):
        assert started.acquire(timeout=30)  # every thread is running (and so named)
    names = impl.thread_names(executor)
    gate.set()
    pattern = (
        r"ThreadPoolExecutor-\d+_[0-4]$" if impl.name == "original" else r"WorkerPool-\d+_[0-4]$"
    )
    assert len(names) == 5
    if impl.name == "original":
        for n in names:
            assert __import__("re").match(pattern, n), n
    else:
        # The OS keeps 15 bytes of a thread's name (Linux): past WorkerPool-99 it is cut.
        prefix = executor._thread_name_prefix
        assert __import__("re").match(r"WorkerPool-\d+$", prefix), prefix
        assert sorted(names) == sorted(f"{prefix}_{i}"[:15] for i in range(5)), names
    executor.shutdown()
    assert all(f.result() for f in fs)


def test_cancel_futures_wait_false(impl):
    proc = run_py(
        SLEEP_AND_PRINT
        + f"""
t = {impl.qualname}()
t.submit(sleep_and_print, .1, "apple")
t.shutdown(wait=False, cancel_futures=True)
"""
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() in ("apple", "")


# -------------------------------------------------------------------------- test_wait.py


def test_20369(executor):
    future = executor.submit(time.sleep, 0.5)
    done, not_done = futures.wait([future, future], return_when=futures.ALL_COMPLETED)
    assert done == {future} and not_done == set()


def test_first_completed(executor):
    future1 = executor.submit(mul, 21, 2)
    future2 = executor.submit(time.sleep, 1.5)
    done, not_done = futures.wait(
        [CANCELLED_FUTURE, future1, future2], return_when=futures.FIRST_COMPLETED
    )
    assert done == {future1}
    assert not_done == {CANCELLED_FUTURE, future2}


def test_first_completed_some_already_completed(executor):
    future1 = executor.submit(time.sleep, 1.5)
    finished, pending = futures.wait(
        [CANCELLED_AND_NOTIFIED_FUTURE, SUCCESSFUL_FUTURE, future1],
        return_when=futures.FIRST_COMPLETED,
    )
    assert finished == {CANCELLED_AND_NOTIFIED_FUTURE, SUCCESSFUL_FUTURE}
    assert pending == {future1}


def test_first_exception(executor):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(sleep_and_raise, 0.5)
    future3 = executor.submit(time.sleep, 3)
    finished, pending = futures.wait(
        [future1, future2, future3], return_when=futures.FIRST_EXCEPTION
    )
    assert finished == {future1, future2}
    assert pending == {future3}


def test_first_exception_some_already_complete(executor):
    future1 = executor.submit(divmod, 21, 0)
    future2 = executor.submit(time.sleep, 1.5)
    finished, pending = futures.wait(
        [SUCCESSFUL_FUTURE, CANCELLED_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, future1, future2],
        return_when=futures.FIRST_EXCEPTION,
    )
    assert finished == {SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, future1}
    assert pending == {CANCELLED_FUTURE, future2}


def test_first_exception_one_already_failed(executor):
    future1 = executor.submit(time.sleep, 1)
    finished, pending = futures.wait(
        [EXCEPTION_FUTURE, future1], return_when=futures.FIRST_EXCEPTION
    )
    assert finished == {EXCEPTION_FUTURE}
    assert pending == {future1}


def test_all_completed(executor):
    future1 = executor.submit(divmod, 2, 0)
    future2 = executor.submit(mul, 2, 21)
    fs = [SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, future1, future2]
    finished, pending = futures.wait(fs, return_when=futures.ALL_COMPLETED)
    assert finished == set(fs) and pending == set()


def test_timeout(executor):
    short = 0.050
    future = executor.submit(time.sleep, short * 10)
    finished, pending = futures.wait(
        [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE, future],
        timeout=short,
        return_when=futures.ALL_COMPLETED,
    )
    assert finished == {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE}
    assert pending == {future}


def test_pending_calls_race(executor):
    event = threading.Event()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        fs = {executor.submit(event.wait) for _ in range(100)}
        event.set()
        futures.wait(fs, return_when=futures.ALL_COMPLETED)
    finally:
        sys.setswitchinterval(old)
    assert all(f.result() for f in fs)


# ------------------------------------------------------------------ test_as_completed.py


def test_no_timeout(executor):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(mul, 7, 6)
    fs = [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE, future1, future2]
    assert set(futures.as_completed(fs)) == set(fs)


def test_future_times_out(executor):
    already = {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE}
    short = 0.100
    for timeout in (0, short):
        completed = set()
        future = executor.submit(time.sleep, short * 10)
        try:
            for f in futures.as_completed(already | {future}, timeout):
                completed.add(f)
        except futures.TimeoutError:
            pass
        assert completed == already


def test_duplicate_futures(executor):
    future1 = executor.submit(time.sleep, 0.5)
    completed = list(futures.as_completed(itertools.repeat(future1, 3)))
    assert len(completed) == 1


def test_free_reference_yielded_future(impl):
    cls = Future if impl.name == "original" else chanpool.Future
    fs = [cls() for _ in range(8)]
    fs.append(create_future(state=CANCELLED_AND_NOTIFIED))
    fs.append(create_future(state=FINISHED, result=42))
    with pytest.raises(futures.TimeoutError):
        for future in futures.as_completed(fs, timeout=0):
            fs.remove(future)
            wr = weakref.ref(future)
            del future
            gc.collect()
            assert wr() is None
    fs[0].set_result("test")
    for future in futures.as_completed(fs):
        fs.remove(future)
        wr = weakref.ref(future)
        del future
        gc.collect()
        assert wr() is None
        if fs:
            fs[0].set_result("test")


def test_correct_timeout_exception_msg(executor):
    fs = [CANCELLED_AND_NOTIFIED_FUTURE, PENDING_FUTURE, RUNNING_FUTURE, SUCCESSFUL_FUTURE]
    with pytest.raises(futures.TimeoutError) as cm:
        list(futures.as_completed(fs, timeout=0))
    assert str(cm.value) == "2 (of 4) futures unfinished"


# -------------------------------------------------------------------------- test_init.py

INITIALIZER_STATUS = "uninitialized"


def init(x):
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = x


def get_init_status():
    return INITIALIZER_STATUS


def init_fail():
    time.sleep(0.1)  # let some futures be scheduled
    raise ValueError("error in initializer")


def test_initializer(impl):
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = "uninitialized"
    ex = impl.executor(max_workers=2, initializer=init, initargs=("initialized",))
    try:
        for f in [ex.submit(get_init_status) for _ in range(2)]:
            assert f.result() == "initialized"
    finally:
        ex.shutdown()


@pytest.mark.difference("the initializer failure is logged on the 'chanpool' logger")
def test_failing_initializer(impl, caplog):
    logger = "concurrent.futures" if impl.name == "original" else "chanpool"
    caplog.set_level(logging.ERROR, logger=logger)
    ex = impl.executor(max_workers=2, initializer=init_fail)
    try:
        try:
            future = ex.submit(get_init_status)
        except futures.BrokenExecutor:
            pass
        else:
            with pytest.raises(futures.BrokenExecutor):
                future.result()
        deadline = time.monotonic() + 30
        while not ex._broken:
            assert time.monotonic() < deadline, "executor not broken"
            time.sleep(0.01)
        with pytest.raises(futures.BrokenExecutor):
            ex.submit(get_init_status)
    finally:
        ex.shutdown()
    output = [
        r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records if r.name == logger
    ]
    for r in caplog.records:
        if r.exc_info and not r.exc_text:
            output.append(logging.Formatter().formatException(r.exc_info))
    assert any("ValueError: error in initializer" in line for line in output), output
