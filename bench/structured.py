"""Structured concurrency and the rest of issue 12's toolbox: every ``bench/_structured_*.py``.

    python bench/structured.py [--repeat 5] [--scale 1] [--json FILE]

Each part's module exposes ``cases(args) -> list[Case]``; this driver runs them all, in name
order, and prints one table (bench/_harness.py).
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import time

import _harness as h


def main(argv: list[str] | None = None) -> int:
    args = h.parser(__doc__).parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    cases = []
    here = pathlib.Path(__file__).resolve().parent
    for path in sorted(here.glob("_structured_*.py")):
        print(f"  {path.stem} ...", file=sys.stderr)
        cases.extend(importlib.import_module(path.stem).cases(args))
    h.report("bench/structured.py", args, cases, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
