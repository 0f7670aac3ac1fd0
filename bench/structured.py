"""Structured concurrency benchmarks (issue 12): every bench/_structured_*.py's cases in one
run. A report, not a test: the exit status is always 0."""

from __future__ import annotations

import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import parser, report


def main() -> None:
    args = parser(__doc__).parse_args()
    started = time.perf_counter()
    here = os.path.dirname(os.path.abspath(__file__))
    cases = []
    for name in sorted(os.listdir(here)):
        if name.startswith("_structured_") and name.endswith(".py"):
            cases += importlib.import_module(name[:-3]).cases(args)
    report("structured", args, cases, started)


if __name__ == "__main__":
    main()
