"""Fusioner (Ma et al., BMVC 2022): frozen visual tokens and frozen class-name embeddings, fused
early by a transformer, decoded to pixels, compared by cosine similarity.

The pipeline of Sec. 3 (Fig. 1), with the settings of the official code where the paper is silent:

1. **Visual tokens** ``V = Φ_v(I) ∈ R^{hw × d_v}`` (Eq. 1): the frozen encoder's last-layer patch
   tokens; for CLIP after ``ln_post`` and the projection ``proj``, then L2-normalised.
2. **Text embeddings** ``T = Φ_t(W) ∈ R^{|W| × d_w}`` (Eq. 2): each class name in every prompt
   template (the paper's 32), embedded, averaged, L2-normalised.
3. **Input projections**: visual ``LN → Linear(d_v, D) → LN``; text ``LN → Linear(d_w, D)``, plus one
   learned type embedding added to every text token.
4. **Cross-modality fusion** (Eq. 3): a pre-norm transformer (12 layers, 8 heads, D = 512, MLP 4D,
   GELU) over the concatenated sequence ``[V ; T]``, a final LayerNorm, then two output projections
   (patches, classes), as in Segmenter.
5. **Visual decoder**: ``k`` conv3×3 layers (InstanceNorm, ReLU), the first ``k - 1`` each followed by
   ×2 bilinear upsampling (k = 4 for a ViT), a 1×1 conv, and a resize to the input resolution.
6. **Head** (Eq. 4): cosine similarity between every pixel and every fused class embedding, divided by
   the temperature τ = 0.07; trained with per-class sigmoid + binary cross-entropy (pixels 255 ignored).

Configurations of the same module give the paper's baselines and ablations:

* ``fusion="late"`` - Table 1's late-fusion (LSeg-like) baseline: each modality goes through its own
  stack of ``late_layers`` (6) MLP layers and the two meet only at the similarity. The paper gives no
  more detail and no code exists; our MLP layer is pre-norm and residual, ``x + GELU(Linear(LN(x)))``.
* ``fusion="none"`` - Table 4, rows B2/B3: no fusion module and no input projections; frozen tokens
  go straight to the decoder (whose last 1×1 conv maps to the text width), text embeddings are used
  as they are.
* ``decoder=False`` - Table 4, rows B1/B3: the (fused) patch tokens are upsampled bilinearly to the
  input resolution instead of decoded. B3 (no fusion, no decoder) has no trainable parameter at all
  and needs a visual and a text encoder that share a space (CLIP-L with CLIP-L).

With CLIP ViT-L/14 on both sides the trainable parameters are 39.1 M (fusion) + 9.7 M (decoder)
= 48.8 M, as in the official architecture (``tests/test_fusioner.py`` checks it in closed form).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

# Normalisation statistics of the official code's ``A.Normalize`` (dataset statistics, not CLIP's;
# the std is about half of CLIP's, so the frozen encoder sees roughly twice the input range).
OFFICIAL_NORMALISATION = {
    "pascal": ((0.4554, 0.4298, 0.3955), (0.1181, 0.1189, 0.1338)),
    "coco": ((0.4650, 0.4357, 0.3973), (0.1152, 0.1153, 0.1352)),
}
FUSIONS = ("early", "late", "none")


@dataclass
class FusionerConfig:
    """Every knob of Fusioner. Defaults are the paper's (Sec. 4.1) and the official code's.

    ``normalisation``: ``"encoder"`` (the frozen encoder's own statistics - the paper names no other,
    so this is our paper-protocol default) or ``"official-pascal"`` / ``"official-coco"`` (the
    dataset statistics of the official code). ``size`` names a scaled-down fusion module for the
    toy world; ``"paper"`` is the paper's.
    """

    fusion: str = "early"  # early | late | none
    decoder: bool = True
    width: int = 512
    layers: int = 12
    heads: int = 8
    mlp_ratio: float = 4.0
    late_layers: int = 6
    decoder_width: int = 512
    decoder_convs: int = 4  # k in Sec. 4.1: 4 for a ViT backbone (5 for ResNet)
    temperature: float = 0.07
    templates: str = "fusioner"
    normalisation: str = "encoder"
    image_size: int | None = None  # None: the visual encoder's own (224 for CLIP ViT-L/14)
    size: str = "paper"

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.decoder_convs < 1:
            raise ValueError(f"decoder_convs must be >= 1, got {self.decoder_convs}")
        valid = ("encoder",) + tuple(f"official-{k}" for k in OFFICIAL_NORMALISATION)
        if self.normalisation not in valid:
            raise ValueError(f"normalisation must be one of {valid}, got {self.normalisation!r}")

    @classmethod
    def toy(cls, **overrides) -> "FusionerConfig":
        """The fusion module scaled to the toy world (8×8 visual tokens of 128-d at 64 px): 4 layers of
        width 128 with 4 heads; a 32-channel decoder of 3 convs (8 → 32 px), which ends at half the
        input resolution like the paper's (128 of 224) before the final resize. Everything else is
        the paper's."""
        base = cls(width=128, layers=4, heads=4, decoder_width=32, decoder_convs=3, size="toy")
        return replace(base, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Building blocks


class Attention(nn.Module):
    """Multi-head self-attention; ``keep_attention`` stores the last attention map for figures."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.keep_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if self.keep_attention:
            attn = (q @ k.transpose(-2, -1) / math.sqrt(C // self.heads)).softmax(-1)
            self.attention = attn.detach()
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)); x + MLP(LN(x)) (GELU, no dropout)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ResidualMLP(nn.Module):
    """One late-fusion MLP layer: ``x + GELU(Linear(LN(x)))``."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.fc(self.norm(x)))


def mlp_stack(width: int, layers: int) -> nn.Sequential:
    """``layers`` residual MLP layers (the late-fusion branch of Table 1). A plain stack of six
    Linear + GELU layers barely trains from a small initialisation (the signal shrinks layer by
    layer), so each layer is pre-normed and residual; the paper gives no more detail."""
    return nn.Sequential(*(ResidualMLP(width) for _ in range(layers)))


class VisualDecoder(nn.Module):
    """``convs`` × [conv3×3 → InstanceNorm → ReLU], ×2 bilinear upsampling after all but the last,
    then a 1×1 conv to ``out_channels`` (official ``model/decoder.py``: 16² → 128² for ViT-L/14)."""

    def __init__(self, in_channels: int, width: int, out_channels: int, convs: int = 4):
        super().__init__()
        layers = []
        for i in range(convs):
            layers.append(nn.Sequential(nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1),
                                        nn.InstanceNorm2d(width), nn.ReLU(inplace=True)))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(x)


def interpolation_matrix(n_in: int, n_out: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[n_out, n_in]``: the weights of 1-D bilinear resizing (``align_corners=False``), read off
    ``F.interpolate`` itself, so that ``A @ x @ B.T`` equals ``F.interpolate(x, (n_out, m_out))``."""
    eye = torch.eye(n_in, device=device, dtype=dtype)[None, :, :, None]  # n_in one-hot signals as channels
    return F.interpolate(eye, size=(n_out, 1), mode="bilinear", align_corners=False)[0, :, :, 0].T


def _shift(x: torch.Tensor, d: int, dim: int) -> torch.Tensor:
    """``y[..., i, ...] = x[..., i + d, ...]`` along ``dim``, zero where ``i + d`` falls outside."""
    if d == 0:
        return x
    n = x.shape[dim]
    pad = x.new_zeros(*x.shape[:dim], abs(d), *x.shape[dim + 1:])
    return torch.cat([x.narrow(dim, d, n - d), pad] if d > 0 else [pad, x.narrow(dim, 0, n + d)], dim=dim)


def _neighbour_gram(pixels: torch.Tensor, padded: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``[B, h, w]``: ``<P[y, x], P[y + dy, x + dx]>`` over the channels (``|dy|, |dx| <= 1``), zero
    where the neighbour falls outside; ``padded`` is ``pixels`` zero-padded by one on every side."""
    h, w = pixels.shape[-2:]
    return (pixels * padded[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]).sum(1)


def upsampled_cosine(pixels: torch.Tensor, text: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """``cos(up(pixels), text)``, ``[B, K, H, W]``, where ``up`` is bilinear resizing to ``out_size``.

    Exactly what ``F.interpolate`` followed by a per-pixel cosine computes, without building the
    ``[B, C, H, W]`` upsampled features (at toy scale they made up 80% of a training step).
    Resizing is linear, so the dot products are the resized low-resolution dot products,
    ``A (t · P) B^T``, with ``A``, ``B`` the resizing weights (``interpolation_matrix``). Each output
    pixel mixes at most a 2 x 2 block of neighbouring input pixels, so its squared norm is a sum
    over the neighbour offsets ``d`` of ``(A ∘ A_dy) G_d (B ∘ B_dx)^T``, with the neighbour Gram map
    ``G_d = <P[y, x], P[y + dy, x + dx]>`` and ``A_dy`` = ``A`` shifted by ``dy`` columns; offsets
    ``d`` and ``-d`` contribute equally, so five maps suffice. ``tests/test_fusioner.py`` checks
    values and gradients against the direct computation.
    """
    B, C, h, w = pixels.shape
    H, W = out_size
    A = interpolation_matrix(h, H, pixels.device, pixels.dtype)
    Bm = interpolation_matrix(w, W, pixels.device, pixels.dtype)
    dots = torch.bmm(F.normalize(text, dim=-1), pixels.reshape(B, C, h * w)).view(B, -1, h, w)
    dots = A @ dots @ Bm.T
    padded = F.pad(pixels, (1, 1, 1, 1))
    squared = (A * A) @ _neighbour_gram(pixels, padded, 0, 0) @ (Bm * Bm).T
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        gram = _neighbour_gram(pixels, padded, dy, dx)
        squared = squared + 2 * (A * _shift(A, dy, 1)) @ gram @ (Bm * _shift(Bm, dx, 1)).T
    return dots / squared.clamp_min(1e-24).sqrt()[:, None]


# ----------------------------------------------------------------------------------------------
# The trainable part


class FusionHead(nn.Module):
    """Everything Fusioner trains: projections, fusion (early / late / none), decoder, similarity.

    ``forward(tokens [B, N, d_v], grid (h, w), text [B, K, d_w], out_size) -> logits [B, K, H, W]``.
    Inputs are the frozen, L2-normalised features; the text may differ per image (training queries
    one class per image).
    """

    def __init__(self, visual_dim: int, text_dim: int, config: FusionerConfig):
        super().__init__()
        self.config = c = config
        self.visual_dim, self.text_dim = visual_dim, text_dim
        if c.fusion == "none" and not c.decoder and visual_dim != text_dim:
            raise ValueError(f"fusion='none' without a decoder compares frozen visual ({visual_dim}-d) and text "
                             f"({text_dim}-d) features directly; they must share one space (e.g. CLIP with CLIP)")
        if c.fusion != "none":
            self.visual_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, c.width),
                                             nn.LayerNorm(c.width))
            self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, c.width))
        if c.fusion == "early":
            self.class_embedding = nn.Parameter(torch.zeros(1, c.width))
            self.blocks = nn.ModuleList(Block(c.width, c.heads, c.mlp_ratio) for _ in range(c.layers))
            self.norm = nn.LayerNorm(c.width)
            self.proj_patch = nn.Parameter(torch.randn(c.width, c.width) * c.width ** -0.5)
            self.proj_classes = nn.Parameter(torch.randn(c.width, c.width) * c.width ** -0.5)
        elif c.fusion == "late":
            self.visual_mlp = mlp_stack(c.width, c.late_layers)
            self.text_mlp = mlp_stack(c.width, c.late_layers)
        visual_out = visual_dim if c.fusion == "none" else c.width
        text_out = text_dim if c.fusion == "none" else c.width
        self.decoder = VisualDecoder(visual_out, c.decoder_width, text_out, c.decoder_convs) if c.decoder else None
        self.apply(_init_weights)
        if c.fusion == "early":
            nn.init.normal_(self.class_embedding, std=0.02)

    def fuse(self, tokens: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fusion step (Eq. 3): returns updated visual ``[B, N, D]`` and class ``[B, K, D]`` tokens."""
        c = self.config
        if c.fusion == "none":
            return tokens, text
        v = self.visual_proj(tokens)
        t = self.text_proj(text)
        if c.fusion == "late":
            return self.visual_mlp(v), self.text_mlp(t)
        t = t + self.class_embedding
        x = torch.cat([v, t], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        n = tokens.shape[1]
        return x[:, :n] @ self.proj_patch, x[:, n:] @ self.proj_classes

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int], text: torch.Tensor,
                out_size: tuple[int, int]) -> torch.Tensor:
        if text.ndim == 2:
            text = text.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        v, t = self.fuse(tokens, text)
        B, N, C = v.shape
        h, w = grid
        if N != h * w:
            raise ValueError(f"{N} visual tokens do not form a {h}x{w} grid")
        pixels = v.transpose(1, 2).reshape(B, C, h, w)
        if self.decoder is not None:
            pixels = self.decoder(pixels)
        # cos(pixel, class) / τ at the output size: the pixel features bilinearly upsampled to
        # out_size, compared with every class embedding (Eq. 4)
        return upsampled_cosine(pixels, t, tuple(out_size)) / self.config.temperature

    def attention_maps(self) -> list[torch.Tensor]:
        """The attention of every fusion layer, kept by the last forward with ``keep_attention``."""
        return [b.attn.attention for b in getattr(self, "blocks", [])]

    def keep_attention(self, keep: bool = True) -> None:
        for b in getattr(self, "blocks", []):
            b.attn.keep_attention = keep


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------
# The whole model


@dataclass
class VisualTokens:
    """Frozen visual tokens of a batch: ``tokens [B, N, d_v]`` (L2-normalised) on a ``grid`` (h, w)."""

    tokens: torch.Tensor
    grid: tuple[int, int]


class Fusioner(nn.Module):
    """Frozen visual encoder + frozen text encoder + the trainable ``FusionHead``.

    ``segment(images, class_names)`` -> logits ``[B, K, H, W]`` at the input resolution (the book's
    shared contract); ``predict`` turns them into a label map with Fusioner's 0.5 background score.
    Training uses ``head`` directly on cached frozen features (see ``ovnb.cache``).
    """

    def __init__(self, visual_encoder, text_encoder, config: FusionerConfig | None = None,
                 visual_name: str = "?", text_name: str = "?", pretrained: bool = False):
        super().__init__()
        self.config = config or FusionerConfig()
        self.visual_encoder = visual_encoder
        self.text_encoder = text_encoder
        self.visual_name, self.text_name, self.pretrained = visual_name, text_name, pretrained
        self.head = FusionHead(visual_dim(visual_encoder), text_dim(text_encoder), self.config)

    # -- frozen features -----------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.config.image_size or self.visual_encoder.image_size

    def normalisation(self) -> tuple[tuple, tuple]:
        name = self.config.normalisation
        if name == "encoder":
            return tuple(self.visual_encoder.mean), tuple(self.visual_encoder.std)
        return OFFICIAL_NORMALISATION[name.split("-", 1)[1]]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> float at the model's input size, normalised (see ``normalisation``)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
        device = self.visual_encoder.device
        x = images.to(device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        size = (self.image_size, self.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        mean, std = self.normalisation()
        return (x - torch.tensor(mean, device=device).view(1, 3, 1, 1)) / torch.tensor(std, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def visual_tokens(self, images: torch.Tensor) -> VisualTokens:
        """Eq. (1): frozen last-layer patch tokens (projected into the joint space when the encoder
        has one), L2-normalised."""
        feats = self.visual_encoder.dense(self.preprocess(images), projected=True, preprocessed=True)
        tokens = F.normalize(feats.tokens().float(), dim=-1)
        return VisualTokens(tokens, feats.grid)

    @torch.no_grad()
    def text_embeddings(self, class_names: list[str]) -> torch.Tensor:
        """Eq. (2): template-averaged, L2-normalised class-name embeddings ``[K, d_w]``."""
        return self.text_encoder.embed_text(list(class_names), self.config.templates).float()

    # -- the shared contract -------------------------------------------------------------------
    def forward_features(self, visual: VisualTokens, text: torch.Tensor, out_size) -> torch.Tensor:
        return self.head(visual.tokens, visual.grid, text.to(visual.tokens.device), tuple(out_size))

    def segment(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        """Per-class logits (cosine / τ) ``[B, K, H, W]`` at the input resolution."""
        from .contract import check_inputs

        images, class_names = check_inputs(images, class_names)
        visual = self.visual_tokens(images)
        text = self.text_embeddings(class_names)
        logits = self.forward_features(visual, text, (self.image_size, self.image_size))
        if tuple(logits.shape[-2:]) != tuple(images.shape[-2:]):
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    @staticmethod
    def predict(logits: torch.Tensor, background: float = 0.5) -> torch.Tensor:
        """Label map ``[B, H, W]``: argmax over [background score, sigmoid(logits)]; 0 = background,
        k + 1 = the k-th queried class (the official ``get_preds``; for K = 1 this is sigmoid > 0.5)."""
        scores = torch.sigmoid(logits.float())
        bg = torch.full_like(scores[:, :1], background)
        return torch.cat([bg, scores], dim=1).argmax(1)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.head.parameters() if p.requires_grad)

    def describe(self) -> dict:
        return {"method": "fusioner", "visual": self.visual_name, "text": self.text_name,
                "pretrained": self.pretrained, "trainable_parameters": self.trainable_parameters(),
                **self.config.to_dict()}


def visual_dim(encoder) -> int:
    """Width of the frozen visual tokens Fusioner consumes: the joint-space width for a CLIP (ViT
    tokens through ``proj``, ConvNeXt's per-pixel projected map), the token width otherwise."""
    if hasattr(encoder, "is_vit"):  # an open_clip CLIP
        return encoder.embed_dim
    return encoder.width


def text_dim(encoder) -> int:
    if getattr(encoder, "embed_dim", None) is None:
        raise ValueError(f"encoder {encoder.info.name!r} has no text tower (modalities: {encoder.info.modalities})")
    return encoder.embed_dim


def build(visual: str = "clip-vit-l-14", text: str = "clip-vit-l-14", fusion: str = "early",
          pretrained: bool = False, config: FusionerConfig | None = None, device=None,
          encoders: dict | None = None, seed: int | None = None, **overrides) -> Fusioner:
    """Fusioner with registry encoders ``visual`` and ``text`` (the same entry is built once when
    both sides name it). ``encoders`` may pass already-built encoders by name (shared across models).
    ``seed`` seeds the trainable module's initialisation, once the encoders exist, so that it does not
    depend on whether they were built now or earlier."""
    from .. import encoders as registry

    for name, role, modality in ((visual, "visual", "image"), (text, "text", "text")):
        spec = registry.info(name)
        if modality not in spec.modalities:
            raise ValueError(f"{role} encoder {name!r} has no {modality} tower (modalities: "
                             f"{', '.join(spec.modalities)}); choose one with {modality!r}")
    pool = dict(encoders or {})
    for name in dict.fromkeys([visual, text]):
        if name not in pool:
            pool[name] = registry.build(name, pretrained=pretrained, device=device)
    config = replace(config or FusionerConfig(), fusion=fusion, **overrides)
    if seed is not None:
        torch.manual_seed(seed)
    model = Fusioner(pool[visual], pool[text], config, visual, text, pretrained)
    return model.to(device) if device is not None else model


# ----------------------------------------------------------------------------------------------
# Training (Sec. 3.4 and 4.1; the official train.py)

OPTIMIZERS = ("paper", "official")


def bce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Per-class sigmoid + binary cross-entropy, averaged over the pixels that are not ``ignore_index``
    (official ``loss_with_ignored_area``). ``target``: ``[B, K, H, W]`` with 1 / 0 / ignore."""
    valid = (target != ignore_index).float()
    loss = F.binary_cross_entropy_with_logits(logits.float(), (target == 1).float(), reduction="none")
    return (loss * valid).sum() / valid.sum().clamp(min=1.0)


def param_groups(model: Fusioner, optimizer: str = "paper", lr: float = 1e-3) -> list[dict]:
    """``"paper"``: one AdamW over the whole head, warmup + cosine (Sec. 4.1). ``"official"``: the
    official code's split - the fusion module with AdamW, warmup + cosine and weight decay on weight
    matrices only; the decoder with a constant learning rate and no weight decay (its separate Adam)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    head = model.head
    decoder = {id(p) for p in head.decoder.parameters()} if head.decoder is not None else set()
    groups = {"decay": [], "no_decay": [], "decoder": []}
    for p in head.parameters():
        if not p.requires_grad:
            continue
        if optimizer == "official" and id(p) in decoder:
            groups["decoder"].append(p)
        else:
            groups["decay" if p.ndim > 1 else "no_decay"].append(p)
    out = [{"params": groups["decay"], "lr": lr, "decay": True},
           {"params": groups["no_decay"], "lr": lr, "decay": False},
           {"params": groups["decoder"], "lr": lr, "decay": False, "schedule": "constant"}]
    return [g for g in out if g["params"]]


def random_text(dim: int, seed: int = 0):
    """The language control: every class name gets a fixed random unit vector (seeded by the name),
    so the model cannot use what the text encoder knows about the words."""
    import zlib

    def text_fn(names: list[str]) -> torch.Tensor:
        rows = []
        for name in names:
            g = torch.Generator().manual_seed(seed * 7919 + zlib.crc32(name.encode()))
            rows.append(F.normalize(torch.randn(dim, generator=g), dim=0))
        return torch.stack(rows)
    return text_fn


def episode_batch(samples: list[dict]) -> tuple[torch.Tensor, list[list[str]], torch.Tensor]:
    """Images ``[B, 3, H, W]``, the queried names per image, and targets ``[B, K, H, W]`` from
    binary episodes (K = 1, as the official training) or mosaics (K = 4, Table 3)."""
    images = torch.stack([s["image"] for s in samples])
    if "class_name" in samples[0]:
        return images, [[s["class_name"]] for s in samples], torch.stack([s["mask"] for s in samples])[:, None]
    names, targets = [], []
    for s in samples:
        names.append(list(s["class_names"]))
        t = torch.stack([(s["mask"] == k).long() for k in range(len(s["class_names"]))])
        t[:, s["mask"] == 255] = 255
        targets.append(t)
    return images, names, torch.stack(targets)


def train(model: Fusioner, dataset, iterations: int, batch_size: int = 32, run_dir=None, visual_fn=None,
          text_fn=None, seed: int = 0, lr: float = 1e-3, warmup: int | None = None, optimizer: str = "paper",
          accumulation: int = 1, progress: bool = True, stop_after: int | None = None):
    """Train ``model.head`` on ``dataset`` (episodes or mosaics) with the shared loop.

    Step ``t`` draws ``batch_size`` samples with ``ovnb.train.step_generator(seed, t)``, so a resumed
    run continues exactly. ``visual_fn`` (e.g. a ``VisualTokenCache``) supplies frozen tokens;
    ``text_fn`` the class embeddings (default: the frozen text encoder). ``warmup`` defaults to the
    paper's 10 of 510 epochs. Returns ``ovnb.train.TrainResult``.
    """
    from .. import train as loop

    visual_fn = visual_fn or model.visual_tokens
    text_fn = text_fn or model.text_embeddings
    size = (model.image_size, model.image_size)
    if len(dataset) == 0:
        raise ValueError("the training set is empty")

    def loss_fn(step: int, micro: int) -> torch.Tensor:
        g = loop.step_generator(seed, step, micro)
        idx = torch.randint(len(dataset), (batch_size,), generator=g).tolist()
        images, names, targets = episode_batch([dataset[i] for i in idx])
        visual = visual_fn(images)
        text = torch.stack([text_fn(n) for n in names]).to(visual.tokens.device)
        logits = model.head(visual.tokens, visual.grid, text, size)
        targets = targets.to(logits.device)
        if tuple(targets.shape[-2:]) != size:
            targets = F.interpolate(targets.float(), size=size, mode="nearest").long()
        return bce_loss(logits, targets)

    config = loop.TrainConfig(iterations=iterations, lr=lr, accumulation=accumulation, seed=seed,
                              warmup=round(iterations * 10 / 510) if warmup is None else warmup,
                              weight_decay_end=0.4 if optimizer == "official" else None)
    return loop.fit(model.head, loss_fn, config, run_dir, param_groups(model, optimizer, lr), progress=progress,
                    stop_after=stop_after, description=f"fusioner {model.config.fusion}")
