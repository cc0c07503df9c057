"""Panoptic quality (PQ / SQ / RQ) as the COCO panoptic API computes it, and panoptic targets.

A panoptic map is an int tensor ``[H, W]`` of segment ids with a list of segments
``{"id", "category_id"}``; ground truth may mark void pixels (ignored: ``category_id`` not a
class, e.g. 255). Per image (``panopticapi/evaluation.py pq_compute_single_core``):

* a predicted and a ground-truth segment of the same class **match** when
  ``IoU > 0.5``, with the union counted without the predicted segment's void pixels;
* unmatched ground-truth segments are false negatives; unmatched predicted segments are false
  positives unless more than half of them lies on void;
* per class ``PQ = sum IoU(TP) / (TP + FP/2 + FN/2)`` = ``SQ x RQ`` with ``SQ = sum IoU / TP``,
  ``RQ = TP / (TP + FP/2 + FN/2)``; the dataset PQ averages the classes with ``TP + FP + FN > 0``,
  also per ``things`` / ``stuff``.

Crowd regions (a ground-truth segment with ``"iscrowd": 1``: COCO's crowds, Cityscapes' groups of
things without instance ids) are never matched; an unmatched predicted segment of that class is not
a false positive when more than half of it lies on void **or that class's crowd region** (the COCO
panoptic API keeps one crowd region per class and image, the last listed; so does this).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

OFFSET = 1 << 20  # combine (gt id, pred id) into one int64 for bincount-free counting


def targets_from_instances(mask: torch.Tensor, instances: torch.Tensor, thing: list[bool],
                           ignore_index: int = 255) -> tuple[torch.Tensor, list[dict]]:
    """Ground-truth panoptic map from a semantic ``mask`` and an ``instances`` map (1.. per thing
    instance, 0 elsewhere): one segment per thing instance, one per stuff class present; pixels of
    ``ignore_index`` (or a thing pixel without instance) are void (id 0)."""
    segments = torch.zeros_like(mask, dtype=torch.int64)
    info: list[dict] = []
    valid = mask != ignore_index
    for cls in mask[valid].unique().tolist():
        region = mask == cls
        if thing[cls]:
            for inst in instances[region].unique().tolist():
                if inst == 0:
                    continue
                info.append({"id": len(info) + 1, "category_id": int(cls)})
                segments[region & (instances == inst)] = len(info)
        else:
            info.append({"id": len(info) + 1, "category_id": int(cls)})
            segments[region] = len(info)
    return segments, info


def training_targets(mask: torch.Tensor, instances: torch.Tensor, thing: list[bool], class_map: torch.Tensor,
                     ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask2Former's panoptic training targets: binary masks ``[N, H, W]`` and labels ``[N]``
    (``class_map[dataset class]`` = the training label, or ``ignore_index`` for a class not trained on)."""
    segments, info = targets_from_instances(mask, instances, thing, ignore_index)
    masks, labels = [], []
    for seg in info:
        label = int(class_map[seg["category_id"]])
        if label == ignore_index:
            continue
        masks.append(segments == seg["id"])
        labels.append(label)
    h, w = mask.shape
    if not masks:
        return torch.zeros((0, h, w)), torch.zeros((0,), dtype=torch.long)
    return torch.stack(masks).float(), torch.tensor(labels, dtype=torch.long)


@dataclass
class PanopticQuality:
    """Accumulates per-class TP / FP / FN / IoU sums over images; ``summary()`` gives PQ, SQ, RQ."""

    num_classes: int
    thing: list[bool]
    tp: torch.Tensor = field(init=False)
    fp: torch.Tensor = field(init=False)
    fn: torch.Tensor = field(init=False)
    iou: torch.Tensor = field(init=False)

    def __post_init__(self):
        if len(self.thing) != self.num_classes:
            raise ValueError(f"thing has {len(self.thing)} entries for {self.num_classes} classes")
        self.tp = torch.zeros(self.num_classes, dtype=torch.long)
        self.fp = torch.zeros(self.num_classes, dtype=torch.long)
        self.fn = torch.zeros(self.num_classes, dtype=torch.long)
        self.iou = torch.zeros(self.num_classes, dtype=torch.float64)

    def update(self, pred: torch.Tensor, pred_info: list[dict], gt: torch.Tensor, gt_info: list[dict]) -> "PanopticQuality":
        """One image: segment-id maps ``[H, W]`` (0 = none / void) with their segment lists (ground
        truth: ``iscrowd`` optional)."""
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size")
        gt_cat = {int(s["id"]): int(s["category_id"]) for s in gt_info}
        pred_cat = {int(s["id"]): int(s["category_id"]) for s in pred_info}
        for cat in list(gt_cat.values()) + list(pred_cat.values()):
            if not 0 <= cat < self.num_classes:
                raise ValueError(f"category {cat} outside 0..{self.num_classes - 1}")
        g = gt.long().flatten().cpu()
        p = pred.long().flatten().cpu()
        g = torch.where(torch.isin(g, torch.tensor(list(gt_cat) or [-1])), g, torch.zeros_like(g))  # void = 0
        p = torch.where(torch.isin(p, torch.tensor(list(pred_cat) or [-1])), p, torch.zeros_like(p))
        pairs, counts = torch.unique(g * OFFSET + p, return_counts=True)
        inter: dict[tuple[int, int], int] = {}
        gt_area: dict[int, int] = {}
        pred_area: dict[int, int] = {}
        for key, n in zip(pairs.tolist(), counts.tolist()):
            gi, pi = divmod(key, OFFSET)
            inter[(gi, pi)] = n
            gt_area[gi] = gt_area.get(gi, 0) + n
            pred_area[pi] = pred_area.get(pi, 0) + n
        matched_gt, matched_pred = set(), set()
        crowd = {int(s["id"]) for s in gt_info if s.get("iscrowd", 0)}
        for (gi, pi), n in inter.items():
            if gi == 0 or pi == 0 or gi in crowd or gt_cat[gi] != pred_cat[pi]:
                continue
            union = pred_area[pi] + gt_area[gi] - n - inter.get((0, pi), 0)
            iou = n / union
            if iou > 0.5:
                cat = gt_cat[gi]
                self.tp[cat] += 1
                self.iou[cat] += iou
                matched_gt.add(gi)
                matched_pred.add(pi)
        crowd_of: dict[int, int] = {}  # class -> its crowd segment
        for gi, cat in gt_cat.items():
            if gi in crowd:
                crowd_of[cat] = gi
            elif gi not in matched_gt:  # listed without pixels too, as the COCO panoptic API counts it
                self.fn[cat] += 1
        for pi, cat in pred_cat.items():
            if pi in matched_pred or pred_area.get(pi, 0) == 0:
                continue
            ignored = inter.get((0, pi), 0) + (inter.get((crowd_of[cat], pi), 0) if cat in crowd_of else 0)
            if ignored / pred_area[pi] > 0.5:
                continue  # mostly on void or its class's crowd region: not counted
            self.fp[cat] += 1
        return self

    def per_class(self) -> dict[str, torch.Tensor]:
        denom = (self.tp + 0.5 * self.fp + 0.5 * self.fn).double()
        valid = (self.tp + self.fp + self.fn) > 0
        pq = torch.where(valid, self.iou / denom.clamp(min=1e-12), torch.zeros_like(self.iou))
        sq = torch.where(self.tp > 0, self.iou / self.tp.clamp(min=1).double(), torch.zeros_like(self.iou))
        rq = torch.where(valid, self.tp.double() / denom.clamp(min=1e-12), torch.zeros_like(self.iou))
        return {"pq": pq, "sq": sq, "rq": rq, "valid": valid}

    def summary(self, classes: list[int] | None = None) -> dict[str, float]:
        """PQ, SQ, RQ (fractions) over ``classes`` (default: all), and over things and stuff, with counts."""
        per = self.per_class()
        chosen = torch.zeros(self.num_classes, dtype=torch.bool)
        chosen[list(range(self.num_classes)) if classes is None else list(classes)] = True
        thing = torch.tensor(self.thing, dtype=torch.bool)
        out: dict[str, float] = {}
        for prefix, select in (("", chosen), ("th_", chosen & thing), ("st_", chosen & ~thing)):
            use = select & per["valid"]
            n = int(use.sum())
            for key in ("pq", "sq", "rq"):
                out[prefix + key] = float(per[key][use].mean()) if n else float("nan")
            out[prefix + "n"] = n
        return out
