"""The bidirectional token transformer (MaskGIT) and the Token Critic, both conditioned on text by cross-attention.

A sequence is a window of video tokens flattened frame-major: (t h w). The id `num_tokens` is the [MASK] token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from .attention import Transformer
from .config import register_to_config


class LearnedPositions(nn.Embedding):
    """One learned vector per position of the flattened window (the reference implementation's choice)."""

    def forward(self, n: int) -> Tensor:
        # a lookup, not `weight[:n]`: under no_grad a slice of a parameter still says it requires grad (with no
        # grad function), which breaks tools that hook module outputs (FlopCounterMode)
        return super().forward(torch.arange(n, device=self.weight.device))


class GridPositions(nn.Module):
    """Positions of a (t, h, w) token grid as the sum of a learned vector for the frame, one for the row and one
    for the column. Tokens in the same row, column or frame share what is learned about it, so the transformer
    knows which tokens are neighbours from the first step instead of learning it for each of t*h*w positions."""

    def __init__(self, grid: tuple[int, int, int], dim: int):
        super().__init__()
        self.frame, self.row, self.column = (nn.Parameter(torch.randn(n, dim) / math.sqrt(3)) for n in grid)

    def forward(self, n: int) -> Tensor:
        grid = self.frame[:, None, None] + self.row[None, :, None] + self.column[None, None, :]
        return rearrange(grid, "t h w d -> (t h w) d")[:n]


class TokenTransformer(nn.Module):
    """Token + position embeddings -> transformer (self-attention, cross-attention on text). `position_grid`
    (latent frames, rows, columns) of the window: positions as `GridPositions`; None: `LearnedPositions`.
    `local_mixer` (needs the grid): each layer starts with a `LocalMixer` over the grid's 3x3x3 neighbourhoods."""

    @register_to_config
    def __init__(
        self,
        *,
        num_tokens: int,
        max_seq_len: int,
        dim: int,
        depth: int,
        heads: int = 8,
        dim_head: int = 64,
        dim_context: int | None = None,
        unconditional: bool = False,
        ff_mult: int = 4,
        position_grid: Sequence[int] | None = None,
        local_mixer: bool = False,
    ):
        super().__init__()
        if position_grid is not None:
            position_grid = [int(n) for n in position_grid]
            if len(position_grid) != 3 or math.prod(position_grid) != max_seq_len:
                raise ValueError(
                    f"position_grid must be (frames, rows, columns) of max_seq_len={max_seq_len} "
                    f"tokens, got {position_grid}"
                )
        if local_mixer and position_grid is None:
            raise ValueError("local_mixer needs position_grid: the mixers work on the (frames, rows, columns) grid")
        self.config.update(
            dim_context=None if unconditional else (dim_context or dim),
            position_grid=position_grid,
            local_mixer=bool(local_mixer),
        )  # as given, normalised
        self.num_tokens, self.max_seq_len, self.mask_id = num_tokens, max_seq_len, num_tokens
        self.dim_context = self.config["dim_context"]
        self.token_emb = nn.Embedding(num_tokens + 1, dim)
        self.pos_emb = GridPositions(position_grid, dim) if position_grid else LearnedPositions(max_seq_len, dim)
        self.transformer = Transformer(
            dim, depth, heads, dim_head, self.dim_context, ff_mult, local_grid=position_grid if local_mixer else None
        )
        self.to_out = nn.Linear(dim, num_tokens if self.predicts_tokens else 1)

    predicts_tokens = True  # MaskGit: logits over the codebook; a critic: one score per token

    def add_local_mixers(self) -> TokenTransformer:
        """Gives a trained transformer `LocalMixer`s, started at zero (same outputs until they are trained): for
        fine-tuning, `python -m phenaki.training.trainer transformer --model ... --local-mixers`."""
        if self.config["local_mixer"]:
            raise ValueError("this transformer already has local mixers")
        if self.config["position_grid"] is None:
            raise ValueError("local mixers need a transformer with position_grid (frames, rows, columns)")
        self.transformer.add_local_mixers(self.config["position_grid"])
        self.config["local_mixer"] = True
        return self

    def check_inputs(self, x: Tensor, context: Tensor | None, context_mask: Tensor | None) -> None:
        """Clear errors instead of index or shape errors deep inside."""
        if x.ndim != 2 or x.dtype.is_floating_point:
            raise ValueError(f"expected integer token ids of shape (batch, seq), got {x.dtype} {tuple(x.shape)}")
        if x.shape[1] > self.max_seq_len:
            raise ValueError(f"sequence of {x.shape[1]} tokens is longer than max_seq_len={self.max_seq_len}")
        if x.numel() and (x.min() < 0 or x.max() > self.mask_id):
            raise ValueError(
                f"token ids must be in [0, {self.num_tokens}) (or {self.mask_id} for [MASK]), got "
                f"values in [{x.min().item()}, {x.max().item()}]"
            )
        if context is None:
            return
        if self.dim_context is None:
            raise ValueError("this model was built with unconditional=True and takes no text context")
        if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[-1] != self.dim_context:
            raise ValueError(
                f"context must be (batch={x.shape[0]}, text_len, {self.dim_context}), got {tuple(context.shape)}"
            )
        if context_mask is not None and context_mask.shape != context.shape[:2]:
            raise ValueError(f"context_mask must be {tuple(context.shape[:2])}, got {tuple(context_mask.shape)}")

    def embed_tokens(self, x: Tensor) -> Tensor:
        """ids (b, n) -> token + position embeddings (b, n, dim), the transformer's input."""
        return self.token_emb(x) + self.pos_emb(x.shape[1])

    def embed(
        self,
        x: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        mask: Tensor | None = None,
        null_context_rows: int = 0,
    ) -> Tensor:
        """x (b, n) ids -> embeddings (b, n, dim). `mask` (b, n) marks valid (non-padding) tokens. The last
        `null_context_rows` rows see no text (see `Transformer.forward`); `context` covers the rows before them."""
        h = self.embed_tokens(x)
        return self.transformer(
            h, mask=mask, context=context, context_mask=context_mask, null_context_rows=null_context_rows
        )


class MaskGit(TokenTransformer):
    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        mask: Tensor | None = None,
        return_embeddings: bool = False,
    ) -> Tensor:
        """x (b, n) token ids, [MASK] = num_tokens -> logits (b, n, num_tokens)."""
        self.check_inputs(x, context, context_mask)
        embeddings = self.embed(x, context, context_mask, mask)
        return embeddings if return_embeddings else self.to_out(embeddings)

    def logits_at(
        self,
        x: Tensor,
        positions: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        null_context_rows: int = 0,
    ) -> Tensor:
        """Logits only at `positions` (b, k): the sampler needs them only where tokens are still masked, so the
        last layer works only there (see `Transformer.forward`). `null_context_rows`: the last rows are
        unconditioned (the other half of a guided batch)."""
        h = self.embed_tokens(x)
        picked = self.transformer(
            h, context=context, context_mask=context_mask, null_context_rows=null_context_rows, positions=positions
        )
        return self.to_out(picked)

    def guided_logits_at(
        self, x: Tensor, positions: Tensor, context: Tensor, context_mask: Tensor | None, guidance_scale: float
    ) -> Tensor:
        """Classifier-free guided logits at `positions` (b, k) of ids `x` (b, n): uncond + s * (cond - uncond),
        from one forward of a batch holding `x` twice (see `Transformer.forward(guided=True)`: the unconditioned
        half skips the text, and the layers before the first cross-attention run once). The output layer is
        affine, so the two halves' embeddings are mixed before it and the codebook projection runs once.
        The reference is `logits_at` on the doubled batch, the text masked out in its second half, mixed after."""
        h = self.embed_tokens(x)
        picked = self.transformer(
            torch.cat((h, h)), context=context, context_mask=context_mask, guided=True, positions=positions
        )
        cond, uncond = picked.float().chunk(2)
        return self.to_out((uncond + guidance_scale * (cond - uncond)).to(picked.dtype))  # mixed in fp32


class TokenCritic(TokenTransformer):
    """Scores each token of a filled-in sequence: a high logit means 'this token was sampled, not real', so it
    is the first to be masked again (Lezama et al., 2022)."""

    predicts_tokens = False

    def forward(
        self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        self.check_inputs(x, context, context_mask)
        return self.to_out(self.embed(x, context, context_mask, mask)).squeeze(-1)


class SelfCritic(nn.Module):
    """A critic that is a head on MaskGit's own embeddings: no second transformer, one forward per step."""

    @register_to_config(ignore=("maskgit",), self_critic=True)  # the head's size is MaskGit's: nothing to record
    def __init__(self, maskgit: MaskGit):
        super().__init__()
        self.maskgit = maskgit
        self.to_score = nn.Linear(maskgit.token_emb.embedding_dim, 1)

    @property
    def dim_context(self):
        return self.maskgit.dim_context

    def forward(
        self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        return self.to_score(self.maskgit(x, context, context_mask, mask, return_embeddings=True)).squeeze(-1)
