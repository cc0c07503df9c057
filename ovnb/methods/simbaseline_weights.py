"""zsseg's released checkpoints, converted onto ``ovnb.methods.simbaseline``.

zsseg published two models trained on COCO-Stuff's 156 seen classes (README, "Trained Model"):

* ``zsseg-coco156-cross-dataset``: ViLD prompts, the CLIP ensemble, 120k iterations - the model of the
  cross-dataset Table 1;
* ``zsseg-coco156-zero-shot``: learned prompts - the model of the zero-shot COCO-Stuff rows (Tables 2,
  7, 9, 10).

Both are detectron2 checkpoints (``torch.save({"model": state_dict, ...})``) of the official
``ZeroShotMaskFormer``: a ResNet-101c backbone (DeepLab stem, ``backbone.*``), MaskFormer's FPN pixel
decoder and DETR decoder (``sem_seg_head.*``), the zero-shot class MLP, and the CLIP adapter
(``clip_adapter.*``: the frozen OpenAI CLIP ViT-B/16, the no-object embedding and the prompt learner).
``convert`` maps every key onto this package's modules; ``load_released`` loads them strictly, so a
key that is not used, or a parameter of ours that the file does not fill, is an error, never a
silent random weight.

The key mapping (official -> ours; ``G.`` = ``generator.maskformer.``):

=========================================================  ==============================================
``backbone.stem.conv{1,2,3}`` (+ ``.norm``)                 ``G.pixel_level_module.encoder._backbone``
                                                            ``conv1.{0,3,6}`` (norms ``conv1.1``,
                                                            ``conv1.4``, ``bn1``)
``backbone.res{2..5}.{i}.conv{k}`` (+ ``.norm``)            ``layer{1..4}.{i}.conv{k}`` / ``bn{k}``
``backbone.res{2..5}.{i}.shortcut`` (+ ``.norm``)           ``layer{1..4}.{i}.downsample.{0,1}``
``sem_seg_head.pixel_decoder.layer_4`` (+ ``.norm``)        ``G.pixel_level_module.decoder.fpn.stem.{0,1}``
``pixel_decoder.adapter_{3,2,1}`` / ``layer_{3,2,1}``       ``fpn.layers.{0,1,2}.proj`` / ``.block``
``pixel_decoder.mask_features``                             ``decoder.mask_projection``
``predictor.query_embed`` / ``input_proj``                  ``G.transformer_module.queries_embedder`` /
                                                            ``input_projection``
``predictor.transformer.decoder.layers.{i}``:               ``G.transformer_module.decoder.layers.{i}``:
``self_attn`` / ``multihead_attn`` (``in_proj_*`` split     ``self_attn`` / ``encoder_attn``
into q, k, v; ``out_proj``)                                 (``q_proj``, ``k_proj``, ``v_proj``; ``o_proj``)
``norm{1,2,3}``, ``linear{1,2}``                            ``self_attn_layer_norm``,
                                                            ``encoder_attn_layer_norm``,
                                                            ``final_layer_norm``; ``mlp.fc{1,2}``
``predictor.transformer.decoder.norm``                      ``G.transformer_module.decoder.layernorm``
``predictor.mask_embed.layers.{k}``                         ``generator.mask_embed.{k}.0``
``predictor.class_embed.layers.{k}``                        ``generator.class_embed.mlp.{2k}``
``clip_adapter.non_object_embedding`` ``[1, 512]``          ``generator.class_embed.no_object`` ``[512]``
``clip_adapter.prompt_learner.prefix_prompt``               ``LearnedPrompts.prefix``
``clip_adapter.clip_model.*`` (OpenAI names)                the registry CLIP's open_clip model (same names)
=========================================================  ==============================================

Keys that hold constants rather than weights are *checked* and then used up: the pixel mean/std
buffers (ImageNet's for the backbone, CLIP's for the crops), the criterion's ``empty_weight`` (the
no-object weight 0.1) and the prompt learner's start/dot/end/pad token embeddings (rows of CLIP's
token embedding). A separate region adapter (``_region_clip_adapter.*``, only the VOC configs use one;
no VOC model was released) is refused with a clear error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Google Drive ids of the two released files (zsseg README, "Trained Model")
RELEASED = {
    "zsseg-coco156-cross-dataset": {
        "drive_id": "1pb6UeXoMPy5xdEBtFcQYLOBKZt0xufKY", "templates": "vild", "prompts": "templates",
        "description": "COCO-Stuff 156 seen classes, ViLD prompts, CLIP ensemble, 120k iterations (Table 1)"},
    "zsseg-coco156-zero-shot": {
        "drive_id": "1jDmR4fL5Wm0UyMDd5LhsOl6T2RX2X9R5", "templates": None, "prompts": "learned",
        "description": "COCO-Stuff 156 seen classes, learned prompts, 60k iterations (Tables 2, 7, 9, 10)"},
}
BACKBONE = "generator.maskformer.pixel_level_module.encoder._backbone."
PIXEL_DECODER = "generator.maskformer.pixel_level_module.decoder."
TRANSFORMER = "generator.maskformer.transformer_module."
STEM = {"conv1": ("conv1.0", "conv1.1"), "conv2": ("conv1.3", "conv1.4"), "conv3": ("conv1.6", "bn1")}
NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


class ConversionError(ValueError):
    """A checkpoint that does not map one-to-one onto SimBaseline."""


@dataclass
class Converted:
    """A released checkpoint in this package's names: ``model`` keys are relative to ``SimBaseline``
    (``generator.*``), ``clip`` to the CLIP's open_clip model, ``prompts`` the learned prefix (or None)."""

    model: dict = field(default_factory=dict)
    clip: dict = field(default_factory=dict)
    prompts: torch.Tensor | None = None
    checked: list = field(default_factory=list)  # constant keys verified and used up


def _backbone_key(rest: str) -> str:
    """``stem.conv2.norm.weight`` -> ``conv1.4.weight``; ``res3.0.shortcut.weight`` -> ``layer2.0.downsample.0.weight``."""
    m = re.fullmatch(r"stem\.(conv[123])(\.norm)?\.(\w+)", rest)
    if m:
        conv, norm = STEM[m.group(1)]
        return f"{norm if m.group(2) else conv}.{m.group(3)}"
    m = re.fullmatch(r"res([2-5])\.(\d+)\.(conv[123]|shortcut)(\.norm)?\.(\w+)", rest)
    if m:
        stage, block, layer, is_norm, name = m.groups()
        if layer == "shortcut":
            target = "downsample.1" if is_norm else "downsample.0"
        else:
            target = f"bn{layer[-1]}" if is_norm else layer
        return f"layer{int(stage) - 1}.{block}.{target}.{name}"
    raise ConversionError(f"unknown backbone key backbone.{rest}")


def _pixel_decoder_key(rest: str) -> str:
    m = re.fullmatch(r"(adapter|layer)_([1-4])(\.norm)?\.(\w+)", rest)
    if m:
        kind, level, is_norm, name = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if kind == "layer" and level == 4:  # the 3x3 conv on res5 that starts the FPN
            return f"fpn.stem.{1 if is_norm else 0}.{name}"
        part = "proj" if kind == "adapter" else "block"
        return f"fpn.layers.{3 - level}.{part}.{1 if is_norm else 0}.{name}"
    m = re.fullmatch(r"mask_features\.(weight|bias)", rest)
    if m:
        return f"mask_projection.{m.group(1)}"
    raise ConversionError(f"unknown pixel-decoder key sem_seg_head.pixel_decoder.{rest}")


DECODER_LAYER = {"norm1": "self_attn_layer_norm", "norm2": "encoder_attn_layer_norm", "norm3": "final_layer_norm",
                 "linear1": "mlp.fc1", "linear2": "mlp.fc2"}
ATTENTION = {"self_attn": "self_attn", "multihead_attn": "encoder_attn"}


def _predictor(rest: str, value: torch.Tensor) -> dict:
    """One predictor key -> ``{our key: tensor}`` (an attention's ``in_proj`` gives three)."""
    if rest == "query_embed.weight":
        return {TRANSFORMER + "queries_embedder.weight": value}
    m = re.fullmatch(r"input_proj\.(weight|bias)", rest)
    if m:
        return {TRANSFORMER + f"input_projection.{m.group(1)}": value}
    m = re.fullmatch(r"transformer\.decoder\.norm\.(weight|bias)", rest)
    if m:
        return {TRANSFORMER + f"decoder.layernorm.{m.group(1)}": value}
    m = re.fullmatch(r"transformer\.decoder\.layers\.(\d+)\.(\w+)\.(\w+)", rest)
    if m:
        layer, module, name = m.groups()
        prefix = TRANSFORMER + f"decoder.layers.{layer}."
        if module in ATTENTION:
            ours = prefix + ATTENTION[module]
            if name in ("in_proj_weight", "in_proj_bias"):
                q, k, v = value.chunk(3, dim=0)
                kind = "weight" if name.endswith("weight") else "bias"
                return {f"{ours}.q_proj.{kind}": q, f"{ours}.k_proj.{kind}": k, f"{ours}.v_proj.{kind}": v}
            if name in ("weight", "bias"):
                raise ConversionError(f"unexpected attention key {rest}")
        elif module in DECODER_LAYER:
            return {prefix + f"{DECODER_LAYER[module]}.{name}": value}
    m = re.fullmatch(r"transformer\.decoder\.layers\.(\d+)\.(self_attn|multihead_attn)\.out_proj\.(weight|bias)", rest)
    if m:
        return {TRANSFORMER + f"decoder.layers.{m.group(1)}.{ATTENTION[m.group(2)]}.o_proj.{m.group(3)}": value}
    m = re.fullmatch(r"mask_embed\.layers\.(\d)\.(weight|bias)", rest)
    if m:
        return {f"generator.mask_embed.{m.group(1)}.0.{m.group(2)}": value}
    m = re.fullmatch(r"class_embed\.layers\.(\d)\.(weight|bias)", rest)
    if m:
        return {f"generator.class_embed.mlp.{2 * int(m.group(1))}.{m.group(2)}": value}
    raise ConversionError(f"unknown predictor key sem_seg_head.predictor.{rest}")


def _check_constant(key: str, value: torch.Tensor, expected, what: str) -> None:
    expected = torch.tensor(expected, dtype=torch.float32)
    if value.numel() != expected.numel() or not torch.allclose(value.float().flatten(), expected, atol=1e-3):
        raise ConversionError(f"{key} should hold {what} {expected.tolist()}; it holds {value.flatten().tolist()[:4]}")


def convert(state_dict: dict, no_object_weight: float = 0.1) -> Converted:
    """Map an official ``ZeroShotMaskFormer`` state dict (the ``"model"`` entry of a detectron2
    checkpoint, or a file's whole dict) onto ``SimBaseline``; every key is used or checked."""
    from .simbaseline import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
    from ..encoders.base import CLIP_MEAN, CLIP_STD

    state = state_dict.get("model", state_dict)
    out = Converted()
    signals = {}
    for key, value in state.items():
        value = torch.as_tensor(value)
        if key.startswith("_region_clip_adapter."):
            raise ConversionError("this checkpoint has a separate region CLIP adapter (_region_clip_adapter.*, "
                                  "SEPERATE_ADAPTER=True): no released model has one and SimBaseline classifies "
                                  "both branches with one prompt set")
        if key.startswith("backbone."):
            out.model[BACKBONE + _backbone_key(key[len("backbone."):])] = value
        elif key.startswith("sem_seg_head.pixel_decoder."):
            out.model[PIXEL_DECODER + _pixel_decoder_key(key[len("sem_seg_head.pixel_decoder."):])] = value
        elif key.startswith("sem_seg_head.predictor."):
            out.model.update(_predictor(key[len("sem_seg_head.predictor."):], value))
        elif key == "clip_adapter.non_object_embedding":
            out.model["generator.class_embed.no_object"] = value.reshape(-1)
        elif key == "clip_adapter.prompt_learner.prefix_prompt":
            out.prompts = value
        elif key.startswith("clip_adapter.prompt_learner.") and key.endswith("_signal"):
            signals[key.rsplit(".", 1)[1]] = value
        elif key.startswith("clip_adapter.clip_model."):
            out.clip[key[len("clip_adapter.clip_model."):]] = value
        elif key in ("pixel_mean", "pixel_std"):
            _check_constant(key, value, IMAGENET_PIXEL_MEAN if key == "pixel_mean" else IMAGENET_PIXEL_STD,
                            "ImageNet's pixel statistics (0-255)")
            out.checked.append(key)
        elif key in ("clip_adapter.pixel_mean", "clip_adapter.pixel_std"):
            stats = CLIP_MEAN if key.endswith("mean") else CLIP_STD
            _check_constant(key, value, [255 * s for s in stats], "CLIP's pixel statistics (0-255)")
            out.checked.append(key)
        elif key == "criterion.empty_weight":
            if abs(float(value[-1]) - no_object_weight) > 1e-6 or not bool((value[:-1] == 1).all()):
                raise ConversionError(f"criterion.empty_weight should be 1 for every class and {no_object_weight} "
                                      f"for no-object; it ends in {value[-3:].tolist()}")
            out.checked.append(key)
        elif key.endswith("num_batches_tracked"):  # not part of detectron2's FrozenBN; tolerated if present
            out.checked.append(key)
        else:
            raise ConversionError(f"unknown key {key!r} in the checkpoint")
    if signals:
        _check_signals(signals, out.clip)
        out.checked += [f"clip_adapter.prompt_learner.{k}" for k in signals]
    return out


# OpenAI CLIP's BPE ids of [SOS], "." and [EOS]; [PAD] is 0
TOKEN_IDS = {"start_signal": 49406, "dot_signal": 269, "end_signal": 49407, "pad_signal": 0}


def _check_signals(signals: dict, clip_state: dict) -> None:
    """The prompt learner's fixed token embeddings are rows of CLIP's own token embedding."""
    table = clip_state.get("token_embedding.weight")
    for name, value in signals.items():
        if name not in TOKEN_IDS:
            raise ConversionError(f"unknown prompt-learner buffer {name}")
        if table is not None and table.shape[0] > TOKEN_IDS[name] and \
                not torch.allclose(value.reshape(-1).float(), table[TOKEN_IDS[name]].float(), atol=1e-3):
            raise ConversionError(f"clip_adapter.prompt_learner.{name} is not CLIP's token embedding of id "
                                  f"{TOKEN_IDS[name]}")


def load_released(model, checkpoint) -> Converted:
    """Load a released checkpoint (a path, or a loaded dict) into ``model`` (a ``SimBaseline`` with the
    paper's architecture) strictly: the generator from the file, the CLIP from the file's CLIP, and its
    learned prompts (frozen) when it has them."""
    from .simbaseline import LearnedPrompts

    if isinstance(checkpoint, (str, Path)):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
    converted = convert(checkpoint, model.config.no_object_weight)
    ours = {f"generator.{k}": v for k, v in model.generator.state_dict().items()}
    missing = sorted(set(ours) - set(converted.model))
    unexpected = sorted(set(converted.model) - set(ours))
    if missing or unexpected:
        raise ConversionError(f"the checkpoint does not fill SimBaseline one to one: missing {missing[:8]} "
                              f"({len(missing)}), unexpected {unexpected[:8]} ({len(unexpected)})")
    wrong = [(k, tuple(v.shape), tuple(ours[k].shape)) for k, v in converted.model.items() if v.shape != ours[k].shape]
    if wrong:
        raise ConversionError(f"shapes differ (key, checkpoint, ours): {wrong[:8]}")
    model.generator.load_state_dict({k[len("generator."):]: v for k, v in converted.model.items()}, strict=True)
    if converted.clip:
        clip_model = model.clip.model
        clip_model.load_state_dict(converted.clip, strict=True)
    if converted.prompts is not None:
        prompts = LearnedPrompts(model.clip, length=converted.prompts.shape[0])
        prompts.load_state_dict({"prefix": converted.prompts}, strict=True)
        model.use_prompts(prompts)
    return converted


def download(name: str, dest: str | Path) -> Path:
    """Download released checkpoint ``name`` (``RELEASED``) into folder ``dest`` (resumable)."""
    from ..data.prepare.download import download as fetch, google_drive

    if name not in RELEASED:
        raise ValueError(f"unknown released checkpoint {name!r}; known: {', '.join(RELEASED)}")
    path = Path(dest) / f"{name}.pth"
    return path if path.is_file() else fetch(google_drive(RELEASED[name]["drive_id"]), path)
