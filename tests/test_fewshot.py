"""Fold benchmarks: class lists and folds, COCO protocols, loaders on fixture layouts, toy folds,
Mosaic-4, the evaluation protocol."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ovnb.data import fewshot
from ovnb.evaluate import evaluate_episodes, evaluate_mosaics, sliding_logits

# The reference's fold tables (HSNet build_class_ids), written out independently of the YAML.
PASCAL_FOLD0 = ["aeroplane", "bicycle", "bird", "boat", "bottle"]
PASCAL_FOLD3 = ["pottedplant", "sheep", "sofa", "train", "tvmonitor"]
COCO_FOLD0 = ["person", "aeroplane", "boat", "parkingmeter", "dog", "elephant", "backpack", "suitcase", "sportsball",
              "skateboard", "wineglass", "spoon", "sandwich", "hotdog", "chair", "diningtable", "mouse", "microwave",
              "refrigerator", "scissors"]
COCO_FOLD3 = ["motorbike", "truck", "stopsign", "cat", "cow", "giraffe", "tie", "snowboard", "baseballglove", "bottle",
              "knife", "apple", "carrot", "cake", "bed", "laptop", "cellphone", "sink", "vase", "toothbrush"]


def test_fold_classes_match_hsnet():
    pascal, coco = fewshot.class_names("pascal"), fewshot.class_names("coco")
    assert len(pascal) == 21 and len(coco) == 81 and len(set(coco)) == 81
    assert [pascal[c] for c in fewshot.fold_classes("pascal", 0)] == PASCAL_FOLD0
    assert [pascal[c] for c in fewshot.fold_classes("pascal", 3)] == PASCAL_FOLD3
    assert [coco[c] for c in fewshot.fold_classes("coco", 0)] == COCO_FOLD0
    assert [coco[c] for c in fewshot.fold_classes("coco", 3)] == COCO_FOLD3
    all_unseen = sorted(c for f in range(4) for c in fewshot.fold_classes("coco", f))
    assert all_unseen == list(range(1, 81))
    assert set(fewshot.seen_classes("pascal", 1)).isdisjoint(fewshot.fold_classes("pascal", 1))
    with pytest.raises(ValueError, match="fold must be 0, 1, 2 or 3, got 4"):
        fewshot.fold_classes("pascal", 4)


def test_transfer_classes_are_the_voc_classes_unseen_in_the_coco_fold():
    names = fewshot.class_names("pascal")
    assert [names[c] for c in fewshot.transfer_classes(0)] == ["aeroplane", "boat", "chair", "diningtable", "dog",
                                                                "person"]
    union = sorted(c for f in range(4) for c in fewshot.transfer_classes(f))
    assert union == list(range(1, 21))  # every VOC class is unseen in exactly one COCO fold


def test_coco_protocols():
    classwise = {0: [f"img{i:03d}" for i in range(900)], 4: ["img500", "img901"], 8: ["img002"]}
    first = fewshot.coco_pairs(classwise, "official-first-1000", episodes=1000)
    assert len(first) == 903 and first[0] == fewshot.Pair("img000", 1)
    assert first == sorted(first, key=lambda p: (p.image, p.class_id - 1))
    capped = fewshot.coco_pairs(classwise, "official-first-1000", episodes=10)
    assert [p.image for p in capped] == [f"img{i:03d}" for i in range(3)] + ["img002"] + [f"img{i:03d}" for i in range(3, 9)]
    uniform = fewshot.coco_pairs(classwise, "hsnet-uniform", episodes=3000, seed=0)
    counts = np.bincount([p.class_id for p in uniform], minlength=10)
    assert all(abs(counts[c] - 1000) < 120 for c in (1, 5, 9))  # classes drawn uniformly, not by frequency
    assert uniform == fewshot.coco_pairs(classwise, "hsnet-uniform", episodes=3000, seed=0)
    with pytest.raises(ValueError, match="unknown COCO-20i protocol 'random'"):
        fewshot.coco_pairs(classwise, "random")


def test_split_pickles_refuse_objects(tmp_path):
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({0: ["a.jpg"], 4: []}))
    assert fewshot.load_split_pickle(ok) == {0: ["a.jpg"], 4: []}
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({0: [Path("a.jpg")]}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        fewshot.load_split_pickle(bad)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_voc(root: Path):
    voc = root / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(0)
    masks = {}
    for k, name in enumerate(["2007_000001", "2007_000002", "2007_000003"]):
        _png(voc / "JPEGImages" / f"{name}.jpg", rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
        mask = np.zeros((12, 16), np.uint8)
        mask[2:6, 3:9] = k + 1  # aeroplane / bicycle / bird
        mask[8:10, 10:14] = 12  # dog
        mask[0, :] = 255
        _png(voc / "SegmentationClassAug" / f"{name}.png", mask)
        masks[name] = mask
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000001\n2007_000002\n2007_000003\n")
    for split in ("trn", "val"):
        for fold in range(4):
            path = root / "splits" / "pascal" / split / f"fold{fold}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = {0: "2007_000001__1\n2007_000002__2\n", 2: "2007_000003__12\n"}.get(fold, "")
            path.write_text(lines)
    return masks


def test_pascal_loader_on_a_fixture_layout(tmp_path):
    masks = make_voc(tmp_path)
    val = fewshot.pascal_episodes(tmp_path, 0, "val")
    assert len(val) == 2 and val.classes() == [1, 2]
    s = val[1]
    assert s["class_name"] == "bicycle" and s["image"].shape == (3, 12, 16) and s["image"].dtype == torch.uint8
    expected = (masks["2007_000002"] == 2).astype(np.int64)
    expected[masks["2007_000002"] == 255] = 255
    assert np.array_equal(s["mask"].numpy(), expected)  # dog pixels are negatives, void kept
    trn = fewshot.pascal_episodes(tmp_path, 0, "trn")  # union of the other folds' lists
    assert [p.class_id for p in trn.pairs] == [12]
    transfer = fewshot.transfer_episodes(tmp_path, 0)
    assert [(p.image, p.class_id) for p in transfer.pairs] == [("2007_000001", 1), ("2007_000001", 12),
                                                               ("2007_000002", 12), ("2007_000003", 12)]


def test_a_subset_spreads_over_the_list_and_keeps_its_ends():
    pairs = [fewshot.Pair(f"img{i}", i % 3 + 1) for i in range(10)]
    episodes = fewshot.Episodes(pairs, None, ("bg", "a", "b", "c"), "list")
    assert [p.image for p in episodes.subset(4).pairs] == ["img0", "img3", "img6", "img9"]
    assert [p.image for p in episodes.subset(1).pairs] == ["img0"]
    assert episodes.subset(None) is episodes and episodes.subset(10) is episodes and len(episodes.subset(3)) == 3
    with pytest.raises(ValueError, match="at least one pair, got n=0"):
        episodes.subset(0)


def test_a_missing_dataset_names_the_layout_and_the_command(tmp_path):
    with pytest.raises(fewshot.DatasetMissingError, match=r"(?s)VOC2012.*ovnb data prepare voc2012 fewshot-splits") as err:
        fewshot.pascal_episodes(tmp_path, 0)
    assert err.value.datasets == ("voc2012", "fewshot-splits") and err.value.root == tmp_path
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare coco2014 fewshot-splits"):
        fewshot.coco_episodes(tmp_path, 0)
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare fss1000 fewshot-splits"):
        fewshot.Mosaic4(tmp_path)


def test_coco_loader_on_a_fixture_layout(tmp_path):
    base = tmp_path / "COCO2014"
    _png(base / "val2014" / "COCO_val2014_1.jpg", np.full((10, 10, 3), 9, np.uint8))
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 1  # person
    _png(base / "annotations" / "val2014" / "COCO_val2014_1.png", mask)
    (tmp_path / "splits" / "coco" / "val").mkdir(parents=True)
    (tmp_path / "splits" / "coco" / "val" / "fold0.pkl").write_bytes(pickle.dumps({0: ["val2014/COCO_val2014_1.jpg"]}))
    eps = fewshot.coco_episodes(tmp_path, 0, "val", "official-first-1000")
    s = eps[0]
    assert s["class_name"] == "person" and int(s["mask"].sum()) == 50


def make_fss(root: Path, classes=6):
    names = [f"class_{k}" for k in range(classes)]
    for k, name in enumerate(names):
        for n in range(1, 11):
            img = np.full((20, 20, 3), 10 * k, np.uint8)
            _png(root / "FSS-1000" / name / f"{n}.jpg", img)
            m = np.zeros((20, 20), np.uint8)
            m[5:15, 5:15] = 255
            _png(root / "FSS-1000" / name / f"{n}.png", m)
    (root / "splits" / "fss").mkdir(parents=True)
    (root / "splits" / "fss" / "test.txt").write_text("\n".join(names))
    return names


def test_mosaic4_composes_four_different_classes(tmp_path):
    names = make_fss(tmp_path)
    mosaics = fewshot.Mosaic4(tmp_path, length=5, seed=3, tile=16)
    for s in mosaics:
        assert len(set(s["class_names"])) == 4 and set(s["class_names"]) <= set(names)
        assert s["image"].shape == (3, 32, 32)
        for q in range(4):
            y, x = divmod(q, 2)
            quadrant = s["mask"][y * 16:(y + 1) * 16, x * 16:(x + 1) * 16]
            assert set(quadrant.unique().tolist()) == {q, 4}  # object q, background elsewhere
    again = fewshot.Mosaic4(tmp_path, length=5, seed=3, tile=16)
    assert [s["class_names"] for s in again] == [s["class_names"] for s in mosaics]


def test_toy_folds_respect_the_fold_split():
    from ovnb.data.toy_world import splits

    unseen = set(splits()["folds"][1])
    val = fewshot.toy_fold_episodes(1, "val", images=200, episodes=40)
    trn = fewshot.toy_fold_episodes(1, "trn", images=200)
    assert set(val.classes()) <= unseen and len(val) == 40
    assert set(trn.classes()).isdisjoint(unseen)
    s = val[0]
    assert set(s["mask"].unique().tolist()) <= {0, 1, 255} and int((s["mask"] == 1).sum()) > 0


class Oracle(torch.nn.Module):
    """A stand-in model that reads the answer from the image: channel 0 > 0 marks the object."""

    image_size = 8

    def visual_tokens(self, images):
        from ovnb.methods.fusioner import VisualTokens

        x = torch.nn.functional.interpolate(images.float(), size=(8, 8), mode="nearest")
        return VisualTokens(x[:, :1].flatten(2).transpose(1, 2), (8, 8))

    def text_embeddings(self, names):
        return torch.ones(len(names), 1)

    def forward_features(self, visual, text, out_size):
        grid = visual.tokens.transpose(1, 2).reshape(-1, 1, *visual.grid)
        logits = torch.where(grid > 0, 10.0, -10.0).expand(-1, text.shape[1], -1, -1)
        return torch.nn.functional.interpolate(logits, size=out_size, mode="nearest")

    predict = staticmethod(__import__("ovnb.methods.fusioner", fromlist=["Fusioner"]).Fusioner.predict)


class _Episodes(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def classes(self):
        return sorted({it["class_id"] for it in self.items})


def _episode(class_id, box, size=16):
    image = torch.zeros(3, size, size, dtype=torch.uint8)
    mask = torch.zeros(size, size, dtype=torch.long)
    y0, y1, x0, x1 = box
    image[0, y0:y1, x0:x1] = 200
    mask[y0:y1, x0:x1] = 1
    return {"image": image, "mask": mask, "class_id": class_id, "class_name": f"c{class_id}"}


def test_episodic_evaluation_of_a_perfect_and_of_a_wrong_model():
    eps = _Episodes([_episode(1, (0, 8, 0, 8)), _episode(2, (8, 16, 8, 16))])
    meter = evaluate_episodes(Oracle(), eps)
    assert meter.miou() == pytest.approx(1.0) and meter.fb_iou() == pytest.approx(1.0)
    wrong = _episode(3, (0, 8, 0, 8))
    wrong["mask"] = torch.zeros(16, 16, dtype=torch.long)
    wrong["mask"][8:, 8:] = 1  # the object is elsewhere: IoU 0, background IoU (256-128)/(256-0)
    meter = evaluate_episodes(Oracle(), _Episodes([wrong]))
    assert meter.miou() == 0.0
    assert meter.fb_iou() == pytest.approx((128 / 256 + 0.0) / 2)
    meter224 = evaluate_episodes(Oracle(), eps, resolution="official-224")
    assert meter224.miou() == pytest.approx(1.0)


def test_sliding_window_covers_a_larger_image_exactly():
    ep = _episode(1, (3, 20, 5, 17), size=24)
    logits = sliding_logits(Oracle(), ep["image"], torch.ones(1, 1), window=8, stride=5)
    assert logits.shape == (1, 24, 24)
    assert torch.equal((logits[0] > 0).long(), ep["mask"])
    meter = evaluate_episodes(Oracle(), _Episodes([ep]), resolution="sliding")
    assert meter.miou() == pytest.approx(1.0)


def test_mosaic_evaluation_scores_each_query_against_its_quadrant():
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    mask = torch.full((16, 16), 4)
    mask[:8, :8] = 0
    image[0, :8, :8] = 200

    class Named(Oracle):
        def forward_features(self, visual, text, out_size):  # only the first query fires
            out = super().forward_features(visual, text, out_size)
            out[:, 1:] = -10.0
            return out

    meter = evaluate_mosaics(Named(), [{"image": image, "mask": mask, "class_names": ["a", "b", "c", "d"]}])
    assert meter.per_class_iou() == {0: 1.0}


def test_the_real_data_path_trains_and_evaluates_on_a_fixture_layout(tmp_path, monkeypatch):
    """The quick/paper code path (HSNet files, training crops, original-resolution evaluation), with the
    toy encoders standing in for CLIP."""
    import dataclasses

    from ovnb import profiles
    from ovnb.reproduce.fusioner import Experiment, Runner

    monkeypatch.setenv("OVNB_BUILD_DIR", str(tmp_path / "build"))
    make_voc(tmp_path / "data")
    profile = dataclasses.replace(profiles.load("smoke"), data="real")
    runner = Runner(profile, data_root=tmp_path / "data", cache_dir=None)
    e = Experiment("toy-clip-vit", "toy-clip-vit", fold=0, dataset="pascal")
    out = runner.run(e)
    assert out.iterations == 3 and out.trained_now and len(out.history) == 3
    assert set(out.per_class) <= {1, 2} and 0.0 <= out.miou <= 1.0
    again = runner.run(e)  # the finished run is reused, not retrained
    assert not again.trained_now and again.miou == out.miou
    assert list((tmp_path / "build" / "runs" / "smoke" / "fusioner").glob("*/checkpoint.pt"))


def test_training_crops_keep_dtype_size_and_the_episodes_interface(tmp_path):
    make_voc(tmp_path)
    crops = fewshot.TrainCrops(fewshot.pascal_episodes(tmp_path, 0, "val"), size=32)
    torch.manual_seed(0)
    for _ in range(4):
        s = crops[0]
        assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 32, 32)
        assert s["mask"].shape == (32, 32) and set(s["mask"].unique().tolist()) <= {0, 1, 255}
    assert crops.classes() == [1, 2] and len(crops.pairs) == 2 and crops.class_names[1] == "aeroplane"
