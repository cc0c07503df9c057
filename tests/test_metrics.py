"""Metrics against hand-made masks with known answers and an independent NumPy computation."""

import math

import numpy as np
import pytest
import torch

from ovnb import metrics
from ovnb.metrics import ConfusionMatrix, FoldIoU


def test_hand_made_two_class_case():
    # GT row-major 2x4: class 0 on the left half, class 1 on the right half; one ignored pixel.
    target = torch.tensor([[0, 0, 1, 1],
                           [0, 0, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 0, 0, 1]])
    cm = ConfusionMatrix(2).update(pred, target)
    # class 0: GT 4 px, predicted 0 at 3 of them; pred 0 also at one class-1 pixel -> TP 3, FP 1, FN 1
    # class 1: GT 3 px (one ignored), TP 2, FP 1, FN 1
    assert cm.matrix.tolist() == [[3, 1], [1, 2]]
    iou = metrics.per_class_iou(cm)
    assert iou[0].item() == pytest.approx(3 / 5)
    assert iou[1].item() == pytest.approx(2 / 4)
    assert metrics.miou(cm) == pytest.approx((3 / 5 + 2 / 4) / 2)
    assert metrics.pixel_accuracy(cm) == pytest.approx(5 / 7)


def test_ignored_pixels_never_count_whatever_is_predicted_there():
    target = torch.full((8, 8), 255)
    target[:2] = 1
    pred_a = torch.ones(8, 8, dtype=torch.long)
    pred_b = torch.zeros(8, 8, dtype=torch.long)
    pred_b[:2] = 1
    a = ConfusionMatrix(3).update(pred_a, target).matrix
    b = ConfusionMatrix(3).update(pred_b, target).matrix
    assert torch.equal(a, b) and a.sum() == 16


def test_classes_absent_from_ground_truth_are_left_out_of_the_mean():
    target = torch.tensor([0, 0, 1, 1])
    pred = torch.tensor([0, 0, 1, 2])  # class 2 only predicted, class 3 nowhere
    cm = ConfusionMatrix(4).update(pred, target)
    assert math.isnan(metrics.per_class_iou(cm)[3])
    assert metrics.miou(cm) == pytest.approx((1.0 + 0.5) / 2)
    # detectron2 0.6 also counts the class that is only predicted in the denominator
    assert metrics.miou(cm, convention="detectron2-0.6") == pytest.approx((1.0 + 0.5) / 3)
    with pytest.raises(ValueError, match="known"):
        metrics.miou(cm, convention="mmseg")


def _numpy_confusion(pred, target, c, ignore):
    m = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != ignore:
            m[t, p] += 1
    return m


def test_agrees_with_an_independent_numpy_computation_on_random_data():
    rng = np.random.default_rng(0)
    c = 7
    cm = ConfusionMatrix(c)
    ref = np.zeros((c, c), dtype=np.int64)
    for _ in range(5):
        target = rng.integers(0, c, size=(2, 13, 17))
        target[rng.random(target.shape) < 0.1] = 255
        target[target == 3] = 255  # class 3 never in the ground truth
        pred = rng.integers(0, c, size=(2, 13, 17))
        cm.update(torch.from_numpy(pred), torch.from_numpy(target))
        ref += _numpy_confusion(pred, target, c, 255)
    assert np.array_equal(cm.matrix.numpy(), ref)
    tp = np.diag(ref).astype(float)
    union = ref.sum(0) + ref.sum(1) - tp
    present = ref.sum(1) > 0
    assert metrics.miou(cm) == pytest.approx(np.mean(tp[present] / union[present]))
    assert metrics.pixel_accuracy(cm) == pytest.approx(tp.sum() / ref.sum())
    seen, unseen = [0, 1, 2, 3], [4, 5, 6]
    s = np.mean([tp[i] / union[i] for i in seen if present[i]])
    u = np.mean([tp[i] / union[i] for i in unseen if present[i]])
    assert metrics.hiou(cm, seen, unseen) == pytest.approx(2 * s * u / (s + u))


def test_update_accepts_any_shape_and_keeps_the_tensors_device():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([[[0, 1], [2, 2]]]), torch.tensor([[[0, 1], [2, 1]]]))
    cm.update(torch.tensor([1, 1]), torch.tensor([1, 255]))
    assert cm.matrix.dtype == torch.int64 and cm.matrix.shape == (3, 3)
    assert cm.matrix.tolist() == [[1, 0, 0], [0, 2, 1], [0, 0, 1]]
    assert cm.matrix.device == torch.device("cpu")


def test_bad_input_is_an_error_naming_the_value():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="class id 5"):
        cm.update(torch.tensor([0, 5]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class id 7.*ignore index 255"):
        cm.update(torch.tensor([0, 1]), torch.tensor([7, 1]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        cm.update(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))


def test_hiou_is_the_harmonic_mean_and_rejects_overlapping_splits():
    assert metrics.harmonic_mean(0.6, 0.3) == pytest.approx(0.4)
    assert metrics.harmonic_mean(0.0, 0.0) == 0.0
    cm = ConfusionMatrix(2).update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="both seen and unseen"):
        metrics.hiou(cm, [0, 1], [1])


def test_pnp_ovss_protocol_counts_void_as_background():
    # VOC-style: 255 on object boundaries. PnP-OVSS relabels it to background (class 0).
    target = torch.tensor([0, 255, 1, 1])
    pred = torch.tensor([0, 1, 1, 1])
    standard = metrics.PROTOCOLS["standard"].confusion_matrix(2).update(pred, target)
    pnp = metrics.PROTOCOLS["pnp-ovss-background-as-class"].confusion_matrix(2).update(pred, target)
    assert standard.matrix.tolist() == [[1, 0], [0, 2]]
    assert pnp.matrix.tolist() == [[1, 1], [0, 2]]
    assert metrics.PROTOCOLS["standard"].miou(standard) == 1.0
    assert metrics.PROTOCOLS["pnp-ovss-background-as-class"].miou(pnp) == pytest.approx((0.5 + 2 / 3) / 2)


def test_fold_iou_matches_a_hand_computation():
    fold = FoldIoU(class_ids=[1, 2])
    # episode 1, class 1: 2x2 target with one fg pixel, prediction hits it and one bg pixel
    fold.update(torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [0, 0]]), 1)
    # episode 2, class 1 again: perfect
    fold.update(torch.tensor([[0, 1], [0, 0]]), torch.tensor([[0, 1], [0, 0]]), 1)
    # episode 3, class 2: one ignored pixel, prediction misses the fg pixel
    fold.update(torch.tensor([[0, 0], [1, 1]]), torch.tensor([[1, 0], [0, 255]]), 2)
    # class 1: fg I = 1 + 1, U = 2 + 1 ; bg I = 2 + 3, U = 3 + 3
    # class 2: fg I = 0, U = 2 (pred at (1,0), GT at (0,0)) ; bg I = 1, U = 3
    assert fold.per_class_iou() == {1: pytest.approx(2 / 3), 2: 0.0}
    assert fold.miou() == pytest.approx((2 / 3 + 0.0) / 2)
    bg = (5 + 1) / (6 + 3)
    fg = (2 + 0) / (3 + 2)
    assert fold.fb_iou() == pytest.approx((bg + fg) / 2)


def test_fold_iou_batches_and_validates():
    fold = FoldIoU(class_ids=[3])
    pred = torch.tensor([[[1, 0]], [[1, 1]]])
    target = torch.tensor([[[1, 0]], [[1, 0]]])
    fold.update(pred, target, torch.tensor([3, 3]))
    assert fold.miou() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="not in this fold"):
        fold.update(pred, target, [4, 4])
    with pytest.raises(ValueError, match="binary"):
        fold.update(torch.tensor([[2, 0]]), torch.tensor([[1, 0]]), 3)
