"""Run records and their comparison with the paper tables."""

import json
import math

import pytest

from ovnb import results


def test_record_round_trip_and_comparison(build_dir):
    rec = results.RunRecord("01_demo", profile="toy", seeds=3)
    rec.add(50.0, paper="fusioner", table="Table 4", row="B0-CLIP-L", column="mIoU", weights="toy",
            dataset="toy folds")
    rec.metric("control_gap", 0.25)
    path = rec.save()
    assert path == build_dir / "results" / "toy" / "01_demo.json"
    saved = json.loads(path.read_text())
    assert saved["profile"] == "toy" and saved["seeds"] == [3] and saved["cells"][0]["seed"] == 3
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
    seeded = results.RunRecord("01_demo2", profile="toy", seeds=[0, 1])
    for seed, value in ((0, 40.0), (1, 44.0)):
        seeded.add(value, paper="fusioner", table="Table 4", row="B1-CLIP-L", column="mIoU", weights="toy", seed=seed)
    seeded.save()
    html = book.table_html(results.compare(), "fusioner", table)
    assert 'toy: 42.0 ± 2.8 (2) (-11.6)' in html  # paper 53.6


def test_several_seeds_of_a_cell_are_aggregated_into_mean_sd_and_n(build_dir):
    rec = results.RunRecord("01_demo", profile="toy", seeds=[0, 1, 2])
    for seed, value in zip((0, 1, 2), (10.0, 20.0, 36.0)):
        rec.add(value, paper="fusioner", table="Table 4", row="B0-CLIP-L", column="mIoU", weights="toy", seed=seed)
        rec.metric("gap", value / 10, seed=seed)
    with pytest.raises(ValueError, match="say which seed"):
        rec.add(1.0, paper="fusioner", table="Table 4", row="B0-CLIP-L", column="mIoU", weights="toy")
    with pytest.raises(ValueError, match="not one of"):
        rec.metric("gap", 1.0, seed=7)
    rec.save()
    row = results.compare().set_index(["paper", "table", "row", "column"]).loc[("fusioner", "Table 4", "B0-CLIP-L", "mIoU")]
    mean = (10 + 20 + 36) / 3
    sd = math.sqrt(((10 - mean) ** 2 + (20 - mean) ** 2 + (36 - mean) ** 2) / 2)
    assert row["ours"] == pytest.approx(mean) and row["ours_sd"] == pytest.approx(sd) and row["n"] == 3
    assert row["delta"] == pytest.approx(mean - 59.0)
    assert str(rec.spread("gap")) == f"{mean / 10:.1f} ± {sd / 10:.1f} (3)"
    assert results.format_spread(22.0, float("nan"), 1) == "22.0"


def test_seeds_of_different_records_are_never_mixed(build_dir):
    for profile, values in (("toy", (1.0, 3.0)), ("quick", (50.0,))):
        rec = results.RunRecord("01_demo", profile=profile, seeds=range(len(values)))
        for seed, v in enumerate(values):
            rec.add(v, paper="fusioner", table="Table 4", row="B1-CLIP-L", column="mIoU", weights="toy", seed=seed)
        rec.save()
    cell = results.compare().set_index(["table", "row", "column"]).loc[("Table 4", "B1-CLIP-L", "mIoU")]
    assert cell["ours"] == 50.0 and cell["n"] == 1 and cell["status"] == "quick"


def test_a_schema_1_record_is_read_with_its_one_seed(build_dir):
    path = build_dir / "results" / "toy" / "01_old.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": 1, "notebook": "01_old", "profile": "toy", "seed": 4, "started": "2026-01-01T00:00:00Z",
                                "wall_time_s": 1.0, "environment": {}, "metrics": [],
                                "cells": [{"paper": "fusioner", "table": "Table 4", "row": "B2-CLIP-L", "column": "mIoU",
                                           "value": 12.0, "unit": "%", "weights": "toy", "note": None, "protocol": {}}]}))
    (record,) = results.load_records()
    assert record["seeds"] == [4] and record["cells"][0]["seed"] == 4
    cell = results.compare().set_index(["table", "row", "column"]).loc[("Table 4", "B2-CLIP-L", "mIoU")]
    assert cell["ours"] == 12.0 and cell["n"] == 1


def test_claims_are_recorded_and_listed(build_dir):
    from ovnb.claims import check_order

    rec = results.RunRecord("01_demo", profile="toy", seeds=[0, 1, 2])
    result = check_order({"early": {0: 50.0, 1: 52.0, 2: 51.0}, "late": {0: 40.0, 1: 41.0, 2: 43.0}})
    rec.claim(result)
    rec.save()
    claims = results.claims_frame()
    assert list(claims["claim"]) == ["early > late"] and list(claims["verdict"]) == ["holds"]
    assert "holds" in claims["sentence"].item()


def test_released_weights_show_beside_retrained_ones_and_stand_in_where_alone(build_dir):
    from ovnb import book, papers

    retrained = results.RunRecord("02_demo", profile="quick")
    retrained.add(30.0, paper="simbaseline", table="Table 2", row="Ours", column="hIoU", weights="retrained")
    retrained.save()
    released = results.RunRecord("02_demo.released", profile="quick")  # saved later: must not hide the retrained
    released.add(36.0, paper="simbaseline", table="Table 2", row="Ours", column="hIoU", weights="released")
    released.add(35.0, paper="simbaseline", table="Table 2", row="Ours", column="mIoU seen", weights="released")
    released.save()
    df = results.compare().set_index(["paper", "table", "row", "column"])
    both = df.loc[("simbaseline", "Table 2", "Ours", "hIoU")]
    assert (both["ours"], both["weights"], both["released"]) == (30.0, "retrained", 36.0)
    assert both["released_delta"] == pytest.approx(36.0 - 37.8)
    alone = df.loc[("simbaseline", "Table 2", "Ours", "mIoU seen")]
    assert (alone["ours"], alone["weights"], alone["released"]) == (35.0, "released", 35.0)
    table = next(t for t in papers.tables("simbaseline") if t.id == "Table 2")
    html = book.table_html(results.compare(), "simbaseline", table)
    assert "quick: 30.0 (-7.8)</span><br><span class=\"ovnb-ours\">released: 36.0 (-1.8)</span>" in html
    assert "quick: 35.0 (-4.3)</span></td>" in html, "a released value alone is not repeated"


def test_one_ordering_judged_in_two_settings_stays_two_claims(build_dir):
    from ovnb.claims import check_order

    rec = results.RunRecord("02_demo", profile="toy", seeds=[0, 1, 2])
    for target, gap in (("A", 10.0), ("B", -10.0)):
        result = check_order({"Ours": {0: 50.0, 1: 52.0, 2: 51.0}, "FCN": {0: 50.0 - gap, 1: 51.0 - gap, 2: 52.0 - gap}})
        rec.claim(result, table="Table 1", target=target, split="x")
    rec.claim(result, table="Table 1", target="B", split="x")  # the same setting again replaces it
    rec.save()
    claims = results.claims_frame().set_index("claim")["verdict"].to_dict()
    assert claims == {"Ours > FCN (Table 1, target=A)": "holds", "Ours > FCN (Table 1, target=B)": "reversed"}


def test_kept_results_are_computed_once_and_read_back(tmp_path):
    import torch

    calls = []

    def compute():
        calls.append(1)
        return {"mIoU": 41.5, "per_class": [1.0, None]}

    spec = {"b": 2, "a": [1, 2]}
    assert results.digest(spec) == results.digest({"a": [1, 2], "b": 2}) != results.digest({"a": [1], "b": 2})
    path = tmp_path / f"evaluation-{results.digest(spec)}.json"
    assert results.kept(path, compute) == results.kept(path, compute) == compute() and len(calls) == 2
    maps = [torch.arange(6).view(2, 3)]
    got = results.kept(tmp_path / "maps.pt", lambda: maps)
    again = results.kept(tmp_path / "maps.pt", lambda: pytest.fail("recomputed"))
    assert torch.equal(got[0], again[0])
