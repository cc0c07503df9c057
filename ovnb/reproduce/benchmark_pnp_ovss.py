"""PnP-OVSS's speed and memory: the fast way against the official way, on the same inputs.

* **official** - what the official loop does: every parameter differentiable, each of the 4 passes
  a forward and a backward through the whole model (vision encoder included), the attention maps and
  gradients of every cross-attention layer kept (``PnPConfig(mode="official")``).
* **fast** - the book's default: the frozen model runs without an autograd graph except from the
  chosen layer's attention probabilities up (``_LeafProbe``); one gradient, of that layer.

Both run the whole method (4 passes, threshold, upsampling, blur; the CRF is left out: it is the
same CPU code in both ways) on the same random images and candidate classes; the benchmark checks
that the label maps are identical and prints the time and peak-memory ratios. Each way runs in a
fresh process; peak memory is the process's resident memory sampled every 2 ms while the method
runs, minus what it held before (the weights). Random weights are enough: the cost of a forward and
a backward does not depend on the values.

    ovnb benchmark pnp-ovss [--configs toy blip-l] [--batch 2] [--steps 1]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass

import torch

CONFIGS = {
    "toy": dict(vlm="toy-blip", pretrained=True, image=(64, 64), config={}),
    "blip-l": dict(vlm="blip-itm-large-flickr", pretrained=False, image=(375, 500), config=dict(image_size=336)),
}
NAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow"]


def _rss() -> int:
    """Resident memory of this process in bytes (Linux ``/proc``; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakSampler:
    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        self.peak = _rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def inputs(name: str, batch: int, seed: int = 0):
    spec = CONFIGS[name]
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, *spec["image"]), dtype=torch.uint8, generator=g)
    if name == "toy":
        from ..data.toy_world import vocabulary

        names = list(vocabulary().names[:10])
    else:
        names = list(NAMES)
    cands = [[int(c) for c in torch.randperm(len(names), generator=g)[:3]] for _ in range(batch)]
    return images, names, cands


def _child(name: str, mode: str, batch: int, steps: int, queue) -> None:
    from ..methods import pnp_ovss

    torch.manual_seed(0)
    spec = CONFIGS[name]
    model = pnp_ovss.build(spec["vlm"], pretrained=spec["pretrained"], mode=mode, crf=False,
                           **{**spec["config"], "background": "never"})
    images, names, cands = inputs(name, batch)
    import gc

    gc.collect()
    with _PeakSampler() as sampler:
        before = sampler.peak
        t0 = time.perf_counter()
        labels = model.segment(images, names, cands).argmax(1)
        first = time.perf_counter() - t0
    times = [first]
    for _ in range(steps - 1):
        t0 = time.perf_counter()
        model.segment(images, names, cands)
        times.append(time.perf_counter() - t0)
    queue.put(dict(seconds=min(times), peak_bytes=sampler.peak - before, labels=labels))


@dataclass
class Timing:
    config: str
    batch: int
    fast_s: float
    official_s: float
    fast_peak_mb: float
    official_peak_mb: float
    identical: bool

    @property
    def time_ratio(self) -> float:
        return self.official_s / self.fast_s

    @property
    def memory_ratio(self) -> float:
        return self.official_peak_mb / max(self.fast_peak_mb, 1e-9)


def _run(name, mode, batch, steps):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, mode, batch, steps, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def measure(name: str, batch: int = 2, steps: int = 1) -> Timing:
    """Both ways of ``name``'s model, each in its own process (see the module docstring)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown pnp-ovss benchmark config {name!r}; valid: {list(CONFIGS)}")
    fast = _run(name, "fast", batch, steps)
    official = _run(name, "official", batch, steps)
    mb = 1024 * 1024
    return Timing(name, batch, fast["seconds"], official["seconds"], fast["peak_bytes"] / mb,
                  official["peak_bytes"] / mb, bool(torch.equal(fast["labels"], official["labels"])))


def report(timings: list[Timing]) -> str:
    head = (f"{'config':<7} {'batch':>5} {'fast s':>8} {'official s':>11} {'time':>6} "
            f"{'fast MB':>8} {'official MB':>12} {'memory':>7}  masks")
    rows = [f"{t.config:<7} {t.batch:>5} {t.fast_s:>8.2f} {t.official_s:>11.2f} {t.time_ratio:>5.1f}x "
            f"{t.fast_peak_mb:>8.0f} {t.official_peak_mb:>12.0f} {t.memory_ratio:>6.1f}x  "
            f"{'identical' if t.identical else 'DIFFER'}" for t in timings]
    return "\n".join([head] + rows)
