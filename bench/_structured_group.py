"""Group rows of bench/structured.py (issue 12).

Cases (trivial task = ``def f(x): return x``; ``--scale`` multiplies every size):

- Group vs the ThreadPoolExecutor idiom it replaces (submit a wrapper that skips once an Event is
  set and sets it on failure, ``wait(FIRST_EXCEPTION)``, cancel the rest): n tasks, 4 workers,
  none failing; the TPE idiom is the anchor.
- Per-task overhead: ``Group(pool=p).go`` + ``wait()`` vs a plain ``p.submit`` of the same
  calls + ``result()`` of each on the same chanpool WorkerPool (the anchor; the target is
  a Group at <= 2x its time, i.e. x anchor >= 0.5), and a Group on its own threads.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import threading

import _harness as h
from chanpool import Group, WorkerPool


def f(x: object) -> object:
    return x


def _tpe_idiom(tpe: cf.ThreadPoolExecutor, n: int) -> None:
    failed = threading.Event()

    def wrap(x: object) -> object:
        if failed.is_set():
            return None
        try:
            return f(x)
        except BaseException:
            failed.set()
            raise

    fs = [tpe.submit(wrap, i) for i in range(n)]
    done, rest = cf.wait(fs, return_when=cf.FIRST_EXCEPTION)
    for fut in rest:
        fut.cancel()
    cf.wait(rest)
    for fut in done:
        if not fut.cancelled() and fut.exception() is not None:
            raise fut.exception()  # type: ignore[misc]


def idiom_case(n: int, repeat: int) -> h.Case:
    tpe = cf.ThreadPoolExecutor(4)
    pool = WorkerPool(4)

    def group_on(p: WorkerPool | None, limit: int | None = None):  # type: ignore[no-untyped-def]
        def run() -> None:
            g = Group(pool=p, limit=limit)
            go = g.go
            for i in range(n):
                go(f, i)
            g.wait()

        return run

    stats = h.rounds(
        {
            "TPE + wait(FIRST_EXCEPTION) + Event": lambda: _tpe_idiom(tpe, n),
            "Group(pool=WorkerPool(4))": group_on(pool),
            "Group(), own threads": group_on(None),
            "Group(limit=4), own threads": group_on(None, 4),
        },
        repeat,
    )
    tpe.shutdown()
    pool.shutdown()
    return h.Case(
        f"errgroup {n:,} tasks, 4 workers", n, "TPE + wait(FIRST_EXCEPTION) + Event", stats
    )


def overhead_case(n: int, repeat: int) -> h.Case:
    pool = WorkerPool(4)

    def plain() -> None:
        submit = pool.submit
        for fut in [submit(f, i) for i in range(n)]:
            fut.result()

    def group() -> None:
        g = Group(pool=pool)
        go = g.go
        for i in range(n):
            go(f, i)
        g.wait()

    stats = h.rounds({"WorkerPool.submit + result()": plain, "Group.go + wait": group}, repeat)
    pool.shutdown()
    return h.Case(
        f"per-task overhead {n:,}, 4 workers",
        n,
        "WorkerPool.submit + result()",
        stats,
        note="target: Group.go at <= 2x a plain submit (x anchor >= 0.5)",
    )


def cases(args: argparse.Namespace) -> list[h.Case]:
    n = h.scaled(20_000, args.scale)
    return [idiom_case(n, args.repeat), overhead_case(n, args.repeat)]
