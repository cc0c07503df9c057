"""The converter of zsseg's released checkpoints, on a state dict written with the official parameter
names and shapes (ResNet-101c with DeepLab stem as detectron2 names it, MaskFormer's FPN and DETR
decoder, the zero-shot class MLP, the CLIP adapter), loaded strictly with every key used."""

import pytest
import torch

from ovnb.methods import simbaseline as sb
from ovnb.methods import simbaseline_weights as sw

RES_BLOCKS = {2: 3, 3: 4, 4: 23, 5: 3}  # ResNet-101
RES_WIDTH = {2: 64, 3: 128, 4: 256, 5: 512}  # bottleneck widths; outputs are 4x


def _norm(prefix, channels, out, rng, frozen_bn=True):
    keys = ("weight", "bias", "running_mean", "running_var") if frozen_bn else ("weight", "bias")
    for k in keys:
        out[f"{prefix}.norm.{k}"] = torch.rand(channels, generator=rng) + 0.5


def official_state_dict(prompts: bool = True, rng=None) -> dict:
    """What ``ZeroShotMaskFormer.state_dict()`` holds for zero_shot_maskformer_R101c_bs32_60k.yaml
    (names from detectron2's ResNet/DeepLab stem and the zsseg MaskFormer head; random values)."""
    rng = rng or torch.Generator().manual_seed(0)
    sd = {}

    def conv(name, cout, cin, k, bias=False):
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=rng)
        if bias:
            sd[f"{name}.bias"] = torch.randn(cout, generator=rng)

    for i, (cin, cout) in enumerate([(3, 64), (64, 64), (64, 128)], start=1):  # DeepLab stem
        conv(f"backbone.stem.conv{i}", cout, cin, 3)
        _norm(f"backbone.stem.conv{i}", cout, sd, rng)
    cin = 128
    for stage, blocks in RES_BLOCKS.items():
        width = RES_WIDTH[stage]
        for b in range(blocks):
            p = f"backbone.res{stage}.{b}"
            if b == 0:
                conv(f"{p}.shortcut", 4 * width, cin, 1)
                _norm(f"{p}.shortcut", 4 * width, sd, rng)
            conv(f"{p}.conv1", width, cin if b == 0 else 4 * width, 1)
            _norm(f"{p}.conv1", width, sd, rng)
            conv(f"{p}.conv2", width, width, 3)
            _norm(f"{p}.conv2", width, sd, rng)
            conv(f"{p}.conv3", 4 * width, width, 1)
            _norm(f"{p}.conv3", 4 * width, sd, rng)
        cin = 4 * width
    pd = "sem_seg_head.pixel_decoder"
    for level, channels in zip((1, 2, 3), (256, 512, 1024)):
        conv(f"{pd}.adapter_{level}", 256, channels, 1)
        _norm(f"{pd}.adapter_{level}", 256, sd, rng, frozen_bn=False)  # GroupNorm
        conv(f"{pd}.layer_{level}", 256, 256, 3)
        _norm(f"{pd}.layer_{level}", 256, sd, rng, frozen_bn=False)
    conv(f"{pd}.layer_4", 256, 2048, 3)
    _norm(f"{pd}.layer_4", 256, sd, rng, frozen_bn=False)
    conv(f"{pd}.mask_features", 256, 256, 3, bias=True)
    pr = "sem_seg_head.predictor"
    sd[f"{pr}.query_embed.weight"] = torch.randn(100, 256, generator=rng)
    conv(f"{pr}.input_proj", 256, 2048, 1, bias=True)
    for i in range(6):
        layer = f"{pr}.transformer.decoder.layers.{i}"
        for attn in ("self_attn", "multihead_attn"):
            sd[f"{layer}.{attn}.in_proj_weight"] = torch.randn(768, 256, generator=rng)
            sd[f"{layer}.{attn}.in_proj_bias"] = torch.randn(768, generator=rng)
            sd[f"{layer}.{attn}.out_proj.weight"] = torch.randn(256, 256, generator=rng)
            sd[f"{layer}.{attn}.out_proj.bias"] = torch.randn(256, generator=rng)
        for name, (cout, cin) in {"linear1": (2048, 256), "linear2": (256, 2048)}.items():
            sd[f"{layer}.{name}.weight"] = torch.randn(cout, cin, generator=rng)
            sd[f"{layer}.{name}.bias"] = torch.randn(cout, generator=rng)
        for n in ("norm1", "norm2", "norm3"):
            sd[f"{layer}.{n}.weight"] = torch.rand(256, generator=rng)
            sd[f"{layer}.{n}.bias"] = torch.rand(256, generator=rng)
    sd[f"{pr}.transformer.decoder.norm.weight"] = torch.rand(256, generator=rng)
    sd[f"{pr}.transformer.decoder.norm.bias"] = torch.rand(256, generator=rng)
    for k in range(3):
        sd[f"{pr}.mask_embed.layers.{k}.weight"] = torch.randn(256, 256, generator=rng)
        sd[f"{pr}.mask_embed.layers.{k}.bias"] = torch.randn(256, generator=rng)
    for k, (cout, cin) in enumerate([(1024, 256), (512, 1024)]):
        sd[f"{pr}.class_embed.layers.{k}.weight"] = torch.randn(cout, cin, generator=rng)
        sd[f"{pr}.class_embed.layers.{k}.bias"] = torch.randn(cout, generator=rng)
    sd["clip_adapter.non_object_embedding"] = torch.randn(1, 512, generator=rng)
    sd["pixel_mean"] = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    sd["pixel_std"] = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    sd["clip_adapter.pixel_mean"] = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1) * 255
    sd["clip_adapter.pixel_std"] = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1) * 255
    sd["criterion.empty_weight"] = torch.cat([torch.ones(156), torch.tensor([0.1])])
    if prompts:
        sd["clip_adapter.prompt_learner.prefix_prompt"] = torch.randn(16, 512, generator=rng) * 0.02
    return sd


@pytest.fixture(scope="module")
def model():
    return sb.build("clip-vit-b-16", pretrained=False, seen_names=["cat", "dog"], seed=0)


def test_every_official_key_fills_every_parameter_and_lands_where_the_official_code_uses_it(model):
    official = official_state_dict()
    clip_sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.clip.model.state_dict().items()}
    for name in ("visual.class_embedding", "visual.proj", "text_projection", "logit_scale", "token_embedding.weight",
                 "visual.transformer.resblocks.0.attn.in_proj_weight"):  # OpenAI CLIP's own names
        assert name in clip_sd
    table = clip_sd["token_embedding.weight"]
    official.update({f"clip_adapter.clip_model.{k}": v for k, v in clip_sd.items()})
    official.update({"clip_adapter.prompt_learner.start_signal": table[49406:49407],
                     "clip_adapter.prompt_learner.end_signal": table[49407:49408],
                     "clip_adapter.prompt_learner.dot_signal": table[269:270],
                     "clip_adapter.prompt_learner.pad_signal": table[0:1]})
    converted = sw.load_released(model, {"model": official, "iteration": 59999})
    assert sorted(converted.checked)[:2] == ["clip_adapter.pixel_mean", "clip_adapter.pixel_std"]
    g = model.generator.state_dict()
    layer = "maskformer.transformer_module.decoder.layers.3."
    in_proj = official["sem_seg_head.predictor.transformer.decoder.layers.3.multihead_attn.in_proj_weight"]
    torch.testing.assert_close(g[layer + "encoder_attn.q_proj.weight"], in_proj[:256])
    torch.testing.assert_close(g[layer + "encoder_attn.v_proj.weight"], in_proj[512:])
    torch.testing.assert_close(g[layer + "final_layer_norm.weight"],
                               official["sem_seg_head.predictor.transformer.decoder.layers.3.norm3.weight"])
    enc = "maskformer.pixel_level_module.encoder._backbone."
    torch.testing.assert_close(g[enc + "bn1.running_var"], official["backbone.stem.conv3.norm.running_var"])
    torch.testing.assert_close(g[enc + "layer3.22.conv2.weight"], official["backbone.res4.22.conv2.weight"])
    torch.testing.assert_close(g[enc + "layer4.0.downsample.1.weight"], official["backbone.res5.0.shortcut.norm.weight"])
    dec = "maskformer.pixel_level_module.decoder."
    # the FPN's first lateral layer is res4's (adapter_3); the 3x3 conv on res5 (layer_4) is its stem
    torch.testing.assert_close(g[dec + "fpn.layers.0.proj.0.weight"], official["sem_seg_head.pixel_decoder.adapter_3.weight"])
    torch.testing.assert_close(g[dec + "fpn.layers.2.block.1.bias"], official["sem_seg_head.pixel_decoder.layer_1.norm.bias"])
    torch.testing.assert_close(g[dec + "fpn.stem.0.weight"], official["sem_seg_head.pixel_decoder.layer_4.weight"])
    torch.testing.assert_close(g["class_embed.mlp.2.weight"], official["sem_seg_head.predictor.class_embed.layers.1.weight"])
    torch.testing.assert_close(g["class_embed.no_object"], official["clip_adapter.non_object_embedding"][0])
    torch.testing.assert_close(model.prompts.prefix, official["clip_adapter.prompt_learner.prefix_prompt"])
    torch.testing.assert_close(model.clip.model.state_dict()["visual.proj"], clip_sd["visual.proj"])
    image = torch.randint(0, 256, (1, 3, 64, 80), dtype=torch.uint8)
    assert model.segment(image, ["cat", "dog", "zebra"]).shape == (1, 3, 64, 80)


def test_a_key_the_official_code_does_not_have_or_a_missing_one_is_an_error(model):
    official = official_state_dict(prompts=False)
    with pytest.raises(sw.ConversionError, match="unknown key 'sem_seg_head.extra'"):
        sw.convert({**official, "sem_seg_head.extra": torch.zeros(1)})
    del official["sem_seg_head.predictor.query_embed.weight"]
    with pytest.raises(sw.ConversionError, match="queries_embedder"):
        sw.load_released(model, official)


def test_constants_are_checked_not_ignored():
    official = official_state_dict(prompts=False)
    with pytest.raises(sw.ConversionError, match="pixel_std"):
        sw.convert({**official, "pixel_std": torch.ones(3, 1, 1)})
    with pytest.raises(sw.ConversionError, match="no-object"):
        sw.convert({**official, "criterion.empty_weight": torch.ones(157)})
    with pytest.raises(sw.ConversionError, match="region CLIP adapter"):
        sw.convert({**official, "_region_clip_adapter.non_object_embedding": torch.zeros(1, 512)})


def test_the_released_files_are_named_with_their_hosts():
    assert set(sw.RELEASED) == {"zsseg-coco156-cross-dataset", "zsseg-coco156-zero-shot"}
    with pytest.raises(ValueError, match="known: zsseg-coco156-cross-dataset"):
        sw.download("zsseg-voc", "/nonexistent")
