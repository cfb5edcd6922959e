"""The efficiency notebook runs headless and writes its plot."""
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_notebook_executes_and_writes_the_plot(tmp_path):
    # Run on a copy so the committed plot is not rewritten by the test suite.
    shutil.copytree(ROOT / "hyperbatch", tmp_path / "hyperbatch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "hyperbatch_benchmark.json", tmp_path / "docs")
    notebook = nbformat.read(ROOT / "HyperbatchEfficiencyPlots.ipynb", as_version=4)

    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    plot = tmp_path / "docs" / "hyperbatch_efficiency.png"
    assert plot.exists() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []))
    assert "B=  8 S=20: 2.13x fewer image-steps" in text
    measured = json.loads((ROOT / "docs" / "hyperbatch_benchmark.json").read_text())["results"]
    for row in measured:
        assert f"speedup {row['wall_speedup']:.2f}x" in text
