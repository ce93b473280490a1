"""notebooks/sample_walkthrough.ipynb runs top to bottom (nbclient, a real Jupyter kernel) on a
hard-linked copy of the session's sample run, which the notebook's Runner finds complete."""

from __future__ import annotations

import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_the_walkthrough_notebook_runs(sample_run, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    shutil.copytree(sample_run, workdir, copy_function=os.link)
    monkeypatch.setenv("DMCTWIN_WORKDIR", str(workdir))
    nb = nbformat.read(REPO / "notebooks" / "sample_walkthrough.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "skipped (unchanged)" in text and " ran in " not in text  # the run was found complete
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images == 3  # DTM, residuals, heights
    assert "viewer at http://127.0.0.1:" in text and "triangles" in text
