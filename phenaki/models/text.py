"""Text encoders, through transformers: prompts -> (embeddings, mask) for MaskGit's cross-attention.

- `ByteTextEncoder` (the default): ByT5's byte tokenizer (no vocabulary file) and a small T5 encoder built from a
  config, trained with the model and saved in its weights, so a model needs no download at all.
- `PretrainedT5Encoder`: any T5 encoder on the Hub by name (e.g. "google/t5-v1_1-base"), fetched only when the
  model is built, frozen, and never saved into our weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import register_to_config


class ByteTextEncoder(nn.Module):
    saved_with_model = True

    @register_to_config(kind="byte")
    def __init__(
        self,
        dim: int = 256,
        depth: int = 2,
        heads: int = 4,
        dim_head: int = 64,
        ff_mult: int = 2,
        max_length: int = 128,
    ):
        super().__init__()
        # imported here, so that `import phenaki` and the video models alone work without transformers
        from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

        self.dim, self.max_length = dim, max_length
        self.tokenizer = ByT5Tokenizer()
        t5 = T5Config(
            vocab_size=len(self.tokenizer),
            d_model=dim,
            d_kv=dim_head,
            d_ff=dim * ff_mult,
            num_layers=depth,
            num_heads=heads,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        )
        self.encoder = T5EncoderModel(t5)

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        return _encode(self.tokenizer, self.encoder, texts, self.max_length, self.encoder.device)


class PretrainedT5Encoder(nn.Module):
    saved_with_model = False

    @register_to_config(kind="t5")  # not the hub options (token, cache folder): they are the caller's
    def __init__(self, name: str, revision: str | None = None, max_length: int = 128, **hub_kwargs):
        super().__init__()
        from ..hub import load_t5_encoder  # network only when such a model is built

        self.tokenizer, self.encoder = load_t5_encoder(name, revision=revision, **hub_kwargs)
        self.encoder.requires_grad_(False).eval()
        self.dim, self.max_length = self.encoder.config.d_model, max_length

    @torch.no_grad()
    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        return _encode(self.tokenizer, self.encoder, texts, self.max_length, self.encoder.device)


def _encode(tokenizer, encoder, texts, max_length, device) -> tuple[Tensor, Tensor]:
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device).bool()
    return encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask


def build_text_encoder(config: dict, **hub_kwargs) -> nn.Module:
    config = dict(config)
    kind = config.pop("kind", None)
    if kind == "byte":
        return ByteTextEncoder(**config)
    if kind == "t5":
        return PretrainedT5Encoder(**config, **hub_kwargs)
    raise ValueError(f"text_encoder kind must be 'byte' or 't5', got {kind!r}")
