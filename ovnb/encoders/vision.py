"""Vision-only self-supervised ViTs built by timm: DINO ViT-B/16 and MoCo v3 ViT-B/16.

Dense features are the last block's patch tokens after the final norm (``forward_features``), CLS
dropped: 14 x 14 tokens of 768 channels at 224 x 224 (Fusioner Table 1, models C and D; the paper
does not say which layer - last-layer patch tokens are the natural choice, consistent with its CLIP
code). They have no text tower and no joint space: ``projected`` is ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import IMAGENET_MEAN, IMAGENET_STD, DenseFeatures, EncoderInfo, FrozenEncoder

MOCOV3_VIT_B_URL = "https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar"


def _load_mocov3(model) -> None:
    """MoCo v3 releases a training checkpoint; keep its base encoder and map it onto timm's ViT."""
    state = torch.hub.load_state_dict_from_url(MOCOV3_VIT_B_URL, map_location="cpu", progress=True)["state_dict"]
    prefix = "module.base_encoder."
    encoder = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix) and not k[len(prefix):].startswith("head")}
    missing, unexpected = model.load_state_dict(encoder, strict=False)
    missing = [k for k in missing if not k.startswith("head")]
    if missing or unexpected:
        raise RuntimeError(f"MoCo v3 checkpoint does not match timm's ViT-B/16: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")


class TimmViTEncoder(FrozenEncoder):
    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, info: EncoderInfo, timm_name: str, pretrained: bool, loader=None):
        super().__init__(info)
        import timm

        self.model = timm.create_model(timm_name, pretrained=pretrained and loader is None, num_classes=0)
        if pretrained and loader is not None:
            loader(self.model)
        self.width = self.model.num_features
        self.patch = self.model.patch_embed.patch_size[0]
        self.image_size = self.model.patch_embed.img_size[0]
        self.freeze()

    def dense(self, images: torch.Tensor, projected: bool = False, preprocessed: bool = False,
              size: int | None = None) -> DenseFeatures:
        x = images if preprocessed else self.preprocess(images, size)
        tokens = self.model.forward_features(x)[:, self.model.num_prefix_tokens:]
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        return DenseFeatures([tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)], [self.patch])

    def embed_image(self, images: torch.Tensor, preprocessed: bool = False) -> torch.Tensor:
        x = images if preprocessed else self.preprocess(images)
        return F.normalize(self.model(x), dim=-1)
