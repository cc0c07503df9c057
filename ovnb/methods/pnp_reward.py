"""PnP-OVSS's CLIP reward (Sec. 3.4, Eq. 6) and the random search of Table 2: hyper-parameters
chosen with image-level labels only, no dense masks.

For an image with ground-truth classes ``C`` and a mask ``M_c`` per class ``c``, CLIP scores the
masked image ``x * M_c`` and a blank image against the names of ``C``:

    reward(x) = sum_{c in C} 1[ p(c | x * M_c) > p(c | blank) ],   p(. | y) = softmax_{c' in C}(<f(y), t_c'> / T)

with ``T = 0.01`` (official). As the official search code does, the image is masked after CLIP's
normalisation, so the masked-out pixels and the blank image are zeros of the normalised space (the
dataset-mean colour); ``blank="black"`` uses a black image, as the paper's text says. The total
reward is the sum over images.

What had to be inferred (the official search path does not run as released, notes A.8):

* the class masks of the first stage (layer, head, threshold; GradCAM of one pass) are the
  thresholded maps (``> 0`` after ``threshold_maps``), upsampled to CLIP's input with nearest
  neighbour, blurred with sigma = ``mask_blur`` x size (official 0.04) and thresholded again at the
  same threshold on the min-max normalised blur;
* the masks of the second stage (blur sigma) are the pre-CRF segmentation: pixels whose argmax
  over the blurred channels is ``c``;
* the text side is CLIP's "a photo of a {}." prompt (the official code reads names through LAVIS's
  feature extractor; its template is not in the released code);
* the search samples the grid uniformly without replacement (``random_search``); the official
  run used Gradient-Free-Optimizers' ``RandomAnnealingOptimizer`` for 34 iterations in each of
  three groups of the space.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .pnp_ovss import blur_step, threshold_maps

# Table 2's search spaces (1-based layers and heads; thresholds and blur sigmas as printed)
BLIP_SPACE = dict(layer=list(range(1, 13)), head=list(range(1, 13)), threshold=[0.05, 0.15, 0.25, 0.35, 0.45])
BRIDGETOWER_SPACE = dict(layer=list(range(1, 7)), head=list(range(1, 17)), threshold=[0.05, 0.15, 0.25, 0.35, 0.45])
BLUR_SPACE = [0.01, 0.03, 0.05, 0.07, 0.09, 0.11]


def clip_reward(clip, images: torch.Tensor, labels: list[list[int]], masks: list[torch.Tensor], class_names,
                temperature: float = 0.01, templates: str = "photo", blank: str = "normalised-zero") -> torch.Tensor:
    """Per-image rewards (Eq. 6): ``images`` uint8 ``[B, 3, H, W]``; ``labels[i]`` the class indices
    present in image ``i``; ``masks[i]`` ``[len(labels[i]), h, w]`` (any size; resized to CLIP's
    input with nearest neighbour), 1 where the class was segmented."""
    if blank not in ("normalised-zero", "black"):
        raise ValueError(f"blank must be 'normalised-zero' or 'black', got {blank!r}")
    out = []
    x_all = clip.preprocess(images)
    size = x_all.shape[-2:]
    blank_image = (torch.zeros_like(x_all[:1]) if blank == "normalised-zero"
                   else clip.preprocess(torch.zeros(1, 3, *size, dtype=torch.uint8)))
    for i, cls in enumerate(labels):
        if len(cls) != masks[i].shape[0]:
            raise ValueError(f"image {i}: {len(cls)} labels but {masks[i].shape[0]} masks")
        if not cls:
            out.append(0)
            continue
        text = clip.embed_text([class_names[c] for c in cls], templates).to(x_all.device)
        m = F.interpolate(masks[i][:, None].float().to(x_all.device), size=size, mode="nearest")
        pos = x_all[i:i + 1] * m
        with torch.no_grad():
            f = clip.embed_image(torch.cat([pos, blank_image]), preprocessed=True)
        p = torch.softmax(f @ text.T / temperature, dim=-1)
        k = torch.arange(len(cls), device=p.device)
        out.append(int((p[k, k] > p[-1, k]).sum()))
    return torch.tensor(out)


def masks_from_maps(model, passes: list[torch.Tensor], mask_blur: float = 0.04, size: int | None = None) -> torch.Tensor:
    """``[K, S, S]`` first-stage masks of one image from its per-pass maps (see the module docstring):
    thresholded, upsampled (nearest) to ``size`` (default the VLM's input), blurred and thresholded again."""
    size = size or model.config.image_size
    binary = (threshold_maps(model.aggregate(passes), model.config.threshold) > 0).float()
    m = F.interpolate(binary[None], size=(size, size), mode="nearest")[0]
    if mask_blur:
        m = blur_step(m, mask_blur) >= model.config.threshold
    return m.float()


def segmentation_masks(model, images: torch.Tensor, class_names, labels):
    """Second-stage masks: per image, class ``c``'s pixels of the pre-CRF segmentation (argmax over
    the blurred channels, background excluded)."""
    model = model.configure(crf=False)
    out = model.maps(images, class_names, labels)
    masks = []
    for i, passes in enumerate(out["passes"]):
        post = model.postprocess(model.aggregate(passes), images[i])
        lab = post["channels"].argmax(0) - (1 if post["background_added"] else 0)
        masks.append(torch.stack([(lab == k).float() for k in range(len(out["candidates"][i]))]))
    return masks, out["candidates"]


@dataclass
class Trial:
    params: dict
    reward: int


def random_search(score, space: dict, iterations: int, seed: int = 0, progress: bool = False) -> list[Trial]:
    """``iterations`` distinct points of the grid ``space`` (name -> values) drawn uniformly without
    replacement, each scored by ``score(params) -> reward``; returns the trials in the order drawn
    (the best: ``max(trials, key=lambda t: t.reward)``, the first drawn wins a tie)."""
    from itertools import product

    from tqdm.auto import tqdm

    keys = list(space)
    grid = [dict(zip(keys, values)) for values in product(*(space[k] for k in keys))]
    if iterations > len(grid):
        iterations = len(grid)
    rng = random.Random(seed)
    points = rng.sample(grid, iterations)
    return [Trial(p, int(score(p))) for p in tqdm(points, desc="random search", disable=not progress, leave=False)]


def best(trials: list[Trial]) -> Trial:
    return max(trials, key=lambda t: t.reward)
