"""Reads shapes-world-2 clips back, and scores them against captions (the analysis half of world2).

`describe` finds each object (one per palette colour: two objects never share one) and reads its shape,
size and, per segment, its motion. It is exactly right on rendered clips and meant to stay right on a
tokenizer's blurry, noisy, dimmed reconstructions, so it is the ground truth for reconstruction and
text-control measures. `score` compares a description with a caption or Scene, object by object, and
`kept` says whether a story's objects survive a scene change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import world2 as w
from .world2_captions import parse_scene

_MIN_PEAK, _MIN_PIXELS, _WINDOW = 80.0, 20, 16
_PALETTE = np.array(list(w.COLOURS.values()), np.float32)  # (7, 3)
_SIDES = np.arange(w.SMALL, w.BIG + 1)
_COUNTS = {shape: np.array([w.MASKS[(shape, k)].sum() for k in _SIDES]) for shape in w.SHAPES}  # increasing


@dataclass
class ObjectDescription:
    """One object as seen in a clip. Per-segment entries are None where the object is absent (seen in
    fewer than a third of the segment's frames)."""

    colour: str
    shape: str  # majority over the frames it is seen in
    size: str  # 'small' / 'big' at the end of the last segment it is seen in
    motions: list  # per segment: one of MOTIONS
    sizes: list  # per segment, at the segment's end
    shapes: list  # per segment, majority
    centroids: np.ndarray = field(repr=False)  # (T, 2) x, y in pixel indices; NaN where not seen
    sides: np.ndarray = field(repr=False)  # (T,) box side in px, from the pixel count; NaN where not seen
    boxes: np.ndarray = field(repr=False)  # (T, 4) x0, y0, x1, y1 (half-open); NaN where not seen
    segments: list = field(repr=False)  # [(first, stop), ...] frame ranges of the segments


def palette_labels(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) int8 palette index of every object pixel of uint8 frames, -1 elsewhere. Object pixels
    are at least half as bright (max channel) as the frame's robust peak (its 20th brightest pixel, so a
    few hot pixels cannot fake an object); each takes the nearest palette colour after scaling its
    brightest channel to 255, so dimmed and blurred edges keep their hue."""
    bright = np.maximum(np.maximum(frames[..., 0], frames[..., 1]), frames[..., 2])  # uint8: fast
    peak = np.partition(bright.reshape(len(frames), -1), -_MIN_PIXELS, axis=1)[:, -_MIN_PIXELS]
    peak = peak.astype(np.float32)
    on = (bright >= 0.5 * peak[:, None, None]) & (peak >= _MIN_PEAK)[:, None, None]
    rgb = frames[on].astype(np.float32) * (255.0 / np.maximum(bright[on], 1.0))[:, None]
    labels = np.full(on.shape, -1, np.int8)
    labels[on] = ((_PALETTE**2).sum(1) - 2 * rgb @ _PALETTE.T).argmin(1)  # nearest: min |rgb - p|^2
    return labels


def _shapes(dx, dy, t, total: int) -> np.ndarray:
    """(total,) index into SHAPES per frame, from each frame's pixel offsets (dx, dy) to its centroid
    (t: their frames). The triangle's mass sits low (vertical skewness about -0.6, the others' 0); the
    fourth moments along the diagonals over those along the axes are 4/3 for a square, 1 for a circle
    and 3/4 for a diamond (these, unlike the fill of the box, survive ragged blurred edges). Thresholds
    sit between the classes' ranges under blur, dimming and noise."""

    def total_of(values):
        return np.bincount(t, values, total)

    dx2, dy2 = dx * dx, dy * dy
    u2, v2 = (dx + dy) ** 2, (dx - dy) ** 2
    count = np.bincount(t, minlength=total)
    skew = total_of(dy2 * dy) * np.sqrt(count) / np.maximum(total_of(dy2), 1e-6) ** 1.5
    ratio = total_of(u2 * u2 + v2 * v2) / np.maximum(4 * total_of(dx2 * dx2 + dy2 * dy2), 1e-6)
    shape = np.where(ratio > 1.16, 1, np.where(ratio > 0.875, 0, 3))  # square, circle, diamond
    return np.where(skew < -0.25, 2, shape)  # triangle


def _median_and_ends(t, values, cuts):
    """Per frame: the median, first and last of `values` sorted within each frame (t: frames, sorted;
    cuts: each frame's start in t). Entries of frames without pixels are meaningless."""
    order = np.lexsort((values, t))
    v = values[order]
    last = len(v) - 1
    starts, stops = np.minimum(cuts[:-1], last), np.maximum(cuts[1:] - 1, 0)
    return v[np.minimum((cuts[:-1] + cuts[1:]) // 2, last)], v[starts], v[stops]


def _measure(t, ys, xs, total: int) -> tuple | None:
    """Per-frame measures of one colour's pixels (frame t, row ys, column xs; sorted by frame): whether
    it is seen (>= _MIN_PIXELS), centroid (x, y), box (x0, y0, x1, y1), shape index and side. Pixels
    more than _WINDOW px from their frame's median are dropped first, so stray artefacts do not count.
    The side is read from the pixel count, which blur barely changes (it takes the tips off triangles
    and diamonds, and so a px off their extent): exact on renders, in between on reconstructions."""
    cuts = np.searchsorted(t, np.arange(total + 1))
    my, mx = _median_and_ends(t, ys, cuts)[0], _median_and_ends(t, xs, cuts)[0]
    keep = (np.abs(ys - my[t]) <= _WINDOW) & (np.abs(xs - mx[t]) <= _WINDOW)
    t, ys, xs = t[keep], ys[keep].astype(np.float64), xs[keep].astype(np.float64)
    if not len(t):
        return None
    cuts = np.searchsorted(t, np.arange(total + 1))
    count = np.diff(cuts)
    n = np.maximum(count, 1)
    cx, cy = np.bincount(t, xs, total) / n, np.bincount(t, ys, total) / n
    _, x0, x1 = _median_and_ends(t, xs, cuts)
    _, y0, y1 = _median_and_ends(t, ys, cuts)
    shapes = _shapes(xs - cx[t], ys - cy[t], t, total)
    sides = np.choose(shapes, [np.interp(count, _COUNTS[shape], _SIDES) for shape in w.SHAPES])
    return count >= _MIN_PIXELS, np.stack([cx, cy], 1), np.stack([x0, y0, x1 + 1, y1 + 1], 1), shapes, sides


def _motion(shift: np.ndarray, growth: float) -> str:
    """The motion of a segment from its centroid shift and box growth (thresholds halfway, so integer
    ground truth is unambiguous)."""
    if abs(growth) >= w.GROWTH_SEEN - 0.5:
        return "grows" if growth > 0 else "shrinks"
    dx, dy = shift
    if max(abs(dx), abs(dy)) < w.MOVE_SEEN - 0.5:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _object(colour: str, measures: tuple | None, spans: list) -> ObjectDescription | None:
    """Gathers one colour's per-frame measures into a description (None if absent from every segment)."""
    if measures is None:
        return None
    seen, centroids, boxes, shape_ids, sides = measures
    centroids[~seen], boxes[~seen], sides = np.nan, np.nan, np.where(seen, sides, np.nan)
    motions, sizes, shapes = [], [], []
    for a, b in spans:
        frames = np.flatnonzero(seen[a:b]) + a
        if 3 * len(frames) < b - a or not len(frames):
            motions.append(None), sizes.append(None), shapes.append(None)
            continue
        first, last = frames[0], frames[-1]
        motions.append(_motion(centroids[last] - centroids[first], sides[last] - sides[first]))
        sizes.append(w.size_name(sides[last]))
        shapes.append(w.SHAPES[_majority(shape_ids[frames])])
    if all(m is None for m in motions):
        return None
    shape = w.SHAPES[_majority(shape_ids[seen])]
    size = [s for s in sizes if s is not None][-1]
    return ObjectDescription(colour, shape, size, motions, sizes, shapes, centroids, sides, boxes, spans)


def _majority(ids: np.ndarray) -> int:
    """The most frequent index (the lowest on a tie)."""
    return int(np.bincount(ids).argmax())


def describe(frames: np.ndarray, segment_lengths=None) -> list[ObjectDescription]:
    """The objects in (T, H, W, 3) frames (uint8, or floats in [0, 1]), ordered by the frame they are
    first seen in, then left to right; `segment_lengths` splits the frames into a story's scenes."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        scale = 255.0 if frames.max(initial=0) <= 1.0 else 1.0
        frames = np.clip(np.rint(frames * scale), 0, 255).astype(np.uint8)
    spans = w.segment_bounds(len(frames), segment_lengths)
    if not len(frames):
        return []
    labels = palette_labels(frames)
    counts = np.bincount(labels[labels >= 0], minlength=len(w.COLOURS))
    found = []
    for c in np.flatnonzero(counts >= _MIN_PIXELS):
        t, ys, xs = np.nonzero(labels == c)
        description = _object(list(w.COLOURS)[c], _measure(t, ys, xs, len(frames)), spans)
        if description is not None:
            found.append(description)

    def order(d):
        first = int(np.flatnonzero(~np.isnan(d.centroids[:, 0]))[0])
        return first, d.centroids[first, 0]

    return sorted(found, key=order)


# ----------------------------------------------------------------------------- scoring


@dataclass
class ObjectScore:
    """How one prompted object came out; `size` is None when the caption gives no size word."""

    colour: bool
    shape: bool
    size: bool | None
    motion: bool

    @property
    def right(self) -> bool:
        return self.colour and self.shape and self.size is not False and self.motion


@dataclass
class Score:
    objects: list  # ObjectScore per prompted object, in caption order
    count: bool  # as many objects seen in the segment as prompted

    @property
    def right(self) -> bool:
        """Every object entirely right, and no object missing or extra."""
        return self.count and all(o.right for o in self.objects)


def _room(d: ObjectDescription, others: list, t: int) -> dict:
    """Free px from d's box at frame t to the border, or to another box less the CLEARANCE it must keep,
    in each direction."""
    x0, y0, x1, y1 = d.boxes[t]
    room = {"left": x0, "right": w.FRAME_SIZE - x1, "up": y0, "down": w.FRAME_SIZE - y1}
    for o in others:
        ox0, oy0, ox1, oy1 = o.boxes[t]
        gaps = {}
        if max(oy0 - y1, y0 - oy1) <= w.CLEARANCE:  # level with d: in the way of horizontal moves
            gaps.update(right=ox0 - x1, left=x0 - ox1)
        if max(ox0 - x1, x0 - ox1) <= w.CLEARANCE:  # above or below d: in the way of vertical moves
            gaps.update(down=oy0 - y1, up=y0 - oy1)
        for side, gap in gaps.items():
            if gap >= 0:  # the other box is on that side
                room[side] = min(room[side], gap - w.CLEARANCE - 1)
    return room


def _obeys(expected: str, d: ObjectDescription, others: list, segment: int) -> bool:
    """Whether d followed the commanded motion in `segment`. Standing still also counts when the motion
    had no room at the segment's start (1 px slack for blurred edges): a move into a border or the
    other object, growth that is already big or boxed in, shrinking that is already small."""
    observed = d.motions[segment]
    if observed == expected:
        return True
    if observed != "still" or expected == "still":
        return False
    a, b = d.segments[segment]
    t = next(t for t in range(a, b) if not np.isnan(d.boxes[t, 0]))
    room = _room(d, [o for o in others if not np.isnan(o.boxes[t, 0])], t)
    if expected in w.DIRECTIONS:
        return room[expected] < w.SPEED + 1
    if expected == "grows":
        return d.sides[t] >= w.BIG - 1 or min(room.values()) < 2
    return d.sides[t] <= w.SMALL + 1


def score(expected, description: list, segment: int = 0) -> Score:
    """Scores the objects of `description` (from `describe`) seen in `segment` against a caption, w.Scene or
    w.Thing. Prompted objects pair with seen ones by colour, then by shape, then in order; a prompted
    object with no partner is wrong in every respect."""
    scene = (
        parse_scene(expected)
        if isinstance(expected, str)
        else w.Scene(expected)
        if isinstance(expected, w.Thing)
        else w.Scene(tuple(expected))
    )
    here = [d for d in description if d.motions[segment] is not None]
    left, partner = list(here), {}
    for match in (lambda d, t: d.colour == t.colour, lambda d, t: d.shapes[segment] == t.shape, lambda d, t: True):
        for i, t in enumerate(scene):
            d = next((d for d in left if match(d, t)), None) if i not in partner else None
            if d is not None:
                partner[i] = d
                left.remove(d)
    scores = []
    for i, t in enumerate(scene):
        d = partner.get(i)
        if d is None:
            scores.append(ObjectScore(False, False, False if t.size else None, False))
            continue
        others = [o for o in here if o is not d]
        scores.append(
            ObjectScore(
                d.colour == t.colour,
                d.shapes[segment] == t.shape,
                d.sizes[segment] == t.size if t.size else None,
                _obeys(t.motion, d, others, segment),
            )
        )
    return Score(scores, len(here) == len(scene))


def kept(description: list, segment: int) -> bool:
    """Whether the objects seen in `segment` (>= 1) are those of the segment before: the same colours
    and shapes, none lost or added (object identity across a story's scene change)."""
    if segment < 1:
        raise ValueError(f"kept compares a segment with the one before: segment must be >= 1, got {segment}")

    def seen(i):
        return sorted((d.colour, d.shapes[i]) for d in description if d.motions[i] is not None)

    return seen(segment) == seen(segment - 1)
