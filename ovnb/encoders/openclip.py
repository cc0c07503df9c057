"""CLIP image and text towers built by open_clip (ViT and ConvNeXt), real or toy.

Dense features follow the papers' official code:

* ViT (Fusioner): last-layer patch tokens after ``ln_post``; ``projected=True`` also applies the CLIP
  projection ``proj`` to every token (1024 -> 768 for ViT-L/14), which puts them in the joint space.
  An input other than the pretraining size gets the position embedding resized (bicubic) to its
  patch grid (FC-CLIP's Table 9 runs CLIP ViTs at growing sizes).
* ConvNeXt (FC-CLIP): the outputs of ``trunk.stages[0..3]`` (strides 4/8/16/32; 192/384/768/1536
  channels for ConvNeXt-L); ``projected=True`` adds a fifth map, ``trunk.norm_pre`` ->
  ``trunk.head.norm`` -> ``head`` MLP applied at every location, i.e. per-pixel CLIP embeddings
  that FC-CLIP mask-pools for its out-of-vocabulary classifier.
* ResNet (OpenAI's ``ModifiedResNet``, SimBaseline's Tables 4 and 8 use it as region classifier
  only): the outputs of ``layer1..4`` (strides 4/8/16/32); its attention pooling is global, so
  there is no projected dense map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CLIP_MEAN, CLIP_STD, DenseFeatures, EncoderInfo, FrozenEncoder


class _positions_for:
    """Context: a ViT's position embedding resized (bicubic, like timm's ``resample_abs_pos_embed``) to
    the patch grid of an input of ``size`` other than the pretraining size; restored afterwards."""

    def __init__(self, visual, size):
        self.visual = visual
        gh, gw = size[0] // visual.patch_size[0], size[1] // visual.patch_size[1]
        self.original = visual.positional_embedding
        self.grid = (gh, gw)

    def __enter__(self):
        pos = self.original
        n = int(round((pos.shape[0] - 1) ** 0.5))
        if (n, n) != self.grid:
            grid = pos[1:].reshape(1, n, n, -1).permute(0, 3, 1, 2).float()
            grid = F.interpolate(grid, size=self.grid, mode="bicubic", align_corners=False)
            new = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(-1, pos.shape[-1]).to(pos.dtype)])
            self.visual.positional_embedding = torch.nn.Parameter(new, requires_grad=False)
            if hasattr(self.visual, "grid_size"):
                self._grid_size = self.visual.grid_size
                self.visual.grid_size = self.grid
        return self

    def __exit__(self, *exc):
        self.visual.positional_embedding = self.original
        if hasattr(self, "_grid_size"):
            self.visual.grid_size = self._grid_size
        return False


class OpenCLIPEncoder(FrozenEncoder):
    def __init__(self, info: EncoderInfo, arch: str, pretrained: str | None, tokenizer=None):
        super().__init__(info)
        import open_clip

        self.arch = arch
        if info.family == "toy":  # weights are loaded right after; open_clip's "no weights" warning is noise
            import logging

            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)
            try:
                self.model = open_clip.create_model(arch, pretrained=pretrained)
            finally:
                root.setLevel(level)
        else:
            self.model = open_clip.create_model(arch, pretrained=pretrained)
        self.tokenizer = tokenizer or open_clip.get_tokenizer(arch)
        visual = self.model.visual
        self.is_vit = hasattr(visual, "transformer") and hasattr(visual, "conv1")
        self.is_resnet = hasattr(visual, "attnpool")
        if self.is_vit:
            visual.output_tokens = True
        size = visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else size
        self.mean = tuple(getattr(visual, "image_mean", None) or CLIP_MEAN)
        self.std = tuple(getattr(visual, "image_std", None) or CLIP_STD)
        self.embed_dim = self.model.text_projection.shape[-1] if torch.is_tensor(self.model.text_projection) \
            else self.model.text_projection.out_features
        self.freeze()

    # -- image -------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Channels of the last dense level before projection (ViT width / last ConvNeXt stage)."""
        if self.is_vit:
            return self.model.visual.transformer.width
        if self.is_resnet:
            return self.model.visual.layer4[-1].conv3.out_channels
        return self.model.visual.trunk.num_features

    def dense(self, images: torch.Tensor, projected: bool = True, preprocessed: bool = False,
              size: int | None = None) -> DenseFeatures:
        x = images if preprocessed else self.preprocess(images, size)
        visual = self.model.visual
        if self.is_vit:
            with _positions_for(visual, x.shape[-2:]):
                _, tokens = visual(x)  # tokens after ln_post, [B, N, width]
            if projected and visual.proj is not None:
                tokens = tokens @ visual.proj
            h = x.shape[-2] // visual.patch_size[0]
            w = x.shape[-1] // visual.patch_size[1]
            return DenseFeatures([tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)], [visual.patch_size[0]])
        if self.is_resnet:
            if projected:
                raise NotImplementedError(f"{self.info.name}: a CLIP ResNet pools globally (attention pooling); "
                                          "it has no projected dense features - use projected=False or embed_image")
            y = visual.stem(x.to(visual.conv1.weight.dtype))
            maps = []
            for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
                y = layer(y)
                maps.append(y)
            return DenseFeatures(maps, [4, 8, 16, 32])
        trunk = visual.trunk
        y = trunk.stem(x)
        maps = []
        for stage in trunk.stages:
            y = stage(y)
            maps.append(y)
        strides = [4, 8, 16, 32]
        if projected:
            z = trunk.norm_pre(y)
            z = trunk.head.norm(z)
            z = visual.head(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            maps.append(z)
            strides.append(32)
        return DenseFeatures(maps, strides)

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, projected (not normalised) features of preprocessed images."""
        out = self.model.visual(x)
        return out[0] if isinstance(out, tuple) else out

    def embed_image(self, images: torch.Tensor, preprocessed: bool = False) -> torch.Tensor:
        x = images if preprocessed else self.preprocess(images)
        return F.normalize(self.image_features(x).float(), dim=-1)

    # -- text --------------------------------------------------------------------------------
    def encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(sentences).to(self.device)
        return encode_text(self.model, tokens)

    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())


def pooled_positions(model, ids: torch.Tensor) -> torch.Tensor | None:
    """Where open_clip's text tower reads each sentence's feature (``text_global_pool``): the end
    token's position for ``argmax`` / ``eos`` pooling; None for a pooling that reads elsewhere."""
    if model.text_pool_type == "argmax":
        return ids.argmax(dim=-1)
    if model.text_pool_type == "eos":
        return (ids == model.text_eos_id).int().argmax(dim=-1)
    return None


def encode_text(model, ids: torch.Tensor, embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """open_clip's ``CLIP.encode_text`` (projected, not normalised) of token ids ``ids`` ``[N, 77]``, or of
    their token embeddings ``embeddings`` when given (learned prompts), reading only the positions up to
    the longest sentence's end token. CLIP pads every sentence to its full context (77 tokens) and its
    text tower is causal: a position attends to earlier ones only, so the end token's feature does not
    depend on the padding after it. Class-name prompts end by token 10 or so, which makes this several
    times cheaper than the full context, with the same features (tested against ``encode_text``). Any
    other tower (no causal mask, or pooling that reads the last position) runs on the full context."""
    from open_clip.transformer import text_global_pool

    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(ids).to(cast) if embeddings is None else embeddings.to(cast)
    causal = getattr(model, "attn_mask", None)
    positions = pooled_positions(model, ids)
    length = int(positions.max()) + 1 if causal is not None and positions is not None and len(ids) else ids.shape[1]
    mask = causal[:length, :length] if causal is not None else None
    x = model.transformer(x[:, :length] + model.positional_embedding[:length].to(cast), attn_mask=mask)
    x = text_global_pool(model.ln_final(x), ids[:, :length], model.text_pool_type,
                         eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is None:
        return x
    return model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection

