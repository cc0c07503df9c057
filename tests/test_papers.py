"""The paper-table registry: schema, counts, lookups, and a re-read against the papers' text."""

import re
from pathlib import Path

import pytest

from ovnb import papers

SHARED_PAPERS = Path(__file__).resolve().parents[1].parent / "shared" / "papers"
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


def test_every_paper_loads_with_its_tables():
    expected_tables = {"fusioner": 5, "simbaseline": 10, "pnp_ovss": 8, "fc_clip": 9}
    for name, count in expected_tables.items():
        tables = papers.tables(name)
        assert [t.id for t in tables] == [f"Table {i}" for i in range(1, count + 1)]
        cells = papers.load(name)
        assert len(cells) == sum(len(t.rows) * len(t.columns) for t in tables)
        assert len({c.key for c in cells}) == len(cells)


def test_cells_carry_merged_knobs():
    c = papers.cell("fusioner", "Table 1", "D MoCo-B + BERT-L", "late 5^2")
    assert c.value == 49.8
    assert c.knobs["dataset"] == "PASCAL-5i"  # from the table
    assert c.knobs["fusion"] == "late" and c.knobs["fold"] == 2  # from the column
    assert c.knobs["visual"] == "MoCo-B" and c.knobs["text"] == "BERT-L"  # from the row
    assert c.unit == "%"
    # a per-column unit overrides the table's
    assert papers.cell("fc_clip", "Table 1", "FC-CLIP", "params frozen (M)").unit == "M params"


def test_unknown_coordinates_name_what_exists():
    with pytest.raises(KeyError, match="Table 5"):
        papers.cell("fusioner", "Table 9", "x", "y")
    with pytest.raises(KeyError, match="B0-CLIP-L"):
        papers.cell("fusioner", "Table 4", "B9", "mIoU")
    with pytest.raises(ValueError, match="known papers"):
        papers.load("segformer")


@pytest.mark.parametrize("mutation, message", [
    ("paper: {stem}\n", "missing field 'title'"),
    ("paper: bad\ntitle: t\nvenue: v\ntables: []\n", "file is named"),
    ("paper: {stem}\ntitle: t\nvenue: v\ntables:\n  - {{id: Tab 1, caption: c, unit: '%', columns: [a], rows: []}}\n",
     "expected 'Table N'"),
    ("paper: {stem}\ntitle: t\nvenue: v\ntables:\n  - {{id: Table 1, caption: c, unit: '%', columns: [a, b],"
     " rows: [{{label: r, values: [1.0]}}]}}\n", "has 1 values for 2 columns"),
    ("paper: {stem}\ntitle: t\nvenue: v\ntables:\n  - {{id: Table 1, caption: c, unit: '%', columns: [a],"
     " rows: [{{label: r, values: [high]}}]}}\n", r"values\[a\].*expected a number"),
    ("paper: {stem}\ntitle: t\nvenue: v\ntables:\n  - {{id: Table 1, caption: c, unit: '%', columns: [a],"
     " rows: [{{label: r, valeus: [1]}}]}}\n", "unknown field.*valeus"),
    ("paper: {stem}\ntitle: t\nvenue: v\ntables:\n  - {{id: Table 1, caption: c, unit: '%', columns: [a],"
     " rows: [{{label: r, values: [1], colour: red}}]}}\n", "unknown field"),
])
def test_malformed_files_name_file_and_field(tmp_path, mutation, message):
    path = tmp_path / "broken.yaml"
    path.write_text(mutation.format(stem="broken"))
    with pytest.raises(papers.PaperTableError, match="broken.yaml") as err:
        papers.load_file(path)
    assert re.search(message, str(err.value)), str(err.value)


def _is_subsequence(needle, haystack):
    it = iter(haystack)
    return all(any(abs(x - h) < 1e-9 for h in it) for x in needle)


@pytest.mark.skipif(not SHARED_PAPERS.is_dir(), reason="the papers' text is not beside this checkout")
@pytest.mark.parametrize("name", papers.PAPERS)
def test_every_row_reads_back_from_the_paper_text(name):
    """Each transcribed row's values occur, in order, within a few consecutive lines of the paper.

    The paper text is OCR output: tables are tab- or pipe-separated lines, sometimes with a row split
    over two lines. Rows the OCR merged (marked ``transcription: merged-rows``) are checked column by
    column instead: each value must occur in the table's lines.
    """
    text = (SHARED_PAPERS / f"{name}.md").read_text()
    text = re.sub(r"</?b>|★|†|\$", " ", text)
    lines = [[float(x) for x in NUMBER.findall(line)] for line in text.splitlines()]
    windows = [sum(lines[i:i + 3], []) for i in range(len(lines))]
    all_numbers = {x for line in lines for x in line}
    rows = {}
    for c in papers.load(name):
        rows.setdefault((c.table, c.row), []).append(c)
    missing = []
    for (table, row), cells in rows.items():
        values = [c.value for c in cells if c.value is not None]
        raw = papers.row_source(name, table, row)
        how = raw.get("transcription")
        if how == "merged-rows":
            ok = all(v in all_numbers for v in values)
        elif how:
            continue  # a stated conversion (e.g. "119K -> 0.119"), not a verbatim copy
        else:
            ok = any(_is_subsequence(values, w) for w in windows)
        if not ok:
            missing.append(f"{table} / {row}: {values}")
    assert not missing, "rows not found in the paper text:\n" + "\n".join(missing)
