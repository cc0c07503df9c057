"""The toy world: determinism, masks consistent with captions, shapes, splits, mosaics."""

import hashlib
import math

import numpy as np
import pytest
import torch

from ovnb.data import IGNORE_INDEX, ToyWorld, splits, vocabulary
from ovnb.data.toy_world import shape_mask

# sha256 of a fixed set of samples (see _digest). It pins "same seed, same bytes" across runs,
# machines and library versions. If a deliberate change to the generator breaks it, the toy
# checkpoints must be re-pretrained too (`ovnb toy pretrain`), and this value updated.
GOLDEN_DIGEST = "5307dafc26aaa74e55b603cd73af55fd91846d0487d64b2726d5190a57997291"


def _digest():
    h = hashlib.sha256()
    for kind in ["scene", "single", "stuff", "mosaic", "mixed"]:
        ds = ToyWorld("val", 5, seed=7, kind=kind)
        for i in range(5):
            s = ds.raw(i)
            h.update(s["image"].tobytes())
            h.update(s["mask"].tobytes())
            h.update(s["caption"].encode())
    ds = ToyWorld("val", 3, seed=7, kind="scene", shifted=True)
    for i in range(3):
        s = ds.raw(i)
        h.update(s["image"].tobytes())
        h.update(s["mask"].tobytes())
    return h.hexdigest()


def test_same_seed_same_bytes():
    assert _digest() == GOLDEN_DIGEST
    a, b = ToyWorld("train", 20, seed=1)[13], ToyWorld("train", 20, seed=1)[13]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"]) and a["caption"] == b["caption"]
    c = ToyWorld("train", 20, seed=2)[13]
    assert not torch.equal(a["image"], c["image"])
    assert not torch.equal(ToyWorld("val", 20, seed=1)[13]["image"], a["image"]), "splits draw different images"


def test_vocabulary_has_things_and_stuff():
    voc = vocabulary()
    assert len(voc.names) >= 60 and len(set(voc.names)) == len(voc.names)
    assert "red star" in voc.things and "brick wall" in voc.stuff and "sky" in voc.stuff
    assert voc.index("blue ring") == voc.colours.index("blue") * len(voc.shapes) + voc.shapes.index("ring")
    with pytest.raises(KeyError, match="not a toy class"):
        voc.index("unicorn")


@pytest.mark.parametrize("kind", ["scene", "single", "stuff", "mixed"])
def test_masks_are_consistent_with_captions(kind):
    voc = vocabulary()
    ds = ToyWorld("test", 60, seed=3, kind=kind)
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 64, 64)
        assert s["mask"].dtype == torch.int64 and s["mask"].shape == (64, 64)
        present = sorted(set(s["mask"].unique().tolist()) - {IGNORE_INDEX})
        assert present == s["classes"]
        for c in s["classes"]:
            assert voc.names[c] in s["caption"], (s["caption"], voc.names[c])
        for c, name in enumerate(voc.names):
            if c not in s["classes"]:
                assert f" {name} " not in f" {s['caption']} ", (s["caption"], name)
        if kind == "single":
            assert sum(voc.is_thing(c) for c in s["classes"]) == 1
        if kind == "stuff":
            assert not any(voc.is_thing(c) for c in s["classes"])


@pytest.mark.parametrize("shape, area", [
    ("circle", math.pi), ("square", 1.6 ** 2), ("diamond", 2 * 1.05 ** 2), ("ring", math.pi * (1 - 0.36)),
    ("cross", 2 * (0.6 * 1.9) - 0.6 * 0.6), ("triangle", 0.95 * 1.75),
])
def test_shape_areas_match_closed_form(shape, area):
    r = 40.0
    mask = shape_mask(shape, 128, 64.0, 64.0, r)
    assert mask.sum() / (r * r) == pytest.approx(area, rel=0.03)


def test_star_and_heart_are_distinct_compact_shapes():
    star, heart, circle = (shape_mask(s, 128, 64.0, 64.0, 40.0) for s in ("star", "heart", "circle"))
    for m in (star, heart):
        assert 0.3 * circle.sum() < m.sum() < 1.2 * circle.sum()
    assert (star ^ circle).sum() > 0.2 * circle.sum()
    assert not np.array_equal(np.flipud(heart), heart), "a heart is not symmetric top-bottom"
    assert np.array_equal(np.fliplr(heart), heart), "but it is left-right"


def test_splits_are_shaped_like_the_benchmarks():
    voc = vocabulary()
    s = splits()
    folds = s["folds"]
    assert len(folds) == 4 and all(len(f) == 12 for f in folds)
    assert sorted(sum(folds, [])) == list(range(len(voc.things))), "folds partition the things"
    for fold in folds:
        colours = {voc.colour_shape(c)[0] for c in fold}
        shapes = {voc.colour_shape(c)[1] for c in fold}
        assert colours == set(range(len(voc.colours))) and shapes == set(range(len(voc.shapes)))
    zs = s["zero_shot"]
    assert set(zs["seen"]).isdisjoint(zs["unseen"]) and len(zs["seen"]) + len(zs["unseen"]) == len(voc.names)
    assert any(voc.is_thing(c) for c in zs["unseen"]) and any(not voc.is_thing(c) for c in zs["unseen"])
    assert all(voc.is_thing(c) for c in s["voc"]["seen"] + s["voc"]["unseen"])


def test_mosaic_holds_four_different_things_one_per_quadrant():
    ds = ToyWorld("test", 20, seed=0, kind="mosaic")
    for i in range(len(ds)):
        s = ds[i]
        assert len(set(s["classes"])) == 4
        for q, cls in enumerate(s["classes"]):
            y, x = divmod(q, 2)
            quadrant = s["mask"][y * 32:(y + 1) * 32, x * 32:(x + 1) * 32]
            assert set(quadrant.unique().tolist()) == {cls, IGNORE_INDEX}


def test_restricting_things_and_the_shifted_variant():
    allowed = splits()["folds"][0]
    ds = ToyWorld("train", 40, things=allowed)
    for i in range(len(ds)):
        assert all(c in allowed or not vocabulary().is_thing(c) for c in ds[i]["classes"])
    normal, shifted = ToyWorld("test", 5)[0], ToyWorld("test", 5, shifted=True)[0]
    assert not torch.equal(normal["image"], shifted["image"])
    assert shifted["id"].startswith("toy-shifted/")


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown toy split 'dev'"):
        ToyWorld("dev")
    with pytest.raises(ValueError, match="unknown toy kind"):
        ToyWorld("train", kind="video")
    with pytest.raises(IndexError):
        ToyWorld("train", 3)[3]
