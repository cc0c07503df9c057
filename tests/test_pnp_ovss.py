"""PnP-OVSS: each step against a hand computation or an independent route through the model."""

import math

import pytest
import torch

from ovnb import encoders, methods
from ovnb.methods import pnp_ovss as P
from ovnb.methods import pnp_reward as R

NAMES = ["red star", "blue circle", "grass", "sky"]


@pytest.fixture(scope="module")
def tiny():
    """The toy BLIP's architecture with random weights (4 layers x 4 heads, 8 x 8 patches of 8 px)."""
    torch.manual_seed(0)
    enc = encoders.build("toy-blip", pretrained=False)
    return P.PnPOVSS(enc, P.PnPConfig(image_size=64, first_token="keep", single_word=False, layer=2, head=3,
                                      background="never", crf=False, blur=False))


def _images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 40, 48), dtype=torch.uint8, generator=g)


# -- the caption and its tokens ----------------------------------------------------------------------

def test_caption_names_are_made_single_word_as_the_official_code():
    assert P.caption_names(["traffic light", "wall-brick", "cat"]) == ["trafficlight", "wallbrick", "cat"]
    assert P.caption_names(["traffic  light"], single_word=False) == ["traffic light"]


def test_caption_and_character_spans():
    text, spans = P.caption(["cat", "trafficlight"])
    assert text == "A picture of cat trafficlight"
    assert [text[a:b] for a, b in spans] == ["cat", "trafficlight"]


def test_token_spans_multi_piece_names_with_a_wordpiece_tokenizer():
    from ovnb.encoders.language import offline_bert_tokenizer

    tok = offline_bert_tokenizer()
    text, spans = P.caption(P.caption_names(["dog", "traffic light", "potted plant"]))
    enc = tok(text, return_offsets_mapping=True)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    rows = P.token_spans(enc["offset_mapping"], spans)
    # by hand: [CLS] a picture of | dog | traffic ##light | potted ##plant | [SEP]
    names = [[pieces[i] for i in r] for r in rows]
    assert names[0] == ["dog"]
    assert "".join(p.lstrip("#") for p in names[1]) == "trafficlight" and len(names[1]) >= 2
    assert "".join(p.lstrip("#") for p in names[2]) == "pottedplant" and len(names[2]) >= 2
    assert rows[0] == [4] and rows[1][0] == 5 and rows[2][0] == rows[1][-1] + 1
    assert rows[2][-1] == len(pieces) - 2  # [SEP] belongs to no class


def test_token_spans_multi_word_names_with_the_toy_word_level_tokenizer():
    from ovnb.encoders import toy

    tok = toy.tokenizer().hf
    text, spans = P.caption(["red star", "grass"], "a photo of")
    enc = tok(text, return_offsets_mapping=True)
    assert P.token_spans(enc["offset_mapping"], spans) == [[4, 5], [6]]


def test_class_maps_average_pieces_and_the_last_class_quirk():
    t = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 6.0], [9.0, 8.0]])
    spans = [[0], [1, 2], [3, 4]]
    assert torch.equal(P.class_maps(t, spans), torch.tensor([[1.0, 0.0], [4.0, 3.0], [8.0, 7.0]]))
    quirk = P.class_maps(t, spans, last_class_sum=True)
    assert torch.equal(quirk[2], torch.tensor([16.0, 14.0])) and torch.equal(quirk[1], torch.tensor([4.0, 3.0]))


def test_a_caption_longer_than_the_model_reads_is_refused(tiny):
    with pytest.raises(ValueError, match="reads at most 24"):
        tiny.segment(_images(1), [f"word{i}" for i in range(30)])


def test_enc_token_needs_a_vocabulary_with_it(tiny):
    with pytest.raises(ValueError, match=r"\[ENC\]"):
        tiny.configure(first_token="enc").segment(_images(1), NAMES)


# -- GradCAM -----------------------------------------------------------------------------------------

def test_gradcam_matches_a_hand_computation(tiny):
    """attention x relu(gradient) of layer 2, head 3, through transformers' own cross_attentions output
    and autograd - image-CLS key and query 0 dropped, word rows averaged per class."""
    images = _images(1)
    cands = [0, 2]
    m = tiny.configure(passes=1)
    got = m.maps(images, NAMES, [cands])["passes"][0][0]

    model = tiny.encoder.model
    pixels = m.pixels(images).requires_grad_(True)  # a graph through the whole model, the official way
    text = "A picture of red star grass"
    ids = tiny.encoder.tokenizer([text], return_tensors="pt")["input_ids"]
    vision = model.vision_model(pixel_values=pixels).last_hidden_state
    out = model.text_encoder(input_ids=ids, attention_mask=torch.ones_like(ids), encoder_hidden_states=vision,
                             encoder_attention_mask=torch.ones(vision.shape[:2], dtype=torch.long),
                             output_attentions=True)
    attn = out.cross_attentions[1]  # layer 2: [1, heads, T, 1 + 64]
    logit = model.itm_head(out.last_hidden_state[:, 0])[:, 1].sum()
    grad = torch.autograd.grad(logit, attn)[0]
    cam = (attn * grad.clamp(min=0))[0, 2]  # head 3
    cam = cam[:, 1:]  # drop the image CLS key
    # tokens: [CLS] a [UNK] of red star grass [SEP]; "red star" = rows 4, 5; "grass" = row 6
    want = torch.stack([(cam[4] + cam[5]) / 2, cam[6]]).view(2, 8, 8)
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-9)


def test_mean_over_heads_and_raw_attention(tiny):
    images = _images(1)
    per_head = [tiny.configure(passes=1, head=h).maps(images, NAMES, [[1]])["passes"][0][0] for h in range(1, 5)]
    mean = tiny.configure(passes=1, head="mean").maps(images, NAMES, [[1]])["passes"][0][0]
    torch.testing.assert_close(mean, sum(per_head) / 4)
    raw = tiny.configure(passes=1, gradcam=False).maps(images, NAMES, [[1]])["passes"][0][0]
    assert raw.min() >= 0 and raw.sum() > 0 and not torch.allclose(raw, per_head[2])


def test_fast_and_official_ways_give_the_same_maps_and_masks(tiny):
    images, cands = _images(2), [[0, 2], [1, 3, 2]]
    fast = tiny.configure(passes=3, drop_patches=4)
    official = fast.configure(mode="official")
    a, b = fast.maps(images, NAMES, cands), official.maps(images, NAMES, cands)
    assert a["dropped"] == b["dropped"]
    for pa, pb in zip(a["passes"], b["passes"]):
        for x, y in zip(pa, pb):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-9)
    assert torch.equal(fast.segment(images, NAMES, cands).argmax(1), official.segment(images, NAMES, cands).argmax(1))
    assert all(not p.requires_grad for p in tiny.encoder.model.parameters())  # frozen again afterwards


def test_a_batch_gives_the_masks_of_one_image_at_a_time(tiny):
    images, cands = _images(3, seed=1), [[0], [1, 3, 2], [2, 0]]
    m = tiny.configure(passes=4, drop_patches=5)
    batch = m.maps(images, NAMES, cands)
    for i in range(3):
        one = m.maps(images[i:i + 1], NAMES, [cands[i]])
        assert one["dropped"][0] == batch["dropped"][i]
        for x, y in zip(one["passes"][0], batch["passes"][i]):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-8)


# -- Salience DropOut -------------------------------------------------------------------------------

def test_dropout_bookkeeping(tiny):
    m = tiny.configure(passes=4, drop_patches=3)
    out = m.maps(_images(1), NAMES, [[0, 2]])
    dropped, passes = out["dropped"][0], out["passes"][0]
    assert [len(d) for d in dropped] == [0, 3, 6, 9]
    for t in range(1, 4):
        assert dropped[t][:len(dropped[t - 1])] == dropped[t - 1]  # cumulative
        assert len(set(dropped[t])) == len(dropped[t])  # never the same patch twice
        new = dropped[t][len(dropped[t - 1]):]
        # the new patches are the most salient not yet dropped by the previous pass's class-token sum
        # ("red star" = 2 word rows, "grass" = 1: the salience sums rows, i.e. 2 x map_0 + map_1)
        sal = (2 * passes[t - 1][0] + passes[t - 1][1]).flatten()
        sal[dropped[t - 1]] = -1
        assert set(new) == set(torch.topk(sal, 3).indices.tolist())
        for q in dropped[t]:  # and every map of the pass is 0 there
            assert float(passes[t].flatten(1)[:, q].abs().max()) == 0.0
    torch.testing.assert_close(m.aggregate(passes), 2 * passes[0] + passes[1] + passes[2] + passes[3])
    assert torch.equal(m.configure(first_pass_twice=False).aggregate(passes), sum(passes))


def test_dropped_patches_are_zeroed_in_the_normalised_image(tiny):
    """Pass 1 equals a single pass over pixels whose dropped 8 x 8 blocks are set to 0 by hand."""
    images = _images(1, seed=3)
    m = tiny.configure(passes=2, drop_patches=5)
    out = m.maps(images, NAMES, [[1, 3]])
    pixels = m.pixels(images).clone()
    for q in out["dropped"][0][1]:
        r, c = divmod(q, 8)
        pixels[0, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = 0
    one = m.configure(passes=1)
    one.pixels = lambda imgs: pixels
    want = one.maps(images, NAMES, [[1, 3]])["passes"][0][0].flatten(1)
    want[:, out["dropped"][0][1]] = 0
    torch.testing.assert_close(out["passes"][0][1].flatten(1), want)


# -- post-processing ---------------------------------------------------------------------------------

def test_threshold_keeps_raw_values_above_the_normalised_threshold():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 10.0]], [[3.0, 3.0], [3.0, 3.0]]])
    got = P.threshold_maps(maps, 0.15)  # normalised: 0, .1, .2, 1 -> keep 2 and 10; constant -> 0
    assert torch.equal(got, torch.tensor([[[0.0, 0.0], [2.0, 10.0]], [[0.0, 0.0], [0.0, 0.0]]]))


@pytest.mark.parametrize("rule,k,added", [("always", 4, True), ("always", 1, True), ("fewer-than-3", 2, True),
                                          ("fewer-than-3", 3, False), ("never", 1, False)])
def test_background_rules(rule, k, added):
    maps = torch.zeros(k, 2, 3)
    maps[0, 0, 0] = 0.5
    if k > 1:
        maps[1, 1, 2] = 0.2
    out, was = P.add_background(maps, rule)
    assert was == added
    if added:
        want = torch.ones(2, 3)
        want[0, 0] = 0
        if k > 1:
            want[1, 2] = 0
        assert torch.equal(out[0], want) and torch.equal(out[1:], maps)
    else:
        assert torch.equal(out, maps)


def test_background_rules_per_dataset_follow_the_official_code():
    assert P.BACKGROUND_RULES["voc-21"] == "always" and P.BACKGROUND_RULES["coco-object-81"] == "always"
    assert {P.BACKGROUND_RULES[k] for k in ("pascal-context-60", "ade20k-151", "coco-stuff-172")} == {"fewer-than-3"}


def test_blur_sigma_is_a_fraction_of_the_longer_side():
    maps = torch.zeros(1, 60, 100)
    maps[0, 30, 50] = 1.0
    out = P.blur_step(maps, 0.05)  # sigma = 5 px; min-max puts the peak at 1
    sigma = 5.0
    for d in (1, 3, 5, 8):
        assert out[0, 30, 50 + d].item() == pytest.approx(math.exp(-d * d / (2 * sigma * sigma)), rel=1e-4)
        assert out[0, 30 + d, 50].item() == pytest.approx(math.exp(-d * d / (2 * sigma * sigma)), rel=1e-4)
    assert out[0, 0, 0].item() == pytest.approx(0.0, abs=1e-6)


def test_crf_follows_colour_edges():
    pytest.importorskip("pydensecrf")
    image = torch.zeros(3, 24, 32, dtype=torch.uint8)
    image[0, :, :16] = 220  # red left half
    image[2, :, 16:] = 220  # blue right half
    g = torch.Generator().manual_seed(0)
    truth = torch.zeros(24, 32, dtype=torch.long)
    truth[:, 16:] = 1
    noisy = torch.stack([(truth == 0).float(), (truth == 1).float()]) * 0.6 + torch.rand(2, 24, 32, generator=g)
    assert (noisy.argmax(0) != truth).any()  # the unary alone makes mistakes
    q = P.crf_step(noisy * 3, image)
    assert q.shape == (2, 24, 32) and torch.allclose(q.sum(0), torch.ones(24, 32), atol=1e-4)
    assert torch.equal(q.argmax(0), truth)


def test_missing_crf_library_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("pydensecrf"):
            raise ImportError("no pydensecrf")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'ovnb\[crf\]'"):
        P.crf_step(torch.zeros(2, 4, 4), torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_segment_maps_channels_to_classes_and_background(tiny):
    names = ["background"] + NAMES
    m = tiny.configure(background="always", passes=2)
    images = _images(2)
    scores = m.segment(images, names, [["grass"], ["sky", "red star"]])
    labels = scores.argmax(1)
    assert set(labels[0].unique().tolist()) <= {0, 3} and set(labels[1].unique().tolist()) <= {0, 1, 4}
    assert (scores[0, [1, 2, 4]] == -1).all()
    with pytest.raises(ValueError, match="no 'background' class"):
        m.segment(images, NAMES, [["grass"], ["sky"]])


def test_candidates_are_checked(tiny):
    with pytest.raises(ValueError, match="'cat' of image 0 is not in class_names"):
        tiny.segment(_images(1), NAMES, [["cat"]])
    with pytest.raises(ValueError, match="2 lists for 1 images"):
        tiny.segment(_images(1), NAMES, [[0], [1]])
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        P.PnPOVSS(tiny.encoder, P.PnPConfig(layer=9, first_token="keep"))


def test_build_by_name_with_toy_defaults():
    m = methods.build("pnp_ovss", vlm="toy-blip", pretrained=True)
    assert (m.config.image_size, m.config.first_token, m.config.single_word) == (64, "keep", False)
    assert m.config.passes == 4 and m.config.drop_patches == 10 and m.config.threshold == 0.15


# -- the CLIP reward ---------------------------------------------------------------------------------

class ColourCLIP:
    """A stand-in CLIP whose image embedding is the normalised mean colour of the (preprocessed)
    image and whose text embedding of a colour name is that colour's axis: rewards by hand."""

    AXES = {"red": 0, "green": 1, "blue": 2}

    def preprocess(self, images):
        return images.float() / 255.0

    def embed_text(self, names, templates="photo"):
        return torch.stack([torch.nn.functional.one_hot(torch.tensor(self.AXES[n]), 3).float() for n in names])

    def embed_image(self, x, preprocessed=True):
        v = x.mean((2, 3)) + 1e-3
        return torch.nn.functional.normalize(v, dim=-1)


def test_clip_reward_counts_masks_clip_prefers_to_a_blank_image():
    image = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    image[0, 0, :, :4] = 255  # red left
    image[0, 1, :, 4:] = 255  # green right
    left = torch.zeros(8, 8)
    left[:, :4] = 1
    good = torch.stack([left, 1 - left])  # red mask on red, green mask on green
    bad = torch.stack([1 - left, left])  # swapped
    clip = ColourCLIP()
    names = ["red", "green", "blue"]
    assert R.clip_reward(clip, image, [[0, 1]], [good], names).tolist() == [2]
    assert R.clip_reward(clip, image, [[0, 1]], [bad], names).tolist() == [0]
    half = torch.stack([left, left])  # red right, green wrong
    assert R.clip_reward(clip, image, [[0, 1]], [half], names).tolist() == [1]


def test_random_search_draws_distinct_points_and_keeps_the_best():
    space = dict(layer=[1, 2, 3], head=[1, 2], threshold=[0.05, 0.15])
    trials = R.random_search(lambda p: p["layer"] * 10 + p["head"], space, iterations=8, seed=3)
    assert len(trials) == 8 and len({tuple(t.params.values()) for t in trials}) == 8
    assert R.best(trials).reward == max(t.reward for t in trials)
    assert len(R.random_search(lambda p: 0, space, iterations=50)) == 12  # the whole grid at most
    assert R.BLIP_SPACE["threshold"] == [0.05, 0.15, 0.25, 0.35, 0.45] and R.BLUR_SPACE[2] == 0.05


# -- the runner's scoring -----------------------------------------------------------------------------

def test_fewer_passes_are_a_prefix_of_more(tiny):
    images, names = _images(1, seed=5), NAMES
    four = tiny.configure(passes=4, drop_patches=6)
    passes = four.maps(images, names, [[0, 2]])["passes"][0]
    for n in (1, 2, 3):
        direct = four.configure(passes=n).segment(images, names, [[0, 2]])[0]
        torch.testing.assert_close(four.configure(passes=n).scores(passes, images[0], [0, 2], names, n), direct)


def test_scramble_moves_each_candidate_to_the_next():
    from ovnb.reproduce.pnp_ovss import scramble

    lab = torch.tensor([[3, 3, 7], [9, 7, 3]])
    assert scramble(lab, [3, 7, 9]).tolist() == [[7, 7, 9], [3, 9, 7]]
    assert scramble(lab, [3]).tolist() == lab.tolist()


class _Masks:
    class_names = ("background", "a", "b")

    def __init__(self, masks):
        self.masks = masks

    def __getitem__(self, i):
        return {"mask": self.masks[i]}


def test_paper_and_standard_protocols_from_the_same_labels():
    """voc-21: the boundary (255) counts as background in the paper's protocol; the standard one
    ignores background and boundary pixels and counts a pixel predicted as background as a miss."""
    from ovnb import profiles
    from ovnb.reproduce.pnp_ovss import Runner

    runner = Runner.__new__(Runner)
    runner.toy = False
    mask = torch.tensor([[0, 0, 1, 1], [255, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 0], [0, 2, 2, 1]])
    got = runner.miou([pred], _Masks([mask]), [0], "voc-21")
    # paper (21 -> 3 classes, 255 -> 0): bg TP 2 (0,0),(1,0); bg FP 1 (0,3); bg FN 1 (0,1) -> 2/4
    # a: TP 1 (0,2); FP (0,1),(1,3) ; FN (0,3) -> 1/4 ; b: TP 2, FN 1 (1,3) -> 2/3
    assert got["paper"] == pytest.approx(100 * (0.5 + 0.25 + 2 / 3) / 3)
    # standard: pixels with gt a, b only; a: TP 1, FN 1 (predicted bg), FP 1 (1,3) -> 1/3; b: TP 2, FN 1 -> 2/3
    assert got["standard"] == pytest.approx(100 * (1 / 3 + 2 / 3) / 2)
    assert profiles.load("dryrun").get("pnp_ovss.image_size") == 96


# -- MaskCLIP, the training-free baseline --------------------------------------------------------------

def test_maskclip_value_path_matches_a_hand_computation():
    """The last block with attention replaced by its value path, computed by hand from open_clip's
    modules, then ln_post and the projection."""
    from ovnb.methods import maskclip

    torch.manual_seed(0)
    clip = encoders.build("toy-clip-vit", pretrained=True)
    m = maskclip.MaskCLIP(clip)
    images = _images(2)
    got = m.patch_features(images)
    visual = clip.model.visual
    x = clip.preprocess(images)
    feats = {}
    block = visual.transformer.resblocks[-1]
    handle = block.register_forward_pre_hook(lambda mod, args: feats.setdefault("in", args[0]))
    with torch.no_grad():
        visual(x)
    handle.remove()
    h = feats["in"]  # [B, 1 + N, width] (batch first)
    e = block.attn.embed_dim
    y = block.ln_1(h)
    v = y @ block.attn.in_proj_weight[2 * e:].T + block.attn.in_proj_bias[2 * e:]
    h = h + block.ls_1(block.attn.out_proj(v)) if hasattr(block, "ls_1") else h + block.attn.out_proj(v)
    h = h + (block.ls_2(block.mlp(block.ln_2(h))) if hasattr(block, "ls_2") else block.mlp(block.ln_2(h)))
    tokens = visual.ln_post(h[:, 1:]) @ visual.proj
    g = int(tokens.shape[1] ** 0.5)
    want = torch.nn.functional.normalize(tokens.transpose(1, 2).reshape(2, -1, g, g), dim=1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    scores = m.segment(images, NAMES, [[0, 2], [1]])
    assert scores.shape == (2, 4, 40, 48) and (scores[0, [1, 3]] == -2).all() and (scores[1, 1] > -2).all()


# -- the official GPT-4o class lists ----------------------------------------------------------------------

def test_gpt4o_answers_are_parsed_and_filtered_as_the_official_reader():
    from ovnb.data import class_lists as L

    assert L.parse("[2: 'bicycle', 15: 'person'], [100, 100]") == [(2, 100), (15, 100)]
    assert L.parse("[19: train], [100%]") == [(19, 100)]
    assert L.parse("[2: 'building;edifice', 3: 'sky'], [100%, 60%]") == [(2, 100), (3, 60)]
    assert L.parse("[1: person, 64: potted plant]\n\n[90, 70]") == [(1, 90), (64, 70)]
    assert L.parse("") == []
    # > 70 is strict; an empty answer is id 1 at 100 %; nothing kept: [] (the caller's first class)
    assert L.chosen_ids("[18: 'sofa', 11: 'table'], [95, 70]") == [18]
    assert L.chosen_ids("") == [1]
    assert L.chosen_ids("[4: 'boat'], [50]") == []
    with pytest.raises(ValueError, match="2 class ids but 1 probabilities"):
        L.parse("[1: a, 2: b], [90]")


def test_gpt4o_candidates_map_ids_and_fall_back_to_the_first_class():
    from ovnb.data import class_lists as L

    answers = {"2007_000452": "[18: 'sofa', 11: 'table'], [95, 80]", "2007_000001": "[4: 'boat'], [50]",
               "ADE_val_00000007": "[3: 'sky'], [90%]"}
    assert L.candidates(answers, "voc-21", "voc-21/2007_000452", lambda i: i) == [18, 11]
    assert L.candidates(answers, "voc-21", "voc-21/2007_000001", lambda i: i) == [1]
    assert L.candidates(answers, "ade20k-151", "ade20k-151/ADE_val_00000007", lambda i: i) == [3]
    with pytest.raises(ValueError, match="no GPT-4o lists"):
        L.load("data", "voc-20")


def test_gpt4o_lists_download_is_checked_by_entry_counts(tmp_path):
    import json as _json

    from ovnb.data.prepare import gpt4o_lists as G

    src = tmp_path / "src"
    src.mkdir()
    for key, count in G.FILES.items():
        (src / G.filename(key)).write_text(_json.dumps({str(i): "[1: a], [100]" for i in range(count)}))
    out = G.prepare(tmp_path / "data", {"pnp-ovss": src.as_uri()})
    assert sorted(p.name for p in out.glob("*.json")) == sorted(G.filename(k) for k in G.FILES)
    (out / G.filename("voc")).write_text("{}")
    assert G.check(tmp_path / "data") == [f"{out / G.filename('voc')}: 0 entries, expected 1449"]


def test_runner_maps_gpt4o_ids_to_split_indices():
    from ovnb.data import semseg
    from ovnb.reproduce.pnp_ovss import Runner

    runner = Runner.__new__(Runner)
    runner._data = {("gpt4o", "coco-stuff-172"): {"000000252219": "[1: person, 96: building-other, 200: x], [100%, 85%, 90%]"},
                    ("gpt4o", "voc-21"): {"2007_000452": "[18: 'sofa', 11: 'table'], [95, 80]"}}
    coco = semseg.split("coco-stuff-172")
    got = runner.gpt4o({"id": "coco-stuff-172/000000252219"}, coco, "coco-stuff-172")
    assert [coco.class_names[c] for c in got] == ["person", "building-other"]  # id 200 exists nowhere: dropped
    voc = semseg.split("voc-21")
    assert [voc.class_names[c] for c in runner.gpt4o({"id": "voc-21/2007_000452"}, voc, "voc-21")] == \
        ["sofa", "diningtable"]


# -- COCO-Object: masks painted from the instances ------------------------------------------------------

def test_instances_are_painted_earlier_annotation_first(tmp_path):
    import json as _json

    from pycocotools.coco import COCO

    from ovnb.data import semseg

    ann = {"images": [{"id": 7, "file_name": "x.jpg", "height": 4, "width": 6}],
           "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
           "annotations": [
               {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]], "area": 16,
                "bbox": [0, 0, 4, 4], "iscrowd": 0},
               {"id": 2, "image_id": 7, "category_id": 1, "segmentation": [[2, 0, 6, 0, 6, 2, 2, 2]], "area": 8,
                "bbox": [2, 0, 4, 2], "iscrowd": 0}]}
    path = tmp_path / "ann.json"
    path.write_text(_json.dumps(ann))
    mask = semseg.paint_instances(COCO(str(path)), 7, 4, 6)
    # by hand: the car box covers columns 0-3 of every row; the person box columns 2-5 of rows 0-1, but
    # the car (earlier) keeps columns 2-3 there; stored values are category id - 1, 255 = no instance
    want = torch.tensor([[2, 2, 2, 2, 0, 0], [2, 2, 2, 2, 0, 0], [2, 2, 2, 2, 255, 255], [2, 2, 2, 2, 255, 255]])
    assert torch.equal(mask, want)
    table = semseg.label_map("coco-object-81")
    names = semseg.split("coco-object-81").class_names
    assert [names[int(table[v])] for v in (2, 0, 255)] == ["car", "person", "background"]
    assert len(names) == 81


def test_coco_object_loader_on_the_fixture(tmp_path):
    from ovnb.data import fixtures, semseg

    scenes = fixtures.coco_instances(tmp_path)
    ds = semseg.coco_object(tmp_path)
    sample = ds[0]
    names = ds.class_names
    present = {names[int(c)] for c in sample["mask"].unique()}
    key = ds.keys[0]
    want = {semseg.split("coco-stuff-171").class_names[[v for v, _ in semseg._classes()["coco_stuff_171"]].index(i - 1)]
            for i in scenes[key]}
    assert present - {"background"} == want and sample["mask"].shape == sample["image"].shape[-2:]


def test_bridgetower_fast_and_official_ways_agree():
    """BridgeTower's cross-modal text layers (random weights, the stand-in tokenizer): the same maps,
    patches and masks both ways, and the stand-in tokenizer matches RoBERTa's table size."""
    torch.manual_seed(0)
    m = methods.build("pnp_ovss", vlm="bridgetower-large-itm", image_size=56, crf=False, passes=2, drop_patches=3,
                      background="never")
    assert len(m.vlm.tokenizer) == m.encoder.model.config.text_config.vocab_size == 50265
    images = _images(1, seed=2)
    names = ["cat", "traffic light", "grass"]
    a = m.maps(images, names, [[0, 1]])
    b = m.configure(mode="official").maps(images, names, [[0, 1]])
    assert a["dropped"] == b["dropped"] and len(a["dropped"][0][1]) == 3
    assert float(a["passes"][0][0].sum()) > 0  # a real gradient, not two empty maps
    for x, y in zip(a["passes"][0], b["passes"][0]):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-9)


def test_runner_keeps_evaluations_and_recomputes_what_changed(tmp_path, monkeypatch):
    """A rebuild reads the label maps and probes it made; another configuration or other images compute."""
    from ovnb import profiles
    from ovnb.reproduce.pnp_ovss import Runner

    monkeypatch.setenv("OVNB_BUILD_DIR", str(tmp_path / "build"))
    runner = Runner(profiles.load("smoke"))
    test = runner.dataset("toy", seed=0)
    model = runner.model()
    first = runner.predict(model, test, [0, 1])
    probe = runner.probe(test, [0, 1])
    assert len(list((tmp_path / "build" / "runs" / "smoke" / "pnp_ovss").glob("*.pt"))) == 2

    fresh = Runner(profiles.load("smoke"))  # a new process: nothing in memory
    test2, model2 = fresh.dataset("toy", seed=0), fresh.model()

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a kept evaluation")

    monkeypatch.setattr(type(model2), "segment", refuse)
    monkeypatch.setattr(type(model2), "maps", refuse)
    again = fresh.predict(model2, test2, [0, 1])
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert fresh.probe(test2, [0, 1]) == probe
    for call in (lambda: fresh.predict(model2.configure(layer=1), test2, [0, 1]),  # another configuration
                 lambda: fresh.predict(model2, test2, [0, 2]),  # other images
                 lambda: fresh.predict(model2, fresh.dataset("toy", seed=1), [0, 1])):  # another set of scenes
        with pytest.raises(AssertionError, match="recomputed"):
            call()
