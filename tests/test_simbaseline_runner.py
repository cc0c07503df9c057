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


def test_predicted_masks_are_the_ones_evaluate_scores(build_dir):
    """``Runner.predict`` gives the label maps that ``evaluate`` counts: their confusion matrix, built
    here with the metrics module, has the kept per-class IoUs."""
    from ovnb.metrics import ConfusionMatrix

    runner = rs.Runner(smoke(), workers=1)
    e = rs.Experiment(head="fcn")
    indices = runner.test_indices(e)
    labels = runner.predict(e, indices, "generator")
    test = runner.test_set(e)
    matrix = ConfusionMatrix(len(test.class_names))
    for i, label in zip(indices, labels):
        assert label.shape == test[i]["mask"].shape
        matrix.update(label, test[i]["mask"])
    assert rs.matrix_per_class(matrix) == runner.evaluate(e, "generator")["per_class"]


def test_the_masks_figure_shows_an_image_with_an_unseen_class(build_dir):
    import matplotlib

    matplotlib.use("Agg")
    runner = rs.Runner(smoke(), workers=1)
    fig = runner.masks_figure({"FCN": rs.Experiment(head="fcn")})
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth", "FCN"]
    index = int(fig._suptitle.get_text().split("test image ")[1].split(",")[0])
    test, unseen = runner.test_set(rs.Experiment()), set(runner.split(rs.Experiment()).unseen)
    evaluated = runner.test_indices(rs.Experiment())
    holding = [i for i in evaluated if set(test[i]["mask"].unique().tolist()) & unseen]
    assert index == (holding[0] if holding else evaluated[0])
    from ovnb.viz import label_image

    drawn = fig.axes[2].images[0].get_array()
    expected = label_image(runner.predict(rs.Experiment(head="fcn"), [index], "generator")[0], len(test.class_names))
    assert (abs(drawn - expected) < 1e-6).all(), "the panel is that model's prediction for that image"


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
    teacher, names = runner.model(student.teacher), list(base.class_names)
    for i in (0, len(labelled) - 1):  # written a batch at a time: each the teacher's one-image labels
        one = sb.pseudo_labels(rs.segment_at(teacher, base[i]["image"], names, None, base[i]["mask"].shape),
                               base[i]["mask"], split.seen_flags, runner.pseudo_threshold)
        assert (labelled[i]["mask"] != one).float().mean() < 0.002
    model = runner.model(student)
    assert set(model.seen_names) == set(split.class_names)  # the student learns every class name



def test_test_sizes_are_the_official_ones_and_the_dry_run_caps_them():
    coco, voc = rs.Experiment("coco-stuff-171"), rs.Experiment("voc-20")
    paper = rs.Runner(profiles.load("paper"), workers=1)
    assert (paper.test_size(coco), paper.test_size(voc)) == (640, 512)
    assert [paper.test_size(coco, t) for t in rs.CROSS_DATASETS] == [1024, 512, 512, 512]
    # the cross-paper benchmark's other test sets: zsseg's cross-dataset size (VOC's own config says 512 too)
    assert [paper.test_edge(d) for d in ("voc-20", "pascal-context-459")] == [512, 512]
    dry = rs.Runner(profiles.load("dryrun"), workers=1)
    assert {dry.test_size(coco), dry.test_size(voc), dry.test_size(coco, "cityscapes-19")} == {128}
    assert rs.Runner(profiles.load("toy"), workers=1).test_size(coco) is None  # the toy world as drawn


def test_voc_runs_the_official_fraction_of_a_shortened_coco_schedule():
    coco, voc = rs.Experiment("coco-stuff-171"), rs.Experiment("voc-20")
    toy = rs.Runner(profiles.load("toy"), workers=1)
    assert (toy.settings(coco).iterations, toy.settings(voc).iterations) == (150, 50)  # 150 * 20k / 60k
    assert rs.Runner(smoke(), workers=1).settings(voc).iterations == 1  # never below one step
    paper = rs.Runner(profiles.load("paper"), workers=1)
    assert (paper.settings(coco).iterations, paper.settings(coco).batch_size) == (60_000, 32)
    assert (paper.settings(voc).iterations, paper.settings(voc).batch_size) == (20_000, 16)


def test_table4_swaps_the_vision_language_model_and_gets_its_own_run(build_dir):
    runner = rs.Runner(smoke(), workers=1)
    default, conv = rs.Experiment("voc-20"), rs.Experiment("voc-20", clip="toy-clip-convnext")
    assert runner.config(default).clip == "toy-clip-vit" and runner.config(conv).clip == "toy-clip-convnext"
    assert runner.run_dir(default) != runner.run_dir(conv)
    assert runner.build(conv).clip is runner.encoder("toy-clip-convnext")


def test_cross_dataset_targets_and_classical_proposals_are_checked(build_dir):
    runner = rs.Runner(smoke(), workers=1)
    e = rs.Experiment()
    shifted = runner.target_set(e, "toy-shifted")
    assert shifted.name.endswith("-shifted") and shifted.class_names == runner.test_set(e).class_names
    with pytest.raises(ValueError, match="cross-dataset target 'ade20k-150' is not one of"):
        runner.target_set(e, "ade20k-150")  # a real dataset in a toy profile
    real = rs.Runner(profiles.load("paper"), data_root=build_dir / "no-data", workers=1)
    from ovnb.data.files import DatasetMissingError

    for target, dataset in (("ade20k-150", "ade20k-150"), ("pascal-context-59", "pascal-context"),
                            ("ade20k-847", "ade20k-847"), ("cityscapes-19", "cityscapes-19")):
        with pytest.raises(DatasetMissingError, match=f"ovnb data prepare {dataset} "):
            real.target_set(e, target)  # the data is missing, and the error says how to get it
    with pytest.raises(ValueError, match="proposals must be one of"):
        runner.evaluate(e, "ensemble", proposals="ucm")
    with pytest.raises(ValueError, match="proposals must be one of"):
        runner.evaluate(e, "clip", proposals="gpb-ucm")


def test_classical_proposals_and_a_second_clip_are_evaluated_and_kept_apart(build_dir):
    runner = rs.Runner(smoke(), workers=1)
    e = rs.Experiment()
    plain = runner.evaluate(e, "clip")
    ucm = runner.evaluate(e, "clip", proposals="ucm")
    conv = runner.evaluate(e, "clip", region_clip="toy-clip-convnext")
    shifted = runner.evaluate(e, "ensemble", target="toy-shifted")
    assert len({str(x["per_class"]) for x in (plain, ucm, conv)}) == 3, "each setting is its own evaluation"
    assert len(list(runner.run_dir(e).glob("evaluation-*.json"))) == 4
    assert runner.model(e).region_clip is None, "the region classifier is restored after Table 8"
    assert 0 <= shifted["mIoU"] <= 100


def test_learned_prompts_are_trained_once_kept_and_used_only_by_clip(build_dir):
    runner = rs.Runner(smoke(), workers=1)
    e = rs.Experiment()
    assert runner.prompt_settings(e) == {"iterations": 2, "batch_size": 32, "per_class": 32}  # smoke shortens COCO's
    assert rs.Runner(profiles.load("paper"), workers=1).prompt_settings(rs.Experiment("voc-20")) == \
        {"iterations": 3_200, "batch_size": 16, "per_class": 128}  # the official VOC schedule
    runner.train_all([e], prompts=True)
    assert runner.is_done("prompts", e) and runner.is_trained(e)
    first = runner.prompts(e).prefix.detach().clone()
    assert torch.equal(rs.Runner(smoke(), workers=1).prompts(e).prefix, first), "a finished run is loaded, not retrained"
    manual, learned = runner.evaluate(e, "clip"), runner.evaluate(e, "clip", prompts="learned")
    same = runner.evaluate(e, "clip", prompts="manual")  # the experiment's own text side: the one kept evaluation
    assert same["eval_s"] == manual["eval_s"] and same["per_class"] == manual["per_class"]
    assert manual["per_class"] != learned["per_class"], "the learned vectors change what CLIP names"
    assert getattr(runner.model(e), "prompts", None) is None, "the templates come back"
    with pytest.raises(ValueError, match="prompts must be one of .* with classifier='clip'"):
        runner.evaluate(e, "ensemble", prompts="learned")
    with pytest.raises(ValueError, match="got 'lerned'"):
        runner.evaluate(e, "clip", prompts="lerned")


def test_a_learned_prompt_experiment_trains_after_its_prompts_and_names_classes_with_them(build_dir, monkeypatch):
    """``prompt="learned"``: the prompts are trained first (then the teacher, then its self-training
    student), the class head learns against them, and both branches keep using them after an evaluation."""
    with pytest.raises(ValueError, match="prompt must be one of \\('manual', 'learned'\\), got 'lerned'"):
        rs.Experiment(prompt="lerned")
    runner = rs.Runner(smoke(), workers=1)
    student = rs.Experiment(prompt="learned", self_training=True)
    e = student.teacher
    assert runner.run_dir(e) != runner.run_dir(rs.Experiment()) and runner.prompt_dir(e) == runner.prompt_dir(rs.Experiment())
    done = []
    real_job = runner.job
    monkeypatch.setattr(runner, "job", lambda kind, x: (done.append((kind, x)), real_job(kind, x)))
    runner.train_all([student])
    assert done == [("prompts", e), ("model", e), ("model", student)]
    names = list(runner.split(e).class_names[:3])
    expected = runner.prompts(e)(names)  # the learned prefix before the names, read at EOS
    model = runner.model(e)
    assert torch.allclose(model.text_embeddings(names), expected)
    assert not torch.allclose(expected, model.clip.embed_text(names, model.config.templates).float(), atol=1e-3)
    runner.evaluate(e, "ensemble")
    assert runner.model(e).prompts is runner.prompts(e), "an evaluation leaves the experiment's own prompts in place"
    manual = runner.evaluate(e, "clip", prompts="manual")  # the same proposals named with the templates
    assert manual["per_class"] != runner.evaluate(e, "clip")["per_class"]
    assert runner.model(e).prompts is runner.prompts(e)
    assert runner.prompt == "manual" and rs.Runner(profiles.load("dryrun"), workers=1).prompt == "learned"


def test_a_cross_dataset_target_gets_its_official_lambda_for_trained_and_released_models(build_dir, monkeypatch):
    runner = rs.Runner(smoke(), workers=1)
    e = rs.Experiment()
    model = runner.model(e)
    monkeypatch.setitem(sb.ENSEMBLE_WEIGHTS, "toy-shifted", {"lam": 0.3, "mask_threshold": 0.4})
    seen, first = [], {}
    segment = model.segment

    def spy(images, names):  # the configuration the model segments with during an evaluation
        first.setdefault("config", (model.config.lam, model.config.mask_threshold))
        return segment(images, names)

    monkeypatch.setattr(model, "segment", spy)
    monkeypatch.setattr(runner, "released", lambda name: model)  # stands in for a downloaded checkpoint
    for evaluation in (lambda: runner.evaluate(e, "ensemble", target="toy-shifted"),
                       lambda: runner.evaluate_released("zsseg-coco156-cross-dataset", target="toy-shifted"),
                       lambda: runner.evaluate(e, "ensemble")):
        first.clear()
        evaluation()
        seen.append(first["config"])
    assert seen == [(0.3, 0.4), (0.3, 0.4), (0.8, 0.5)], "the target's config while it is evaluated, then back"
    assert (model.config.lam, model.config.mask_threshold) == (0.8, 0.5)


def test_evaluations_are_scheduled_after_what_they_need_longest_chains_first(build_dir, monkeypatch):
    """``train_all(..., evaluations=...)`` trains what the evaluations need first - prompts, then the
    teacher, then its self-training student, then the other models - and runs each evaluation once;
    ``evaluate_all`` returns what ``evaluate`` then reads back from disk, in the order asked."""
    runner = rs.Runner(smoke(), workers=1)
    student, fcn = rs.Experiment(self_training=True), rs.Experiment(head="fcn")
    teacher = student.teacher
    asked = [rs.Evaluation(fcn, "generator"), rs.Evaluation(student), rs.Evaluation(teacher, "clip", prompts="learned"),
             rs.Evaluation(fcn, "generator")]  # asked twice: run once
    done = []
    real_job = runner.job
    monkeypatch.setattr(runner, "job", lambda kind, x: (done.append((kind, x)), real_job(kind, x)))
    scores = runner.evaluate_all(asked)
    assert done == [("prompts", teacher), ("model", teacher), ("model", student), ("model", fcn),
                    ("evaluate", asked[0]), ("evaluate", asked[1]), ("evaluate", asked[2])]
    assert all(runner.is_done("evaluate", r) for r in asked)

    def fail(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(rs, "confusion_matrix", fail)
    fresh = rs.Runner(smoke(), workers=1)
    assert scores == [fresh.evaluate(r.experiment, **r.arguments()) for r in asked]
    assert scores[0] == scores[3]
    assert fresh.evaluate_all(asked[:1]) == scores[:1]  # all kept: nothing runs
    with pytest.raises(ValueError, match="classifier must be one of .* got 'clipp'"):
        runner.is_done("evaluate", rs.Evaluation(teacher, "clipp"))


def test_evaluations_on_worker_processes_match_the_same_evaluations_in_one_process(tmp_path, monkeypatch):
    """Two workers train and evaluate; the kept scores match those of one process (the per-class IoUs
    to within float noise of one vs two threads)."""
    asked = [rs.Evaluation(rs.Experiment(head="fcn"), "generator"), rs.Evaluation(rs.Experiment(), "ensemble")]
    out = {}
    for workers in (1, 2):
        monkeypatch.setenv("OVNB_BUILD_DIR", str(tmp_path / f"workers-{workers}"))
        runner = rs.Runner(smoke(), workers=workers)
        try:
            out[workers] = runner.evaluate_all(asked)
        finally:
            runner.close()
        assert all(runner.is_done("evaluate", r) for r in asked)
    for one, two in zip(out[1], out[2]):
        assert one["pAcc"] == pytest.approx(two["pAcc"], abs=0.5)
        assert [v is None for v in one["per_class"]] == [v is None for v in two["per_class"]]
        assert [v for v in one["per_class"] if v is not None] == \
            pytest.approx([v for v in two["per_class"] if v is not None], abs=1.0)


@pytest.mark.parametrize("classifier", ["ensemble", "generator", "oracle"])
def test_batched_predictions_are_the_one_image_predictions(build_dir, classifier):
    """The toy world's test images go through the generator several at a time; the label maps are
    those of one image at a time (the per-image CLIP crops and Eq. 2 do not depend on the batch)."""
    runner = rs.Runner(smoke(), workers=1)
    e = rs.Experiment()
    model, test = runner.model(e), runner.test_set(e)
    one = dict(rs.predictions(model, test, [0, 1, 2, 3, 4], classifier, batch_size=1))
    batched = dict(rs.predictions(model, test, [0, 1, 2, 3, 4], classifier, batch_size=3))
    assert list(batched) == [0, 1, 2, 3, 4]
    for i in one:
        assert (one[i] != batched[i]).float().mean() < 0.002, f"image {i}"
