"""A story's start: a picture, which becomes the story's first frame (the first scene continues it), or a clip,
whose last frames prime the first window (the story continues it; the clip itself is not repeated).

`as_start` takes arrays, tensors, a file path or a `Start`; `read_start` reads an image or video file within
limits (bytes, pixels, seconds, frames). Either way the frames are centre-cropped to the model's aspect ratio and
area-resized to its frame size (never enlarged: a picture smaller than a frame is refused), kept as 8-bit pixels,
and only the last frames the model uses are kept (a picture is a 1-frame video for the causal C-ViViT: its first
frame is encoded alone). `Start.fingerprint` is a sha256 of exactly those frames: the same start, seed and
settings give the same story, so a cache of windows can key on it. Bad input is a ValueError naming what to fix.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from .media import resize_video, to_uint8_frames, to_video_tensor

MAX_START_BYTES = 50 * 2**20  # an upload's file size
MAX_START_SIDE = 4096  # pixels, either side: about 200 MB as floats while one frame is resized
MAX_CLIP_SECONDS = 60.0  # a clip is decoded to its end to reach its last frames: about 2 s a minute at 480p
MAX_CLIP_FRAMES = 1800  # the same bound when a file does not say how long it is (60 s at 30 fps)


@dataclass(frozen=True, eq=False)
class Start:
    """The start of a story at the model's frame size: (n, H, W, 3) uint8 frames, and whether they are a picture
    (one frame given: the story's first frame) or a clip's last frames (the story continues after them; a clip
    of 2 frames keeps 1, as the tokenizer takes 1 + k * temporal_patch_size)."""

    frames: np.ndarray
    is_image: bool

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of what the story depends on: picture or clip, the frames' shape and their pixels."""
        digest = hashlib.sha256(f"{'picture' if self.is_image else 'clip'} {self.frames.shape}".encode())
        digest.update(np.ascontiguousarray(self.frames).tobytes())
        return digest.hexdigest()

    def video(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(1, 3, n, H, W) float in [0, 1], as the model's prime."""
        return to_video_tensor(self.frames)[None].to(device)


# ---- arrays to a start --------------------------------------------------------------------------------------


def as_start(start, model) -> Start:
    """A `Start` for `model` from a `Start`, a file path (`read_start`), uint8 or [0, 1] float frames as a numpy
    array (H, W, 3) picture or (n, H, W, 3) clip, or a tensor (3, H, W), (3, n, H, W) or (1, 3, n, H, W) in
    [0, 1] (the library's layout). Any size at least the model's frame size; ValueError otherwise."""
    if isinstance(start, (str, os.PathLike)):
        return read_start(start, model)
    if isinstance(start, Start):
        frames, image = start.frames, start.is_image
    elif isinstance(start, torch.Tensor):
        frames = _tensor_frames(start)
        image = len(frames) == 1
    elif isinstance(start, np.ndarray):
        frames = _array_frames(start)
        image = len(frames) == 1
    else:
        raise ValueError(
            f"start must be a picture or frames (a numpy array or a tensor), a file path or a phenaki.start.Start, "
            f"got {type(start).__name__}"
        )
    return Start(fit_frames(frames[-keep_frames(model, len(frames)) :], model.frame_size), image)


def keep_frames(model, available: int) -> int:
    """How many of a clip's last frames prime the first window: up to `prime_frames`, as the tokenizer takes them
    (1 + k * temporal_patch_size); a picture's one."""
    return model.cvivit.usable_frames(min(available, model.prime_frames))


def _tensor_frames(video: torch.Tensor) -> np.ndarray:
    shape = tuple(video.shape)
    if video.ndim == 5 and shape[0] == 1:
        video = video[0]
    elif video.ndim == 3:
        video = video[:, None]
    if video.ndim != 4 or video.shape[0] != 3 or video.shape[1] < 1 or not video.is_floating_point():
        raise ValueError(
            f"a start tensor must be a float picture (3, H, W) or video (3, frames, H, W) or (1, 3, frames, H, W) "
            f"in [0, 1], got {video.dtype} {shape}"
        )
    if not torch.isfinite(video).all():
        raise ValueError("a start tensor must hold finite values in [0, 1]: it has NaN or infinite values")
    return to_uint8_frames(video.detach().float().cpu())


def _array_frames(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
        raise ValueError(
            f"a start array must be an RGB picture (H, W, 3) or frames (n, H, W, 3), got shape {frames.shape}"
        )
    if frames.dtype == np.uint8:
        return frames
    if not np.issubdtype(frames.dtype, np.floating) or not np.isfinite(frames).all():
        raise ValueError(f"a start array must be uint8, or floats in [0, 1], got {frames.dtype}")
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def fit_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, h, w, 3) uint8 -> (n, *size, 3): a centre crop to the size's aspect ratio, then an area resize (as
    `media.resize_video`), frame by frame to bound memory. A crop smaller than `size` is refused: enlarging would
    only blur."""
    n, h, w = frames.shape[:3]
    height, width = size
    if h < height or w < width:
        raise ValueError(
            f"the start picture is {w}x{h} pixels, too small to crop to the model's {width}x{height} frames: give "
            f"one at least {width} pixels wide and {height} high"
        )
    if (h, w) == (height, width):
        return np.ascontiguousarray(frames)
    return np.concatenate([to_uint8_frames(resize_video(to_video_tensor(frame[None]), size)) for frame in frames])


# ---- files --------------------------------------------------------------------------------------------------


def read_start(path: str | os.PathLike, model) -> Start:
    """The start in an image file (an animated GIF, WebP or PNG is a clip) or a video file ffmpeg reads, for
    `model`. ValueError for a file that is missing, unreadable, over the limits (named) or too small."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"the start file {path.name} does not exist")
    size = path.stat().st_size
    if size > MAX_START_BYTES:
        raise ValueError(
            f"the start file {path.name} is {size / 2**20:.1f} MB; at most {MAX_START_BYTES / 2**20:g} MB is "
            f"allowed: use a shorter or smaller clip, or a picture"
        )
    keep = model.prime_frames
    frames = _read_image(path, keep)
    if frames is None:
        frames = _read_video(path, keep)
    return as_start(frames, model)


def _check_side(name: str, width: int, height: int) -> None:
    if max(width, height) > MAX_START_SIDE:
        raise ValueError(
            f"the start file {name} is {width}x{height} pixels; at most {MAX_START_SIDE} pixels a side are allowed: "
            f"scale it down"
        )


def _read_image(path: Path, keep: int) -> np.ndarray | None:
    """The last `keep` frames of an image file as RGB uint8, or None when Pillow cannot open it."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)  # lazy: reads the header; Pillow refuses over 2 * MAX_IMAGE_PIXELS here
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise ValueError(
            f"the start file {path.name} is a picture of over {limit:,} pixels; at most {MAX_START_SIDE} pixels a "
            f"side are allowed: scale it down"
        ) from None
    except (UnidentifiedImageError, OSError):
        return None
    with image:
        _check_side(path.name, *image.size)
        count = getattr(image, "n_frames", 1)
        if count > MAX_CLIP_FRAMES:
            raise ValueError(f"the start file {path.name} has {count} frames; at most {MAX_CLIP_FRAMES} are allowed")
        try:
            frames = []
            for index in range(max(0, count - keep), count):
                image.seek(index)
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"the start file {path.name} could not be read as a picture: {error}") from None
    return np.stack(frames)


def _read_video(path: Path, keep: int) -> np.ndarray:
    """The last `keep` frames of a video file (through imageio-ffmpeg), within the length limits."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration):
            raise ValueError(
                f"the start file {path.name} is neither a picture nor a video that can be read: give a PNG, JPEG, "
                f"GIF, WebP, MP4, WebM or MOV file"
            ) from None
        width, height = meta["size"]
        _check_side(path.name, width, height)
        seconds = meta.get("duration") or 0.0
        if seconds > MAX_CLIP_SECONDS:
            raise ValueError(
                f"the start video {path.name} lasts {seconds:.1f} s; at most {MAX_CLIP_SECONDS:g} s are allowed: "
                f"trim it to its end"
            )
        last = deque(maxlen=keep)
        for count, data in enumerate(_frames(reader), start=1):
            if count > MAX_CLIP_FRAMES:
                raise ValueError(
                    f"the start video {path.name} has over {MAX_CLIP_FRAMES} frames; at most {MAX_CLIP_FRAMES} "
                    f"are allowed: trim it to its end"
                )
            last.append(np.frombuffer(data, np.uint8).reshape(height, width, 3))
    finally:
        reader.close()
    if not last:
        raise ValueError(f"the start video {path.name} has no frames that can be read")
    return np.stack(last)


def _frames(reader) -> Iterator[bytes]:
    try:
        yield from reader
    except (OSError, RuntimeError) as error:
        raise ValueError(f"the start video could not be decoded: {error}") from None


# ---- the model's view ---------------------------------------------------------------------------------------


@torch.no_grad()
def reconstruct(model, start: Start) -> np.ndarray:
    """The start as the model sees it: its frames through the tokenizer (encoded, then decoded), (n, H, W, 3)
    uint8. A picture's reconstruction is the story's first frame."""
    ids = model.cvivit.encode(start.video(model.device))
    return to_uint8_frames(model.decode_ids(rearrange(ids, "b t h w -> b (t h w)"))[0])


# ---- a story from its start ---------------------------------------------------------------------------------


def start_work(work: list, start: Start | None, device) -> tuple[list, torch.Tensor | None]:
    """(the (texts, new frames) of each scene, the first window's prime) of a story from `start`: a picture is the
    first scene's first frame, so that scene makes one frame fewer."""
    if start is None:
        return work, None
    if start.is_image:
        (texts, frames), *rest = work
        work = [(texts, frames - 1), *rest]
    return work, start.video(device)


def numbered(windows, make) -> Iterator:
    """`make(frames (n, H, W, 3) uint8, scene, index of its first frame in the story)` for each (scene, video)."""
    done = 0
    for segment, video in windows:
        pixels = to_uint8_frames(video[0])
        yield make(pixels, segment, done)
        done += len(pixels)


def with_start(model, start: Start | None, chunks, make) -> Iterator:
    """`chunks` (dataclasses with frames, segment and start, such as `VideoChunk`) of a story from `start`: with a
    picture, its reconstruction goes before the first scene's first frames and every later chunk starts one frame
    on; `make(frames, segment, start)` makes the picture's own chunk when the first scene is that frame alone."""
    if start is None or not start.is_image:
        yield from chunks
        return
    first = None
    for chunk in chunks:
        if first is None:
            first = reconstruct(model, start)  # handed out with the first window
            if chunk.segment == 0:
                yield replace(chunk, frames=np.concatenate([first, chunk.frames]))
                continue
            yield make(first, 0, 0)
        yield replace(chunk, start=chunk.start + len(first))
    if first is None:  # no windows: a one-frame story
        yield make(reconstruct(model, start), 0, 0)
