"""The official-checkpoint converter on a checkpoint built with the official names and shapes.

The names and shapes below are written from the official modules (``msdeformattn.py``,
``fcclip_transformer_decoder.py``, detectron2's ``Conv2d`` with ``norm``), not from this project's
model; the checks then compare pieces of the converted model with the same computation done by hand
from the official tensors."""

import torch
import torch.nn.functional as F

from ovnb.methods import fcclip as fc
from ovnb.methods import fcclip_weights as fw

D, FFN_ENC, FFN_DEC, Q, HEADS, LEVELS, POINTS = 64, 128, 128, 24, 4, 3, 4
CHANNELS = [40, 80, 160, 320]  # toy ConvNeXt stages (res2..res5)
CLIP_DIM = 128


def official_state(encoder_layers=2, decoder_layers=3, seed=0, channels=None, clip_dim=CLIP_DIM, d=D,
                   ffn_enc=FFN_ENC, ffn_dec=FFN_DEC, queries=Q, heads=HEADS) -> dict:
    """An official-format state dict; the defaults fit the toy ConvNeXt model of ``_model``, ``channels``
    and the widths another backbone (a ResNet CLIP's res2..res5, its EMBED_DIM as ``clip_dim``)."""
    channels = CHANNELS if channels is None else channels
    D, FFN_ENC, FFN_DEC, Q, HEADS = d, ffn_enc, ffn_dec, queries, heads  # noqa: N806 (the official sizes)
    g = torch.Generator().manual_seed(seed)
    s = {}

    def put(name, *shape):
        s[name] = torch.randn(*shape, generator=g)

    pd, pr = "sem_seg_head.pixel_decoder.", "sem_seg_head.predictor."
    for i, c in enumerate(channels[1:][::-1]):  # input_proj[0] is res5
        put(f"{pd}input_proj.{i}.0.weight", D, c, 1, 1), put(f"{pd}input_proj.{i}.0.bias", D)
        put(f"{pd}input_proj.{i}.1.weight", D), put(f"{pd}input_proj.{i}.1.bias", D)
    put(f"{pd}transformer.level_embed", LEVELS, D)
    for n in range(encoder_layers):
        e = f"{pd}transformer.encoder.layers.{n}."
        put(e + "self_attn.sampling_offsets.weight", HEADS * LEVELS * POINTS * 2, D)
        put(e + "self_attn.sampling_offsets.bias", HEADS * LEVELS * POINTS * 2)
        put(e + "self_attn.attention_weights.weight", HEADS * LEVELS * POINTS, D)
        put(e + "self_attn.attention_weights.bias", HEADS * LEVELS * POINTS)
        for p in ("value_proj", "output_proj"):
            put(e + f"self_attn.{p}.weight", D, D), put(e + f"self_attn.{p}.bias", D)
        for p in ("norm1", "norm2"):
            put(e + f"{p}.weight", D), put(e + f"{p}.bias", D)
        put(e + "linear1.weight", FFN_ENC, D), put(e + "linear1.bias", FFN_ENC)
        put(e + "linear2.weight", D, FFN_ENC), put(e + "linear2.bias", D)
    put(f"{pd}mask_features.weight", D, D, 1, 1), put(f"{pd}mask_features.bias", D)
    put(f"{pd}adapter_1.weight", D, channels[0], 1, 1)  # detectron2 Conv2d(bias=False, norm=GN)
    put(f"{pd}adapter_1.norm.weight", D), put(f"{pd}adapter_1.norm.bias", D)
    put(f"{pd}layer_1.weight", D, D, 3, 3)
    put(f"{pd}layer_1.norm.weight", D), put(f"{pd}layer_1.norm.bias", D)
    for n in range(decoder_layers - 1):
        for kind, attn in (("self", "self_attn"), ("cross", "multihead_attn")):
            b = f"{pr}transformer_{kind}_attention_layers.{n}."
            put(b + f"{attn}.in_proj_weight", 3 * D, D), put(b + f"{attn}.in_proj_bias", 3 * D)
            put(b + f"{attn}.out_proj.weight", D, D), put(b + f"{attn}.out_proj.bias", D)
            put(b + "norm.weight", D), put(b + "norm.bias", D)
        f = f"{pr}transformer_ffn_layers.{n}."
        put(f + "linear1.weight", FFN_DEC, D), put(f + "linear1.bias", FFN_DEC)
        put(f + "linear2.weight", D, FFN_DEC), put(f + "linear2.bias", D)
        put(f + "norm.weight", D), put(f + "norm.bias", D)
    put(f"{pr}decoder_norm.weight", D), put(f"{pr}decoder_norm.bias", D)
    put(f"{pr}query_feat.weight", Q, D), put(f"{pr}query_embed.weight", Q, D), put(f"{pr}level_embed.weight", LEVELS, D)
    for i in range(3):
        put(f"{pr}mask_embed.layers.{i}.weight", D, D), put(f"{pr}mask_embed.layers.{i}.bias", D)
        out = clip_dim if i == 2 else D
        put(f"{pr}class_embed.layers.{i}.weight", out, D), put(f"{pr}class_embed.layers.{i}.bias", out)
    put(f"{pr}_mask_pooling_proj.0.weight", D), put(f"{pr}_mask_pooling_proj.0.bias", D)
    put(f"{pr}_mask_pooling_proj.1.weight", D, D), put(f"{pr}_mask_pooling_proj.1.bias", D)
    s[f"{pr}logit_scale"] = torch.tensor(2.5)
    put("void_embedding.weight", 1, clip_dim)
    s["criterion.empty_weight"] = torch.ones(134)
    return s


def _model():
    return fc.build(clip="toy-clip-convnext", pretrained=False, encoder_layers=2, decoder_layers=3)


def test_every_official_key_is_used_and_the_model_loads_strictly(tmp_path):
    official = official_state()
    path = tmp_path / "fcclip_cocopan.pth"
    torch.save({"model": official, "iteration": 368749}, path)
    model = _model()
    ignored = fw.load_official(model, path)
    assert ignored == ["criterion.empty_weight"]
    converted, _ = fw.convert(official)
    assert set(converted) == set(model.trainable_state())  # nothing missing, nothing left over
    n_in = sum(v.numel() for k, v in official.items() if k not in ignored)
    assert sum(v.numel() for v in converted.values()) == n_in  # every number lands somewhere once
    again = _model()
    fc.load_weights(again, path)  # what build(weights=...) calls: recognises the official format
    assert all(torch.equal(a, b) for a, b in zip(again.trainable_state().values(), model.trainable_state().values()))


def test_unknown_keys_are_refused():
    import pytest

    with pytest.raises(KeyError, match="sem_seg_head.predictor.class_embed_typo"):
        fw.convert({"sem_seg_head.predictor.class_embed_typo.weight": torch.zeros(1)})


def test_converted_pieces_compute_what_the_official_modules_compute(tmp_path):
    official = official_state()
    torch.save({"model": official}, tmp_path / "c.pth")
    model = _model()
    fw.load_official(model, tmp_path / "c.pth")
    pr, pd = "sem_seg_head.predictor.", "sem_seg_head.pixel_decoder."
    g = torch.Generator().manual_seed(1)
    # 1. self-attention: official nn.MultiheadAttention (q = k = x + pos, v = x) with packed weights
    x, pos = torch.randn(Q, 2, D, generator=g), torch.randn(Q, 2, D, generator=g)
    ref = torch.nn.MultiheadAttention(D, HEADS)
    ref.load_state_dict({k.split("self_attn.")[1]: v for k, v in official.items()
                         if k.startswith(f"{pr}transformer_self_attention_layers.0.self_attn.")})
    expected = ref(x + pos, x + pos, x)[0]
    layer = model.generator.transformer_module.decoder.layers[0]
    got = layer.self_attn(hidden_states=x, position_embeddings=pos)[0]
    assert torch.allclose(got, expected, atol=1e-4)
    # 2. the class MLP: Linear-ReLU-Linear-ReLU-Linear from the official layers
    h = torch.randn(5, D, generator=g)
    y = h
    for i in range(3):
        y = F.linear(y, official[f"{pr}class_embed.layers.{i}.weight"], official[f"{pr}class_embed.layers.{i}.bias"])
        y = F.relu(y) if i < 2 else y
    assert torch.allclose(model.class_embed(h), y, atol=1e-5)
    # 3. the stride-4 lateral: conv (no bias) then GroupNorm(32)
    f = torch.randn(1, CHANNELS[0], 8, 8, generator=g)
    z = F.group_norm(F.conv2d(f, official[f"{pd}adapter_1.weight"]), 32, official[f"{pd}adapter_1.norm.weight"],
                     official[f"{pd}adapter_1.norm.bias"])
    assert torch.allclose(model.generator.pixel_decoder.adapter_1(f), z, atol=1e-5)
    # 4. scalars and embeddings land unchanged
    assert float(model.logit_scale.detach()) == 2.5
    assert torch.equal(model.generator.transformer_module.queries_features.weight, official[f"{pr}query_feat.weight"])
    assert torch.equal(model.void_embedding.weight, official["void_embedding.weight"])


def test_class_lists_parse_as_the_official_reader_and_download_is_checked(tmp_path):
    from ovnb.data import class_lists, fixtures
    from ovnb.data.prepare import fcclip_class_lists as F

    text = "0:invalid_class_id\n1:person,child\n2:invalid_class_id\n3:bicycle,bike\n"
    assert F.parse(text) == ["person,child", "bicycle,bike"]
    assert F.parse("0:background,bush\n1:aeroplane\n", keep_zero=True) == ["background,bush", "aeroplane"]
    src = tmp_path / "src"
    fixtures.fcclip_class_lists(src)  # the official counts, in the official layout
    out = F.prepare(tmp_path / "data", {"fc-clip": (src / F.FOLDER).as_uri()})
    assert F.check(tmp_path / "data") == []
    voc20 = class_lists.fcclip_synonyms(tmp_path / "data", "voc-20")
    assert len(voc20) == 20 and voc20[0] == "aeroplane,aeroplanes"  # PAS-21 without its background
    (out / F.filename("cityscapes")).write_text("0:road\n")
    assert F.check(tmp_path / "data") == [f"{out / F.filename('cityscapes')}: 1 classes, expected 19"]
