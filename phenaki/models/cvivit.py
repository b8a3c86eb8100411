"""C-ViViT: the causal video tokenizer of Phenaki.

The first frame is patched alone (so an image is a 1-frame video); later frames go in tubelets of
`temporal_patch_size` frames. Spatial attention mixes the patches of one latent frame; temporal attention is
causal across latent frames. So the tokens of the first 1 + k * temporal_patch_size frames never depend on what
comes after them, which is what lets a long video be continued window by window.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .attention import Transformer, sincos_1d, sincos_2d
from .config import register_to_config
from .quantizer import Quantizer, codebook_usage

# Keys of configs saved before the untrained adversarial / perceptual path was removed: inert when
# use_discriminator is false, so they are dropped when such a config is loaded.
RETIRED_KEYS = ("use_discriminator", "discr_dim", "adversarial_loss_weight", "perceptual_loss_weight")


class LossBreakdown(NamedTuple):
    reconstruction: Tensor
    quantizer: Tensor
    codebook_usage: float  # fraction of the codebook used by this batch
    perplexity: float


class CViViT(nn.Module):
    @register_to_config
    def __init__(
        self,
        *,
        dim: int,
        codebook_size: int,
        patch_size: int,
        temporal_patch_size: int = 2,
        spatial_depth: int = 4,
        temporal_depth: int = 4,
        dim_head: int = 64,
        heads: int = 8,
        channels: int = 3,
        ff_mult: int = 4,
        quantizer: str = "vq",
        codebook_dim: int = 32,
        fsq_levels: list[int] | None = None,
        pixel_mlp_dim: int | None = None,
        pixel_refiner_dim: int | None = None,
    ):
        super().__init__()
        self.dim, self.codebook_size, self.channels = dim, codebook_size, channels
        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size

        first_pixels = channels * patch_size**2
        rest_pixels = first_pixels * temporal_patch_size
        self.to_tokens_first = _patch_embedding(first_pixels, dim)
        self.to_tokens_rest = _patch_embedding(rest_pixels, dim)
        block = dict(dim_head=dim_head, heads=heads, ff_mult=ff_mult)
        self.enc_spatial = Transformer(dim, spatial_depth, **block)
        self.enc_temporal = Transformer(dim, temporal_depth, **block)
        self.quantizer = Quantizer(quantizer, dim, codebook_size, codebook_dim, fsq_levels)
        self.dec_temporal = Transformer(dim, temporal_depth, **block)
        self.dec_spatial = Transformer(dim, spatial_depth, **block)
        # A token becomes its patch of pixels through a linear map (the reference's), or, with `pixel_mlp_dim`,
        # through `pixel_mlp_dim` features per pixel, GELU and a per-pixel linear: a sum of fixed patterns
        # blurs an edge that can sit at any offset in the patch; a nonlinearity per pixel can draw it sharp.
        if pixel_mlp_dim is not None and pixel_mlp_dim < 1:
            raise ValueError(f"pixel_mlp_dim must be a positive int or None, got {pixel_mlp_dim}")
        self.pixel_features = pixel_mlp_dim or channels
        self.to_pixels_first = nn.Linear(dim, first_pixels // channels * self.pixel_features)
        self.to_pixels_rest = nn.Linear(dim, rest_pixels // channels * self.pixel_features)
        self.pixel_mlp = nn.Sequential(nn.GELU(), nn.Linear(pixel_mlp_dim, channels)) if pixel_mlp_dim else None
        self.pixel_refiner = None
        if pixel_refiner_dim is not None:
            self.add_pixel_refiner(pixel_refiner_dim)

    @classmethod
    def from_config(cls, config: dict) -> CViViT:
        """`CViViT(**config)`, for a config saved by any version: the keys of the removed discriminator are
        dropped while it is off (they did nothing then), and refused when it is on."""
        if config.get("use_discriminator"):
            raise ValueError(
                "this tokenizer config has use_discriminator: true, but this version of Phenaki has no "
                "discriminator trainer (the untrained adversarial / perceptual path was removed): "
                "set use_discriminator to false, or remove it, to load the tokenizer without one"
            )
        return cls(**{k: v for k, v in config.items() if k not in RETIRED_KEYS})

    # ---- shapes ---------------------------------------------------------------------------------------------

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames for a clip of `num_frames` (1 + k * temporal_patch_size) frames."""
        if num_frames < 1 or (num_frames - 1) % self.temporal_patch_size:
            raise ValueError(
                f"a video must have 1 + k * {self.temporal_patch_size} frames "
                f"(1, {1 + self.temporal_patch_size}, {1 + 2 * self.temporal_patch_size}, ...), "
                f"got {num_frames}"
            )
        return 1 + (num_frames - 1) // self.temporal_patch_size

    def num_frames(self, latent_frames: int) -> int:
        """Frames decoded from `latent_frames` latent frames."""
        return 1 + (latent_frames - 1) * self.temporal_patch_size

    def latent_frames_covering(self, num_frames: int) -> int:
        """The fewest latent frames that decode to at least `num_frames` frames (so frame `f` is in latent frame
        `latent_frames_covering(f + 1) - 1`)."""
        return 1 + math.ceil((num_frames - 1) / self.temporal_patch_size)

    def usable_frames(self, num_frames: int) -> int:
        """The most frames, up to `num_frames` (>= 1), that the tokenizer takes: 1 + k * temporal_patch_size."""
        return self.num_frames(1 + (num_frames - 1) // self.temporal_patch_size)

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"frame size {height}x{width} is not divisible by patch_size {p}")
        return height // p, width // p

    def _check_video(self, video: Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.channels:
            raise ValueError(
                f"expected a video of shape (batch, {self.channels}, frames, height, width), got {tuple(video.shape)}"
            )
        self.latent_frames(video.shape[2])
        self.token_grid(*video.shape[-2:])

    # ---- encoder / decoder ----------------------------------------------------------------------------------

    def _positions(self, t: int, h: int, w: int, device) -> Tensor:
        space = sincos_2d(h, w, self.dim, device=device)
        time = sincos_1d(torch.arange(t, device=device), self.dim)
        return rearrange(time, "t d -> t 1 1 d") + space

    def _contextualise(self, tokens: Tensor, spatial: Transformer, temporal: Transformer, spatial_first: bool):
        """tokens (b, t, h, w, d): attention within each latent frame, and causal attention across time."""
        b, t, h, w, _ = tokens.shape
        tokens = tokens + self._positions(t, h, w, tokens.device)

        def over_space(x):
            x = spatial(rearrange(x, "b t h w d -> (b t) (h w) d"))
            return rearrange(x, "(b t) (h w) d -> b t h w d", b=b, h=h)

        def over_time(x):
            x = temporal(rearrange(x, "b t h w d -> (b h w) t d"), causal=True)
            return rearrange(x, "(b h w) t d -> b t h w d", b=b, h=h)

        return over_time(over_space(tokens)) if spatial_first else over_space(over_time(tokens))

    def encode_embeddings(self, video: Tensor) -> Tensor:
        """video (b, c, f, H, W) -> continuous tokens (b, t, h, w, dim) before quantization."""
        self._check_video(video)
        p, pt = self.patch_size, self.temporal_patch_size
        first = rearrange(video[:, :, :1], "b c 1 (h p1) (w p2) -> b 1 h w (c p1 p2)", p1=p, p2=p)
        tokens = self.to_tokens_first(first)
        if video.shape[2] > 1:
            rest = rearrange(video[:, :, 1:], "b c (t pt) (h p1) (w p2) -> b t h w (c pt p1 p2)", pt=pt, p1=p, p2=p)
            tokens = torch.cat((tokens, self.to_tokens_rest(rest)), dim=1)
        return self._contextualise(tokens, self.enc_spatial, self.enc_temporal, spatial_first=True)

    def quantize(self, embeddings: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, h, w, _ = embeddings.shape
        quantized, ids, aux = self.quantizer(rearrange(embeddings, "b t h w d -> b (t h w) d"))
        unflatten = "b (t h w) ... -> b t h w ..."
        return rearrange(quantized, unflatten, t=t, h=h), rearrange(ids, unflatten, t=t, h=h), aux

    def decode_embeddings(self, quantized: Tensor) -> Tensor:
        """quantized tokens (b, t, h, w, dim) -> video (b, c, f, H, W)."""
        p, pt, c = self.patch_size, self.temporal_patch_size, self.pixel_features
        x = self._contextualise(quantized, self.dec_spatial, self.dec_temporal, spatial_first=False)
        # each token -> the features of its patch's pixels, feature-major: (c p1 p2), or (c pt p1 p2) for tubelets
        video = rearrange(self.to_pixels_first(x[:, :1]), "b 1 h w (c p1 p2) -> b c 1 (h p1) (w p2)", c=c, p1=p, p2=p)
        if x.shape[1] > 1:
            rest = rearrange(
                self.to_pixels_rest(x[:, 1:]),
                "b t h w (c pt p1 p2) -> b c (t pt) (h p1) (w p2)",
                c=c,
                pt=pt,
                p1=p,
                p2=p,
            )
            video = torch.cat((video, rest), dim=2)
        return self._pixel_head(video)

    def _pixel_head(self, features: Tensor) -> Tensor:
        """per-pixel features (b, pixel_features, f, H, W) -> video (b, channels, f, H, W)."""
        if self.pixel_mlp is None:
            return features
        video = rearrange(self.pixel_mlp(rearrange(features, "b c f h w -> b f h w c")), "b f h w c -> b c f h w")
        if self.pixel_refiner is not None:
            frames = self.pixel_refiner(rearrange(features, "b c f h w -> (b f) c h w"))
            video = video + rearrange(frames, "(b f) c h w -> b c f h w", b=features.shape[0])
        return video

    def add_pixel_refiner(self, dim: int) -> CViViT:
        """Adds a `PixelRefiner` of width `dim` to the per-pixel head. Its last layer starts at zero, so a trained
        decoder decodes exactly as before until the refiner is trained (`python -m phenaki.training.trainer decoder
        --pixel-refiner-dim`)."""
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"pixel_refiner_dim must be a positive int or None, got {dim!r}")
        if self.pixel_mlp is None:
            raise ValueError("a pixel refiner needs the per-pixel head: build the CViViT with pixel_mlp_dim")
        if self.pixel_refiner is not None:
            raise ValueError(f"this CViViT already has a pixel refiner (width {self.config['pixel_refiner_dim']})")
        device = self.to_pixels_first.weight.device
        self.pixel_refiner = PixelRefiner(self.pixel_features, dim, self.channels).to(device)
        self.config["pixel_refiner_dim"] = dim
        return self

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """video (b, c, f, H, W) -> token ids (b, latent_frames, h, w), a LongTensor."""
        return self.quantize(self.encode_embeddings(video))[1]

    @torch.no_grad()
    def decode(self, ids: Tensor) -> Tensor:
        """token ids (b, latent_frames, h, w) -> video (b, c, f, H, W)."""
        if ids.ndim != 4:
            raise ValueError(f"expected token ids of shape (batch, latent_frames, h, w), got {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.min() < 0 or ids.max() >= self.codebook_size:
            raise ValueError(
                f"token ids must be integers in [0, {self.codebook_size}), got "
                f"{ids.dtype} in [{ids.min().item()}, {ids.max().item()}]"
            )
        b, t, h, w = ids.shape
        codes = self.quantizer.codes(rearrange(ids.long(), "b t h w -> b (t h w)"))
        return self.decode_embeddings(rearrange(codes, "b (t h w) d -> b t h w d", t=t, h=h))

    def freeze_codes(self) -> CViViT:
        """Fixes the map from video to token ids (patch embeddings, encoder, quantizer: no gradients, and eval
        mode so that a VQ codebook stops moving) and leaves the decoder trainable. Fine-tuning the decoder this
        way sharpens the pixels while every video keeps its ids, so a transformer trained on them stays valid."""
        self.train().requires_grad_(True)
        for module in (self.to_tokens_first, self.to_tokens_rest, self.enc_spatial, self.enc_temporal, self.quantizer):
            module.eval().requires_grad_(False)
        return self

    # the reference implementation's spellings
    def decode_from_codebook_indices(self, ids: Tensor) -> Tensor:
        return self.decode(ids)

    # ---- training -------------------------------------------------------------------------------------------

    def reconstruct(self, video: Tensor) -> Tensor:
        """video (b, c, f, H, W) -> its reconstruction through the quantized tokens, (b, c, f, H, W); with
        gradients (unlike `encode` / `decode`), as the training loss sees it."""
        quantized, _, _ = self.quantize(self.encode_embeddings(video))
        return self.decode_embeddings(quantized)

    def loss(self, video: Tensor) -> tuple[Tensor, LossBreakdown]:
        """The tokenizer's training loss on `video` (b, c, f, H, W): L2 reconstruction + the quantizer's loss, and
        its parts (with how much of the codebook the batch used)."""
        loss, breakdown, _ = self._loss(video, usage=True)
        return loss, breakdown

    def _loss(self, video: Tensor, usage: bool) -> tuple[Tensor, LossBreakdown | None, Tensor]:
        """(loss, its breakdown or None without `usage`, the reconstruction)."""
        quantized, ids, quantizer_loss = self.quantize(self.encode_embeddings(video))
        recon = self.decode_embeddings(quantized)  # (b, c, f, H, W)
        recon_loss = F.mse_loss(recon, video)
        loss = recon_loss + quantizer_loss
        # the usage figures read values back from the device: only when asked for
        breakdown = (
            LossBreakdown(recon_loss, quantizer_loss, *codebook_usage(ids, self.codebook_size)) if usage else None
        )
        return loss, breakdown, recon

    def forward(
        self,
        video: Tensor,
        *,
        return_loss: bool = False,
        return_loss_breakdown: bool = False,
        return_only_codebook_ids: bool = False,
        return_recons: bool = False,
    ):
        """Reconstructs `video` (`reconstruct`). The flags are the reference implementation's spellings, kept so
        its code runs unchanged: `return_only_codebook_ids` -> `encode(video)`; `return_loss` -> the loss;
        `return_loss_breakdown` -> `loss(video)`, (loss, breakdown); with `return_recons` as well, the
        reconstruction comes last: (loss, recon) or (loss, breakdown, recon). The trainer uses the breakdown
        spelling: under DistributedDataParallel the loss has to come through `forward` for gradients to sync."""
        if return_only_codebook_ids:
            return self.encode(video)
        if not (return_loss or return_loss_breakdown):
            return self.reconstruct(video)
        loss, breakdown, recon = self._loss(video, usage=return_loss_breakdown)
        parts = (loss, breakdown) if return_loss_breakdown else (loss,)
        if return_recons:
            return (*parts, recon)
        return parts if return_loss_breakdown else loss


def first_frames(latent_frames: int, temporal_patch_size: int) -> list[int]:
    """The first video frame each latent frame covers: frame 0 alone, then one tubelet of `temporal_patch_size`
    frames each."""
    return [0] + [1 + k * temporal_patch_size for k in range(latent_frames - 1)]


class PixelRefiner(nn.Sequential):
    """Two 3x3 convolutions over each decoded frame's per-pixel features, added to the per-pixel head's output.
    The head draws every pixel from its own token's features alone; here each pixel also sees its neighbours,
    across patch borders too, which is what an object's edge needs (for the default model, 90% of the
    reconstruction error lies within a pixel of an edge). Frame by frame, so the decoder stays causal in time."""

    def __init__(self, features: int, dim: int, channels: int):
        super().__init__(
            nn.Conv2d(features, dim, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim, channels, 1),
        )
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)

    def forward(self, frames: Tensor) -> Tensor:
        # channels-last: the CPU's convolution kernels (forward and backward) run ~1.5x faster on that layout
        return super().forward(frames.contiguous(memory_format=torch.channels_last))


def _patch_embedding(pixels: int, dim: int) -> nn.Sequential:
    # no LayerNorm on the raw pixels: it would erase a patch's brightness (a white patch would look black)
    return nn.Sequential(nn.Linear(pixels, dim), nn.LayerNorm(dim))
