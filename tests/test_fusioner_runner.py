"""The Fusioner runner with seeds: keys, kept evaluations, and training in parallel processes."""

import dataclasses

import pytest

from ovnb import profiles
from ovnb.reproduce.fusioner import Experiment, Runner, unit_values


def smoke(**changes):
    return dataclasses.replace(profiles.load("smoke"), **changes)


def test_seeds_get_their_own_runs_and_a_seedless_model_shares_one(build_dir):
    runner = Runner(smoke(seeds=(0, 1)), cache_dir=None)
    e = Experiment("toy-clip-vit", "toy-clip-vit", fold=1)
    a, b = e.with_seeds(runner.seeds)
    assert (a.seed, b.seed) == (0, 1)
    assert runner.run_dir(a) != runner.run_dir(b)
    b3 = Experiment("toy-clip-vit", "toy-clip-vit", fusion="none", decoder=False, fold=1)
    assert runner.run_dir(b3) == runner.run_dir(dataclasses.replace(b3, seed=5))
    out_a, out_b = runner.run(a), runner.run(b)
    assert out_a.trained_now and out_b.trained_now
    # different initialisation and batches: different weights (same test episodes)
    assert out_a.history[-1]["loss"] != out_b.history[-1]["loss"]


def test_a_kept_evaluation_is_read_back_not_recomputed(build_dir, monkeypatch):
    runner = Runner(smoke(), cache_dir=None)
    e = Experiment("toy-clip-vit", "toy-clip-vit", fold=2)
    first = runner.run(e)
    assert runner.is_done(e) and not runner.is_done(e, "pascal-transfer")
    import ovnb.reproduce.fusioner as module

    def fail(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(module, "evaluate_episodes", fail)
    again = runner.run(e)
    assert not again.trained_now and (again.miou, again.fb_iou, again.per_class) == (first.miou, first.fb_iou,
                                                                                      first.per_class)


@pytest.mark.slow
def test_parallel_workers_compute_what_one_process_computes(tmp_path, monkeypatch):
    import torch

    experiments = [x for f in (0, 3) for x in Experiment("toy-clip-vit", "toy-clip-vit", fold=f).with_seeds((0, 1))]
    weights = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker: then the two must agree exactly
    for workers in (1, 2):
        monkeypatch.setenv("OVNB_BUILD_DIR", str(tmp_path / f"build-{workers}"))
        runner = Runner(smoke(seeds=(0, 1), workers=workers), cache_dir=tmp_path / f"cache-{workers}")
        outs = runner.run_all(experiments)
        assert [o.experiment for o in outs] == experiments
        assert all(runner.is_done(e) for e in experiments)
        weights[workers] = [torch.load(runner.run_dir(e) / "checkpoint.pt", weights_only=False)["module"]
                            for e in experiments]
        runner.close()
    torch.set_num_threads(threads)
    for one, two in zip(weights[1], weights[2]):
        assert one.keys() == two.keys()
        for name in one:
            torch.testing.assert_close(one[name], two[name], rtol=0, atol=0)


def test_prepare_data_prepares_a_missing_dataset_then_loads_it(build_dir, tmp_path, monkeypatch, capsys):
    from test_fewshot import make_voc

    from ovnb.data import fewshot, prepare

    prepared = []

    def fake_prepare(name, root, sources=None):  # stands in for the downloads
        prepared.append(name)
        if name == "voc2012":  # the fixture writes the images, masks and split lists at once
            make_voc(root)

    monkeypatch.setattr(prepare, "prepare", fake_prepare)
    profile = smoke(data="real")
    e = Experiment("toy-clip-vit", "toy-clip-vit", fold=0, dataset="pascal")
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare voc2012 fewshot-splits"):
        Runner(profile, data_root=tmp_path / "data", cache_dir=None).test_set(e)
    assert not prepared
    episodes = Runner(profile, data_root=tmp_path / "data", cache_dir=None, prepare_data=True).test_set(e)
    assert prepared == ["voc2012", "fewshot-splits"] and len(episodes) > 0
    assert "downloads VOCtrainval_11-May-2012.tar" in capsys.readouterr().out


def test_a_profile_selects_grid_rows_and_names_unknown_ones():
    grid = [("A x", 1), ("B y", 2), ("C z", 3)]
    assert Runner(smoke(), cache_dir=None).select(grid, "fusioner.table1.rows") == grid
    runner = Runner(smoke(extra={"fusioner.table1.rows": ["C z", "A x"]}), cache_dir=None)
    assert runner.select(grid, "fusioner.table1.rows") == [("A x", 1), ("C z", 3)]  # in the grid's order
    bad = Runner(smoke(extra={"fusioner.table1.rows": ["B why"]}), cache_dir=None)
    with pytest.raises(ValueError, match=r"unknown rows \['B why'\]; valid rows: \['A x', 'B y', 'C z'\]"):
        bad.select(grid, "fusioner.table1.rows")
    with pytest.raises(ValueError, match="fusioner.folds must be distinct folds among 0-3, got \\[4\\]"):
        Runner(smoke(extra={"fusioner.folds": [4]}), cache_dir=None)
    assert Runner(smoke(extra={"fusioner.folds": [2, 0]}), cache_dir=None).folds == (2, 0)


def _outcomes(values):
    """Outcomes with hand-set mIoU per (seed, fold)."""
    from ovnb.reproduce.fusioner import Outcome

    return [Outcome(Experiment("v", "t", fold=f, seed=s), miou=v, fb_iou=0.0, per_class={}, train_s=0.0, eval_s=0.0,
                    iterations=1, trained_now=False) for (s, f), v in values.items()]


def test_record_folds_records_each_fold_and_the_mean_only_of_all_four(build_dir):
    from ovnb import results
    from ovnb.reproduce.fusioner import record_folds

    cols = [f"early 5^{f}" for f in range(4)] + ["early mIoU"]
    row = "B CLIP-L + CLIP-L"
    record = results.RunRecord("nb", "smoke", seeds=[0, 1])
    values = {(s, f): 0.1 * (f + 1) + 0.05 * s for s in (0, 1) for f in range(4)}
    means = record_folds(record, _outcomes(values), "Table 1", row, cols, "toy")
    assert means.to_dict() == pytest.approx({0: 25.0, 1: 30.0})  # (10 + 20 + 30 + 40) / 4, then + 5
    cells = {(c["column"], c["seed"]): c["value"] for c in record.cells}
    assert cells[("early 5^2", 1)] == pytest.approx(35.0) and cells[("early mIoU", 0)] == pytest.approx(25.0)

    one_fold = results.RunRecord("nb", "smoke", seeds=[0])
    means = record_folds(one_fold, _outcomes({(0, 0): 0.5}), "Table 1", row, cols, "random")
    assert means.to_dict() == {0: 50.0}
    assert [c["column"] for c in one_fold.cells] == ["early 5^0"], "no mean of four folds from one"
