"""Transformer building blocks shared by C-ViViT, MaskGit and the Token Critic.

Attention runs through `F.scaled_dot_product_attention`, so PyTorch picks the flash / memory-efficient kernel
for the device. Position information is added by the caller (fixed sin-cos tables or learned embeddings); no
(n x n x hidden) position-bias tensor is ever built.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None, else cross-attention on `context`.

    Cross-attention always sees one learned null key/value besides the text, so that an unconditioned pass
    (every text token masked out) is well defined and can share a batch with the conditioned one.
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dim_context: int | None = None):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.is_cross = dim_context is not None
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_context or dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        if self.is_cross:
            self.context_norm = nn.LayerNorm(dim_context)
            self.null_kv = nn.Parameter(torch.randn(2, heads, 1, dim_head) * 0.02)

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None,
                causal: bool = False) -> Tensor:
        """x: (b, n, dim). mask: (b, m) bool, True = attend (keys of `context`, or of `x` for self-attention)."""
        h = self.heads
        x = self.norm(x)
        source = self.context_norm(context) if self.is_cross else x
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=h)
        k, v = rearrange(self.to_kv(source), "b m (two h d) -> two b h m d", two=2, h=h)
        if self.is_cross:
            null_k, null_v = (t.expand(x.shape[0], -1, -1, -1).to(q.dtype) for t in self.null_kv)
            k, v = torch.cat((null_k, k), dim=2), torch.cat((null_v, v), dim=2)
            if mask is not None:
                mask = F.pad(mask, (1, 0), value=True)
        attn_mask = None if mask is None else rearrange(mask, "b m -> b 1 1 m")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class Transformer(nn.Module):
    """Pre-norm transformer: self-attention, optional cross-attention on a text context, feed-forward."""

    def __init__(self, dim: int, depth: int, heads: int = 8, dim_head: int = 64, dim_context: int | None = None,
                 ff_mult: int = 4):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            cross = Attention(dim, heads, dim_head, dim_context) if dim_context is not None else None
            self.layers.append(nn.ModuleList([Attention(dim, heads, dim_head), cross, FeedForward(dim, ff_mult)]))
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None, context: Tensor | None = None,
                context_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        for self_attn, cross_attn, ff in self.layers:
            x = x + self_attn(x, mask=mask, causal=causal)
            if cross_attn is not None and context is not None:
                x = x + cross_attn(x, context=context, mask=context_mask)
            x = x + ff(x)
        return self.norm_out(x)


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """Fixed sinusoidal embedding of (possibly fractional) positions: (n,) -> (n, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[:, None] * freqs[None]
    emb = torch.cat((angles.sin(), angles.cos()), dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


def sincos_2d(height: int, width: int, dim: int, device=None) -> Tensor:
    """Fixed 2D embedding for a (height, width) grid of any size: (height, width, dim). Half the channels
    encode the row, half the column."""
    rows = sincos_1d(torch.arange(height, device=device), dim // 2)
    cols = sincos_1d(torch.arange(width, device=device), dim - dim // 2)
    return torch.cat((rows[:, None].expand(-1, width, -1), cols[None].expand(height, -1, -1)), dim=-1)
