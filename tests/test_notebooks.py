"""Notebook conventions: paired sources in sync, no committed outputs, the standard opening cells."""

import json
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_there_are_notebooks_and_every_file_has_its_pair():
    assert SOURCES, "no notebooks found"
    py = {p.stem for p in NOTEBOOKS.glob("*.py")}
    ipynb = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert py == ipynb, f"unpaired: {sorted(py ^ ipynb)} (run `jupytext --sync notebooks/*.py`)"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync_and_without_outputs(source):
    paired = source.with_suffix(".ipynb")
    raw = json.loads(paired.read_text())
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{paired.name} holds outputs; commit notebooks without outputs"
            assert cell.get("execution_count") is None, f"{paired.name} holds execution counts"
    py_cells = [(c.cell_type, c.source.strip()) for c in jupytext.read(source).cells]
    nb_cells = [(c.cell_type, c.source.strip()) for c in jupytext.read(paired).cells]
    assert py_cells == nb_cells, f"{source.name} and {paired.name} differ: run `jupytext --sync {source}`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_standard_opening(source):
    cells = jupytext.read(source).cells
    title = cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert f"notebooks/{source.stem}.ipynb" in title.source and "colab-badge" in title.source
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    from ovnb.runner import notebook_parameters

    declared = notebook_parameters(source)
    for name in ("PROFILE", "DATA_ROOT", "CACHE_DIR"):
        assert name in declared, f"parameter {name} missing"
    assert {"SEEDS", "SEED"} & set(declared), "a seed parameter (SEEDS where the notebook trains)"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "google.colab" in code, "an install cell that runs only on Colab"
    assert "env.report(" in code, "every notebook prints its environment"
    if "PREPARE_DATA" in declared:  # a notebook on real data says, at its opening, how to get the data
        import re

        from ovnb.data import prepare

        command = re.search(r"`!ovnb data prepare ([a-z0-9 -]+) --root data`", title.source)
        assert "PREPARE_DATA = True" in title.source and command, "the opening says how a Colab user gets the data"
        assert set(command.group(1).split()) <= set(prepare.names()), command.group(1)
