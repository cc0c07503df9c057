"""A cache of frozen-encoder outputs.

The frozen encoders never change, so a method that trains on top of them (Fusioner, SimBaseline's
CLIP classifier, FC-CLIP's out-of-vocabulary branch) can read their outputs from here instead of
recomputing them every epoch.

**Keys.** A namespace fixes everything the features depend on besides the pixels: encoder name,
weights (pretrained or a random-init seed), input size, normalisation and the feature kind. Inside
a namespace an entry is keyed by the SHA-1 of the image's bytes (dtype, shape and values). So an
augmentation that changes pixels (colour jitter, crops, flips) produces a new key and misses the
cache, instead of silently reusing the features of the unaugmented image; an identical image hits
whatever its dataset index. Training with such augmentations therefore gains nothing from the cache:
set ``enabled=False`` (or ``FeatureCache(None)``) to bypass it and skip the hashing.

**Storage.** Entries live in memory; ``flush()`` appends the new ones to a shard file
``<root>/<namespace>/shard-<time>-<pid>.pt`` (written atomically; processes sharing a root never
clash), and a later cache with the same root
and namespace loads every shard. ``root=None`` keeps the cache in memory only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch


def image_key(image: torch.Tensor) -> str:
    """SHA-1 of one image's dtype, shape and bytes."""
    t = image.detach().cpu().contiguous()
    h = hashlib.sha1(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def namespace(**parts) -> str:
    """A readable, filesystem-safe namespace from its parts (sorted), with a short hash."""
    text = json.dumps(parts, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    head = "-".join(str(parts[k]) for k in sorted(parts) if k in ("encoder", "kind"))
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in head)
    return f"{safe}-{digest}" if safe else digest


class FeatureCache:
    """Per-image frozen features of one namespace.

    ``get(images, compute)``: ``images`` is a ``[B, ...]`` batch; ``compute(subset) -> [b, ...]`` runs
    the frozen encoder on the images that miss. Returns the stacked features of the whole batch
    (on the device ``compute`` returned them on), in batch order.
    """

    def __init__(self, root: str | Path | None, space: str, enabled: bool = True, dtype=torch.float16):
        self.root = Path(root) / space if root is not None else None
        self.space = space
        self.enabled = enabled
        self.dtype = dtype
        self.entries: dict[str, torch.Tensor] = {}
        self.new: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0
        self.loaded: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Load the shards on disk not loaded yet (written by another process since)."""
        if self.root is None or not self.enabled or not self.root.is_dir():
            return
        for shard in sorted(self.root.glob("shard-*.pt")):
            if shard.name not in self.loaded:
                self.entries.update(torch.load(shard, map_location="cpu", weights_only=True))
                self.loaded.add(shard.name)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, images: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if not self.enabled:
            self.misses += len(images)
            return compute(images)
        keys = [image_key(img) for img in images]
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        device = None
        if missing:
            out = compute(images[missing])
            device = out.device
            for i, feat in zip(missing, out):
                stored = feat.detach().to("cpu", self.dtype).clone()
                self.entries[keys[i]] = stored
                self.new[keys[i]] = stored
        # always the stored (rounded) values: a cold and a warm cache give the same features, so a
        # resumed run reading from disk sees exactly what the uninterrupted run saw
        out = torch.stack([self.entries[k] for k in keys]).float()
        return out.to(device) if device is not None else out

    def flush(self) -> Path | None:
        """Write the entries added since the last flush to a new shard; return its path."""
        if self.root is None or not self.new:
            self.new = {}
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        # named by time and process: several training processes may share one cache folder
        path = self.root / f"shard-{time.time_ns():020d}-{os.getpid()}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(self.new, tmp)
        os.replace(tmp, path)
        self.loaded.add(path.name)
        self.new = {}
        return path

    def stats(self) -> dict:
        return {"namespace": self.space, "entries": len(self.entries), "hits": self.hits, "misses": self.misses}


def weights_fingerprint(module: torch.nn.Module) -> str:
    """SHA-1 over the first and last parameter tensors: tells apart two random initialisations or
    two checkpoints of one architecture without hashing hundreds of megabytes."""
    params = list(module.parameters())
    h = hashlib.sha1()
    for p in (params[0], params[-1]) if params else ():
        h.update(image_key(p.detach().float()).encode())
    return h.hexdigest()[:16]


def visual_cache(model, root: str | Path | None, enabled: bool = True) -> "VisualTokenCache":
    """The cache of a Fusioner-style model's frozen visual tokens (see ``VisualTokenCache``)."""
    return VisualTokenCache(model, root, enabled)


class VisualTokenCache:
    """Frozen visual tokens of ``model.visual_tokens`` through a ``FeatureCache``.

    The namespace holds the visual encoder's registry name, a fingerprint of its weights, the input
    size and the normalisation, so two models that differ in any of them never share entries.
    """

    def __init__(self, model, root: str | Path | None, enabled: bool = True):
        self.model = model
        space = namespace(encoder=model.visual_name, weights=weights_fingerprint(model.visual_encoder),
                          size=model.image_size, normalisation=model.normalisation(), kind="visual-tokens")
        self.cache = FeatureCache(root, space, enabled)
        self.grid = None

    def __call__(self, images: torch.Tensor):
        from .methods.fusioner import VisualTokens

        def compute(batch):
            out = self.model.visual_tokens(batch)
            self.grid = out.grid
            return out.tokens

        tokens = self.cache.get(images, compute).to(self.model.visual_encoder.device)
        if self.grid is None:  # every entry came from disk: recompute the grid from one image
            self.grid = self.model.visual_tokens(images[:1]).grid
        return VisualTokens(tokens, self.grid)

    def flush(self):
        return self.cache.flush()

    def refresh(self) -> None:
        self.cache.refresh()

    def stats(self) -> dict:
        return self.cache.stats()
