"""The notebooks run top to bottom in a Jupyter kernel (nbclient), with their tiny CI settings."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
QUICKSTART = NOTEBOOKS / "quickstart.ipynb"
TUNING = NOTEBOOKS / "tuning.ipynb"


def outputs(cell) -> list:
    return cell.get("outputs", [])


def text_of(cell) -> str:
    parts = []
    for out in outputs(cell):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/markdown") or out.data.get("text/plain", ""))
    return "".join(parts)


def tagged(nb, tag: str):
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def execute(path: Path):
    nb = nbformat.read(path, as_version=4)
    # Which interpreter runs the kernel: it must be this environment's (the one with tltk).
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    return nb


def test_notebooks_are_committed_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("TLTK_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TLTK_NOTEBOOK_DIR", str(tmp_path))  # inherited by the kernel
    before = sorted(p.name for p in NOTEBOOKS.iterdir())

    nb = execute(QUICKSTART)

    assert text_of(nb.cells[0]).strip() == sys.prefix
    errors = [o for c in nb.cells for o in outputs(c) if o.output_type == "error"]
    assert not errors
    # The metrics cell prints the test summary with a real accuracy.
    found = re.search(r"\baccuracy (\d\.\d{4})\b", text_of(tagged(nb, "metrics")))
    assert found, text_of(tagged(nb, "metrics"))
    assert 0.0 <= float(found.group(1)) <= 1.0
    # Learning curves and confusion matrix are displayed inline as PNGs.
    pngs = [
        base64.b64decode(o.data["image/png"])
        for c in nb.cells
        for o in outputs(c)
        if "image/png" in o.get("data", {})
    ]
    assert len(pngs) >= 2 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    # The SavedModel was exported under the notebook's work folder, in TF Serving layout.
    exported = tmp_path / "saved_models" / "digits_transfer" / "1"
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables" / "variables.index").is_file()
    all_text = "".join(text_of(c) for c in nb.cells)
    assert "signature 'serving_default'" in all_text and "image_bytes" in all_text
    # The predictions table has one row per digit, each with a predicted label and a score.
    table = [line for line in all_text.splitlines() if re.match(r"\| \d/\d+\.png \|", line)]
    assert len(table) == 10, all_text
    assert all(re.search(r"\| \d \| \d \| [01]\.\d{3} \|", line) for line in table), table
    # Nothing was written beside the notebooks (runs, data and exports went to the work folder).
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before


@pytest.mark.slow
def test_tuning_runs_a_tiny_search_and_shows_table_and_plot(tmp_path, monkeypatch):
    monkeypatch.setenv("TLTK_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TLTK_NOTEBOOK_DIR", str(tmp_path))

    nb = execute(TUNING)

    assert not [o for c in nb.cells for o in outputs(c) if o.output_type == "error"]
    table = text_of(tagged(nb, "table")).splitlines()
    assert table[0].split()[:2] == ["trial", "status"] and len(table) == 3  # 2 trials
    assert all(" COMPLETED " in line for line in table[1:])
    pngs = [o for c in nb.cells for o in outputs(c) if "image/png" in o.get("data", {})]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0].data["image/png"]).startswith(b"\x89PNG")
    searches = list((tmp_path / "runs" / "digits_transfer").glob("tune-*"))
    assert len(searches) == 1 and (searches[0] / "best_recipe.yaml").is_file()
