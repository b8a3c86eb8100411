"""The Inspect tab's tokenizer view, without Gradio (`ui_inspect.py` is its view), so tests call it.

`read_video` (an upload, cut to one window and resized, or refused) or `world_clip`, then `tokenize`: the C-ViViT
reconstruction, PSNR per frame, the token ids and how much of the codebook they use; `render_tokens` draws them.
`tokenizer_view` goes from raw UI/API values (`InputError` for the user) to files; it returns paths and plain values
(ZeroGPU runs it in another process).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..media import (
    board,
    display_scale,
    psnr,
    resize_video,
    to_uint8_frames,
    to_video_tensor,
    upscale,
    write_mp4,
    write_png,
)
from ..models.cvivit import first_frames
from ..models.quantizer import codebook_usage
from ..shapes import world
from .stories import MAX_SEED, InputError, parse_number
from .views import TILE, colormap, output_folder, video_grid

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_UPLOAD_SIDE = 4096  # larger frames are refused, not decoded


def _fit(frame: np.ndarray, size) -> np.ndarray:
    """One decoded frame of any layout and depth -> (H, W, 3) uint8 at the model's size (centre crop, area)."""
    frame = frame[..., None] if frame.ndim == 2 else frame
    if frame.ndim != 3 or frame.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"unexpected frame shape {frame.shape}")
    frame = frame[..., :3] if frame.shape[-1] >= 3 else frame[..., :1].repeat(3, -1)  # no alpha; grey -> RGB
    top = np.iinfo(frame.dtype).max if frame.dtype.kind in "ui" else 1.0
    pixels = torch.from_numpy(frame.astype(np.float32) / top).permute(2, 0, 1)[:, None]  # (3, 1, h, w)
    return to_uint8_frames(resize_video(pixels, tuple(size)))[0]


def read_video(
    path, model, *, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_UPLOAD_SIDE
) -> tuple[np.ndarray, list[str]]:
    """An uploaded video (or image) as at most one window of frames at the model's size, and notes on what was
    changed. Frames are read and resized one by one, so a long or large file never sits in memory."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path.name}")
    size, limit, tp = path.stat().st_size, model.window_frames, model.cvivit.temporal_patch_size
    if size > max_bytes:
        raise InputError(
            f"{path.name} is {size / 2**20:.1f} MB; at most {max_bytes / 2**20:g} MB is taken "
            f"(only the first {limit} frames are used: cut the video to a few seconds)"
        )
    frames, notes, source = [], [], None
    try:
        for frame in iio.imiter(path):
            source = np.shape(frame)[:2]
            if max(source) > max_side:
                raise InputError(
                    f"{path.name}: frames of {source[1]}×{source[0]} px are too large (at most {max_side} px a side)"
                )
            if len(frames) == limit:
                notes.append(f"longer than one window: the first {limit} frames are used")
                break
            frames.append(_fit(np.asarray(frame), model.frame_size))
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - every decoder failure means the same to the user
        first = (str(error).strip().splitlines() or [""])[0][:160]  # ffmpeg appends pages of its log
        raise InputError(
            f"could not read {path.name} as a video or an image ({type(error).__name__}: {first}); "
            f"upload an MP4, WebM or GIF"
        ) from None
    if not frames:
        raise InputError(f"{path.name} has no frames")
    usable = model.cvivit.usable_frames(len(frames))
    if usable < len(frames):
        notes.append(f"{len(frames)} frames cut to {usable}: the tokenizer takes 1 + {tp}·k frames")
    if tuple(source) != tuple(model.frame_size):
        notes.append(
            f"resized from {source[1]}×{source[0]} to {model.frame_size[1]}×{model.frame_size[0]} px (centre crop)"
        )
    return np.stack(frames[:usable]), notes


def world_clip(model, seed: int) -> tuple[np.ndarray, str]:
    """A shapes-world clip of one window at the model's frame size, and its caption."""
    frames, caption, _ = world.random_clip(seed, model.window_frames)
    if frames.shape[1:3] != tuple(model.frame_size):
        frames = np.stack([_fit(f, model.frame_size) for f in frames])
    return frames, caption


@dataclass
class Tokenized:
    original: np.ndarray  # (f, H, W, 3) uint8
    recon: np.ndarray  # (f, H, W, 3) uint8
    ids: np.ndarray  # (t, h, w)
    psnr: np.ndarray  # (f,) dB
    used: int  # distinct codebook entries in `ids`
    perplexity: float
    codebook: int


@torch.no_grad()
def tokenize(model, frames: np.ndarray) -> Tokenized:
    video = to_video_tensor(frames)[None].to(model.device)
    ids = model.cvivit.encode(video)
    recon = to_uint8_frames(model.cvivit.decode(ids)[0])
    _, perplexity = codebook_usage(ids, model.cvivit.codebook_size)
    return Tokenized(
        frames,
        recon,
        ids[0].cpu().numpy(),
        psnr(frames, recon, per_frame=True),
        int(ids.unique().numel()),
        perplexity,
        model.cvivit.codebook_size,
    )


def render_tokens(tok: Tokenized, patch: int, temporal_patch_size: int, tile: int = TILE) -> np.ndarray:
    """For each latent frame (its first frame): the original, its token ids colour-coded (one id, one colour),
    the reconstruction and the error (x4)."""
    from PIL import Image, ImageDraw

    index = first_frames(len(tok.ids), temporal_patch_size)
    scale = display_scale(tok.original.shape[1:3], tile)
    cell = patch * scale
    hues = {i: colorsys.hsv_to_rgb(i * 0.618034 % 1, 0.55, 0.95) for i in np.unique(tok.ids).tolist()}
    grids = []
    for ids in tok.ids:
        image = Image.fromarray(
            upscale((np.array([[hues[i] for i in r] for r in ids.tolist()]) * 255).astype(np.uint8), cell)
        )
        if cell >= 8 * len(str(tok.codebook - 1)):  # the ids themselves, where they fit
            for (r, c), i in np.ndenumerate(ids):
                ImageDraw.Draw(image).text((c * cell + 2, r * cell + cell // 2 - 6), str(i), fill=(0, 0, 0))
        grids.append(np.asarray(image))
    error = colormap(np.abs(tok.original.astype(np.float32) - tok.recon).mean(-1)[index] / 255 * 4)
    tiles = [upscale(tok.original[index], scale), grids, upscale(tok.recon[index], scale), upscale(error, scale)]
    rows = [[(f, f"frame {i}" if r == 0 else "") for f, i in zip(row, index)] for r, row in enumerate(tiles)]
    return board(
        rows,
        ["original", "token ids", "recon-\nstruction", "error x4"],
        f"{'x'.join(map(str, tok.ids.shape))} tokens: {tok.used} of {tok.codebook} codebook entries, "
        f"perplexity {tok.perplexity:.1f}",
    )


@dataclass
class TokenizerView:
    video: str  # MP4: original | reconstruction
    psnr: list[list]  # [frame, PSNR dB, latent frame]
    tokens: str  # PNG of the token grid
    summary: str


def tokenizer_view(model, out_dir, video_path, clip_seed) -> TokenizerView:
    if video_path:
        (frames, notes), source = read_video(video_path, model), f"`{Path(video_path).name}`"
    else:
        if not 0 <= (seed := parse_number("clip seed", clip_seed, integer=True)) <= MAX_SEED:
            raise InputError(f"clip seed must be between 0 and {MAX_SEED}, got {seed}")
        (frames, caption), notes = world_clip(model, seed), []
        source = f"shapes-world clip {seed}: *{caption}*"
    tok, out, tp = tokenize(model, frames), output_folder(out_dir), model.cvivit.temporal_patch_size
    side = video_grid([tok.original, tok.recon], ["original", "C-ViViT reconstruction"])
    video = write_mp4(out / "tokenizer.mp4", side, model.fps)
    tokens = write_png(out / "tokens.png", render_tokens(tok, model.cvivit.patch_size, tp))
    rows = [[f, round(float(p), 2), model.cvivit.latent_frames_covering(f + 1) - 1] for f, p in enumerate(tok.psnr)]
    rest = f", later frames {tok.psnr[1:].mean():.2f} dB" if len(frames) > 1 else ""
    summary = (
        f"{source} · {len(frames)} frames → {'×'.join(map(str, tok.ids.shape))} tokens · **{tok.used} of "
        f"{tok.codebook} codebook entries, perplexity {tok.perplexity:.1f}** · PSNR {tok.psnr.mean():.2f} dB "
        f"(first frame, patched alone: {tok.psnr[0]:.2f} dB{rest})" + "".join(f"\n- {n}" for n in notes)
    )
    return TokenizerView(str(video), rows, str(tokens), summary)
