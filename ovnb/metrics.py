"""Segmentation metrics, computed in one place from confusion matrices.

All values are fractions in [0, 1] (multiply by 100 to compare with the papers' tables).

* ``ConfusionMatrix`` accumulates a ``[C, C]`` int64 matrix (rows = ground truth, columns =
  prediction) with one ``torch.bincount`` per update, on the tensors' own device.
* ``miou`` / ``per_class_iou`` / ``pixel_accuracy`` / ``hiou`` read that matrix.
* ``FoldIoU`` is the episodic foreground/background metric of the few-shot benchmarks
  (PASCAL-5i, COCO-20i, FSS-1000) as HSNet computes it and Fusioner reports it (Table 1-5):
  per class, intersections and unions are summed over all episodes of that class.

The code bases the book reproduces do not agree on what "mIoU" means. The differences are named
here instead of hidden in flags:

* ``MIOU_CONVENTIONS["gt_present"]`` - mean IoU over the classes that have ground-truth pixels
  (current detectron2 ``SemSegEvaluator``, FC-CLIP's paper numbers, PnP-OVSS's
  ``Calculate_mIoU.py``).
* ``MIOU_CONVENTIONS["detectron2-0.6"]`` - the sum of IoU over ground-truth classes divided by
  the number of classes that have ground-truth *or predicted* pixels (the detectron2 0.6 wheel that
  zsseg/SimBaseline pinned; on PC-459 it turns FC-CLIP's 18.2 into 13.8, fc-clip issue #27).
* ``MetricProtocol`` bundles a convention with how void pixels are treated. PnP-OVSS, for
  instance, relabels VOC's 255 boundary pixels as background class 0 instead of ignoring them
  (``PROTOCOLS["pnp-ovss-background-as-class"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

MIOU_CONVENTIONS = {
    "gt_present": "mean IoU over classes with ground-truth pixels",
    "detectron2-0.6": "sum of IoU over classes with ground truth / number of classes with ground truth "
                      "or predictions",
}


def _check_labels(name: str, labels: torch.Tensor) -> None:
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise TypeError(f"{name} must be an integer tensor of class ids, got dtype {labels.dtype}")


class ConfusionMatrix:
    """Accumulates a ``[num_classes, num_classes]`` confusion matrix over many images.

    ``update(pred, target)`` takes integer tensors of the same shape (any shape, any device).
    Pixels whose target equals ``ignore_index`` are skipped, unless ``ignore_as_class`` is set, in
    which case they count as that class (PnP-OVSS's "boundaries are background" rule).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255,
                 ignore_as_class: int | None = None, device: torch.device | str | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if ignore_as_class is not None and not 0 <= ignore_as_class < num_classes:
            raise ValueError(f"ignore_as_class={ignore_as_class} is not a class id in [0, {num_classes})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ignore_as_class = ignore_as_class
        self._matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @property
    def matrix(self) -> torch.Tensor:
        return self._matrix

    def reset(self) -> None:
        self._matrix.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> "ConfusionMatrix":
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
        _check_labels("pred", pred)
        _check_labels("target", target)
        pred = pred.reshape(-1).long()
        target = target.reshape(-1).long().to(pred.device)
        if self._matrix.device != pred.device:
            self._matrix = self._matrix.to(pred.device)
        if self.ignore_index is not None:
            void = target == self.ignore_index
            if self.ignore_as_class is not None:
                target = torch.where(void, torch.full_like(target, self.ignore_as_class), target)
            else:
                keep = ~void
                pred, target = pred[keep], target[keep]
        c = self.num_classes
        if target.numel():
            for name, values in (("target", target), ("pred", pred)):
                lo, hi = int(values.min()), int(values.max())
                if lo < 0 or hi >= c:
                    bad = lo if lo < 0 else hi
                    raise ValueError(f"{name} holds class id {bad}, outside [0, {c})"
                                     + (f" and not the ignore index {self.ignore_index}" if name == "target" else ""))
        self._matrix += torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class into {self.num_classes}-class matrix")
        self._matrix += other.matrix.to(self._matrix.device)
        return self


def _as_matrix(matrix) -> torch.Tensor:
    if isinstance(matrix, ConfusionMatrix):
        matrix = matrix.matrix
    matrix = torch.as_tensor(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square [C, C] confusion matrix, got shape {tuple(matrix.shape)}")
    return matrix.double().cpu()


def _class_index(classes: Iterable[int] | None, num_classes: int) -> torch.Tensor:
    if classes is None:
        return torch.arange(num_classes)
    idx = torch.as_tensor(list(classes), dtype=torch.long)
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
        bad = [int(i) for i in idx if not 0 <= i < num_classes]
        raise ValueError(f"class ids {bad} are outside [0, {num_classes})")
    return idx


def per_class_iou(matrix) -> torch.Tensor:
    """IoU of every class, ``TP / (TP + FP + FN)``; NaN where the class is neither in GT nor predicted."""
    m = _as_matrix(matrix)
    tp = m.diag()
    union = m.sum(1) + m.sum(0) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def miou(matrix, classes: Sequence[int] | None = None, convention: str = "gt_present") -> float:
    """Mean IoU over ``classes`` (default: all) under a named convention (see ``MIOU_CONVENTIONS``).

    Classes without ground-truth pixels never contribute an IoU; under ``"detectron2-0.6"`` the
    classes that are only predicted still count in the denominator. NaN when no class qualifies.
    """
    if convention not in MIOU_CONVENTIONS:
        raise ValueError(f"unknown mIoU convention {convention!r}; known: {sorted(MIOU_CONVENTIONS)}")
    m = _as_matrix(matrix)
    idx = _class_index(classes, m.shape[0])
    iou = per_class_iou(m)[idx]
    gt = m.sum(1)[idx] > 0
    if convention == "gt_present":
        return float(iou[gt].mean()) if gt.any() else float("nan")
    seen_somewhere = gt | (m.sum(0)[idx] > 0)
    return float(iou[gt].sum() / seen_somewhere.sum()) if seen_somewhere.any() else float("nan")


def pixel_accuracy(matrix) -> float:
    """Fraction of (non-ignored) pixels labelled correctly."""
    m = _as_matrix(matrix)
    total = m.sum()
    return float(m.diag().sum() / total) if total > 0 else float("nan")


def harmonic_mean(seen: float, unseen: float) -> float:
    return 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)


def hiou(matrix, seen: Sequence[int], unseen: Sequence[int], convention: str = "gt_present") -> float:
    """Harmonic mean of seen-class and unseen-class mIoU (SimBaseline Sec. 6.1, ``hIoU = 2SU/(S+U)``).

    Both means come from one confusion matrix over *all* classes (the generalized zero-shot
    setting: seen and unseen names compete at test time).
    """
    overlap = set(seen) & set(unseen)
    if overlap:
        raise ValueError(f"classes {sorted(overlap)} are listed as both seen and unseen")
    return harmonic_mean(miou(matrix, seen, convention), miou(matrix, unseen, convention))


@dataclass(frozen=True)
class MetricProtocol:
    """How a code base turns labels into a confusion matrix and that matrix into mIoU."""

    name: str
    description: str
    miou_convention: str = "gt_present"
    ignore_index: int | None = 255
    ignore_as_class: int | None = None

    def confusion_matrix(self, num_classes: int, device=None) -> ConfusionMatrix:
        return ConfusionMatrix(num_classes, self.ignore_index, self.ignore_as_class, device)

    def miou(self, matrix, classes: Sequence[int] | None = None) -> float:
        return miou(matrix, classes, self.miou_convention)


PROTOCOLS = {
    p.name: p for p in (
        MetricProtocol("standard", "255 is ignored; mean over classes with ground truth"),
        MetricProtocol("detectron2-0.6", "255 is ignored; detectron2 0.6 denominator (classes with GT or "
                       "predictions), as zsseg/SimBaseline evaluated", miou_convention="detectron2-0.6"),
        MetricProtocol("pnp-ovss-background-as-class", "255 (VOC boundaries) is relabelled to background "
                       "class 0 and counted, as PnP-OVSS's evaluation does", ignore_as_class=0),
    )
}


class FoldIoU:
    """Episodic foreground/background IoU of the few-shot fold benchmarks (HSNet's evaluator).

    Each episode queries one class ``c``: the prediction and target are binary masks
    (1 = class ``c``, 0 = not), with ``ignore_index`` pixels excluded. Intersections and unions
    of foreground and background are summed per class over all its episodes. Then

    * ``miou()`` = mean over classes (with a non-empty foreground union) of the foreground IoU,
    * ``fb_iou()`` = mean over {background, foreground} of  sum_c I / sum_c U  over those classes.

    The paper's per-fold number is ``miou()`` of that fold; its "mIoU" column is the mean of the
    four folds.
    """

    def __init__(self, class_ids: Sequence[int] | None = None, ignore_index: int | None = 255):
        self.class_ids = None if class_ids is None else sorted(set(int(c) for c in class_ids))
        self.ignore_index = ignore_index
        self.inter = {}  # class -> tensor([bg, fg]) (int64)
        self.union = {}

    def update(self, pred: torch.Tensor, target: torch.Tensor, class_ids) -> "FoldIoU":
        """``pred``/``target``: ``[B, H, W]`` (or ``[H, W]``) with values 0/1 (target may hold ignore).

        ``class_ids``: the class each episode queried (an int, or one per batch item).
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
        _check_labels("target", target)
        if pred.ndim == 2:
            pred, target = pred[None], target[None]
        pred = pred.long()
        target = target.long().to(pred.device)
        ids = [int(class_ids)] * len(pred) if isinstance(class_ids, int) else [int(c) for c in class_ids]
        if len(ids) != len(pred):
            raise ValueError(f"got {len(ids)} class ids for a batch of {len(pred)} episodes")
        valid = target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        for name, values in (("pred", pred), ("target", target)):
            bad = values[valid & (values != 0) & (values != 1)]
            if bad.numel():
                raise ValueError(f"{name} holds value {int(bad[0])}; episodes take binary masks (0/1)")
        if self.class_ids is not None:
            unknown = sorted(set(ids) - set(self.class_ids))
            if unknown:
                raise ValueError(f"class ids {unknown} are not in this fold's classes {self.class_ids}")
        dims = tuple(range(1, pred.ndim))
        fg_p, fg_t = (pred == 1) & valid, (target == 1) & valid
        bg_p, bg_t = (pred == 0) & valid, (target == 0) & valid
        inter = torch.stack([(bg_p & bg_t).sum(dims), (fg_p & fg_t).sum(dims)], 1).cpu()
        union = torch.stack([(bg_p | bg_t).sum(dims), (fg_p | fg_t).sum(dims)], 1).cpu()
        for c, i, u in zip(ids, inter, union):
            self.inter[c] = self.inter.get(c, torch.zeros(2, dtype=torch.int64)) + i
            self.union[c] = self.union.get(c, torch.zeros(2, dtype=torch.int64)) + u
        return self

    def _counted(self) -> list[int]:
        return sorted(c for c in self.union if self.union[c][1] > 0)

    def per_class_iou(self) -> dict[int, float]:
        """Foreground IoU of every class that has a non-empty foreground union."""
        return {c: float(self.inter[c][1] / self.union[c][1]) for c in self._counted()}

    def miou(self) -> float:
        ious = self.per_class_iou()
        return sum(ious.values()) / len(ious) if ious else float("nan")

    def fb_iou(self) -> float:
        counted = self._counted()
        if not counted:
            return float("nan")
        inter = torch.stack([self.inter[c] for c in counted]).sum(0).double()
        union = torch.stack([self.union[c] for c in counted]).sum(0).double()
        return float((inter / union.clamp(min=1)).mean())
