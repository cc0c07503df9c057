"""MaskCLIP (Zhou et al., "Extract Free Dense Labels from CLIP", ECCV 2022), training-free: the
baseline of PnP-OVSS's Table 3 ("no finetuning" group), here without its prompt denoising and key
smoothing.

CLIP's last attention layer pools the image into its class token; its patch tokens do not carry
local meaning. MaskCLIP keeps everything but replaces that layer's attention by its **value path**
(each patch's value projection through the output projection, no query-key mixing), so each patch
token stays local; after ``ln_post`` and the projection, each patch is compared by cosine with the
class names' text embeddings, and the map is upsampled bilinearly to the image.

Only open_clip ViTs whose last block uses ``torch.nn.MultiheadAttention`` (every CLIP ViT of the
registry, the toy ones included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .contract import check_inputs


class _ValuePath:
    """A forward hook on ``nn.MultiheadAttention`` that returns the value path instead of attention."""

    def __init__(self, attn: torch.nn.MultiheadAttention):
        self.handle = attn.register_forward_hook(self)

    def __call__(self, module, args, output):
        value_input = args[2] if len(args) > 2 else args[0]
        e = module.embed_dim
        v = F.linear(value_input, module.in_proj_weight[2 * e:], module.in_proj_bias[2 * e:])
        return (module.out_proj(v), None)


class MaskCLIP(torch.nn.Module):
    """``segment(images, class_names, candidates=None)`` -> ``[B, K, H, W]`` patch-text cosine
    similarities; classes outside ``candidates[i]`` get -2 (below any cosine)."""

    def __init__(self, clip, templates: str = "photo"):
        super().__init__()
        if not getattr(clip, "is_vit", False):
            raise ValueError(f"MaskCLIP needs a CLIP ViT, got {clip.info.name}")
        self.clip, self.templates = clip, templates
        block = clip.model.visual.transformer.resblocks[-1]
        if not isinstance(block.attn, torch.nn.MultiheadAttention):
            raise ValueError("MaskCLIP here needs the last block's attention to be torch.nn.MultiheadAttention")

    @torch.no_grad()
    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, D, h, w]`` L2-normalised patch embeddings with the last layer's value path."""
        hook = _ValuePath(self.clip.model.visual.transformer.resblocks[-1].attn)
        try:
            feats = self.clip.dense(images, projected=True).last
        finally:
            hook.handle.remove()
        return F.normalize(feats.float(), dim=1)

    @torch.no_grad()
    def segment(self, images: torch.Tensor, class_names, candidates=None) -> torch.Tensor:
        images, class_names = check_inputs(images, class_names)
        text = self.clip.embed_text(list(class_names), self.templates).float().to(self.clip.device)
        sim = torch.einsum("bdhw,kd->bkhw", self.patch_features(images), text)
        sim = F.interpolate(sim, size=images.shape[-2:], mode="bilinear", align_corners=False).cpu()
        if candidates is not None:
            keep = torch.zeros(len(candidates), len(class_names), 1, 1, dtype=torch.bool)
            for i, cands in enumerate(candidates):
                keep[i, [class_names.index(c) if isinstance(c, str) else int(c) for c in cands]] = True
            sim = torch.where(keep, sim, torch.full_like(sim, -2.0))
        return sim


def build(clip: str = "clip-vit-b-16", pretrained: bool = False, device=None, templates: str = "photo") -> MaskCLIP:
    """``ovnb.methods.build("maskclip", clip=NAME, pretrained=...)``."""
    from .. import encoders

    return MaskCLIP(encoders.build(clip, pretrained=pretrained, device=device), templates)
