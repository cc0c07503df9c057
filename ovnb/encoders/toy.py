"""The toy foundation models: small CLIPs and a small BLIP that saw the whole toy vocabulary.

* ``toy-clip-vit`` and ``toy-clip-convnext`` are built by ``open_clip.create_model`` from the model
  configs in ``toy_configs/`` - the code path of ``ViT-L-14`` and ``convnext_large_d_320``, at
  64 x 64 pixels (ConvNeXt trunk: timm's ``convnext_atto``).
* ``toy-blip`` is a ``transformers.BlipForImageTextRetrieval`` with a tiny ``BlipConfig``.

All three read text with one word-level tokenizer (a WordPiece vocabulary of whole words, written
next to the weights as ``vocab.txt``): the toy world has a few hundred words, so the models carry
small embedding tables instead of CLIP's 49,408 BPE rows. Unknown words map to ``[UNK]``.

Weights live in ``toy_weights/`` as fp16 safetensors with a manifest of SHA-256 checksums that
loading verifies. ``ovnb toy pretrain`` regenerates them (``ovnb.encoders.toy_pretrain``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path

import torch

HERE = Path(__file__).parent
CONFIG_DIR = HERE / "toy_configs"
WEIGHTS_DIR = HERE / "toy_weights"
MANIFEST = "manifest.json"
IMAGE_SIZE = 64
CONTEXT_LENGTH = 24
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4; [SEP] = 3 ends every sentence
TOY_NAMES = ("toy-clip-vit", "toy-clip-convnext", "toy-blip")
REGENERATE = "regenerate them with `ovnb toy pretrain` (about 9 minutes on 2 CPU cores)"


def weights_dir() -> Path:
    """Where the toy weights are read from: ``$OVNB_TOY_WEIGHTS`` or the package's ``toy_weights/``."""
    return Path(os.environ.get("OVNB_TOY_WEIGHTS", WEIGHTS_DIR))


@contextlib.contextmanager
def use_weights_dir(path: Path):
    """Read toy weights from ``path`` inside the block (pretraining into a scratch folder, tests)."""
    old = os.environ.get("OVNB_TOY_WEIGHTS")
    os.environ["OVNB_TOY_WEIGHTS"] = str(path)
    try:
        yield Path(path)
    finally:
        if old is None:
            os.environ.pop("OVNB_TOY_WEIGHTS", None)
        else:
            os.environ["OVNB_TOY_WEIGHTS"] = old


class ToyWeightsError(RuntimeError):
    """A toy checkpoint is missing or does not match its checksum."""


def vocabulary_words() -> list[str]:
    """Every word the toy world's captions and the prompt templates use, sorted (the tokenizer's vocabulary)."""
    from ..data import toy_world
    from . import templates

    text = " ".join(toy_world.vocabulary().names)
    text += " a an on under below in front of and photo close-up everywhere mosaic"
    for name in templates.NAMES:
        text += " " + " ".join(t.replace("{}", " ") for t in templates.get(name))
    words = set(re.findall(r"[a-z]+", text.lower()))
    return sorted(words) + [".", ",", "-"]


def write_vocab(path: Path) -> Path:
    path.write_text("\n".join(SPECIAL_TOKENS + vocabulary_words()) + "\n")
    return path


class ToyTokenizer:
    """Word-level tokenizer: ``[CLS] words [SEP] [PAD]...``; called like open_clip's tokenizers."""

    def __init__(self, vocab_file: Path, context_length: int = CONTEXT_LENGTH):
        from transformers import BertTokenizerFast

        # from_pretrained(folder) reads vocab.txt in every transformers version (v5 ignores vocab_file=)
        self.hf = BertTokenizerFast.from_pretrained(str(Path(vocab_file).parent), do_lower_case=True)
        self.context_length = context_length
        self.vocab_size = self.hf.vocab_size
        self.pad_id, self.eos_id = self.hf.pad_token_id, self.hf.sep_token_id

    def __call__(self, texts, context_length: int | None = None) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.hf(texts, padding="max_length", truncation=True, max_length=context_length or self.context_length,
                       return_tensors="pt")["input_ids"]


def tokenizer() -> ToyTokenizer:
    """The tokenizer stored with the toy weights (its vocabulary is part of the checkpoint)."""
    return _tokenizer(weights_dir())


@lru_cache(maxsize=None)
def _tokenizer(folder: Path) -> ToyTokenizer:
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        raise ToyWeightsError(f"toy tokenizer vocabulary {vocab} is missing; {REGENERATE}")
    return ToyTokenizer(vocab)


def register_open_clip_configs() -> None:
    import open_clip

    if "toy-clip-vit" not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def blip_config(vocab_size: int):
    from transformers import BlipConfig

    return BlipConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=128, encoder_hidden_size=128, intermediate_size=512,
                         num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=CONTEXT_LENGTH,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, sep_token_id=3),
        # BlipVisionConfig's default initializer_range is 1e-10 (HF always loads BLIP pretrained); a
        # toy BLIP trained from scratch needs a real initialisation
        vision_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=8, initializer_range=0.02),
        projection_dim=128,
        image_text_hidden_size=128,
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path | None = None) -> dict:
    path = (folder or weights_dir()) / MANIFEST
    if not path.is_file():
        raise ToyWeightsError(f"toy weights manifest {path} is missing; {REGENERATE}")
    return json.loads(path.read_text())


def load_state_dict(name: str, folder: Path | None = None) -> dict:
    """The verified fp32 state dict of toy model ``name``; a missing or altered file is refused."""
    from safetensors.torch import load_file

    folder = folder or weights_dir()
    manifest = read_manifest(folder)
    if name not in manifest.get("models", {}):
        raise ToyWeightsError(f"{name!r} is not in {folder / MANIFEST}; {REGENERATE}")
    entry = manifest["models"][name]
    path = folder / entry["file"]
    if not path.is_file():
        raise ToyWeightsError(f"toy checkpoint {path} is missing; {REGENERATE}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ToyWeightsError(f"toy checkpoint {path} is corrupt or was modified (sha256 {digest[:12]}..., "
                              f"expected {entry['sha256'][:12]}...); {REGENERATE}")
    vocab = folder / "vocab.txt"
    if not vocab.is_file() or sha256(vocab) != manifest.get("vocab_sha256"):
        raise ToyWeightsError(f"toy vocabulary {vocab} is missing or does not match the manifest; {REGENERATE}")
    return {k: v.float() for k, v in load_file(str(path)).items()}
