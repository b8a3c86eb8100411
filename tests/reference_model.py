"""A reference for testing the eval (phenaki/shapes/eval.py): an object with the part of Phenaki's interface that the
eval uses (`sample`, `stream`, `cvivit.encode` / `decode`, `window_frames`, `frame_size`, `fps`, `device`) that
renders the shapes world's ground truth for each caption with phenaki.shapes.world, or the ground truth with one
deliberate error. No part of the model runs: it is what a perfect (or a known-imperfect) model would make, so the
scores the eval must give it are known in advance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from phenaki.media import to_uint8_frames, to_video_tensor
from phenaki.pipeline import VideoChunk
from phenaki.shapes import world, world2
from phenaki.shapes.world2_captions import parse_scene

# every prompt turned into another colour / the opposite motion (and a still object into one that moves)
WRONG_COLOUR = dict(zip(world.COLOURS, [*list(world.COLOURS)[1:], list(world.COLOURS)[0]]))
WRONG_MOTION = {"left": "right", "right": "left", "up": "down", "down": "up", "still": "left"}
MARGIN = 16  # clips start at least this far from every border: room for 8 steps, so every motion shows


def recolour(frames: np.ndarray, mapping: dict[str, str]) -> np.ndarray:
    """Exact palette colours swapped as `mapping` says (frames rendered by the world hold no other colours)."""
    out = frames.copy()
    for old, new in mapping.items():
        out[(frames == world.COLOURS[old]).all(axis=-1)] = world.COLOURS[new]
    return out


def draw(positions, colours, shape: str) -> np.ndarray:
    """(T, 64, 64, 3): the object's box at each (x, y) top-left, in the colour given for each frame."""
    return np.concatenate(
        [
            world.render_clip(colour, shape, "still", 1, start=tuple(position))
            for position, colour in zip(positions, colours)
        ]
    )


class Tokenizer:
    """`encode` keeps the video itself as its 'ids'; `decode` gives it back, recoloured with `colours`."""

    def __init__(self, colours: dict[str, str] | None = None):
        self.colours = colours

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        if self.colours is None:
            return ids
        return torch.stack([to_video_tensor(recolour(to_uint8_frames(v), self.colours)) for v in ids])


class GroundTruth:
    """Renders each caption's scene: `colours` / `motions` map what a prompt asks for to what is drawn (None: as
    asked); in stories, with `new_colour_each_scene` each segment is drawn in the colour after the previous one's in
    WRONG_COLOUR (the object is not kept), and each
    motion starts `switch` frames after its segment does (negative: before). `start`: the (x, y) top-left where every
    clip and story starts (default: a place at least MARGIN px from the borders, drawn from the seed)."""

    frame_size = (world.FRAME_SIZE, world.FRAME_SIZE)
    fps = world.FPS
    window_frames = 17
    prime_frames = 5
    device = torch.device("cpu")

    def __init__(
        self,
        colours: dict[str, str] | None = None,
        motions: dict[str, str] | None = None,
        new_colour_each_scene: bool = False,
        switch: int = 0,
        tokenizer_colours=None,
        start: tuple[int, int] | None = None,
    ):
        self.colours, self.motions, self.switch = colours or {}, motions or {}, switch
        self.new_colour_each_scene = new_colour_each_scene
        self.fixed_start = start
        self.cvivit = Tokenizer(tokenizer_colours)

    def drawn(self, caption: str) -> tuple[str, str, str]:
        colour, shape, motion = world.parse_caption(caption)
        return self.colours.get(colour, colour), shape, self.motions.get(motion, motion)

    def start(self, seed: int | None, index: int) -> tuple[int, int]:
        if self.fixed_start is not None:
            return self.fixed_start
        rng = np.random.default_rng((0 if seed is None else seed, index))
        return tuple(int(v) for v in rng.integers(MARGIN, world.MAX_POS - MARGIN + 1, size=2))

    def sample(self, texts, num_frames: int = 17, *, seed: int | None = None, **settings) -> torch.Tensor:
        """(batch, 3, num_frames, 64, 64) in [0, 1], as Phenaki.sample."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return torch.stack(
            [
                to_video_tensor(world.render_clip(*self.drawn(text), num_frames, start=self.start(seed, i)))
                for i, text in enumerate(texts)
            ]
        )

    def stream(self, timeline, *, seed: int | None = None, **settings):
        """VideoChunks window by window (17 new frames, then 12 after 5 primed ones), as Phenaki.stream: one object
        through the timeline's scenes, frame t taking its step with the motion of the segment frame t - switch is
        in (the world's own rule with switch 0: a segment's first frame already took its first step)."""
        lengths = [max(1, round(seconds * self.fps)) for _, seconds in timeline]
        scenes = [self.drawn(caption) for caption, _ in timeline]
        segment_of = np.repeat(np.arange(len(lengths)), lengths)
        steps = [
            scenes[segment_of[min(max(t - self.switch, 0), len(segment_of) - 1)]][2] for t in range(len(segment_of))
        ]
        runs = [(steps[0], 1)]  # the per-frame motions as runs, for world.trajectory
        for motion in steps[1:]:
            runs[-1:] = [(motion, runs[-1][1] + 1)] if motion == runs[-1][0] else [runs[-1], (motion, 1)]
        colour, shape, _ = scenes[0]
        first = world.Scene(colour, shape, runs[0][0])
        positions = world.trajectory([(first, runs[0][1]), *runs[1:]], self.start(seed, 0))
        colours = [colour]
        for _ in lengths[1:]:
            colours.append(WRONG_COLOUR[colours[-1]] if self.new_colour_each_scene else colour)
        frames = draw(positions, [colours[segment] for segment in segment_of], shape)
        start, room = 0, self.window_frames
        for segment, length in enumerate(lengths):
            end = start + length
            while start < end:
                piece = frames[start : min(start + room, end)]
                yield VideoChunk(piece, segment, start)
                start, room = start + len(piece), self.window_frames - self.prime_frames


class GroundTruth2:
    """The same for shapes world 2 (phenaki/shapes/eval2.py): each caption's scene rendered by world2 from starts
    drawn with room (as in training) from the seed; stories through world2.render_story. `colours` maps a prompted
    colour to the one drawn."""

    frame_size = (world2.FRAME_SIZE, world2.FRAME_SIZE)
    fps = world2.FPS
    window_frames = 17
    device = torch.device("cpu")

    def __init__(self, colours: dict[str, str] | None = None):
        self.colours = colours or {}
        self.cvivit = Tokenizer()

    def scene(self, caption: str) -> world2.Scene:
        things = parse_scene(caption)
        return world2.Scene([replace(t, colour=self.colours.get(t.colour, t.colour)) for t in things])

    def sample(self, texts, num_frames: int = 17, *, seed: int | None = None, **settings) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return torch.stack(
            [
                to_video_tensor(world2.render_clip(self.scene(text), num_frames, seed=(seed or 0) + i))
                for i, text in enumerate(texts)
            ]
        )

    def stream(self, timeline, *, seed: int | None = None, **settings):
        segments = [(self.scene(caption), max(1, round(seconds * self.fps))) for caption, seconds in timeline]
        frames, _ = world2.render_story(segments, seed=seed or 0)
        first = 0
        for index, (_, n) in enumerate(segments):
            yield VideoChunk(frames[first : first + n], index, first)
            first += n
