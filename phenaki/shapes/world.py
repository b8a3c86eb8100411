"""The synthetic "shapes world": captioned clips and stories, and an analyser.

Each clip is one coloured shape on a black 64x64 background moving 2 px per
frame (or staying still); stories chain several motions of the same object.
`describe` reads clips back (colour, shape, motion per segment) and is meant
to work on a tokenizer's blurry, noisy reconstructions as well as on exact
renders, so it is the ground truth for reconstruction and text-control metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

FRAME_SIZE = 64
FPS = 8
OBJECT_SIZE = 14
SPEED = 2
COLOURS = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "still")
DIRECTIONS = MOTIONS[:4]
VELOCITY = {"left": (-SPEED, 0), "right": (SPEED, 0), "up": (0, -SPEED), "down": (0, SPEED), "still": (0, 0)}
MAX_POS = FRAME_SIZE - OBJECT_SIZE  # largest top-left coordinate that keeps the box inside
# A motion counts as visible when the object travels at least this far over a segment;
# `describe` splits the difference (MOTION_THRESHOLD - 0.5) so integer true shifts are unambiguous.
MOTION_THRESHOLD = 2


def _make_masks() -> dict[str, np.ndarray]:
    c = np.arange(OBJECT_SIZE) + 0.5  # pixel centres; the box spans [0, 14)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    r = OBJECT_SIZE / 2
    circle = (yy - r) ** 2 + (xx - r) ** 2 <= r * r
    # Apex at the top, base on the bottom row; the apex row keeps 2 px so the box stays 14 tall.
    triangle = np.abs(xx - r) <= np.maximum(yy / 2, 0.5)
    return {"circle": circle, "square": np.ones_like(circle), "triangle": triangle}


MASKS = _make_masks()


def _check(colour: str, shape: str, motion: str) -> None:
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {list(COLOURS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    motion: str

    def __post_init__(self):
        _check(self.colour, self.shape, self.motion)

    def caption(self, first: bool = True) -> str:
        article = "a" if first else "the"
        verb = "stays still" if self.motion == "still" else f"moves {self.motion}"
        return f"{article} {self.colour} {self.shape} {verb}"


# ----------------------------------------------------------------------------- captions

_CAPTION_RE = re.compile(
    rf"^(a|the) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) "
    rf"(?:moves ({'|'.join(DIRECTIONS)})|stays (still))\.?$"
)


def parse_caption(text: str) -> tuple[str, str, str]:
    """(colour, shape, motion) of a canonical `a ...` / `the ...` caption."""
    m = _CAPTION_RE.match(" ".join(str(text).lower().split()))
    if m is None:
        raise ValueError(f"caption does not fit the shapes-world grammar: {text!r}")
    return m.group(2), m.group(3), m.group(4) or m.group(5)


# Training-time variety only; the canonical captions above stay the default everywhere.
PARAPHRASES_MOVING = (
    "a {colour} {shape} going {motion}",
    "{colour} {shape} moving {motion}",
    "a {shape}, {colour}, heading {motion}",
    "a {colour} {shape} travels {motion}",
    "a {colour} {shape} sliding {motion}",
)
PARAPHRASES_STILL = (
    "a {colour} {shape} not moving",
    "{colour} {shape} standing still",
    "a {shape}, {colour}, motionless",
    "a {colour} {shape} that stays put",
    "a still {colour} {shape}",
)


def paraphrase(colour: str, shape: str, motion: str, rng: np.random.Generator) -> str:
    _check(colour, shape, motion)
    templates = PARAPHRASES_STILL if motion == "still" else PARAPHRASES_MOVING
    return templates[rng.integers(len(templates))].format(colour=colour, shape=shape, motion=motion)


# ----------------------------------------------------------------------------- rendering


def _step(pos: tuple[int, int], motion: str) -> tuple[int, int]:
    dx, dy = VELOCITY[motion]
    return min(max(pos[0] + dx, 0), MAX_POS), min(max(pos[1] + dy, 0), MAX_POS)


def _check_start(start) -> tuple[int, int]:
    x, y = (int(v) for v in start)
    if not (0 <= x <= MAX_POS and 0 <= y <= MAX_POS):
        raise ValueError(f"start {start} outside [0, {MAX_POS}]^2 (top-left of the object box)")
    return x, y


def _as_segments(segments) -> list[tuple[Scene, int]]:
    """Normalise [(Scene-or-motion, n), ...]: every segment gets the first one's object."""
    out: list[tuple[Scene, int]] = []
    for item, n in segments:
        if int(n) < 1:
            raise ValueError(f"segment length must be >= 1, got {n}")
        if not out:
            if not isinstance(item, Scene):
                raise ValueError("the first segment must be a Scene (it fixes colour and shape)")
            scene = item
        else:
            first = out[0][0]
            if isinstance(item, Scene):
                if (item.colour, item.shape) != (first.colour, first.shape):
                    raise ValueError(
                        f"story object changes from {first.colour} {first.shape} to {item.colour} {item.shape}"
                    )
                scene = item
            else:
                scene = Scene(first.colour, first.shape, item)
        out.append((scene, int(n)))
    if not out:
        raise ValueError("a story needs at least one segment")
    return out


def trajectory(segments, start) -> np.ndarray:
    """(T, 2) int top-left (x, y) per frame. Frame 0 is `start`; every later frame takes one
    clamped step with the motion of the segment it belongs to."""
    pos, out = _check_start(start), []
    for i, (scene, n) in enumerate(_as_segments(segments)):
        for t in range(n):
            if i or t:
                pos = _step(pos, scene.motion)
            out.append(pos)
    return np.array(out, dtype=np.int64)


def _draw(colour: str, shape: str, positions: np.ndarray) -> np.ndarray:
    frames = np.zeros((len(positions), FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    mask, rgb = MASKS[shape], np.array(COLOURS[colour], np.uint8)
    for frame, (x, y) in zip(frames, positions):
        frame[y : y + OBJECT_SIZE, x : x + OBJECT_SIZE][mask] = rgb
    return frames


def render_clip(colour: str, shape: str, motion: str, num_frames: int = 17, seed: int = 0, start=None) -> np.ndarray:
    """(num_frames, 64, 64, 3) uint8; `start` is the (x, y) top-left of the box, random if None."""
    _check(colour, shape, motion)
    if start is None:
        start = tuple(np.random.default_rng(seed).integers(0, MAX_POS + 1, size=2))
    return _draw(colour, shape, trajectory([(Scene(colour, shape, motion), num_frames)], start))


def render_story(segments, seed: int = 0, start=None) -> tuple[np.ndarray, list[str]]:
    """Frames and captions (first `a ...`, rest `the ...`) of one object through several motions."""
    segs = _as_segments(segments)
    if start is None:
        start = tuple(np.random.default_rng(seed).integers(0, MAX_POS + 1, size=2))
    frames = _draw(segs[0][0].colour, segs[0][0].shape, trajectory(segs, start))
    return frames, [scene.caption(first=i == 0) for i, (scene, _) in enumerate(segs)]


def _room(pos, motion: str) -> int:
    """Pixels the box can still travel in `motion` before hitting the border."""
    x, y = pos
    return {"left": x, "right": MAX_POS - x, "up": y, "down": MAX_POS - y}.get(motion, MAX_POS)


def expected_motion(scene: Scene, start, num_frames: int) -> str:
    """The motion a viewer actually sees over a clip (or story segment) whose first frame has the
    box at `start`: clamping can turn a commanded move into `still`."""
    travel = min(_room(_check_start(start), scene.motion), SPEED * (num_frames - 1))
    return scene.motion if scene.motion != "still" and travel >= MOTION_THRESHOLD else "still"


# ----------------------------------------------------------------------------- random data


def random_scene(rng: np.random.Generator) -> Scene:
    return Scene(
        list(COLOURS)[rng.integers(len(COLOURS))],
        SHAPES[rng.integers(len(SHAPES))],
        MOTIONS[rng.integers(len(MOTIONS))],
    )


def _random_start(rng: np.random.Generator, motion: str, num_frames: int) -> tuple[int, int]:
    """Uniform start, except that along the motion axis the box keeps room for at least half
    of its travel, so a random caption always matches visible motion (clips may still stop)."""
    x, y = (int(v) for v in rng.integers(0, MAX_POS + 1, size=2))
    need = min(SPEED * (num_frames - 1) // 2, MAX_POS)
    if motion != "still" and _room((x, y), motion) < need:
        pick = int(rng.integers(0, MAX_POS - need + 1))  # offset from the far border
        x, y = {"left": (MAX_POS - pick, y), "right": (pick, y), "up": (x, MAX_POS - pick), "down": (x, pick)}[motion]
    return x, y


def random_clip(seed: int, num_frames: int = 17, paraphrase_prob: float = 0.0):
    """(frames, caption, Scene), deterministic for `seed`; caption canonical unless paraphrased."""
    rng = np.random.default_rng(seed)
    scene = random_scene(rng)
    frames = render_clip(
        scene.colour, scene.shape, scene.motion, num_frames, start=_random_start(rng, scene.motion, num_frames)
    )
    # Always draw, so the frames for a seed do not depend on paraphrase_prob.
    use_paraphrase = rng.random() < paraphrase_prob
    caption = paraphrase(scene.colour, scene.shape, scene.motion, rng) if use_paraphrase else scene.caption()
    return frames, caption, scene


def random_story(seed: int, num_segments: int = 3, frames_per_segment: int = 16):
    """(frames, captions, scenes): one object, each later motion chosen among those with
    room to show at least half its travel (`still` always qualifies)."""
    rng = np.random.default_rng(seed)
    first = random_scene(rng)
    pos = _random_start(rng, first.motion, frames_per_segment)
    scenes, cur = [first], pos
    need = min(SPEED * frames_per_segment // 2, MAX_POS)  # later segments take n steps
    for _ in range(num_segments - 1):
        cur = tuple(trajectory([(s, frames_per_segment) for s in scenes], pos)[-1])
        options = [m for m in MOTIONS if m == "still" or _room(cur, m) >= need]
        scenes.append(Scene(first.colour, first.shape, options[rng.integers(len(options))]))
    frames, captions = render_story([(s, frames_per_segment) for s in scenes], start=pos)
    return frames, captions, scenes


# ----------------------------------------------------------------------------- analysis


@dataclass
class Description:
    colour: str | None
    shape: str | None
    motions: list  # one per segment; None where the object is never visible in it
    centroids: np.ndarray = field(default=None, repr=False)  # (T, 2) x, y; NaN when absent


_MIN_PEAK, _MIN_PIXELS, _WINDOW = 80.0, 20, 12


def _brightness(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel brightness (max channel) of (T, H, W, 3) frames and each frame's robust peak
    (the 20th brightest pixel, so a few hot pixels cannot fake an object)."""
    bright = np.maximum(np.maximum(frames[..., 0], frames[..., 1]), frames[..., 2]).astype(np.float32)
    flat = bright.reshape(len(bright), int(np.prod(bright.shape[1:])))
    return bright, np.partition(flat, -_MIN_PIXELS, axis=1)[:, -_MIN_PIXELS]


def _find(bright: np.ndarray, peak: float):
    """Object pixel coordinates (ys, xs) in one frame's brightness map, or None. The threshold is
    half the frame's peak, so dim or blurry reconstructions still give the object's shape."""
    if peak < _MIN_PEAK:
        return None
    ys, xs = np.nonzero(bright >= 0.5 * peak)
    # Keep a window around the median so stray artefacts do not stretch the bounding box.
    half = len(ys) // 2  # nonzero() returns ys sorted, so ys[half] is already their median
    my, mx = ys[half], np.partition(xs, half)[half]
    keep = (np.abs(ys - my) <= _WINDOW) & (np.abs(xs - mx) <= _WINDOW)
    ys, xs = ys[keep], xs[keep]
    return (ys, xs) if len(ys) >= _MIN_PIXELS else None


def _shape_of(ys: np.ndarray, xs: np.ndarray) -> str:
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill = len(ys) / (h * w)
    # The triangle's mass sits low in its box (centroid ~2/3 down); circle and square are centred.
    low = (ys.mean() - ys.min()) / max(h - 1, 1)
    # Thresholds sit between the classes' ranges under blur + noise (which rounds square corners).
    if low > 0.55 or fill < 0.62:
        return "triangle"
    return "square" if fill > 0.86 else "circle"


def _motion_of(c: np.ndarray) -> str | None:
    c = c[~np.isnan(c[:, 0])]
    if len(c) < 2:  # one visible frame shows no motion, as in expected_motion
        return None if len(c) == 0 else "still"
    dx, dy = c[-1] - c[0]
    if max(abs(dx), abs(dy)) < MOTION_THRESHOLD - 0.5:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def describe(frames: np.ndarray, segment_lengths=None) -> Description:
    """Colour, shape and per-segment motion of the single object in (T, 64, 64, 3) frames
    (uint8, or floats in [0, 1])."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 and frames.max(initial=0) <= 1.0:
        frames = frames * 255.0
    lengths = [len(frames)] if segment_lengths is None else [int(n) for n in segment_lengths]
    if sum(lengths) != len(frames):
        raise ValueError(f"segment_lengths sum to {sum(lengths)}, but there are {len(frames)} frames")
    centroids = np.full((len(frames), 2), np.nan)
    colours, shapes = [], []
    bright, peaks = _brightness(frames)
    for t, frame in enumerate(frames):
        found = _find(bright[t], peaks[t])
        if found is None:
            continue
        ys, xs = found
        centroids[t] = xs.mean(), ys.mean()
        colours.append(frame[ys, xs].mean(axis=0))
        shapes.append(_shape_of(ys, xs))
    bounds = np.cumsum([0] + lengths)
    motions = [_motion_of(centroids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    if not colours:
        return Description(None, None, motions, centroids)
    # Nearest palette entry after scaling the brightest channel to 255: every palette colour has
    # one, so a dimmed reconstruction keeps its hue.
    rgb = np.median(colours, axis=0)
    rgb = rgb * 255.0 / max(rgb.max(), 1.0)
    names = list(COLOURS)
    dists = [np.linalg.norm(rgb - np.array(COLOURS[n])) for n in names]
    shape = max(SHAPES, key=shapes.count)  # majority vote over frames
    return Description(names[int(np.argmin(dists))], shape, motions, centroids)


def motion_matches(expected: str, observed: str | None, frames: np.ndarray) -> bool:
    """Whether generated `frames` (one segment) obey the commanded `expected` motion. Standing
    still also counts when the object already touches the border it was told to move into."""
    if observed == expected:
        return True
    if expected not in DIRECTIONS or observed != "still" or len(frames) == 0:
        return False
    bright, peak = _brightness(np.asarray(frames)[:1])
    found = _find(bright[0], peak[0])
    if found is None:
        return False
    ys, xs = found
    room = {"left": xs.min(), "right": FRAME_SIZE - 1 - xs.max(), "up": ys.min(), "down": FRAME_SIZE - 1 - ys.max()}[
        expected
    ]
    return room < MOTION_THRESHOLD + 1  # +1 px slack for blurred edges
