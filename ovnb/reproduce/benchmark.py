"""How much the frozen-feature cache saves when training Fusioner: per-step (= per-epoch) time with
and without it, for the toy models and the CLIP ViT-L/14 architecture.

* **uncached** - what the official code does every step: the frozen image encoder runs on the batch,
  and the class embeddings are recomputed (every prompt template through the text tower);
* **cached** - the frozen visual tokens come from ``ovnb.cache`` and the class embeddings from the
  text encoder's per-name cache: only the trainable head runs forward and backward.

An epoch has the same number of steps either way, so the per-epoch ratio is the per-step ratio; with
the cache the first epoch still pays the uncached price once (``epochs`` sets how many to average).
Random weights are enough: the cost of a forward pass does not depend on the values.

    ovnb benchmark fusioner-cache [--configs toy clip-l] [--steps 3] [--batch 4]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .. import cache as feature_cache
from ..methods import fusioner

CONFIGS = {
    "toy": dict(visual="toy-clip-vit", text="toy-clip-vit", config=fusioner.FusionerConfig.toy(), pretrained=True),
    "clip-l": dict(visual="clip-vit-l-14", text="clip-vit-l-14", config=fusioner.FusionerConfig(), pretrained=False),
}


@dataclass
class Timing:
    config: str
    device: str
    batch: int
    uncached_s: float
    cached_s: float
    epochs: int

    @property
    def step_ratio(self) -> float:
        return self.uncached_s / self.cached_s

    @property
    def training_ratio(self) -> float:
        """Whole-training ratio over ``epochs`` epochs (the first cached epoch runs uncached)."""
        return self.epochs * self.uncached_s / (self.uncached_s + (self.epochs - 1) * self.cached_s)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, steps: int = 3, batch: int = 4, device=None, epochs: int = 510, seed: int = 0) -> Timing:
    from .. import env

    device = torch.device(device or env.device())
    spec = CONFIGS[name]
    torch.manual_seed(seed)
    model = fusioner.build(spec["visual"], spec["text"], pretrained=spec["pretrained"], config=spec["config"],
                           device=device)
    size = model.image_size
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    names = [f"class {k}" if name != "toy" else n for k, n in enumerate(["red star", "blue ring", "sky", "grass"] * 8)][:batch]
    target = torch.randint(0, 2, (batch, 1, size, size), generator=g).to(device)
    opt = torch.optim.AdamW(model.head.parameters(), lr=1e-4)
    cache = feature_cache.visual_cache(model, None)

    def step(cached: bool):
        if cached:
            visual = cache(images)
        else:
            model.text_encoder.clear_text_cache()
            visual = model.visual_tokens(images)
        text = model.text_embeddings(names)[:, None, :].to(device)
        logits = model.head(visual.tokens.to(device), visual.grid, text, (size, size))
        loss = fusioner.bce_loss(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timings = {}
    for cached in (False, True):
        step(cached)  # warm-up (fills the cache for the cached run)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step(cached)
        _sync(device)
        timings[cached] = (time.perf_counter() - t0) / steps
    return Timing(name, str(device), batch, timings[False], timings[True], epochs)


def report(timings: list[Timing]) -> str:
    lines = [f"{'config':8} {'device':6} {'batch':>5} {'uncached s/step':>16} {'cached s/step':>14} "
             f"{'epoch ratio':>12} {'510-epoch ratio':>16}"]
    for t in timings:
        lines.append(f"{t.config:8} {t.device:6} {t.batch:5d} {t.uncached_s:16.3f} {t.cached_s:14.3f} "
                     f"{t.step_ratio:11.2f}x {t.training_ratio:15.2f}x")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The similarity at the output size: interpolate-then-cosine vs ``fusioner.upsampled_cosine``

COSINE_SHAPES = {
    # name: (batch, channels, decoder output size, output size, classes)
    "toy": (8, 128, 32, 64, 1),  # the toy decoder (32^2) to the 64-px input, one query per episode
    "paper": (4, 512, 112, 224, 1),  # the paper's decoder (ViT-L/14: 16^2 -> 112^2) to 224 px
}


def measure_cosine(name: str, steps: int = 5, device=None, seed: int = 0) -> dict:
    """Seconds per forward + backward of Eq. (4)'s similarity, both ways, measured side by side."""
    import torch.nn.functional as F

    from .. import env

    device = torch.device(device or env.device())
    b, c, low, high, k = COSINE_SHAPES[name]
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(b, c, low, low, generator=g).to(device).requires_grad_()
    text = torch.randn(b, k, c, generator=g).to(device)

    def direct():
        up = F.interpolate(pixels, size=(high, high), mode="bilinear", align_corners=False)
        return torch.einsum("bkc,bchw->bkhw", F.normalize(text, dim=-1), F.normalize(up, dim=1))

    def fast():
        return fusioner.upsampled_cosine(pixels, text, (high, high))

    out = {"shape": name, "device": str(device)}
    for label, fn in (("interpolate + cosine", direct), ("upsampled_cosine", fast)):
        fn().sum().backward()  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            pixels.grad = None
            fn().sum().backward()
        _sync(device)
        out[label] = (time.perf_counter() - t0) / steps
    out["ratio"] = out["interpolate + cosine"] / out["upsampled_cosine"]
    return out


def report_cosine(rows: list[dict]) -> str:
    lines = [f"{'shape':6} {'device':6} {'interpolate + cosine s':>23} {'upsampled_cosine s':>19} {'ratio':>7}"]
    for r in rows:
        lines.append(f"{r['shape']:6} {r['device']:6} {r['interpolate + cosine']:23.4f} {r['upsampled_cosine']:19.4f} "
                     f"{r['ratio']:6.2f}x")
    return "\n".join(lines)
