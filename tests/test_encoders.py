"""The frozen-encoder registry: every entry builds offline, documented dimensions, text embeddings,
toy checkpoints verified."""

import shutil

import pytest
import torch
import torch.nn.functional as F

from ovnb import encoders
from ovnb.encoders import templates, toy

# name -> (input size, dense widths before projection, grid of the last level, width after projection)
DOCUMENTED = {
    "clip-vit-b-16": (224, [768], (14, 14), 512),
    "clip-vit-l-14": (224, [1024], (16, 16), 768),
    "clip-convnext-large-d-320": (320, [192, 384, 768, 1536], (10, 10), 768),
    "clip-vit-b-32": (224, [768], (7, 7), 512),
    "dino-vit-b-16": (224, [768], (14, 14), None),
    "mocov3-vit-b-16": (224, [768], (14, 14), None),
    "blip-itm-large-flickr": (384, [1024], (24, 24), 256),
    "toy-clip-vit": (64, [128], (8, 8), 128),
    "toy-clip-convnext": (64, [40, 80, 160, 320], (2, 2), 128),
    "toy-blip": (64, [128], (8, 8), 128),
}
TEXT_WIDTHS = {"bert-base-uncased": 768, "bert-large-uncased": 1024, "minilm-l6": 384}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown encoder 'clip-vit-h-14'.*clip-vit-l-14.*toy-blip"):
        encoders.build("clip-vit-h-14")


def test_registry_names_every_public_checkpoint():
    assert len(encoders.names()) == 19
    for name in encoders.names():
        info = encoders.info(name)
        assert info.checkpoint and info.modalities and info.description
    assert "laion2b_s29b_b131k_ft_soup" in encoders.info("clip-convnext-large-d-320").checkpoint
    assert encoders.info("blip-itm-large-flickr").checkpoint == "Salesforce/blip-itm-large-flickr"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_image_towers_build_offline_with_documented_dimensions(name):
    size, widths, grid, projected = DOCUMENTED[name]
    enc = encoders.build(name, pretrained=False)
    assert all(not p.requires_grad for p in enc.parameters()) and not enc.training
    assert enc.image_size == size
    x = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8)  # any input size is resized
    with torch.no_grad():
        dense = enc.dense(x, projected=False)
        assert [m.shape[1] for m in dense.maps] == widths
        assert dense.grid == grid
        if projected is not None:
            assert enc.dense(x, projected=True).last.shape[1] == projected
            assert enc.embed_image(x).shape == (1, projected)
    del enc


# OpenAI's CLIP ResNets (open_clip ModifiedResNet): widths of layer1..4 and the joint width
RESNETS = {"clip-rn50": 1024, "clip-rn101": 512}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RESNETS))
def test_clip_resnets_have_four_levels_and_no_projected_dense_map(name):
    enc = encoders.build(name, pretrained=False)
    assert enc.image_size == 224 and enc.width == 2048
    x = torch.randint(0, 256, (1, 3, 40, 56), dtype=torch.uint8)
    with torch.no_grad():
        dense = enc.dense(x, projected=False)
        assert [m.shape[1] for m in dense.maps] == [256, 512, 1024, 2048]
        assert dense.grid == (7, 7)
        assert enc.embed_image(x).shape == (1, RESNETS[name])
        assert enc.embed_text(["dog"], "photo").shape == (1, RESNETS[name])
    with pytest.raises(NotImplementedError, match="pools globally"):
        enc.dense(x, projected=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TEXT_WIDTHS))
def test_text_towers_build_offline(name):
    enc = encoders.build(name, pretrained=False)
    assert enc.embed_text(["dog", "brick wall"], "photo").shape == (2, TEXT_WIDTHS[name])
    with pytest.raises(NotImplementedError, match="no image tower"):
        enc.dense(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.slow
def test_itm_models_expose_cross_attention():
    blip = encoders.build("blip-itm-large-flickr")
    layers = blip.model.text_encoder.encoder.layer
    assert len(layers) == 12 and all(hasattr(layer, "crossattention") for layer in layers)
    assert layers[7].crossattention.self.key.in_features == 1024  # keys come from the ViT-L image tokens
    del blip
    bt = encoders.build("bridgetower-large-itm")
    assert len(bt.model.bridgetower.cross_modal_text_layers) == 6
    assert bt.model.config.hidden_size == 1024 and bt.model.config.num_attention_heads == 16
    with pytest.raises(RuntimeError, match="no tokenizer offline"):
        bt.itm_logits(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ["a dog"])
    with pytest.raises(NotImplementedError, match="no text tower"):
        encoders.build("dino-vit-b-16").embed_text(["dog"])


def test_tokenizers_know_the_words():
    """Every toy word has its own id (no [UNK]); the offline BERT vocabulary is the real 30,522-token one."""
    import tempfile
    from pathlib import Path

    from ovnb.data import vocabulary
    from ovnb.encoders.language import offline_bert_tokenizer

    folder = Path(tempfile.mkdtemp())
    tok = toy.ToyTokenizer(toy.write_vocab(folder / "vocab.txt"))
    text = " ".join(vocabulary().names) + " " + " ".join(t.format("red star") for t in templates.get("imagenet"))
    ids = tok(text, context_length=1024)[0]
    assert tok.hf.unk_token_id not in ids.tolist()
    assert ids[0] == tok.hf.cls_token_id and tok.eos_id in ids.tolist()
    bert = offline_bert_tokenizer()
    assert bert.vocab_size == 30522
    assert bert.unk_token_id not in bert("a photo of a giraffe")["input_ids"]


def test_template_sets():
    assert len(templates.get("fusioner")) == 32
    assert len(templates.get("vild")) == 14
    assert len(templates.get("imagenet")) == 80
    assert templates.get("photo") == ("a photo of a {}.",)
    assert all(t.count("{}") == 1 for n in templates.NAMES for t in templates.get(n))
    assert templates.get(["a {} here"]) == ("a {} here",)
    with pytest.raises(ValueError, match="exactly one"):
        templates.get(["no slot"])
    with pytest.raises(ValueError, match="unknown template set"):
        templates.get("coco")


def test_embed_text_averages_normalised_template_embeddings_and_caches():
    enc = encoders.build("toy-clip-vit", pretrained=False)
    names, temps = ["red star", "sky"], templates.get("vild")
    got = enc.embed_text(names, "vild")
    with torch.no_grad():
        for k, name in enumerate(names):
            each = F.normalize(enc.encode_sentences([t.format(name) for t in temps]), dim=-1)
            expected = F.normalize(each.mean(0), dim=-1)
            assert torch.allclose(got[k], expected, atol=1e-5)
    assert torch.allclose(got.norm(dim=-1), torch.ones(2), atol=1e-5)
    calls = []
    original = enc.encode_sentences
    enc.encode_sentences = lambda s: calls.append(len(s)) or original(s)
    again = enc.embed_text(["sky", "red star", "grass"], "vild")
    assert calls == [len(temps)], "only the new name is embedded"
    assert torch.equal(again[0], got[1]) and torch.equal(again[1], got[0])


def test_real_minilm_loads_offline_and_knows_english():
    enc = encoders.build("minilm-l6", pretrained=True)
    e = enc.embed_text(["dog", "puppy", "brick wall"], "photo")
    sim = e @ e.t()
    assert sim[0, 1] > sim[0, 2] + 0.2, f"dog~puppy {sim[0, 1]:.2f} vs dog~brick wall {sim[0, 2]:.2f}"


@pytest.mark.parametrize("name", toy.TOY_NAMES)
def test_toy_checkpoints_load_and_verify(name):
    enc = encoders.build(name, pretrained=True)
    manifest = toy.read_manifest()
    assert manifest["models"][name]["sha256"] == toy.sha256(toy.WEIGHTS_DIR / manifest["models"][name]["file"])
    assert all(not p.requires_grad for p in enc.parameters())


def test_tampered_or_missing_checkpoint_is_refused(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(toy.WEIGHTS_DIR, folder)
    path = folder / "toy-clip-vit.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with toy.use_weights_dir(folder):
        with pytest.raises(toy.ToyWeightsError, match="corrupt or was modified.*ovnb toy pretrain"):
            encoders.build("toy-clip-vit", pretrained=True)
        (folder / "toy-blip.safetensors").unlink()
        with pytest.raises(toy.ToyWeightsError, match="missing.*ovnb toy pretrain"):
            encoders.build("toy-blip", pretrained=True)
    encoders.build("toy-clip-vit", pretrained=True)  # the installed weights are untouched


@pytest.mark.slow
@pytest.mark.parametrize("name", ["toy-clip-convnext", "toy-clip-vit"])
def test_toy_clips_meet_the_zero_shot_bar(name):
    """>= 0.80 zero-shot top-1 over the full vocabulary (62-way, chance 0.016) on held-out crops (the
    toy CLIP quality bar), and shape is learned, not only colour and stuff: colour alone would give
    1/8 on things."""
    from ovnb.encoders import toy_pretrain

    acc = toy_pretrain.zero_shot_accuracy(encoders.build(name, pretrained=True), n=600, seed=1)
    assert acc["top1"] >= 0.80 and acc["top1_things"] >= 0.75, acc


@pytest.mark.slow
def test_toy_blip_meets_the_itm_bar():
    """>= 0.90 image-text matching accuracy on held-out pairs with hard negatives (same shape, other
    colour; chance 0.5), the toy BLIP quality bar."""
    from ovnb.encoders import toy_pretrain

    blip = toy_pretrain.itm_accuracy(encoders.build("toy-blip", pretrained=True), n=600, seed=1)
    assert blip["accuracy"] >= 0.90 and blip["ranking"] >= 0.90, blip


@pytest.mark.slow
def test_pretraining_pipeline_runs_and_writes_verified_weights(tmp_path):
    from ovnb.encoders import toy_pretrain

    manifest = toy_pretrain.pretrain_all(toy_pretrain.SMOKE, tmp_path, progress=False)
    assert set(manifest["models"]) == set(toy.TOY_NAMES)
    assert {"toy-clip-vit", "toy-clip-convnext", "toy-blip"} == set(manifest["quality"])
    with toy.use_weights_dir(tmp_path):
        for name in toy.TOY_NAMES:
            toy.load_state_dict(name)
    # the BLIP alone, on the CLIPs just written: they stay as they are, the manifest says what was redone
    clips = {name: manifest["models"][name]["sha256"] for name in ("toy-clip-vit", "toy-clip-convnext")}
    again = toy_pretrain.pretrain_blip(toy_pretrain.SMOKE, tmp_path, progress=False)
    assert {name: again["models"][name]["sha256"] for name in clips} == clips
    assert "toy-blip" in again["regenerated"] and set(again["quality"]) == set(manifest["quality"])
    with toy.use_weights_dir(tmp_path):
        for name in toy.TOY_NAMES:
            toy.load_state_dict(name)


def test_random_weights_are_a_function_of_the_name_and_leave_the_callers_random_state():
    """A dry run's notebooks run in separate processes and share trained runs keyed by weight fingerprints."""
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = encoders.build("toy-clip-vit", pretrained=False).state_dict()
    assert torch.equal(torch.get_rng_state(), state)  # the caller's draws are unchanged
    torch.manual_seed(2)
    second = encoders.build("toy-clip-vit", pretrained=False).state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    other = encoders.build("toy-clip-convnext", pretrained=False).state_dict()
    shared = [k for k in other if k in first and other[k].shape == first[k].shape and other[k].numel() > 1
              and other[k].std() > 0]
    assert shared and not all(torch.equal(first[k], other[k]) for k in shared)  # another name, other draws
    # toy pretraining draws the initial weights from the state it seeds
    drawn = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        drawn.append(encoders.build("toy-clip-vit", pretrained=False, fixed_seed=False).state_dict())
    weights = [k for k in first if first[k].is_floating_point() and first[k].numel() > 1 and first[k].std() > 0]
    assert not all(torch.equal(drawn[0][k], drawn[1][k]) for k in weights)


@pytest.mark.parametrize("name", ["toy-clip-convnext", "clip-vit-b-16"])  # EOS pooling / argmax pooling
def test_text_tower_read_up_to_the_end_token_equals_open_clip_encode_text(name):
    from ovnb.encoders.openclip import encode_text, pooled_positions

    enc = encoders.build(name, pretrained=name.startswith("toy"))
    tokens = enc.tokenizer(["a red star on sand", "a photo of a blue heart.", "grass"])
    assert int(pooled_positions(enc.model, tokens).max()) + 1 < tokens.shape[1]  # the trim really shortens
    with torch.no_grad():
        reference = enc.model.encode_text(tokens)
        torch.testing.assert_close(encode_text(enc.model, tokens), reference, atol=1e-5, rtol=1e-4)
        # token embeddings given instead (the learned-prompt path)
        torch.testing.assert_close(encode_text(enc.model, tokens, embeddings=enc.model.token_embedding(tokens)),
                                   reference, atol=1e-5, rtol=1e-4)
