"""Training objectives of the token transformers (the tokenizer's own loss lives in `CViViT.forward`).

MaskGit: mask a cosine-distributed fraction of the valid tokens (never padding, never the primed prefix), predict
them, cross-entropy on masked tokens only. With probability `continuation_prob` a prefix of whole latent frames
stays unmasked, so that continuing a video is in the training distribution. With probability `cond_drop_prob`
the text is dropped, which is what classifier-free guidance needs at sampling time.

Token Critic: fill the masked tokens with MaskGit's own samples; the critic learns, at masked positions only,
which of them differ from the real tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.maskgit import MaskGit
from .sampling import draw_categorical


def random_mask(
    ids: Tensor,
    *,
    frame_tokens: int,
    continuation_prob: float,
    valid: Tensor | None = None,
    prefix: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(b, n) bool: True where a token is hidden from MaskGit. At least one token per row is masked.
    `prefix` (b,) fixes the number of primed latent frames of a row where it is >= 0."""
    b, n = ids.shape
    device = ids.device
    valid = torch.ones_like(ids, dtype=torch.bool) if valid is None else valid.bool()

    # primed prefix: 1 .. latent_frames-1 whole frames, for a random subset of rows
    latent_frames = n // frame_tokens
    prefix_frames = torch.zeros(b, dtype=torch.long, device=device)
    if latent_frames > 1 and continuation_prob > 0:
        primed = torch.rand(b, generator=generator, device=device) < continuation_prob
        drawn = torch.randint(1, latent_frames, (b,), generator=generator, device=device)
        prefix_frames = torch.where(primed, drawn, prefix_frames)
    if prefix is not None:
        prefix_frames = torch.where(prefix >= 0, prefix.clamp(max=max(latent_frames - 1, 0)), prefix_frames)
    maskable = valid & (torch.arange(n, device=device)[None] >= prefix_frames[:, None] * frame_tokens)

    ratio = torch.cos(math.pi / 2 * torch.rand(b, generator=generator, device=device))
    num_masked = (ratio * maskable.sum(1)).ceil().clamp(min=1).long()
    noise = torch.rand(b, n, generator=generator, device=device).masked_fill(~maskable, 2.0)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return (rank < num_masked[:, None]) & maskable


def drop_condition(context_mask: Tensor, cond_drop_prob: float, generator=None) -> Tensor:
    """Drops the whole text of a random subset of rows (they then see only the null key)."""
    dropped = torch.rand(context_mask.shape[0], generator=generator, device=context_mask.device) < cond_drop_prob
    return context_mask & ~dropped[:, None]


def maskgit_loss(
    maskgit: MaskGit,
    ids: Tensor,
    masked: Tensor,
    context: Tensor | None,
    context_mask: Tensor | None,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Cross-entropy on the masked tokens; also returns their logits (n_masked, num_tokens), which the critic's
    objective samples from, so MaskGit runs once per step for both."""
    x = ids.masked_fill(masked, maskgit.mask_id)
    embeddings = maskgit(x, context, context_mask, mask=valid, return_embeddings=True)
    logits = maskgit.to_out(embeddings[masked]).float()  # logits only where the loss is
    return F.cross_entropy(logits, ids[masked]), logits


def critic_loss(
    critic,
    ids: Tensor,
    masked: Tensor,
    logits: Tensor,
    context: Tensor | None,
    context_mask: Tensor | None,
    valid: Tensor | None = None,
    generator=None,
) -> Tensor:
    """`logits` (n_masked, num_tokens): MaskGit's predictions at the masked positions, sampled to fill them."""
    with torch.no_grad():
        sampled = draw_categorical(logits.detach().softmax(-1), generator)
        filled = ids.clone()
        filled[masked] = sampled
        replaced = (filled != ids).float()
    scores = critic(filled, context, context_mask, mask=valid)
    return F.binary_cross_entropy_with_logits(scores[masked].float(), replaced[masked])
