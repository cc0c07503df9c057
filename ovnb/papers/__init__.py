"""The four papers' tables as data.

Each ``<paper>.yaml`` beside this file holds every numeric table of one paper, transcribed from its
text: per table its id exactly as the paper names it ("Table 2"), caption, unit, protocol knobs
(dataset, split/fold, backbone, resolution, metric convention ...), columns and rows. A row lists
one value per column (``null`` where the paper prints "-"). Knobs are merged table <- column <- row,
so every cell carries the full description of the protocol it was measured under.

``load(name)`` validates the file and returns one ``PaperCell`` per cell. A malformed file is an
error that names the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

PAPER_DIR = Path(__file__).parent
PAPERS = ("fusioner", "simbaseline", "pnp_ovss", "fc_clip")
TITLES = {"fusioner": "Fusioner", "simbaseline": "SimBaseline", "pnp_ovss": "PnP-OVSS", "fc_clip": "FC-CLIP"}


class PaperTableError(ValueError):
    """A paper-table file does not follow the schema."""


@dataclass(frozen=True)
class PaperCell:
    paper: str
    table: str
    row: str
    column: str
    value: float | None  # None: the paper prints no value in this cell
    unit: str
    knobs: dict = field(hash=False, compare=False)
    note: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.paper, self.table, self.row, self.column)


@dataclass(frozen=True)
class PaperTable:
    paper: str
    id: str
    caption: str
    unit: str
    columns: tuple[str, ...]
    rows: tuple[str, ...]
    note: str | None = None


ALLOWED_KEYS = {
    "top level": {"paper", "title", "venue", "url", "tables"},
    "table": {"id", "caption", "unit", "knobs", "columns", "rows", "note"},
    "column": {"label", "unit", "knobs"},
    # transcription: how a value was derived from the printed text when it is not a verbatim copy
    # ("merged-rows": the OCR merged rows; otherwise a free-text conversion such as "119K -> 0.119")
    "row": {"label", "knobs", "values", "unit", "note", "transcription"},
}


def _fail(path: Path, where: str, message: str):
    raise PaperTableError(f"{path.name}: {where}: {message}")


def _check_keys(path: Path, where: str, kind: str, mapping) -> None:
    if isinstance(mapping, dict):
        unknown = sorted(set(mapping) - ALLOWED_KEYS[kind])
        if unknown:
            _fail(path, where, f"unknown field(s) {unknown}; allowed: {sorted(ALLOWED_KEYS[kind])}")


def _require(path, where, mapping, key, kind):
    if not isinstance(mapping, dict):
        _fail(path, where, f"expected a mapping, got {type(mapping).__name__}")
    if key not in mapping:
        _fail(path, where, f"missing field '{key}'")
    value = mapping[key]
    if not isinstance(value, kind):
        kinds = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        _fail(path, f"{where}.{key}", f"expected {kinds}, got {type(value).__name__} ({value!r})")
    return value


def _knobs(path, where, entry) -> dict:
    knobs = entry.get("knobs", {}) if isinstance(entry, dict) else {}
    if knobs is None:
        knobs = {}
    if not isinstance(knobs, dict):
        _fail(path, f"{where}.knobs", f"expected a mapping, got {type(knobs).__name__}")
    return knobs


def _parse(path: Path) -> tuple[list[PaperTable], list[PaperCell], dict]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PaperTableError(f"{path.name}: not valid YAML: {err}") from err
    paper = _require(path, "top level", doc, "paper", str)
    _check_keys(path, "top level", "top level", doc)
    if paper != path.stem:
        _fail(path, "paper", f"is {paper!r} but the file is named {path.stem!r}")
    for key in ("title", "venue"):
        _require(path, "top level", doc, key, str)
    tables_raw = _require(path, "top level", doc, "tables", list)
    tables, cells, seen_ids, sources = [], [], set(), {}
    for t_index, t in enumerate(tables_raw):
        where = f"tables[{t_index}]"
        table_id = _require(path, where, t, "id", str)
        where = f"{where} ({table_id})"
        _check_keys(path, where, "table", t)
        if not table_id.startswith("Table "):
            _fail(path, f"{where}.id", f"expected 'Table N' as the paper names it, got {table_id!r}")
        if table_id in seen_ids:
            _fail(path, f"{where}.id", "duplicate table id")
        seen_ids.add(table_id)
        caption = _require(path, where, t, "caption", str)
        unit = _require(path, where, t, "unit", str)
        table_knobs = _knobs(path, where, t)
        columns = []
        for c_index, col in enumerate(_require(path, where, t, "columns", list)):
            cwhere = f"{where}.columns[{c_index}]"
            label = col if isinstance(col, str) else _require(path, cwhere, col, "label", str)
            col = {"label": label} if isinstance(col, str) else col
            _check_keys(path, cwhere, "column", col)
            if col.get("unit") is not None and not isinstance(col["unit"], str):
                _fail(path, f"{cwhere}.unit", "expected a string")
            columns.append((label, col.get("unit"), _knobs(path, cwhere, col)))
        labels = [c[0] for c in columns]
        if len(set(labels)) != len(labels):
            _fail(path, f"{where}.columns", f"duplicate column labels {sorted({l for l in labels if labels.count(l) > 1})}")
        rows, row_labels = _require(path, where, t, "rows", list), []
        for r_index, row in enumerate(rows):
            rwhere = f"{where}.rows[{r_index}]"
            label = _require(path, rwhere, row, "label", str)
            rwhere = f"{rwhere} ({label})"
            _check_keys(path, rwhere, "row", row)
            if label in row_labels:
                _fail(path, rwhere, "duplicate row label")
            row_labels.append(label)
            sources[(table_id, label)] = row
            values = _require(path, rwhere, row, "values", list)
            if len(values) != len(columns):
                _fail(path, f"{rwhere}.values", f"has {len(values)} values for {len(columns)} columns")
            row_unit = row.get("unit")
            row_knobs = _knobs(path, rwhere, row)
            for (col_label, col_unit, col_knobs), value in zip(columns, values):
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    _fail(path, f"{rwhere}.values[{col_label}]", f"expected a number or null, got {value!r}")
                cells.append(PaperCell(
                    paper=paper, table=table_id, row=label, column=col_label,
                    value=None if value is None else float(value),
                    unit=row_unit or col_unit or unit,
                    knobs={**table_knobs, **col_knobs, **row_knobs},
                    note=row.get("note"),
                ))
        tables.append(PaperTable(paper, table_id, caption, unit, tuple(labels), tuple(row_labels), t.get("note")))
    return tables, cells, sources


@lru_cache(maxsize=None)
def _load(path: Path):
    return _parse(path)


def _path(name: str) -> Path:
    path = PAPER_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown paper {name!r}; known papers: {', '.join(PAPERS)}")
    return path


def load(name: str) -> list[PaperCell]:
    """Every cell of every table of paper ``name`` (one of ``PAPERS``)."""
    return list(_load(_path(name))[1])


def tables(name: str) -> list[PaperTable]:
    """The tables of paper ``name`` in the paper's order (id, caption, unit, column and row labels)."""
    return list(_load(_path(name))[0])


def load_file(path: str | Path) -> list[PaperCell]:
    """Validate and expand any paper-table file (used by tests on malformed fixtures)."""
    return _parse(Path(path))[1]


def row_source(name: str, table: str, row: str) -> dict:
    """The row exactly as written in the YAML file (values, knobs, note, transcription)."""
    return dict(_load(_path(name))[2][(table, row)])


def load_all() -> list[PaperCell]:
    return [cell for name in PAPERS for cell in load(name)]


def cell(paper: str, table: str, row: str, column: str) -> PaperCell:
    """One cell; an unknown coordinate is an error that lists what exists at that level."""
    cells = load(paper)
    tabs = {c.table for c in cells}
    if table not in tabs:
        raise KeyError(f"{paper} has no {table!r}; tables: {sorted(tabs, key=_table_number)}")
    in_table = [c for c in cells if c.table == table]
    rows = list(dict.fromkeys(c.row for c in in_table))
    if row not in rows:
        raise KeyError(f"{paper} {table} has no row {row!r}; rows: {rows}")
    cols = list(dict.fromkeys(c.column for c in in_table))
    if column not in cols:
        raise KeyError(f"{paper} {table} has no column {column!r}; columns: {cols}")
    return next(c for c in in_table if c.row == row and c.column == column)


def _table_number(table_id: str) -> int:
    return int(table_id.split()[-1])
