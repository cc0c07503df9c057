"""SimBaseline's steps against hand computations: boxes, the crop rule, Eq. (1), the ensemble,
Eq. (2), pseudo-labels; and the semantic-segmentation splits with the unseen-pixel rule."""

import math

import pytest
import torch

from ovnb.data import semseg
from ovnb.encoders.base import CLIP_MEAN
from ovnb.methods import simbaseline as sb


def test_tight_boxes_have_exclusive_ends_and_empty_masks_are_invalid():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 2:5, 1:6] = True  # rows 2..4, columns 1..5
    masks[1, 0, 7] = True  # one pixel in the top-right corner
    boxes, valid = sb.mask_boxes(masks)
    assert boxes.tolist() == [[1, 2, 6, 5], [7, 0, 8, 1], [0, 0, 0, 0]]
    assert valid.tolist() == [True, True, False]


def test_a_crop_keeps_the_masked_pixels_and_fills_the_rest_with_the_clip_mean():
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).view(3, 8, 8)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 3:7] = True
    masks[0, 2, 3] = False  # an L-shaped hole in the box's corner: filled, not kept
    crops, valid = sb.region_crops(image, masks, size=4)  # the box is 4 x 4: bicubic at scale 1 is exact
    assert valid.tolist() == [True, False] and crops.shape == (1, 3, 4, 4)
    expected = image[:, 2:6, 3:7].clone()
    expected[:, 0, 0] = torch.tensor([255 * m for m in CLIP_MEAN])
    torch.testing.assert_close(crops[0], expected)
    # after CLIP's normalisation the fill colour is 0
    assert sb.normalise_crops(crops)[0, :, 0, 0].abs().max() < 1e-5


def test_crops_are_resized_to_a_square_ignoring_the_aspect_ratio():
    image = torch.full((3, 10, 20), 100, dtype=torch.uint8)
    masks = torch.zeros(1, 10, 20, dtype=torch.bool)
    masks[0, 0:2, 0:20] = True  # a 2 x 20 strip
    crops, _ = sb.region_crops(image, masks, size=224)
    assert crops.shape == (1, 3, 224, 224)
    torch.testing.assert_close(crops, torch.full_like(crops, 100.0), atol=1e-3, rtol=0)


class FakeCLIP:
    """Embeds a crop as (mean red, mean green) of its normalised pixels; counts its forwards."""

    image_size, mean, std, device = 4, CLIP_MEAN, (0.5, 0.5, 0.5), torch.device("cpu")

    def __init__(self):
        self.batches = []

    def embed_image(self, x, preprocessed=True):
        self.batches.append(x.shape[0])
        return torch.stack([x[:, 0].mean((1, 2)), x[:, 1].mean((1, 2))], dim=1)


def test_eq1_classifies_every_valid_proposal_in_one_forward():
    image = torch.zeros(3, 8, 8)
    image[0, :4] = 255  # top half red
    image[1, 4:] = 255  # bottom half green
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :4] = True
    masks[2, 4:] = True  # proposal 1 is empty
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    clip = FakeCLIP()
    probs = sb.clip_probabilities(clip, image, masks, text)
    assert clip.batches == [2], "both valid crops in one forward"
    assert probs[1].tolist() == [1.0, 1.0, 1.0], "an invalid proposal gets 1 for every class"

    def by_hand(red, green):  # normalised channel means of a flat crop -> cosine -> softmax(100 cos)
        e = torch.tensor([(red - CLIP_MEAN[0] * 255) / 127.5, (green - CLIP_MEAN[1] * 255) / 127.5])
        cos = [float(e @ t / (e.norm() * t.norm())) for t in text]
        z = [math.exp(100 * c - 100 * max(cos)) for c in cos]
        return [v / sum(z) for v in z]

    torch.testing.assert_close(probs[0], torch.tensor(by_hand(255, 0)))
    torch.testing.assert_close(probs[2], torch.tensor(by_hand(0, 255)))


def test_the_ensemble_formula_for_seen_and_unseen_classes():
    p = torch.tensor([[0.5, 0.2, 0.3]])
    q = torch.tensor([[0.1, 0.8, 0.1]])
    seen = torch.tensor([True, False, True])
    out = sb.ensemble(p, q, seen, lam=0.8)
    expected = [0.5 ** 0.8 * 0.1 ** 0.2, 0.2 ** 0.2 * 0.8 ** 0.8, 0.3 ** 0.8 * 0.1 ** 0.2]
    torch.testing.assert_close(out, torch.tensor([expected]))
    assert torch.equal(sb.ensemble(p, q, seen, lam=0.0), q), "lambda <= 0: CLIP alone"
    with pytest.raises(ValueError, match="lambda lies in"):
        sb.ensemble(p, q, seen, lam=1.5)
    # the generator's p: softmax with the no-object column, which is then dropped
    logits = torch.tensor([[1.0, 2.0, 0.0, 3.0]])
    z = [math.exp(v) for v in (1.0, 2.0, 0.0, 3.0)]
    torch.testing.assert_close(sb.generator_probabilities(logits), torch.tensor([[v / sum(z) for v in z[:3]]]))


def test_eq2_assembly_pixel_by_pixel():
    torch.manual_seed(0)
    probs = torch.rand(3, 4)
    logits = torch.randn(3, 2, 5)
    scores = sb.semantic_map(probs, logits)
    normalised = sb.semantic_map(probs, logits, normalise=True)
    for y in range(2):
        for x in range(5):
            m = [1 / (1 + math.exp(-float(logits[k, y, x]))) for k in range(3)]
            for c in range(4):
                total = sum(m[k] * float(probs[k, c]) for k in range(3))
                assert float(scores[c, y, x]) == pytest.approx(total, rel=1e-5)
                assert float(normalised[c, y, x]) == pytest.approx(total / sum(m), rel=1e-5)
    assert torch.equal(scores.argmax(0), normalised.argmax(0)), "Eq. (2)'s denominator does not change the argmax"


def test_pseudo_labels_predict_unseen_classes_only_and_keep_seen_ground_truth():
    seen = torch.tensor([True, False, False])  # class 0 seen; 1 and 2 unseen
    scores = torch.zeros(3, 1, 3)
    scores[0] = 10.0  # the seen class wins every pixel, but cannot be predicted
    scores[1, 0, 0], scores[2, 0, 1], scores[2, 0, 2] = 2.0, 2.0, 1.0
    gt = torch.tensor([[255, 255, 0]])  # the third pixel's ground truth is the seen class
    assert sb.pseudo_labels(scores, gt, seen).tolist() == [[1, 2, 0]]
    # a threshold above a pixel's best unseen probability rejects it
    p1 = torch.softmax(scores[:, 0, 0], 0)[1].item()
    assert sb.pseudo_labels(scores, gt, seen, reject_threshold=p1 + 1e-6).tolist()[0][0] == 255


def test_the_zero_shot_splits_have_the_papers_sizes():
    coco = semseg.split("coco-stuff-171")
    assert (len(coco.class_names), len(coco.seen), len(coco.unseen)) == (171, 156, 15)
    voc = semseg.split("voc-20")
    assert voc.seen == tuple(range(15)) and voc.names(voc.unseen) == ["pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    assert semseg.split("toy-voc").seen_flags.sum() == 36 and len(semseg.split("toy-zero-shot").unseen) == 7
    with pytest.raises(ValueError, match="unknown split 'ade'; known splits: coco-stuff-171"):
        semseg.split("ade")


def test_label_maps_turn_stored_values_into_contiguous_ids():
    coco = semseg.label_map("coco-stuff-171")
    # COCO's 80 things take values 0..89 with 10 unused ids; stuff 91..181 follows contiguously
    assert coco[0] == 0 and coco[11] == 255 and coco[89] == 79 and coco[90] == 255 and coco[91] == 80
    assert coco[181] == 170 and coco[255] == 255
    assert semseg.split("coco-stuff-171").class_names[int(coco[20])] == "cow"
    voc = semseg.label_map("voc-20")
    assert voc[torch.tensor([0, 1, 20, 255])].tolist() == [255, 0, 19, 255]


def test_the_unseen_pixel_rule():
    mask = torch.tensor([[0, 1, 2], [255, 1, 1]])
    out = semseg.training_mask(mask, unseen=[1])
    assert out.tolist() == [[0, 255, 2], [255, 255, 255]] and mask[0, 1] == 1, "a copy, the input unchanged"
    assert semseg.has_seen_pixels(out)
    assert not semseg.has_seen_pixels(semseg.training_mask(torch.tensor([[1, 255]]), unseen=[1]))


# ----------------------------------------------------------------------------------------------
# The model


def _toy_model(**overrides):
    from ovnb import methods

    settings = dict(backbone="resnet18", res5_multi_grid=(), num_queries=6, decoder_layers=2, ffn=64, hidden=64,
                    heads=4, fpn_dim=32, mask_dim=32, embed_hidden=64)
    return methods.build("simbaseline", clip="toy-clip-vit", pretrained=True, seen_names=["red circle", "sky"],
                         seed=0, **{**settings, **overrides})


def test_the_class_head_is_temperature_times_cosine_with_a_no_object_column():
    head = sb.ClassEmbedding(hidden=4, embed_hidden=8, embed_dim=3, temperature=100.0)
    queries, text = torch.randn(2, 5, 4), torch.randn(6, 3)
    logits = head(queries, text)
    assert logits.shape == (2, 5, 7)
    q = head.mlp(queries)
    expected = torch.stack([100 * torch.nn.functional.cosine_similarity(q, t.expand_as(q), dim=-1)
                            for t in [*text, head.no_object]], dim=-1)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_semantic_targets_are_one_mask_per_class_present():
    mask = torch.tensor([[0, 0, 255], [3, 3, 0]])
    masks, classes = sb.semantic_targets(mask)
    assert classes.tolist() == [0, 3]
    assert masks.tolist() == [[[1, 1, 0], [0, 0, 1]], [[0, 0, 0], [1, 1, 0]]]


def test_training_reaches_the_generator_and_never_the_frozen_clip():
    model = _toy_model()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    masks = torch.zeros(2, 64, 64, dtype=torch.long)
    masks[:, 32:] = 1
    masks[0, :4] = 255
    loss = model.loss(images, masks, ["red circle", "sky"])
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.clip.parameters())
    # a few steps on the one batch lower its loss (the loss is differentiable end to end)
    optimizer = torch.optim.AdamW(model.generator.parameters(), lr=1e-3)
    first = loss.item()
    for _ in range(10):
        optimizer.zero_grad()
        step = model.loss(images, masks, ["red circle", "sky"])
        step.backward()
        optimizer.step()
    assert step.item() < first


def test_segment_follows_the_shared_contract():
    model = _toy_model()
    images = torch.randint(0, 256, (2, 3, 48, 40), dtype=torch.uint8)
    scores = model.segment(images, ["red circle", "sky", "blue star"])
    assert scores.shape == (2, 3, 48, 40) and torch.isfinite(scores).all() and (scores >= 0).all()
    with pytest.raises(ValueError, match="class"):
        model.segment(images, [])


def test_the_official_configuration_by_dataset():
    voc = sb.SimBaselineConfig.for_dataset("voc-20")
    assert (voc.lam, voc.mask_threshold) == (0.7, 0.5)
    assert (sb.SimBaselineConfig.for_dataset("ade20k-847").lam, sb.SimBaselineConfig().lam) == (0.7, 0.8)
    with pytest.raises(ValueError, match="no official ensemble weight for 'mars'"):
        sb.SimBaselineConfig.for_dataset("mars")
    with pytest.raises(ValueError, match="lam must lie in"):
        sb.SimBaselineConfig(lam=2.0)


@pytest.mark.slow
def test_the_paper_size_generator_builds_offline_with_its_multi_grid_res5():
    generator = sb.ProposalGenerator(sb.SimBaselineConfig(embed_dim=512))
    net = generator.maskformer.pixel_level_module.encoder._backbone
    assert [b.conv2.dilation for b in net.layer4.children()] == [(1, 1), (2, 2), (4, 4)]
    stem = [m.out_channels for m in net.conv1 if isinstance(m, torch.nn.Conv2d)]
    assert stem == [64, 64, 128], "DeepLab's stem: three 3x3 convolutions"
    class_logits, mask_logits = generator(torch.randn(1, 3, 96, 128), torch.randn(156, 512))
    assert class_logits.shape == (6, 1, 100, 157) and mask_logits.shape == (6, 1, 100, 24, 32)


def test_all_crops_in_one_forward_match_one_forward_per_crop():
    from ovnb import encoders
    from ovnb.reproduce.benchmark_simbaseline import one_by_one, random_proposals

    clip = encoders.build("toy-clip-vit", pretrained=True)
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    masks = random_proposals(5, 40, 56)
    masks[2] = False  # an empty proposal among them
    text = clip.embed_text(["red circle", "sky", "blue star"])
    batched = sb.clip_probabilities(clip, image, masks, text)
    torch.testing.assert_close(batched, one_by_one(clip, image, masks, text), rtol=1e-4, atol=1e-5)
    assert batched[2].tolist() == [1.0, 1.0, 1.0]


def test_the_generalized_zero_shot_protocol_by_hand():
    from ovnb.evaluate import evaluate_semseg, generalized_zero_shot

    class Fixed(torch.nn.Module):  # predicts class (x + y) % 3 at every pixel
        def segment(self, images, names):
            h, w = images.shape[-2:]
            pred = (torch.arange(h)[:, None] + torch.arange(w)[None]) % 3
            return torch.nn.functional.one_hot(pred, len(names)).permute(2, 0, 1)[None].float()

    class Data:
        class_names = ("a", "b", "c")

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"image": torch.zeros(3, 2, 3, dtype=torch.uint8), "mask": torch.tensor([[0, 1, 1], [0, 255, 2]])}

    matrix = evaluate_semseg(Fixed(), Data())
    # predictions [[0, 1, 2], [1, 2, 0]] against [[0, 1, 1], [0, 255, 2]]:
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 1, FP 1, FN 1 -> 1/3; class 2: TP 0 -> 0
    scores = generalized_zero_shot(matrix, seen=[0, 1], unseen=[2])
    assert scores["mIoU-seen"] == pytest.approx(1 / 3) and scores["mIoU-unseen"] == 0.0
    assert scores["hIoU"] == 0.0 and scores["pAcc"] == pytest.approx(2 / 5)
    assert scores["mIoU"] == pytest.approx(2 / 9)


def test_the_toy_splits_as_semantic_datasets():
    voc = semseg.toy("toy-voc", "train", images=20, training=True)
    things, unseen = len(voc.class_names), set(voc.split.unseen)
    for i in range(len(voc)):
        values = set(torch.unique(voc[i]["mask"]).tolist()) - {255}
        assert values and all(v < things for v in values) and unseen.isdisjoint(values)
    zs = semseg.toy("toy-zero-shot", "test", images=5)
    assert len(zs) == 5 and len(zs.class_names) == 62


@pytest.mark.parametrize("clip_name", ["toy-clip-vit", "clip-vit-b-16"])
def test_learned_prompts_set_to_real_words_reproduce_the_sentence(clip_name):
    """With its vectors set to the token embeddings of "a photo of", the learned prompt must embed
    "a photo of <name>." exactly as CLIP's own text tower does."""
    from ovnb import encoders

    clip = encoders.build(clip_name, pretrained=clip_name.startswith("toy"))
    words = "a photo of" if clip_name != "toy-clip-vit" else "red circle"  # words the toy vocabulary has
    prefix_ids = clip.tokenizer([words])[0, 1:1 + len(words.split())]
    prompts = sb.LearnedPrompts(clip, length=len(prefix_ids))
    with torch.no_grad():
        prompts.prefix.copy_(clip.model.token_embedding.weight[prefix_ids])
    names = ["sky", "blue star"] if clip_name == "toy-clip-vit" else ["cat", "traffic light"]
    expected = torch.nn.functional.normalize(clip.encode_sentences([f"{words} {n}." for n in names]).float(), dim=-1)
    torch.testing.assert_close(prompts(names), expected, rtol=1e-4, atol=1e-5)


def test_prompt_training_moves_only_the_prompt_vectors_and_reloads():
    from ovnb import encoders

    clip = encoders.build("toy-clip-vit", pretrained=True)
    prompts = sb.LearnedPrompts(clip)
    assert list(prompts.state_dict()) == ["prefix"] and prompts.prefix.shape == (16, 128)
    assert abs(float(prompts.prefix.detach().std()) - 0.02) < 0.005
    crops = torch.randn(4, 3, 64, 64)
    loss = sb.prompt_loss(prompts, crops, torch.tensor([0, 1, 0, 1]), ["red circle", "sky"])
    loss.backward()
    assert prompts.prefix.grad is not None and all(p.grad is None for p in clip.parameters())
    again = sb.LearnedPrompts(clip)
    again.load_state_dict(prompts.state_dict())
    torch.testing.assert_close(again(["sky"]), prompts(["sky"]))
    with pytest.raises(ValueError, match="too long for 16 prompt vectors"):
        prompts([" ".join(["red circle"] * 4)])


def test_the_backbone_batch_norms_are_frozen_as_detectron2s_default():
    model = _toy_model()
    net = model.generator.maskformer.pixel_level_module.encoder._backbone
    norms = [m for m in net.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(type(m).__name__ == "FrozenBatchNorm2d" for m in norms)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_table7_classifiers_pick_p_q_or_their_ensemble(monkeypatch):
    model = _toy_model()
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    names = ["red circle", "sky", "blue star"]
    logits, masks, text = model.proposals(images, names)
    p = sb.generator_probabilities(logits[0])
    q = sb.clip_probabilities(model.clip, images[0], sb.binarize(masks[0]), text)
    seen = torch.tensor([True, True, False])
    expected = {"generator": p, "clip": q, "ensemble": sb.ensemble(p, q, seen, 0.8)}
    for classifier, scores in expected.items():
        model.config = sb.replace(model.config, classifier=classifier)
        torch.testing.assert_close(model.segment(images, names)[0], sb.semantic_map(scores, masks[0]))
    with pytest.raises(ValueError, match="classifier must be one of"):
        sb.SimBaselineConfig(classifier="both")


def test_a_backbone_without_a_stem_feature_names_its_stride_4_to_32_features():
    config = sb.SimBaselineConfig(backbone="convnext_atto", backbone_features=(0, 1, 2, 3), res5_multi_grid=(),
                                  embed_dim=32, hidden=32, heads=4, num_queries=5, decoder_layers=1, ffn=32,
                                  fpn_dim=32, mask_dim=32, embed_hidden=32)
    class_logits, masks = sb.ProposalGenerator(config)(torch.randn(1, 3, 64, 96), torch.randn(4, 32))
    assert class_logits.shape == (1, 1, 5, 5) and masks.shape == (1, 1, 5, 16, 24)


def test_the_oracle_names_each_proposal_by_the_class_it_overlaps_most():
    gt = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 255, 255],
                       [2, 2, 255, 255]])
    proposals = torch.zeros(4, 4, 4, dtype=torch.bool)
    proposals[0, :2, :3] = True  # 4 pixels of class 0, 2 of class 1
    proposals[1, 2:, :] = True  # 4 of class 2, 4 ignored (ignored pixels do not vote)
    proposals[2, 2:, 2:] = True  # ignored pixels only
    out = sb.oracle_probabilities(proposals, gt, num_classes=3)  # proposal 3 is empty
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_optimizer_groups_follow_maskformer():
    model = _toy_model()
    groups = sb.param_groups(model)
    backbone = {id(p) for n, p in model.generator.named_parameters() if n.startswith("maskformer.pixel_level_module.encoder")}
    for g in groups:
        in_backbone = {id(p) in backbone for p in g["params"]}
        assert len(in_backbone) == 1 and g["lr_scale"] == (0.1 if in_backbone.pop() else 1.0)
    no_decay = {id(p) for g in groups if not g["decay"] for p in g["params"]}
    queries = model.generator.maskformer.transformer_module.queries_embedder.weight
    norm = model.generator.maskformer.transformer_module.decoder.layernorm.weight
    linear_bias = model.generator.class_embed.mlp[0].bias
    assert id(queries) in no_decay and id(norm) in no_decay and id(linear_bias) not in no_decay
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.generator.parameters() if p.requires_grad)


def test_interrupted_generator_training_resumes_to_the_same_weights(tmp_path):
    from ovnb.data.augment import TrainAugment

    dataset = semseg.toy("toy-zero-shot", "train", images=12, training=True)
    split = semseg.split("toy-zero-shot")
    settings = sb.TrainSettings(iterations=4, batch_size=2, lr=3e-4)
    aug = TrainAugment.scaled(32, photometric="brightness-contrast")
    full = _toy_model()
    sb.train(full, dataset, split.seen, settings, aug, tmp_path / "full", seed=1, progress=False)
    part = _toy_model()
    sb.train(part, dataset, split.seen, settings, aug, tmp_path / "part", seed=1, progress=False, stop_after=2,
             checkpoint_every=1)
    resumed = _toy_model()
    result = sb.train(resumed, dataset, split.seen, settings, aug, tmp_path / "part", seed=1, progress=False)
    assert result.resumed_from == 2 and result.steps_run == 2
    for (name, a), b in zip(full.generator.state_dict().items(), resumed.generator.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_the_decoder_starts_from_maskformers_initialisation_not_transformers_defaults():
    # transformers draws every decoder weight from N(0, 0.02), the queries included: all queries then
    # start nearly identical and never separate on a small budget. MaskFormer: N(0, 1) queries,
    # Xavier-uniform decoder matrices, Kaiming-uniform (a=1) pixel-decoder convolutions.
    model = _toy_model(num_queries=50, hidden=64)
    transformer = model.generator.maskformer.transformer_module
    queries = transformer.queries_embedder.weight
    assert 0.9 < float(queries.detach().std()) < 1.1
    attn = transformer.decoder.layers[0].encoder_attn.q_proj.weight
    bound = math.sqrt(6 / (attn.shape[0] + attn.shape[1]))
    assert float(attn.abs().max()) <= bound and float(attn.detach().std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert float(transformer.decoder.layers[0].encoder_attn.q_proj.bias.abs().max()) == 0.0
    conv = model.generator.maskformer.pixel_level_module.decoder.mask_projection
    fan_in = conv.weight[0].numel()
    assert float(conv.weight.abs().max()) <= math.sqrt(3 / fan_in) and float(conv.bias.abs().max()) == 0.0


def test_random_resized_crop_keeps_size_and_is_a_pure_function_of_the_generator():
    image = torch.arange(3 * 20 * 30, dtype=torch.float32).view(3, 20, 30)
    a = sb.random_resized_crop(image, 8, torch.Generator().manual_seed(1))
    b = sb.random_resized_crop(image, 8, torch.Generator().manual_seed(1))
    assert a.shape == (3, 8, 8) and torch.equal(a, b)
    # a constant image stays constant whatever the window
    flat = sb.random_resized_crop(torch.full((3, 5, 40), 7.0), 6, torch.Generator().manual_seed(0))
    assert torch.allclose(flat, torch.full_like(flat, 7.0))


def test_prompt_samples_take_at_most_per_class_images_that_show_the_class():
    dataset = semseg.toy("toy-zero-shot", "train", images=30, training=True)
    seen = semseg.split("toy-zero-shot").seen[:5]
    samples = sb.prompt_samples(dataset, seen, per_class=2, seed=0)
    assert samples and all(c in seen for _, c in samples)
    assert all(sum(1 for _, k in samples if k == c) <= 2 for c in seen)
    assert all(bool((dataset[i]["mask"] == c).any()) for i, c in samples)


def test_prompt_samples_stop_reading_once_every_class_has_its_images():
    class Counting:
        def __init__(self):
            self.reads = 0

        def __len__(self):
            return 1000

        def __getitem__(self, i):
            self.reads += 1
            mask = torch.zeros(4, 4, dtype=torch.long)
            mask[0, 0] = 1 + i % 2  # every image shows class 0 and one of classes 1 and 2
            return {"mask": mask}

    data = Counting()
    samples = sb.prompt_samples(data, [0, 1, 2], per_class=3, seed=0)
    assert sorted(c for _, c in samples) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.reads < 20, "a random order finds three images of each class long before image 1000"
    assert len({i for i, c in samples if c == 0}) == 3


def test_prompt_training_moves_only_the_prompt_vectors_and_lowers_the_loss(tmp_path):
    from ovnb import encoders

    clip = encoders.build("toy-clip-vit", pretrained=True)
    dataset = semseg.toy("toy-zero-shot", "train", images=40, training=True)
    seen = semseg.split("toy-zero-shot").seen[:6]
    prompts = sb.LearnedPrompts(clip)
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    result = sb.train_prompts(prompts, dataset, seen, iterations=30, batch_size=8, run_dir=tmp_path, per_class=4,
                              warmup=3, lr=0.02, progress=False)
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert all(torch.equal(before[k], v) for k, v in clip.model.state_dict().items())  # CLIP stays frozen
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["module"]
    assert list(saved) == ["prefix"]


def test_table5_masks_from_elsewhere_are_classified_by_clip_alone_and_assembled_by_eq2():
    model = _toy_model()
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    masks = torch.zeros(3, 64, 64, dtype=torch.bool)
    masks[0, :32] = True
    masks[1, 32:, :20] = True  # masks may leave pixels uncovered; proposal 2 is empty
    names = ["red circle", "sky", "blue star"]
    text = model.text_embeddings(names)
    q = sb.clip_probabilities(model.clip, image, masks, text)
    scores = model.classify_masks(image, masks, names)
    # by hand: a pixel's score is the sum of q over the proposals that cover it (empty ones cover none)
    torch.testing.assert_close(scores[:, 5, 5], q[0])
    torch.testing.assert_close(scores[:, 40, 10], q[1])
    torch.testing.assert_close(scores[:, 40, 40], torch.zeros(3))
    with pytest.raises(ValueError, match="do not match the image"):
        model.classify_masks(image, masks[:, :32], names)


def test_table8_a_region_clip_replaces_the_crop_classifier_with_its_own_text_embeddings():
    from ovnb import encoders

    model = _toy_model(classifier="clip")
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, :32], masks[1, 32:] = True, True
    names = ["red circle", "sky", "blue star"]
    before = model.classify_masks(image, masks, names)
    other = encoders.build("toy-clip-convnext", pretrained=True)
    model.region_clip = other
    q = sb.clip_probabilities(other, image, masks, other.embed_text(names, "sculpture").float())
    after = model.classify_masks(image, masks, names)
    torch.testing.assert_close(after, sb.assemble(q, masks))
    assert not torch.allclose(before, after)
    # segment() uses the same region classifier (its masks are the generator's)
    images = image[None]
    _, logits, _ = model.proposals(images, names)
    q = sb.clip_probabilities(other, image, sb.binarize(logits[0]), other.embed_text(names, "sculpture").float())
    torch.testing.assert_close(model.segment(images, names)[0], sb.semantic_map(q, logits[0]))


def test_matched_class_accuracy_counts_the_hungarian_matched_queries_that_name_their_segment():
    """Two segments (left half: class 0, right half: class 1), three queries: one covers the left half and
    says class 0, one is empty, one covers the right half but says class 2. The matcher pairs the segments
    with the queries that cover them; one of the two is named. An image without segments counts nothing."""
    from transformers.models.maskformer.modeling_maskformer import MaskFormerHungarianMatcher

    left = torch.zeros(8, 8)
    left[:, :4] = 1
    right = 1 - left
    masks = torch.stack([10 * (2 * left - 1), torch.full((8, 8), -10.0), 10 * (2 * right - 1)])
    logits = torch.full((3, 4), -5.0)  # classes 0..2 and no-object
    logits[0, 0], logits[1, 3], logits[2, 2] = 5.0, 5.0, 5.0
    matcher = MaskFormerHungarianMatcher(cost_class=1.0, cost_mask=20.0, cost_dice=1.0)
    named, segments = sb.matched_class_accuracy(
        torch.stack([logits, logits]), torch.stack([masks, masks]),
        [torch.stack([left, right]), torch.zeros(0, 8, 8)], [torch.tensor([0, 1]), torch.zeros(0, dtype=torch.long)],
        matcher)
    assert (named, segments) == (1, 2)
