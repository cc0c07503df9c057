"""FC-CLIP: every piece against a hand computation, then the whole model on the toy CLIP."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovnb.methods import fcclip as fc


def test_mask_pool_averages_inside_binarised_masks():
    feats = torch.arange(8, dtype=torch.float32).view(1, 2, 2, 2)  # channel 0: 0 1 2 3, channel 1: 4 5 6 7
    masks = torch.tensor([[[[5.0, -1.0], [0.5, -3.0]],  # pixels (0,0), (1,0)
                           [[-1.0, -1.0], [-1.0, -1.0]]]])  # empty
    pooled = fc.mask_pool(feats, masks)
    assert torch.allclose(pooled[0, 0], torch.tensor([(0 + 2) / 2, (4 + 6) / 2]), atol=1e-6)
    assert torch.equal(pooled[0, 1], torch.zeros(2))  # an empty mask pools to zeros (sum / (0 + 1e-8))


def test_mask_pool_resizes_masks_to_the_feature_grid():
    feats = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
    masks = torch.full((1, 1, 8, 8), -1.0)
    masks[..., :, :4] = 1.0  # the left half at 4x resolution -> the left column of the 2x2 grid
    assert torch.allclose(fc.mask_pool(feats, masks), torch.tensor([[[3.0]]]))


def test_classification_logits_clamp_the_temperature_at_100():
    x = torch.tensor([[[3.0, 4.0]]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(fc.classification_logits(x, text, torch.tensor(math.log(10.0))), torch.tensor([[[6.0, 8.0]]]))
    assert torch.allclose(fc.classification_logits(x, text, torch.tensor(math.log(500.0))), torch.tensor([[[60.0, 80.0]]]))


def test_max_over_synonyms():
    logits = torch.tensor([[1.0, 5.0, 2.0, 7.0, 0.5]])
    assert torch.equal(fc.max_over_synonyms(logits, [2, 1, 2]), torch.tensor([[5.0, 2.0, 7.0]]))
    with pytest.raises(ValueError, match="sum to 4"):
        fc.max_over_synonyms(logits, [2, 2])


def _softmax(v):
    e = np.exp(np.asarray(v, dtype=np.float64) - np.max(v))
    return e / e.sum()


def test_geometric_ensemble_closed_form_with_void_rescaling():
    """One query, classes (seen, unseen) + void, computed by hand from Eq. 7 and the void rule."""
    a, b = 0.4, 0.8
    in_l = [2.0, 0.5, 1.0]  # in-vocabulary logits, void last
    out_l = [0.0, 3.0]
    p_in, p_out = _softmax(in_l[:2]), _softmax(out_l)
    fused = np.array([p_in[0] ** (1 - a) * p_out[0] ** a, p_in[1] ** (1 - b) * p_out[1] ** b])
    p_void = _softmax(in_l)[2]
    expected = np.log(np.append(fused / fused.sum() * (1 - p_void), p_void) + 1e-8)
    got = fc.ensemble(torch.tensor([[in_l]]), torch.tensor([[out_l]]), torch.tensor([True, False]), a, b)
    assert np.allclose(got[0, 0].double().numpy(), expected, atol=1e-6)


def test_arithmetic_ensemble_and_the_single_classifiers():
    in_l, out_l, seen = torch.tensor([[[2.0, 0.5, -9.0]]]), torch.tensor([[[0.0, 3.0]]]), torch.tensor([True, False])
    p_in, p_out = _softmax([2.0, 0.5]), _softmax([0.0, 3.0])
    arith = np.array([0.6 * p_in[0] + 0.4 * p_out[0], 0.2 * p_in[1] + 0.8 * p_out[1]])
    p_void = _softmax([2.0, 0.5, -9.0])[2]
    got = fc.ensemble(in_l, out_l, seen, 0.4, 0.8, "arithmetic")[0, 0].exp().double().numpy()
    assert np.allclose(got[:2], arith / arith.sum() * (1 - p_void), atol=1e-6)
    assert np.allclose(fc.ensemble(in_l, out_l, seen, kind="in")[0, 0, :2].exp().numpy(), p_in * (1 - p_void), atol=1e-6)
    assert np.allclose(fc.ensemble(in_l, out_l, seen, kind="out")[0, 0, :2].exp().numpy(), p_out * (1 - p_void), atol=1e-6)
    # alpha = beta = 0: the geometric ensemble is the in-vocabulary classifier alone
    assert torch.allclose(fc.ensemble(in_l, out_l, seen, 0.0, 0.0), fc.ensemble(in_l, out_l, seen, kind="in"), atol=1e-6)


def test_synonyms_and_seen_by_exact_match():
    assert fc.split_synonyms("person, child ,man") == ["person", "child", "man"]
    assert fc.split_synonyms(["wall", "brick wall"]) == ["wall", "brick wall"]
    with pytest.raises(ValueError, match="no synonym"):
        fc.split_synonyms(" , ")
    seen = fc.seen_mask(["people, person", "persons", "wall, walls", "sky"], ["person, child", "wall"])
    assert seen.tolist() == [True, False, True, False]  # exact strings only: "persons" is unseen


def test_semantic_inference_hand_case():
    log_probs = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]))  # 2 queries, 2 classes + void
    masks = torch.tensor([[[[0.0]], [[2.0]]]])  # 1x1 image
    s0, s1 = 1 / (1 + math.exp(-0.0)), 1 / (1 + math.exp(-2.0))
    got = fc.semantic_inference(log_probs, masks)[0, :, 0, 0]
    assert torch.allclose(got, torch.tensor([0.7 * s0 + 0.1 * s1, 0.2 * s0 + 0.1 * s1]), atol=1e-6)


def test_panoptic_inference_merges_stuff_drops_void_and_overlapped_queries():
    big = 10.0
    # 4 queries on a 2x4 image: q0 thing left half, q1 stuff right half top, q2 same stuff right half
    # bottom (merged with q1), q3 predicts void; q4 a thing whose mask is mostly taken by q0
    m = torch.full((5, 2, 4), -big)
    m[0, :, :2] = big
    m[1, 0, 2:] = big
    m[2, 1, 2:] = big
    m[3] = big
    m[4, :, :3] = 1.0  # weaker, overlaps q0's region
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    out = fc.panoptic_inference(probs.log(), m, thing=[True, False])
    seg, info = out["segments"], out["info"]
    assert [(i["category_id"], i["isthing"]) for i in info] == [(0, True), (1, False)]
    assert seg[:, :2].eq(1).all() and seg[:, 2:].eq(2).all()  # one merged stuff segment


def test_instance_inference_skips_stuff_and_scores_by_mask_quality():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    m = torch.tensor([[[2.0, -1.0]], [[3.0, 3.0]]])
    out = fc.instance_inference(probs.log(), m, thing=[True, False], topk=4)
    assert set(out["labels"].tolist()) == {0}
    best = out["scores"].argmax()
    assert out["scores"][best] == pytest.approx(0.7 * (1 / (1 + math.exp(-2.0))), abs=1e-5)


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="alpha"):
        fc.FCCLIPConfig(alpha=1.5)
    with pytest.raises(ValueError, match="ensemble"):
        fc.FCCLIPConfig(ensemble="harmonic")


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    return fc.build(clip="toy-clip-convnext", train_classes=["red star", "sky"])


def test_toy_model_forward_shapes_frozen_clip_and_gradients(toy):
    from ovnb.data.toy_world import ToyWorld

    images = torch.stack([ToyWorld("train", 2)[i]["image"] for i in range(2)])
    names = ["red star", "sky, blue sky", "grass"]
    toy.train()
    assert not toy.clip.training
    out = toy(images, names)
    q = toy.config.num_queries
    assert out.mask_logits.shape == (2, q, 16, 16) and out.in_logits.shape == (2, q, 4)
    assert len(out.aux) == toy.config.decoder_layers - 1
    masks = [torch.ones(1, 64, 64), torch.ones(1, 64, 64)]
    loss = toy.loss(out, masks, [torch.tensor([1]), torch.tensor([0])])
    loss.backward()
    assert all(p.grad is None for p in toy.clip.parameters())
    assert toy.logit_scale.grad is not None and toy.void_embedding.weight.grad is not None
    assert toy.generator.transformer_module.queries_features.weight.grad is not None
    toy.zero_grad(set_to_none=True)
    toy.eval()
    scores = toy.segment(images, names)
    assert scores.shape == (2, 3, 64, 64) and torch.isfinite(scores).all()


def test_text_classifier_synonyms_equal_the_max_of_separate_classes(toy):
    images = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    joint, counts = toy.text(["sky, blue sky", "grass"])
    assert counts == [2, 1] and joint.shape[0] == 3
    out = toy(images, ["sky, blue sky", "grass"])
    separate = toy(images, ["sky", "blue sky", "grass"])
    assert torch.allclose(out.in_logits[..., 0], separate.in_logits[..., :2].amax(-1), atol=1e-5)
    assert toy.text(["sky, blue sky", "grass"])[0] is joint  # cached per vocabulary


def test_padding_to_a_multiple_of_32_keeps_the_output_size(toy):
    images = torch.randint(0, 255, (1, 3, 50, 70), dtype=torch.uint8)
    assert toy.segment(images, ["red star", "sky"]).shape == (1, 2, 50, 70)


def test_segment_refuses_bad_input(toy):
    with pytest.raises(ValueError, match="class_names"):
        toy.segment(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), [])
    with pytest.raises(ValueError, match="shape"):
        toy.segment(torch.zeros(3, 64, 64, dtype=torch.uint8), ["sky"])


def test_a_vit_clip_is_refused():
    with pytest.raises(ValueError, match="ConvNeXt"):
        fc.build(clip="toy-clip-vit", pretrained=False)


def test_large_scale_jitter_keeps_image_labels_and_instances_aligned():
    from ovnb.data.augment import LargeScaleJitter

    image = torch.zeros(3, 20, 40)
    image[0, :, :20] = 200.0  # left half red
    mask = torch.zeros(20, 40, dtype=torch.long)
    mask[:, :20] = 7
    inst = (mask == 7).long() * 3
    lsj = LargeScaleJitter(size=32, scale=(0.1, 2.0))
    for seed in range(20):
        out_image, out_mask, out_inst = lsj(image, mask, inst, torch.Generator().manual_seed(seed))
        assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
        pad = out_mask == 255
        assert torch.all(out_image[:, pad] == 128.0) and torch.all(out_inst[pad] == 0)
        red = out_image[0] > 100
        agree = (red == (out_mask == 7))[~pad].float().mean()
        assert agree > 0.9 or int((~pad).sum()) < 100  # labels follow the pixels through flip/resize/crop (bilinear edges may differ)
        if (out_mask == 7).any():
            assert out_image[0][out_mask == 7].mean() >= 100  # the red side (0 on the other)
        assert torch.equal(out_inst == 3, out_mask == 7)


def test_step_schedule_and_official_milestones():
    from ovnb.train import TrainConfig, learning_rate

    c = TrainConfig(iterations=100, schedule="step", milestones=(89, 96))
    assert [learning_rate(t, c, 1e-4) for t in (0, 88, 89, 95, 96)] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6])
    s = fc.TrainSettings.scaled(3687)
    assert s.milestones == (3277, 3550)  # the official 327,778 / 355,092 of 368,750 at the same fractions
    with pytest.raises(ValueError, match="milestones"):
        TrainConfig(iterations=10, schedule="step", milestones=(8, 4))


def test_param_groups_exclude_norms_and_embeddings_from_weight_decay(toy):
    groups = fc.param_groups(toy)
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(toy.void_embedding.weight) in no_decay
    assert id(toy.generator.transformer_module.queries_features.weight) in no_decay
    assert id(toy.mask_pooling_proj[0].weight) in no_decay  # LayerNorm
    assert id(toy.logit_scale) not in no_decay and id(toy.mask_pooling_proj[1].weight) not in no_decay
    n_trainable = sum(p.numel() for p in toy.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == n_trainable
    assert not any(p.requires_grad for p in toy.clip.parameters())


def test_training_resumes_exactly(tmp_path):
    from ovnb.data.toy_world import ToyWorld, vocabulary

    voc = vocabulary()
    thing = [voc.is_thing(i) for i in range(len(voc.names))]
    data = ToyWorld("train", 16, seed=0)
    settings = fc.TrainSettings.scaled(4, batch_size=2, crop=64, scale=(0.5, 2.0))

    def run(run_dir, stop_after=None):
        torch.manual_seed(0)
        model = fc.build(clip="toy-clip-convnext", num_queries=8, train_num_points=256)
        fc.train(model, data, list(range(20)), thing, settings, run_dir=run_dir, progress=False,
                 stop_after=stop_after, checkpoint_every=2)
        return model

    whole = run(tmp_path / "a")
    run(tmp_path / "b", stop_after=2)
    resumed = run(tmp_path / "b")
    for (k, v), w in zip(whole.trainable_state().items(), resumed.trainable_state().values()):
        assert torch.equal(v, w), k


def test_table6_variant_trains_a_copy_of_the_trunk_and_keeps_the_clip_frozen():
    torch.manual_seed(0)
    model = fc.build(clip="toy-clip-convnext", finetune_backbone=True, num_queries=8)
    groups = fc.param_groups(model)
    trunk_ids = {id(p) for p in model.trunk.parameters()}
    assert {g["lr_scale"] for g in groups if any(id(p) in trunk_ids for p in g["params"])} == {0.1}
    images = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    model.train()
    out = model(images, ["sky", "grass"])
    assert out.clip_dense is None  # no out-of-vocabulary path in training
    model.loss(out, [torch.ones(1, 64, 64)], [torch.tensor([0])]).backward()
    assert any(p.grad is not None for p in model.trunk.parameters())
    assert all(p.grad is None for p in model.clip.parameters())
    model.eval()
    with torch.no_grad():
        frozen_dense = model(images, ["sky"]).clip_dense
        assert torch.allclose(frozen_dense, model.backbone(model._pad(images)[0])[1])
    with pytest.raises(ValueError, match="finetune_backbone"):
        fc.FCCLIPConfig(out_vocab_source="finetuned")


def test_vit_dense_features_at_other_sizes_resize_the_positions():
    from ovnb import encoders

    vit = encoders.build("toy-clip-vit", pretrained=True)
    images = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    native = vit.dense(images).last
    assert vit.dense(images, size=128).last.shape[-2:] == (2 * native.shape[-2], 2 * native.shape[-1])
    assert torch.equal(vit.dense(images).last, native)  # the pretraining-size positions are restored
    assert vit.model.visual.positional_embedding.shape[0] == native.shape[-1] * native.shape[-2] + 1


def _perfect_outputs(runner, q=8):
    """Stored outputs built from the toy ground truth itself: one query per segment, its class certain, its
    mask exact; unused queries void."""
    from ovnb.panoptic import targets_from_instances
    from ovnb.reproduce.fcclip import Outputs

    data = runner.dataset("toy")
    k = len(runner.class_names("toy"))
    thing = runner.thing()
    outs = Outputs([], {"frozen": []}, [], [])
    for i in runner.indices(data):
        s = data[i]
        segments, info = targets_from_instances(s["mask"], s["instances"], thing)
        in_logits = torch.full((q, k + 1), -30.0)
        in_logits[:, k] = 30.0  # unused queries: void
        masks = torch.full((q, *s["mask"].shape), -20.0)
        for j, seg in enumerate(info):
            in_logits[j, seg["category_id"]], in_logits[j, k] = 30.0, -30.0
            masks[j][segments == seg["id"]] = 20.0
        outs.in_logits.append(in_logits)
        outs.out_logits["frozen"].append(in_logits[:, :k].clone())
        outs.masks.append(masks.half())
        outs.sizes.append(tuple(s["mask"].shape))
    return outs, k


def test_runner_scores_perfect_predictions_as_perfect():
    """Outputs made from the ground truth must score PQ = mIoU = 1, also in the grounding setting; a wrong
    class drops both."""
    from ovnb import profiles
    from ovnb.reproduce.fcclip import Runner

    runner = Runner(profiles.load("smoke"))
    outs, k = _perfect_outputs(runner)
    for grounding in (False, True):
        r = runner.score(outs, "toy", grounding=grounding)
        assert r["pq"] == pytest.approx(1.0) and r["miou"] == pytest.approx(1.0)
    for logits in outs.in_logits + outs.out_logits["frozen"]:
        logits[:, :k] = logits[:, :k].roll(1, dims=1)  # every class one off
    r = runner.score(outs, "toy")
    assert r["pq"] < 0.2 and r["miou"] < 0.2


def test_runner_ensembles_on_valid_masks_when_the_outputs_say_so():
    """A ResNet model's outputs carry the valid-mask flags: queries marked invalid keep the in-vocabulary
    classes, so a wrong out-of-vocabulary classifier cannot hurt them; marked valid, it does."""
    from ovnb import profiles
    from ovnb.reproduce.fcclip import Runner

    runner = Runner(profiles.load("smoke"))
    outs, k = _perfect_outputs(runner)
    for logits in outs.out_logits["frozen"]:
        logits[:, :k] = 3 * logits[:, :k].roll(1, dims=1)  # a confident, wrong out-of-vocabulary classifier
    outs.valid = [torch.zeros(len(x), dtype=torch.bool) for x in outs.in_logits]
    assert runner.score(outs, "toy", "out")["miou"] == pytest.approx(1.0)  # "out" too: weight 0 on invalid queries
    outs.valid = [torch.ones(len(x), dtype=torch.bool) for x in outs.in_logits]
    assert runner.score(outs, "toy", "out")["miou"] < 0.2


def test_a_runner_evaluates_another_model_of_the_zoo(tmp_path):
    from ovnb import profiles
    from ovnb.reproduce.fcclip import Runner

    runner = Runner(profiles.load("quick"), data_root=tmp_path, model="fcclip-r50")
    assert runner.clip_name == "clip-rn50" and runner.row() == "FC-CLIP [fcclip-r50]"
    with pytest.raises(FileNotFoundError, match="fcclip_r50.pth.*1tcB-8FNON-LwckXQbUyKcBA2G7TU65Zh"):
        runner.released_weights()
    with pytest.raises(ValueError, match="unknown released FC-CLIP 'fcclip-r18'.*fcclip-r50x64"):
        Runner(profiles.load("quick"), data_root=tmp_path, model="fcclip-r18")
    paper = Runner(profiles.load("quick"), data_root=tmp_path)
    assert paper.clip_name == "clip-convnext-large-d-320" and paper.row() == "FC-CLIP"


def test_benchmark_times_every_stage_of_the_toy_model():
    from ovnb.reproduce import benchmark_fcclip as fb

    t = fb.measure("toy", images=1)
    assert set(t.stages) == set(fb.STAGES) and all(v > 0 for v in t.stages.values())
    assert t.fps == pytest.approx(1 / sum(t.stages.values()))


def _panoptic_reference(log_probs, mask_logits, thing, object_mask_threshold=0.0, overlap_threshold=0.8):
    """Mask2Former's ``panoptic_inference`` written as the official per-query loop."""
    k = log_probs.shape[-1] - 1
    scores, labels = log_probs.softmax(-1).max(-1)
    keep = labels.ne(k) & (scores > object_mask_threshold)
    scores, labels, masks = scores[keep], labels[keep], mask_logits.sigmoid()[keep]
    segments = torch.zeros(mask_logits.shape[-2:], dtype=torch.int32)
    info, stuff = [], {}
    if len(masks) == 0:
        return segments, info
    ids = (scores.view(-1, 1, 1) * masks).argmax(0)
    for q in range(len(masks)):
        cls = int(labels[q])
        mask_area = int((ids == q).sum())
        original_area = int((masks[q] >= 0.5).sum())
        mask = (ids == q) & (masks[q] >= 0.5)
        if mask_area > 0 and original_area > 0 and int(mask.sum()) > 0:
            if mask_area / original_area < overlap_threshold:
                continue
            if not thing[cls] and cls in stuff:
                segments[mask] = stuff[cls]
                continue
            info.append((len(info) + 1, cls))
            if not thing[cls]:
                stuff[cls] = len(info)
            segments[mask] = len(info)
    return segments, info


def test_panoptic_inference_equals_the_official_per_query_loop_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        q, k = 12, 5
        log_probs = torch.randn(q, k + 1, generator=g).mul(3).log_softmax(-1)
        masks = torch.randn(q, 1, 4, 4, generator=g)
        masks = torch.nn.functional.interpolate(masks, size=(24, 24), mode="bilinear").squeeze(1) * 4
        thing = [True, False, True, False, False]
        got = fc.panoptic_inference(log_probs, masks, thing, overlap_threshold=[0.8, 0.5, 0.0][trial % 3])
        ref_segments, ref_info = _panoptic_reference(log_probs, masks, thing, overlap_threshold=[0.8, 0.5, 0.0][trial % 3])
        assert torch.equal(got["segments"], ref_segments)
        assert [(i["id"], i["category_id"]) for i in got["info"]] == ref_info


def test_checkpoint_policies_pick_the_last_or_the_best_kept_weights(monkeypatch):
    """``best-ade-pq`` keeps the step with the highest selection-set PQ (a tie: the later step); ``last``
    the final step; an unknown policy is refused by name."""
    from ovnb import profiles
    from ovnb.reproduce.fcclip import Experiment, Runner

    runner = Runner(profiles.load("smoke"))
    monkeypatch.setattr(runner, "snapshot_scores", lambda e: {125: 0.2, 250: 0.5, 375: 0.5, 500: 0.1})
    monkeypatch.setattr(runner, "snapshots", lambda e: {125: None, 250: None, 375: None, 500: None})
    assert runner.select(Experiment("frozen", 0, checkpoint="best-ade-pq")) == 375
    assert runner.select(Experiment("frozen", 0)) == 500
    assert Experiment("frozen", 0, checkpoint="best-ade-pq").run == Experiment("frozen", 0)
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        Experiment("frozen", 0, checkpoint="best")


def test_a_runner_builds_the_same_initial_weights_in_a_fresh_and_in_a_used_process():
    """The first build also builds the frozen CLIP; a later one reuses it. Both start from the same weights
    (a worker that trains a second seed must not train another model than a fresh worker would)."""
    from ovnb import profiles
    from ovnb.methods.fcclip import _Trainable
    from ovnb.reproduce.fcclip import Experiment, Runner

    runner = Runner(profiles.load("smoke"))
    first = _Trainable(runner.build(Experiment("frozen", 2))).state_dict()
    second = _Trainable(runner.build(Experiment("frozen", 2))).state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_text_classifiers_kept_on_disk_are_reused_by_another_instance(tmp_path):
    """With a store, a vocabulary's texts are computed once: a second classifier (another process) loads
    them; other templates, another vocabulary or other CLIP weights miss."""
    from torch import nn

    from ovnb.methods.fcclip import TextClassifier

    class FakeClip:
        device = torch.device("cpu")

        def __init__(self, seed):
            torch.manual_seed(seed)
            self.model, self.calls = nn.Linear(2, 2), 0

        def embed_text(self, sentences, templates):
            self.calls += 1
            return torch.randn(len(sentences), 4)

    clip = FakeClip(0)
    first, counts = TextClassifier(clip, "photo", store=tmp_path)(["cat, kitty", "dog"])
    again, _ = TextClassifier(clip, "photo", store=tmp_path)(["cat, kitty", "dog"])
    assert clip.calls == 1 and torch.equal(first, again) and counts == [2, 1]
    TextClassifier(clip, "vild", store=tmp_path)(["cat, kitty", "dog"])
    TextClassifier(clip, "photo", store=tmp_path)(["cat", "dog"])
    assert clip.calls == 3
    other = FakeClip(1)
    TextClassifier(other, "photo", store=tmp_path)(["cat, kitty", "dog"])
    assert other.calls == 1


# -- ResNet CLIPs (the official model zoo's RN50 ... RN50x64 variants) ----------------------------------
def _official_resnet_pool(attnpool, x, masks):
    """The official ``visual_prediction_forward_resnet`` call, written from its source: torch's
    ``multi_head_attention_forward`` with the boolean mask ``masks < 0.5`` per head."""
    import math as m

    batch, channel, height, width = x.shape
    num_masks = masks.shape[1]
    pos = attnpool.positional_embedding.to(x.dtype)
    spatial = pos[1:, None, :]
    orig = int(m.sqrt(spatial.shape[0]))
    spatial = spatial.permute(1, 2, 0).reshape(1, channel, orig, orig)
    spatial = F.interpolate(spatial, size=(height, width), mode="bilinear", align_corners=False)
    spatial = spatial.permute(2, 3, 0, 1).reshape(height * width, 1, channel)
    x = x.reshape(batch, channel, height * width).permute(2, 0, 1)
    key_value = x + spatial
    masks = (masks.reshape(batch, num_masks, height * width) > 0).to(masks.dtype)
    query = (x.mean(0, keepdim=True) + pos[:1, None, :]).repeat_interleave(num_masks, dim=0)
    attn_mask = (masks < 0.5).unsqueeze(1).expand(-1, attnpool.num_heads, -1, -1)
    attn_mask = attn_mask.reshape(batch * attnpool.num_heads, query.shape[0], key_value.shape[0])
    return F.multi_head_attention_forward(
        query=query, key=key_value, value=key_value, embed_dim_to_check=channel, num_heads=attnpool.num_heads,
        q_proj_weight=attnpool.q_proj.weight, k_proj_weight=attnpool.k_proj.weight,
        v_proj_weight=attnpool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([attnpool.q_proj.bias, attnpool.k_proj.bias, attnpool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=attnpool.c_proj.weight,
        out_proj_bias=attnpool.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False,
        attn_mask=attn_mask)[0].permute(1, 0, 2)


def test_resnet_attention_mask_pool_equals_the_official_masked_attention():
    from open_clip.modified_resnet import AttentionPool2d

    torch.manual_seed(0)
    pool = AttentionPool2d(3, 16, 4, 8).eval()  # a 3x3 pretraining grid, resized to 4x5 here
    x = torch.randn(2, 16, 4, 5)
    masks = torch.randn(2, 3, 8, 10)
    masks[1, 2] = -1.0  # an empty mask
    small = F.interpolate(masks, size=(4, 5), mode="bilinear", align_corners=False)
    with torch.no_grad():
        got = fc.attention_mask_pool(pool, x, masks)
        ref = _official_resnet_pool(pool, x, small)
    assert got.shape == (2, 3, 8)
    valid = fc.nonempty_masks(masks, (4, 5))
    assert valid.tolist() == [[True, True, True], [True, True, False]]
    assert torch.allclose(got[valid], ref[valid], atol=1e-5)
    assert torch.isfinite(got).all()  # the empty mask attends everywhere instead of giving NaN
    # a mask of one position pools that position's value alone (softmax over one key)
    one = torch.full((1, 1, 4, 5), -1.0)
    one[0, 0, 2, 3] = 1.0
    with torch.no_grad():
        single = fc.attention_mask_pool(pool, x[:1], one)[0, 0]
        spatial = F.interpolate(pool.positional_embedding[1:].t().reshape(1, 16, 3, 3), size=(4, 5),
                                mode="bilinear", align_corners=False)[0, :, 2, 3]
        expected = pool.c_proj(pool.v_proj(x[0, :, 2, 3] + spatial))
    assert torch.allclose(single, expected, atol=1e-5)


def test_nonempty_masks_on_the_clip_grid():
    logits = torch.full((1, 2, 8, 8), -5.0)
    logits[0, 0, :4, :4] = 5.0  # a quarter of the image: positive on the 2x2 grid
    logits[0, 1, 0, 0] = 5.0  # one stride-4 pixel: averaged away on the 2x2 grid
    assert fc.nonempty_masks(logits, (2, 2)).tolist() == [[True, False]]
    assert fc.nonempty_masks(logits, (8, 8)).tolist() == [[True, True]]


def test_ensemble_on_valid_masks_keeps_the_in_vocabulary_probabilities_of_empty_masks():
    g = torch.Generator().manual_seed(3)
    in_logits, out_logits = torch.randn(1, 2, 4, generator=g), torch.randn(1, 2, 3, generator=g)
    seen = torch.tensor([True, False, True])
    valid = torch.tensor([[True, False]])
    got = fc.ensemble(in_logits, out_logits, seen, 0.4, 0.8, valid=valid).exp()
    full = fc.ensemble(in_logits, out_logits, seen, 0.4, 0.8).exp()
    assert torch.allclose(got[0, 0], full[0, 0], atol=1e-6)  # a valid query: Eq. 7 as usual
    p = _softmax(in_logits[0, 1].tolist())  # an empty one: in-vocabulary probabilities, void rescaled
    expected = np.append(_softmax(in_logits[0, 1, :3].tolist()) * (1 - p[3]), p[3]) + 1e-8
    assert np.allclose(got[0, 1].double().numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="one flag per query"):
        fc.ensemble(in_logits, out_logits, seen, valid=torch.tensor([True, False]))


@pytest.mark.slow
def test_fcclip_runs_on_the_real_rn50_clip_with_the_official_taps(tmp_path):
    """The model zoo's RN50 variant: random CLIP weights, a narrow decoder, the official checkpoint layout."""
    from test_fcclip_weights import official_state

    torch.manual_seed(0)
    model = fc.build(clip="clip-rn50", pretrained=False, num_queries=8, encoder_layers=1, decoder_layers=2,
                     templates="photo", train_classes=["cat"]).eval()
    assert model.resnet and model.valid_mask_ensemble  # official ENSEMBLE_ON_VALID_MASK for ResNet CLIPs
    assert fc.backbone_channels(model.clip.model.visual) == [256, 512, 1024, 2048]  # official output_channels
    image = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)
    out = model(image, ["cat", "dog"])
    assert out.clip_dense.shape == (1, 2048, 2, 3)  # res5 itself is the dense map
    assert model.void_embedding.weight.shape == (1, 1024)  # RN50's EMBED_DIM
    assert torch.isfinite(model.segment(image, ["cat", "dog"])).all()
    assert len(model.panoptic(image, ["cat", "dog"])) == 1
    # the official checkpoint of this configuration loads strictly
    official = official_state(encoder_layers=1, decoder_layers=2, channels=[256, 512, 1024, 2048], clip_dim=1024,
                              d=256, ffn_enc=1024, ffn_dec=2048, queries=8, heads=8)
    torch.save({"model": official}, tmp_path / "fcclip_r50.pth")
    fc.load_weights(model, tmp_path / "fcclip_r50.pth")
    assert torch.equal(model.void_embedding.weight, official["void_embedding.weight"])
    with pytest.raises(ValueError, match="ConvNeXt"):
        fc.build(clip="clip-rn50", pretrained=False, finetune_backbone=True, num_queries=8, decoder_layers=2)


@pytest.mark.slow
def test_a_dry_run_evaluates_the_rn50_model_through_the_runner(tmp_path, monkeypatch):
    """The zoo's RN50 model on the dry-run fixtures (random weights, one training step): the runner keeps
    one valid-mask flag per query and scores with them."""
    from ovnb import profiles
    from ovnb.reproduce.fcclip import Experiment, Runner

    monkeypatch.setenv("OVNB_BUILD_DIR", str(tmp_path / "build"))
    runner = Runner(profiles.load("dryrun"), data_root=tmp_path / "data", model="fcclip-r50")
    out = runner.outputs(Experiment(), "ade20k-150")
    model = runner.model(Experiment())
    assert model.resnet and model.clip.model.visual.layer1 is not None
    assert len(out.valid) == len(out.in_logits) and out.valid[0].shape == out.in_logits[0].shape[:1]
    r = runner.score(out, "ade20k-150")
    assert 0.0 <= r["miou"] <= 1.0
