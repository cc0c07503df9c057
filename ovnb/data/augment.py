"""Training augmentation of the MaskFormer-based chapters (official ``MaskFormerSemanticDatasetMapper``
with the COCO-Stuff / VOC configs of zsseg):

1. resize so that the shortest edge is one of ``short_edges`` (COCO: 320, 384, ..., 960; the longest
   edge at most ``max_size``), image bilinear, mask nearest;
2. a random ``crop`` x ``crop`` window (640; VOC 512), no category-area constraint (``1.0``);
3. photometric distortion (SSD's, ``COLOR_AUG_SSD``): brightness +-32, contrast and saturation in
   [0.5, 1.5] and hue +-18 OpenCV units (+-36 degrees), each with probability 1/2;
4. horizontal flip with probability 1/2;
5. padding to ``crop`` x ``crop`` (image 128, mask 255 = ignored).

Every random draw comes from the ``torch.Generator`` passed in, so a training step's batch is a pure
function of the step (``ovnb.train``'s exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


@dataclass(frozen=True)
class TrainAugment:
    short_edges: tuple[int, ...] = tuple(range(320, 961, 64))
    max_size: int = 2560
    crop: int = 640
    photometric: str = "ssd"  # "ssd" | "brightness-contrast" (no hue/saturation: toy class names are colours) | "none"
    flip: bool = True
    pad_value: float = 128.0

    PHOTOMETRIC = ("ssd", "brightness-contrast", "none")

    def __post_init__(self):
        if self.photometric not in self.PHOTOMETRIC:
            raise ValueError(f"photometric must be one of {self.PHOTOMETRIC}, got {self.photometric!r}")
        if not self.short_edges or min(self.short_edges) < 1 or self.crop < 1:
            raise ValueError(f"short_edges and crop must be positive, got {self.short_edges}, {self.crop}")

    @classmethod
    def scaled(cls, crop: int, **overrides) -> "TrainAugment":
        """The official recipe for a ``crop`` other than 640: short edges 0.5x-1.5x of it in 11 steps."""
        edges = tuple(sorted({max(8, round(crop * (0.5 + 0.1 * i))) for i in range(11)}))
        return cls(short_edges=edges, crop=crop, max_size=4 * crop, **overrides)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` uint8/float ``[3, H, W]`` (0-255), ``mask`` ``[H, W]`` -> float image and long mask,
        both ``crop`` x ``crop``."""
        image, mask = image.float(), mask.long()
        H, W = image.shape[-2:]
        edge = self.short_edges[int(torch.randint(len(self.short_edges), (), generator=generator))]
        scale = min(edge / min(H, W), self.max_size / max(H, W))
        h, w = max(1, round(H * scale)), max(1, round(W * scale))
        image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
        ch, cw = min(self.crop, h), min(self.crop, w)
        y0 = int(torch.randint(h - ch + 1, (), generator=generator))
        x0 = int(torch.randint(w - cw + 1, (), generator=generator))
        image, mask = image[:, y0:y0 + ch, x0:x0 + cw], mask[y0:y0 + ch, x0:x0 + cw]
        if self.photometric != "none":
            image = photometric_distortion(image, generator, hue_saturation=self.photometric == "ssd")
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image, mask = image.flip(-1), mask.flip(-1)
        out_image = torch.full((3, self.crop, self.crop), self.pad_value)
        out_mask = torch.full((self.crop, self.crop), IGNORE_INDEX, dtype=torch.long)
        out_image[:, :ch, :cw], out_mask[:ch, :cw] = image, mask
        return out_image, out_mask


def photometric_distortion(image: torch.Tensor, generator: torch.Generator, hue_saturation: bool = True) -> torch.Tensor:
    """SSD's photometric distortion (detectron2 ``ColorAugSSDTransform``) of a float ``[3, H, W]`` image
    in 0-255: brightness, then contrast before or after saturation and hue (each step with
    probability 1/2)."""
    from torchvision.transforms.v2 import functional as TF

    def coin():
        return bool(torch.rand((), generator=generator) < 0.5)

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    x = image.clamp(0, 255)
    if coin():
        x = (x + uniform(-32, 32)).clamp(0, 255)
    contrast_first = coin()

    def contrast(x):
        return (x * uniform(0.5, 1.5)).clamp(0, 255) if coin() else x

    if contrast_first:
        x = contrast(x)
    if hue_saturation:
        if coin():
            x = TF.adjust_saturation(x / 255, uniform(0.5, 1.5)) * 255
        if coin():
            x = TF.adjust_hue(x / 255, uniform(-18, 18) * 2 / 360) * 255  # OpenCV's hue unit is 2 degrees
    if not contrast_first:
        x = contrast(x)
    return x


@dataclass(frozen=True)
class LargeScaleJitter:
    """Large-scale jitter (Ghiasi et al.), the official FC-CLIP / Mask2Former COCO-panoptic mapper
    (``coco_panoptic_lsj``): horizontal flip (1/2), ``ResizeScale`` - fit the image into a
    ``size * s`` square with ``s ~ U(scale)`` (0.1-2.0), keeping its aspect - then ``FixedSizeCrop``:
    a random ``size`` x ``size`` window, padded bottom-right (image 128, labels 255, instances 0).

    Transforms an image with its semantic mask and instance map together (masks: nearest)."""

    size: int = 1024
    scale: tuple[float, float] = (0.1, 2.0)
    flip: bool = True
    pad_value: float = 128.0

    def __post_init__(self):
        if self.size < 1 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"size must be positive and scale an increasing positive range, got {self.size}, {self.scale}")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, instances: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask, instances = image.float(), mask.long(), instances.long()
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image, mask, instances = image.flip(-1), mask.flip(-1), instances.flip(-1)
        H, W = image.shape[-2:]
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * float(torch.rand((), generator=generator))
        factor = min(self.size * s / H, self.size * s / W)
        h, w = max(1, round(H * factor)), max(1, round(W * factor))
        image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        labels = F.interpolate(torch.stack([mask, instances])[None].float(), size=(h, w), mode="nearest")[0].long()
        dy, dx = max(0, h - self.size), max(0, w - self.size)
        y0 = round(float(torch.rand((), generator=generator)) * dy)
        x0 = round(float(torch.rand((), generator=generator)) * dx)
        ch, cw = min(self.size, h), min(self.size, w)
        out_image = torch.full((3, self.size, self.size), self.pad_value)
        out_mask = torch.full((self.size, self.size), IGNORE_INDEX, dtype=torch.long)
        out_inst = torch.zeros((self.size, self.size), dtype=torch.long)
        out_image[:, :ch, :cw] = image[:, y0:y0 + ch, x0:x0 + cw]
        out_mask[:ch, :cw] = labels[0, y0:y0 + ch, x0:x0 + cw]
        out_inst[:ch, :cw] = labels[1, y0:y0 + ch, x0:x0 + cw]
        return out_image, out_mask, out_inst
