"""Transformer building blocks shared by C-ViViT, MaskGit and the Token Critic.

Attention runs through `F.scaled_dot_product_attention`, so PyTorch picks the flash / memory-efficient kernel
for the device. Position information is added by the caller (fixed sin-cos tables or learned embeddings); no
(n x n x hidden) position-bias tensor is ever built.

Fast paths and their references: every shortcut taken for speed has a plain path beside it that computes the same
thing the obvious way, and `reference_paths()` switches the whole library onto those (tests/test_fast_paths.py
compares the two on random inputs). Here: SDPA (reference: softmax(q k^T / sqrt(d)) v written out);
unconditioned rows of a cross-attention batch (`null_context_rows`), whose output is the null value through
`to_out` (reference: the same rows attending to a text whose every token is masked); a guided batch (`guided`),
whose two identical halves share the layers before the first cross-attention (reference: both halves computed);
and outputs wanted at some positions only (`positions`), for which the last layer works at those positions only
(reference: every position computed, the wanted ones picked at the end).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

_fast_paths = True


def fast_paths_enabled() -> bool:
    return _fast_paths


@contextmanager
def reference_paths() -> Iterator[None]:
    """Within this block the library takes its plain reference paths instead of the fast ones (math attention,
    the unconditioned pass batched with a masked-out text, `torch.multinomial`, fp32 sampling): for tests and for
    debugging."""
    global _fast_paths
    previous, _fast_paths = _fast_paths, False
    try:
        yield
    finally:
        _fast_paths = previous


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(d)) in fp32: (b, h, n, d) queries, (b, h, m, d) keys, `mask` (b, m) bool (True =
    attend) -> (b, h, n, m), each row summing to 1."""
    sim = torch.einsum("b h i d, b h j d -> b h i j", q.float(), k.float()) * q.shape[-1] ** -0.5
    if mask is not None:
        sim = sim.masked_fill(~rearrange(mask, "b j -> b 1 1 j"), -math.inf)
    if causal:
        i, j = sim.shape[-2:]
        sim = sim.masked_fill(torch.ones(i, j, dtype=torch.bool, device=sim.device).triu(j - i + 1), -math.inf)
    return sim.softmax(dim=-1)


def attend_reference(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
    """The plain attention that SDPA computes: (b, h, n, d) queries, (b, h, m, d) keys and values, `mask`
    (b, m) bool (True = attend)."""
    return torch.einsum("b h i j, b h j d -> b h i d", attention_weights(q, k, mask, causal), v.float()).to(q.dtype)


@contextmanager
def recording_cross_attention(module: nn.Module) -> Iterator[list[list[Tensor]]]:
    """Within this block every text cross-attention inside `module` (a MaskGit, a `Transformer`) keeps its
    softmax weights: yields one list per layer, in order, to which each call appends its weights (b, heads,
    queries, 1 + text tokens) in fp32 on the CPU; key 0 is the learned null key, then the text's tokens. The
    weights are `attention_weights` of the very q and k the call attends with; its output is computed as without
    recording (SDPA or the reference path), so nothing that is sampled changes. Rows that skip the text (the
    unconditioned half of a guided batch) record nothing. Only this thread's calls are recorded: the demo's other
    requests (PHENAKI_CONCURRENCY > 1) share the model and record nothing into these lists (a call this thread
    hands to another, such as the demo's first window with its emerging picture, is not recorded either)."""
    layers = [m for m in module.modules() if isinstance(m, Attention) and m.is_cross]
    records: list[list[Tensor]] = [[] for _ in layers]
    thread = threading.get_ident()
    for layer, record in zip(layers, records):
        layer.recording[thread] = record
    try:
        yield records
    finally:
        for layer in layers:
            layer.recording.pop(thread, None)


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
        self.recording: dict[int, list] = {}  # `recording_cross_attention`: each recording thread's list
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_context or dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        if self.is_cross:
            self.context_norm = nn.LayerNorm(dim_context)
            self.null_kv = nn.Parameter(torch.randn(2, heads, 1, dim_head) * 0.02)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        causal: bool = False,
        queries: Tensor | None = None,
    ) -> Tensor:
        """x: (b, n, dim). mask: (b, m) bool, True = attend (keys of `context`, or of `x` for self-attention).
        `queries` (b, k): self-attention answered at these positions only, (b, k, dim); keys and values still come
        from all of `x`."""
        h = self.heads
        x = self.norm(x)
        source = self.context_norm(context) if self.is_cross else x
        if queries is not None:
            if self.is_cross or causal:
                raise ValueError("queries= is for non-causal self-attention")
            x = x.gather(1, queries[..., None].expand(-1, -1, x.shape[-1]))
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=h)
        k, v = rearrange(self.to_kv(source), "b m (two h d) -> two b h m d", two=2, h=h)
        if self.is_cross:
            null_k, null_v = (t.expand(x.shape[0], -1, -1, -1).to(q.dtype) for t in self.null_kv)
            k, v = torch.cat((null_k, k), dim=2), torch.cat((null_v, v), dim=2)
            if mask is not None:
                mask = F.pad(mask, (1, 0), value=True)
            if self.recording and (record := self.recording.get(threading.get_ident())) is not None:
                record.append(attention_weights(q, k, mask).cpu())
        if _fast_paths:
            attn_mask = None if mask is None else rearrange(mask, "b m -> b 1 1 m")
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
        else:
            out = attend_reference(q, k, v, mask, causal)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))

    def null_output(self) -> Tensor:
        """(dim,): what this cross-attention returns for a row that sees no text (every context token masked).
        Its only key is the null key, whose softmax weight is 1, so the output is the null value through
        `to_out`: one vector, whatever the row's queries."""
        if not self.is_cross:
            raise ValueError("null_output is defined for cross-attention only")
        return F.linear(rearrange(self.null_kv[1], "h 1 d -> (h d)"), self.to_out.weight, self.to_out.bias)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        norm, inner, act, outer = self
        hidden = inner(norm(x))
        if _fast_paths and not (torch.is_grad_enabled() and hidden.requires_grad):
            # no autograd: GELU in place, so the widest tensor of the block is allocated (and paged in) once
            return outer(torch.ops.aten.gelu_(hidden, approximate=act.approximate))
        return outer(act(hidden))  # reference (and training): nn.Sequential's forward


class LocalMixer(nn.Module):
    """Each token takes in its 3x3x3 neighbours on the (frames, rows, columns) token grid: a depthwise
    convolution, GELU, then a linear layer that starts at zero, so that mixers added to a trained transformer leave
    its outputs unchanged. Attention can reach neighbours too, but only by learning which positions they are."""

    def __init__(self, dim: int, grid: tuple[int, int, int]):
        super().__init__()
        self.grid = tuple(grid)
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)
        self.to_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (b, n, dim), the first n tokens of the grid (a shorter window is padded with zeros, as is every
        position where `mask` (b, n) is False, so padding never leaks into its neighbours) -> (b, n, dim)."""
        t, h, w = self.grid
        n = x.shape[1]
        y = self.norm(x)
        if mask is not None:
            y = y * mask[..., None].to(y.dtype)
        y = F.pad(y, (0, 0, 0, t * h * w - n))
        # (b, d, t, h, w) as a view of channels-last memory: the layout the CPU's depthwise kernel is fast on
        y = self.conv(rearrange(y, "b (t h w) d -> b d t h w", t=t, h=h, w=w))
        return self.to_out(F.gelu(rearrange(y, "b d t h w -> b (t h w) d")[:, :n]))


class Transformer(nn.Module):
    """Pre-norm transformer: self-attention, optional cross-attention on a text context, feed-forward; with
    `local_grid` (frames, rows, columns), each layer starts with a `LocalMixer` over that token grid."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int = 8,
        dim_head: int = 64,
        dim_context: int | None = None,
        ff_mult: int = 4,
        local_grid: tuple[int, int, int] | None = None,
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            cross = Attention(dim, heads, dim_head, dim_context) if dim_context is not None else None
            self.layers.append(nn.ModuleList([Attention(dim, heads, dim_head), cross, FeedForward(dim, ff_mult)]))
        self.norm_out = nn.LayerNorm(dim)
        self.local_mixers = None
        if local_grid is not None:
            self.add_local_mixers(local_grid)

    def add_local_mixers(self, grid: tuple[int, int, int]) -> None:
        dim = self.norm_out.normalized_shape[0]
        device = self.norm_out.weight.device
        self.local_mixers = nn.ModuleList(LocalMixer(dim, grid) for _ in self.layers).to(device)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        causal: bool = False,
        null_context_rows: int = 0,
        guided: bool = False,
        positions: Tensor | None = None,
    ) -> Tensor:
        """x (b, n, dim) -> (b, n, dim), or (b, k, dim) at `positions` (b, k).

        `null_context_rows`: the last rows of `x` see no text at all; `context` and `context_mask` then cover
        only the rows before them. Those rows skip the text cross-attention, whose output for them is a constant
        (`Attention.null_output`); the reference is to give them a context whose every token is masked.

        `guided`: `x` is a classifier-free-guidance batch, the same rows twice over (b conditioned on `context`,
        then the same b unconditioned: `null_context_rows` is b). Until the first cross-attention both halves
        compute the same thing, so those layers run on one half only; the reference is the plain batched forward.
        `positions` then has b rows, used for both halves.

        `positions`: only these outputs are wanted, so the last layer asks its queries, cross-attention and
        feed-forward there only (its keys and values still see every position); the reference computes every
        position and picks these at the end."""
        if guided:
            if null_context_rows or x.shape[0] % 2:
                raise ValueError(
                    "guided takes an even batch (cond rows, then the same rows unconditioned) and no null_context_rows"
                )
            null_context_rows = x.shape[0] // 2
        rows = x.shape[0]
        conditioned = rows - null_context_rows
        if not 0 <= null_context_rows <= rows:
            raise ValueError(f"null_context_rows must be in [0, {rows}], got {null_context_rows}")
        has_cross = any(cross_attn is not None for _, cross_attn, _ in self.layers)
        if has_cross and null_context_rows and conditioned and (context is None or context.shape[0] != conditioned):
            raise ValueError(
                f"with null_context_rows={null_context_rows}, context must cover the first {conditioned} rows"
            )
        if positions is not None and positions.shape[0] != (conditioned if guided else rows):
            raise ValueError(f"positions must have {conditioned if guided else rows} rows, got {positions.shape[0]}")
        if guided:
            x, mask = x[:conditioned], None if mask is None else mask[:conditioned]
        picked = positions is not None and _fast_paths and not causal
        for i, (self_attn, cross_attn, ff) in enumerate(self.layers):
            if self.local_mixers is not None:  # before any position is dropped: every token's neighbours are here
                x = x + self.local_mixers[i](x, mask)
            if picked and i == len(self.layers) - 1:  # the last layer: only the wanted positions go on
                index = positions[..., None].expand(-1, -1, x.shape[-1])
                x = x.gather(1, index) + self_attn(x, mask=mask, queries=positions)
            else:
                x = x + self_attn(x, mask=mask, causal=causal)
            if cross_attn is not None and x.shape[0] < rows:  # guided: the halves part here
                x, mask = torch.cat((x, x)), None if mask is None else torch.cat((mask, mask))
                positions = None if positions is None else torch.cat((positions, positions))
            if cross_attn is not None and null_context_rows:
                null = cross_attn.null_output().to(x.dtype).expand(null_context_rows, x.shape[1], -1)
                if conditioned:
                    null = torch.cat((cross_attn(x[:conditioned], context=context, mask=context_mask), null))
                x = x + null
            elif cross_attn is not None and context is not None:
                x = x + cross_attn(x, context=context, mask=context_mask)
            x = x + ff(x)
        if x.shape[0] < rows:  # no cross-attention at all: the halves never parted
            x = torch.cat((x, x))
            positions = None if positions is None else torch.cat((positions, positions))
        if positions is not None and not picked:
            x = x.gather(1, positions[..., None].expand(-1, -1, x.shape[-1]))
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
