"""FC-CLIP's speed (Table 4) the way the paper measures it, with a per-stage breakdown.

The paper's FPS is "number of images / total time" on one V100, batch 1, post-processing included,
following Mask2Former (official issue #23; detectron2's ``inference_on_dataset``). Here each image
goes through the whole inference - padding and normalisation, the frozen CLIP trunk, the pixel
decoder, the masked-attention decoder, the two classifiers with the ensemble, and panoptic plus
semantic post-processing at the input size - with each stage timed (``torch.cuda.synchronize``
between stages on a GPU). The text classifier is computed once beforehand and cached, as the
official code does. Peak memory: the GPU's ``max_memory_allocated``, or on a CPU the process's
resident memory sampled every 2 ms minus what it held before (the weights).

    ovnb benchmark fcclip [--configs toy convnext-l rn50] [--images 3]

``convnext-l`` is the paper's architecture (ConvNeXt-L CLIP, 250 queries) with random weights at the
paper's test size (800 x 1216: an ADE20K-like 4:3 image with shortest edge 800, longest at most 1333);
the cost does not depend on the weights' values. ``rn50`` ... ``rn50x64``: the official model zoo's
ResNet-CLIP models at the same size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .benchmark_pnp_ovss import _PeakSampler

CONFIGS = {
    "toy": dict(clip="toy-clip-convnext", pretrained=True, image=(128, 128), classes=62),
    "convnext-l": dict(clip="clip-convnext-large-d-320", pretrained=False, image=(800, 1216), classes=150),
    # the model zoo's ResNet-CLIP models (attention-pool mask pooling), same decoder, same test size
    **{name: dict(clip=f"clip-{name}", pretrained=False, image=(800, 1216), classes=150)
       for name in ("rn50", "rn101", "rn50x4", "rn50x16", "rn50x64")},
}
DEFAULT_CONFIGS = ("toy", "convnext-l", "rn50")  # the others on request (RN50x64 alone is 420M parameters)
STAGES = ("backbone", "pixel decoder", "transformer decoder", "classifiers", "post-processing")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def stage_times(model, image: torch.Tensor, names, thing) -> dict[str, float]:
    """Seconds of each stage of one image's inference (batch 1), ``STAGES`` in order."""
    from ..methods import fcclip as fc

    device = model.logit_scale.device
    times = {}
    _sync(device)
    t = time.perf_counter()

    def lap(stage):
        nonlocal t
        _sync(device)
        now = time.perf_counter()
        times[stage] = now - t
        t = now

    x, size = model._pad(image[None].to(device))
    maps, dense = model.features(x)
    lap("backbone")
    pixel = model.generator.pixel_decoder(maps, return_dict=True)
    lap("pixel decoder")
    dec = model.generator.transformer_module(multi_scale_features=pixel.multi_scale_features,
                                             mask_features=pixel.mask_features, output_hidden_states=True)
    lap("transformer decoder")
    text, counts = model.classifier(names)
    in_logits = model.in_vocabulary_logits(pixel.mask_features, dec.intermediate_hidden_states[-1],
                                           dec.masks_queries_logits[-1], text, counts)
    out = fc.FCCLIPOutput(dec.masks_queries_logits[-1], in_logits, [], dense, size)
    log_probs = model.class_log_probs(out, names)
    lap("classifiers")
    masks = model.upsample_masks(out)
    fc.semantic_inference(log_probs, masks).max(1)
    fc.panoptic_inference(log_probs[0], masks[0], thing)
    lap("post-processing")
    return times


@dataclass
class Timing:
    config: str
    device: str
    images: int
    stages: dict[str, float] = field(default_factory=dict)  # mean seconds per image
    peak_mb: float = 0.0

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds


def measure(name: str, images: int = 3, device=None, warmup: int = 1) -> Timing:
    """FPS and per-stage time of ``name`` over ``images`` random images (after ``warmup`` untimed ones)."""
    from ..methods import fcclip as fc

    if name not in CONFIGS:
        raise ValueError(f"unknown fcclip benchmark config {name!r}; valid: {list(CONFIGS)}")
    spec = CONFIGS[name]
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = fc.build(clip=spec["clip"], pretrained=spec["pretrained"]).to(device).eval()
    names = [f"class {i}" for i in range(spec["classes"])]
    if name == "toy":
        from ..data.toy_world import vocabulary

        names = list(vocabulary().names)
    thing = [i % 2 == 0 for i in range(len(names))]
    g = torch.Generator().manual_seed(0)
    batch = [torch.randint(0, 256, (3, *spec["image"]), dtype=torch.uint8, generator=g) for _ in range(images + warmup)]
    model.text(names)  # the text classifier, cached before timing (official test_text_classifier)
    for image in batch[:warmup]:
        stage_times(model, image, names, thing)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    totals = dict.fromkeys(STAGES, 0.0)
    with _PeakSampler() as sampler:
        before = sampler.peak
        for image in batch[warmup:]:
            for stage, s in stage_times(model, image, names, thing).items():
                totals[stage] += s
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else sampler.peak - before) / 2 ** 20
    return Timing(name, str(device), images, {k: v / images for k, v in totals.items()}, peak)


def report(timings: list[Timing]) -> str:
    head = f"{'config':<11} {'device':<7} {'images':>6} {'FPS':>7}  " + "  ".join(f"{s:>19}" for s in STAGES) + \
        f"  {'peak MB':>8}"
    rows = []
    for t in timings:
        parts = "  ".join(f"{t.stages[s]:>9.3f}s ({100 * t.stages[s] / t.seconds:>4.1f}%)" for s in STAGES)
        rows.append(f"{t.config:<11} {t.device:<7} {t.images:>6} {t.fps:>7.3f}  {parts}  {t.peak_mb:>8.0f}")
    return "\n".join([head] + rows)
