"""PnP-OVSS (Luo et al., CVPR 2024): training-free segmentation from a vision-language model's
text-to-image cross-attention, GradCAM on the image-text matching score, Salience DropOut, blur and
a dense CRF. Nothing is trained.

For one image and its candidate classes ``c1 .. cn`` (Sec. 3):

1. **One caption** "A picture of c1 c2 ... cn" (names made single-word, as the official code does:
   spaces and hyphens removed), its first token replaced by BLIP's ``[ENC]``; the loss is the raw
   ITM "match" logit (summed over the batch; not a cross-entropy).
2. **GradCAM** (Sec. 3.2, Eq. 2) on one cross-attention layer and head: attention x relu(d loss /
   d attention), the image-CLS key and the first query dropped, the rows of each class's word pieces
   averaged (``token_spans``).
3. **Salience DropOut** (Sec. 3.3): ``passes`` forward/backward passes; before each later pass the
   ``drop_patches`` most salient not-yet-dropped patches (by the class-summed map) are zeroed in the
   normalised image and in that pass's maps; the maps are summed, pass 0 twice (official aggregation).
4. **Post-processing** (Sec. 3.4): per class min-max, keep the raw map where the normalised one is
   >= ``threshold``; bilinear upsampling to the image; the background channel by the dataset's rule
   (``BACKGROUND_RULES``); Gaussian blur sigma = ``blur_sigma`` x max(H, W) and min-max; softmax and a
   dense CRF with CutLER's parameters (``crf_step``); argmax.

**The fast way (default).** The gradient needed is only that of the chosen layer's attention. The
model stays frozen and the attention probabilities of that layer become the only tensor that needs
a gradient (``_LeafProbe``), so the vision encoder and the layers below run without an autograd
graph and the backward pass covers the text layers above only. ``mode="official"`` runs the
official way (every parameter differentiable, one backward through the whole model, the maps of
every layer and head kept) for the benchmark (``ovnb benchmark pnp-ovss``) and for looking at every
layer. Both give the same masks.

**Batches.** The official patch choice sums the token rows of the caption including, for captions
shorter than the batch's longest, the ``[SEP]`` row, so an image's patches depend a little on its
batch. Here the choice sums the class-token rows only, so a batch gives the masks of one image at
a time.

Every hard-coded number of the official code is a field of ``PnPConfig`` with the official value as
default; the notebook ``03_pnp_ovss_method`` lists the deviations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .contract import check_inputs

# Datasets' background rules (official code, A.6): "always" adds a background channel, "fewer-than-3"
# only when fewer than three classes are candidates, "never" has none (the toy world: every pixel
# belongs to a class)
BACKGROUND_RULES = {
    "voc-21": "always", "pascal-context-60": "fewer-than-3", "ade20k-151": "fewer-than-3",
    "coco-object-81": "always", "coco-stuff-172": "fewer-than-3",
}
RULES = ("always", "fewer-than-3", "never")
CUTLER_CRF = dict(iterations=10, gaussian_sxy=3, gaussian_compat=7, bilateral_sxy=50, bilateral_srgb=5,
                  bilateral_compat=10)
BLIP_ENC_TOKEN_ID = 30523  # LAVIS adds [DEC] = 30522 and [ENC] = 30523 to bert-base-uncased
CRF_INSTALL = ("the dense CRF needs pydensecrf2: pip install 'ovnb[crf]' (or pip install pydensecrf2; it "
               "compiles a C++ extension, so a compiler is needed), or set crf=False")


@dataclass(frozen=True)
class PnPConfig:
    """Every choice of the method; defaults are the official BLIP run (Table 2's solution)."""

    image_size: int = 336  # square resize, bicubic, aspect not kept (official --img_size 336)
    layer: int = 8  # cross-attention layer, 1-based (official max_att_block_num 8)
    head: int | str = 10  # attention head, 1-based (official prune_att_head 9, 0-based), or "mean" (Table 6)
    prompt: str = "A picture of"
    single_word: bool = True  # remove spaces and hyphens from names (official; needs a WordPiece vocabulary)
    first_token: str = "enc"  # "enc": BLIP's [ENC] replaces [CLS] (LAVIS ITM); "keep": the tokenizer's own
    gradcam: bool = True  # False: the raw attention map (Table 5's first row)
    passes: int = 4  # forward/backward passes: 1 clean + 3 Salience DropOut (official drop_iter 4)
    drop_patches: int = 10  # new patches dropped before each later pass (official save_len, hard-coded)
    first_pass_twice: bool = True  # official aggregation: map_0 + sum_t map_t
    last_class_sum: bool = False  # official quirk: a multi-piece last class gets the sum of its pieces
    threshold: float = 0.15  # on the min-max normalised map (official --threshold)
    align_corners: bool = True  # official bilinear upsampling to the image size
    rescale_after_upsampling: bool = False  # official COCO script min-max scales each map after upsampling
    background: str = "fewer-than-3"  # BACKGROUND_RULES
    blur: bool = True
    blur_sigma: float = 0.05  # x max(H, W) (Table 2's solution)
    crf: bool = True
    crf_params: dict = field(default_factory=lambda: dict(CUTLER_CRF))
    mode: str = "fast"  # "fast" | "official" (see the module docstring; same masks)

    def __post_init__(self):
        if self.background not in RULES:
            raise ValueError(f"background must be one of {RULES}, got {self.background!r}")
        if self.mode not in ("fast", "official"):
            raise ValueError(f"mode must be 'fast' or 'official', got {self.mode!r}")
        if self.first_token not in ("enc", "keep"):
            raise ValueError(f"first_token must be 'enc' or 'keep', got {self.first_token!r}")
        if self.passes < 1:
            raise ValueError(f"passes must be >= 1 (1 = no Salience DropOut), got {self.passes}")
        if not isinstance(self.head, int) and self.head != "mean":
            raise ValueError(f"head must be a 1-based head index or 'mean', got {self.head!r}")
        if self.layer < 1:
            raise ValueError(f"layer is 1-based, got {self.layer}")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")


# ----------------------------------------------------------------------------------------------
# The caption and its tokens


def caption_names(names, single_word: bool = True) -> list[str]:
    """Class names as they go into the caption: spaces and hyphens removed when ``single_word``
    (official: "traffic light" -> "trafficlight", "wall-brick" -> "wallbrick")."""
    return [re.sub(r"[\s\-]+", "", n) if single_word else " ".join(n.split()) for n in names]


def caption(names, prompt: str = "A picture of") -> tuple[str, list[tuple[int, int]]]:
    """The caption "A picture of c1 c2 ..." and the character span of each name in it."""
    text, spans = prompt, []
    for n in names:
        text += " "
        spans.append((len(text), len(text) + len(n)))
        text += n
    return text, spans


def token_spans(offsets, char_spans) -> list[list[int]]:
    """For each class (by its character span in the caption), the token positions whose text
    starts inside it. ``offsets``: the tokenizer's ``(start, end)`` per token ((0, 0) for specials).
    A name of several word pieces or words gets several positions (official: wordpieces averaged)."""
    out = []
    for lo, hi in char_spans:
        out.append([i for i, (s, e) in enumerate(offsets) if e > s and lo <= s < hi])
    for k, rows in enumerate(out):
        if not rows:
            raise ValueError(f"class {k} (caption characters {char_spans[k]}) got no token; the tokenizer "
                             f"truncated the caption")
    return out


def class_maps(token_maps: torch.Tensor, spans, last_class_sum: bool = False) -> torch.Tensor:
    """``[K, N]`` per-class maps from ``[T, N]`` per-token maps: the mean over each class's rows
    (official ``Mean_over_filtered_label_tokens``); with ``last_class_sum`` the last class keeps the
    sum of its rows, as the official loop does when the last name has several pieces."""
    rows = []
    for k, idx in enumerate(spans):
        part = token_maps[idx]
        rows.append(part.sum(0) if (last_class_sum and k == len(spans) - 1) else part.mean(0))
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------------
# The vision-language models: one adapter per family


class _LeafProbe:
    """A forward hook on a cross-attention module that makes its attention probabilities a leaf
    needing a gradient and recomputes the context from it: the only graph built is from this layer
    up. ``probs`` holds the leaf after the forward."""

    def __init__(self, module):
        self.probs = None
        self.handle = module.register_forward_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs, output):
        context, probs = output[0], output[1]
        enc = kwargs.get("encoder_hidden_states")
        if enc is None:
            enc = args[2] if len(args) > 2 else args[1]
        b, n = enc.shape[:2]
        value = module.value(enc).view(b, n, -1, module.attention_head_size).transpose(1, 2)
        leaf = probs.detach().requires_grad_(True)
        self.probs = leaf
        new = torch.matmul(leaf, value).transpose(1, 2).reshape(context.shape)
        return (new, leaf) + tuple(output[2:])

    def remove(self):
        self.handle.remove()


class _Recorder:
    """A forward hook keeping a layer's attention probabilities in the graph (the official way)."""

    def __init__(self, module):
        self.probs = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, args, output):
        self.probs = output[1]
        if self.probs.requires_grad:
            self.probs.retain_grad()

    def remove(self):
        self.handle.remove()


class BlipVLM:
    """transformers' ``BlipForImageTextRetrieval`` (via ``ovnb.encoders``' ``BlipITMEncoder``)."""

    def __init__(self, encoder):
        self.encoder, self.model = encoder, encoder.model
        self.tokenizer = encoder.tokenizer
        self.patch = encoder.patch
        cfg = self.model.config.text_config
        self.layers, self.heads = cfg.num_hidden_layers, cfg.num_attention_heads
        self.max_tokens = cfg.max_position_embeddings
        self.enc_token_id = BLIP_ENC_TOKEN_ID if cfg.vocab_size > BLIP_ENC_TOKEN_ID else None

    def cross_attention(self, layer: int):
        return self.model.text_encoder.encoder.layer[layer].crossattention.self

    def match_logit(self, pixels, input_ids, attention_mask) -> torch.Tensor:
        image = self.model.vision_model(pixel_values=pixels,
                                        interpolate_pos_encoding=pixels.shape[-1] != self.encoder.image_size)
        embeds = image.last_hidden_state
        atts = torch.ones(embeds.shape[:-1], dtype=torch.long, device=embeds.device)
        out = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                      encoder_hidden_states=embeds, encoder_attention_mask=atts)
        return self.model.itm_head(out.last_hidden_state[:, 0])[:, 1]


class BridgeTowerVLM:
    """transformers' ``BridgeTowerForImageAndTextRetrieval``: the cross-attention of the cross-modal
    text layers (text queries, image keys with the image CLS first)."""

    def __init__(self, encoder):
        self.encoder, self.model = encoder, encoder.model
        self.tokenizer = encoder.tokenizer
        self.patch = encoder.patch
        cfg = self.model.config
        self.layers, self.heads = cfg.num_hidden_layers, cfg.num_attention_heads
        self.max_tokens = cfg.text_config.max_position_embeddings - 2
        self.enc_token_id = None

    def cross_attention(self, layer: int):
        return self.model.bridgetower.cross_modal_text_layers[layer].crossattention.self

    def match_logit(self, pixels, input_ids, attention_mask) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixels,
                         pixel_mask=torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.long,
                                               device=pixels.device),
                         interpolate_pos_encoding=pixels.shape[-1] != self.encoder.image_size)
        return out.logits[:, 1]


def vlm_adapter(encoder):
    from ..encoders.itm import BlipITMEncoder, BridgeTowerITMEncoder

    if isinstance(encoder, BlipITMEncoder):
        return BlipVLM(encoder)
    if isinstance(encoder, BridgeTowerITMEncoder):
        return BridgeTowerVLM(encoder)
    raise ValueError(f"PnP-OVSS needs a model with text-to-image cross-attention and an ITM head "
                     f"(BLIP or BridgeTower), got {type(encoder).__name__}")


# ----------------------------------------------------------------------------------------------
# Post-processing steps (each a function of numbers, tested on hand-made maps)


def threshold_maps(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[K, h, w]``: per class, the raw map where its min-max normalised map is >= ``threshold``,
    else 0 (official). A constant map normalises to 0 everywhere (the official code would divide by 0)."""
    return maps * (minmax(maps) >= threshold)


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Per-channel min-max to [0, 1]; a constant channel becomes 0 (the official code gives NaN)."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return torch.where(hi > lo, (flat - lo) / (hi - lo).clamp_min(1e-30), torch.zeros_like(flat)).view_as(maps)


def add_background(maps: torch.Tensor, rule: str) -> tuple[torch.Tensor, bool]:
    """The maps with the background channel first when ``rule`` asks for it: 1 where every class
    map is 0, else 0 (official ``max over classes == 0``). Returns (maps, added)."""
    if rule not in RULES:
        raise ValueError(f"background rule must be one of {RULES}, got {rule!r}")
    if rule == "never" or (rule == "fewer-than-3" and maps.shape[0] >= 3):
        return maps, False
    bg = (maps.max(0, keepdim=True).values == 0).to(maps.dtype)
    return torch.cat([bg, maps]), True


def blur_step(maps: torch.Tensor, sigma_fraction: float) -> torch.Tensor:
    """Gaussian blur of every channel with sigma = ``sigma_fraction`` x max(H, W) pixels
    (``scipy.ndimage.gaussian_filter``, as the official code), then min-max per channel."""
    from scipy.ndimage import gaussian_filter

    sigma = sigma_fraction * max(maps.shape[-2:])
    arr = maps.detach().cpu().double().numpy()
    out = np.stack([gaussian_filter(ch, sigma=sigma) for ch in arr])
    return minmax(torch.from_numpy(out).float())


def crf_step(maps: torch.Tensor, image: torch.Tensor, params: dict | None = None) -> torch.Tensor:
    """Dense CRF (Kraehenbuehl & Koltun) on softmax(maps) over channels with the RGB ``image``
    (uint8 [3, H, W]): pydensecrf's ``DenseCRF2D`` with CutLER's parameters; returns Q ``[C, H, W]``."""
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError as e:
        raise ImportError(CRF_INSTALL) from e
    p = {**CUTLER_CRF, **(params or {})}
    c, h, w = maps.shape
    probs = torch.softmax(maps.float(), dim=0).cpu().numpy()
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    d.addPairwiseGaussian(sxy=p["gaussian_sxy"], compat=p["gaussian_compat"])
    rgb = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
    d.addPairwiseBilateral(sxy=p["bilateral_sxy"], srgb=p["bilateral_srgb"], rgbim=rgb, compat=p["bilateral_compat"])
    q = np.array(d.inference(p["iterations"])).reshape(c, h, w)
    return torch.from_numpy(q).float()


# ----------------------------------------------------------------------------------------------
# The method


@dataclass
class Explanation:
    """Everything one image goes through (``PnPOVSS.explain``), for figures."""

    caption: str
    tokens: list[str]
    spans: list[list[int]]  # token positions (in the caption) of each class
    classes: list[int]  # class indices (into the vocabulary) of the candidates
    pass_maps: list[torch.Tensor]  # per pass, [K, g, g] per-class maps (dropped patches zeroed)
    dropped: list[list[int]]  # per pass, the patches dropped before it (cumulative)
    aggregated: torch.Tensor  # [K, g, g]
    thresholded: torch.Tensor  # [K, g, g]
    upsampled: torch.Tensor  # [C, H, W], background first when added
    background_added: bool
    blurred: torch.Tensor | None
    crf: torch.Tensor | None
    labels: torch.Tensor  # [H, W] class indices into the vocabulary
    layer_maps: dict | None = None  # official mode, pass 0: {(layer, head): [K, g, g]} (0-based)


class PnPOVSS(torch.nn.Module):
    """``segment(images, class_names, candidates=None)`` -> ``[B, K, H, W]`` scores whose argmax is
    the PnP-OVSS label map. ``candidates[i]``: the classes (names or indices) put in image ``i``'s
    caption (ground truth, a GPT-4o list, a CLIP choice); default every class but the background.
    ``background_class``: the vocabulary's name for the background channel (when the rule adds one)."""

    def __init__(self, encoder, config: PnPConfig = PnPConfig(), background_class: str = "background"):
        super().__init__()
        self.encoder = encoder
        self.vlm = vlm_adapter(encoder)
        self.config = config
        self.background_class = background_class
        if config.layer > self.vlm.layers:
            raise ValueError(f"layer {config.layer} does not exist: the model has {self.vlm.layers} cross-attention "
                             f"layers (1-based)")
        if isinstance(config.head, int) and not 1 <= config.head <= self.vlm.heads:
            raise ValueError(f"head {config.head} does not exist: the model has {self.vlm.heads} heads (1-based)")

    @property
    def grid(self) -> int:
        return self.config.image_size // self.vlm.patch

    def configure(self, **changes) -> "PnPOVSS":
        """The same model with some config fields changed (no copy of the weights)."""
        return PnPOVSS(self.encoder, replace(self.config, **changes), self.background_class)

    # -- inputs ----------------------------------------------------------------------------------
    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]``: resized to ``image_size`` (bicubic, aspect not kept) and normalised with the
        VLM's mean and std (``FrozenEncoder.preprocess``)."""
        return self.encoder.preprocess(images, self.config.image_size)

    def tokens(self, names: list[str]) -> tuple[dict, list[list[int]], str]:
        """Token ids of the caption of ``names`` and each class's token positions."""
        words = caption_names(names, self.config.single_word)
        text, char_spans = caption(words, self.config.prompt)
        enc = self.vlm.tokenizer(text, return_offsets_mapping=True, truncation=False)
        if len(enc["input_ids"]) > self.vlm.max_tokens:
            raise ValueError(f"the caption of {len(names)} classes holds {len(enc['input_ids'])} tokens, but the model "
                             f"reads at most {self.vlm.max_tokens}; give fewer candidate classes per image "
                             f"(ground-truth labels or a CLIP/GPT choice)")
        spans = token_spans(enc["offset_mapping"], char_spans)
        ids = list(enc["input_ids"])
        if self.config.first_token == "enc":
            if self.vlm.enc_token_id is None:
                raise ValueError("first_token='enc' needs BLIP's [ENC] token, which this model's vocabulary lacks; "
                                 "use first_token='keep'")
            ids[0] = self.vlm.enc_token_id
        return {"input_ids": ids}, spans, text

    def _batch_tokens(self, lists):
        toks = [self.tokens(n) for n in lists]
        width = max(len(t[0]["input_ids"]) for t in toks)
        pad = self.vlm.tokenizer.pad_token_id or 0
        ids = torch.full((len(toks), width), pad, dtype=torch.long)
        mask = torch.zeros((len(toks), width), dtype=torch.long)
        for i, t in enumerate(toks):
            row = t[0]["input_ids"]
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
        dev = self.encoder.device
        return ids.to(dev), mask.to(dev), [t[1] for t in toks], [t[2] for t in toks]

    # -- one pass --------------------------------------------------------------------------------
    def _pass(self, pixels, ids, mask, keep_all: bool = False):
        """Per-token maps ``[B, T-1, N]`` of the configured layer/head (query 0 and the image CLS key
        dropped) after one forward (+ backward for GradCAM); with ``keep_all`` (official mode) also
        every layer's ``[B, heads, T-1, N]`` maps."""
        cfg, vlm = self.config, self.vlm
        layer = cfg.layer - 1
        official = cfg.mode == "official"
        if official:
            probes = {i: _Recorder(vlm.cross_attention(i)) for i in range(vlm.layers)}
            params = list(self.encoder.model.parameters())
            for p in params:
                p.requires_grad_(True)
        else:
            probes = {layer: _LeafProbe(vlm.cross_attention(layer))}
        try:
            with torch.enable_grad() if cfg.gradcam else torch.no_grad():
                logit = vlm.match_logit(pixels, ids, mask)
                if cfg.gradcam:
                    if official:
                        self.encoder.model.zero_grad(set_to_none=True)
                        logit.sum().backward()
                    else:
                        probe = probes[layer]
                        probe.probs.grad = torch.autograd.grad(logit.sum(), probe.probs)[0]
        finally:
            for p in probes.values():
                p.remove()
            if official:
                for p in params:
                    p.requires_grad_(False)
                self.encoder.model.zero_grad(set_to_none=True)

        def cam(probs):
            a = probs.detach()[:, :, :, 1:]
            if cfg.gradcam:
                a = a * probs.grad[:, :, :, 1:].clamp_min(0)
            return a[:, :, 1:]  # drop query 0 ([ENC])

        chosen = cam(probes[layer].probs)
        chosen = chosen.mean(1) if cfg.head == "mean" else chosen[:, cfg.head - 1]
        every = {i: cam(p.probs) for i, p in probes.items()} if keep_all and official else None
        return chosen.float(), every

    # -- the method ------------------------------------------------------------------------------
    def _candidates(self, class_names, candidates, batch):
        index = {n: i for i, n in enumerate(class_names)}
        bg = index.get(self.background_class)
        if candidates is None:
            full = [i for i in range(len(class_names)) if i != bg]
            return [list(full) for _ in range(batch)], bg
        if len(candidates) != batch:
            raise ValueError(f"candidates holds {len(candidates)} lists for {batch} images; give one list per image")
        out = []
        for i, cands in enumerate(candidates):
            ids = []
            for c in cands:
                if isinstance(c, str):
                    if c not in index:
                        raise ValueError(f"candidate {c!r} of image {i} is not in class_names")
                    c = index[c]
                if not 0 <= int(c) < len(class_names):
                    raise ValueError(f"candidate index {c} of image {i} is out of range for {len(class_names)} classes")
                if int(c) != bg and int(c) not in ids:
                    ids.append(int(c))
            if not ids:
                raise ValueError(f"image {i} has no candidate class; give at least one (the official code falls back "
                                 f"to the dataset's first class: ``ovnb.data.class_lists``)")
            out.append(ids)
        return out, bg

    def maps(self, images: torch.Tensor, class_names, candidates=None, keep_all: bool = False):
        """Salience DropOut over a batch: per image, the per-pass ``[K_i, g, g]`` class maps, the dropped
        patches and (``keep_all``, official mode) every layer's maps of pass 0."""
        cfg = self.config
        images, class_names = check_inputs(images, class_names)
        cands, _ = self._candidates(class_names, candidates, images.shape[0])
        ids, mask, spans, texts = self._batch_tokens([[class_names[c] for c in cs] for cs in cands])
        pixels = self.pixels(images)
        g, p = self.grid, self.vlm.patch
        b = images.shape[0]
        dropped = [[] for _ in range(b)]
        passes, drops, every0 = [[] for _ in range(b)], [[] for _ in range(b)], None
        for t in range(cfg.passes):
            tokmaps, every = self._pass(pixels, ids, mask, keep_all and t == 0)
            if every is not None:
                every0 = every
            for i in range(b):
                m = class_maps(tokmaps[i], [[r - 1 for r in s] for s in spans[i]], cfg.last_class_sum)
                if dropped[i]:
                    m[:, dropped[i]] = 0
                    tokmaps[i][:, dropped[i]] = 0
                passes[i].append(m.view(-1, g, g).cpu())
                drops[i].append(list(dropped[i]))
            if t + 1 < cfg.passes:  # choose the next patches and zero them in the normalised image
                pixels = pixels.clone()
                for i in range(b):
                    rows = sorted({r - 1 for s in spans[i] for r in s})
                    salience = tokmaps[i][rows].sum(0)
                    salience[dropped[i]] = 0
                    order = torch.argsort(-salience, stable=True).tolist()
                    new = [q for q in order if q not in dropped[i]][:cfg.drop_patches]
                    dropped[i].extend(new)
                    for q in new:
                        r, c = divmod(q, g)
                        pixels[i, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = 0
        return dict(passes=passes, dropped=drops, spans=spans, captions=texts, candidates=cands, ids=ids,
                    every=every0)

    def aggregate(self, pass_maps: list[torch.Tensor]) -> torch.Tensor:
        total = sum(pass_maps)
        return total + pass_maps[0] if self.config.first_pass_twice else total

    def postprocess(self, agg: torch.Tensor, image: torch.Tensor) -> dict:
        """Thresholding, upsampling to ``image``'s size, background, blur, CRF and argmax of one image's
        aggregated ``[K, g, g]`` maps; returns every stage and ``channels`` (final per-channel scores)."""
        cfg = self.config
        th = threshold_maps(agg, cfg.threshold)
        h, w = image.shape[-2:]
        up = F.interpolate(th[None], size=(h, w), mode="bilinear", align_corners=cfg.align_corners)[0]
        if cfg.rescale_after_upsampling:
            up = minmax(up)
        up, added = add_background(up, cfg.background)
        scores = up
        blurred = crf = None
        if cfg.blur:
            scores = blurred = blur_step(up, cfg.blur_sigma)
        if cfg.crf:
            scores = crf = crf_step(scores, image if image.dtype == torch.uint8 else (image * 255).round().byte(),
                                    cfg.crf_params)
        return dict(thresholded=th, upsampled=up, background_added=added, blurred=blurred, crf=crf, channels=scores)

    def segment(self, images: torch.Tensor, class_names, candidates=None) -> torch.Tensor:
        """``[B, K, H, W]``: the final score of each candidate channel at its class, the background channel
        at ``background_class``; classes not in an image's caption get -1 (never the argmax)."""
        images, class_names = check_inputs(images, class_names)
        out = self.maps(images, class_names, candidates)
        return torch.stack([self.scores(out["passes"][i], images[i], out["candidates"][i], class_names)
                            for i in range(images.shape[0])])

    def scores(self, pass_maps: list[torch.Tensor], image: torch.Tensor, candidates: list[int], class_names,
               passes: int | None = None) -> torch.Tensor:
        """``[K, H, W]`` scores of one image from its per-pass maps (``maps``): aggregation of the first
        ``passes`` passes (default all; a run with fewer passes gives exactly these), post-processing,
        channels put at their classes. Table 5's rows share one ``maps`` call this way."""
        return self.place(self.postprocess(self.aggregate(pass_maps[:passes]), image), candidates, class_names)

    def place(self, post: dict, candidates: list[int], class_names) -> torch.Tensor:
        """``[K, H, W]``: the channels of ``postprocess`` at their classes (the background channel at
        ``background_class``), -1 for classes outside the caption."""
        ch = post["channels"]
        out = torch.full((len(class_names), *ch.shape[-2:]), -1.0)
        if post["background_added"]:
            bg = {n: i for i, n in enumerate(class_names)}.get(self.background_class)
            if bg is None:
                raise ValueError(f"the background rule {self.config.background!r} added a background channel, but "
                                 f"class_names has no {self.background_class!r} class; add it (e.g. the voc-21 "
                                 f"split) or use background='never'")
            out[bg] = ch[0]
            ch = ch[1:]
        for k, c in enumerate(candidates):
            out[c] = ch[k]
        return out

    def explain(self, image: torch.Tensor, class_names, candidates=None, keep_all: bool = False) -> Explanation:
        """Every stage of one image (``image``: [3, H, W]); ``keep_all`` needs ``mode="official"``."""
        model = self.configure(mode="official") if keep_all else self
        out = model.maps(image[None], class_names, None if candidates is None else [candidates], keep_all=keep_all)
        agg = model.aggregate(out["passes"][0])
        post = model.postprocess(agg, image)
        cands = out["candidates"][0]
        ids = out["ids"][0].tolist()
        length = int((out["ids"][0] != (self.vlm.tokenizer.pad_token_id or 0)).sum())
        toks = [t if t is not None else "[ENC]" for t in self.vlm.tokenizer.convert_ids_to_tokens(ids[:length])]
        layer_maps = None
        if keep_all and out["every"] is not None:
            layer_maps = {}
            spans = [[r - 1 for r in s] for s in out["spans"][0]]
            for li, m in out["every"].items():
                for hi in range(m.shape[1]):
                    layer_maps[(li, hi)] = class_maps(m[0, hi], spans).view(-1, self.grid, self.grid).cpu()
        return Explanation(caption=out["captions"][0], tokens=toks, spans=out["spans"][0], classes=cands,
                           pass_maps=out["passes"][0], dropped=out["dropped"][0], aggregated=agg,
                           thresholded=post["thresholded"], upsampled=post["upsampled"],
                           background_added=post["background_added"], blurred=post["blurred"], crf=post["crf"],
                           labels=model.place(post, cands, class_names).argmax(0), layer_maps=layer_maps)


def build(vlm: str = "blip-itm-large-flickr", pretrained: bool = False, device=None, background_class: str = "background",
          **config) -> PnPOVSS:
    """``ovnb.methods.build("pnp_ovss", vlm=NAME, pretrained=..., **PnPConfig fields)``. The toy BLIP
    (``vlm="toy-blip"``) gets its own defaults unless given: 64 px, ``first_token="keep"`` (it was
    pretrained with [CLS] first; its word-level vocabulary has no [ENC]), ``single_word=False``
    (its vocabulary has the words, not the joined names), 4 layers x 4 heads (layer 2, head mean)."""
    from .. import encoders

    enc = encoders.build(vlm, pretrained=pretrained, device=device)
    defaults = {}
    if vlm.startswith("toy-"):
        defaults = dict(image_size=enc.image_size, first_token="keep", single_word=False, layer=2, head="mean",
                        background="never")
    elif vlm.startswith("bridgetower"):
        defaults = dict(first_token="keep", layer=2, head=8)  # Table 2's BridgeTower solution
    return PnPOVSS(enc, PnPConfig(**{**defaults, **config}), background_class)


__all__ = ["PnPConfig", "PnPOVSS", "Explanation", "build", "caption", "caption_names", "token_spans", "class_maps",
           "threshold_maps", "minmax", "add_background", "blur_step", "crf_step", "BACKGROUND_RULES"]
