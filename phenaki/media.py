"""Frames: tensors to uint8 frames and back to the model's size, PSNR, and for people: nearest-neighbour
upscaling, H.264 MP4 and looping GIF files, contact sheets."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

DISPLAY_SIZE = 512  # frames are shown (and written to MP4) upscaled to about this many pixels, integer factor
SHEET_TILE = 128  # contact sheet tile size (about)
SHEET_COLUMNS = 8


def to_video_tensor(frames: np.ndarray) -> torch.Tensor:
    """Frames (f, H, W, c) uint8 -> one video (c, f, H, W) float in [0, 1]: the inverse of `to_uint8_frames`."""
    return rearrange(torch.from_numpy(np.ascontiguousarray(frames)), "f h w c -> c f h w").float() / 255


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """One video (c, f, H, W) in [0, 1] -> its frames (f, H, W, c) uint8, clamped and rounded to the nearest level:
    how every frame the library hands out, measures or writes is made."""
    if video.ndim != 4:
        raise ValueError(
            f"expected one video of shape (channels, frames, height, width), got "
            f"{tuple(video.shape)}: pass one video of a batch (video[0])"
        )
    return rearrange(video.clamp(0, 1), "c f h w -> f h w c").mul(255).round().byte().cpu().numpy()


def resize_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(c, f, h, w) in [0, 1] -> (c, f, *size): a centre crop to the target aspect ratio, then an area resize of
    each frame (for the model's frame size: training data, uploads)."""
    _, _, h, w = video.shape
    target = size[0] / size[1]
    if h / w > target:
        crop = round(w * target)
        video = video[:, :, (h - crop) // 2 : (h - crop) // 2 + crop]
    elif h / w < target:
        crop = round(h / target)
        video = video[:, :, :, (w - crop) // 2 : (w - crop) // 2 + crop]
    frames = F.interpolate(rearrange(video, "c f h w -> f c h w"), size=tuple(size), mode="area")
    return rearrange(frames, "f c h w -> c f h w").clamp(0, 1)


def psnr(a: np.ndarray, b: np.ndarray, *, per_frame: bool = False) -> float | np.ndarray:
    """PSNR in dB between two uint8 images or videos of one shape: of the whole (a float), or with `per_frame`
    of each frame along the first axis (an array)."""
    error = ((a.astype(np.float64) - b.astype(np.float64)) / 255) ** 2
    mse = error.reshape(len(a), -1).mean(1) if per_frame else error.mean()
    db = 10 * np.log10(1 / np.maximum(mse, 1e-12))
    return db if per_frame else float(db)


def display_scale(frame_size: Iterable[int], target: int = DISPLAY_SIZE) -> int:
    """The integer nearest-neighbour factor that brings the larger side to about `target` pixels (at least 1)."""
    return max(1, round(target / max(frame_size)))


def upscale(frames: np.ndarray, factor: int, *, even: bool = False) -> np.ndarray:
    """(n, H, W, 3) or (H, W, 3) uint8 -> nearest-neighbour upscaled by an integer factor; `even` pads the
    bottom/right edge by one pixel where a side is odd (H.264 in yuv420p needs even sizes)."""
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"the upscale factor must be an integer >= 1, got {factor!r}")
    frames = np.asarray(frames)
    h_axis = frames.ndim - 3
    out = frames.repeat(factor, axis=h_axis).repeat(factor, axis=h_axis + 1) if factor > 1 else frames
    if even:
        pad = [(0, 0)] * out.ndim
        pad[h_axis], pad[h_axis + 1] = (0, out.shape[h_axis] % 2), (0, out.shape[h_axis + 1] % 2)
        if any(p[1] for p in pad):
            out = np.pad(out, pad, mode="edge")
    return np.ascontiguousarray(out)


def _check_file(path: Path, what: str) -> Path:
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"writing the {what} {path.name} failed: the file is missing or empty")
    return path


class Mp4Writer:
    """An H.264 MP4 (yuv420p, plays in browsers) written chunk by chunk; `close()` checks the file."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps, self.frames, self._writer = Path(path), fps, 0, None

    def append(self, frames: np.ndarray) -> None:
        import imageio.v2 as imageio

        frames = upscale(frames, 1, even=True)
        if self._writer is None:
            self._writer = imageio.get_writer(
                self.path,
                format="FFMPEG",
                mode="I",
                fps=self.fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
                quality=None,
                ffmpeg_log_level="error",
                ffmpeg_params=[
                    "-preset",
                    "veryfast",
                    "-crf",
                    "18",
                    "-g",
                    str(max(1, round(self.fps))),
                    "-movflags",
                    "+faststart",
                ],
            )
        for frame in frames:
            self._writer.append_data(frame)
        self.frames += len(frames)

    def close(self) -> Path:
        if self._writer is None:
            raise RuntimeError("no frames were written")
        writer, self._writer = self._writer, None
        writer.close()
        return _check_file(self.path, "MP4")

    def abort(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already failing; the file is not used
                pass


def write_mp4(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    writer = Mp4Writer(path, fps)
    try:
        writer.append(frames)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def write_gif(path: str | Path, frames: np.ndarray | list, fps: float, stride: int = 1) -> Path:
    """A looping GIF; `stride` > 1 when `frames` keeps every stride-th frame (each then lasts longer). GIF delays
    are whole centiseconds, so they alternate (e.g. 120 and 130 ms at 8 fps) to keep the real speed."""
    from PIL import Image

    path = Path(path)
    images = [Image.fromarray(np.asarray(frame)) for frame in frames]
    if not images:
        raise RuntimeError("no frames to write")
    step = 100 * stride / fps  # centiseconds per frame
    durations = [10 * (round((i + 1) * step) - round(i * step)) for i in range(len(images))]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,
        disposal=1,
        optimize=False,
    )
    return _check_file(path, "GIF")


def contact_sheet(
    frames: np.ndarray, *, tile: int = SHEET_TILE, columns: int = SHEET_COLUMNS, gap: int = 2
) -> np.ndarray:
    """A window's frames side by side (rows of `columns`), each upscaled nearest-neighbour to about `tile` px."""
    frames = np.asarray(frames)
    n, h, w = frames.shape[:3]
    factor = display_scale((h, w), tile)
    big = upscale(frames, factor)
    th, tw = big.shape[1:3]
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    sheet = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 40, np.uint8)
    for i, frame in enumerate(big):
        r, c = divmod(i, cols)
        sheet[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = frame
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(np.asarray(image)).save(path, format="PNG")
    return _check_file(path, "image")


def board(
    rows: list[list[tuple[np.ndarray, str]]],
    labels: list[str] | None = None,
    title: str = "",
    label_width: int = 72,
    gap: int = 4,
    text_h: int = 14,
) -> np.ndarray:
    """Tiles (image, caption above it) in rows, a label left of each row, a title on top: one uint8 image."""
    from PIL import Image, ImageDraw

    label_width = label_width if labels else 0
    captioned = [any(c for _, c in row) for row in rows]
    heights = [max(t.shape[0] for t, _ in row) + text_h * cap for row, cap in zip(rows, captioned)]
    width = label_width + gap + max(sum(t.shape[1] + gap for t, _ in row) for row in rows)
    height = (text_h + gap if title else 0) + sum(h + gap for h in heights) + gap
    canvas = Image.new("RGB", (width + width % 2, height + height % 2), (24, 24, 24))  # even: H.264 needs it
    draw = ImageDraw.Draw(canvas)
    # titles and captions centred: the browser draws the component's label over the top-left corner
    draw.text(((width - draw.textlength(title)) // 2, gap), title, fill=(240, 240, 240))
    y = gap + (text_h + gap if title else 0)
    for r, (row, row_h, cap) in enumerate(zip(rows, heights, captioned)):
        if labels:
            draw.multiline_text((gap, y + text_h), labels[r], fill=(220, 220, 220))
        x = label_width + gap
        for tile, caption in row:
            draw.text((x + (tile.shape[1] - draw.textlength(caption)) // 2, y), caption, fill=(200, 200, 200))
            canvas.paste(Image.fromarray(np.asarray(tile, np.uint8)), (x, y + text_h * cap))
            x += tile.shape[1] + gap
        y += row_h + gap
    return np.asarray(canvas)
