"""The picture of a window while it is decoded: MaskGIT's tokens so far, through the C-ViViT decoder.

`preview_frames(model, state)` turns the `StepState` an `on_step` callback of `Phenaki.sample` / `stream` (or
`LiveStory`) receives into frames: the window's tokens chosen so far, decoded, with every token still [MASK]
painted as a grey checker. `StepPreviews` is such a callback: after every few steps of a story's first window it
hands the frames to a function of yours (a UI shows them until the window's real frames arrive; later windows are
made behind playback and need none). Neither changes a frame of the video: decoding draws nothing from the
sampler's generator.

How masked tokens are shown, and why: [MASK] is no codebook entry, so before decoding it is replaced by the token
chosen most often in the window so far (on the shapes world, the black background: placeholders then do not bleed
a made-up colour into their filled neighbours through the decoder's attention), and after decoding its patch is
painted over with a checker of two dark greys. A checker is the usual sign for "no picture here yet"; its greys
stand apart from the black background and from every colour a shape may have, so a patch reads as one of three
things: not decided yet (checker), background (black), object (colour). Its cells are half a patch, so each
masked token shows as a 2x2 checker tile on the token grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .media import to_uint8_frames
from .models.cvivit import first_frames
from .sampling import StepState

MASKED_GREYS = (56, 88)  # the checker over masked tokens (uint8 levels, the same on R, G and B)
# Previews after every PREVIEW_EVERY-th parallel step (and after the one that fills the last token), of
# PREVIEW_LATENT_FRAMES latent frames. Measured on the default model (weights/), 2 threads, this 2-core EPYC: its
# first window (12 + 4 refinement steps, the default then, and a decode) 0.59-0.65 s; decoding the whole window's
# 9 latent frames 23-25 ms, the first latent frame alone 4 ms, the first 3 latent frames 8 ms. With the first frame
# every second step (6 previews of the 12 steps), previews cost about 6 x 4 ms = 4% of the window; the whole window
# at that pace would cost 6 x 24 ms = 24%, over the 15% allowed. At 8 steps (the default since): every second step
# made 4 previews of a window about 0.6 as long, and the window 1.16x / 1.09x / 1.13x as long as without; every
# third step (3 previews: steps 3, 6 and the last) 1.03x / 1.04x / 1.08x, its first preview 0.17-0.23 s after the
# start instead of 0.14 (bench/emerging.py, 8 rounds; full bench runs). The first frame is exact, not an
# approximation: the decoder is causal in time, so latent frame 0 decodes to the same pixels alone as within the
# window. bench/emerging.py measures the demo's first window with previews on and off.
PREVIEW_EVERY = 3
PREVIEW_LATENT_FRAMES = 1


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def masked_checker(height: int, width: int, cell: int) -> np.ndarray:
    """(height, width, 3) uint8: the checker drawn over masked tokens, in cells of `cell` pixels."""
    yy, xx = np.indices((height, width))
    levels = np.array(MASKED_GREYS, dtype=np.uint8)[(yy // cell + xx // cell) % 2]
    return np.repeat(levels[..., None], 3, axis=-1)


def paint_masked(frames: np.ndarray, masked: np.ndarray, patch: int, temporal_patch: int) -> np.ndarray:
    """`frames` (f, H, W, 3) uint8 with the patches of masked tokens, `masked` (t, h, w) bool over the latent frames
    the frames were decoded from, painted as `masked_checker` (a latent frame's mask covers all its frames)."""
    latent = masked.shape[0]
    owner = np.zeros(frames.shape[0], dtype=int)  # the latent frame each frame was decoded from
    for t, first in enumerate(first_frames(latent, temporal_patch)):
        owner[first:] = t
    where = masked[owner].repeat(patch, axis=1).repeat(patch, axis=2)[..., None]  # (f, H, W, 1)
    checker = masked_checker(frames.shape[1], frames.shape[2], max(1, patch // 2))
    return np.where(where, checker, frames)


@torch.no_grad()
def preview_frames(model, state: StepState, *, latent_frames: int | None = None, row: int = 0) -> np.ndarray:
    """(f, H, W, 3) uint8: the frames of `state`'s window (its primed frames included, for a continued window) as
    decoded from the tokens chosen so far, masked tokens painted as a grey checker (see the module's docstring).

    `latent_frames`: decode only the window's first so many latent frames (the decoder is causal in time, so they
    are exactly those frames of the whole window's decode, for a fraction of the cost; 1: the first frame alone);
    None: all. `row`: which video of a batch."""
    if not isinstance(state, StepState):
        raise ValueError(f"state must be the StepState an on_step callback receives, got {type(state).__name__}")
    ids = state.ids[row]
    window = ids.numel() // model.frame_tokens
    if ids.numel() % model.frame_tokens or window < 1:
        raise ValueError(
            f"the state's {ids.numel()} token ids are not whole latent frames of {model.frame_tokens} tokens: "
            "is it a state of this model's sampling?"
        )
    if latent_frames is not None and not 1 <= _positive_int("latent_frames", latent_frames) <= window:
        raise ValueError(f"latent_frames must be in [1, {window}] (the window's latent frames) or None")
    masked = ids == model.maskgit.mask_id
    chosen = ids[~masked]  # of the whole window, whatever is decoded: the same pixels for the same frames
    placeholder = int(torch.bincount(chosen).argmax()) if chosen.numel() else 0
    ids, masked = (x[: (latent_frames or window) * model.frame_tokens] for x in (ids, masked))
    frames = to_uint8_frames(model.decode_ids(ids.masked_fill(masked, placeholder)[None])[0])
    grid = masked.view(-1, *model.grid).cpu().numpy()
    return paint_masked(frames, grid, model.cvivit.patch_size, model.cvivit.temporal_patch_size)


class StepPreviews:
    """An `on_step` callback (`Phenaki.sample`, `Phenaki.stream`, `LiveStory`) that calls `show(frames, state)`
    with `preview_frames(model, state, latent_frames=latent_frames)` after every `every`-th step of the parallel
    phase (and after the step that fills its last token) of the story's first `windows` windows; refinement's
    steps, which mask tokens again, are not shown. `latent_frames` None: the whole window; in a window that
    continues primed frames (a story's start), the frames from its first new latent frame on. The defaults keep
    the cost within a few percent of the window (see PREVIEW_EVERY)."""

    def __init__(
        self,
        model,
        show: Callable[[np.ndarray, StepState], None],
        *,
        every: int = PREVIEW_EVERY,
        windows: int = 1,
        latent_frames: int | None = PREVIEW_LATENT_FRAMES,
    ):
        if not callable(show):
            raise ValueError(f"show must be a function of (frames, state), got {type(show).__name__}")
        self.model, self.show = model, show
        self.every, self.windows = _positive_int("every", every), _positive_int("windows", windows)
        self.latent_frames = None if latent_frames is None else _positive_int("latent_frames", latent_frames)

    def wants(self, state: StepState) -> bool:
        """Whether `state` gets a preview."""
        if state.window >= self.windows or state.phase != "parallel":
            return False
        return (state.step + 1) % self.every == 0 or not bool((state.ids == self.model.maskgit.mask_id).any())

    def __call__(self, state: StepState) -> None:
        if not self.wants(state):
            return
        # a window continuing a start (a picture, a clip) begins with its primed latent frames: show the new ones
        primed = (state.ids.shape[1] - state.filled.shape[1]) // self.model.frame_tokens
        window = state.ids.shape[1] // self.model.frame_tokens
        latent = None if self.latent_frames is None else min(window, primed + self.latent_frames)
        frames = preview_frames(self.model, state, latent_frames=latent)
        self.show(frames[first_frames(primed + 1, self.model.cvivit.temporal_patch_size)[-1] if primed else 0 :], state)
