"""Evaluation protocols, each an explicit, named object.

* ``FOLD_RESOLUTIONS`` - where the fold protocol's masks are compared (Fusioner / HSNet):
  ``"original"`` (our default: logits at the model's input size, upsampled bilinearly to the mask's
  own resolution), ``"official-224"`` (the official code without flags: the mask is resized to 224
  with nearest neighbour and compared there), ``"sliding"`` (the official README's evaluation:
  the original image, 224 x 224 windows at stride int(224 * 2 / 3) = 149, padded, logits averaged
  where windows overlap).
* ``evaluate_episodes`` - the episodic fold protocol: one queried class per episode, prediction
  = argmax over [0.5 background, sigmoid(logits)], ``FoldIoU`` per class (mIoU, FB-IoU).
* ``evaluate_mosaics`` - Mosaic-4: four queries per image (``|W| = 4``), one episode per query.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .metrics import FoldIoU

FOLD_RESOLUTIONS = ("original", "official-224", "sliding")


def sliding_logits(model, image: torch.Tensor, text: torch.Tensor, window: int | None = None,
                   stride: int | None = None) -> torch.Tensor:
    """Logits ``[K, H, W]`` of one image at its own resolution from overlapping windows (official
    ``multi_scale_eval`` at scale 1.0, no flip). Images smaller than a window are padded with black
    pixels (the official code pads with −1 under its (x − 0.5) / 0.5 padding normalisation, which is
    black too)."""
    window = window or model.image_size
    stride = stride or int(window * 2 / 3)
    _, H, W = image.shape
    ph, pw = max(window - H, 0), max(window - W, 0)
    padded = F.pad(image[None], (0, pw, 0, ph))[0]  # keeps the dtype: uint8 stays uint8 (0..255)
    Hp, Wp = padded.shape[-2:]
    rows = max(math.ceil((Hp - window) / stride), 0) + 1
    cols = max(math.ceil((Wp - window) / stride), 0) + 1
    total = torch.zeros(text.shape[0], Hp, Wp)
    count = torch.zeros(1, Hp, Wp)
    for r in range(rows):
        for c in range(cols):
            y0 = min(r * stride, Hp - window)
            x0 = min(c * stride, Wp - window)
            crop = padded[:, y0:y0 + window, x0:x0 + window]
            visual = model.visual_tokens(crop[None])
            with torch.no_grad():
                logits = model.forward_features(visual, text, (window, window))[0].float().cpu()
            total[:, y0:y0 + window, x0:x0 + window] += logits
            count[:, y0:y0 + window, x0:x0 + window] += 1
    return (total / count)[:, :H, :W]


def _logits(model, images: torch.Tensor, texts: torch.Tensor, visual_fn=None) -> torch.Tensor:
    visual = (visual_fn or model.visual_tokens)(images)
    with torch.no_grad():
        return model.forward_features(visual, texts, (model.image_size, model.image_size)).float().cpu()


def _batches(dataset, indices, batch_size):
    for i in range(0, len(indices), batch_size):
        yield [dataset[j] for j in indices[i:i + batch_size]]


@torch.no_grad()
def evaluate_episodes(model, episodes, resolution: str = "original", batch_size: int = 16,
                      limit: int | None = None, visual_fn=None, text_fn=None, progress: bool = False,
                      description: str = "eval") -> FoldIoU:
    """``FoldIoU`` of ``model`` over ``episodes`` (binary episodes, see ``ovnb.data.fewshot``).

    ``visual_fn(images) -> VisualTokens`` may read a feature cache; ``text_fn(names) -> [K, d]``
    replaces the class-name embeddings (the random-text control).
    """
    from tqdm.auto import tqdm

    if resolution not in FOLD_RESOLUTIONS:
        raise ValueError(f"unknown fold resolution {resolution!r}; valid: {FOLD_RESOLUTIONS}")
    text_fn = text_fn or model.text_embeddings
    meter = FoldIoU(episodes.classes() if hasattr(episodes, "classes") else None)
    indices = list(range(len(episodes) if limit is None else min(limit, len(episodes))))
    model.eval()
    size = (model.image_size, model.image_size)
    for batch in tqdm(list(_batches(episodes, indices, batch_size)), desc=description, disable=not progress,
                      leave=False):
        texts = text_fn([b["class_name"] for b in batch])[:, None, :]
        same = len({tuple(b["image"].shape) for b in batch}) == 1
        if resolution == "sliding":
            logits = [sliding_logits(model, b["image"], t) for b, t in zip(batch, texts)]
        elif same:
            out = _logits(model, torch.stack([b["image"] for b in batch]), texts, visual_fn)
            logits = list(out)
        else:
            logits = [_logits(model, b["image"][None], t[None], visual_fn)[0] for b, t in zip(batch, texts)]
        for b, lg in zip(batch, logits):
            target = b["mask"]
            if resolution == "official-224":
                target = F.interpolate(target[None, None].float(), size=size, mode="nearest")[0, 0].long()
            elif tuple(lg.shape[-2:]) != tuple(target.shape):
                lg = F.interpolate(lg[None], size=target.shape, mode="bilinear", align_corners=False)[0]
            pred = (model.predict(lg[None])[0] == 1).long()
            meter.update(pred, target, b["class_id"])
    return meter


@torch.no_grad()
def evaluate_mosaics(model, mosaics, limit: int | None = None, visual_fn=None, batch_size: int = 8,
                     background: int = 4) -> FoldIoU:
    """Mosaic-4: the four class names of each mosaic are queried together; query k's episode is
    (prediction == k) against (mask == k), background pixels negative for every query."""
    meter = FoldIoU()
    names_index: dict[str, int] = {}
    indices = list(range(len(mosaics) if limit is None else min(limit, len(mosaics))))
    for batch in _batches(mosaics, indices, batch_size):
        texts = torch.stack([model.text_embeddings(b["class_names"]) for b in batch])
        images = torch.stack([b["image"] for b in batch])
        logits = _logits(model, images, texts, visual_fn)
        if tuple(logits.shape[-2:]) != tuple(images.shape[-2:]):
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        labels = model.predict(logits)  # 0 = background, k + 1 = query k
        for b, lab in zip(batch, labels):
            mask = b["mask"]
            for k, name in enumerate(b["class_names"]):
                cid = names_index.setdefault(name, len(names_index))
                target = (mask == k).long()
                target[mask == 255] = 255
                meter.update((lab == k + 1).long(), target, cid)
    return meter


# ----------------------------------------------------------------------------------------------
# Semantic segmentation with seen and unseen classes (SimBaseline Sec. 6.1; zsseg's
# ``GeneralizedSemSegEvaluator``)


def generalized_zero_shot(matrix, seen, unseen, convention: str = "gt_present") -> dict[str, float]:
    """The generalized zero-shot scores of one confusion matrix over *all* classes (seen and unseen
    names compete at test time): mIoU, mIoU-seen, mIoU-unseen, hIoU = 2SU/(S+U), pAcc - fractions.
    ``convention="detectron2-0.6"`` is zsseg's denominator (``ovnb.metrics.MIOU_CONVENTIONS``)."""
    from .metrics import harmonic_mean, miou, pixel_accuracy

    s, u = miou(matrix, seen, convention), miou(matrix, unseen, convention)
    return {"mIoU": miou(matrix, None, convention), "mIoU-seen": s, "mIoU-unseen": u, "hIoU": harmonic_mean(s, u),
            "pAcc": pixel_accuracy(matrix)}


@torch.no_grad()
def evaluate_semseg(model, dataset, protocol: str = "standard", limit: int | None = None, progress: bool = False,
                    description: str = "eval"):
    """The ``ConfusionMatrix`` of ``model.segment`` over ``dataset`` (``ovnb.data.semseg.SemSegImages``):
    every image is segmented with all of the split's class names, the prediction is the argmax of
    the scores, and the mask's 255 pixels are ignored (``protocol``: ``ovnb.metrics.PROTOCOLS``)."""
    from tqdm.auto import tqdm

    from .metrics import PROTOCOLS

    names = list(dataset.class_names)
    matrix = PROTOCOLS[protocol].confusion_matrix(len(names))
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for i in tqdm(range(count), desc=description, disable=not progress, leave=False):
        sample = dataset[i]
        scores = model.segment(sample["image"][None], names)[0]
        matrix.update(scores.argmax(0).cpu(), sample["mask"])
    return matrix
