"""The notebooks in notebooks/ run end to end (quick mode) and write their figures.

Each notebook is executed with nbclient on a python3 kernel, in the notebooks/ folder, with
``ARCHSIM_NOTEBOOK_QUICK=1`` (reduced settings) and ``MPLBACKEND=Agg``. The stored notebooks are
never modified: the executed copy is written to the test's temporary folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
FIGURE_DIR = NOTEBOOK_DIR / "figures"
EXPECTED = [
    "01_paper_experiment.ipynb",
    "02_memory_footprint.ipynb",
    "03_endurance.ipynb",
    "04_design_space.ipynb",
]
FOUND = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def test_the_expected_notebooks_are_there():
    assert FOUND == EXPECTED


@pytest.mark.parametrize("name", FOUND)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{name}: cell {index} holds outputs; clear them before committing"
            assert cell.execution_count is None, f"{name}: cell {index} has an execution count"


@pytest.mark.parametrize("name", FOUND)
def test_notebook_runs_in_quick_mode(name, monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHSIM_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    prefix = name.split("_", 1)[0]
    started = time.time() - 1.0  # file-system timestamps may be coarse
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute()  # raises CellExecutionError naming the failing cell
    finally:
        nbformat.write(notebook, tmp_path / name)  # the executed copy, for inspection
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    written = [p for p in FIGURE_DIR.glob(f"{prefix}_*.png") if p.stat().st_mtime >= started]
    assert written, f"{name} wrote no PNG named {prefix}_*.png into {FIGURE_DIR}"
