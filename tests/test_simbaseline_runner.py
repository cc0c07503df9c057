"""The SimBaseline runner: experiments as data, kept evaluations, self-training from the teacher's
pseudo-labels, the FCN baseline, and the test-time resize."""

import dataclasses

import pytest
import torch

from ovnb import profiles
from ovnb.methods import simbaseline as sb
from ovnb.reproduce import simbaseline as rs


def smoke(**changes):
    return dataclasses.replace(profiles.load("smoke"), **changes)


def test_bad_experiments_name_the_value():
    with pytest.raises(ValueError, match="split must be one of"):
        rs.Experiment("ade20k-150")
    with pytest.raises(ValueError, match="self-training starts from a model trained on the seen classes"):
        rs.Experiment(vocabulary="all", self_training=True)
    assert rs.Experiment(self_training=True, seed=3).teacher == rs.Experiment(seed=3)


def test_resize_shortest_edge_is_detectron2s():
    image = torch.zeros(1, 3, 30, 60)
    assert rs.resize_shortest_edge(image, 64).shape[-2:] == (64, 128)
    assert rs.resize_shortest_edge(image, 64, max_size=100).shape[-2:] == (50, 100)  # the long edge caps it
    assert rs.resize_shortest_edge(image, None) is image


def test_a_kept_evaluation_is_read_back_and_the_fcn_has_one_classifier(build_dir, monkeypatch):
    runner = rs.Runner(smoke(), workers=1)
    fcn = rs.Experiment(head="fcn")
    first = runner.evaluate(fcn, "generator")
    assert set(first) >= {"hIoU", "mIoU-seen", "mIoU-unseen", "pAcc", "per_class"} and first["images"] == 4
    assert isinstance(runner.model(fcn).generator, sb.PixelClassifier)
    with pytest.raises(ValueError, match="no proposals"):
        runner.evaluate(fcn, "ensemble")

    def fail(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(rs, "confusion_matrix", fail)
    assert rs.Runner(smoke(), workers=1).evaluate(fcn, "generator") == first  # a new runner: read from disk


def test_self_training_learns_the_teachers_pseudo_labels(build_dir):
    runner = rs.Runner(smoke(), workers=1)
    student = rs.Experiment(self_training=True)
    labelled = runner.pseudo_labelled(student)
    assert runner.is_trained(student.teacher) and len(labelled) == 8  # smoke: simbaseline.pseudo_images
    split = runner.split(student)
    base = runner.train_set(student)
    seen = torch.tensor(split.seen)
    for i in range(len(labelled)):
        target, truth = labelled[i]["mask"], base[i]["mask"]
        kept = torch.isin(truth, seen)
        assert torch.equal(target[kept], truth[kept])  # seen ground truth is kept
        assert not torch.isin(target[~kept], seen).any()  # elsewhere only unseen classes (or rejected)
    model = runner.model(student)
    assert set(model.seen_names) == set(split.class_names)  # the student learns every class name

