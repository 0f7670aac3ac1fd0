"""Issue 12's benchmarks: every ``bench/_structured_*.py`` module present, one report.

    python bench/structured.py [--repeat 5] [--scale 1.0] [--json FILE]

Each module exposes ``cases(args) -> list[Case]``; see its docstring for its contenders.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h


def main() -> None:
    args = h.parser(__doc__).parse_args()
    started = time.perf_counter()
    here = pathlib.Path(__file__).resolve().parent
    cases: list[h.Case] = []
    for path in sorted(here.glob("_structured_*.py")):
        cases += importlib.import_module(path.stem).cases(args)
    h.report("structured", args, cases, started)


if __name__ == "__main__":
    main()
