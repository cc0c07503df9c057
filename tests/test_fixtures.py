"""The fixture datasets: the real layouts, read by the real loaders, every fold populated."""

import numpy as np
import pytest

from ovnb.data import fewshot, fixtures



@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return fixtures.make(tmp_path_factory.mktemp("data"))


def rectangle_pixels(classes_in_image, h, w):
    """The drawing rule: rectangles rows 4..h-4, columns k*step+2 .. (k+1)*step-2."""
    step = w // classes_in_image
    return (h - 8) * (step - 4)


@pytest.mark.parametrize("fold", range(4))
def test_pascal_folds_have_training_and_test_pairs_with_the_right_masks(root, fold):
    for split in ("trn", "val"):
        episodes = fewshot.pascal_episodes(root, fold, split)
        unseen = set(fewshot.fold_classes("pascal", fold))
        assert len(episodes) > 0
        assert (set(episodes.classes()) <= unseen) == (split == "val")
        s = episodes[0]
        _, h, w = s["image"].shape
        assert (h, w) in fixtures.SIZES and s["mask"].shape == (h, w)
        assert int((s["mask"] == 1).sum()) == rectangle_pixels(2, h, w)
        assert int((s["mask"] == 255).sum()) == w  # the void border row


@pytest.mark.parametrize("fold", range(4))
def test_coco_folds_and_the_transfer_to_voc(root, fold):
    val = fewshot.coco_episodes(root, fold, "val", "official-first-1000")
    trn = fewshot.coco_episodes(root, fold, "trn")
    assert set(val.classes()) == set(fewshot.fold_classes("coco", fold))
    assert set(trn.classes()).isdisjoint(val.classes()) and len(trn) == 40 * 2 - len(val)
    assert int((val[0]["mask"] == 1).sum()) == rectangle_pixels(2, *val[0]["mask"].shape)
    transfer = fewshot.transfer_episodes(root, fold)
    assert len(transfer) > 0 and set(transfer.classes()) <= set(fewshot.transfer_classes(fold))


def test_fss_mosaics_in_both_splits(root):
    for split in ("trn", "test"):
        mosaics = fewshot.Mosaic4(root, length=3, tile=16, split=split)
        s = mosaics[0]
        assert s["image"].shape == (3, 32, 32) and len(set(s["class_names"])) == 4
        assert all(name.startswith(f"fixture_{split}") for name in s["class_names"])


def test_the_real_data_runner_path_on_every_family(root, build_dir):
    """One training step and an evaluation through the quick/paper branch of the Fusioner runner,
    on folds other than 0 too (toy encoders stand in for the released ones)."""
    import dataclasses

    from ovnb import profiles
    from ovnb.reproduce.fusioner import Experiment, Runner

    profile = dataclasses.replace(profiles.load("smoke"), data="real", extra={"fusioner.iterations": 1,
                                                                            "fusioner.eval_episodes": 4})
    runner = Runner(profile, data_root=root, cache_dir=None)
    for e, target in ((Experiment("toy-clip-vit", "toy-clip-vit", fold=2, dataset="pascal"), None),
                      (Experiment("toy-clip-vit", "toy-clip-vit", fold=1, dataset="coco"), None),
                      (Experiment("toy-clip-vit", "toy-clip-vit", fold=3, dataset="coco"), "pascal-transfer"),
                      (Experiment("toy-clip-vit", "toy-clip-vit", fold=0, dataset="fss"), None)):
        out = runner.run(e, evaluate_on=target)
        assert out.trained_now and 0.0 <= out.miou <= 1.0 and np.isfinite(out.fb_iou)


def test_images_of_one_dataset_differ_in_size_as_real_ones_do(root):
    """A batch built by stacking unresized images must fail on fixtures as it would on VOC or COCO."""
    sizes = {tuple(fewshot.pascal_episodes(root, 0, "trn")[i]["image"].shape) for i in range(6)}
    assert len(sizes) > 1


def test_coco_stuff_and_voc_semantic_splits_read_through_their_loaders(root):
    import torch

    from ovnb.data import semseg

    val = semseg.coco_stuff(root, "val2017")
    seen_ids = set()
    for i in range(len(val)):
        seen_ids |= set(torch.unique(val[i]["mask"]).tolist())
    assert seen_ids == set(range(171)) | {255}, "every class of the 171, in contiguous ids"
    train_all = semseg.coco_stuff(root, "train2017")
    train = semseg.coco_stuff(root, "train2017", training=True)
    assert len(train) == len(train_all) - 1, "the image with unseen classes only is dropped"
    unseen = set(semseg.split("coco-stuff-171").unseen)
    assert all(unseen.isdisjoint(torch.unique(train[i]["mask"]).tolist()) for i in range(len(train)))
    assert (root / "coco" / "stuffthingmaps" / "ovnb-seen-train2017.json").is_file()

    voc_val, voc_train = semseg.voc(root, "val"), semseg.voc(root, "train", training=True)
    assert len(voc_val) == 10 and len(voc_train) > 0
    values = set(torch.unique(voc_val[0]["mask"]).tolist())
    assert 255 in values and values <= set(range(20)) | {255}, "background and void are ignored"
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare coco-stuff-164k"):
        semseg.coco_stuff(root / "nowhere")


def test_ade20k_150_reads_class_ids_one_to_150_and_ignores_other(root):
    import torch

    from ovnb.data import semseg

    val = semseg.ade20k(root, "validation")
    assert len(val) == 50 and len(semseg.ade20k(root, "training")) == 2
    split = semseg.split("ade20k-150")
    assert len(split.class_names) == 150 and split.unseen == () and split.class_names[8] == "window"
    sample, stored = val[0], None
    from ovnb.data.files import read_mask

    stored = read_mask(root / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000001.png")
    expected = torch.where(stored == 0, torch.tensor(255), stored - 1)  # by hand: 0 -> ignored, k -> k - 1
    assert torch.equal(sample["mask"], expected) and set(stored.unique().tolist()) == {0, 1, 2, 3}
    every = set()
    for i in range(len(val)):
        every |= set(torch.unique(val[i]["mask"]).tolist())
    assert every == set(range(150)) | {255}
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare ade20k-150"):
        semseg.ade20k(root / "nowhere")
    with pytest.raises(ValueError, match="image_set must be 'training' or 'validation'"):
        semseg.ade20k(root, "val")


def test_fixture_families_added_later_are_made_in_an_existing_fixture_root(tmp_path, monkeypatch):
    from ovnb import profiles

    monkeypatch.setenv("OVNB_BUILD_DIR", str(tmp_path / "build"))
    dry = profiles.load("dryrun")
    made = fixtures.data_root(dry)
    (made / ".complete").write_text("ovnb.data.fixtures\nvoc2012\n")  # an older ovnb made only VOC
    import shutil

    shutil.rmtree(made / "ADEChallengeData2016")
    fixtures.data_root(dry)
    assert (made / "ADEChallengeData2016" / "images" / "validation").is_dir()


def test_cityscapes_19_maps_label_ids_to_train_ids_and_ignores_the_rest(root):
    import torch

    from ovnb.data import semseg
    from ovnb.data.files import read_mask

    val = semseg.cityscapes(root, "val")
    assert len(val) == 6 and len(semseg.cityscapes(root, "train")) == 1
    split = semseg.split("cityscapes-19")
    assert split.class_names[:3] == ("road", "sidewalk", "building") and split.class_names[-1] == "bicycle"
    train_id = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
                27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # cityscapesScripts' labels.py, by hand
    for i in range(len(val)):
        key = val.keys[i]
        stored = read_mask(root / "cityscapes" / "gtFine" / "val" / f"{key}_gtFine_labelIds.png")
        expected = stored.clone().apply_(lambda v: train_id.get(v, 255))
        assert torch.equal(val[i]["mask"], expected)
    every = set()
    for i in range(len(val)):
        every |= set(torch.unique(val[i]["mask"]).tolist())
    assert every == set(range(19)) | {255}
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare cityscapes-19"):
        semseg.cityscapes(root / "nowhere")


def test_pascal_context_reads_the_label_map_for_59_and_459_classes(root):
    """PC-59 keeps the 59 frequent labels of the 459 (in label order) and ignores the rest; PC-459 is
    label - 1; 0 (unlabeled) is ignored in both. Checked against the .mat files by hand."""
    import torch
    from scipy.io import loadmat

    from ovnb.data import semseg

    pc59, pc459 = semseg.pascal_context(root, "val", 59), semseg.pascal_context(root, "val", 459)
    assert len(pc59) == 16 and len(semseg.pascal_context(root, "train")) == 2 and pc59.keys == pc459.keys
    names59, names459 = semseg.split("pascal-context-59").class_names, semseg.split("pascal-context-459").class_names
    assert (names59[0], names59[49], names59[58]) == ("aeroplane", "diningtable", "wood")
    assert (names459[0], names459[1], names459[457]) == ("accordion", "aeroplane", "wood")
    # a few labels of labels.txt by hand: 2 aeroplane, 397 table, 458 wood; 1 accordion is not among the 59
    by_hand = {2: 0, 397: 49, 458: 58}
    every = set()
    for i in range(len(pc59)):
        stored = torch.from_numpy(loadmat(root / "VOCdevkit" / "VOC2010" / "trainval" / f"{pc59.keys[i]}.mat")
                                  ["LabelMap"].astype("int64"))
        m59, m459 = pc59[i]["mask"], pc459[i]["mask"]
        assert torch.equal(m459, torch.where(stored == 0, torch.tensor(255), stored - 1))
        for label, contiguous in by_hand.items():
            assert bool((m59[stored == label] == contiguous).all())
        assert bool((m59[(stored == 0) | (stored == 1) | (stored == 3) | (stored == 459)] == 255).all())
        every |= set(torch.unique(m59).tolist())
    assert every == set(range(59)) | {255}
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare pascal-context"):
        semseg.pascal_context(root / "nowhere")
    with pytest.raises(ValueError, match="classes must be 59, 60 or 459, got 61"):
        semseg.pascal_context(root, "val", 61)


def test_ade20k_847_reads_sixteen_bit_train_ids(root):
    import torch

    from ovnb.data import semseg
    from ovnb.data.files import read_mask

    val = semseg.ade20k_full(root)
    names = semseg.split("ade20k-847").class_names
    assert len(names) == 847 and names[0] == "wall" and names[846] == "adding machine, totalizer, totaliser"
    stored = read_mask(root / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation" / "ADE_val_00000106.png")
    assert set(stored.unique().tolist()) == {840, 841, 842, 843, 844, 845, 846, 65535}  # 16 bits read as stored
    every = set()
    for i in range(len(val)):
        every |= set(torch.unique(val[i]["mask"]).tolist())
    assert every == set(range(847)) | {255}
    with pytest.raises(fewshot.DatasetMissingError, match="ovnb data prepare ade20k-847"):
        semseg.ade20k_full(root / "nowhere")


def test_background_as_class_splits_keep_background_as_class_zero(root):
    """PnP-OVSS's VOC-21, PC-60 and ADE-151, by hand on the stored masks: background (VOC 0, PASCAL-Context's
    unlabeled pixels and every label outside the 59, ADE20K's "other") is class 0, the rest shift by one;
    VOC's 255 boundary stays 255 for the metric protocol to relabel."""
    import torch
    from scipy.io import loadmat

    from ovnb.data import semseg
    from ovnb.data.files import read_mask

    for name, without in (("voc-21", "voc-20"), ("pascal-context-60", "pascal-context-59"), ("ade20k-151", "ade20k-150"),
                          ("coco-stuff-172", "coco-stuff-171")):
        names = semseg.split(name).class_names
        assert names[0] == "background" and names[1:] == semseg.split(without).class_names
    voc21, voc20 = semseg.voc(root, "val", background=True), semseg.voc(root, "val")
    stored = read_mask(root / "VOCdevkit" / "VOC2012" / "SegmentationClassAug" / f"{voc21.keys[0]}.png")
    assert torch.equal(voc21[0]["mask"], stored) and 255 in stored.tolist()[0]  # 0..20 and 255 as stored
    assert torch.equal(voc20[0]["mask"][stored == 0], torch.full_like(stored[stored == 0], 255))
    ade = semseg.ade20k(root, "validation", background=True)
    stored = read_mask(root / "ADEChallengeData2016" / "annotations" / "validation" / f"{ade.keys[0]}.png")
    assert torch.equal(ade[0]["mask"], stored) and 0 in stored.unique().tolist()
    pc60 = semseg.pascal_context(root, "val", 60)
    by_hand = {0: 0, 1: 0, 3: 0, 459: 0, 2: 1, 397: 50, 458: 59}  # labels.txt: 1 accordion, 2 aeroplane, 397 table
    for i in range(len(pc60)):
        stored = torch.from_numpy(loadmat(root / "VOCdevkit" / "VOC2010" / "trainval" / f"{pc60.keys[i]}.mat")
                                  ["LabelMap"].astype("int64"))
        for label, contiguous in by_hand.items():
            assert bool((pc60[i]["mask"][stored == label] == contiguous).all())
    assert 255 not in {v for i in range(len(pc60)) for v in pc60[i]["mask"].unique().tolist()}

    stuff = semseg.coco_stuff(root, "val2017", background=True)
    stored = read_mask(root / "coco" / "stuffthingmaps" / "val2017" / f"{stuff.keys[0]}.png")
    assert {0, 255} <= set(stored.unique().tolist())  # person (stored 0) and unlabeled
    by_hand = {255: 0, 0: 1, 1: 2, 181: 171}  # unlabeled -> background; COCO id - 1 -> its 171-class index + 1
    seen_values = set()
    for i in range(len(stuff)):
        stored = read_mask(root / "coco" / "stuffthingmaps" / "val2017" / f"{stuff.keys[i]}.png")
        seen_values |= set(stored.unique().tolist())
        for value, contiguous in by_hand.items():
            assert bool((stuff[i]["mask"][stored == value] == contiguous).all())
    assert set(by_hand) <= seen_values, "every checked value occurs in the fixture"
