"""Assemble and render the site.

1. Copy the executed notebooks of a profile (``build/executed/<profile>/``) into
   ``book/notebooks/`` (git-ignored).
2. Generate the pages whose content is data: the Reproduction status page (every cell of every
   paper table with its status and delta, from ``ovnb/papers/*.yaml`` and the run records) and the
   Environment page (versions, device, per-notebook wall times).
3. Run jupyter-book with execution off: the notebooks already carry their outputs.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from . import env, papers, results, runner

GENERATED = "_generated"


def book_dir() -> Path:
    root = env.project_root()
    return (root if root is not None else Path.cwd()) / "book"


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:.1f}"
    return text


def _cell_html(paper_value, ours, delta, status, sd=float("nan"), n=1, weights=None, released=float("nan"),
               released_delta=float("nan")) -> str:
    """A paper value and, once reproduced, ours (``mean ± sd (n)`` over seeds when there are
    several) with the delta of the mean; below it the released weights' value where it was
    evaluated besides computed ones."""
    paper_text = _fmt(paper_value) or "–"
    if status == "not yet":
        return f'<td class="ovnb-st-none">{paper_text}</td>'
    sign = "+" if delta is not None and not math.isnan(delta) and delta >= 0 else ""
    delta_text = f" ({sign}{_fmt(delta)})" if delta is not None and not math.isnan(delta) else ""
    several = n is not None and not (isinstance(n, float) and math.isnan(n)) and n > 1
    ours_text = results.format_spread(ours, sd, int(n)) if several else _fmt(ours)
    extra = ""
    if weights != "released" and released is not None and not (isinstance(released, float) and math.isnan(released)):
        sign = "+" if released_delta >= 0 else ""
        extra = f'<br><span class="ovnb-ours">released: {_fmt(released)} ({sign}{_fmt(released_delta)})</span>'
    return (f'<td class="ovnb-st-{status}">{paper_text}<br><span class="ovnb-ours">{status}: '
            f'{html.escape(ours_text)}{delta_text}</span>{extra}</td>')


def table_html(df: pd.DataFrame, paper: str, table: papers.PaperTable) -> str:
    """One paper table as HTML: each cell shows the paper value and, if reproduced, ours and the delta."""
    sub = df[(df["paper"] == paper) & (df["table"] == table.id)].set_index(["row", "column"])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for col in table.columns:
            r = sub.loc[(row, col)]
            cells.append(_cell_html(r["paper_value"], r["ours"], r["delta"], r["status"], r["ours_sd"], r["n"],
                                    r.get("weights"), r.get("released", float("nan")),
                                    r.get("released_delta", float("nan"))))
        body.append(f"<tr><th>{html.escape(row)}</th>{''.join(cells)}</tr>")
    return (f'<table class="ovnb-paper-table"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def claims_html(claims: pd.DataFrame) -> str:
    """The recorded ordering claims: notebook, profile, claim, verdict and the generated sentence."""
    rows = []
    for _, c in claims.iterrows():
        verdict = c["verdict"].replace(" ", "-")
        rows.append(f'<tr><td>{html.escape(c["notebook"])}</td><td>{html.escape(c["profile"])}</td>'
                    f'<td>{html.escape(c["claim"])}</td><td class="ovnb-claim-{verdict}">{html.escape(c["verdict"])}</td>'
                    f'<td>{html.escape(c["sentence"])}</td></tr>')
    return ('<table class="ovnb-claims"><thead><tr><th>notebook</th><th>profile</th><th>claim</th><th>verdict</th>'
            f"<th>effect and interval</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def status_page(df: pd.DataFrame, figure: str | None, claims: pd.DataFrame | None = None) -> str:
    summary = results.status_summary(df)
    summary.index = [papers.TITLES[p] for p in summary.index]
    lines = [
        "# Reproduction status",
        "",
        "Every cell of every numeric table of the four papers. Each cell shows the paper's value and, once",
        "a notebook has reproduced it, our value, the delta (ours minus paper) and the profile it came from:",
        "`toy` (toy world and toy models, so deltas measure nothing but scale), `quick` (real weights,",
        "benchmark subsets) or `paper` (real weights, full protocol). Smoke runs never count. A value",
        "computed over several training seeds reads `mean ± sd (n seeds)`; its delta is the mean's.",
        "Paper values come from `ovnb/papers/*.yaml`, ours from the run records in `build/results/`.",
        "The four methods side by side, under one protocol rather than each paper's, are on the",
        "[Benchmark](benchmark) page.",
        "",
        "```{raw} html",
        summary.to_html(classes="ovnb-summary", border=0),
        "```",
        "",
    ]
    if figure:
        lines += [f"```{{figure}} {figure}", ":name: status-figure", "", "Paper-table cells by status.", "```", ""]
    lines += ["## The papers' claims, judged", "",
              "Each ordering claim a notebook checks, with the verdict of `ovnb.claims.check_order`: `holds` or",
              "`reversed` when the paired t interval of the difference (over seeds and folds) excludes zero,",
              "`within noise` when it does not.", ""]
    if claims is not None and len(claims):
        lines += ["```{raw} html", claims_html(claims), "```", ""]
    else:
        lines += ["No claim has been checked yet.", ""]
    for name in papers.PAPERS:
        lines += [f"## {papers.TITLES[name]}", ""]
        for table in papers.tables(name):
            lines += [f"### {papers.TITLES[name]} {table.id}", "", f"{table.caption} Unit: {table.unit}.", ""]
            if table.note:
                lines += [f"*Transcription note: {table.note}*", ""]
            lines += ["```{raw} html", table_html(df, name, table), "```", ""]
    return "\n".join(lines)


def environment_page(profile: str) -> str:
    info = env.collect(profile)
    runs = runner.load_runs(profile)
    versions = pd.DataFrame({"version": {**{"python": info["python"]}, **info["packages"]}})
    lines = [
        "# Environment",
        "",
        f"The site was assembled from the `{profile}` profile's executed notebooks. Each executed notebook",
        "also prints its own environment in its first cells (``ovnb.env.report()``).",
        "",
        "## Build machine",
        "",
        "```{raw} html",
        pd.DataFrame({"value": {"platform": info["platform"], "device": info["device"],
                                "gpu": info["gpu"] or "none", "cpu threads": info["cpu_threads"],
                                "git sha": info["git_sha"] or "unknown"}}).to_html(border=0),
        versions.fillna("not installed").to_html(border=0),
        "```",
        "",
        "## Notebook runs",
        "",
    ]
    if runs:
        frame = pd.DataFrame(runs.values())[["notebook", "profile", "status", "wall_time_s", "started"]]
        frame = frame.rename(columns={"wall_time_s": "wall time (s)"})
        lines += ["```{raw} html", frame.to_html(index=False, border=0), "```", ""]
        total = sum(r["wall_time_s"] for r in runs.values())
        lines += [f"Total notebook wall time: {total:.1f} s.", ""]
    else:
        lines += ["No notebook has been executed in this profile yet.", ""]
    return "\n".join(lines)


BENCHMARK_NOTEBOOK = "05_benchmark"


def benchmark_page(records: list[dict]) -> str:
    """The cross-paper benchmark from the run records of ``05_benchmark`` (one section per profile):
    quality per method and entry (``mean ± sd (n)``, n = distinct weights), each method's own paper
    number where its paper reported that cell, the cost measured in the same run, the claims judged, and
    the protocol differences to each paper. Nothing here is typed: every number is a record's or a
    paper table's (``ovnb/papers/*.yaml``)."""
    from .reproduce import crosspaper

    lines = [
        "# Benchmark: four methods, one protocol",
        "",
        "The book's four methods on the same images, the same vocabulary, the same seen/unseen split and the",
        "same metric code (`ovnb.reproduce.crosspaper`; the notebook is *Four methods, one benchmark*). These",
        "are **not paper reproductions** (those are on the [reproduction status](status) page): each paper",
        "uses its own protocol, listed at the end. Every number is labelled with the profile it came from and",
        "its weights source; `toy` numbers show orderings in the toy world, not real-world values, and",
        "`smoke` / `dryrun` numbers only show that the code ran.",
        "",
    ]
    ours = [r for r in records if r["notebook"] == BENCHMARK_NOTEBOOK]
    if not ours:
        lines += ["The benchmark has not been run yet: `ovnb run 05_benchmark --profile toy`.", ""]
    order = {p: i for i, p in enumerate(("paper", "quick", "toy", "dryrun", "smoke"))}
    for rec in sorted(ours, key=lambda r: order.get(r["profile"], 9)):
        quality = [m for m in rec["metrics"] if m.get("context", {}).get("kind") == "quality"]
        cost = [m for m in rec["metrics"] if m.get("context", {}).get("kind") == "cost"]
        lines += [f"## Profile `{rec['profile']}`", "",
                  f"Run of {rec['started']} (git {rec['environment'].get('git_sha') or 'unknown'}, device "
                  f"{rec['environment'].get('device', 'unknown')}), seeds {rec['seeds']}.", ""]
        if quality:
            frame = pd.DataFrame([{**m["context"], "value": m["value"], "seed": m["seed"]} for m in quality])
            cells = {}
            for (method, entry, metric), group in frame.groupby(["method", "entry", "metric"], sort=False):
                spread = results.aggregate(group["value"].tolist())
                text = results.format_spread(spread.mean, spread.sd, spread.n) if spread.n > 1 else _fmt(spread.mean)
                paper = crosspaper.PAPER_CELLS.get((method, entry, metric))
                if paper is not None:
                    text += f" [paper: {_fmt(papers.cell(*paper).value)}]"
                weights = group["weights"].iloc[0]
                cells[(entry, f"{method} ({weights})"), metric] = text
            table = pd.Series(cells).unstack()
            columns = [m for m in crosspaper.METRICS + crosspaper.PANOPTIC_METRICS if m in table.columns]
            table = table[columns].fillna("")
            table.index = pd.MultiIndex.from_tuples(table.index, names=["entry", "method (weights)"])
            lines += ["### Quality (%)", "",
                      "`mean ± sd (n)` over distinct weights; `[paper: x]` is the method's own paper number for that",
                      "cell, in **its paper's protocol**.", "",
                      "```{raw} html", table.to_html(classes="ovnb-benchmark", border=0), "```", ""]
        if cost:
            frame = pd.DataFrame([{**m["context"], "value": m["value"]} for m in cost])
            table = frame.pivot_table(index="method", columns="quantity", values="value", sort=False)
            table = table[[c for c in crosspaper.COST_COLUMNS if c in table.columns]]
            device = frame["device"].iloc[0] if "device" in frame else "unknown"
            lines += ["### Cost", "",
                      f"Measured in the same run, one method after the other, on `{device}`: parameters in millions",
                      "(trainable; total with the frozen encoders), training time in this profile, median and first",
                      "seconds per image, peak memory (weights + working memory).", "",
                      "```{raw} html", table.apply(lambda column: column.map(_fmt)).to_html(classes="ovnb-benchmark",
                                                                                           border=0), "```", ""]
        claims = [c for c in rec.get("claims", [])]
        if claims:
            lines += ["### Rankings judged", ""]
            lines += [f"- {c['context'].get('entry')}, {c['context'].get('metric')}: `{c['claim']}` "
                      f"**{c['verdict']}**" for c in claims]
            lines += [""]
    lines += ["## How this benchmark differs from each paper", ""]
    for method, items in crosspaper.DIFFERENCES.items():
        lines += [f"**{method}**", ""] + [f"- {item}" for item in items] + [""]
    return "\n".join(lines)


def assemble(profile: str, book: Path | None = None) -> Path:
    """Copy executed notebooks and write the generated pages; returns the book folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    book = book or book_dir()
    nb_dir = book / "notebooks"
    if nb_dir.exists():
        shutil.rmtree(nb_dir)
    nb_dir.mkdir(parents=True)
    for executed in sorted(runner.executed_dir(profile).glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(executed, nb_dir / executed.name)
    gen = book / GENERATED
    gen.mkdir(parents=True, exist_ok=True)
    df = results.compare()
    fig_name = "status.png"
    ax = results.plot_status(df)
    ax.figure.tight_layout()
    ax.figure.savefig(gen / fig_name, dpi=120)
    plt.close(ax.figure)
    (gen / "status.md").write_text(status_page(df, fig_name, results.claims_frame()))
    (gen / "environment.md").write_text(environment_page(profile))
    (gen / "benchmark.md").write_text(benchmark_page(results.load_records()))
    return book


def build(profile: str, book: Path | None = None, strict: bool = True) -> int:
    """Assemble, then render with jupyter-book (execution off). Returns jupyter-book's exit code."""
    book = assemble(profile, book)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book), "--keep-going"]
    if strict:
        cmd += ["-W", "-n"]
    return subprocess.run(cmd).returncode
