"""chanpool.PubSub vs the Queue+Thread pattern, blinker and pyee, in one run.

    python bench/pubsub.py [--n 100000] [--repeat 5] [--topics 1000] [--json FILE]

Throughput: one topic, 1 and 10 subscribers whose handlers do nothing, ``--n`` messages. The clock
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
shown too. "threads" is how many OS threads the process had beyond those it had before the run,
counted (/proc/self/task) when the last message had been published.

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
import importlib
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
from typing import Any, Callable, Dict, List, Optional, Tuple

import chanpool

TOPIC = "bench.events"
QT = "Queue+Thread"
SQT = "SimpleQueue+Thread"
#: Issue 10: chanpool against SimpleQueue+Thread, 1 subscriber (x1.0) and 10 (x1.5), and the
#: publish loop's cost per message with 1 subscriber.
TARGET_VS_SQT = {1: 1.0, 10: 1.5}
TARGET_PUBLISH_NS = 200.0
#: chanpool must beat the Queue+Thread pattern by this factor with 10 subscribers.
TARGET_VS_QT = 8.0
TARGET_SUBS = 10
#: chanpool's RSS growth for --topics subscriptions must stay below this share of the
#: Queue+Thread pattern's (one thread per subscription).
TARGET_MEMORY_SHARE = 0.5

Handler = Callable[[Any], None]


def optional_module(name: str) -> Optional[ModuleType]:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def os_threads() -> Optional[int]:
    """OS threads in this process (Linux), None where /proc is not available."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def proc_status_kib(key: str) -> Optional[int]:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), None where it is not available."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def make_noop() -> Handler:
    """A distinct do-nothing handler (same code, new function object)."""

    def noop(_: Any) -> None:
        return None

    return noop


def make_counter() -> Tuple[Handler, List[int]]:
    count = [0]

    def handler(_: Any) -> None:
        count[0] += 1

    return handler, count


def settle_threads(base: Optional[int], timeout: float = 1.0) -> None:
    """Waits (untimed) until threads of earlier runs have exited: Thread.join() returns a little
    before the OS thread is gone, and a leftover would be counted in the next run."""
    deadline = time.monotonic() + timeout
    while base is not None and time.monotonic() < deadline:
        now = os_threads()
        if now is None or now <= base:
            return
        time.sleep(0.001)


def added(before: Optional[int], after: Optional[int]) -> Optional[int]:
    return None if before is None or after is None else after - before


class WrongCount(RuntimeError):
    """A contender lost, duplicated or failed deliveries."""


@dataclass
class Run:
    seconds: float
    threads: Optional[int]
    #: Time spent in the publish loop alone (until the last publish returned).
    publish_seconds: Optional[float] = None


# --- the contenders -----------------------------------------------------------------------


def run_chanpool(k: int, n: int, max_workers: Optional[int] = None) -> Run:
    before = os_threads()
    bus = chanpool.PubSub(max_workers=max_workers)
    try:
        subs = [bus.subscribe(TOPIC, make_noop()) for _ in range(k)]
        publish = bus.publish
        gc.collect()
        start = time.perf_counter()
        for i in range(n):
            publish(TOPIC, i)
        published = time.perf_counter() - start
        threads = os_threads()
        bus.close(drain=True)
        seconds = time.perf_counter() - start
    finally:
        bus.close(drain=False)
    for s in subs:
        st = s.stats()
        if (st["delivered"], st["dropped"], st["errors"], st["pending"]) != (n, 0, 0, 0):
            raise WrongCount(f"chanpool subscription stats {st}, expected {n} delivered")
    return Run(seconds, added(before, threads), published)


_STOP = object()


def run_queue_thread(k: int, n: int, kind: Callable[[], Any] = queue.Queue) -> Run:
    """One ``kind()`` queue (queue.Queue, or queue.SimpleQueue: issue 10's peer) and one thread
    per subscriber."""
    before = os_threads()
    queues: List[Any] = [kind() for _ in range(k)]
    counts = [0] * k

    def consume(idx: int, q: Any, handler: Handler) -> None:
        get = q.get
        c = 0
        while True:
            item = get()
            if item is _STOP:
                break
            handler(item)
            c += 1
        counts[idx] = c

    workers = [
        threading.Thread(target=consume, args=(i, q, make_noop()), daemon=True)
        for i, q in enumerate(queues)
    ]
    for w in workers:
        w.start()
    puts = [q.put for q in queues]
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        for put in puts:
            put(i)
    published = time.perf_counter() - start
    threads = os_threads()
    for put in puts:
        put(_STOP)
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    if counts != [n] * k:
        raise WrongCount(f"Queue+Thread consumers handled {counts}, expected {n} each")
    return Run(seconds, added(before, threads), published)


def run_blinker(
    blinker: ModuleType, k: int, n: int, handlers: Optional[List[Handler]] = None
) -> Run:
    before = os_threads()
    signal = blinker.Signal()
    for h in handlers if handlers is not None else [make_noop() for _ in range(k)]:
        signal.connect(h, weak=False)
    if len(signal.receivers) != k:
        raise WrongCount(f"blinker has {len(signal.receivers)} receivers, expected {k}")
    send = signal.send
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        send(i)
    threads = os_threads()
    seconds = time.perf_counter() - start
    return Run(seconds, added(before, threads))


def run_pyee(pyee: ModuleType, k: int, n: int, handlers: Optional[List[Handler]] = None) -> Run:
    before = os_threads()
    emitter = pyee.EventEmitter()
    for h in handlers if handlers is not None else [make_noop() for _ in range(k)]:
        emitter.on(TOPIC, h)
    if len(emitter.listeners(TOPIC)) != k:
        raise WrongCount(f"pyee has {len(emitter.listeners(TOPIC))} listeners, expected {k}")
    emit = emitter.emit
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        emit(TOPIC, i)
    threads = os_threads()
    seconds = time.perf_counter() - start
    return Run(seconds, added(before, threads))


def check_sync(runner: Callable[..., Run], k: int, n: int) -> None:
    """Untimed: with counting handlers, every handler must see every message exactly once."""
    counters = [make_counter() for _ in range(k)]
    runner(k, n, [h for h, _ in counters])
    got = [c[0] for _, c in counters]
    if got != [n] * k:
        raise WrongCount(f"handlers received {got}, expected {n} each")


# --- throughput -------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    subscribers: int
    n: int
    contender: str
    seconds: Optional[float] = None
    median: Optional[float] = None  # median seconds over the runs, to show the spread
    threads: Optional[int] = None
    note: str = ""
    baseline: Optional[float] = None  # the Queue+Thread seconds for the same case
    publish_seconds: Optional[float] = None  # the best run's publish loop

    @property
    def publish_ns(self) -> Optional[float]:
        """Nanoseconds per publish call (per message, whatever the subscribers)."""
        if self.publish_seconds is None:
            return None
        return self.publish_seconds / self.n * 1e9

    @property
    def deliveries_per_s(self) -> Optional[float]:
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.subscribers * self.n / self.seconds

    @property
    def ratio(self) -> Optional[float]:
        if self.seconds is None or self.baseline is None or self.seconds <= 0:
            return None
        return self.baseline / self.seconds

    def as_dict(self) -> Dict[str, Any]:
        dps = self.deliveries_per_s
        ratio = self.ratio
        return {
            "case": self.case,
            "subscribers": self.subscribers,
            "messages": self.n,
            "contender": self.contender,
            "ms": None if self.seconds is None else round(self.seconds * 1e3, 3),
            "median_ms": None if self.median is None else round(self.median * 1e3, 3),
            "deliveries_per_s": None if dps is None else round(dps),
            "ratio_vs_queue_thread": None if ratio is None else round(ratio, 3),
            "threads": self.threads,
            "note": self.note,
        }


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
            row.median = statistics.median(all_times[name])
        if name in errors:
            row.seconds = None
            row.note = "WRONG COUNT: " + errors[name]
    return list(rows.values())


def fmt_rate(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.0f}k"


def format_grid(header: Tuple[str, ...], lines: List[Tuple[str, ...]]) -> str:
    grid = [header, *lines]
    widths = [max(len(line[i]) for line in grid) for i in range(len(header))]
    out = []
    for j, line in enumerate(grid):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=False))
        ]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_throughput(rows: List[Row]) -> str:
    header = (
        "case",
        "contender",
        "threads",
        "ms",
        "deliveries/s",
        "vs Queue+Thread",
        "median ms",
        "publish ns/msg",
    )
    lines: List[Tuple[str, ...]] = []
    for r in rows:
        ratio = r.ratio
        lines.append(
            (
                r.case,
                r.contender,
                "-" if r.threads is None else str(r.threads),
                "-" if r.seconds is None else f"{r.seconds * 1e3:.1f}",
                fmt_rate(r.deliveries_per_s),
                "-" if ratio is None else f"{ratio:.2f}x",
                "-" if r.median is None else f"{r.median * 1e3:.1f}",
                "-" if r.publish_ns is None else f"{r.publish_ns:.0f}",
            )
        )
    return format_grid(header, lines)


@dataclass
class Target:
    name: str
    measured: str
    status: str  # PASS, MISS or n/a

    def as_dict(self) -> Dict[str, str]:
        return {"target": self.name, "measured": self.measured, "status": self.status}


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def throughput_targets(rows: List[Row], tuned: Optional[str]) -> List[Target]:
    at = {r.contender: r for r in rows if r.subscribers == TARGET_SUBS}
    cp, pe = at.get("chanpool"), at.get("pyee (sync)")
    broken = cp is not None and bool(cp.note)  # a wrong delivery count fails both targets
    ratio = None if cp is None else cp.ratio
    mine = None if cp is None else cp.deliveries_per_s
    theirs = None if pe is None else pe.deliveries_per_s
    out = [
        Target(
            f"chanpool >= {TARGET_VS_QT:g}x {QT}, {TARGET_SUBS} subscribers",
            "-" if ratio is None else f"{ratio:.2f}x",
            "MISS" if broken else verdict(None if ratio is None else ratio >= TARGET_VS_QT),
        ),
        Target(
            f"chanpool deliveries/s >= pyee's synchronous emit, {TARGET_SUBS} subscribers",
            f"{fmt_rate(mine)}/s vs {fmt_rate(theirs)}/s",
            "MISS"
            if broken
            else verdict(None if mine is None or theirs is None else mine >= theirs),
        ),
    ]
    for k, factor in TARGET_VS_SQT.items():
        case = {r.contender: r for r in rows if r.subscribers == k}
        c, q = case.get("chanpool"), case.get(SQT)
        vs = None
        if c is not None and q is not None and c.seconds and q.seconds:
            vs = q.seconds / c.seconds
        out.append(
            Target(
                f"chanpool >= {factor:g}x {SQT}, {k} subscriber(s) (issue 10)",
                "-" if vs is None else f"{vs:.2f}x",
                "MISS"
                if c is not None and c.note
                else verdict(None if vs is None else vs >= factor),
            )
        )
    one = {r.contender: r for r in rows if r.subscribers == 1}.get("chanpool")
    ns = None if one is None else one.publish_ns
    out.append(
        Target(
            f"chanpool publish <= {TARGET_PUBLISH_NS:g} ns/msg, 1 subscriber (issue 10)",
            "-" if ns is None else f"{ns:.0f} ns",
            verdict(None if ns is None else ns <= TARGET_PUBLISH_NS),
        )
    )
    t = at.get(tuned) if tuned else None
    if t is not None and t.ratio is not None and theirs is not None:
        dps = t.deliveries_per_s or 0.0
        out.append(
            Target(
                f"{tuned}, the same two",
                f"{t.ratio:.2f}x ({verdict(t.ratio >= TARGET_VS_QT)}), "
                f"{fmt_rate(dps)}/s ({verdict(dps >= theirs)})",
                "info",
            )
        )
    return out


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


LABELS = {"chanpool": "chanpool", "queue_thread": QT}


def format_memory(results: List[Dict[str, Any]]) -> str:
    header = (
        "case",
        "contender",
        "OS threads",
        "RSS growth",
        "per sub",
        "peak RSS growth",
        "subscribe+deliver ms",
    )
    lines: List[Tuple[str, ...]] = []
    for r in results:
        case = f"{r.get('subscriptions', '?')} topics x {r.get('messages_per_topic', '?')} msg"
        label = LABELS.get(r["contender"], r["contender"])
        if "error" in r:
            lines.append((case, label, "-", "-", "-", "-", r["error"]))
            continue
        rss, hwm = r["rss_growth_kib"], r["hwm_growth_kib"]
        lines.append(
            (
                case,
                label,
                "-" if r["threads_peak"] is None else str(r["threads_peak"]),
                "-" if rss is None else f"{rss / 1024:.1f} MiB",
                "-" if rss is None else f"{rss / r['subscriptions']:.1f} KiB",
                "-" if hwm is None else f"{hwm / 1024:.1f} MiB",
                f"{r['ms']:.1f}",
            )
        )
    return format_grid(header, lines)


def memory_targets(results: List[Dict[str, Any]]) -> List[Target]:
    out = []
    by_case: Dict[Tuple[int, int], Dict[str, Dict[str, Any]]] = {}
    for r in results:
        if "error" not in r:
            key = (r["subscriptions"], r["messages_per_topic"])
            by_case.setdefault(key, {})[r["contender"]] = r
    for (topics, per), case in sorted(by_case.items()):
        for r in case.values():
            if r["delivered"] != r["expected"]:
                out.append(
                    Target(
                        f"{LABELS[r['contender']]} delivered everything ({topics} x {per})",
                        f"{r['delivered']} of {r['expected']}",
                        "MISS",
                    )
                )
        cp, qt = case.get("chanpool"), case.get("queue_thread")
        if cp is None or qt is None:
            continue
        mine, theirs = cp["rss_growth_kib"], qt["rss_growth_kib"]
        ok_mem = mine is not None and theirs is not None and mine <= TARGET_MEMORY_SHARE * theirs
        threads = added(cp["threads_before"], cp["threads_peak"])
        out.append(
            Target(
                f"{topics} x {per}: chanpool RSS growth <= {TARGET_MEMORY_SHARE:.0%} of {QT}'s",
                f"{'-' if mine is None else f'{mine / 1024:.1f}'} vs "
                f"{'-' if theirs is None else f'{theirs / 1024:.1f}'} MiB, "
                f"{'-' if threads is None else threads} vs "
                f"{added(qt['threads_before'], qt['threads_peak'])} threads added",
                verdict(None if mine is None else ok_mem),
            )
        )
    return out


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
    for k in (1, TARGET_SUBS):
        print(f"  1 topic, {k} subscriber(s) ...", file=sys.stderr)
        report.rows += throughput(
            k, args.n, args.repeat, args.tuned_workers, blinker, pyee, base_threads
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
