"""Vision-language models with text-to-image cross-attention and an image-text matching (ITM) head,
built by transformers: BLIP (``BlipForImageTextRetrieval``) and BridgeTower
(``BridgeTowerForImageAndTextRetrieval``) - the models PnP-OVSS reads its masks from.

Both are built with ``attn_implementation="eager"`` so attention probabilities exist (SDPA returns
none). The full HF model stays available as ``.model`` for hooks on the cross-attention layers:
``model.text_encoder.encoder.layer[i].crossattention.self`` (BLIP) and
``model.bridgetower.cross_modal_text_layers[i].crossattention.self`` (BridgeTower).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CLIP_MEAN, CLIP_STD, DenseFeatures, EncoderInfo, FrozenEncoder

BLIP_LARGE = dict(
    # initializer_range: BlipVisionConfig's default is 1e-10 (transformers always loads BLIP pretrained);
    # random weights that small make the gradients denormal floats, which CPUs compute 10-100x slower
    vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                image_size=384, patch_size=16, initializer_range=0.02),
    text=dict(vocab_size=30524, hidden_size=768, encoder_hidden_size=1024, intermediate_size=3072,
              num_hidden_layers=12, num_attention_heads=12),
    projection_dim=256,
)
BRIDGETOWER_LARGE = dict(
    text=dict(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    vision=dict(hidden_size=1024, num_hidden_layers=24, patch_size=14, image_size=294),
    hidden_size=1024, num_attention_heads=16, num_hidden_layers=6,
)


def blip_config(spec: dict):
    from transformers import BlipConfig

    return BlipConfig(text_config=spec["text"], vision_config=spec["vision"], projection_dim=spec["projection_dim"])


class BlipITMEncoder(FrozenEncoder):
    mean, std = CLIP_MEAN, CLIP_STD

    def __init__(self, info: EncoderInfo, hub_id: str | None, pretrained: bool, config=None, tokenizer=None,
                 state_dict=None):
        super().__init__(info)
        from transformers import BlipForImageTextRetrieval

        if pretrained and state_dict is None:
            from transformers import AutoProcessor

            self.model = BlipForImageTextRetrieval.from_pretrained(hub_id, attn_implementation="eager")
            processor = AutoProcessor.from_pretrained(hub_id)
            self.tokenizer = processor.tokenizer
            self.mean = tuple(processor.image_processor.image_mean)
            self.std = tuple(processor.image_processor.image_std)
        else:
            config._attn_implementation = "eager"
            self.model = BlipForImageTextRetrieval(config)
            if state_dict is not None:
                self.model.load_state_dict(state_dict)
            if tokenizer is None:
                from .language import offline_bert_tokenizer

                tokenizer = offline_bert_tokenizer()
            self.tokenizer = tokenizer
        vcfg = self.model.config.vision_config
        self.image_size = vcfg.image_size
        self.patch = vcfg.patch_size
        self.width = vcfg.hidden_size
        self.embed_dim = self.model.config.image_text_hidden_size
        self.freeze()

    def _pixels(self, images, preprocessed, size=None):
        return images if preprocessed else self.preprocess(images, size)

    def vision_tokens(self, images, preprocessed: bool = False, size: int | None = None) -> torch.Tensor:
        """Image tokens ``[B, 1 + N, width]`` (CLS first), the keys/values of the text-to-image cross-attention."""
        x = self._pixels(images, preprocessed, size)
        out = self.model.vision_model(pixel_values=x, interpolate_pos_encoding=x.shape[-1] != self.image_size)
        return out.last_hidden_state

    def dense(self, images, projected: bool = False, preprocessed: bool = False, size: int | None = None) -> DenseFeatures:
        x = self._pixels(images, preprocessed, size)
        tokens = self.vision_tokens(x, preprocessed=True)[:, 1:]
        if projected:
            tokens = self.model.vision_proj(tokens)
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        return DenseFeatures([tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)], [self.patch])

    def embed_image(self, images, preprocessed: bool = False) -> torch.Tensor:
        cls = self.vision_tokens(images, preprocessed)[:, 0]
        return F.normalize(self.model.vision_proj(cls), dim=-1)

    def tokenize(self, texts: list[str], max_length: int = 64) -> dict:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        batch = self.tokenize(sentences)
        hidden = self.model.text_encoder(**batch).last_hidden_state
        return self.model.text_proj(hidden[:, 0])

    def itm_logits(self, images, texts: list[str], preprocessed: bool = False) -> torch.Tensor:
        """ITM logits ``[B, 2]`` (column 1 = "matches") for the pairs (images[i], texts[i])."""
        if len(texts) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images and {len(texts)} texts; ITM scores pairs")
        image_embeds = self.vision_tokens(images, preprocessed)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        batch = self.tokenize(texts)
        out = self.model.text_encoder(**batch, encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        return self.model.itm_head(out.last_hidden_state[:, 0])


def standin_tokenizer(vocab_size: int):
    """A stand-in for a tokenizer whose vocabulary is only on the hub (BridgeTower's RoBERTa BPE), for
    random-weight dry runs: the offline BERT WordPiece tokenizer (30,522 entries, every id a valid row
    of the larger table) with added filler tokens up to ``vocab_size``, so ``len(tokenizer)`` matches
    the model's embedding table. Its ids mean nothing to real weights."""
    from .language import offline_bert_tokenizer

    tok = offline_bert_tokenizer()
    missing = vocab_size - len(tok)
    if missing > 0:
        tok.add_tokens([f"[standin{i}]" for i in range(missing)])
    return tok


class BridgeTowerITMEncoder(FrozenEncoder):
    mean, std = CLIP_MEAN, CLIP_STD

    def __init__(self, info: EncoderInfo, hub_id: str, pretrained: bool):
        super().__init__(info)
        from transformers import BridgeTowerConfig, BridgeTowerForImageAndTextRetrieval

        if pretrained:
            from transformers import BridgeTowerProcessor

            self.model = BridgeTowerForImageAndTextRetrieval.from_pretrained(hub_id, attn_implementation="eager")
            self.processor = BridgeTowerProcessor.from_pretrained(hub_id)
            self.tokenizer = self.processor.tokenizer
            self.mean = tuple(self.processor.image_processor.image_mean)
            self.std = tuple(self.processor.image_processor.image_std)
        else:
            spec = BRIDGETOWER_LARGE
            config = BridgeTowerConfig(text_config=spec["text"], vision_config=spec["vision"],
                                       hidden_size=spec["hidden_size"], num_attention_heads=spec["num_attention_heads"],
                                       num_hidden_layers=spec["num_hidden_layers"])
            config._attn_implementation = "eager"
            self.model = BridgeTowerForImageAndTextRetrieval(config)
            self.processor = None  # the RoBERTa BPE vocabulary is only on the hub
            self.tokenizer = standin_tokenizer(config.text_config.vocab_size)
        vcfg = self.model.config.vision_config
        self.image_size, self.patch, self.width = vcfg.image_size, vcfg.patch_size, vcfg.hidden_size
        self.freeze()

    def itm_logits(self, images, texts: list[str]) -> torch.Tensor:
        if self.processor is None:
            raise RuntimeError("bridgetower-large-itm built with pretrained=False has no tokenizer offline; "
                               "build it with pretrained=True (downloads the hub processor)")
        from PIL import Image

        pil = [Image.fromarray(img.permute(1, 2, 0).cpu().numpy()) for img in images]
        batch = self.processor(images=pil, text=texts, return_tensors="pt", padding=True).to(self.device)
        return self.model(**batch).logits
