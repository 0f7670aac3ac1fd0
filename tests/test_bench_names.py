"""bench/ scripts run as `python bench/x.py`, which puts bench/ first on sys.path: a script
named like a stdlib module (bench/asyncio.py once did) shadows it for every other script."""

import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench"


def test_no_bench_script_shadows_a_stdlib_module():
    scripts = sorted(p.stem for p in BENCH.glob("*.py"))
    assert scripts, "no bench scripts found"
    assert [s for s in scripts if s in sys.stdlib_module_names] == []
