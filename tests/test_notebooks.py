"""Every notebook in notebooks/ runs top to bottom, without a cell error, on this interpreter.

The kernel is this test's own Python (sys.executable, the venv with chanpool built into it):
a private kernelspec on JUPYTER_PATH pins it, whatever "python3" kernels the machine has. A
cell appended to each notebook reports the kernel's interpreter and chanpool, and the test
checks them. Sizes inside the notebooks scale with CHANPOOL_NB_SCALE (default 1: seconds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import chanpool
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL = "chanpool-test-venv"
#: Per cell: far above what any cell needs (a few seconds), low enough to report a hang.
CELL_TIMEOUT = 300

PROBE = "import sys as _s, chanpool as _c\nprint(_s.executable)\nprint(_c.__file__)"


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "chanpool test venv", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json), encoding="utf-8")
    return root


def test_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for prefix in ("01_", "02_", "03_", "04_", "05_", "06_"):
        assert any(n.startswith(prefix) for n in names), f"no notebook {prefix}*: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} of {path.name} has stored outputs"
            assert cell.execution_count is None, f"cell {i} of {path.name} was executed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}", pytrace=False)
    outputs = nb.cells[-1].outputs
    lines = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout").splitlines()
    assert lines == [sys.executable, chanpool.__file__], (
        "the notebook ran on another interpreter or another chanpool",
        lines,
    )
    images = 0
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"cell {i}: {out.get('ename')}"
            images += "image/png" in out.get("data", {})
    assert images >= 1, f"{path.name}: no plot was rendered inline"
