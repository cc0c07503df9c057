"""The real path, executed: every notebook in the ``dryrun`` profile, offline.

``dryrun`` builds the real architectures (CLIP ViT-B/16 and ViT-L/14, DINO, MoCo v3, BERT-B/L, ...)
with random weights, never downloaded, and reads fixture datasets made by code in the layouts
``ovnb data prepare`` writes: each notebook takes the branch it takes in ``quick`` / ``paper``. A
failure names the notebook (the test id) and the cell (index and first line of code).
"""

import shutil

import pytest

from ovnb import profiles, results, runner

pytestmark = pytest.mark.slow
NOTEBOOKS = [p.stem for p in runner.discover()]


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    build = tmp_path_factory.mktemp("dryrun") / "build"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OVNB_BUILD_DIR", str(build))
        mp.setenv("HF_HUB_OFFLINE", "1")
        runs = {r.notebook: r for r in runner.run_notebooks(NOTEBOOKS, "dryrun", progress=False, timeout=900)}
        records = results.load_records()
        fixtures = sorted(p.name for p in (build / "fixtures").iterdir())
    yield {"runs": runs, "records": records, "fixtures": fixtures}
    shutil.rmtree(build / "runs", ignore_errors=True)  # gigabytes of paper-size checkpoints


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_runs_top_to_bottom_on_the_real_path(dry, notebook):
    run = dry["runs"][notebook]
    assert run.status == "ok", f"{notebook} failed in the dry run at {run.error}\n(executed copy: {run.output})"


def test_the_profile_is_real_data_and_random_weights():
    dry = profiles.load("dryrun")
    assert (dry.data, dry.weights, dry.fixtures, dry.offline, dry.pretrained) == ("real", "random", True, True, False)


def test_the_fixtures_replaced_the_data_and_the_numbers_are_labelled_random(dry):
    assert {"VOCdevkit", "COCO2014", "FSS-1000", "splits"} <= set(dry["fixtures"])
    fusioner = [r for r in dry["records"] if r["profile"] == "dryrun" and r["notebook"].startswith("01_fusioner")]
    assert len(fusioner) == 6
    values = [v for r in fusioner for v in r["cells"]]
    weights = {v["weights"] for v in values} | {m["context"]["weights"] for r in fusioner for m in r["metrics"]
                                                if "weights" in m["context"]}
    assert values and weights == {"random"}
    # the real branch: real benchmarks and encoders, not the toy world's
    datasets = {v["protocol"].get("dataset") for v in values} - {None}
    assert datasets and not any("toy" in d for d in datasets), datasets
    assert "clip-vit-l-14" in {v["protocol"].get("visual") for v in values}


def test_dry_run_numbers_never_count_as_a_reproduction(dry):
    table = results.compare(dry["records"])
    assert "dryrun" not in set(table["status"])
    assert results.claims_frame(dry["records"]).query("profile == 'dryrun'").empty
