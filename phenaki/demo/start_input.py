"""The Generate tab's start (a picture or a clip the story begins from), without Gradio: so that it can be tested.

- `parse_start`: the raw value of the upload (Gradio's file data, a path, or nothing) -> a checked
  `phenaki.start.Start` at the model's frame size, or `InputError` naming what is wrong (unreadable, over a limit,
  too small to crop).
- `start_view`: the start as the model will see it (its frames through the tokenizer), as a PNG, and a note.
- `save_drawing`: what was drawn on the page's canvas, as a PNG to upload as the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..media import contact_sheet, display_scale, psnr, upscale, write_png
from ..start import MAX_CLIP_SECONDS, MAX_START_BYTES, Start, read_start, reconstruct
from .stories import InputError, is_blank

CANVAS_SIZE = 256  # the drawing canvas, in pixels: a multiple of the bundled model's 64x64 frames
# the shapes world's colours (phenaki.shapes.world.COLOURS), so that a drawn blob is one the default model knows
CANVAS_COLOURS = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#00ffff", "#ff00ff", "#ffffff"]
START_NOTE = (
    f"A picture becomes the story's first frame; a clip's last frames start it (at most "
    f"{MAX_START_BYTES / 2**20:g} MB and {MAX_CLIP_SECONDS:g} s). It is cropped to the model's frame shape and "
    f"resized; beside it, what the model sees."
)


def file_path(value) -> str | None:
    """The path in an upload's raw value: Gradio's file data ({"path": ...}), a path, or None / empty."""
    if isinstance(value, (list, tuple)):  # a file list of one
        if len(value) > 1:
            raise InputError(f"give one start file, got {len(value)}")
        value = value[0] if value else None
    if isinstance(value, Mapping):
        value = value.get("path")
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise InputError(f"start must be an image or video file, got {type(value).__name__}")
    return value


def parse_start(value, model) -> Start | None:
    """The start in the upload `value` for `model`, or None when there is none; InputError for a bad file."""
    path = file_path(value)
    if path is None:
        return None
    try:
        return read_start(path, model)
    except ValueError as error:
        raise InputError(str(error)) from None


def start_view(model, run_dir: str, value) -> tuple[str | None, str]:
    """(a PNG of the start after the tokenizer, upscaled, or None without a start; a note for the page)."""
    start = parse_start(value, model)
    if start is None:
        return None, START_NOTE
    seen = reconstruct(model, start)
    fidelity = psnr(seen, start.frames)
    if start.is_image:
        image = upscale(seen[0], display_scale(model.frame_size, CANVAS_SIZE))
        note = f"The story's first frame, as the tokenizer gives it back ({fidelity:.1f} dB PSNR)."
    else:
        image = contact_sheet(seen)
        note = (
            f"The clip's last {len(seen)} frames start the story, as the tokenizer gives them back ({fidelity:.1f} dB)."
        )
    return str(write_png(Path(run_dir) / "start.png", image)), note


def save_drawing(value, folder: str | Path) -> str:
    """The canvas' picture (Gradio's editor value: a dict with the composite image, or an array) as an RGB PNG in
    `folder`; InputError when nothing is there."""
    image = value.get("composite") if isinstance(value, Mapping) else value
    if image is None:
        raise InputError("the canvas is empty: draw something first")
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 4:  # transparent parts over black, as the canvas shows them
        alpha = image[..., 3:4].astype(np.float32) / 255
        image = (image[..., :3] * alpha).round()
    elif image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"the canvas gave a picture of shape {image.shape}, not an RGB one")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return str(write_png(folder / "drawing.png", image.astype(np.uint8)))
