"""Pieces of the toy pretraining, checked against closed forms and against open_clip itself."""

import torch

from ovnb import encoders
from ovnb.data import toy_world
from ovnb.encoders import toy_pretrain


def test_mimetic_init_sets_the_attention_products_in_closed_form():
    """With alpha = 0 the products are exact multiples of the identity: W_q^T W_k = b1 I and
    W_o W_v = -b2 I in every block."""
    enc = encoders.build("toy-clip-vit", pretrained=False)
    visual = enc.model.visual
    toy_pretrain.mimetic_init(visual, (0.0, 0.7, 0.0, 0.4))
    for block in visual.transformer.resblocks:
        d = block.attn.embed_dim
        w = block.attn.in_proj_weight.detach()
        eye = torch.eye(d)
        torch.testing.assert_close(w[:d].t() @ w[d:2 * d], 0.7 * eye, atol=1e-4, rtol=0)
        torch.testing.assert_close(block.attn.out_proj.weight.detach() @ w[2 * d:], -0.4 * eye, atol=1e-4, rtol=0)
        assert not block.attn.in_proj_bias.any() and not block.attn.out_proj.bias.any()


def test_mimetic_init_makes_attention_local():
    """Sin-cos positions + mimetic weights: at initialisation a patch token attends more to its
    4-neighbours than to far patches (the point of the initialisation), on a blank image."""
    torch.manual_seed(0)
    enc = encoders.build("toy-clip-vit", pretrained=False)
    visual = enc.model.visual
    toy_pretrain.mimetic_init(visual)
    block = visual.transformer.resblocks[0]
    with torch.no_grad():
        x = visual.conv1(torch.zeros(1, 3, 64, 64)).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.view(1, 1, -1), x], 1) + visual.positional_embedding
        x = block.ln_1(visual.ln_pre(x))
        _, attn = block.attn(x, x, x, need_weights=True, average_attn_weights=True)
    grid = attn[0, 1:, 1:].reshape(8, 8, 8, 8)  # [qy, qx, ky, kx]
    near, far = [], []
    for qy in range(1, 7):
        for qx in range(1, 7):
            near.append(grid[qy, qx, qy, qx + 1])
            far.append(grid[qy, qx, (qy + 4) % 8, (qx + 4) % 8])
    assert torch.stack(near).mean() > 2 * torch.stack(far).mean()


def test_distillation_is_zero_for_identical_embeddings_and_positive_otherwise():
    voc = torch.nn.functional.normalize(torch.randn(len(toy_world.vocabulary().names), 16), dim=-1)
    a = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    assert toy_pretrain._distillation(a, a, voc, 0.02).abs() < 1e-6
    assert toy_pretrain._distillation(a, b, voc, 0.02) > 0.01


def test_positives_are_the_captions_that_describe_the_image():
    """Hand-made batch: a template caption naming only the thing describes every image of that
    thing; a caption naming thing + background describes only images with that background."""
    voc = toy_world.vocabulary()
    star, heart = voc.index("red star"), voc.index("red heart")
    grass, sand = voc.index("grass"), voc.index("sand")
    named = [(star, grass), (star,), (star, sand), (heart, grass), (grass,)]  # what each caption names
    present = [(star, grass), (star, sand), (star, sand), (heart, grass), (grass,)]  # what each image holds
    expected = torch.tensor([[1, 1, 0, 0, 0],   # red star on grass: its caption, "a photo of a red star";
                             [0, 1, 1, 0, 0],   # not "grass", which leaves out the star
                             [0, 1, 1, 0, 0],   # red star on sand: the template caption and "red star on sand"
                             [0, 0, 0, 1, 0],
                             [0, 0, 0, 0, 1]], dtype=torch.float32)  # grass alone: only "grass"
    got = toy_pretrain._positives(named, present, torch.arange(5))
    torch.testing.assert_close(got, expected)


def test_locked_caption_embeddings_equal_per_batch_encoding():
    """The ConvNeXt and ViT CLIPs read their locked text tower's embeddings from one table: each
    distinct caption embedded once, in length-sorted batches; it must equal encoding each batch."""
    enc = encoders.build("toy-clip-convnext", pretrained=True)
    captions = ["a red star on sand", "grass", "a photo of a blue heart.", "grass",
                "a yellow star, a green heart and a red heart on tiled floor", "a red star on sand"]
    table = toy_pretrain._embed_captions(enc, captions, batch=2)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(enc.model.encode_text(enc.tokenizer(captions)), dim=-1)
    torch.testing.assert_close(table, reference, atol=1e-5, rtol=1e-5)


def _text_pretraining_changes(name, tokenizer):
    torch.manual_seed(0)
    enc = encoders.build(name, pretrained=False)
    enc.tokenizer = tokenizer
    pool = toy_pretrain.make_pool(24, seed=3, progress=False)
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    cfg = toy_pretrain.PretrainConfig(batch_size=8)
    curve = toy_pretrain.train_text(enc, pool, steps=2, lr=1e-3, cfg=cfg, progress=False, warmup=1)
    assert len(curve) == 2
    return {k for k, v in enc.model.state_dict().items() if not torch.equal(v, before[k])}


def test_text_pretraining_trains_the_clip_text_tower_only():
    changed = _text_pretraining_changes("toy-clip-convnext", encoders.toy.tokenizer())
    assert any(k.startswith("transformer.") for k in changed) and "token_embedding.weight" in changed
    assert not any(k.startswith("visual.") for k in changed) and "logit_scale" not in changed


def test_text_pretraining_trains_the_blip_text_encoder_only():
    changed = _text_pretraining_changes("toy-blip", encoders.toy.tokenizer().hf)
    assert any(k.startswith("text_encoder.") for k in changed) and any(k.startswith("text_proj.") for k in changed)
    assert not any(k.startswith(("vision_model.", "vision_proj.", "itm_head.")) for k in changed)


def test_blip_vision_from_open_clip_computes_the_clip_blocks():
    """The toy BLIP's vision tower initialised from the toy CLIP ViT computes open_clip's own patch
    embedding, class token, position embeddings, first four blocks and final norm (``ln_pre`` left out,
    as BLIP's ViT has none)."""
    clip = encoders.build("toy-clip-vit", pretrained=False).model.visual.eval()
    blip = encoders.build("toy-blip", pretrained=False).model.vision_model.eval()
    toy_pretrain.vision_from_open_clip(blip, clip.state_dict())
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        x = clip.conv1(image).flatten(2).transpose(1, 2)
        x = torch.cat([clip.class_embedding.expand(2, 1, -1), x], dim=1) + clip.positional_embedding
        for block in clip.transformer.resblocks[:len(blip.encoder.layers)]:
            x = block(x)
        expected = clip.ln_post(x)
        got = blip(pixel_values=image).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_blip_pretraining_keeps_a_frozen_vision_tower():
    torch.manual_seed(0)
    enc = encoders.build("toy-blip", pretrained=False)
    enc.tokenizer = encoders.toy.tokenizer().hf
    pool = toy_pretrain.make_pool(24, seed=3, progress=False)
    changed = {}
    for frozen in (True, False):
        before = {k: v.clone() for k, v in enc.model.state_dict().items()}
        cfg = toy_pretrain.PretrainConfig(batch_size=8, blip_freeze_vision=frozen)
        toy_pretrain.train_blip(enc, pool, steps=2, lr=1e-3, cfg=cfg, progress=False, warmup=1)
        changed[frozen] = {k for k, v in enc.model.state_dict().items() if not torch.equal(v, before[k])}
    assert not any(k.startswith("vision_model.") for k in changed[True])
    assert any(k.startswith("text_encoder.") for k in changed[True]) and "itm_head.weight" in changed[True]
    assert any(k.startswith("vision_model.encoder.") for k in changed[False])
