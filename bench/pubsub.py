"""chanpool.PubSub vs the Queue+Thread pattern, blinker and pyee, in one run.

    python bench/pubsub.py [--n 100000] [--repeat 5] [--topics 1000] [--json FILE]

Throughput: one topic, 1, 10 and 100 subscribers whose handlers do nothing, ``--n`` messages
(``--n`` / 10 with 100 subscribers, so that every case makes about as many deliveries). The clock
runs from the first publish until every subscriber has received every message.

a) chanpool.PubSub with its defaults: publish all, then ``bus.close(drain=True)``, which returns
   once every queued message was handled; each subscription's ``stats()`` must then show exactly
   n delivered, none dropped, no errors. A second chanpool row (information only) sizes the
   dispatch pool to the CPU count (``--tuned-workers``).
b) the Python pattern: one unbounded queue.Queue and one threading.Thread per subscriber; the
   publisher puts every message into every queue, each thread calls its handler; a sentinel stops
   the threads and the clock stops when all are joined. Threads start before the clock. Each
   thread counts what it took off its queue (the count is checked).
c) blinker ``Signal.send`` and d) pyee ``EventEmitter.emit``: synchronous dispatch, the handlers
   run inline in the publisher. The timed runs use no-op handlers; an untimed pass with counting
   handlers checks that every handler receives every message once.

Every subscriber gets its own function object (blinker and pyee ignore a second connection of
the same function). Each contender sets up outside the clock (chanpool's dispatch threads are the
exception: a PubSub starts them on demand, so within the clock), ``gc.collect()`` runs just
before the clock starts, contenders take turns in a rotating order, and everything a run built
is freed before the next one. The figure kept is the best of ``--repeat`` runs; the median is
shown too. "wakes/1k msg" is the process's voluntary context switches per 1,000 messages (each
a thread that slept and had to be woken). "threads" is how many OS threads the process had
beyond those it had before the run, counted (/proc/self/task) when the last message had been
published.

Memory: ``--topics`` subscriptions on as many distinct topics, one message per topic (and a
variant with 10), for chanpool (default PubSub) and for the Queue+Thread pattern (one thread per
subscription). Each measurement runs in a fresh interpreter, so that memory freed by earlier
runs cannot hide growth; it reports VmRSS growth (and VmHWM, the peak) from /proc/self/status
between just before the subscriptions are made and just after every message was handled, with
every subscription still live, and the most OS threads seen meanwhile.

This is a report, not a test: the exit status is 0 whether targets are met or missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional

import chanpool
from _pubsub_contenders import (
    _STOP,
    QT,
    SQT,
    Handler,
    Run,
    WrongCount,
    added,
    check_sync,
    make_noop,
    optional_module,
    os_threads,
    proc_status_kib,
    run_blinker,
    run_chanpool,
    run_pyee,
    run_queue_thread,
    settle_threads,
)
from _pubsub_report import (
    MANY_SUBS,
    TARGET_SUBS,
    Row,
    Target,
    format_memory,
    format_throughput,
    memory_targets,
    throughput_targets,
)


def contenders(
    k: int, n: int, tuned_workers: int, blinker: Optional[ModuleType], pyee: Optional[ModuleType]
) -> Dict[str, Callable[[], Run]]:
    runners: Dict[str, Callable[[], Run]] = {
        "chanpool": lambda: run_chanpool(k, n),
        QT: lambda: run_queue_thread(k, n),
        SQT: lambda: run_queue_thread(k, n, queue.SimpleQueue),
    }
    if tuned_workers > 0:
        runners[f"chanpool max_workers={tuned_workers}"] = lambda: run_chanpool(k, n, tuned_workers)
    if blinker is not None:
        runners["blinker (sync)"] = lambda: run_blinker(blinker, k, n)
    if pyee is not None:
        runners["pyee (sync)"] = lambda: run_pyee(pyee, k, n)
    return runners


def throughput(
    k: int,
    n: int,
    repeat: int,
    tuned_workers: int,
    blinker: Optional[ModuleType],
    pyee: Optional[ModuleType],
    base_threads: Optional[int],
) -> List[Row]:
    case = f"1 topic, {k} sub{'s' if k != 1 else ''}"
    runners = contenders(k, n, tuned_workers, blinker, pyee)
    names = list(runners)
    rows = {name: Row(case, k, n, name) for name in names}
    errors: Dict[str, str] = {}

    # Untimed: the synchronous contenders' deliveries are counted once with counting handlers.
    sync_checks: Dict[str, Callable[[], None]] = {}
    if blinker is not None:
        sync_checks["blinker (sync)"] = lambda: check_sync(
            lambda *a: run_blinker(blinker, *a), k, min(n, 10_000)
        )
    if pyee is not None:
        sync_checks["pyee (sync)"] = lambda: check_sync(
            lambda *a: run_pyee(pyee, *a), k, min(n, 10_000)
        )
    for name, check in sync_checks.items():
        try:
            check()
        except WrongCount as e:
            errors[name] = str(e)

    best: Dict[str, Run] = {}
    all_times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(max(1, repeat)):
        j = i % len(names)
        for name in names[j:] + names[:j]:
            if name in errors:
                continue
            settle_threads(base_threads)
            try:
                run = runners[name]()
            except WrongCount as e:
                errors[name] = str(e)
                continue
            all_times[name].append(run.seconds)
            if name not in best or run.seconds < best[name].seconds:
                best[name] = run
            del run
            gc.collect()

    baseline = best[QT].seconds if QT in best else None
    for name, row in rows.items():
        row.baseline = baseline
        if name in best:
            row.seconds, row.threads = best[name].seconds, best[name].threads
            row.publish_seconds = best[name].publish_seconds
            row.wakes_per_1k = best[name].wakes_per_1k
            row.median = statistics.median(all_times[name])
        if name in errors:
            row.seconds = None
            row.note = "WRONG COUNT: " + errors[name]
    return list(rows.values())


# --- memory (each measurement in a fresh interpreter) --------------------------------------------


def memory_child(kind: str, topics: int, per_topic: int) -> Dict[str, Any]:
    """Runs in a subprocess: ``topics`` subscriptions, ``per_topic`` messages each."""
    names = [f"bench.t{i}" for i in range(topics)]
    total = topics * per_topic
    gc.collect()
    rss0, hwm0, threads0 = proc_status_kib("VmRSS"), proc_status_kib("VmHWM"), os_threads()
    peak_threads = threads0
    start = time.perf_counter()

    def sample() -> None:
        nonlocal peak_threads
        t = os_threads()
        if t is not None and (peak_threads is None or t > peak_threads):
            peak_threads = t

    stop: Callable[[], None]
    if kind == "chanpool":
        bus = chanpool.PubSub()
        subs = [bus.subscribe(name, make_noop()) for name in names]
        for j in range(per_topic):
            for name in names:
                bus.publish(name, j)
        while bus.stats()["delivered"] < total:
            sample()
            time.sleep(0.0005)
        delivered = sum(s.stats()["delivered"] for s in subs)

        def stop() -> None:
            bus.close(drain=True)

    elif kind == "queue_thread":
        queues: Dict[str, queue.Queue[Any]] = {name: queue.Queue() for name in names}
        counts = [0] * topics

        def consume(idx: int, q: Any, handler: Handler) -> None:
            get = q.get
            while True:
                item = get()
                if item is _STOP:
                    return
                handler(item)
                counts[idx] += 1

        workers = [
            threading.Thread(target=consume, args=(i, queues[name], make_noop()), daemon=True)
            for i, name in enumerate(names)
        ]
        for w in workers:
            w.start()
        for j in range(per_topic):
            for name in names:
                queues[name].put(j)
        while sum(counts) < total:
            sample()
            time.sleep(0.0005)
        delivered = sum(counts)

        def stop() -> None:
            for q in queues.values():
                q.put(_STOP)
            for w in workers:
                w.join()

    else:
        raise ValueError(kind)
    seconds = time.perf_counter() - start
    sample()
    gc.collect()
    rss1, hwm1 = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    stop()
    return {
        "contender": kind,
        "subscriptions": topics,
        "messages_per_topic": per_topic,
        "delivered": delivered,
        "expected": total,
        "ms": round(seconds * 1e3, 3),
        "rss_growth_kib": added(rss0, rss1),
        "hwm_growth_kib": added(hwm0, hwm1),
        "threads_before": threads0,
        "threads_peak": peak_threads,
    }


def measure_memory(kind: str, topics: int, per_topic: int) -> Dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", kind]
    cmd += [str(topics), str(per_topic)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return {"contender": kind, "error": "timed out"}
    if done.returncode != 0 or not done.stdout.strip():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"contender": kind, "error": f"exit {done.returncode}: {tail}"}
    result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- main -------------------------------------------------------------------------------------


@dataclass
class Report:
    environment: Dict[str, Any]
    rows: List[Row] = field(default_factory=list)
    targets: List[Target] = field(default_factory=list)
    memory: List[Dict[str, Any]] = field(default_factory=list)


def environment() -> Dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "chanpool": chanpool.__version__,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="messages per throughput run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender (best kept)")
    parser.add_argument(
        "--topics", type=int, default=1_000, help="subscriptions for the memory case (0: skip)"
    )
    parser.add_argument(
        "--tuned-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="max_workers of the extra chanpool row (0: skip it); default: CPU count",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        kind, topics, per = args.memory_child
        print(json.dumps(memory_child(kind, int(topics), int(per))))
        return 0

    blinker = optional_module("blinker")
    pyee = optional_module("pyee")
    for name, mod in (("blinker", blinker), ("pyee", pyee)):
        if mod is None:
            print(f"note: {name} is not installed; its rows are skipped (pip install {name})")

    report = Report(environment())
    env = report.environment
    print(
        f"chanpool {env['chanpool']} | {env['implementation']} {env['python']} | "
        f"{env['cpus']} CPUs | {args.n:,} messages | best of {args.repeat}"
    )
    start = time.perf_counter()
    base_threads = os_threads()
    for k in (1, TARGET_SUBS, MANY_SUBS):
        print(f"  1 topic, {k} subscriber(s) ...", file=sys.stderr)
        n = args.n if k < MANY_SUBS else max(1, args.n // 10)
        report.rows += throughput(
            k, n, args.repeat, args.tuned_workers, blinker, pyee, base_threads
        )
    tuned = f"chanpool max_workers={args.tuned_workers}" if args.tuned_workers > 0 else None
    report.targets += throughput_targets(report.rows, tuned)

    if args.topics > 0:
        for per in (1, 10):
            print(f"  memory: {args.topics:,} topics x {per} message(s) ...", file=sys.stderr)
            for kind in ("chanpool", "queue_thread"):
                report.memory.append(measure_memory(kind, args.topics, per))
        report.targets += memory_targets(report.memory)
    total = time.perf_counter() - start

    print()
    print(format_throughput(report.rows))
    print()
    print(
        f"ratio = {QT} ms / contender ms (higher is faster); deliveries = messages x subscribers."
    )
    print("blinker and pyee run the handlers inline in the publisher (not asynchronous).")
    print("ms, deliveries/s and ratio: best run; median ms: the median run, for the spread.")
    if report.memory:
        print()
        print(format_memory(report.memory))
        print()
        print(
            "OS threads: the most the process had (main thread included); RSS growth: VmRSS "
            "after every message was handled, subscriptions live, minus VmRSS before subscribing."
        )
    for r in report.rows:
        if r.note:
            print(f"{r.case} / {r.contender}: {r.note}")
    print()
    width = max(len(t.name) for t in report.targets)
    for t in report.targets:
        print(f"{t.status:>4}  {t.name.ljust(width)}  {t.measured}")
    print(f"\nBenchmark time: {total:.1f} s")

    if args.json:
        data = {
            "environment": env,
            "messages": args.n,
            "repeat": args.repeat,
            "seconds": round(total, 2),
            "rows": [r.as_dict() for r in report.rows],
            "memory": report.memory,
            "targets": [t.as_dict() for t in report.targets],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
