"""Run records and their comparison with the paper tables."""

import json
import math

import pytest

from ovnb import results


def test_record_round_trip_and_comparison(build_dir):
    rec = results.RunRecord("01_demo", profile="toy", seed=3)
    rec.add(50.0, paper="fusioner", table="Table 4", row="B0-CLIP-L", column="mIoU", weights="toy",
            dataset="toy folds")
    rec.metric("control_gap", 0.25)
    path = rec.save()
    assert path == build_dir / "results" / "toy" / "01_demo.json"
    saved = json.loads(path.read_text())
    assert saved["profile"] == "toy" and saved["seed"] == 3
    assert saved["cells"][0]["protocol"] == {"dataset": "toy folds"}
    assert saved["wall_time_s"] >= 0 and "packages" in saved["environment"]

    df = results.compare()
    row = df[(df.paper == "fusioner") & (df.table == "Table 4") & (df.row == "B0-CLIP-L") & (df.column == "mIoU")]
    assert row["paper_value"].item() == 59.0
    assert row["ours"].item() == 50.0
    assert row["delta"].item() == pytest.approx(-9.0)
    assert row["status"].item() == "toy" and row["weights"].item() == "toy"
    untouched = df[(df.paper == "fc_clip") & (df.table == "Table 1")]
    assert set(untouched["status"]) == {"not yet"} and untouched["ours"].isna().all()


def test_the_largest_profile_wins_and_smoke_never_counts(build_dir):
    for profile, value in (("smoke", 1.0), ("toy", 2.0), ("quick", 3.0)):
        rec = results.RunRecord("01_demo", profile=profile)
        rec.add(value, paper="simbaseline", table="Table 2", row="Ours", column="hIoU", weights="toy")
        rec.save()
    df = results.compare()
    cell = df[(df.paper == "simbaseline") & (df.table == "Table 2") & (df.row == "Ours") & (df.column == "hIoU")]
    assert cell["ours"].item() == 3.0 and cell["status"].item() == "quick"
    smoke_only = results.compare(profile="smoke")
    cell = smoke_only[(smoke_only.paper == "simbaseline") & (smoke_only.row == "Ours") & (smoke_only.column == "hIoU")
                      & (smoke_only.table == "Table 2")]
    assert cell["ours"].item() == 1.0
    summary = results.status_summary(df)
    assert summary.loc["simbaseline", "quick"] == 1
    assert summary.loc["simbaseline", "cells"] == 144


def test_records_reject_unknown_cells_and_weights(build_dir):
    rec = results.RunRecord("01_demo", profile="toy")
    with pytest.raises(KeyError, match="rows"):
        rec.add(1.0, paper="fusioner", table="Table 4", row="B7", column="mIoU", weights="toy")
    with pytest.raises(ValueError, match="weights must be one of"):
        rec.add(1.0, paper="fusioner", table="Table 4", row="B0-CLIP-L", column="mIoU", weights="imagenet")


def test_plots_draw_with_and_without_reproduced_cells(build_dir):
    import matplotlib

    matplotlib.use("Agg")
    df = results.compare()
    assert results.plot_status(df) is not None
    ax = results.plot_compare(df)
    assert any("no reproduced" in t.get_text() for t in ax.texts)
    rec = results.RunRecord("01_demo", profile="toy")
    rec.add(40.0, paper="fusioner", table="Table 4", row="B1-CLIP-L", column="mIoU", weights="toy")
    rec.save()
    ax = results.plot_compare(results.compare())
    assert len(ax.collections) >= 1 and not math.isnan(ax.get_xlim()[0])


def test_status_table_html_shows_paper_ours_and_delta(build_dir):
    from ovnb import book, papers

    rec = results.RunRecord("01_demo", profile="toy")
    rec.add(50.0, paper="fusioner", table="Table 4", row="B0-CLIP-L", column="mIoU", weights="toy")
    rec.save()
    table = next(t for t in papers.tables("fusioner") if t.id == "Table 4")
    html = book.table_html(results.compare(), "fusioner", table)
    assert html.count("<tr>") == 1 + 4  # header + B0..B3
    assert '<td class="ovnb-st-toy">59.0<br><span class="ovnb-ours">toy: 50.0 (-9.0)</span></td>' in html
    assert '<td class="ovnb-st-none">46.6</td>' in html  # B2 mIoU, not reproduced
