"""What every benchmark in bench/ shares: interleaved rounds, min and median, ratio tables.

A benchmark is a set of *cases*; each case has contenders (chanpool and its peers) and one
*anchor* (the Python peer the ratio is taken against). All contenders of a case run in the same
process, taking turns in a rotating order for ``rounds`` rounds, each after ``gc.collect()`` with
the previous result freed outside the clock. The table shows, per contender, the min and the
median time per operation and ``anchor time / contender time`` for both (above 1: faster than
the anchor). Nothing here asserts a speed: the machines are noisy; figures are for reading.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Runner = Callable[[], object]


@dataclass
class Stat:
    """Seconds per round for one contender."""

    times: list[float] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def time_once(fn: Runner) -> float:
    """Seconds taken by one ``fn()``, after a full collection; the result is freed untimed."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def rounds(runners: Mapping[str, Runner], repeat: int, warmup: int = 1) -> dict[str, Stat]:
    """``repeat`` timed rounds per runner (after ``warmup`` untimed ones), interleaved."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    stats = {name: Stat() for name in names}
    for i in range(max(1, repeat)):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            stats[name].times.append(time_once(runners[name]))
    return stats


@dataclass
class Case:
    """One measured case: per-contender stats, ``ops`` operations per round, an anchor name."""

    name: str
    ops: int
    anchor: str
    stats: dict[str, Stat]
    note: str = ""

    def rows(self) -> list[dict[str, Any]]:
        a = self.stats[self.anchor]
        out = []
        for who, s in self.stats.items():
            out.append(
                {
                    "case": self.name,
                    "contender": who,
                    "ops": self.ops,
                    "min_us": s.min / self.ops * 1e6,
                    "median_us": s.median / self.ops * 1e6,
                    "ratio_min": a.min / s.min if s.min > 0 else float("inf"),
                    "ratio_median": a.median / s.median if s.median > 0 else float("inf"),
                    "anchor": self.anchor,
                }
            )
        return out


def format_cases(cases: Iterable[Case]) -> str:
    """A plain-text table: us per op (min, median) and the ratios against each case's anchor."""
    header = ("case", "contender", "min us/op", "median us/op", "x anchor (min)", "(median)")
    lines: list[tuple[str, ...]] = [header]
    for case in cases:
        for i, r in enumerate(case.rows()):
            lines.append(
                (
                    case.name if i == 0 else "",
                    r["contender"] + (" (anchor)" if r["contender"] == case.anchor else ""),
                    f"{r['min_us']:.3f}",
                    f"{r['median_us']:.3f}",
                    f"{r['ratio_min']:.2f}x",
                    f"{r['ratio_median']:.2f}x",
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def environment() -> dict[str, Any]:
    """Where the figures come from."""
    import chanpool

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "chanpool": chanpool.__version__,
    }


def parser(doc: str | None, repeat: int = 5) -> argparse.ArgumentParser:
    """The options every benchmark takes: --repeat, --scale, --json."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    p.add_argument("--repeat", type=int, default=repeat, help="timed rounds per contender")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    p.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    return p


def report(title: str, args: argparse.Namespace, cases: list[Case], started: float) -> None:
    """Prints the table (and writes --json): the one output format of bench/."""
    env = environment()
    print(
        f"{title} | chanpool {env['chanpool']} | {env['implementation']} {env['python']} | "
        f"{env['cpus']} CPUs | {args.repeat} interleaved rounds, scale {args.scale:g}"
    )
    print()
    print(format_cases(cases))
    print()
    for case in cases:
        if case.note:
            print(f"{case.name}: {case.note}")
    print("x anchor = anchor time / contender time (above 1: faster than the anchor).")
    print(f"Benchmark time: {time.perf_counter() - started:.1f} s")
    if args.json:
        data = {
            "environment": env,
            "repeat": args.repeat,
            "scale": args.scale,
            "rows": [r for c in cases for r in c.rows()],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        print(f"Wrote {args.json}")


def scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))
