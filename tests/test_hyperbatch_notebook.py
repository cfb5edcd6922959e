"""The efficiency notebook runs headless, shows its figure inline and writes it for the README;
the committed notebook carries the outputs it gives today."""
import base64
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "HyperbatchEfficiencyPlots.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"


def inline_images(notebook) -> list[bytes]:
    return [base64.b64decode(output["data"]["image/png"]) for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]


def printed(notebook) -> list[str]:
    return [output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "stream"]


@pytest.mark.slow
def test_notebook_shows_its_figure_inline_and_writes_it(tmp_path):
    # Run on a copy so the committed plot is not rewritten by the test suite.
    shutil.copytree(ROOT / "hyperbatch", tmp_path / "hyperbatch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "hyperbatch_benchmark.json", tmp_path / "docs")
    committed = nbformat.read(NOTEBOOK, as_version=4)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        cell["outputs"] = [] if cell.cell_type == "code" else cell.get("outputs")

    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    plot = tmp_path / "docs" / "hyperbatch_efficiency.png"
    assert plot.exists() and plot.read_bytes()[:8] == PNG
    images = inline_images(notebook)
    assert len(images) == 1 and images[0][:8] == PNG  # shown in the notebook, not only written to a file
    text = "".join(printed(notebook))
    assert "B=  8 S=20: 2.13x fewer image-steps" in text
    measured = json.loads((ROOT / "docs" / "hyperbatch_benchmark.json").read_text())["results"]
    for row in measured:
        assert f"speedup {row['wall_speedup']:.2f}x" in text

    # what a reader of the committed file sees: the same printed results and the figure
    assert printed(committed) == printed(notebook)
    assert len(inline_images(committed)) == 1 and inline_images(committed)[0][:8] == PNG
