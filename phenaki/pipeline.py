"""Phenaki: text -> video tokens (MaskGit, optionally refined by a Token Critic) -> frames (C-ViViT).

A video longer than one window is made window by window: each new window is primed with the last frames of the
previous one, re-encoded by the causal tokenizer, and only the new frames are decoded and handed out. Nothing is
kept but those few frames, so a story of any length costs the memory of one window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from .loading import PretrainedMixin
from .models.cvivit import CViViT
from .models.maskgit import MaskGit, SelfCritic, TokenCritic
from .models.text import ByteTextEncoder
from .objectives import critic_loss, drop_condition, maskgit_loss, random_mask
from .precision import bf16_autocast
from .sampling import SamplingSettings, StepState, sample_tokens
from .scenes import check_prompt
from .seeds import story_seed, window_generator
from .serialization import CONFIG_VERSION
from .start import as_start, numbered, start_work, with_start
from .window_fixes import grid_fix, window_fix


@dataclass
class VideoChunk:
    """Frames decoded by one window of a story."""

    frames: np.ndarray  # (n, H, W, 3) uint8
    segment: int  # index of the timeline entry these frames belong to
    start: int  # index of the first frame in the whole story


class Phenaki(PretrainedMixin, nn.Module):
    def __init__(
        self,
        *,
        cvivit: CViViT,
        maskgit: MaskGit,
        critic: TokenCritic | SelfCritic | None = None,
        text_encoder: nn.Module | None = None,
        frame_size: int | Sequence[int] = 256,
        fps: int = 8,
        prime_frames: int = 5,
        cond_drop_prob: float = 0.1,
        continuation_prob: float = 0.5,
        vocabulary: dict | Sequence[str] | None = None,  # the training captions' words (phenaki/vocabulary.py)
    ):
        super().__init__()
        if maskgit.num_tokens < cvivit.codebook_size:
            raise ValueError(
                f"MaskGit num_tokens ({maskgit.num_tokens}) is smaller than the tokenizer's codebook "
                f"({cvivit.codebook_size})"
            )
        if text_encoder is None and maskgit.dim_context is not None:
            text_encoder = ByteTextEncoder(dim=maskgit.dim_context)
        if text_encoder is not None and maskgit.dim_context != text_encoder.dim:
            raise ValueError(
                f"the text encoder's width ({text_encoder.dim}) differs from MaskGit's dim_context "
                f"({maskgit.dim_context})"
            )
        if critic is not None and critic.dim_context != maskgit.dim_context:
            raise ValueError(
                f"the critic takes text of width {critic.dim_context} but MaskGit {maskgit.dim_context}: "
                f"build the critic with dim_context={maskgit.dim_context}"
            )
        self.cvivit, self.maskgit, self.critic, self.text_encoder = cvivit, maskgit, critic, text_encoder

        height, width = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
        self.frame_size, self.fps = (height, width), fps
        self.grid = cvivit.token_grid(height, width)
        self.frame_tokens = self.grid[0] * self.grid[1]
        self.window_latent_frames = maskgit.max_seq_len // self.frame_tokens
        if self.window_latent_frames < 2:
            raise ValueError(
                f"max_seq_len {maskgit.max_seq_len} holds fewer than 2 latent frames of "
                f"{self.frame_tokens} tokens at frame size {height}x{width} (patch_size "
                f"{cvivit.patch_size}): " + window_fix(maskgit, cvivit.patch_size, (height, width))
            )
        self.window_frames = cvivit.num_frames(self.window_latent_frames)
        window_grid = [self.window_latent_frames, *self.grid]
        for name, model in (("maskgit", maskgit), ("critic", critic)):
            grid = None if model is None else model.config.get("position_grid")  # a SelfCritic has none
            if grid is not None and list(grid) != window_grid:
                raise ValueError(
                    f"{name} position_grid {list(grid)} differs from the window's token grid "
                    f"{window_grid} (latent frames, rows, columns) at frame size {height}x{width}: "
                    + grid_fix(name, grid, window_grid, cvivit.patch_size)
                )
        cvivit.latent_frames(prime_frames)  # must fit the temporal patching
        if prime_frames >= self.window_frames:
            raise ValueError(f"prime_frames ({prime_frames}) must be fewer than a window's {self.window_frames}")
        self.prime_frames = prime_frames
        self.cond_drop_prob, self.continuation_prob = cond_drop_prob, continuation_prob
        self.vocabulary = vocabulary

    # ---- description ----------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.maskgit.token_emb.weight.device

    @property
    def has_critic(self) -> bool:
        return self.critic is not None

    @property
    def config(self) -> dict:
        critic = None if self.critic is None else self.critic.config
        return dict(
            version=CONFIG_VERSION,
            cvivit=self.cvivit.config,
            maskgit=self.maskgit.config,
            critic=critic,
            text_encoder=None if self.text_encoder is None else self.text_encoder.config,
            frame_size=list(self.frame_size),
            fps=self.fps,
            prime_frames=self.prime_frames,
            cond_drop_prob=self.cond_drop_prob,
            continuation_prob=self.continuation_prob,
            **({} if self.vocabulary is None else {"vocabulary": self.vocabulary}),  # optional: older readers skip it
        )

    def timeline_frames(self, timeline) -> list[int]:
        """Frames each `(prompt, seconds)` entry makes; ValueError naming the first bad entry."""
        if isinstance(timeline, (str, bytes)) or not isinstance(timeline, Sequence) or len(timeline) == 0:
            raise ValueError("timeline must be a non-empty list of (prompt, seconds)")
        frames = []
        for i, entry in enumerate(timeline):
            if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2:
                raise ValueError(f"timeline entry {i} must be (prompt, seconds), got {entry!r}")
            prompt, seconds = entry
            check_prompt(prompt, f"timeline entry {i}")
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds)
                or seconds <= 0
            ):
                raise ValueError(f"timeline entry {i}: seconds must be a positive number, got {seconds!r}")
            frames.append(max(1, round(seconds * self.fps)))
        return frames

    # ---- text -----------------------------------------------------------------------------------------------

    def encode_text(self, texts: Sequence[str]) -> tuple[Tensor | None, Tensor | None]:
        if self.text_encoder is None:
            return None, None
        return self.text_encoder(list(texts))

    # ---- sampling -------------------------------------------------------------------------------------------

    def sampling_settings(self, settings: SamplingSettings | None = None, **overrides) -> SamplingSettings:
        """`settings` (by default the library's, `SamplingSettings()`) with keyword `overrides`, checked for this
        model: what `sample` and `stream` sample with. ValueError for an unknown or out-of-range setting."""
        if settings is None:
            settings = SamplingSettings()
        elif not isinstance(settings, SamplingSettings):
            raise ValueError(
                f"settings must be a phenaki.sampling.SamplingSettings, got {type(settings).__name__}; "
                f"or leave it out and give the settings as keywords (steps=8, ...)"
            )
        settings = settings.with_overrides(**overrides)
        settings.validate(self.has_critic)
        return settings

    @torch.no_grad()
    def generate_window(
        self,
        context,
        context_mask,
        prime: Tensor | None,
        new_frames: int,
        settings: SamplingSettings,
        generator: torch.Generator,
        batch: int = 1,
        on_step=None,
    ) -> Tensor:
        """One MaskGit window: `new_frames` frames (b, c, n, H, W) in [0, 1] that continue `prime` (or start)."""
        num_prime = 0 if prime is None else prime.shape[2]
        prefix = None if prime is None else rearrange(self.cvivit.encode(prime), "b t h w -> b (t h w)")
        latent = self.cvivit.latent_frames_covering(num_prime + new_frames)  # the prime's, then the new frames'
        if latent > self.window_latent_frames:
            raise ValueError(
                f"{num_prime} primed + {new_frames} new frames do not fit a window of {self.window_frames} frames"
            )
        ids = sample_tokens(
            self.maskgit,
            length=latent * self.frame_tokens,
            context=context,
            context_mask=context_mask,
            settings=settings,
            critic=self.critic,
            prefix=prefix,
            generator=generator,
            batch=batch,
            frame_tokens=self.frame_tokens,
            on_step=on_step,
        )
        video = self.decode_ids(ids)
        return video[:, :, num_prime : num_prime + new_frames]

    def decode_ids(self, ids: Tensor) -> Tensor:
        """Flat window ids (b, t*h*w) -> video (b, c, f, H, W) in [0, 1], fp32."""
        grid = rearrange(ids, "b (t h w) -> b t h w", h=self.grid[0], w=self.grid[1])
        # in the sampling precision: bf16 moved the bundled model's tokenizer PSNR 34.589 -> 34.584 dB on 50 held-out
        # clips (34.475 -> 34.472 on 200; shapes.eval.tokenizer_metrics), within the 0.1 dB allowed, and cut their
        # fp32 encode + decode 7.5 -> 4.9 s (this 2-core EPYC, busy)
        with bf16_autocast(self.device):
            video = self.cvivit.decode(grid)
        return video.float().clamp(0, 1)

    def _windows(
        self, prompts_and_frames, settings, seed: int, prime: Tensor | None = None, batch: int = 1, on_step=None
    ):
        """Yields (segment, new frames (b, c, n, H, W)) window by window, each primed with the last frames."""
        window = 0
        for segment, (texts, num_frames) in enumerate(prompts_and_frames):
            context, context_mask = self.encode_text(texts)  # once per prompt, not per step or window
            remaining = num_frames
            while remaining > 0:
                video, prime = self.story_window(
                    context,
                    context_mask,
                    prime,
                    remaining,
                    settings,
                    seed,
                    window,
                    batch,
                    on_step=located_on_step(on_step, window, segment),
                )
                yield segment, video
                window += 1
                remaining -= video.shape[2]

    def story_window(
        self,
        context,
        context_mask,
        prime: Tensor | None,
        new_frames: int,
        settings: SamplingSettings,
        seed: int,
        window: int,
        batch: int = 1,
        on_step=None,
    ) -> tuple[Tensor, Tensor]:
        """Window `window` of a story: as many new frames as fit after the usable part of `prime` (the story's
        last frames; None at its start), at most `new_frames`, drawn from that window's own generator
        (`phenaki.seeds.window_generator`). Returns (the new frames, the prime of the next window)."""
        num_prime = 0 if prime is None else self._usable_prime(prime.shape[2])
        new = min(new_frames, self.window_frames - num_prime)
        video = self.generate_window(
            context,
            context_mask,
            prime[:, :, prime.shape[2] - num_prime :] if num_prime else None,
            new,
            settings,
            window_generator(self.device, seed, window),
            batch,
            on_step=on_step,
        )
        kept = video if prime is None else torch.cat((prime, video), dim=2)
        return video, kept[:, :, -self.prime_frames :]

    def _usable_prime(self, available: int) -> int:
        """The most frames, up to `prime_frames`, that the tokenizer can take (1 + k * temporal_patch_size)."""
        return self.cvivit.usable_frames(min(available, self.prime_frames))

    @torch.no_grad()
    def sample(
        self,
        texts: str | Sequence[str] | None = None,
        num_frames: int = 17,
        *,
        prime_frames: Tensor | None = None,
        batch_size: int = 1,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        on_step: Callable[[StepState], None] | None = None,
        **overrides,
    ) -> Tensor:
        """Returns (batch, 3, num_frames, H, W) in [0, 1]. With `prime_frames` (b, 3, f, H, W), the video
        continues them and only the new frames are returned; without texts (an unconditional model),
        `batch_size` videos. Sampled with `settings` (default `SamplingSettings()`) and keyword overrides of its
        fields (`steps=8`, `guidance_scale=5.0`, ...). `on_step(state)` is called after every decoding step
        with its `StepState`; the frames are the same with or without it."""
        settings = self.sampling_settings(settings, **overrides)
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        if texts is None:
            if self.text_encoder is not None:
                raise ValueError("this model is text-conditioned: give texts=")
            texts = [""] * batch_size
        else:
            texts = [texts] if isinstance(texts, str) else list(texts)
            for i, text in enumerate(texts):
                check_prompt(text, f"texts[{i}]")
        if prime_frames is not None:
            self._check_prime(prime_frames, len(texts))
            prime_frames = prime_frames.to(self.device, torch.float32)
        chunks = [
            video
            for _, video in self._windows(
                [(texts, num_frames)], settings, story_seed(seed), prime=prime_frames, batch=len(texts), on_step=on_step
            )
        ]
        return torch.cat(chunks, dim=2)

    def _check_prime(self, prime: Tensor, batch: int) -> None:
        if (
            prime.ndim != 5
            or prime.shape[0] != batch
            or prime.shape[1] != self.cvivit.channels
            or tuple(prime.shape[-2:]) != self.frame_size
        ):
            raise ValueError(
                f"prime_frames must be ({batch}, {self.cvivit.channels}, frames, "
                f"{self.frame_size[0]}, {self.frame_size[1]}), got {tuple(prime.shape)}"
            )
        self.cvivit.latent_frames(prime.shape[2])

    @torch.no_grad()
    def stream(
        self,
        timeline,
        *,
        start=None,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        on_step: Callable[[StepState], None] | None = None,
        **overrides,
    ) -> Iterator[VideoChunk]:
        """A story from `timeline`, a list of (prompt, seconds): yields each window's new frames as soon as
        they are decoded. Every input is checked before the first window starts. `settings`, overrides and
        `on_step` as in `sample`; a step's state says which window and timeline entry (`segment`) it is in.
        `start`: a picture (the first frame) or a clip the story continues (`phenaki.start.as_start`)."""
        frames = self.timeline_frames(timeline)
        settings = self.sampling_settings(settings, **overrides)
        begin = None if start is None else as_start(start, self)
        work, prime = start_work([([prompt], n) for (prompt, _), n in zip(timeline, frames)], begin, self.device)
        windows = self._windows(work, settings, story_seed(seed), prime=prime, on_step=on_step)
        yield from with_start(self, begin, numbered(windows, VideoChunk), VideoChunk)

    # ---- training -------------------------------------------------------------------------------------------

    def forward(
        self,
        videos: Tensor | None = None,
        texts: Sequence[str] | None = None,
        video_codebook_ids: Tensor | None = None,
        prime_latent_frames: Tensor | None = None,
        return_loss_breakdown: bool = False,
        generator: torch.Generator | None = None,
    ):
        """Training loss of MaskGit (+ the critic's) on `videos` (b, 3, f, H, W) in [0, 1], or on token ids
        already made by the (frozen) tokenizer. `prime_latent_frames` (b,) >= 0 fixes a row's primed prefix."""
        if video_codebook_ids is None:
            if videos is None:
                raise ValueError("give videos= or video_codebook_ids=")
            video_codebook_ids = self.cvivit.encode(videos)
        ids = rearrange(video_codebook_ids, "b ... -> b (...)") if video_codebook_ids.ndim > 2 else video_codebook_ids
        if texts is not None:
            texts = [texts] if isinstance(texts, str) else list(texts)
            if len(texts) != ids.shape[0]:
                raise ValueError(f"{len(texts)} texts for a batch of {ids.shape[0]} videos")
        context, context_mask = self.encode_text(texts) if texts is not None else (None, None)
        if context_mask is not None:
            context_mask = drop_condition(context_mask, self.cond_drop_prob, generator)
        masked = random_mask(
            ids,
            frame_tokens=self.frame_tokens,
            continuation_prob=self.continuation_prob,
            prefix=prime_latent_frames,
            generator=generator,
        )
        loss_maskgit, logits = maskgit_loss(self.maskgit, ids, masked, context, context_mask)
        loss_critic = loss_maskgit.new_zeros(())
        if self.critic is not None:
            loss_critic = critic_loss(self.critic, ids, masked, logits, context, context_mask, generator=generator)
        loss = loss_maskgit + loss_critic
        return (loss, dict(maskgit=loss_maskgit.item(), critic=loss_critic.item())) if return_loss_breakdown else loss


def located_on_step(on_step, window: int, segment: int):
    """`on_step` for one window: its states say which window and timeline entry they belong to."""
    if on_step is None:
        return None
    return lambda state: on_step(replace(state, window=window, segment=segment))
