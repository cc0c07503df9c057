"""Run records (what our code computed) and their comparison with the papers' tables.

A notebook creates one ``RunRecord``, adds each reproduced number with the paper cell it
reproduces, and saves it as ``build/results/<profile>/<notebook>.json``. Every record carries the
profile, the weights source (``released`` public weights, ``retrained`` by us, ``toy``, or ``random``:
the dry run's untrained encoders, whose numbers mean nothing), seed,
git sha, environment and wall time. Numbers shown in the book come only from these files and from
``ovnb/papers/*.yaml``.

A record may hold several **seeds** of the same cell (the toy profile trains every model that backs
a claim over several seeds): each value is stored with its seed, and ``compare()`` aggregates them
into mean, standard deviation and n per cell (``aggregate``, the one place this is computed), shown
as ``mean ± sd (n)`` (``Spread``). ``compare()`` joins records with the paper tables into a
DataFrame (paper value, ours, sd, n, delta, status), and ``plot_compare`` / ``plot_status`` draw it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import env, papers

WEIGHTS_SOURCES = ("released", "retrained", "toy", "random")
# Status of a paper cell, from "not reproduced" to "reproduced at full scale". Smoke runs check
# that code runs, not what it computes, so they never count as a reproduction.
STATUS_ORDER = ("not yet", "toy", "quick", "paper")
SCHEMA_VERSION = 2  # 2: values carry their seed; the record lists its seeds (1: one seed per record)


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation (ddof = 1; nan for one value) and count of one cell's values over seeds."""

    mean: float
    sd: float
    n: int

    def __str__(self) -> str:
        return format_spread(self.mean, self.sd, self.n)


def aggregate(values: Iterable[float]) -> Spread:
    """The ``Spread`` of ``values`` (one per seed)."""
    import statistics

    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values to aggregate")
    return Spread(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else float("nan"), len(vals))


def format_spread(mean: float, sd: float, n: int, digits: int = 1) -> str:
    """``mean ± sd (n)``; a single value is shown alone, as a single run has no spread."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if n is None or n < 2 or sd is None or math.isnan(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f} ({int(n)})"


def build_dir() -> Path:
    """Where executed notebooks, caches and run records go: ``$OVNB_BUILD_DIR`` or ``<checkout>/build``."""
    if os.environ.get("OVNB_BUILD_DIR"):
        return Path(os.environ["OVNB_BUILD_DIR"])
    root = env.project_root()
    return (root if root is not None else Path.cwd()) / "build"


def results_dir(profile: str | None = None) -> Path:
    base = build_dir() / "results"
    return base / profile if profile else base


def write_json_atomic(path: Path, payload) -> None:
    """Write JSON through a temporary file, so a crash never leaves a half-written record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def digest(spec, length: int = 12) -> str:
    """A short SHA-1 of ``spec`` as sorted JSON: the file name of a result kept for that specification."""
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:length]


def kept(path: Path, compute):
    """The result kept at ``path`` (JSON for ``.json``, else ``torch.save``), or ``compute()``'s, kept
    there first (atomically): evaluations a rebuild of the book reads instead of recomputing."""
    if path.suffix == ".json":
        if path.is_file():
            return json.loads(path.read_text())
        out = compute()
        write_json_atomic(path, out)
        return out
    import torch

    from .train import save_atomic

    if path.is_file():
        return torch.load(path, weights_only=False)
    out = compute()
    save_atomic(out, path)
    return out


class RunRecord:
    """The numbers one notebook run computed, with everything needed to trust them.

    >>> rec = RunRecord("01_fusioner_method", profile="toy", seeds=[0, 1, 2])
    >>> rec.add(100 * fold.miou(), paper="fusioner", table="Table 4", row="B0-CLIP-L",
    ...         column="5^0", weights="toy", seed=1)  # value in the paper's unit (here %)
    >>> rec.metric("toy_clip_top1", 0.91)             # a number that reproduces no paper cell
    >>> rec.claim(claims.check_order(...))            # an ordering claim and its verdict
    >>> rec.save()

    ``seed`` may be left out of ``add``/``metric`` when the record has a single seed, or for a number
    that depends on no seed (``seed=None``).
    """

    def __init__(self, notebook: str, profile: str, seeds: int | Iterable[int] = (0,)):
        self.notebook = notebook
        self.profile = profile
        self.seeds = (int(seeds),) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
        if not self.seeds:
            raise ValueError("a run record needs at least one seed")
        self.started = time.time()
        self.cells: list[dict] = []
        self.metrics: list[dict] = []
        self.claims: list[dict] = []

    def _seed(self, seed):
        if seed is None:
            return self.seeds[0] if len(self.seeds) == 1 else None
        if int(seed) not in self.seeds:
            raise ValueError(f"seed {seed!r} is not one of this record's seeds {list(self.seeds)}")
        return int(seed)

    def add(self, value: float, *, paper: str, table: str, row: str, column: str, weights: str,
            note: str | None = None, seed: int | None = None, **protocol) -> dict:
        """Record ``value`` (in the paper's unit) as our reproduction of one paper cell with ``seed``.

        The cell must exist in the paper-table registry. ``protocol`` holds the knobs of our run
        where they differ from the paper's (e.g. ``dataset="toy folds"``).
        """
        if weights not in WEIGHTS_SOURCES:
            raise ValueError(f"weights must be one of {WEIGHTS_SOURCES}, got {weights!r}")
        if len(self.seeds) > 1 and seed is None:
            raise ValueError(f"this record holds seeds {list(self.seeds)}: say which seed {value!r} came from")
        ref = papers.cell(paper, table, row, column)  # raises, naming what exists
        seed = self._seed(seed)
        entry = {"paper": paper, "table": table, "row": row, "column": column, "value": float(value),
                 "unit": ref.unit, "weights": weights, "seed": seed, "note": note, "protocol": protocol}
        self.cells = [c for c in self.cells
                      if ((c["paper"], c["table"], c["row"], c["column"]), c["seed"]) != (ref.key, seed)]
        self.cells.append(entry)
        return entry

    def metric(self, name: str, value: float, note: str | None = None, seed: int | None = None, **context) -> dict:
        """Record a number that reproduces no paper cell (quality bars, timings, controls)."""
        seed = self._seed(seed)
        entry = {"name": name, "value": float(value), "seed": seed, "note": note, "context": context}
        self.metrics = [m for m in self.metrics if (m["name"], m.get("seed")) != (name, seed)]
        self.metrics.append(entry)
        return entry

    def spread(self, name: str) -> Spread:
        """Mean ± sd (n) of metric ``name`` over the seeds this record holds it for."""
        values = [m["value"] for m in self.metrics if m["name"] == name]
        if not values:
            raise KeyError(f"no metric {name!r}; recorded: {sorted({m['name'] for m in self.metrics})}")
        return aggregate(values)

    def claim(self, result, **context) -> dict:
        """Record an ordering claim's verdict (a ``claims.OrderingResult``) and return its dict."""
        entry = {**result.to_dict(), "context": context}
        same = (entry["claim"], json.dumps(context, sort_keys=True, default=str))
        self.claims = [c for c in self.claims
                       if (c["claim"], json.dumps(c.get("context", {}), sort_keys=True, default=str)) != same] + [entry]
        return entry

    @property
    def wall_time_s(self) -> float:
        """Seconds since the record was opened (a notebook opens it in its setup cell)."""
        return time.time() - self.started

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA_VERSION,
            "notebook": self.notebook,
            "profile": self.profile,
            "seeds": list(self.seeds),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "wall_time_s": round(self.wall_time_s, 3),
            "environment": env.collect(self.profile, list(self.seeds)),
            "cells": self.cells,
            "metrics": self.metrics,
            "claims": self.claims,
        }

    def save(self, directory: str | Path | None = None) -> Path:
        path = Path(directory or results_dir(self.profile)) / f"{self.notebook}.json"
        write_json_atomic(path, self.to_dict())
        return path


def _upgrade(record: dict, path: Path) -> dict:
    """Read a schema-1 record (one seed per record) as schema 2."""
    if record.get("schema") == 1:
        seed = record.get("seed")
        record = {**record, "schema": 2, "seeds": [seed], "claims": [],
                  "cells": [{**c, "seed": seed} for c in record["cells"]],
                  "metrics": [{**m, "seed": seed} for m in record["metrics"]]}
    if record.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"{path}: run record schema {record.get('schema')!r}, expected {SCHEMA_VERSION}")
    return record


def load_records(root: str | Path | None = None, profiles=None) -> list[dict]:
    """Every saved run record under ``root`` (default ``build/results``), optionally by profile."""
    root = Path(root or results_dir())
    records = []
    for path in sorted(root.glob("*/*.json")):
        if profiles is not None and path.parent.name not in profiles:
            continue
        record = _upgrade(json.loads(path.read_text()), path)
        record["path"] = str(path)
        records.append(record)
    return records


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per reproduced cell and seed: paper coordinates, value, seed, profile, weights, provenance."""
    rows = []
    for i, rec in enumerate(records):
        for c in rec["cells"]:
            rows.append({**{k: c[k] for k in ("paper", "table", "row", "column", "value", "weights", "note")},
                         "seed": c.get("seed"), "profile": rec["profile"], "notebook": rec["notebook"],
                         "git_sha": rec["environment"].get("git_sha"), "started": rec["started"], "record": i})
    columns = ["paper", "table", "row", "column", "value", "weights", "note", "seed", "profile", "notebook",
               "git_sha", "started", "record"]
    return pd.DataFrame(rows, columns=columns)


def compare(records: list[dict] | None = None, paper_names=None, profile: str | None = None) -> pd.DataFrame:
    """Every paper cell next to our best reproduction of it, aggregated over its seeds.

    Columns: paper, table, row, column, unit, paper_value, ours (mean over seeds), ours_sd, n
    (seeds), delta (ours - paper), profile, weights, notebook, status (``not yet`` / ``toy`` /
    ``quick`` / ``paper``), and released / released_delta (the authors' released weights evaluated
    by this book, where a record holds them). The best reproduction of a cell is one record's: the
    largest profile's, then the latest; seeds of different records are never mixed. ``ours`` prefers
    computed weights (toy / retrained / random) and falls back to released ones, which then also fill
    ``released``. With ``profile`` only that profile's records are used (``smoke`` included, for CI
    runs); otherwise smoke records are ignored.
    """
    records = load_records() if records is None else records
    cells = [c for name in (paper_names or papers.PAPERS) for c in papers.load(name)]
    base = pd.DataFrame([{"paper": c.paper, "table": c.table, "row": c.row, "column": c.column, "unit": c.unit,
                          "paper_value": c.value} for c in cells])
    ours = records_frame(records)
    if profile is not None:
        ours = ours[ours["profile"] == profile]
    else:
        ours = ours[ours["profile"].isin(STATUS_ORDER)]
    key = ["paper", "table", "row", "column"]
    released = _best_cells(ours[ours["weights"] == "released"], key)
    computed = _best_cells(ours[ours["weights"] != "released"], key)
    fallback = released[~released.set_index(key).index.isin(computed.set_index(key).index)] if len(computed) else released
    ours = pd.concat([computed, fallback], ignore_index=True) if len(fallback) else computed
    df = base.merge(ours, on=key, how="left")
    df = df.merge(released[key + ["ours"]].rename(columns={"ours": "released"}), on=key, how="left")
    df["delta"] = df["ours"] - df["paper_value"]
    df["released_delta"] = df["released"] - df["paper_value"]
    df["status"] = df["profile"].where(df["profile"].notna(), "not yet")
    return df


def _best_cells(ours: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """One row per cell from the best record holding it (largest profile, then latest): mean, sd and n
    over that record's seeds, with its profile, weights source and notebook."""
    columns = key + ["ours", "ours_sd", "n", "profile", "weights", "notebook"]
    if not len(ours):
        return pd.DataFrame(columns=columns)
    rank = {p: i for i, p in enumerate(STATUS_ORDER)}
    best = (ours.assign(_rank=ours["profile"].map(lambda p: rank.get(p, -1)))
                .sort_values(["_rank", "started", "record"])
                .drop_duplicates(key, keep="last")[key + ["record"]])
    rows = []
    for cell, group in ours.merge(best, on=key + ["record"]).groupby(key, sort=False):
        spread = aggregate(group["value"])
        first = group.iloc[0]
        rows.append({**dict(zip(key, cell)), "ours": spread.mean, "ours_sd": spread.sd, "n": spread.n,
                     "profile": first["profile"], "weights": first["weights"], "notebook": first["notebook"]})
    return pd.DataFrame(rows, columns=columns)


def claims_frame(records: list[dict] | None = None, profile: str | None = None) -> pd.DataFrame:
    """Every recorded ordering claim with its verdict and sentence (latest record per notebook and claim).
    A claim recorded with context (its table, a target dataset, ...) carries it in its label, so the same
    ordering judged in two settings stays two claims."""
    records = load_records() if records is None else records
    rows = [{"notebook": r["notebook"], "profile": r["profile"], "started": r["started"], "claim": _claim_label(c),
             "verdict": c["verdict"], "sentence": c["sentence"], "seeds": r.get("seeds")}
            for r in records for c in r.get("claims", []) if profile is None or r["profile"] == profile]
    columns = ["notebook", "profile", "started", "claim", "verdict", "sentence", "seeds"]
    df = pd.DataFrame(rows, columns=columns)
    if profile is None:
        df = df[df["profile"].isin(STATUS_ORDER)]
    return df.sort_values("started").drop_duplicates(["notebook", "profile", "claim"], keep="last")


def _claim_label(claim: dict) -> str:
    """``"a > b"``, or ``"a > b (Table 1, target=ADE20K (150))"`` with the claim's context (its split left out)."""
    context = {k: v for k, v in (claim.get("context") or {}).items() if k != "split"}
    if not context:
        return claim["claim"]
    parts = [str(v) if k == "table" else f"{k}={v}" for k, v in context.items()]
    return f"{claim['claim']} ({', '.join(parts)})"


def status_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Cells per paper and status (only cells that carry a paper value)."""
    valued = df[df["paper_value"].notna()]
    table = pd.crosstab(valued["paper"], valued["status"]).reindex(columns=list(STATUS_ORDER), fill_value=0)
    table["cells"] = table.sum(axis=1)
    order = [p for p in papers.PAPERS if p in table.index]
    return table.loc[order]


def plot_compare(df: pd.DataFrame, title: str | None = None, ax=None):
    """Ours against the paper for every reproduced cell, with the line y = x."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    done = df[df["ours"].notna() & df["paper_value"].notna()]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    if len(done):
        sns.scatterplot(data=done, x="paper_value", y="ours", hue="table", style="profile", ax=ax)
        lo = min(done["paper_value"].min(), done["ours"].min())
        hi = max(done["paper_value"].max(), done["ours"].max())
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls="--", zorder=0)
    else:
        ax.text(0.5, 0.5, "no reproduced cells yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("paper")
    ax.set_ylabel("ours")
    ax.set_title(title or "paper vs ours")
    return ax


def plot_status(df: pd.DataFrame, ax=None):
    """A stacked bar per paper: how many of its cells are reproduced, and at which profile."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    summary = status_summary(df).drop(columns="cells")
    summary.index = [papers.TITLES.get(p, p) for p in summary.index]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.8))
    colors = dict(zip(STATUS_ORDER, ["0.85"] + sns.color_palette("crest", 3).as_hex()))
    left = pd.Series(0, index=summary.index)
    for status in STATUS_ORDER:
        ax.barh(summary.index, summary[status], left=left, color=colors[status], label=status)
        left = left + summary[status]
    ax.invert_yaxis()
    ax.set_xlabel("paper-table cells")
    ax.legend(ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    sns.despine(ax=ax)
    return ax


def paper_vs_ours(record, paper: str, table: str, profile: str):
    """The paper's table with our values of this run beside it: one row per (row, column), with
    ours as mean, sd and n over the seeds, and as text (``mean ± sd (n)``)."""
    df = compare([record.to_dict()], [paper], profile=profile)
    df = df[df["table"] == table]
    rows = df[df["ours"].notna()]["row"].unique()
    df = df[df["row"].isin(rows)].copy()
    df["ours ± sd (n)"] = [format_spread(m, s, n) for m, s, n in zip(df["ours"], df["ours_sd"], df["n"])]
    out = df[["row", "column", "paper_value", "ours", "ours_sd", "n", "ours ± sd (n)", "delta", "weights"]].rename(
        columns={"paper_value": "paper", "ours_sd": "sd"})
    return out.set_index(["row", "column"]).round(1)
