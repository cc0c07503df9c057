"""Pretrain the toy foundation models on captioned toy images covering the whole vocabulary.

This is the toy world's "web": every class appears, in scenes and alone, with captions that name
it (half of the single-object captions are written with the papers' prompt templates, as CLIP saw
"a photo of a ..." on the web). Segmentation training later sees only seen classes; these models
saw everything, then stay frozen - as CLIP and BLIP did.

* Text first. A from-scratch toy text tower means nothing at step 0 (the real models started from
  text that did: BLIP's text encoder is initialised from BERT, LiT locks a pretrained tower), and
  trained jointly with the image tower both start from noise: the ConvNeXt CLIP needed 700 steps to
  reach 0.91 held-out top-1 that way. So the CLIPs' text tower is pretrained on the pool's captions
  alone (``train_text``: each caption classified among one prompt per vocabulary class, by cosine
  similarity in the same tower) and then *locked*; the ConvNeXt's image tower, trained into it from
  scratch, reaches 0.97 after 300 steps (held-out n = 300, 1 thread, 400-step schedule).
* Both toy CLIPs: symmetric contrastive loss (InfoNCE) in which every caption that describes an
  image is a positive of it (``_positives``: it names every thing in the image and nothing the
  image lacks). A toy batch holds many images of one class, and "a photo of a red star" describes
  every red star in it: counting only an image's own caption as positive pushes such captions away
  and slows the learning of shape (held-out top-1 after 400 of 500 steps: 0.56 with own-caption
  positives, 0.69 with describing-caption positives). Half of every batch is single objects of one
  colour (hard negatives): otherwise the loss is solved by colour alone and shape is never learned.
* The ConvNeXt CLIP is trained first. The ViT CLIP then shares its locked text tower and trains its
  image tower with the same contrastive loss plus a distillation term: the KL divergence between its
  and the ConvNeXt's softmax over the whole vocabulary (``distil_weight``, ``distil_temperature``).
  A ViT trained from scratch on a few ten thousand images learns colour and never leaves the
  log(8) plateau of shape (it scored 0.39 top-1 in the budget), so the toy ViT also deviates from
  ViT-L/14 in three places: fixed 2-D sin-cos position embeddings and average pooling of the patch
  tokens (the "simple ViT" recipe of Beyer et al. 2022, set in ``toy_configs/toy-clip-vit.json``)
  and mimetic initialisation of the attention weights (Trockman & Kolter 2023, ``mimetic_init``),
  which starts attention local, as a convolution's. The patch tokens that Fusioner reads are
  unchanged in kind.
* Toy BLIP: its text encoder is pretrained on the captions alone first (``train_text``, on the
  [CLS] embedding of its contrastive loss; it stands in for BLIP's BERT initialisation), then
  everything trains on image-text matching (binary cross-entropy over the ITM head) on the true
  caption and a hard negative (one thing's colour changed: "red star" -> "blue star"), plus BLIP's
  image-text contrastive loss. (BLIP mines its hard negatives by contrastive similarity; the toy's
  colour swap is the negative the quality bar measures.) Its batches are drawn at random, images
  whose caption names two or more things ``blip_binding_weight`` times more often: there the model
  must bind each colour to its shape, and the colour-grouped batches of the CLIPs (mostly single
  objects) left it weakest exactly there. Its vision tower has 4 layers (6 learned more slowly: ITM
  accuracy 0.89 vs 0.93 after 100 of 150 steps, held-out n = 300).
* The toy BLIP's vision tower starts from the trained toy CLIP ViT (``blip_vision_init``,
  ``vision_from_open_clip``: its patch embedding, class token, position embeddings, first four
  blocks and final norm), as BLIP's ViT starts from an ImageNet-pretrained ViT; open_clip's
  ``ln_pre`` has no counterpart in BLIP's ViT and is dropped. It then stays frozen through the BLIP
  pretraining (``blip_freeze_vision``; BLIP fine-tunes its ViT - a deviation for the 130-step
  schedule). Trained from scratch in 130 steps, the vision tower's patch tokens do not stay local, and
  neither does the text-to-image cross-attention that PnP-OVSS reads: its GradCAM pointed inside
  the named object no more often than chance in some runs of the same recipe.

Deterministic on a given machine and thread count: fixed seeds, fixed data, no data-loader workers.
``ovnb toy pretrain`` runs everything and rewrites ``toy_weights/`` with a new manifest.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import toy_world
from . import templates as template_sets
from . import toy
from .openclip import encode_text


@dataclass
class PretrainConfig:
    pool_size: int = 20000  # captioned images generated once, then iterated
    steps_text: int = 100  # text-only pretraining of the CLIP text tower and of BLIP's text encoder
    steps_clip_convnext: int = 300
    steps_clip_vit: int = 300
    steps_blip: int = 130
    lr_text: float = 2e-3
    lr_clip_convnext: float = 1.5e-3
    lr_clip_vit: float = 2e-3
    lr_blip: float = 1e-3
    warmup_text: int = 10
    warmup_clip_convnext: int = 40
    warmup_clip_vit: int = 30
    warmup_blip: int = 30
    batch_size: int = 128
    weight_decay: float = 0.05
    text_temperature: float = 0.07  # text pretraining: softmax temperature over the vocabulary's prompts
    distil_weight: float = 1.0  # ViT CLIP: weight of the KL term towards the ConvNeXt CLIP
    distil_temperature: float = 0.02  # softmax temperature over the vocabulary (student and teacher)
    mimetic: tuple[float, float, float, float] = (0.7, 0.7, 0.4, 0.4)  # alpha1, beta1, alpha2, beta2
    blip_binding_weight: float = 3.0  # BLIP draws images whose caption names >= 2 things this much more often
    blip_vision_init: str | None = "toy-clip-vit"  # BLIP's vision tower starts from this trained toy CLIP (None: scratch)
    blip_freeze_vision: bool = True  # ... and stays frozen while BLIP pretrains
    seed: int = 0
    eval_images: int = 600


SMOKE = PretrainConfig(pool_size=256, steps_text=2, steps_clip_convnext=3, steps_clip_vit=3, steps_blip=3,
                       batch_size=16, warmup_text=1, warmup_clip_convnext=1, warmup_clip_vit=1, warmup_blip=1,
                       eval_images=32)


# ----------------------------------------------------------------------------------------------
# data


@lru_cache(maxsize=None)
def _all_templates() -> tuple[str, ...]:
    return tuple(t for s in template_sets.NAMES for t in template_sets.get(s))


def _template_caption(name: str, rng: np.random.Generator) -> str:
    templates = _all_templates()
    return templates[rng.integers(len(templates))].format(name)


POOL_MIX = (("single", 0.60), ("scene", 0.25), ("stuff", 0.15))


def make_pool(size: int, seed: int, split: str = "pretrain", progress: bool = True):
    """``size`` captioned toy images: uint8 images [N, 3, 64, 64], captions, the classes each
    caption names and the classes each image holds (a caption may leave out the background; see
    ``_positives``).

    Mostly single objects (``POOL_MIX``): a batch then holds objects that share a colour but not a
    shape, so the contrastive loss cannot be solved by colour alone; scenes teach the compositional
    captions, stuff-only images the backgrounds.
    """
    voc = toy_world.vocabulary()
    rng = np.random.default_rng([seed, 99])
    images = torch.empty(size, 3, toy.IMAGE_SIZE, toy.IMAGE_SIZE, dtype=torch.uint8)
    captions, classes, present = [], [], []
    counts = [int(round(size * share)) for _, share in POOL_MIX]
    counts[0] += size - sum(counts)
    i = 0
    bar = tqdm(total=size, desc="toy images", disable=not progress, mininterval=1.0)
    for k, ((kind, _), count) in enumerate(zip(POOL_MIX, counts)):
        world = toy_world.ToyWorld(split, count, seed=seed * 10 + k, image_size=toy.IMAGE_SIZE, kind=kind)
        for j in range(count):
            s = world[j]
            images[i] = s["image"]
            caption = s["caption"]
            named = tuple(s["classes"])
            if kind != "scene" and rng.random() < 0.5:  # write it as a prompt, as on the web
                main = [c for c in s["classes"] if voc.is_thing(c)] or s["classes"]
                caption = _template_caption(voc.names[main[0]], rng)
                named = (main[0],)
            captions.append(caption)
            classes.append(named)
            present.append(tuple(s["classes"]))
            i += 1
            bar.update()
    bar.close()
    order = torch.from_numpy(np.random.default_rng([seed, 98]).permutation(size))
    order = order.tolist()
    return (images[torch.tensor(order)], [captions[j] for j in order], [classes[j] for j in order],
            [present[j] for j in order])


def hard_negative(caption: str, classes, rng: np.random.Generator) -> str:
    """The caption with one named thing's colour changed to a colour absent from the image
    (a stuff-only caption gets another stuff instead)."""
    voc = toy_world.vocabulary()
    things = [c for c in classes if voc.is_thing(c) and voc.names[c] in caption]
    if things:
        target = int(things[rng.integers(len(things))])
        c, s = voc.colour_shape(target)
        options = [k for k in range(len(voc.colours)) if k != c and k * len(voc.shapes) + s not in classes]
        new = voc.names[options[rng.integers(len(options))] * len(voc.shapes) + s]
        return caption.replace(voc.names[target], new, 1)
    stuff = [c for c in classes if not voc.is_thing(c) and voc.names[c] in caption]
    target = int(stuff[rng.integers(len(stuff))])
    options = [c for c in range(len(voc.things), len(voc.names)) if c not in classes]
    return caption.replace(voc.names[target], voc.names[options[rng.integers(len(options))]], 1)


# ----------------------------------------------------------------------------------------------
# training


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _optimizer(model, lr: float, cfg: PretrainConfig):
    """AdamW over the parameters that require grad (a locked tower is left out)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr)


def _colour_groups(classes) -> list[torch.Tensor]:
    """Indices of single-thing samples, grouped by the thing's colour."""
    voc = toy_world.vocabulary()
    groups = [[] for _ in voc.colours]
    for i, named in enumerate(classes):
        things = [c for c in named if voc.is_thing(c)]
        if len(things) == 1 and len(named) <= 2:
            groups[voc.colour_shape(things[0])[0]].append(i)
    return [torch.tensor(g) for g in groups if g]


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator, hard_groups=None, weights=None):
    """Random batches; with ``hard_groups`` half of each batch is single objects of one colour, so
    that only shape tells them apart (colour is the shortcut a contrastive loss learns first); with
    ``weights`` each batch is drawn without replacement in proportion to them."""
    order = torch.empty(0, dtype=torch.long)
    n_hard = batch_size // 2 if hard_groups else 0
    for _ in range(steps):
        if weights is not None:
            yield torch.multinomial(weights, batch_size, replacement=False, generator=generator)
            continue
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(n, generator=generator)])
        idx, order = order[:batch_size - n_hard], order[batch_size - n_hard:]
        if n_hard:
            group = hard_groups[int(torch.randint(len(hard_groups), (1,), generator=generator))]
            pick = group[torch.randperm(len(group), generator=generator)[:n_hard]]
            idx = torch.cat([idx, pick])
        yield idx


def _binding_weights(classes, weight: float) -> torch.Tensor:
    """Sampling weights: ``weight`` for images whose caption names two or more things (where ITM
    must bind each colour to its shape), 1 for the rest."""
    voc = toy_world.vocabulary()
    multi = torch.tensor([sum(voc.is_thing(c) for c in named) >= 2 for named in classes], dtype=torch.float64)
    return 1.0 + (weight - 1.0) * multi


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(images), generator=generator) < 0.5
    images = images.clone()
    images[flip] = images[flip].flip(-1)
    return images


def _positives(named, present, idx) -> torch.Tensor:
    """``[B, B]`` with 1 where caption ``j`` describes image ``i``: it names every thing in the image
    and nothing the image lacks (it may leave out the background). A toy batch holds many images of
    one class, and "a photo of a red star" describes every single red star, whatever its background,
    so it must not be pushed away from them; "grass" alone does not describe a red star on grass."""
    voc = toy_world.vocabulary()
    ids = idx.tolist()
    captions = [set(named[j]) for j in ids]
    images = [(set(present[i]), {c for c in present[i] if voc.is_thing(c)}) for i in ids]
    return torch.tensor([[cap <= held and things <= cap for cap in captions] for held, things in images],
                        dtype=torch.float32)


def _contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale, named, present, idx) -> torch.Tensor:
    """Symmetric InfoNCE over normalised embeddings with every describing caption a positive
    (``_positives``; the target spreads evenly over them)."""
    pos = _positives(named, present, idx)
    logits = scale * img @ txt.t()
    return 0.5 * (F.cross_entropy(logits, pos / pos.sum(1, keepdim=True))
                  + F.cross_entropy(logits.t(), pos.t() / pos.t().sum(1, keepdim=True)))


def mimetic_init(visual, alphas=(0.7, 0.7, 0.4, 0.4)) -> None:
    """Mimetic initialisation of every self-attention layer of an open_clip ``VisionTransformer``
    (Trockman & Kolter, *Mimetic Initialization of Self-Attention Layers*, ICML 2023, Sec. 3):
    ``W_q^T W_k ~ a1 Z + b1 I`` and ``W_o W_v ~ a2 Z - b2 I`` with ``Z ~ N(0, 1/d)``, each product
    split into its two factors by SVD. With position embeddings whose dot products fall with distance
    (sin-cos), attention starts out local and the ViT learns shape from few images."""
    a1, b1, a2, b2 = alphas

    def factor(m: torch.Tensor):
        u, s, vh = torch.linalg.svd(m)
        r = s.sqrt()
        return u * r, r[:, None] * vh  # left @ right == m

    for block in visual.transformer.resblocks:
        attn = block.attn
        d = attn.embed_dim
        w = attn.in_proj_weight.data
        left, right = factor(a1 * torch.randn(d, d) / d ** 0.5 + b1 * torch.eye(d))
        w[:d], w[d:2 * d] = left.t(), right  # q.k = x W_q^T W_k x'
        left, right = factor(a2 * torch.randn(d, d) / d ** 0.5 - b2 * torch.eye(d))
        w[2 * d:] = right
        attn.out_proj.weight.data.copy_(left)
        attn.in_proj_bias.data.zero_()
        attn.out_proj.bias.data.zero_()


def _distillation(img: torch.Tensor, teacher_img: torch.Tensor, vocabulary: torch.Tensor, temperature: float):
    """KL(teacher || student) of the softmax over the vocabulary's text embeddings."""
    student = (img @ vocabulary.t() / temperature).log_softmax(-1)
    target = (teacher_img @ vocabulary.t() / temperature).log_softmax(-1)
    return F.kl_div(student, target, log_target=True, reduction="batchmean")


LAYER_SCALE_INIT = 0.1


def _short_schedule_init(model) -> None:
    """ConvNeXt blocks start with layer scale 1e-6 (timm's default, made for 300-epoch schedules):
    in a few hundred steps the residual blocks barely switch on and the trunk learns colour but not
    shape. The toy pretraining starts them at 0.1 instead (a deviation for the 10-minute budget)."""
    for name, p in model.named_parameters():
        if name.endswith(".gamma"):
            p.data.fill_(LAYER_SCALE_INIT)


def _text_tower(encoder):
    """(a test of whether a parameter name belongs to the text tower, a function captions ->
    normalised embeddings in the joint space) of a toy CLIP (causal text tower, EOS pooling) or the toy BLIP (BERT-like text encoder,
    [CLS] through ``text_proj``, the embedding of its contrastive loss)."""
    model = encoder.model
    if hasattr(model, "text_encoder"):  # BLIP
        def embed(texts):
            cls = model.text_encoder(**encoder.tokenize(texts)).last_hidden_state[:, 0]
            return F.normalize(model.text_proj(cls), dim=-1)
        return (lambda name: name.startswith(("text_encoder.", "text_proj."))), embed
    return ((lambda name: not name.startswith("visual.") and name != "logit_scale"),
            lambda texts: F.normalize(encode_text(model, encoder.tokenizer(texts)), dim=-1))


def train_text(encoder, pool, steps: int, lr: float, cfg: PretrainConfig, progress: bool = True,
               warmup: int = 10) -> list[dict]:
    """Pretrain the text tower of a toy CLIP or the toy BLIP on the pool's captions alone, in place.

    Each step embeds a batch of captions and one prompt per vocabulary class ("a sketch of the red
    star.", a random template each step) with the same tower, and classifies each caption among the
    prompts by cosine similarity (temperature ``text_temperature``); the target spreads evenly over
    the classes the caption names. The real models started from text that already meant something
    (BLIP's text encoder is initialised from BERT; LiT locks a pretrained tower), a from-scratch toy
    tower does not: trained jointly with the image tower, both start from noise and the ConvNeXt CLIP
    needed 700 steps to reach 0.91 held-out top-1. Warmed up and locked, its image tower reaches 0.97
    after 300 (see ``pretrain_all``). Returns the loss curve."""
    images, captions, classes, present = pool
    model = encoder.model
    in_tower, embed = _text_tower(encoder)
    for name, p in model.named_parameters():
        p.requires_grad_(in_tower(name))
    model.train()
    opt = _optimizer(model, lr, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    rng = np.random.default_rng([cfg.seed, 5])
    names = toy_world.vocabulary().names
    templates = _all_templates()
    curve = []
    bar = tqdm(range(steps), desc=f"pretrain {encoder.info.name} text", disable=not progress, mininterval=1.0)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * _schedule(step, steps, warmup)
        idx = torch.randint(len(captions), (cfg.batch_size,), generator=gen).tolist()
        prompts = [templates[rng.integers(len(templates))].format(name) for name in names]
        txt = embed([captions[i] for i in idx] + prompts)
        target = torch.zeros(len(idx), len(names))
        for row, i in enumerate(idx):
            target[row, list(classes[i])] = 1.0
        logits = txt[:len(idx)] @ txt[len(idx):].t() / cfg.text_temperature
        loss = F.cross_entropy(logits, target / target.sum(1, keepdim=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append({"step": step, "loss": float(loss.detach())})
        bar.set_postfix(loss=f"{loss.item():.3f}")
    for p in model.parameters():
        p.requires_grad_(True)
    return curve


@torch.no_grad()
def _embed_captions(encoder, captions, batch: int = 512) -> torch.Tensor:
    """``[N, D]`` normalised embeddings of ``captions`` by a toy CLIP's (locked) text tower, each
    distinct caption embedded once, in batches of similar length (``encode_text`` trims the padding)."""
    distinct = sorted(set(captions))
    tokens = encoder.tokenizer(distinct)
    order = torch.argsort((tokens != 0).sum(1), stable=True)
    out = torch.empty(len(distinct), encoder.model.text_projection.shape[1])
    for i in range(0, len(distinct), batch):
        chunk = order[i:i + batch]
        out[chunk] = F.normalize(encode_text(encoder.model, tokens[chunk]), dim=-1)
    row = {c: i for i, c in enumerate(distinct)}
    return out[torch.tensor([row[c] for c in captions])]


def train_clip(encoder, pool, steps: int, lr: float, cfg: PretrainConfig, progress: bool = True,
               warmup: int = 40, teacher=None, callback=None, every: int = 0,
               lock_text: bool = False) -> list[dict]:
    """Contrastive pretraining of an ``OpenCLIPEncoder`` (toy) in place; returns the loss curve.

    With ``lock_text`` the text tower (pretrained by ``train_text``) stays locked: each distinct
    caption is embedded once and only the image tower and the logit scale learn. With ``teacher`` (a
    trained toy CLIP whose text tower ``encoder`` already carries) the text tower is locked too and
    the image tower also learns the teacher's softmax over the vocabulary (on the unflipped image,
    embedded once per pool image). With ``callback`` and ``every``, ``callback(step, encoder)`` runs
    every ``every`` steps (e.g. to evaluate during training; it must restore train mode if it
    changes it)."""
    images, captions, classes, present = pool
    model = encoder.model
    _short_schedule_init(model)
    lock_text = lock_text or teacher is not None
    for name, p in model.named_parameters():
        p.requires_grad_(not lock_text or name.startswith("visual.") or name == "logit_scale")
    model.train()
    opt = _optimizer(model, lr, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    locked = _embed_captions(encoder, captions) if lock_text else None
    vocabulary = None
    if teacher is not None:
        with torch.no_grad():
            vocabulary = teacher.embed_text(list(toy_world.vocabulary().names), "photo")
        # the teacher embeds each pool image once, unflipped (a flip does not change which class it
        # shows); the student sees the augmented copy
        targets = torch.empty(len(images), vocabulary.shape[1])
        seen = torch.zeros(len(images), dtype=torch.bool)
    curve = []
    bar = tqdm(_batches(len(images), cfg.batch_size, steps, gen, _colour_groups(classes)), total=steps,
               desc=f"pretrain {encoder.info.name}",
               disable=not progress, mininterval=1.0)
    for step, idx in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr * _schedule(step, steps, warmup)
        pixels = _augment(images[idx], gen)
        img = F.normalize(encoder.image_features(encoder.preprocess(pixels)), dim=-1)
        if lock_text:
            txt = locked[idx]
        else:
            txt = F.normalize(encode_text(model, encoder.tokenizer([captions[i] for i in idx.tolist()])), dim=-1)
        loss = contrastive = _contrastive_loss(img, txt, model.logit_scale.exp().clamp(max=100), classes, present, idx)
        record = {"step": step}
        if teacher is not None:
            new = idx[~seen[idx]]
            if len(new):
                with torch.no_grad():
                    targets[new] = F.normalize(teacher.image_features(teacher.preprocess(images[new])), dim=-1)
                seen[new] = True
            distil = _distillation(img, targets[idx], vocabulary, cfg.distil_temperature)
            loss = contrastive + cfg.distil_weight * distil
            record.update(contrastive=float(contrastive.detach()), distil=float(distil.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append({**record, "loss": float(loss.detach())})
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if callback is not None and every and (step + 1) % every == 0:
            encoder.clear_text_cache()  # the text tower may have moved since the last call
            callback(step + 1, encoder)
            encoder.clear_text_cache()
    encoder.freeze()
    return curve


def vision_from_open_clip(blip_vision, clip: dict) -> None:
    """Copy an open_clip ``VisionTransformer``'s state ``clip`` (class token, position embeddings, patch
    embedding, the first ``len(blip_vision.encoder.layers)`` blocks, ``ln_post``) into transformers'
    ``BlipVisionModel`` in place, strictly. The two blocks are the same pre-norm computation (fused
    q/k/v projection, GELU MLP); open_clip's bias-free patch embedding gets a zero bias and its
    ``ln_pre``, which BLIP's ViT lacks, is dropped."""
    width = clip["conv1.weight"].shape[0]
    state = {"embeddings.class_embedding": clip["class_embedding"].reshape(1, 1, width),
             "embeddings.position_embedding": clip["positional_embedding"][None],
             "embeddings.patch_embedding.weight": clip["conv1.weight"],
             "embeddings.patch_embedding.bias": torch.zeros(width),
             "post_layernorm.weight": clip["ln_post.weight"], "post_layernorm.bias": clip["ln_post.bias"]}
    names = {"self_attn.qkv": "attn.in_proj_", "self_attn.projection": "attn.out_proj.", "layer_norm1": "ln_1.",
             "layer_norm2": "ln_2.", "mlp.fc1": "mlp.c_fc.", "mlp.fc2": "mlp.c_proj."}
    for i in range(len(blip_vision.encoder.layers)):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                source = f"transformer.resblocks.{i}.{theirs}{kind}"
                state[f"encoder.layers.{i}.{ours}.{kind}"] = clip[source]
    blip_vision.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def train_blip(encoder, pool, steps: int, lr: float, cfg: PretrainConfig, progress: bool = True,
               warmup: int = 30, callback=None, every: int = 0) -> list[dict]:
    """ITM (true caption vs. a hard negative) + ITC pretraining of the toy ``BlipITMEncoder`` in place;
    the vision tower stays as it is when ``cfg.blip_freeze_vision``; ``callback``/``every`` as in
    ``train_clip``."""
    images, captions, classes, present = pool
    model = encoder.model
    for p in model.parameters():
        p.requires_grad_(True)
    frozen = cfg.blip_freeze_vision
    model.vision_model.requires_grad_(not frozen)
    model.train()
    if frozen:
        model.vision_model.eval()
    opt = _optimizer(model, lr, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng([cfg.seed, 7])
    curve = []
    weights = _binding_weights(classes, cfg.blip_binding_weight)
    bar = tqdm(_batches(len(images), cfg.batch_size, steps, gen, weights=weights), total=steps,
               desc="pretrain toy-blip",
               disable=not progress, mininterval=1.0)
    for step, idx in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr * _schedule(step, steps, warmup)
        ids = idx.tolist()
        x = encoder.preprocess(_augment(images[idx], gen))
        pos = [captions[i] for i in ids]
        hard = [hard_negative(captions[i], classes[i], rng) for i in ids]
        with torch.set_grad_enabled(not frozen):
            image_embeds = model.vision_model(pixel_values=x).last_hidden_state
        # ITC: contrast the CLS embeddings of images and true captions
        text_cls = model.text_encoder(**encoder.tokenize(pos)).last_hidden_state[:, 0]
        img = F.normalize(model.vision_proj(image_embeds[:, 0]), dim=-1)
        txt = F.normalize(model.text_proj(text_cls), dim=-1)
        itc = _contrastive_loss(img, txt, 1 / 0.07, classes, present, idx)
        # ITM: true caption and hard negative
        texts = pos + hard
        embeds = image_embeds.repeat(2, 1, 1)
        atts = torch.ones(embeds.shape[:-1], dtype=torch.long)
        out = model.text_encoder(**encoder.tokenize(texts), encoder_hidden_states=embeds, encoder_attention_mask=atts)
        itm_logits = model.itm_head(out.last_hidden_state[:, 0])
        labels = torch.cat([torch.ones(len(ids)), torch.zeros(len(ids))]).long()
        itm = F.cross_entropy(itm_logits, labels)
        loss = itm + itc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append({"step": step, "loss": float(loss.detach()), "itm": float(itm.detach()), "itc": float(itc.detach())})
        bar.set_postfix(itm=f"{itm.item():.3f}", itc=f"{itc.item():.3f}")
        if callback is not None and every and (step + 1) % every == 0:
            callback(step + 1, encoder)
    encoder.freeze()
    return curve


# ----------------------------------------------------------------------------------------------
# quality


@torch.no_grad()
def zero_shot_accuracy(encoder, n: int = 600, seed: int = 1, templates="photo") -> dict:
    """Top-1 over the full vocabulary on held-out crops: single things (label = the thing) and
    stuff-only images (label = the stuff), from the ``crops`` split the pretraining never drew."""
    names = list(toy_world.vocabulary().names)
    text = encoder.embed_text(names, templates)
    correct = {"thing": [], "stuff": []}
    for kind, count in (("single", n * 4 // 5), ("stuff", n - n * 4 // 5)):
        world = toy_world.ToyWorld("crops", count, seed=seed, kind=kind)
        for start in range(0, count, 128):
            batch = [world[i] for i in range(start, min(count, start + 128))]
            x = torch.stack([b["image"] for b in batch])
            pred = (encoder.embed_image(x) @ text.t()).argmax(1)
            for b, p in zip(batch, pred.tolist()):
                if kind == "single":
                    label = next(c for c in b["classes"] if toy_world.vocabulary().is_thing(c))
                else:
                    label = b["classes"][0]
                correct["thing" if kind == "single" else "stuff"].append(p == label)
    allc = correct["thing"] + correct["stuff"]
    return {"top1": float(np.mean(allc)), "top1_things": float(np.mean(correct["thing"])),
            "top1_stuff": float(np.mean(correct["stuff"])), "n": len(allc)}


@torch.no_grad()
def itm_accuracy(encoder, n: int = 600, seed: int = 1) -> dict:
    """ITM on held-out pairs: each image with its caption and a hard negative (same shape, other
    colour). ``accuracy``: share of the 2n pairs classified correctly (match probability > 0.5 or not);
    ``ranking``: share of images whose true caption scores above its hard negative."""
    world = toy_world.ToyWorld("pairs", n, seed=seed, kind="mixed")
    rng = np.random.default_rng([seed, 11])
    right, ranked = [], []
    for start in range(0, n, 100):
        batch = [world[i] for i in range(start, min(n, start + 100))]
        x = torch.stack([b["image"] for b in batch])
        pos = [b["caption"] for b in batch]
        neg = [hard_negative(b["caption"], b["classes"], rng) for b in batch]
        p_pos = encoder.itm_logits(x, pos).softmax(-1)[:, 1]
        p_neg = encoder.itm_logits(x, neg).softmax(-1)[:, 1]
        right += (p_pos > 0.5).tolist() + (p_neg <= 0.5).tolist()
        ranked += (p_pos > p_neg).tolist()
    return {"accuracy": float(np.mean(right)), "ranking": float(np.mean(ranked)), "n_pairs": len(right)}


# ----------------------------------------------------------------------------------------------
# the command


def _save(name: str, encoder, weights_dir: Path) -> dict:
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in encoder.model.state_dict().items()}
    path = weights_dir / f"{name}.safetensors"
    save_file(state, str(path))
    return {"file": path.name, "sha256": toy.sha256(path), "parameters": int(sum(v.numel() for v in state.values())),
            "bytes": path.stat().st_size}


def pretrain_all(cfg: PretrainConfig = PretrainConfig(), weights_dir: Path = toy.WEIGHTS_DIR,
                 progress: bool = True) -> dict:
    """Pretrain the three toy models, evaluate them on held-out data from the reloaded fp16 weights,
    and write weights, vocabulary and manifest to ``weights_dir``. Returns the manifest."""
    from . import build

    torch.manual_seed(cfg.seed)
    weights_dir.mkdir(parents=True, exist_ok=True)
    toy.write_vocab(weights_dir / "vocab.txt")
    tokenizer = toy.ToyTokenizer(weights_dir / "vocab.txt")
    t0 = time.perf_counter()
    pool = make_pool(cfg.pool_size, cfg.seed, progress=progress)
    timings = {"data_s": round(time.perf_counter() - t0, 1)}
    models, curves, trained = {}, {}, {}
    # ConvNeXt first: its text tower is pretrained on the captions, then locked, and its image tower
    # learns into that space; the ViT CLIP then shares the locked text tower and distils its image
    # tower from the ConvNeXt's. BLIP pretrains its own text encoder, then trains everything.
    plan = (("toy-clip-convnext", cfg.steps_clip_convnext, cfg.lr_clip_convnext, cfg.warmup_clip_convnext),
            ("toy-clip-vit", cfg.steps_clip_vit, cfg.lr_clip_vit, cfg.warmup_clip_vit),
            ("toy-blip", cfg.steps_blip, cfg.lr_blip, cfg.warmup_blip))
    for name, steps, lr, warmup in plan:
        torch.manual_seed(cfg.seed)
        encoder = build(name, pretrained=False, fixed_seed=False)
        start = time.perf_counter()
        if name == "toy-blip":
            curves.update(_pretrain_blip(encoder, pool, tokenizer, cfg, weights_dir, progress))
        elif name == "toy-clip-vit":
            encoder.tokenizer = tokenizer
            teacher = trained["toy-clip-convnext"]
            text_tower = {k: v for k, v in teacher.model.state_dict().items() if not k.startswith("visual.")}
            encoder.model.load_state_dict(text_tower, strict=False)
            mimetic_init(encoder.model.visual, cfg.mimetic)
            curves[name] = train_clip(encoder, pool, steps, lr, cfg, progress, warmup=warmup, teacher=teacher)
        else:
            encoder.tokenizer = tokenizer
            curves["toy-clip text"] = train_text(encoder, pool, cfg.steps_text, cfg.lr_text, cfg, progress,
                                                 warmup=cfg.warmup_text)
            curves[name] = train_clip(encoder, pool, steps, lr, cfg, progress, warmup=warmup, lock_text=True)
        timings[f"{name}_s"] = round(time.perf_counter() - start, 1)
        models[name] = _save(name, encoder, weights_dir)
        trained[name] = encoder
    manifest = {
        "vocab_sha256": toy.sha256(weights_dir / "vocab.txt"),
        "image_size": toy.IMAGE_SIZE,
        "world_digest_note": "weights are tied to the toy world's generator (tests/test_toy_world.py GOLDEN_DIGEST)",
        "config": asdict(cfg),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "timings": timings,
        "models": models,
    }
    (weights_dir / toy.MANIFEST).write_text(json.dumps(manifest, indent=2))
    toy._tokenizer.cache_clear()
    with toy.use_weights_dir(weights_dir):
        quality = evaluate_all(cfg.eval_images)
    manifest["quality"] = quality
    manifest["timings"]["total_s"] = round(time.perf_counter() - t0, 1)
    (weights_dir / toy.MANIFEST).write_text(json.dumps(manifest, indent=2))
    (weights_dir / "curves.json").write_text(json.dumps(curves))
    return manifest


def _pretrain_blip(encoder, pool, tokenizer, cfg: PretrainConfig, weights_dir: Path, progress: bool) -> dict:
    """The toy BLIP's two stages in place (its vision tower first set from the toy CLIP that
    ``cfg.blip_vision_init`` names, as stored in ``weights_dir``: fp16, the weights a user loads);
    returns their loss curves."""
    from safetensors.torch import load_file

    encoder.tokenizer = tokenizer.hf
    if cfg.blip_vision_init is not None:
        stored = load_file(str(weights_dir / f"{cfg.blip_vision_init}.safetensors"))
        vision_from_open_clip(encoder.model.vision_model,
                              {k[len("visual."):]: v for k, v in stored.items() if k.startswith("visual.")})
    return {"toy-blip text": train_text(encoder, pool, cfg.steps_text, cfg.lr_text, cfg, progress,
                                        warmup=cfg.warmup_text),
            "toy-blip": train_blip(encoder, pool, cfg.steps_blip, cfg.lr_blip, cfg, progress, warmup=cfg.warmup_blip)}


def pretrain_blip(cfg: PretrainConfig = PretrainConfig(), weights_dir: Path = toy.WEIGHTS_DIR,
                  progress: bool = True) -> dict:
    """Pretrain the toy BLIP alone, as ``pretrain_all`` does, from the vocabulary and toy CLIPs already
    in ``weights_dir`` (checksums verified), and update its weights, curves and the manifest's BLIP
    entries (``regenerated`` says so); the CLIPs are left as they are. Returns the manifest."""
    from . import build

    manifest = toy.read_manifest(weights_dir)
    with toy.use_weights_dir(weights_dir):
        for name in ("toy-clip-vit", "toy-clip-convnext"):
            toy.load_state_dict(name)  # verifies the stored CLIPs before a BLIP is built on them
    tokenizer = toy.ToyTokenizer(weights_dir / "vocab.txt")
    torch.manual_seed(cfg.seed)
    pool = make_pool(cfg.pool_size, cfg.seed, progress=progress)
    torch.manual_seed(cfg.seed)
    encoder = build("toy-blip", pretrained=False, fixed_seed=False)
    start = time.perf_counter()
    blip_curves = _pretrain_blip(encoder, pool, tokenizer, cfg, weights_dir, progress)
    seconds = round(time.perf_counter() - start, 1)
    timings = manifest["timings"]
    if "total_s" in timings and "toy-blip_s" in timings:
        timings["total_s"] = round(timings["total_s"] - timings["toy-blip_s"] + seconds, 1)
    timings["toy-blip_s"] = seconds
    manifest["models"]["toy-blip"] = _save("toy-blip", encoder, weights_dir)
    manifest.update(config=asdict(cfg), torch=torch.__version__, threads=torch.get_num_threads(),
                    regenerated="toy-blip alone (pretrain_blip), on the stored toy CLIPs and vocabulary; "
                                "the CLIPs' timings and quality are from their own run")
    (weights_dir / toy.MANIFEST).write_text(json.dumps(manifest, indent=2))
    with toy.use_weights_dir(weights_dir):
        manifest.setdefault("quality", {})["toy-blip"] = itm_accuracy(build("toy-blip", pretrained=True),
                                                                      cfg.eval_images)
    (weights_dir / toy.MANIFEST).write_text(json.dumps(manifest, indent=2))
    path = weights_dir / "curves.json"
    curves = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**curves, **blip_curves}))
    return manifest


def evaluate_all(n: int = 600) -> dict:
    """Quality of the stored (fp16, checksum-verified) toy models on held-out data."""
    from . import build

    quality = {}
    for name in ("toy-clip-vit", "toy-clip-convnext"):
        quality[name] = zero_shot_accuracy(build(name, pretrained=True), n)
    quality["toy-blip"] = itm_accuracy(build("toy-blip", pretrained=True), n)
    return quality
