"""What to change when a frame size does not fit a model: the advice that ends `Phenaki`'s errors about windows
too small for two latent frames (`window_fix`) and position grids built for other frames (`grid_fix`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models.maskgit import MaskGit


def frame_size_arg(height: int, width: int) -> str:
    """The `frame_size=` argument that asks `Phenaki` for frames of height x width, as a user would type it."""
    return f"frame_size={height}" if height == width else f"frame_size=({height}, {width})"


def window_fix(maskgit: MaskGit, patch: int, frame_size: tuple[int, int]) -> str:
    """What makes a window of 2+ latent frames fit MaskGit: the frame size its position_grid was built for, or the
    largest of frame_size / 2, / 4, ... in whole patches that fits; or a longer max_seq_len."""
    tokens = (frame_size[0] // patch) * (frame_size[1] // patch)  # a latent frame's
    grid = maskgit.config.get("position_grid")
    longer = f"raise max_seq_len to at least {2 * tokens}" + (" (and position_grid with it)" if grid else "")
    if grid is not None:  # (latent frames, rows, columns)
        return (
            (
                f"pass {frame_size_arg(grid[1] * patch, grid[2] * patch)} (a window of {grid[0]} latent frames), "
                f"or {longer}"
            )
            if grid[0] >= 2
            else longer
        )
    height, width = frame_size
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= patch:
        height, width = height // 2, width // 2
        latent = maskgit.max_seq_len // ((height // patch) * (width // patch))
        if height % patch == 0 and width % patch == 0 and latent >= 2:
            return f"pass {frame_size_arg(height, width)} (a window of {latent} latent frames) or smaller, or {longer}"
    return longer


def grid_fix(name: str, grid, window_grid: list[int], patch: int) -> str:
    """What makes a model's position_grid and the window's token grid agree: the frame size the grid was built for,
    or a model built for this window (its max_seq_len is its grid's product)."""
    rebuild = f"position_grid={window_grid}"
    if math.prod(window_grid) != math.prod(grid):
        rebuild = f"max_seq_len={math.prod(window_grid)} and {rebuild}"
    return (
        f"pass {frame_size_arg(grid[1] * patch, grid[2] * patch)} (the frames that grid was built for at "
        f"patch_size {patch}), or build {name} with {rebuild}"
    )
