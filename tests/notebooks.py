"""Run code cells in a real Jupyter kernel (``nbclient`` + ``ipykernel``), as a notebook user would.

``execute(cells, folder)`` writes ``folder/test.ipynb``, executes it headlessly in a fresh
``python3`` kernel started in ``folder`` (this interpreter, a user's environment: no
``PYTHONPATH``, no ``RAY_ADDRESS``), writes ``folder/executed.ipynb`` and returns the
executed notebook. A cell that raises fails the run (``nbclient.exceptions.CellExecutionError``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "RAY_ADDRESS", "MPLBACKEND"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # the kernel's python
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def execute(cells: list[str], folder: Path, timeout: float = 600):
    """Write, execute and return the notebook made of ``cells`` (one code cell each)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = folder / "test.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute(env=kernel_env())
    nbformat.write(nb, folder / "executed.ipynb")
    return nb


def outputs(cell, output_type: str | None = None) -> list:
    return [o for o in cell.get("outputs", []) if output_type is None or o.get("output_type") == output_type]


def errors(nb) -> list:
    """Every error output of the notebook (a raised exception in a cell)."""
    return [o for cell in nb.cells for o in outputs(cell, "error")]


def mime(cell, kind: str) -> list[str]:
    """The ``kind`` data (``image/png``, ``text/html``, ``text/plain``) of a cell's rich outputs."""
    return [o["data"][kind] for o in cell.get("outputs", []) if kind in o.get("data", {})]
