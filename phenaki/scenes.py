"""Stories made of scenes: the prompt check every entry point shares, and `make_video` (scenes one after another,
each primed with the end of the one before)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_prompt(text, where: str) -> None:
    """ValueError naming `where` unless `text` is a non-empty string."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: the prompt must be a non-empty string, got {text!r}")


def make_video(
    phenaki, texts: Sequence[str], num_frames: int | Sequence[int], prime_lengths: int | Sequence[int], **sample_kwargs
) -> tuple[Tensor, list[Tensor]]:
    """Scenes one after another, each primed with the last `prime_lengths[i]` frames of the scene before.
    Returns the whole video (b, 3, frames, H, W) and the list of scenes."""
    texts = list(texts)
    num_frames = [num_frames] * len(texts) if isinstance(num_frames, int) else list(num_frames)
    prime_lengths = [prime_lengths] * (len(texts) - 1) if isinstance(prime_lengths, int) else list(prime_lengths)
    if len(num_frames) != len(texts) or len(prime_lengths) < len(texts) - 1:
        raise ValueError(f"{len(texts)} texts need {len(texts)} num_frames and {len(texts) - 1} prime_lengths")
    scenes, prime = [], None
    for i, (text, frames) in enumerate(zip(texts, num_frames)):
        video = phenaki.sample(texts=text, num_frames=frames, prime_frames=prime, **sample_kwargs)
        scenes.append(video)
        if i + 1 < len(texts):
            history = torch.cat(scenes, dim=2)
            prime = history[:, :, -prime_lengths[i] :]
    return torch.cat(scenes, dim=2), scenes
