"""C-ViViT: the causal video tokenizer of Phenaki.

The first frame is patched alone (so an image is a 1-frame video); later frames go in tubelets of
`temporal_patch_size` frames. Spatial attention mixes the patches of one latent frame; temporal attention is
causal across latent frames. So the tokens of the first 1 + k * temporal_patch_size frames never depend on what
comes after them, which is what lets a long video be continued window by window.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .attention import Transformer, sincos_1d, sincos_2d
from .config import register_to_config
from .discriminator import Discriminator, hinge_discriminator_loss
from .quantizer import Quantizer, codebook_usage


class LossBreakdown(NamedTuple):
    reconstruction: Tensor
    quantizer: Tensor
    adversarial: Tensor
    perceptual: Tensor
    codebook_usage: float  # fraction of the codebook used by this batch
    perplexity: float


class CViViT(nn.Module):
    @register_to_config
    def __init__(self, *, dim: int, codebook_size: int, patch_size: int, temporal_patch_size: int = 2,
                 spatial_depth: int = 4, temporal_depth: int = 4, dim_head: int = 64, heads: int = 8,
                 channels: int = 3, ff_mult: int = 4, quantizer: str = "vq", codebook_dim: int = 32,
                 fsq_levels: list[int] | None = None, use_discriminator: bool = False, discr_dim: int = 64,
                 adversarial_loss_weight: float = 0.1, perceptual_loss_weight: float = 0.1,
                 pixel_mlp_dim: int | None = None, pixel_refiner_dim: int | None = None):
        super().__init__()
        self.dim, self.codebook_size, self.channels = dim, codebook_size, channels
        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size
        self.adversarial_loss_weight, self.perceptual_loss_weight = adversarial_loss_weight, perceptual_loss_weight

        first_pixels = channels * patch_size ** 2
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
        self.discriminator = Discriminator(channels, discr_dim) if use_discriminator else None

    # ---- shapes ---------------------------------------------------------------------------------------------

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames for a clip of `num_frames` (1 + k * temporal_patch_size) frames."""
        if num_frames < 1 or (num_frames - 1) % self.temporal_patch_size:
            raise ValueError(f"a video must have 1 + k * {self.temporal_patch_size} frames "
                             f"(1, {1 + self.temporal_patch_size}, {1 + 2 * self.temporal_patch_size}, ...), "
                             f"got {num_frames}")
        return 1 + (num_frames - 1) // self.temporal_patch_size

    def num_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_patch_size

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"frame size {height}x{width} is not divisible by patch_size {p}")
        return height // p, width // p

    def _check_video(self, video: Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.channels:
            raise ValueError(f"expected a video of shape (batch, {self.channels}, frames, height, width), "
                             f"got {tuple(video.shape)}")
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
        video = rearrange(self.to_pixels_first(x[:, :1]), "b 1 h w (c p1 p2) -> b c 1 (h p1) (w p2)",
                          c=c, p1=p, p2=p)
        if x.shape[1] > 1:
            rest = rearrange(self.to_pixels_rest(x[:, 1:]), "b t h w (c pt p1 p2) -> b c (t pt) (h p1) (w p2)",
                             c=c, pt=pt, p1=p, p2=p)
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

    def add_pixel_refiner(self, dim: int) -> "CViViT":
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
            raise ValueError(f"token ids must be integers in [0, {self.codebook_size}), got "
                             f"{ids.dtype} in [{ids.min().item()}, {ids.max().item()}]")
        b, t, h, w = ids.shape
        codes = self.quantizer.codes(rearrange(ids.long(), "b t h w -> b (t h w)"))
        return self.decode_embeddings(rearrange(codes, "b (t h w) d -> b t h w d", t=t, h=h))

    def freeze_codes(self) -> "CViViT":
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

    def forward(self, video: Tensor, return_loss: bool = False, return_discr_loss: bool = False,
                return_loss_breakdown: bool = False, return_only_codebook_ids: bool = False,
                return_recons: bool = False, perceptual_model: nn.Module | None = None, adversarial: bool = True):
        """Reconstructs `video`. With `return_loss`, the tokenizer's training loss: L2 reconstruction + the
        quantizer's loss (+ adversarial and perceptual terms when a discriminator / `perceptual_model` is given;
        the perceptual model maps frames (n, c, H, W) to features and is never downloaded by this class).
        With `return_discr_loss`, the discriminator's hinge loss instead."""
        if return_only_codebook_ids:
            return self.encode(video)
        quantized, ids, quantizer_loss = self.quantize(self.encode_embeddings(video))
        recon = self.decode_embeddings(quantized)

        if return_discr_loss:
            if self.discriminator is None:
                raise ValueError("return_discr_loss needs a CViViT built with use_discriminator=True")
            real, fake = _frames(video), _frames(recon.detach())
            return hinge_discriminator_loss(self.discriminator(real), self.discriminator(fake))
        if not (return_loss or return_loss_breakdown):
            return recon

        recon_loss = F.mse_loss(recon, video)
        zero = recon_loss.new_zeros(())
        adversarial_loss = perceptual_loss = zero
        if self.discriminator is not None and adversarial:
            adversarial_loss = -self.discriminator(_frames(recon)).mean()
        if perceptual_model is not None:
            perceptual_loss = F.mse_loss(perceptual_model(_frames(recon)), perceptual_model(_frames(video)))
        loss = (recon_loss + quantizer_loss + self.adversarial_loss_weight * adversarial_loss
                + self.perceptual_loss_weight * perceptual_loss)
        if not return_loss_breakdown:
            return (loss, recon) if return_recons else loss
        breakdown = LossBreakdown(recon_loss, quantizer_loss, adversarial_loss, perceptual_loss,
                                  *codebook_usage(ids, self.codebook_size))
        return (loss, breakdown, recon) if return_recons else (loss, breakdown)


class PixelRefiner(nn.Sequential):
    """Two 3x3 convolutions over each decoded frame's per-pixel features, added to the per-pixel head's output.
    The head draws every pixel from its own token's features alone; here each pixel also sees its neighbours,
    across patch borders too, which is what an object's edge needs (for the default model, 90% of the
    reconstruction error lies within a pixel of an edge). Frame by frame, so the decoder stays causal in time."""

    def __init__(self, features: int, dim: int, channels: int):
        super().__init__(nn.Conv2d(features, dim, 3, padding=1), nn.GELU(), nn.Conv2d(dim, dim, 3, padding=1),
                         nn.GELU(), nn.Conv2d(dim, channels, 1))
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)

    def forward(self, frames: Tensor) -> Tensor:
        # channels-last: the CPU's convolution kernels (forward and backward) run ~1.5x faster on that layout
        return super().forward(frames.contiguous(memory_format=torch.channels_last))


def _patch_embedding(pixels: int, dim: int) -> nn.Sequential:
    # no LayerNorm on the raw pixels: it would erase a patch's brightness (a white patch would look black)
    return nn.Sequential(nn.Linear(pixels, dim), nn.LayerNorm(dim))


def _frames(video: Tensor) -> Tensor:
    return rearrange(video, "b c f h w -> (b f) c h w")
