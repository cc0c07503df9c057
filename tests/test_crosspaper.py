"""The cross-paper benchmark: one definition, identical inputs for every method, one metric code.

The metric checks use hand-made masks and predictions whose IoUs are worked out by hand; the input
checks replace the four methods by recorders, so they test what the benchmark hands each method, not
what the methods do.
"""

import math

import pytest
import torch

from ovnb import cost, papers, profiles
from ovnb.data import semseg
from ovnb.reproduce import crosspaper as cp


def test_the_toy_benchmark_is_the_zero_shot_split_and_its_shifted_world():
    entries = cp.benchmark(profiles.load("toy"))
    assert [e.name for e in entries] == ["toy", "toy-shifted"]
    assert {e.split for e in entries} == {"toy-zero-shot"} and all(e.zero_shot for e in entries)


def test_real_entries_default_and_a_bad_name_is_refused_with_the_valid_ones():
    paper = cp.benchmark(profiles.load("paper"))
    assert [e.name for e in paper] == ["coco-stuff-171", "voc-20", "pascal-context-59", "ade20k-150", "ade20k-847",
                                       "pascal-context-459"]
    # only COCO-Stuff is the split the trained methods were trained on
    assert [e.name for e in paper if e.zero_shot] == ["coco-stuff-171"]
    quick = cp.benchmark(profiles.load("quick"))
    assert [e.name for e in quick] == list(cp.DEFAULT_REAL)
    bad = profiles.load("quick")
    bad.extra["crosspaper.datasets"] = ["ade20k-151"]
    with pytest.raises(ValueError, match="ade20k-151.*valid: coco-stuff-171"):
        cp.benchmark(bad)


def test_every_entry_has_a_test_set_loader_and_a_split():
    for entry in cp.REAL_ENTRIES:
        assert entry.name in semseg.TEST_SETS
        assert semseg.split(entry.split).class_names
    with pytest.raises(ValueError, match="valid: coco-stuff-171"):
        semseg.test_set("voc-15", "data")


def test_paper_cells_name_existing_paper_numbers_of_benchmark_cells():
    real = {e.name for e in cp.REAL_ENTRIES}
    for (method, entry, metric), where in cp.PAPER_CELLS.items():
        assert method in cp.METHODS and entry in real and metric in cp.METRICS
        assert math.isfinite(papers.cell(*where).value)
    assert set(cp.DIFFERENCES) == set(cp.METHODS)


def test_the_trained_methods_learn_from_the_same_toy_scenes():
    from ovnb.reproduce import fcclip, simbaseline

    assert fcclip.TOY_TRAIN_IMAGES == simbaseline.TOY_TRAIN_IMAGES == cp.TOY_TRAIN_IMAGES
    assert fcclip.TOY_SPLIT == cp.TOY_SPLIT == simbaseline.TOY_SPLITS["coco-stuff-171"]


# -- the one metric code ---------------------------------------------------------------------------

class Images:
    """A tiny test set in the toy split's classes."""

    def __init__(self, masks):
        self.masks = [torch.tensor(m) for m in masks]
        self.class_names = semseg.split("toy-zero-shot").class_names

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        h, w = self.masks[i].shape
        return {"image": torch.full((3, h, w), i, dtype=torch.uint8), "mask": self.masks[i]}


def one_hot(labels, k):
    return torch.nn.functional.one_hot(torch.tensor(labels), k).permute(2, 0, 1).float()[None]


def test_scores_are_the_hand_computed_ious():
    split = semseg.split("toy-zero-shot")
    s0, s1 = split.seen[0], split.seen[1]
    u = split.unseen[0]
    k = len(split.class_names)
    masks = [[[s0, s0], [s1, u]], [[u, 255], [s1, s1]]]
    preds = {0: [[s0, s1], [s1, u]], 1: [[u, s0], [u, s1]]}
    data = Images(masks)

    def segment(images, names):
        assert names == list(split.class_names)
        return one_hot(preds[int(images[0, 0, 0, 0])], k)

    out = cp.score_predictions(segment, data, [0, 1], cp.Entry("t", "toy-zero-shot", True))
    # s0: tp 1, fp 0, fn 1 -> 1/2; s1: tp 2 (img0 one, img1 one), fp 1, fn 1 -> 2/4; u: tp 2, fp 1, fn 0 -> 2/3
    # the 255 pixel is ignored (its prediction s0 is not a false positive)
    seen, unseen = (0.5 + 0.5) / 2, 2 / 3
    assert out["mIoU-seen"] == pytest.approx(100 * seen)
    assert out["mIoU-unseen"] == pytest.approx(100 * unseen)
    assert out["hIoU"] == pytest.approx(100 * 2 * seen * unseen / (seen + unseen))
    assert out["mIoU"] == pytest.approx(100 * (0.5 + 0.5 + 2 / 3) / 3)
    assert out["pAcc"] == pytest.approx(100 * 5 / 7)
    cross = cp.score_predictions(segment, data, [0, 1], cp.Entry("t", "toy-zero-shot", False))
    assert set(cross) == {"mIoU", "pAcc", "per_class"}


def test_scores_of_the_wrong_shape_are_refused_with_both_shapes():
    data = Images([[[0, 0], [0, 0]]])
    with pytest.raises(ValueError, match=r"shape \[1, 3, 2, 2\], expected \[1, 62, 2, 2\]"):
        cp.score_predictions(lambda images, names: torch.zeros(1, 3, 2, 2), data, [0], cp.Entry("t", "toy-zero-shot", True))


def test_every_method_gets_the_same_images_and_class_list_and_the_same_metric(build_dir):
    runner = cp.Runner(profiles.load("smoke"))
    seen_inputs = {}

    def recorder(method):
        def segment(images, names):
            seen_inputs.setdefault(method, []).append((images.clone(), list(names)))
            return one_hot((images[0, 0].long() % len(names)).tolist(), len(names))  # a function of the input
        return segment

    for method in cp.METHODS:  # the four methods replaced by recorders: the benchmark's side only
        for entry in runner.entries:
            runner._contenders[(method, 0, entry.name)] = cp.Contender(method, recorder(method), (), 0, "toy", f"fake-{method}")
    results = {m: [runner.evaluate(m, e, 0) for e in runner.entries] for m in cp.METHODS}
    first = seen_inputs["Fusioner"]
    assert len(first) == sum(len(runner.indices(e)) for e in runner.entries)
    for method in cp.METHODS[1:]:
        assert len(seen_inputs[method]) == len(first)
        for (a, names_a), (b, names_b) in zip(first, seen_inputs[method]):
            assert torch.equal(a, b) and names_a == names_b
    assert first[0][1] == list(semseg.split("toy-zero-shot").class_names)
    # the same predictions give the same scores, whatever the method: one metric code
    for method in cp.METHODS[1:]:
        for a, b in zip(results["Fusioner"], results[method]):
            assert {k: b[k] for k in cp.METRICS if k in b} == pytest.approx({k: a[k] for k in cp.METRICS if k in a},
                                                                            nan_ok=True)
    assert results["Fusioner"][0]["pAcc"] > 0


def test_seen_queries_put_the_seen_classes_in_their_list_positions_and_ignore_the_rest():
    class Base:
        class_names = ("a", "b", "c", "d")

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"image": torch.zeros(3, 2, 2, dtype=torch.uint8), "mask": torch.tensor([[3, 1], [2, 255]])}

    sample = cp.SeenQueries(Base(), [1, 3])[0]
    assert sample["class_names"] == ["b", "d"]
    assert sample["mask"].tolist() == [[1, 0], [255, 255]]


# -- cost --------------------------------------------------------------------------------------------

def test_parameter_count_counts_shared_tensors_once_and_splits_trainable():
    a = torch.nn.Linear(3, 4)  # 16 parameters
    b = torch.nn.Linear(4, 2)  # 10
    b.requires_grad_(False)
    model = torch.nn.Sequential(a, b, a)
    assert cost.parameter_count(model) == 26
    assert cost.parameter_count(model, trainable=True) == 16
    assert cost.parameter_count(model, trainable=False) == 10
    assert cost.model_bytes(model) == 26 * 4


def test_the_meter_sees_memory_allocated_inside_the_calls():
    if not cost.reset_cpu_peak():
        pytest.skip("this system cannot reset the peak resident set")
    meter = cost.Meter("cpu")
    for _ in range(2):
        with meter.call():
            x = torch.ones(32 * 2 ** 20 // 4)  # 32 MiB, written so that it is resident
            x += 1
            del x
    assert 24 <= meter.added_mib() <= 128
    assert len(meter.seconds) == 2 and meter.median_s >= 0
    model = torch.nn.Linear(256, 1024)  # 1 MiB of weights
    assert meter.peak_mib(model) == pytest.approx(meter.added_mib() + cost.model_bytes(model) / 2 ** 20)


# -- the site's page ----------------------------------------------------------------------------------

def test_the_benchmark_page_is_made_of_the_records_numbers_and_the_papers():
    from ovnb import book, results

    rec = results.RunRecord("05_benchmark", "toy", seeds=[0, 1])
    for seed, value in ((0, 10.0), (1, 14.0)):
        rec.metric("FC-CLIP | toy | mIoU", value, seed=seed, kind="quality", method="FC-CLIP", entry="toy",
                   metric="mIoU", weights="toy")
    rec.metric("PnP-OVSS | toy | mIoU", 7.25, kind="quality", method="PnP-OVSS", entry="toy", metric="mIoU",
               weights="toy")
    rec.metric("FC-CLIP | ade20k-150 | mIoU", 30.0, kind="quality", method="FC-CLIP", entry="ade20k-150",
               metric="mIoU", weights="toy", seed=0)
    rec.metric("FC-CLIP | cost | s / image", 0.5, kind="cost", method="FC-CLIP", quantity="s / image", weights="toy",
               device="cpu")
    page = book.benchmark_page([{**rec.to_dict()}])
    assert "## Profile `toy`" in page
    assert "12.0 ± 2.8 (2)" in page  # mean and sd of 10 and 14 over two seeds
    assert "7.2" in page or "7.3" in page
    assert "FC-CLIP (toy)" in page and "PnP-OVSS (toy)" in page
    assert f"[paper: {papers.cell('fc_clip', 'Table 3', 'FC-CLIP', 'A-150').value}]" in page
    assert "s / image" in page and "0.5" in page
    assert all(line in page for items in cp.DIFFERENCES.values() for line in items)
    assert "has not been run yet" in book.benchmark_page([])


def test_the_panoptic_scenes_are_the_benchmark_scenes():
    from ovnb.data.toy_world import ToyWorld

    runner = cp.Runner(profiles.load("smoke"))
    for entry in runner.entries:
        world = ToyWorld("test", cp.TOY_TEST_IMAGES, seed=0, shifted=entry.name == "toy-shifted")
        for i in runner.indices(entry)[:3]:
            a, b = world[i], runner.dataset(entry)[i]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
