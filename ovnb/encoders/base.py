"""The interface every frozen encoder of the registry offers.

* ``preprocess(images)``: uint8 ``[B, 3, H, W]`` (or float in [0, 1]) -> resized, normalised input.
* ``dense(images)``: ``DenseFeatures`` - per-location features with their grid (ViT patch tokens,
  or ConvNeXt stage maps), before or after the projection into the joint space.
* ``embed_image(images)``: pooled, L2-normalised image embeddings ``[B, E]``.
* ``embed_text(class_names, templates)``: one L2-normalised embedding per class name ``[K, E]``:
  every template is filled with the name, each sentence embedded and normalised, the average
  re-normalised. Results are cached per (name, template set).

An encoder that lacks a modality (DINO has no text tower, BERT no image tower) says so with a clear
error. Encoders are frozen: ``requires_grad`` is off and they stay in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import templates as template_sets

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DenseFeatures:
    """Dense features of a batch.

    ``maps``: one ``[B, C, h, w]`` tensor per level (a ViT has one level; a ConvNeXt four stages).
    ``tokens()`` flattens a level into ``[B, h*w, C]`` (row-major), the layout of ViT patch tokens.
    """

    maps: list[torch.Tensor]
    strides: list[int] = field(default_factory=list)

    @property
    def last(self) -> torch.Tensor:
        return self.maps[-1]

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.maps[-1].shape[-2:])

    def tokens(self, level: int = -1) -> torch.Tensor:
        return self.maps[level].flatten(2).transpose(1, 2)


@dataclass(frozen=True)
class EncoderInfo:
    """What a registry entry is: its public checkpoint and the facts a method needs to plug it in."""

    name: str
    family: str  # open_clip | timm | transformers | toy
    modalities: tuple[str, ...]  # "image", "text", "itm"
    checkpoint: str  # hub id / open_clip tag / URL, or the embedded toy checkpoint
    image_size: int | None
    description: str


class FrozenEncoder(nn.Module):
    info: EncoderInfo
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    image_size: int | None = None
    resize_mode: str = "bicubic"

    def __init__(self, info: EncoderInfo):
        super().__init__()
        self.info = info
        self.image_size = info.image_size
        self._text_cache: dict[tuple, torch.Tensor] = {}

    # -- freezing ----------------------------------------------------------------------------
    def freeze(self) -> "FrozenEncoder":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True):  # frozen encoders never leave eval mode
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- images ------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor, size: int | tuple[int, int] | None = None) -> torch.Tensor:
        """uint8 (or [0, 1] float) ``[B, 3, H, W]`` -> normalised float at ``size`` (default: the model's)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
        x = images.to(self.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        size = size or self.image_size
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode=self.resize_mode, align_corners=False,
                                  antialias=self.resize_mode in ("bilinear", "bicubic"))
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _missing(self, what: str):
        raise NotImplementedError(f"encoder {self.info.name!r} has no {what} (modalities: "
                                  f"{', '.join(self.info.modalities)})")

    def dense(self, images: torch.Tensor, projected: bool = True) -> DenseFeatures:
        self._missing("image tower")

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        self._missing("image tower")

    # -- text --------------------------------------------------------------------------------
    def encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        """One embedding per sentence (not normalised), ``[T, E]``."""
        self._missing("text tower")

    @torch.no_grad()
    def embed_text(self, class_names: list[str], templates="photo", batch_size: int = 256) -> torch.Tensor:
        """Template-averaged, L2-normalised embeddings of ``class_names`` (cached)."""
        if isinstance(class_names, str):
            raise TypeError("class_names must be a list of names, not one string")
        temps = template_sets.get(templates)
        missing = [n for n in dict.fromkeys(class_names) if (temps, n) not in self._text_cache]
        if missing:
            sentences = [t.format(n) for n in missing for t in temps]
            chunks = [self.encode_sentences(sentences[i:i + batch_size]) for i in range(0, len(sentences), batch_size)]
            emb = F.normalize(torch.cat(chunks).float(), dim=-1).view(len(missing), len(temps), -1)
            emb = F.normalize(emb.mean(1), dim=-1)
            for name, e in zip(missing, emb):
                self._text_cache[(temps, name)] = e
        return torch.stack([self._text_cache[(temps, n)] for n in class_names])

    def clear_text_cache(self) -> None:
        """Forget the cached class-name embeddings (while a tower is being trained, or to time encoding)."""
        self._text_cache.clear()

    def extra_repr(self) -> str:
        return f"name={self.info.name!r}, checkpoint={self.info.checkpoint!r}"
