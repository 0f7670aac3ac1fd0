"""The figures of bench/pubsub.py: result rows, tables, and the targets each is checked
against (issue 10's and the earlier ones). Nothing here measures; the runner is bench/pubsub.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from _pubsub_contenders import QT, SQT, added

#: Issue 10: chanpool against SimpleQueue+Thread, 1 subscriber (x1.0), 10 and 100 (x1.5), and the
#: publish loop's cost per message with 1 subscriber.
TARGET_VS_SQT = {1: 1.0, 10: 1.5, 100: 1.5}
#: The many-subscribers case (run with a tenth of the messages).
MANY_SUBS = 100
TARGET_PUBLISH_NS = 200.0
#: chanpool must beat the Queue+Thread pattern by this factor with 10 subscribers.
TARGET_VS_QT = 8.0
TARGET_SUBS = 10
#: chanpool's RSS growth for --topics subscriptions must stay below this share of the
#: Queue+Thread pattern's (one thread per subscription).
TARGET_MEMORY_SHARE = 0.5


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
    wakes_per_1k: Optional[float] = None  # the best run's voluntary switches per 1,000 messages

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
            "publish_ns": None if self.publish_ns is None else round(self.publish_ns, 1),
            "wakes_per_1k": self.wakes_per_1k,
            "note": self.note,
        }


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
        "wakes/1k msg",
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
                "-" if r.wakes_per_1k is None else f"{r.wakes_per_1k:.1f}",
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
