"""chanpool.WorkerPool vs concurrent.futures.ThreadPoolExecutor, in one run.

    python bench/pool.py [--n 100000] [--repeat 5] [--json FILE]

Cases (trivial task = ``def f(x): return x``):

a) ``list(pool.map(f, range(n)))`` with the default chunksize=1 for both pools, plus a chanpool
   row with chunksize=256 for information (ThreadPoolExecutor ignores chunksize);
b) submit all n tasks, then ``result()`` on every future;
c) 1,000 tasks that release the GIL (``time.sleep(0.001)``), both pools with max_workers=16.

a) and b) use each pool's default max_workers (the same formula for both). The for-loop column
is the single-threaded limit: ``list(map(f, items))``, ``[f(x) for x in items]`` and a loop of
sleeps. Every figure is the best of ``--repeat`` runs; contenders alternate, and each run starts
after ``gc.collect()`` with the previous run's results freed. This is a report, not a test: the
exit status is 0 whether targets are met or missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from chanpool import _bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="items for map and submit")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case (best is kept)")
    parser.add_argument("--sleep-tasks", type=int, default=1_000, help="GIL-releasing tasks")
    parser.add_argument("--chunksize", type=int, default=256, help="extra chanpool map row")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)

    env = _bench.environment()
    print(
        f"chanpool {env['chanpool']} | {env['implementation']} {env['python']} | "
        f"{env['cpus']} CPUs | default max_workers: TPE {env['default_max_workers']['tpe']}, "
        f"chanpool {env['default_max_workers']['chanpool']} | best of {args.repeat}"
    )
    sizes = _bench.Sizes(
        n=args.n, sleep_tasks=args.sleep_tasks, repeat=args.repeat, extra_chunksize=args.chunksize
    )
    start = time.perf_counter()
    rows = _bench.run_cases(sizes, progress=lambda msg: print("  " + msg, file=sys.stderr))
    total = time.perf_counter() - start
    print()
    print(_bench.format_table(rows))
    print()
    print("ratio = TPE ms / chanpool ms (higher is better for chanpool).")
    print(f"map chunksize={args.chunksize}: vs TPE's default map (TPE ignores chunksize).")
    print(f"Benchmark time: {total:.1f} s")

    if args.json:
        data = {
            "environment": env,
            "repeat": args.repeat,
            "seconds": round(total, 2),
            "rows": [r.as_dict() for r in rows],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
