"""FC-CLIP: one frozen convolutional CLIP under a Mask2Former (Yu et al., NeurIPS 2023).

One frozen CLIP ConvNeXt (``clip-convnext-large-d-320`` in the paper, ``toy-clip-convnext`` in the
toy world) serves three modules (paper Fig. 3, Sec. 3.2):

1. **Mask generator** - the CLIP trunk's four stage outputs (res2..res5, strides 4..32) feed
   transformers' Mask2Former pixel decoder (multi-scale deformable attention on res3..res5, written in
   pure PyTorch - no CUDA build) and its masked-attention transformer decoder (250 queries, 9 layers
   + the prediction on the learnable queries = 10 prediction points). Those modules are used as the
   library ships them; only the class head is FC-CLIP's.
2. **In-vocabulary classifier** (Eq. 4 and official ``fcclip_transformer_decoder.py``): at every
   prediction point, mask-pool the pixel decoder's stride-4 features inside the predicted mask
   (``mask_pool``: binarised at logit 0, average), ``LayerNorm + Linear``, add the layer-normed query,
   a 3-layer MLP to the CLIP width, cosine against the text classifier times a learnable temperature
   ``exp(s)`` clamped at 100 (``classification_logits``). A learned **void** embedding is the last
   classifier row (the "no object" class of training).
3. **Out-of-vocabulary classifier** (Eq. 5-6): mask-pool the frozen CLIP's dense ``norm_pre(res5)``
   features inside the final masks and send them through the CLIP's own head (``trunk.head`` +
   ``head`` MLP), cosine times the CLIP's own temperature.

The official model zoo also has FC-CLIPs on OpenAI's **ResNet CLIPs** (RN50, RN101, RN50x4, RN50x16,
RN50x64; registry ``clip-rn50`` ...). Their taps are ``layer1..4`` (res5 itself is the dense map), and
the out-of-vocabulary classifier pools each mask through the CLIP's own **attention pooling**
(``attention_mask_pool``: the image-mean query attends only to the positions inside the mask,
official ``visual_prediction_forward_resnet``). Their official configs set
``ENSEMBLE_ON_VALID_MASK``: a query whose mask has no positive pixel on the CLIP's stride-32 grid
keeps its in-vocabulary probabilities (``alpha = beta = 0`` for it; ``ensemble(..., valid=...)``).

The two are fused by the **geometric ensemble** (Eq. 7, ``ensemble``): ``p_in^(1-a) p_out^a`` for
classes seen in training, ``p_in^(1-b) p_out^b`` for the others (a = 0.4, b = 0.8), then rescaled by
the in-vocabulary void probability. ``arithmetic`` (Table 8's alternative) mixes probabilities
linearly instead.

Text classifier (``TextClassifier``): every class is one or more synonyms (``"person, child, man"``
or a list); each synonym is embedded with the 14 ViLD templates (per-sentence normalisation,
average, re-normalisation) and a class scores the maximum over its synonyms. It is computed once per
vocabulary and cached - pass any vocabulary to ``segment`` / ``panoptic`` at call time.

A test class counts as **seen** when any of its synonyms equals any training synonym exactly
(official ``category_overlapping_mask``; string match, no embedding similarity).

Inference (official ``fcclip.py``): semantic ``sum_q p(c|q) sigmoid(m_q)``
(``semantic_inference``), Mask2Former's mask-wise panoptic merging with
``object_mask_threshold = 0`` and ``overlap_threshold = 0.8`` (``panoptic_inference``), and top-k
instance inference (``instance_inference``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import encoders
from .contract import check_inputs

VOID_EPS = 1e-8  # official: log(p + 1e-8); also the mask-pooling denominator's epsilon


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class FCCLIPConfig:
    """Every FC-CLIP hyper-parameter; defaults are the official ConvNeXt-L COCO-panoptic config."""

    clip: str = "clip-convnext-large-d-320"
    num_queries: int = 250
    hidden_dim: int = 256  # transformer decoder width
    feature_size: int = 256  # pixel decoder CONVS_DIM
    mask_feature_size: int = 256  # MASK_DIM
    encoder_layers: int = 6  # deformable-attention layers of the pixel decoder
    encoder_feedforward_dim: int = 1024
    decoder_layers: int = 10  # 9 masked-attention layers + the prediction on the learnable queries
    dim_feedforward: int = 2048
    num_heads: int = 8
    templates: str = "vild"
    ensemble: str = "geometric"  # geometric (Eq. 7) | arithmetic (Table 8) | in | out (Table 8's corners)
    alpha: float = 0.4  # out-of-vocabulary weight for seen classes
    beta: float = 0.8  # out-of-vocabulary weight for unseen classes
    object_mask_threshold: float = 0.0  # FC-CLIP's override of Mask2Former's 0.8
    overlap_threshold: float = 0.8
    instance_topk: int = 100
    size_divisibility: int = 32
    # loss (Mask2Former's, with FC-CLIP's values)
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    train_num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    train_classes: tuple[str, ...] = field(default_factory=tuple)  # the training vocabulary (synonym strings)
    # Table 6's ablation: a trainable copy of the CLIP trunk feeds the mask generator and the in-vocabulary
    # classifier (learning rate x ``backbone_multiplier``, Mask2Former's BACKBONE_MULTIPLIER); the
    # out-of-vocabulary classifier then pools the ``frozen`` CLIP or the ``finetuned`` copy
    finetune_backbone: bool = False
    backbone_multiplier: float = 0.1
    out_vocab_source: str = "frozen"
    # official ENSEMBLE_ON_VALID_MASK: queries whose mask is empty on the CLIP's grid skip the
    # out-of-vocabulary classifier; None: as the official configs (on for ResNet CLIPs, off for ConvNeXt)
    ensemble_on_valid_mask: bool | None = None

    ENSEMBLES = ("geometric", "arithmetic", "in", "out")

    def __post_init__(self):
        if self.ensemble not in self.ENSEMBLES:
            raise ValueError(f"ensemble must be one of {self.ENSEMBLES}, got {self.ensemble!r}")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1] (a weight of the out-of-vocabulary classifier), "
                                 f"got {value}")
        if self.feature_size % 32 or self.mask_feature_size % 32:
            raise ValueError(f"feature_size and mask_feature_size must be multiples of 32 (GroupNorm(32)), "
                             f"got {self.feature_size} and {self.mask_feature_size}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads {self.num_heads}")
        if self.out_vocab_source not in ("frozen", "finetuned"):
            raise ValueError(f"out_vocab_source must be 'frozen' or 'finetuned', got {self.out_vocab_source!r}")
        if self.out_vocab_source == "finetuned" and not self.finetune_backbone:
            raise ValueError("out_vocab_source='finetuned' needs finetune_backbone=True")
        if self.decoder_layers < 1:
            raise ValueError(f"decoder_layers must be >= 1, got {self.decoder_layers}")

    def mask2former(self, num_labels: int = 1):
        from transformers import Mask2FormerConfig

        return Mask2FormerConfig(
            feature_size=self.feature_size, mask_feature_size=self.mask_feature_size, hidden_dim=self.hidden_dim,
            encoder_feedforward_dim=self.encoder_feedforward_dim, encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers, num_attention_heads=self.num_heads,
            dim_feedforward=self.dim_feedforward, num_queries=self.num_queries, dropout=0.0, pre_norm=False,
            common_stride=4, feature_strides=[4, 8, 16, 32], num_labels=num_labels,
            no_object_weight=self.no_object_weight, class_weight=self.class_weight, mask_weight=self.mask_weight,
            dice_weight=self.dice_weight, train_num_points=self.train_num_points,
            oversample_ratio=self.oversample_ratio, importance_sample_ratio=self.importance_sample_ratio,
            use_auxiliary_loss=True)


#: The toy world's FC-CLIP: the same architecture, narrower and shallower (2 CPU cores).
TOY = dict(clip="toy-clip-convnext", num_queries=24, hidden_dim=64, feature_size=64, mask_feature_size=64,
           encoder_layers=2, encoder_feedforward_dim=128, decoder_layers=4, dim_feedforward=128, num_heads=4,
           train_num_points=1024, instance_topk=24)


# ---------------------------------------------------------------------------------------------
# the pieces, as functions (each checked against a hand computation in tests/test_fcclip.py)
# ---------------------------------------------------------------------------------------------
def mask_pool(features: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Average of ``features [B, C, h, w]`` inside each mask ``[B, Q, H, W]`` (logits) -> ``[B, Q, C]``.

    Official ``MaskPooling``: the masks are resized (bilinear) to the feature grid when it differs,
    binarised at logit 0 (``mask > 0``, no gradient through the mask), and the sum is divided by the
    mask area + 1e-8 - so an empty mask pools to zeros.
    """
    if mask_logits.shape[-2:] != features.shape[-2:]:
        mask_logits = F.interpolate(mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False)
    with torch.no_grad():
        mask = (mask_logits > 0).to(features.dtype)
        denominator = mask.sum(dim=(-2, -1), keepdim=True) + VOID_EPS
    return torch.einsum("bchw,bqhw->bqc", features, mask / denominator)


def classification_logits(embeddings: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """``clamp(exp(logit_scale), max=100) * cos(embeddings, text)``: ``[B, Q, D] x [T, D] -> [B, Q, T]``
    (official ``get_classification_logits``; ``text`` rows are L2-normalised already)."""
    x = F.normalize(embeddings, dim=-1)
    return torch.clamp(logit_scale.exp(), max=100) * x @ text.t()


def max_over_synonyms(logits: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """``[..., sum(counts)] -> [..., len(counts)]``: each class keeps its best synonym's logit."""
    if sum(counts) != logits.shape[-1]:
        raise ValueError(f"synonym counts sum to {sum(counts)} but the logits have {logits.shape[-1]} columns")
    return torch.stack([chunk.amax(-1) for chunk in logits.split(counts, dim=-1)], dim=-1)


def ensemble(in_logits: torch.Tensor, out_logits: torch.Tensor, seen: torch.Tensor, alpha: float = 0.4,
             beta: float = 0.8, kind: str = "geometric", valid: torch.Tensor | None = None) -> torch.Tensor:
    """FC-CLIP's Eq. 7 with void rescaling: log-probabilities ``[B, Q, K + 1]`` (void last).

    ``in_logits [B, Q, K + 1]`` (in-vocabulary, void last), ``out_logits [B, Q, K]`` (or ``K + 1``: a
    last void column is dropped), ``seen [K]`` bool. Official ``fcclip.py`` (inference):

    * ``p_in = softmax(in[:K])``, ``p_out = softmax(out[:K])`` (void dropped from both);
    * seen classes: ``log(p_in^(1-alpha) p_out^alpha)``; unseen ones the same with ``beta``;
      ``arithmetic``: ``log((1-w) p_in + w p_out)`` instead; ``in`` / ``out``: one classifier alone
      (weights 0 / 1);
    * ``p_void = softmax(in)[K]``; result ``log([softmax(fused) (1 - p_void), p_void] + 1e-8)``.

    ``valid [B, Q]`` (official ``ENSEMBLE_ON_VALID_MASK``, ResNet CLIPs): the weights ``alpha`` and ``beta``
    are zeroed for the queries marked False, so those keep the in-vocabulary probabilities.
    """
    k = in_logits.shape[-1] - 1
    if out_logits.shape[-1] == k + 1:
        out_logits = out_logits[..., :k]
    if out_logits.shape[-1] != k or seen.shape[-1] != k:
        raise ValueError(f"shapes disagree: in-vocabulary {k} classes + void, out-of-vocabulary "
                         f"{out_logits.shape[-1]}, seen mask {seen.shape[-1]}")
    p_in = in_logits[..., :k].softmax(-1)
    p_out = out_logits.softmax(-1)
    if kind not in FCCLIPConfig.ENSEMBLES:
        raise ValueError(f"kind must be one of {FCCLIPConfig.ENSEMBLES}, got {kind!r}")
    if kind in ("in", "out"):  # one classifier alone: the geometric ensemble's corners (weight 0 or 1)
        alpha = beta = float(kind == "out")
    w = torch.where(seen.to(p_in.device), torch.tensor(alpha, device=p_in.device),
                    torch.tensor(beta, device=p_in.device)).to(p_in.dtype)
    if valid is not None:
        if valid.shape != in_logits.shape[:-1]:
            raise ValueError(f"valid has shape {tuple(valid.shape)}; it needs one flag per query, "
                             f"{tuple(in_logits.shape[:-1])}")
        w = w * valid.to(p_in.device, p_in.dtype)[..., None]
    if kind == "arithmetic":
        fused = ((1 - w) * p_in + w * p_out).log()
    else:
        fused = (p_in ** (1 - w) * p_out ** w).log()
    p_void = in_logits.softmax(-1)[..., k:]
    probs = torch.cat([fused.softmax(-1) * (1.0 - p_void), p_void], dim=-1)
    return torch.log(probs + VOID_EPS)


def split_synonyms(name) -> list[str]:
    """``"person, child, man"`` or ``["person", "child"]`` -> the synonym strings (official ``split_labels``)."""
    parts = name.split(",") if isinstance(name, str) else list(name)
    synonyms = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
    if not synonyms:
        raise ValueError(f"class {name!r} has no synonym: give a name such as 'cat' or 'person, man, woman'")
    return synonyms


def seen_mask(class_names, train_classes) -> torch.Tensor:
    """``[K]`` bool: class k is seen when any of its synonyms equals any training synonym exactly
    (official ``category_overlapping_mask``)."""
    train = {s for name in train_classes for s in split_synonyms(name)}
    return torch.tensor([any(s in train for s in split_synonyms(n)) for n in class_names], dtype=torch.bool)


class TextClassifier:
    """The text classifier of a vocabulary: ``[T, D]`` normalised synonym embeddings + synonym counts.

    Computed once per (vocabulary, template set) and cached - the "vocabulary API" of the chapter. Each
    model keeps its own cache: a model trained in one process computes its texts there, so its weights
    do not depend on what an earlier model computed (CPU results differ in the last bits with the number
    of threads).

    ``store``: a folder that also keeps them on disk, keyed by the CLIP's weights, the templates and the
    vocabulary (the real text tower costs ~65 ms a sentence on a CPU: 847 classes x 14 templates take
    minutes), so other processes and later sessions reuse them.
    """

    def __init__(self, clip, templates: str = "vild", store=None):
        self.clip, self.templates = clip, templates
        self.store = None if store is None else Path(store)
        self._fingerprint: str | None = None  # of the CLIP's weights, for the file names in ``store``
        self._cache: dict[tuple, tuple[torch.Tensor, list[int]]] = {}

    def __call__(self, class_names) -> tuple[torch.Tensor, list[int]]:
        key = (self.templates, *(tuple(split_synonyms(n)) for n in class_names))
        if key not in self._cache:
            path = self._path(key)
            if path is not None and path.is_file():
                embeddings = torch.load(path, map_location=self.clip.device, weights_only=True)
            else:
                synonyms = [s for group in key[1:] for s in group]
                embeddings = self.clip.embed_text(synonyms, templates=self.templates)
                if path is not None:
                    from ..train import save_atomic

                    save_atomic(embeddings.cpu(), path)
            self._cache[key] = (embeddings, [len(g) for g in key[1:]])
        return self._cache[key]

    def _path(self, key: tuple):
        if self.store is None:
            return None
        import hashlib
        import json

        from ..cache import weights_fingerprint

        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.clip.model)
        digest = hashlib.sha1(json.dumps([self._fingerprint, key]).encode()).hexdigest()[:20]
        return self.store / f"text-{digest}.pt"


# ---------------------------------------------------------------------------------------------
# the mask generator: transformers' Mask2Former modules on the CLIP trunk
# ---------------------------------------------------------------------------------------------
def _mask_generator_class():
    from transformers.models.mask2former.modeling_mask2former import (
        Mask2FormerPixelDecoder, Mask2FormerPreTrainedModel, Mask2FormerTransformerModule)

    class MaskGenerator(Mask2FormerPreTrainedModel):
        """Mask2Former's pixel decoder and masked-attention transformer decoder, fed by given
        backbone features (the library's own modules and initialisation; only the backbone differs)."""

        def __init__(self, config, channels: list[int]):
            super().__init__(config)
            self.pixel_decoder = Mask2FormerPixelDecoder(config, feature_channels=channels)
            self.transformer_module = Mask2FormerTransformerModule(in_features=config.feature_size, config=config)
            self.post_init()

        def forward(self, features: list[torch.Tensor]):
            pixel = self.pixel_decoder(features, return_dict=True)
            out = self.transformer_module(multi_scale_features=pixel.multi_scale_features,
                                          mask_features=pixel.mask_features, output_hidden_states=True)
            # intermediate states: layer-normed query states [Q, B, C] at each of the prediction points
            return pixel.mask_features, list(out.intermediate_hidden_states), list(out.masks_queries_logits)

    return MaskGenerator


@dataclass
class FCCLIPOutput:
    """What one forward pass yields (``B`` images, ``Q`` queries, ``K`` classes, stride-4 masks)."""

    mask_logits: torch.Tensor  # [B, Q, h, w] final prediction point
    in_logits: torch.Tensor  # [B, Q, K + 1] in-vocabulary logits, void last
    aux: list[dict]  # earlier prediction points: {"masks_queries_logits", "class_queries_logits"}
    clip_dense: torch.Tensor | None = None  # [B, C5, h32, w32] norm_pre(res5) for the out-of-vocabulary path
    image_size: tuple[int, int] = (0, 0)  # the unpadded input size


class FCCLIP(nn.Module):
    """FC-CLIP (see the module docstring). ``segment(images, class_names)`` is the book's contract."""

    def __init__(self, config: FCCLIPConfig, clip=None, pretrained_clip: bool = True, text: "TextClassifier | None" = None):
        super().__init__()
        self.config = config
        self.clip = clip if clip is not None else encoders.build(config.clip, pretrained=pretrained_clip)
        visual = getattr(getattr(self.clip, "model", None), "visual", None)
        self.resnet = visual is not None and is_resnet(visual)
        if visual is None or not (self.resnet or (hasattr(visual, "trunk") and hasattr(visual.trunk, "stages"))):
            raise ValueError(f"FC-CLIP needs a convolutional open_clip CLIP (ConvNeXt or ResNet), got {config.clip!r}")
        self.clip.freeze()
        self.trunk = None
        if config.finetune_backbone:  # Table 6: a trainable copy for the mask generator + in-vocabulary head
            if self.resnet:
                raise ValueError("finetune_backbone (Table 6) is defined for ConvNeXt CLIPs; a ResNet CLIP's batch "
                                 f"norms have no fine-tuning recipe in the official code (got {config.clip!r})")
            import copy

            self.trunk = copy.deepcopy(visual.trunk).requires_grad_(True)
        self.valid_mask_ensemble = self.resnet if config.ensemble_on_valid_mask is None else config.ensemble_on_valid_mask
        channels = backbone_channels(visual)
        self.generator = _mask_generator_class()(config.mask2former(), channels)
        d, width = config.hidden_dim, self.clip.embed_dim
        self.mask_pooling_proj = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        from transformers.models.mask2former.modeling_mask2former import Mask2FormerMLPPredictionHead

        self.class_embed = Mask2FormerMLPPredictionHead(d, d, width, num_layers=3)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.void_embedding = nn.Embedding(1, width)
        # the text classifier; one may be shared by models on the same frozen CLIP (``text``)
        self.text = text if text is not None else TextClassifier(self.clip, config.templates)
        self._loss = None

    # -- backbone ---------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.train(False)  # frozen, always in eval mode (official freeze_everything)
        return self

    def _pad(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalised pixels, zero-padded (after normalisation, as detectron2's ImageList) to a multiple of 32."""
        h, w = images.shape[-2:]
        x = self.clip.preprocess(images, size=(h, w))
        s = self.config.size_divisibility
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return x, (h, w)

    @torch.no_grad()
    def backbone(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """res2..res5 of the frozen CLIP and its dense map for the out-of-vocabulary classifier: ConvNeXt
        ``norm_pre(res5)`` (official ``extract_features_convnext``), ResNet res5 (``extract_features_resnet``)."""
        visual = self.clip.model.visual
        return _trunk_features(visual if self.resnet else visual.trunk, x)

    @torch.no_grad()
    def dense(self, images: torch.Tensor, source: str = "frozen") -> torch.Tensor:
        """``norm_pre(res5)`` of ``images`` from the frozen CLIP or (Table 6) the fine-tuned trunk copy."""
        x, _ = self._pad(images)
        if source == "finetuned":
            if self.trunk is None:
                raise ValueError("source='finetuned' needs a model built with finetune_backbone=True")
            return _trunk_features(self.trunk, x)[1]
        return self.backbone(x)[1]

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The mask generator's input maps and the out-of-vocabulary dense map (FC-CLIP: both from the
        one frozen CLIP; Table 6's variants: the maps from the trainable copy)."""
        if self.trunk is None:
            return self.backbone(x)
        maps, tuned_dense = _trunk_features(self.trunk, x)
        if self.training:
            return maps, None  # the out-of-vocabulary classifier is not used in training
        if self.config.out_vocab_source == "finetuned":
            return maps, tuned_dense.detach()
        return maps, self.backbone(x)[1]

    # -- forward ----------------------------------------------------------------------------------
    def classifier(self, class_names) -> tuple[torch.Tensor, list[int]]:
        """Text classifier ``[T + 1, D]`` with the normalised void embedding last, and synonym counts + [1]."""
        text, counts = self.text(class_names)
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return torch.cat([text.to(void.device, void.dtype), void], dim=0), counts + [1]

    def in_vocabulary_logits(self, mask_features, query, mask_logits, text, counts) -> torch.Tensor:
        """Eq. 4 at one prediction point: ``[B, Q, K + 1]`` logits, void last."""
        pooled = self.mask_pooling_proj(mask_pool(mask_features, mask_logits))
        embedding = self.class_embed(pooled + query.transpose(0, 1))
        return max_over_synonyms(classification_logits(embedding, text, self.logit_scale), counts)

    def forward(self, images: torch.Tensor, class_names) -> FCCLIPOutput:
        x, size = self._pad(images)
        maps, dense = self.features(x)
        mask_features, queries, masks = self.generator(maps)
        text, counts = self.classifier(class_names)
        logits = [self.in_vocabulary_logits(mask_features, q, m, text, counts) for q, m in zip(queries, masks)]
        aux = [{"masks_queries_logits": m, "class_queries_logits": c} for m, c in zip(masks[:-1], logits[:-1])]
        return FCCLIPOutput(masks[-1], logits[-1], aux, dense, size)

    # -- the out-of-vocabulary classifier and the ensemble -----------------------------------------
    @torch.no_grad()
    def out_vocabulary_logits(self, dense: torch.Tensor, mask_logits: torch.Tensor, class_names,
                              source: str | None = None) -> torch.Tensor:
        """Eq. 5-6: pool ``norm_pre(res5)`` in each mask, the CLIP's own head (ResNet: its attention pooling
        restricted to the mask), cosine x CLIP's scale: ``[B, Q, K]``.
        ``source`` (default the configuration's): the trunk whose head is applied, ``frozen`` or ``finetuned``."""
        visual = self.clip.model.visual
        trunk = self.trunk if (source or self.config.out_vocab_source) == "finetuned" else None
        emb = clip_mask_embeddings(visual, dense, mask_logits, trunk)
        text, counts = self.text(class_names)
        return max_over_synonyms(classification_logits(emb, text.to(emb), self.clip.model.logit_scale), counts)

    def class_log_probs(self, out: FCCLIPOutput, class_names, ensemble: str | None = None,
                        alpha: float | None = None, beta: float | None = None) -> torch.Tensor:
        """Final per-query log-probabilities ``[B, Q, K + 1]`` (void last) after the ensemble."""
        c = self.config
        kind = ensemble or c.ensemble
        seen = seen_mask(class_names, c.train_classes)
        out_logits = self.out_vocabulary_logits(out.clip_dense, out.mask_logits, class_names)
        return ensemble_fn(out.in_logits, out_logits, seen, c.alpha if alpha is None else alpha,
                           c.beta if beta is None else beta, kind, valid=self.valid_masks(out))

    def valid_masks(self, out: FCCLIPOutput) -> torch.Tensor | None:
        """``[B, Q]`` whether each final mask has a positive pixel on the CLIP's dense grid, when the model
        ensembles on valid masks only (official ``ENSEMBLE_ON_VALID_MASK``); else None."""
        if not self.valid_mask_ensemble:
            return None
        return nonempty_masks(out.mask_logits, out.clip_dense.shape[-2:])

    def upsample_masks(self, out: FCCLIPOutput, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Mask logits at the padded input size, cropped to the image, resized to ``size`` (bilinear)."""
        h, w = out.image_size
        padded = (out.mask_logits.shape[-2] * 4, out.mask_logits.shape[-1] * 4)
        m = F.interpolate(out.mask_logits, size=padded, mode="bilinear", align_corners=False)[..., :h, :w]
        if size is not None and tuple(size) != (h, w):
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        return m

    # -- the three inferences -----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: torch.Tensor, class_names, **ensemble_options) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-query class log-probabilities ``[B, Q, K + 1]`` and mask logits ``[B, Q, H, W]`` at input size."""
        images, _ = check_inputs(images, [n if isinstance(n, str) else ", ".join(n) for n in class_names])
        out = self(images, class_names)
        return self.class_log_probs(out, class_names, **ensemble_options), self.upsample_masks(out)

    @torch.no_grad()
    def segment(self, images: torch.Tensor, class_names, **ensemble_options) -> torch.Tensor:
        """The book's contract: semantic scores ``[B, K, H, W]`` (``semantic_inference``)."""
        log_probs, masks = self.predict(images, class_names, **ensemble_options)
        return semantic_inference(log_probs, masks)

    @torch.no_grad()
    def panoptic(self, images: torch.Tensor, class_names, thing: list[bool] | None = None,
                 **ensemble_options) -> list[dict]:
        """Panoptic segmentation per image: ``{"segments": [H, W] int (0 = none), "info": [...]}``.
        ``thing[k]`` says whether class k is a countable thing (stuff segments merge per class)."""
        log_probs, masks = self.predict(images, class_names, **ensemble_options)
        thing = [True] * len(class_names) if thing is None else list(thing)
        return [panoptic_inference(lp, m, thing, self.config.object_mask_threshold, self.config.overlap_threshold)
                for lp, m in zip(log_probs, masks)]

    @torch.no_grad()
    def instances(self, images: torch.Tensor, class_names, thing: list[bool] | None = None,
                  **ensemble_options) -> list[dict]:
        """Instance segmentation per image (``instance_inference``)."""
        log_probs, masks = self.predict(images, class_names, **ensemble_options)
        thing = [True] * len(class_names) if thing is None else list(thing)
        return [instance_inference(lp, m, thing, self.config.instance_topk) for lp, m in zip(log_probs, masks)]

    # -- training ------------------------------------------------------------------------------------
    def loss(self, out: FCCLIPOutput, mask_labels: list[torch.Tensor], class_labels: list[torch.Tensor]) -> torch.Tensor:
        """Mask2Former's loss (Hungarian matching, point-sampled mask BCE + dice, class CE with no-object
        weight 0.1) at every prediction point, on the in-vocabulary logits (official training path)."""
        from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

        k = out.in_logits.shape[-1] - 1
        if self._loss is None or self._loss.num_labels != k:
            c = self.config
            self._loss = Mask2FormerLoss(c.mask2former(num_labels=k), weight_dict={}).to(out.in_logits.device)
        losses = self._loss(out.mask_logits, out.in_logits, mask_labels, class_labels, out.aux)
        weights = {"loss_cross_entropy": self.config.class_weight, "loss_mask": self.config.mask_weight,
                   "loss_dice": self.config.dice_weight}
        return sum(weights[key.rsplit("_", 1)[0] if key[-1].isdigit() else key] * v for key, v in losses.items())

    def trainable_state(self) -> dict:
        """The weights FC-CLIP learns (everything but the frozen CLIP)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}


def clip_mask_embeddings(visual: nn.Module, dense: torch.Tensor, mask_logits: torch.Tensor,
                         trunk: nn.Module | None = None) -> torch.Tensor:
    """Official ``visual_prediction_forward_convnext``: ``norm_pre(res5)`` features ``dense`` pooled in each
    mask, then the CLIP's head (``trunk.head`` on a 1x1 map, then ``visual.head``): ``[B, Q, D]``.
    ``trunk`` (default ``visual.trunk``) is whose ``head`` is applied (Table 6's fine-tuned copy).
    A ResNet CLIP (``visual_prediction_forward_resnet``): ``attention_mask_pool`` of res5 through its
    attention pooling."""
    if is_resnet(visual):
        return attention_mask_pool(visual.attnpool, dense, mask_logits)
    pooled = mask_pool(dense, mask_logits)  # [B, Q, C5]
    b, q, c = pooled.shape
    head = (trunk or visual.trunk).head
    return visual.head(head(pooled.reshape(b * q, c, 1, 1))).view(b, q, -1)


def nonempty_masks(mask_logits: torch.Tensor, grid) -> torch.Tensor:
    """``[B, Q]`` bool: whether each mask ``[B, Q, H, W]`` (logits), resized (bilinear) to ``grid``, has a
    pixel above 0 (official ``valid_masking`` of ``ENSEMBLE_ON_VALID_MASK``)."""
    if tuple(mask_logits.shape[-2:]) != tuple(grid):
        mask_logits = F.interpolate(mask_logits, size=tuple(grid), mode="bilinear", align_corners=False)
    return (mask_logits > 0).flatten(2).any(-1)


def attention_mask_pool(attnpool: nn.Module, features: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """A ResNet CLIP's attention pooling restricted to each mask (official ``visual_prediction_forward_resnet``):
    ``features [B, C, h, w]`` (res5), ``mask_logits [B, Q, H, W]`` -> ``[B, Q, D]`` image embeddings.

    The query is CLIP's usual one - the mean of all positions plus the first position embedding - and
    the keys and values are the positions plus the spatial position embeddings (resized bilinearly from
    the pretraining grid to ``h x w``); each mask (resized to ``h x w``, ``> 0``) lets the query attend
    only to its own positions. Unlike CLIP's own pooling, the mean token is not among the keys.

    A mask with no positive position has nothing to attend to: the official call gives NaN there, which
    ``ENSEMBLE_ON_VALID_MASK`` then discards (``p_out^0``). Here such a query attends everywhere
    (a finite embedding), and ``ensemble(..., valid=...)`` discards it the same way."""
    b, c, h, w = features.shape
    if mask_logits.shape[-2:] != (h, w):
        mask_logits = F.interpolate(mask_logits, size=(h, w), mode="bilinear", align_corners=False)
    inside = (mask_logits > 0).flatten(2)  # [B, Q, hw]
    allowed = inside | ~inside.any(-1, keepdim=True)
    pos = attnpool.positional_embedding.to(features.dtype)
    n = int(round((pos.shape[0] - 1) ** 0.5))
    spatial = pos[1:].t().reshape(1, c, n, n)
    spatial = F.interpolate(spatial, size=(h, w), mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)
    x = features.flatten(2).transpose(1, 2)  # [B, hw, C]
    query = x.mean(1, keepdim=True) + pos[:1]  # [B, 1, C]
    keys = x + spatial
    heads = attnpool.num_heads
    d = c // heads
    q = attnpool.q_proj(query).view(b, 1, heads, d).transpose(1, 2)  # [B, heads, 1, d]
    k = attnpool.k_proj(keys).view(b, -1, heads, d).transpose(1, 2)  # [B, heads, hw, d]
    v = attnpool.v_proj(keys).view(b, -1, heads, d).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)  # [B, heads, 1, hw], one row for every mask
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))  # [B, heads, Q, hw]
    pooled = scores.softmax(-1) @ v  # [B, heads, Q, d]
    return attnpool.c_proj(pooled.transpose(1, 2).reshape(b, -1, c))


def is_resnet(visual: nn.Module) -> bool:
    """Whether an open_clip image tower is OpenAI's ``ModifiedResNet`` (attention pooling)."""
    return hasattr(visual, "attnpool") and hasattr(visual, "layer4")


def backbone_channels(visual: nn.Module) -> list[int]:
    """Channels of res2..res5: a ConvNeXt's stage outputs, a ResNet's ``layer1..4`` outputs (official
    ``output_channels``, e.g. 256/512/1024/2048 for RN50)."""
    if is_resnet(visual):
        return [getattr(visual, f"layer{i}")[-1].conv3.out_channels for i in range(1, 5)]
    return [stage_out_channels(s) for s in visual.trunk.stages]


def _trunk_features(trunk: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """res2..res5 and the dense map of a ConvNeXt trunk (``norm_pre(res5)``) or a ResNet CLIP tower (res5:
    the stem's three convolutions and average pooling, then ``layer1..4``)."""
    if is_resnet(trunk):
        y = trunk.stem(x.to(trunk.conv1.weight.dtype))
        maps = []
        for i in range(1, 5):
            y = getattr(trunk, f"layer{i}")(y)
            maps.append(y)
        return maps, y
    y = trunk.stem(x)
    maps = []
    for stage in trunk.stages:
        y = stage(y)
        maps.append(y)
    return maps, trunk.norm_pre(y)


ensemble_fn = ensemble  # the module-level function, under a name the method's keyword does not shadow


def stage_out_channels(stage: nn.Module) -> int:
    """Output channels of a timm ConvNeXt stage (its last block's last linear/conv)."""
    for module in reversed(list(stage.modules())):
        if isinstance(module, nn.Linear):
            return module.out_features
        if isinstance(module, nn.Conv2d):
            return module.out_channels
    raise ValueError("could not find the output width of a backbone stage")


# ---------------------------------------------------------------------------------------------
# inference rules (Mask2Former's, as FC-CLIP calls them)
# ---------------------------------------------------------------------------------------------
def semantic_inference(log_probs: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """``sum_q softmax(cls)[q, c] * sigmoid(m_q)``, void dropped: ``[B, Q, K+1] x [B, Q, H, W] -> [B, K, H, W]``."""
    probs = log_probs.softmax(-1)[..., :-1]
    return torch.einsum("bqc,bqhw->bchw", probs, mask_logits.sigmoid())


def panoptic_inference(log_probs: torch.Tensor, mask_logits: torch.Tensor, thing: list[bool],
                       object_mask_threshold: float = 0.0, overlap_threshold: float = 0.8) -> dict:
    """Mask2Former's mask-wise merging for one image: ``[Q, K+1]`` log-probabilities, ``[Q, H, W]`` logits.

    Keep queries whose best class is not void and whose score exceeds ``object_mask_threshold``;
    each pixel goes to the kept query with the highest ``score * sigmoid(mask)``; a query's segment
    is dropped when it keeps less than ``overlap_threshold`` of its own ``sigmoid >= 0.5`` area;
    stuff segments of one class merge. Returns ``segments [H, W]`` (int32, 0 = unassigned) and
    ``info``: one ``{"id", "category_id", "isthing", "score"}`` per segment.
    """
    k = log_probs.shape[-1] - 1
    scores, labels = log_probs.softmax(-1).max(-1)
    masks = mask_logits.sigmoid()
    keep = labels.ne(k) & (scores > object_mask_threshold)
    scores, labels, masks = scores[keep], labels[keep], masks[keep]
    h, w = mask_logits.shape[-2:]
    segments = torch.zeros((h, w), dtype=torch.int32, device=mask_logits.device)
    info: list[dict] = []
    if masks.shape[0] == 0:
        return {"segments": segments, "info": info}
    owner = (scores.view(-1, 1, 1) * masks).max(0).indices  # argmax over queries (max(dim) is faster on CPU)
    stuff_ids: dict[int, int] = {}
    for q in range(masks.shape[0]):
        cls = int(labels[q])
        mine = owner == q
        area = int(mine.sum())
        original = int((masks[q] >= 0.5).sum())
        region = mine & (masks[q] >= 0.5)
        if area == 0 or original == 0 or not bool(region.any()):
            continue
        if area / original < overlap_threshold:
            continue
        if not thing[cls] and cls in stuff_ids:
            segments[region] = stuff_ids[cls]
            continue
        new_id = len(info) + 1
        if not thing[cls]:
            stuff_ids[cls] = new_id
        segments[region] = new_id
        info.append({"id": new_id, "category_id": cls, "isthing": bool(thing[cls]), "score": float(scores[q])})
    return {"segments": segments, "info": info}


def instance_inference(log_probs: torch.Tensor, mask_logits: torch.Tensor, thing: list[bool],
                       topk: int = 100) -> dict:
    """Mask2Former's instance inference for one image: the top-k (query, class) pairs over thing
    classes, masks ``logit > 0``, score = class probability x mean mask probability inside the mask."""
    q, k1 = log_probs.shape
    k = k1 - 1
    probs = log_probs.softmax(-1)[:, :k]
    is_thing = torch.tensor(thing, dtype=torch.bool, device=probs.device)
    probs = probs * is_thing  # stuff classes never become instances
    topk = min(topk, probs.numel())
    scores, flat = probs.flatten().topk(topk, sorted=False)
    labels = flat % k
    queries = flat // k
    keep = is_thing[labels]
    scores, labels, queries = scores[keep], labels[keep], queries[keep]
    masks = mask_logits[queries]
    binary = (masks > 0).float()
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return {"masks": binary.bool(), "scores": scores * mask_scores, "labels": labels}


# ---------------------------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------------------------
def load_weights(model: FCCLIP, path) -> None:
    """Trained weights into ``model``: an official detectron2 checkpoint (converted, see
    ``fcclip_weights``) or a file of ``trainable_state()`` saved by this project (a training run)."""
    raw = torch.load(path, map_location="cpu", weights_only=False)
    state = raw.get("model", raw.get("module", raw)) if isinstance(raw, dict) else raw
    if any(k.startswith("sem_seg_head.") for k in state):
        from .fcclip_weights import load_official

        load_official(model, path)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("clip.")]
    if missing or unexpected:
        raise ValueError(f"{path}: not FC-CLIP weights of this configuration: missing {missing[:5]} "
                         f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")


def build(clip: str = "clip-convnext-large-d-320", pretrained: bool = True, weights: str | None = None,
          **overrides) -> FCCLIP:
    """``FCCLIP`` on the registry CLIP ``clip`` (``pretrained``: the CLIP's real / toy weights).

    ``weights``: a file with trained FC-CLIP weights (``trainable_state`` or a training checkpoint) or
    an official checkpoint (``fcclip_cocopan.pth``, converted on load by ``ovnb.methods.fcclip_weights``).
    Toy CLIPs take the ``TOY`` sizes unless overridden.
    """
    base = dict(TOY) if clip.startswith("toy-") else {}
    base.update(overrides, clip=clip)
    if "train_classes" in base:
        base["train_classes"] = tuple(base["train_classes"])
    model = FCCLIP(FCCLIPConfig(**base), pretrained_clip=pretrained)
    if weights is not None:
        load_weights(model, weights)
    return model


# ---------------------------------------------------------------------------------------------
# training (through the book's one loop, ``ovnb.train.fit``)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    """The official schedule (``Base-COCO-PanopticSegmentation.yaml`` + FC-CLIP's config): AdamW 1e-4,
    weight decay 0.05 (none on normalisation layers and embeddings), batch 16, 368,750 iterations with
    x0.1 drops at 327,778 and 355,092, full-model gradient clipping at L2 0.01, AMP, large-scale jitter
    at 1024. detectron2's 10 warmup iterations use factor 1.0, i.e. no ramp: ``warmup=0`` here."""

    iterations: int = 368_750
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.05
    milestones: tuple[int, ...] = (327_778, 355_092)
    clip_grad: float | None = 0.01
    crop: int = 1024
    scale: tuple[float, float] = (0.1, 2.0)

    @classmethod
    def scaled(cls, iterations: int, **overrides) -> "TrainSettings":
        """The official schedule shortened to ``iterations`` (milestones at the same fractions)."""
        base = cls()
        milestones = tuple(max(1, round(m * iterations / base.iterations)) for m in base.milestones)
        return cls(**{**dict(iterations=iterations, milestones=milestones), **overrides})


def param_groups(model: FCCLIP) -> list[dict]:
    """detectron2's ``build_optimizer`` as Mask2Former/FC-CLIP call it: no weight decay on the parameters
    of normalisation layers (``WEIGHT_DECAY_NORM 0``) and embeddings (queries, void; ``WEIGHT_DECAY_EMBED
    0``); every other trainable parameter (biases, the temperature, level embeddings) decays. A trainable
    backbone copy (Table 6) learns at ``backbone_multiplier`` x the learning rate."""
    norms = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.Embedding)
    groups: dict[tuple[bool, bool], list] = {}
    seen = set()
    for module_name, module in model.named_modules():
        if module_name.startswith("clip"):
            continue
        for _, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_norm = isinstance(module, norms) or "norm" in type(module).__name__.lower()
            key = (module_name.startswith("trunk"), not is_norm)
            groups.setdefault(key, []).append(p)
    return [{"params": params, "decay": decay, "lr_scale": model.config.backbone_multiplier if backbone else 1.0}
            for (backbone, decay), params in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))]


def panoptic_batch(samples: list[dict], thing: list[bool], class_map: torch.Tensor, augment, generator):
    """Images ``[B, 3, S, S]`` (float, 0..1) and Mask2Former targets (masks, labels per image) after ``augment``
    (``LargeScaleJitter``); ``class_map[dataset id]`` = training label or 255 (not trained on)."""
    from ..panoptic import training_targets

    images, mask_labels, class_labels = [], [], []
    for s in samples:
        image, mask, inst = augment(s["image"], s["mask"], s["instances"], generator)
        images.append(image)
        masks, labels = training_targets(mask, inst, thing, class_map)
        mask_labels.append(masks)
        class_labels.append(labels)
    return torch.stack(images).div(255.0).clamp(0, 1), mask_labels, class_labels


def train(model: FCCLIP, dataset, class_ids, thing: list[bool], settings: TrainSettings, run_dir=None,
          seed: int = 0, progress: bool = True, stop_after: int | None = None, checkpoint_every: int = 1000,
          amp: bool = True, keep_every: int | None = None):
    """Train everything but the frozen CLIP on ``dataset`` (samples with ``image``, ``mask``,
    ``instances``) with the vocabulary ``class_ids`` (the training classes, e.g. COCO's 133); batch
    ``t`` is a pure function of ``(seed, t)``, so a resumed run ends with the same weights. ``keep_every``:
    keep the weights every that many steps (``ovnb.train.snapshots``) for a checkpoint-selection policy."""
    from ..data.augment import LargeScaleJitter
    from ..train import TrainConfig, fit, step_generator

    class_ids = [int(c) for c in class_ids]
    names = [dataset.class_names[c] for c in class_ids]
    class_map = torch.full((256,), 255, dtype=torch.long)
    class_map[torch.tensor(class_ids)] = torch.arange(len(class_ids))
    device = next(model.generator.parameters()).device
    augment = LargeScaleJitter(settings.crop, settings.scale)
    model.text(names)  # the frozen text classifier, computed once

    def loss_fn(step: int, micro: int) -> torch.Tensor:
        g = step_generator(seed, step, micro)
        index = torch.randint(len(dataset), (settings.batch_size,), generator=g).tolist()
        images, masks, labels = panoptic_batch([dataset[i] for i in index], thing, class_map, augment, g)
        out = model(images.to(device), names)
        return model.loss(out, [m.to(device) for m in masks], [c.to(device) for c in labels])

    config = TrainConfig(iterations=settings.iterations, lr=settings.lr, weight_decay=settings.weight_decay,
                         schedule="step", milestones=settings.milestones, clip_grad=settings.clip_grad, seed=seed,
                         checkpoint_every=checkpoint_every, amp=amp)
    trainable = _Trainable(model)
    groups = [{"params": g["params"], "decay": g["decay"], "lr": settings.lr * g["lr_scale"]} for g in param_groups(model)]
    return fit(trainable, loss_fn, config, run_dir=run_dir, param_groups=groups, progress=progress,
               stop_after=stop_after, description="FC-CLIP", keep_every=keep_every)


class _Trainable(nn.Module):
    """FC-CLIP's learned parts as one module for the training loop (checkpoints hold no CLIP weights,
    like the official ones)."""

    def __init__(self, model: FCCLIP):
        super().__init__()
        self.generator = model.generator
        self.mask_pooling_proj = model.mask_pooling_proj
        self.class_embed = model.class_embed
        self.void_embedding = model.void_embedding
        self.logit_scale = model.logit_scale
        if model.trunk is not None:
            self.trunk = model.trunk
