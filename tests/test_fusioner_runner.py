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
