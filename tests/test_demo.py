"""``python -m chanpool``: the tour runs every pattern, prints its table and writes the chart."""

from __future__ import annotations

import subprocess
import sys

import pytest

PATTERNS = [
    "worker pool",
    "pub/sub",
    "channels",
    "fan-out/fan-in",
    "pipeline",
    "context",
    "rate limit",
    "semaphore",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=100, check=False
    )


def test_tour_runs_every_pattern_and_writes_the_plot(tmp_path):
    png = tmp_path / "tour.png"
    r = run("-m", "chanpool", "--scale", "0.05", "--repeat", "1", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("speed-up\n", 1)[1]
    for pattern in PATTERNS:
        assert f"\n{pattern} " in table, f"no row for {pattern}:\n{r.stdout}"
    assert "\ninventory " in table
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"Wrote {png}" in r.stdout


def test_plot_without_matplotlib_says_so_and_runs_nothing(tmp_path):
    png = tmp_path / "tour.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # makes `import matplotlib` fail
        "from chanpool.__main__ import main\n"
        f"sys.exit(main(['--plot', {str(png)!r}]))"
    )
    r = run("-c", code)
    assert r.returncode == 2
    assert "matplotlib" in r.stderr and "pip install matplotlib" in r.stderr
    assert r.stdout == "" and not png.exists()


@pytest.mark.parametrize("args", [["--scale", "0"], ["--repeat", "0"], ["--bogus"]])
def test_bad_arguments_are_refused(args):
    r = run("-m", "chanpool", *args)
    assert r.returncode == 2 and "usage:" in r.stderr
