"""Concurrency: many producers, exact accounting, bounded queues, and GIL-deadlock scenarios.

Scenarios that could deadlock *while holding the GIL* run in a subprocess: a thread stuck in
native code with the GIL would freeze any in-process watchdog too, whereas a child process can
simply be killed (and dumps its stacks via faulthandler first).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from helpers import assert_clean_exit, exact, run_py, settled, wait_until, watchdog


def mul(x, y):
    return x * y


# -------------------------------------------------------------------------- many producers


@pytest.mark.parametrize("queue_size", [0, 16])
def test_many_producers_exact_sums_and_stats(make_pool, queue_size):
    rounds, n_threads, per_thread = 20, 8, 250
    for _round in range(rounds):
        p = make_pool(4, queue_size=queue_size)
        start = threading.Barrier(n_threads)
        futures = [None] * n_threads
        errors = []

        def producer(k, p=p, start=start, futures=futures, errors=errors):
            try:
                start.wait()
                futures[k] = [p.submit(mul, k, i) for i in range(per_thread)]
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        assert errors == []
        total = sum(f.result(timeout=60) for fs in futures for f in fs)
        assert total == sum(k * i for k in range(n_threads) for i in range(per_thread))
        watchdog(lambda p=p: p.shutdown(wait=True))
        n = n_threads * per_thread
        exact(p, submitted=n, completed=n, failed=0, cancelled=0, workers=0, queued=0, running=0)


def test_bounded_queue_many_producers_nothing_lost(make_pool):
    for _round in range(20):
        p = make_pool(3, queue_size=4)
        n_threads, per_thread = 6, 200
        got = []
        lock = threading.Lock()

        def record(x, lock=lock, got=got):
            with lock:
                got.append(x)

        start = threading.Barrier(n_threads)
        returned = []

        def producer(k, p=p, start=start, per_thread=per_thread, returned=returned):
            start.wait()
            fs = []
            for i in range(per_thread):
                fs.append(p.submit(record, (k, i)))
                # Bounded: the queue can never hold more than queue_size jobs.
                assert p.stats()["queued"] <= 4
            returned.append(fs)

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        assert len(returned) == n_threads
        watchdog(lambda p=p: p.shutdown(wait=True))
        assert Counter(got) == Counter((k, i) for k in range(n_threads) for i in range(per_thread))
        # Nothing lost, nothing run twice, per producer too.
        for k in range(n_threads):
            mine = [i for (kk, i) in got if kk == k]
            assert sorted(mine) == list(range(per_thread))
        n = n_threads * per_thread
        exact(p, submitted=n, completed=n, failed=0, cancelled=0, workers=0, queued=0)


def test_try_submit_many_producers_counts(make_pool):
    for _round in range(10):
        p = make_pool(2, queue_size=2)
        accepted = [0] * 4
        refused = [0] * 4
        start = threading.Barrier(4)

        def producer(k, p=p, start=start, accepted=accepted, refused=refused):
            start.wait()
            for i in range(300):
                f = p.try_submit(mul, i, 1)
                if f is None:
                    refused[k] += 1
                else:
                    accepted[k] += 1

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        watchdog(lambda p=p: p.shutdown(wait=True))
        assert sum(accepted) + sum(refused) == 1200
        exact(p, submitted=sum(accepted), completed=sum(accepted), failed=0, cancelled=0)


def test_concurrent_maps_on_one_pool(make_pool):
    p = make_pool(4)
    errors = []

    def consumer(k):
        try:
            for chunksize in (1, 3, 17):
                for buffersize in (None, 2):
                    a = range(k, k + 500)
                    b = range(0, 300 + k)
                    got = list(p.map(mul, a, b, chunksize=chunksize, buffersize=buffersize))
                    assert got == list(map(mul, a, b))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=consumer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert errors == []
    watchdog(lambda: p.shutdown(wait=True))
    n = sum(min(500, 300 + k) for k in range(6)) * 6
    exact(p, submitted=n, completed=n, failed=0, cancelled=0)


def test_mixed_submit_map_and_failures_books_balance(make_pool):
    p = make_pool(3)

    def f(i):
        if i % 7 == 0:
            raise ValueError(i)
        return i

    def producer(k):
        fs = [p.submit(f, i) for i in range(k, 400, 4)]
        it = p.map(f, range(k, 400, 4), chunksize=5)
        out = []
        try:
            for x in it:
                out.append(x)
        except ValueError:
            pass
        for fu in fs:
            fu.exception(timeout=60)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    watchdog(lambda: p.shutdown(wait=True))
    s = settled(p)
    # The 400 submitted tasks all ran (57 of them fail); map items after a failure may be cancelled.
    assert s["failed"] >= 58 and s["completed"] >= 400 - 58


# ------------------------------------------------------------------ draining under one GIL hold


def test_drains_many_jobs_per_gil_hold(make_pool):
    p = make_pool(1)
    gate = threading.Event()
    started = threading.Event()

    def blocker():
        started.set()
        return gate.wait(30)

    first = p.submit(blocker)
    assert started.wait(30)
    fs = [p.submit(mul, i, 1) for i in range(1000)]
    gate.set()
    assert fs[-1].result(timeout=30) == 999
    assert first.result() is True
    s = p.stats()
    assert s["completed"] == 1001
    # The worker found the queue empty (and blocked, releasing the GIL) at most a few times:
    # it ran the 1000 queued jobs back to back.
    assert s["waits"] <= 3, s
    watchdog(lambda: p.shutdown(wait=True))
    exact(p, submitted=1001, completed=1001, workers=0)


def test_stats_running_and_idle(make_pool):
    p = make_pool(3)
    gate = threading.Event()
    try:
        fs = [p.submit(gate.wait, 30) for _ in range(2)]
        wait_until(lambda: p.stats()["running"] == 2, what="two running tasks")
        s = p.stats()
        assert s["running"] == 2 and s["queued"] == 0 and s["workers"] == 2
    finally:
        gate.set()
    for f in fs:
        f.result(timeout=30)
    wait_until(lambda: p.stats()["idle"] == 2, what="both workers idle")
    exact(p, running=0, idle=2, workers=2, completed=2)


# ------------------------------------------------------------------------ tasks using the pool


def test_tasks_submit_to_their_own_pool(make_pool):
    p = make_pool(4)

    def fan(depth):
        if depth == 0:
            return 1
        s = p.stats()
        assert s["workers"] <= 4
        kids = [p.submit(fan, depth - 1) for _ in range(2)]
        return kids

    # Tasks submit more tasks (without waiting on them inside the pool).
    pending = [p.submit(fan, 6)]
    leaves = 0
    while pending:
        f = pending.pop()
        r = f.result(timeout=60)
        if r == 1:
            leaves += 1
        else:
            pending.extend(r)
    assert leaves == 2**6
    watchdog(lambda: p.shutdown(wait=True))
    n = 2**7 - 1
    exact(p, submitted=n, completed=n, failed=0)


def test_tasks_wait_on_subtasks(make_pool):
    p = make_pool(4)

    def chain(n):
        if n == 0:
            return 0
        return p.submit(chain, n - 1).result(timeout=60) + 1

    assert watchdog(lambda: p.submit(chain, 3).result(timeout=60)) == 3
    watchdog(lambda: p.shutdown(wait=True))
    exact(p, submitted=4, completed=4)


GIL_PRELUDE = """
import threading, chanpool
def spin(n):
    t = 0
    for i in range(n):
        t += i
    return t
"""


def test_gil_submit_on_full_queue_while_workers_need_gil():
    proc = run_py(
        GIL_PRELUDE
        + """
p = chanpool.WorkerPool(2, queue_size=2)
fs = [p.submit(spin, 300) for _ in range(3000)]   # blocks on the full queue again and again
assert [f.result() for f in fs] == [spin(300)] * 3000
p.shutdown()
s = p.stats()
assert s["submitted"] == s["completed"] == 3000, s
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


def test_gil_many_threads_submit_on_full_queue():
    proc = run_py(
        GIL_PRELUDE
        + """
p = chanpool.WorkerPool(2, queue_size=1)
out = []
def producer(k):
    out.append(sum(f.result() for f in [p.submit(spin, 100 + k) for _ in range(400)]))
ts = [threading.Thread(target=producer, args=(k,)) for k in range(6)]
for t in ts: t.start()
for t in ts: t.join()
assert sorted(out) == sorted(400 * spin(100 + k) for k in range(6)), out
p.shutdown()
s = p.stats()
assert s["submitted"] == s["completed"] == 2400, s
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


def test_gil_lazy_map_on_full_queue():
    proc = run_py(
        GIL_PRELUDE
        + """
p = chanpool.WorkerPool(2, queue_size=1)
# buffersize larger than the queue: topping up the buffer blocks on the full queue.
assert list(p.map(spin, range(2000), buffersize=8)) == [spin(i) for i in range(2000)]
assert list(p.map(spin, range(2000), chunksize=5, buffersize=8)) == [spin(i) for i in range(2000)]
# An eager map on a tiny queue: its runners fit or wait.
assert list(p.map(spin, range(2000), chunksize=3)) == [spin(i) for i in range(2000)]
p.shutdown()
s = p.stats()
assert s["submitted"] == s["completed"] == 6000, s
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


def test_gil_shutdown_wait_while_tasks_run_python():
    proc = run_py(
        GIL_PRELUDE
        + """
for _ in range(10):
    p = chanpool.WorkerPool(2)
    fs = [p.submit(spin, 20000) for _ in range(20)]
    p.shutdown(wait=True)   # must let the workers have the GIL while it waits
    assert all(f.done() for f in fs)
    s = p.stats()
    assert s["completed"] == 20 and s["workers"] == 0, s
    # Same while a Python thread is busy too.
    q = chanpool.WorkerPool(2)
    stop = threading.Event()
    def busy():
        while not stop.is_set():
            spin(1000)
    t = threading.Thread(target=busy); t.start()
    fs = [q.submit(spin, 5000) for _ in range(20)]
    q.shutdown(wait=True)
    stop.set(); t.join()
    assert all(f.done() for f in fs)
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


def test_gil_task_submits_into_another_full_pool():
    proc = run_py(
        GIL_PRELUDE
        + """
a = chanpool.WorkerPool(1)
b = chanpool.WorkerPool(1, queue_size=1)
def feeder():
    # Blocks on b's full queue from inside a worker of a: b's worker needs the GIL meanwhile.
    fs = [b.submit(spin, 200) for _ in range(1000)]
    return sum(f.result() for f in fs)
assert a.submit(feeder).result() == 1000 * spin(200)
a.shutdown(); b.shutdown()
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


def test_gil_tasks_use_their_own_pool():
    proc = run_py(
        GIL_PRELUDE
        + """
p = chanpool.WorkerPool(3, queue_size=4)
subtasks = []
def task(i):
    s = p.stats()
    assert s["workers"] <= 3
    f = p.try_submit(spin, i)          # never blocks, even on the full queue
    if f is not None:
        subtasks.append((i, f))        # not waited on here: that could starve the pool
    return True
assert all(p.map(task, range(500), chunksize=2))
fs = [p.submit(task, i) for i in range(500)]
assert all(f.result() for f in fs)
assert all(f.result() == spin(i) for i, f in subtasks)
p.shutdown()
s = p.stats()
n = 1000 + len(subtasks)
assert s["submitted"] == s["completed"] == n, (s, n)
assert s["failed"] == 0 and s["cancelled"] == 0, s
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")


def test_gil_result_waits_from_many_threads():
    proc = run_py(
        GIL_PRELUDE
        + """
p = chanpool.WorkerPool(2)
gate = threading.Event()
blocker = p.submit(gate.wait, 30)
fs = [p.submit(spin, 100) for _ in range(200)]
results = []
def waiter(k):
    results.append(sum(f.result() for f in fs[k::4]))
ts = [threading.Thread(target=waiter, args=(k,)) for k in range(4)]
for t in ts: t.start()
gate.set()
for t in ts: t.join()
assert sum(results) == 200 * spin(100)
p.shutdown()
print("ok")
"""
    )
    assert_clean_exit(proc, "ok")
