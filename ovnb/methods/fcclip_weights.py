"""The released FC-CLIP checkpoints (detectron2 format) converted to ``ovnb.methods.fcclip``.

The official checkpoints (``fcclip_cocopan.pth`` for ConvNeXt-L and the model-zoo variants, Google
Drive links in the official README) hold ``{"model": state_dict, ...}`` with the mask generator and the
class head under ``sem_seg_head.*``, the learned void embedding, and the loss's ``empty_weight``
buffer. They hold no CLIP weights: the official code rebuilds the frozen CLIP from open_clip when the
model is built (hence its "parameters not found in checkpoint: backbone.clip_model.*" warning), and
so does ``ovnb`` (registry entry ``clip-convnext-large-d-320``; ``clip-rn50`` ... for the ResNet models). Any ``backbone.clip_model.*`` key that
a checkpoint does carry is ignored for the same reason.

The name mapping follows the official modules (``msdeformattn.py``, ``fcclip_transformer_decoder.py``)
and transformers' own ``convert_mask2former_original_pytorch_checkpoint_to_pytorch.py``:

| official (``sem_seg_head.``...) | here |
|---|---|
| ``pixel_decoder.input_proj.{i}.{0,1}`` | ``generator.pixel_decoder.input_projections.{i}.{0,1}`` |
| ``pixel_decoder.transformer.level_embed`` | ``generator.pixel_decoder.level_embed`` |
| ``pixel_decoder.transformer.encoder.layers.{n}.self_attn.*`` | ``...encoder.layers.{n}.self_attn.*`` |
| ``... .norm1 / linear1 / linear2 / norm2`` | ``self_attn_layer_norm / fc1 / fc2 / final_layer_norm`` |
| ``pixel_decoder.mask_features`` | ``generator.pixel_decoder.mask_projection`` |
| ``pixel_decoder.adapter_1.{weight,norm.*}`` / ``layer_1`` | ``adapter_1.{0,1}`` / ``layer_1.{0,1}`` |
| ``predictor.transformer_cross_attention_layers.{n}.multihead_attn`` / ``.norm`` | ``decoder.layers.{n}.cross_attn`` / ``cross_attn_layer_norm`` |
| ``predictor.transformer_self_attention_layers.{n}.self_attn.in_proj_*`` | ``decoder.layers.{n}.self_attn.{q,k,v}_proj`` (split in thirds) |
| ``predictor.transformer_ffn_layers.{n}.linear1 / linear2 / norm`` | ``fc1 / fc2 / final_layer_norm`` |
| ``predictor.decoder_norm`` / ``query_feat`` / ``query_embed`` / ``level_embed`` | ``decoder.layernorm`` / ``queries_features`` / ``queries_embedder`` / ``level_embed`` |
| ``predictor.mask_embed.layers.{i}`` | ``decoder.mask_predictor.mask_embedder.{i}.0`` |
| ``predictor.class_embed.layers.{i}`` / ``_mask_pooling_proj`` / ``logit_scale`` | ``class_embed.{i}.0`` / ``mask_pooling_proj`` / ``logit_scale`` |
| ``void_embedding.weight`` | ``void_embedding.weight`` |
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

#: the released checkpoints (official README model zoo, COCO panoptic training); Google Drive files
#: cannot be fetched unattended, so the user downloads one and passes its path. ``clip``: the registry CLIP
#: the checkpoint was trained on (the official eval configs' CLIP_MODEL_NAME / CLIP_PRETRAINED_WEIGHTS);
#: ``file``: the name this project looks for under ``DATA_ROOT/checkpoints`` (the Drive files have no
#: fixed name except ``fcclip_cocopan.pth``). The ResNet models carry the same head with the CLIP's
#: widths (EMBED_DIM 1024 / 512 / 640 / 768 / 1024) and ensemble on valid masks only.
_DRIVE = "https://drive.google.com/file/d/{}/view?usp=sharing"
RELEASED = {
    "fcclip-convnext-large": dict(clip="clip-convnext-large-d-320", file="fcclip_cocopan.pth",
                                  url=_DRIVE.format("1-91PIns86vyNaL3CzMmDD39zKGnPMtvj")),
    "fcclip-r50": dict(clip="clip-rn50", file="fcclip_r50.pth", url=_DRIVE.format("1tcB-8FNON-LwckXQbUyKcBA2G7TU65Zh")),
    "fcclip-r101": dict(clip="clip-rn101", file="fcclip_r101.pth", url=_DRIVE.format("1P0mdgftReWzVbPQ0O0CSBfW3krHhTOj0")),
    "fcclip-r50x4": dict(clip="clip-rn50x4", file="fcclip_r50x4.pth", url=_DRIVE.format("1nUpUsNUE22eOV9skxv9IyIkmCbg5jrIF")),
    "fcclip-r50x16": dict(clip="clip-rn50x16", file="fcclip_r50x16.pth",
                          url=_DRIVE.format("1rJu2UwwtI0VLDl9CyB8Mkgw9qHlnX70W")),
    "fcclip-r50x64": dict(clip="clip-rn50x64", file="fcclip_r50x64.pth",
                          url=_DRIVE.format("1rvfFVp5p3PZQsHp2NGVEBeYYcqgVVaZX")),
}


def released(name: str) -> dict:
    """The model-zoo entry ``name`` (``RELEASED``), or an error listing the known ones."""
    if name not in RELEASED:
        raise ValueError(f"unknown released FC-CLIP {name!r}; the official model zoo has: {', '.join(RELEASED)}")
    return RELEASED[name]


IGNORED = (re.compile(r"^backbone\.clip_model\."), re.compile(r"^criterion\.empty_weight$"))

_PD = "sem_seg_head.pixel_decoder."
_PR = "sem_seg_head.predictor."
_G = "generator."


def _rules() -> list[tuple[re.Pattern, str]]:
    """(official-name pattern, our name template) pairs; the first match wins."""
    enc = _PD + r"transformer\.encoder\.layers\.(\d+)\."
    dec_out = _G + "transformer_module.decoder."
    rules = [
        (_PD + r"input_proj\.(\d+)\.([01])\.(weight|bias)$", _G + r"pixel_decoder.input_projections.\1.\2.\3"),
        (_PD + r"transformer\.level_embed$", _G + "pixel_decoder.level_embed"),
        (enc + r"self_attn\.(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)$",
         _G + r"pixel_decoder.encoder.layers.\1.self_attn.\2.\3"),
        (enc + r"norm1\.(weight|bias)$", _G + r"pixel_decoder.encoder.layers.\1.self_attn_layer_norm.\2"),
        (enc + r"linear1\.(weight|bias)$", _G + r"pixel_decoder.encoder.layers.\1.fc1.\2"),
        (enc + r"linear2\.(weight|bias)$", _G + r"pixel_decoder.encoder.layers.\1.fc2.\2"),
        (enc + r"norm2\.(weight|bias)$", _G + r"pixel_decoder.encoder.layers.\1.final_layer_norm.\2"),
        (_PD + r"mask_features\.(weight|bias)$", _G + r"pixel_decoder.mask_projection.\1"),
        (_PD + r"(adapter|layer)_(\d+)\.weight$", _G + r"pixel_decoder.\1_\2.0.weight"),
        (_PD + r"(adapter|layer)_(\d+)\.norm\.(weight|bias)$", _G + r"pixel_decoder.\1_\2.1.\3"),
        (_PR + r"transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)$",
         dec_out + r"layers.\1.cross_attn.\2"),
        (_PR + r"transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)$", dec_out + r"layers.\1.cross_attn_layer_norm.\2"),
        (_PR + r"transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$",
         dec_out + r"layers.\1.self_attn.out_proj.\2"),
        (_PR + r"transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)$", dec_out + r"layers.\1.self_attn_layer_norm.\2"),
        (_PR + r"transformer_ffn_layers\.(\d+)\.linear1\.(weight|bias)$", dec_out + r"layers.\1.fc1.\2"),
        (_PR + r"transformer_ffn_layers\.(\d+)\.linear2\.(weight|bias)$", dec_out + r"layers.\1.fc2.\2"),
        (_PR + r"transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)$", dec_out + r"layers.\1.final_layer_norm.\2"),
        (_PR + r"decoder_norm\.(weight|bias)$", dec_out + r"layernorm.\1"),
        (_PR + r"query_feat\.weight$", _G + "transformer_module.queries_features.weight"),
        (_PR + r"query_embed\.weight$", _G + "transformer_module.queries_embedder.weight"),
        (_PR + r"level_embed\.weight$", _G + "transformer_module.level_embed.weight"),
        (_PR + r"input_proj\.(\d+)\.(weight|bias)$", _G + r"transformer_module.input_projections.\1.\2"),
        (_PR + r"mask_embed\.layers\.(\d+)\.(weight|bias)$", dec_out + r"mask_predictor.mask_embedder.\1.0.\2"),
        (_PR + r"class_embed\.layers\.(\d+)\.(weight|bias)$", r"class_embed.\1.0.\2"),
        (_PR + r"_mask_pooling_proj\.([01])\.(weight|bias)$", r"mask_pooling_proj.\1.\2"),
        (_PR + r"logit_scale$", "logit_scale"),
        (r"void_embedding\.weight$", "void_embedding.weight"),
    ]
    return [(re.compile("^" + p), t) for p, t in rules]


_SELF_ATTN_IN = re.compile("^" + _PR + r"transformer_self_attention_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$")


def convert(official: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(state dict for FCCLIP, ignored keys)``. Every key is either mapped or deliberately ignored
    (CLIP weights, the loss buffer); an unknown key is an error naming it."""
    state = official.get("model", official) if isinstance(official, dict) else official
    rules = _rules()
    out: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        if any(p.search(key) for p in IGNORED):
            ignored.append(key)
            continue
        m = _SELF_ATTN_IN.match(key)
        if m:  # nn.MultiheadAttention's packed [q; k; v] -> three linear layers
            layer, kind = m.groups()
            base = f"{_G}transformer_module.decoder.layers.{layer}.self_attn."
            for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{base}{name}.{kind}"] = chunk.clone()
            continue
        for pattern, template in rules:
            if pattern.match(key):
                out[pattern.sub(template, key)] = value
                break
        else:
            raise KeyError(f"unknown key in the FC-CLIP checkpoint: {key!r} (is this a detectron2 FC-CLIP checkpoint?)")
    return out, ignored


def load_official(model, path: str | Path) -> list[str]:
    """Load an official checkpoint file into ``model`` strictly (every learned weight present, every
    checkpoint key used); returns the keys ignored on purpose. ``logit_scale`` keeps its scalar shape."""
    raw = torch.load(path, map_location="cpu", weights_only=False)  # detectron2 pickles extra objects
    state, ignored = convert(raw)
    expected = model.trainable_state()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: the converted checkpoint does not fit this FC-CLIP configuration; "
                         f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(expected[key].shape)} (a different configuration: queries, widths?)")
    model.load_state_dict(state, strict=False)
    return ignored
