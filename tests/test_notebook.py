"""notebooks/compare_models.ipynb runs on a demo's MLflow runs, and is committed without outputs.

The notebook is executed as Jupyter would execute it (nbclient, the ``python3`` kernel of this
environment, the kernel's working directory in notebooks/), against a tiny ``recsys demo`` whose
data directory holds the tracking store, so that a change to what training logs, or to the
recommender, breaks this test rather than the notebook in someone's hands. Its cells are found
by their tags (``metadata.tags``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.cli import RECSYS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "compare_models.ipynb"
NBSTRIPOUT = Path(sys.executable).with_name("nbstripout")
EXAMPLE_MEMBERS = 2


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of a tiny demo (``make demo`` without serving): the demo store and its
    model artifact, and ``mlflow.db`` with one parent run and a registered champion."""
    root = tmp_path_factory.mktemp("demo")
    environment = _environment(RECSYS_DATA_DIR=str(root / "data"))
    result = subprocess.run(
        [str(RECSYS), "demo", "--out", str(root / "data" / "demo"), "--members", "300",
         "--items", "80", "--events", "8000", "--trials", "1", "--no-serve"],
        cwd=root, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "data" / "mlflow.db").is_file()
    return root / "data"


@pytest.fixture(scope="module")
def executed(demo_data: Path) -> nbformat.NotebookNode:
    """The notebook executed on the demo's runs, found the way the demo's user finds them: no
    MLFLOW_TRACKING_URI, the data directory's default store."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    environment = _environment(RECSYS_DATA_DIR=str(demo_data), COMPARE_MEMBERS=str(EXAMPLE_MEMBERS))
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute(env=environment)  # raises CellExecutionError, naming the cell, on any error
    return notebook


def _environment(**settings: str) -> dict[str, str]:
    """This process's environment with ``settings``, less MLFLOW_TRACKING_URI: the demo and
    the notebook use the data directory's store, as they do after `make demo`."""
    inherited = {name: value for name, value in os.environ.items() if name != "MLFLOW_TRACKING_URI"}
    return {**inherited, **settings}


def _outputs(notebook: nbformat.NotebookNode, tag: str) -> list[dict[str, Any]]:
    cells = [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"one cell tagged {tag!r} expected, found {len(cells)}"
    return cells[0].outputs


def _text(outputs: list[dict[str, Any]]) -> str:
    """Everything the outputs show as text: streams, tables (HTML), Markdown."""
    parts = [output.get("text", "") for output in outputs]
    for output in outputs:
        data = output.get("data", {})
        parts += [data.get("text/html", ""), data.get("text/markdown", "")]
    return "\n".join(parts)


def _figure(value: float) -> str:
    """A figure as the notebook's tables print it (4 decimals)."""
    return f"{value:.4f}"


def test_the_notebook_compares_every_model_of_the_demo_run(
    executed: nbformat.NotebookNode, demo_data: Path
) -> None:
    metrics = json.loads((demo_data / "demo" / "artifact" / "metrics.json").read_text())
    chosen, primary = metrics["chosen"], metrics["primary_metric"]
    models = list(metrics["models"])
    assert "popular" in models and len(models) >= 3

    runs = _text(_outputs(executed, "runs"))
    assert chosen in runs and "gate_passed" in runs

    table = _text(_outputs(executed, "test-metrics"))
    for model in models:
        assert f"<td>{model}</td>" in table
        assert _figure(metrics["models"][model][primary]) in table
    assert f"val {primary}" in table
    choice = _text(_outputs(executed, "choice"))
    assert f"**{chosen}** was chosen: the best {primary} on validation" in choice

    segments = _text(_outputs(executed, "segments"))
    for segment, figures in metrics["segments"][chosen].items():
        assert f"<td>{segment}</td>" in segments
        assert _figure(figures[primary]) in segments

    for tag in ("figure-metrics", "figure-curves", "figure-segments", "figure-overlap"):
        assert any("image/png" in output.get("data", {}) for output in _outputs(executed, tag)), tag

    examples = _outputs(executed, "examples")
    headings = [o.data["text/markdown"] for o in examples if "text/markdown" in o.get("data", {})]
    assert len(headings) == EXAMPLE_MEMBERS and all(h.startswith("### M") for h in headings)
    tables = [o.data["text/html"] for o in examples if "text/html" in o.get("data", {})]
    assert len(tables) == EXAMPLE_MEMBERS
    for side_by_side in tables:
        assert all(f"<th>{model}" in side_by_side for model in models), side_by_side[:500]
        assert "fallback" in side_by_side

    bundles = _text(_outputs(executed, "bundles"))
    assert "complement" in bundles and ("rules" in bundles or "similar" in bundles)

    for cell in executed.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error"
            assert output.get("name") != "stderr", output.get("text")


def test_notebooks_are_committed_without_outputs(
    executed: nbformat.NotebookNode, tmp_path: Path
) -> None:
    """What `make lint` checks: nbstripout would change no notebook in notebooks/; and the check
    does catch a notebook saved with its outputs."""
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert NOTEBOOK in notebooks
    clean = subprocess.run([str(NBSTRIPOUT), "--verify", *map(str, notebooks)], capture_output=True)
    assert clean.returncode == 0, clean.stdout.decode() + clean.stderr.decode()

    saved = tmp_path / "saved.ipynb"
    nbformat.write(executed, saved)
    assert subprocess.run([str(NBSTRIPOUT), "--verify", str(saved)]).returncode != 0
    stripped = tmp_path / "stripped.ipynb"
    shutil.copy(saved, stripped)
    subprocess.run([str(NBSTRIPOUT), str(stripped)], check=True)
    # stripping an executed copy gives the committed cells back (the kernel adds only metadata)
    committed = nbformat.read(NOTEBOOK, as_version=4).cells
    assert nbformat.read(stripped, as_version=4).cells == committed
