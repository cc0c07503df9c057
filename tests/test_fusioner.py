"""Fusioner: parameter counts in closed form, shapes, the similarity head, loss and prediction rules."""

import math

import pytest
import torch
import torch.nn.functional as F

from ovnb import methods
from ovnb.methods import fusioner
from ovnb.methods.fusioner import FusionerConfig, FusionHead


def linear(i, o):
    return i * o + o


def layernorm(d):
    return 2 * d


def expected_paper_counts(dv=768, dt=768, w=512, layers=12, mlp=2048, dec=512, convs=4):
    """Trainable parameters of the official architecture, counted from its layer shapes."""
    block = layernorm(w) + linear(w, 3 * w) + linear(w, w) + layernorm(w) + linear(w, mlp) + linear(mlp, w)
    fusion = (layernorm(dv) + linear(dv, w) + layernorm(w)  # visual projection
              + layernorm(dt) + linear(dt, w)  # text projection
              + w  # type embedding
              + layers * block + layernorm(w) + 2 * w * w)  # blocks, final norm, proj_patch/classes
    decoder = (dec * w * 9 + dec) + (convs - 1) * (dec * dec * 9 + dec) + linear(dec, w)  # conv1x1 as linear
    return fusion, decoder


def test_paper_configuration_has_the_official_48_8m_parameters():
    fusion, decoder = expected_paper_counts()
    head = FusionHead(768, 768, FusionerConfig())
    n_decoder = sum(p.numel() for p in head.decoder.parameters())
    n_total = sum(p.numel() for p in head.parameters())
    assert n_decoder == decoder
    assert n_total - n_decoder == fusion
    assert round(n_total / 1e6, 1) == 48.8
    assert round(fusion / 1e6, 1) == 39.1 and round(decoder / 1e6, 1) == 9.7


def test_clip_l_both_sides_through_the_factory():
    model = methods.build("fusioner", visual="clip-vit-l-14", text="clip-vit-l-14", fusion="early", pretrained=False)
    assert model.visual_encoder is model.text_encoder  # one CLIP built once
    assert model.trainable_parameters() == sum(expected_paper_counts())
    frozen = [p for p in model.visual_encoder.parameters() if p.requires_grad]
    assert not frozen
    visual = model.visual_tokens(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))
    assert visual.tokens.shape == (1, 256, 768) and visual.grid == (16, 16)
    assert torch.allclose(visual.tokens.norm(dim=-1), torch.ones(1, 256), atol=1e-4)


@pytest.fixture(scope="module")
def toy_encoders():
    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", pretrained=True,
                          config=FusionerConfig.toy())
    return {"toy-clip-vit": model.visual_encoder}


@pytest.mark.parametrize("fusion,decoder", [("early", True), ("early", False), ("late", True), ("late", False),
                                            ("none", True), ("none", False)])
def test_every_configuration_segments_at_input_resolution(toy_encoders, fusion, decoder):
    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", fusion=fusion, pretrained=True,
                          config=FusionerConfig.toy(decoder=decoder), encoders=toy_encoders)
    images = torch.randint(0, 256, (2, 3, 48, 40), dtype=torch.uint8)
    logits = model.segment(images, ["red star", "sky", "blue ring"])
    assert logits.shape == (2, 3, 48, 40)
    assert torch.isfinite(logits).all()
    assert (model.trainable_parameters() == 0) == (fusion == "none" and not decoder)


def test_no_fusion_no_decoder_is_cosine_over_temperature(toy_encoders):
    """Table 4 B3: the logits are exactly cos(frozen token, frozen text) / 0.07 (upsampled)."""
    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", fusion="none", pretrained=True,
                          config=FusionerConfig.toy(decoder=False), encoders=toy_encoders)
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    visual = model.visual_tokens(images)
    text = model.text_embeddings(["red star"])
    logits = model.forward_features(visual, text, visual.grid)
    expected = (F.normalize(visual.tokens[0], dim=-1) @ F.normalize(text[0], dim=0)).view(*visual.grid) / 0.07
    assert torch.allclose(logits[0, 0], expected, atol=1e-4)


def test_none_without_decoder_needs_a_shared_space(toy_encoders):
    with pytest.raises(ValueError, match="share one space"):
        FusionHead(128, 384, FusionerConfig.toy(fusion="none", decoder=False))


def test_text_only_and_image_only_encoders_are_refused_in_the_wrong_role():
    with pytest.raises(ValueError, match="minilm-l6.*no image tower"):
        methods.build("fusioner", visual="minilm-l6", text="minilm-l6")
    with pytest.raises(ValueError, match="dino-vit-b-16.*no text tower"):
        methods.build("fusioner", visual="dino-vit-b-16", text="dino-vit-b-16")
    with pytest.raises(ValueError, match="unknown method 'fusionr'.*fusioner"):
        methods.build("fusionr")
    with pytest.raises(ValueError, match="fusion must be one of"):
        FusionerConfig(fusion="middle")


def test_bce_loss_ignores_void_pixels():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]])
    target = torch.tensor([[[[1, 0], [255, 255]]]])
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert fusioner.bce_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_prediction_uses_a_constant_half_background():
    logits = torch.tensor([[[[0.1, -0.1, 3.0]], [[2.0, -5.0, 1.0]]]])  # [1, K=2, 1, 3]
    # sigmoid: class0 = .52 .48 .95; class1 = .88 .007 .73 -> argmax over [.5, c0, c1]
    assert fusioner.Fusioner.predict(logits).tolist() == [[[2, 0, 1]]]


def test_random_text_control_is_fixed_per_name_and_unrelated_across_names():
    fn = fusioner.random_text(128, seed=0)
    a, b = fn(["red star", "blue ring"]), fn(["red star"])
    assert torch.equal(a[0], b[0])
    assert abs(float(a[0] @ a[1])) < 0.4
    assert torch.allclose(a.norm(dim=-1), torch.ones(2))


def test_official_optimizer_groups_put_the_decoder_on_a_constant_rate(toy_encoders):
    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", pretrained=True,
                          config=FusionerConfig.toy(), encoders=toy_encoders)
    groups = fusioner.param_groups(model, "official")
    decoder = {id(p) for p in model.head.decoder.parameters()}
    constant = [g for g in groups if g.get("schedule") == "constant"]
    assert len(constant) == 1 and {id(p) for p in constant[0]["params"]} == decoder
    assert sum(len(g["params"]) for g in groups) == len(list(model.head.parameters()))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fusioner.param_groups(model, "sgd")


def test_attention_maps_are_kept_on_request(toy_encoders):
    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", pretrained=True,
                          config=FusionerConfig.toy(), encoders=toy_encoders)
    model.head.keep_attention(True)
    model.segment(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), ["red star", "sky"])
    maps = model.head.attention_maps()
    assert len(maps) == 4 and maps[-1].shape == (1, 4, 66, 66)
    assert torch.allclose(maps[-1].sum(-1), torch.ones(1, 4, 66), atol=1e-5)


def test_sliding_window_with_one_window_equals_the_direct_prediction(toy_encoders):
    """An image of exactly the window size is one window: the sliding-window logits must be the
    model's own logits (catches pixel-scale slips, e.g. a uint8 image turned into 0..255 floats)."""
    from ovnb.evaluate import sliding_logits

    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", pretrained=True,
                          config=FusionerConfig.toy(), encoders=toy_encoders)
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    text = model.text_embeddings(["red star"])
    with torch.no_grad():
        direct = model.segment(image[None], ["red star"])[0]
    assert torch.allclose(sliding_logits(model, image, text), direct, atol=1e-4)
    small = image[:, :40, :50]  # padded to one window, cropped back
    assert sliding_logits(model, small, text).shape == (1, 40, 50)


@pytest.mark.parametrize("low,high", [((8, 8), (64, 64)), ((32, 32), (64, 64)), ((5, 7), (17, 23)),
                                      ((64, 48), (24, 20)), ((1, 3), (4, 9)), ((8, 8), (8, 8))])
def test_upsampled_cosine_equals_interpolate_then_cosine(low, high):
    """The cheap form of Eq. (4)'s similarity against the direct one: upsample every channel, then
    take the per-pixel cosine (values and gradients, in float64)."""
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 16, *low, dtype=torch.float64, generator=g, requires_grad=True)
    text = torch.randn(2, 3, 16, dtype=torch.float64, generator=g)
    up = F.interpolate(pixels, size=high, mode="bilinear", align_corners=False)
    direct = torch.einsum("bkc,bchw->bkhw", F.normalize(text, dim=-1), F.normalize(up, dim=1))
    fast = fusioner.upsampled_cosine(pixels, text, high)
    assert fast.shape == direct.shape
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-12)
    weights = torch.randn(direct.shape, dtype=torch.float64, generator=g)
    (g_direct,) = torch.autograd.grad((direct * weights).sum(), pixels)
    (g_fast,) = torch.autograd.grad((fusioner.upsampled_cosine(pixels, text, high) * weights).sum(), pixels)
    torch.testing.assert_close(g_fast, g_direct, rtol=1e-9, atol=1e-9)


def test_interpolation_matrix_reproduces_bilinear_resizing():
    x = torch.randn(1, 1, 6, 9, dtype=torch.float64)
    a = fusioner.interpolation_matrix(6, 13, dtype=torch.float64)
    b = fusioner.interpolation_matrix(9, 4, dtype=torch.float64)
    torch.testing.assert_close(a @ x[0, 0] @ b.T, F.interpolate(x, size=(13, 4), mode="bilinear",
                                                                  align_corners=False)[0, 0])
