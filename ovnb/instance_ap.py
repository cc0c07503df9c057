"""Instance-segmentation AP (COCO's mask AP@[.5:.95]) computed by pycocotools' ``COCOeval``.

Ground truth and predictions are given per image as binary masks with class ids (and scores for
predictions); they are run-length encoded with ``pycocotools.mask`` and scored by the official COCO
evaluation (``iouType="segm"``, 101-point interpolation, up to 100 detections per image). Images
without any instance still count (their predictions are false positives).
"""

from __future__ import annotations

import numpy as np
import torch


class MaskAP:
    """Accumulate images, then ``summary()`` -> ``{"ap", "ap50", "ap75"}`` (fractions; NaN: no instance)."""

    def __init__(self, class_ids):
        self.class_ids = [int(c) for c in class_ids]
        self.images: list[dict] = []
        self.gts: list[dict] = []
        self.dets: list[dict] = []

    @staticmethod
    def _rle(mask: torch.Tensor) -> dict:
        from pycocotools import mask as mask_utils

        rle = mask_utils.encode(np.asfortranarray(mask.cpu().numpy().astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        return rle

    def update(self, gt_masks: torch.Tensor, gt_labels, pred_masks: torch.Tensor, pred_labels, scores,
               gt_crowd=None) -> "MaskAP":
        """One image: ``gt_masks [N, H, W]`` bool with ``gt_labels [N]`` (``gt_crowd [N]``: crowd regions,
        which COCOeval never counts as misses and whose detections it ignores); ``pred_masks [M, H, W]``
        with ``pred_labels [M]`` and ``scores [M]``."""
        from pycocotools import mask as mask_utils

        image_id = len(self.images) + 1
        h, w = (gt_masks.shape[-2:] if gt_masks.numel() else pred_masks.shape[-2:])
        self.images.append({"id": image_id, "height": int(h), "width": int(w)})
        crowd = [False] * len(gt_masks) if gt_crowd is None else [bool(x) for x in gt_crowd]
        for m, c, k in zip(gt_masks, torch.as_tensor(gt_labels).tolist(), crowd):
            rle = self._rle(m)
            self.gts.append({"id": len(self.gts) + 1, "image_id": image_id, "category_id": int(c), "segmentation": rle,
                             "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle)),
                             "iscrowd": int(k)})
        for m, c, s in zip(pred_masks, torch.as_tensor(pred_labels).tolist(), torch.as_tensor(scores).tolist()):
            if not bool(m.any()):
                continue
            self.dets.append({"image_id": image_id, "category_id": int(c), "segmentation": self._rle(m),
                              "score": float(s)})
        return self

    def summary(self, class_ids=None) -> dict[str, float]:
        import contextlib
        import io

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        ids = self.class_ids if class_ids is None else [int(c) for c in class_ids]
        gts = [g for g in self.gts if g["category_id"] in ids]
        dets = [d for d in self.dets if d["category_id"] in ids]
        if not any(not g["iscrowd"] for g in gts):
            return {"ap": float("nan"), "ap50": float("nan"), "ap75": float("nan")}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            coco = COCO()
            coco.dataset = {"images": self.images, "annotations": gts,
                            "categories": [{"id": c} for c in ids]}
            coco.createIndex()
            if not dets:
                return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
            result = coco.loadRes(dets)
            ev = COCOeval(coco, result, "segm")
            ev.params.catIds = ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {"ap": float(ev.stats[0]), "ap50": float(ev.stats[1]), "ap75": float(ev.stats[2])}
