"""SimBaseline's speed: batched region classification against one crop at a time, and seconds per
image of the whole pipeline.

* **regions** - Eq. (1) for ``proposals`` masks of one image: all valid crops through the CLIP image
  tower in one forward (``simbaseline.clip_probabilities``, what ``segment`` does) against one forward
  per crop (a loop, as a straightforward implementation would). Both give the same probabilities;
  the largest difference is printed beside the ratio.
* **pipeline** - ``SimBaseline.segment`` on one image (proposal generator, crops, CLIP, ensemble,
  Eq. (2)) at the toy size (64 px, toy models) and at the paper's test size (shortest edge 640: 640 x
  853), with random weights for the real architectures (ResNet-101c MaskFormer, CLIP ViT-B/16).

Random weights are enough: a forward's cost does not depend on the values. The proposals of the
region benchmark are random rectangles, so that every one is valid. Cutting and resizing a crop costs
a few milliseconds; what batching saves is the per-forward overhead and the idle parallel units of an
accelerator, so the ratio is large for a small model or on a GPU and can be near 1 for a ViT-B/16 on
a few CPU cores, where one crop already keeps them busy.

    ovnb benchmark simbaseline [--configs toy vit-b-16] [--proposals 100] [--steps 2]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..methods import simbaseline as sb

CONFIGS = {
    "toy": dict(clip="toy-clip-vit", pretrained=True, image=(64, 64)),
    "vit-b-16": dict(clip="clip-vit-b-16", pretrained=False, image=(640, 853)),
}


@dataclass
class RegionTiming:
    config: str
    proposals: int
    batched_s: float
    one_by_one_s: float
    max_difference: float

    @property
    def ratio(self) -> float:
        return self.one_by_one_s / self.batched_s


def random_proposals(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``n`` rectangles of random position and size (at least 4 x 4 pixels)."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, height, width, dtype=torch.bool)
    for k in range(n):
        h = int(torch.randint(4, height + 1, (1,), generator=g))
        w = int(torch.randint(4, width + 1, (1,), generator=g))
        y = int(torch.randint(0, height - h + 1, (1,), generator=g))
        x = int(torch.randint(0, width - w + 1, (1,), generator=g))
        masks[k, y:y + h, x:x + w] = True
    return masks


@torch.no_grad()
def one_by_one(clip, image, binary, text, temperature=sb.CLIP_TEMPERATURE) -> torch.Tensor:
    """Eq. (1) with one CLIP forward per proposal (the reference the batched version must match)."""
    import torch.nn.functional as F

    rows = []
    for mask in binary:
        crops, valid = sb.region_crops(image, mask[None], clip.image_size)
        if not bool(valid[0]):
            rows.append(torch.ones(text.shape[0]))
            continue
        emb = clip.embed_image(sb.normalise_crops(crops, clip.mean, clip.std), preprocessed=True)
        rows.append((temperature * F.normalize(emb.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T)
                    .softmax(-1)[0].cpu())
    return torch.stack(rows)


def measure_regions(name: str, proposals: int = 100, steps: int = 2, classes: int = 20) -> RegionTiming:
    from .. import encoders

    spec = CONFIGS[name]
    torch.manual_seed(0)
    clip = encoders.build(spec["clip"], pretrained=spec["pretrained"])
    height, width = spec["image"]
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    binary = random_proposals(proposals, height, width)
    text = torch.nn.functional.normalize(torch.randn(classes, clip.embed_dim), dim=-1)
    reference = one_by_one(clip, image, binary, text)  # also the warm-up
    batched = sb.clip_probabilities(clip, image, binary, text)
    timings = {}
    for label, fn in (("batched", lambda: sb.clip_probabilities(clip, image, binary, text)),
                      ("one", lambda: one_by_one(clip, image, binary, text))):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        timings[label] = (time.perf_counter() - t0) / steps
    return RegionTiming(name, proposals, timings["batched"], timings["one"],
                        float((batched.cpu() - reference).abs().max()))


def measure_pipeline(name: str, steps: int = 1) -> float:
    """Seconds per image of ``segment`` (156 class names; ``toy``: the toy vocabulary's 62)."""
    from ..data import semseg

    spec = CONFIGS[name]
    split = semseg.split("toy-zero-shot" if name == "toy" else "coco-stuff-171")
    config = sb.SimBaselineConfig.toy() if name == "toy" else None  # the toy world's generator
    model = sb.build(spec["clip"], pretrained=spec["pretrained"], config=config, seen_names=split.names(split.seen),
                     seed=0)
    model.eval()
    image = torch.randint(0, 256, (1, 3, *spec["image"]), dtype=torch.uint8)
    names = list(split.class_names)
    model.segment(image, names)  # warm-up; the class-name embeddings are cached from here on
    t0 = time.perf_counter()
    for _ in range(steps):
        model.segment(image, names)
    return (time.perf_counter() - t0) / steps


def report(regions: list[RegionTiming], pipeline: dict[str, float]) -> str:
    lines = [f"{'config':<10} {'proposals':>9} {'batched s':>10} {'one-by-one s':>13} {'ratio':>7} {'max |diff|':>11}"]
    lines += [f"{r.config:<10} {r.proposals:>9} {r.batched_s:>10.3f} {r.one_by_one_s:>13.3f} {r.ratio:>6.1f}x "
              f"{r.max_difference:>11.2e}" for r in regions]
    if pipeline:
        lines += ["", "segment(), seconds per image (random weights for the real architectures):"]
        lines += [f"  {name:<10} {CONFIGS[name]['image'][0]} x {CONFIGS[name]['image'][1]}: {s:.2f} s"
                  for name, s in pipeline.items()]
    return "\n".join(lines)
