"""A small convolutional frame discriminator for the tokenizer's optional adversarial loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Discriminator(nn.Module):
    """Patch discriminator over single frames of any size: strided convolutions, one logit per patch."""

    def __init__(self, channels: int = 3, dim: int = 64, layers: int = 3):
        super().__init__()
        blocks, width = [], channels
        for i in range(layers):
            out = dim * 2 ** i
            blocks += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.GroupNorm(min(32, out // 4), out),
                       nn.LeakyReLU(0.2)]
            width = out
        self.net = nn.Sequential(*blocks, nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, frames: Tensor) -> Tensor:
        """frames (n, c, H, W) -> patch logits (n, h, w)."""
        return self.net(frames).squeeze(1)


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
