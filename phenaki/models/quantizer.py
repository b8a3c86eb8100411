"""One interface over vector-quantize-pytorch's quantizers, chosen by name in the tokenizer's config.

- "vq":  a learned codebook (EMA updates, k-means init, dead codes replaced), as in the Phenaki paper.
- "lfq": lookup-free quantization (MAGVIT-v2); codebook size must be a power of two.
- "fsq": finite scalar quantization; the codebook is the product of `fsq_levels`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

QUANTIZERS = ("vq", "lfq", "fsq")


class Quantizer(nn.Module):
    def __init__(
        self,
        kind: str,
        dim: int,
        codebook_size: int,
        codebook_dim: int = 32,
        fsq_levels: list[int] | None = None,
        commitment_weight: float = 0.25,
    ):
        super().__init__()
        if kind not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {kind!r}")
        # imported here, so that `import phenaki` and the transformers alone work where it is not installed
        from vector_quantize_pytorch import FSQ, LFQ, VectorQuantize

        self.kind, self.codebook_size = kind, codebook_size
        if kind == "vq":
            self.impl = VectorQuantize(
                dim=dim,
                codebook_size=codebook_size,
                codebook_dim=codebook_dim,
                kmeans_init=True,
                threshold_ema_dead_code=2,
                commitment_weight=commitment_weight,
            )
        elif kind == "lfq":
            if codebook_size & (codebook_size - 1):
                raise ValueError(f"the lfq quantizer needs a power-of-two codebook_size, got {codebook_size}")
            self.impl = LFQ(dim=dim, codebook_size=codebook_size)
        else:
            if not fsq_levels or math.prod(fsq_levels) != codebook_size:
                raise ValueError(
                    f"the fsq quantizer needs fsq_levels whose product is codebook_size "
                    f"({codebook_size}), got {fsq_levels}"
                )
            self.impl = FSQ(levels=list(fsq_levels), dim=dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (b, n, dim) -> quantized (b, n, dim), ids (b, n) long, auxiliary loss (scalar)."""
        if self.kind == "fsq":
            quantized, ids = self.impl(x)
            aux = x.new_zeros(())
        else:
            quantized, ids, aux = self.impl(x)
        return quantized, ids.long(), aux

    def codes(self, ids: Tensor) -> Tensor:
        """ids (b, n) -> the quantized vectors (b, n, dim) that the decoder reads."""
        if self.kind == "vq":
            return self.impl.get_output_from_indices(ids)
        return self.impl.indices_to_codes(ids)


def codebook_usage(ids: Tensor, codebook_size: int) -> tuple[float, float]:
    """Fraction of codebook entries used by `ids`, and the perplexity of their distribution."""
    counts = torch.bincount(ids.flatten(), minlength=codebook_size).float()
    probs = counts / counts.sum()
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return (counts > 0).float().mean().item(), entropy.exp().item()
