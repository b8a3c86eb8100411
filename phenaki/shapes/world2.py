"""The shapes world, version 2: one or two objects, four shapes, two sizes, moves, growth and stories.

Successor of `world.py` (one object, three shapes, one size). Frames are 64x64 RGB uint8 at 8 fps on
black, drawn without anti-aliasing. Each object has a colour (two objects never share one), a shape
(`circle`; axis-aligned `square`; `triangle` pointing up, base = height; `diamond`, a square turned
45 degrees whose diagonals equal the size), a size (`small` = 10 px, `big` = 18 px across) and, per
scene, a motion: `left`/`right`/`up`/`down` at 2 px a frame, `still`, or `grows`/`shrinks` by 1 px a
frame between the two sizes. A state is (x, y, size_px): the top-left corner and side of the box.

Rules of motion (every frame after the first, the first object then the second, the second checking
against the first's new box):
- a step is not taken that frame if the new box would leave the frame or come within CLEARANCE px of
  the other object's box (boxes always keep more than CLEARANCE empty px between them); it is tried
  again the next frame, so objects stop at borders and in front of each other, and never overlap;
- growth is about the box centre, in half-pixel units: c2 = 2x + size is fixed at even sizes and one
  more (half a pixel right and down) at odd sizes; i.e. growing from an even size keeps the corner and
  from an odd size moves it up-left by 1; shrinking is the exact reverse. Starts are 10 or 18 px, so a
  grows from 10 to 18 ends exactly centred on its start.

This module is the world itself: its constants, Things and Scenes with their canonical captions, the
simulation, drawing, and seeded clips and stories of given scenes. Beside it:
`world2_captions.py` parses captions and varies them (paraphrases, vocabulary); `world2_data.py` draws
random scenes, clips, stories and training examples. Training data never contains the colour-shape
pairs in HELD_OUT (`held_out=False`, the default of every random generator); `held_out=True` draws
scenes with at least one of them, for the evaluation. `world2_describe.py` reads clips back
(`describe`) and scores them against captions (`score`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import world as world1

FRAME_SIZE = 64
FPS = 8
SPEED = 2  # px a frame
CLEARANCE = 2  # two boxes never come within this many px of each other
COLOURS = world1.COLOURS  # exactly world 1's colours (issue 24), by name
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 10, "big": 18}
SMALL, BIG = SIZES["small"], SIZES["big"]
MOTIONS = ("left", "right", "up", "down", "still", "grows", "shrinks")
DIRECTIONS = MOTIONS[:4]
VELOCITY = {"left": (-SPEED, 0), "right": (SPEED, 0), "up": (0, -SPEED), "down": (0, SPEED)}
HELD_OUT = (("yellow", "triangle"), ("cyan", "square"), ("magenta", "circle"), ("white", "diamond"))
ROOM_STEPS = 8  # random starts leave room for this many unobstructed steps of the first motion
MOVE_SEEN = 2  # a box centre that travels this far over a segment is seen to move
GROWTH_SEEN = 4  # a box that grows (shrinks) by this many px over a segment is seen to grow (shrink)
BIG_FROM = 14  # boxes this wide or wider are 'big', narrower ones 'small'
SIZING = ("grows", "shrinks")  # the motions that change size (they take no size word)


def _mask(shape: str, s: int) -> np.ndarray:
    """(s, s) bool mask, tested exactly in half-pixel units: pixel (i, j) has its centre at
    (u, v) = (2j + 1 - s, 2i + 1 - s) from the box centre."""
    v, u = np.meshgrid(2 * np.arange(s) + 1 - s, 2 * np.arange(s) + 1 - s, indexing="ij")
    if shape == "circle":
        return u * u + v * v <= s * s
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= s
    if shape == "triangle":  # row i is (i + 1/2) / 2 px wide each side of the centre (at least 1/2 px)
        return 2 * np.abs(u) <= np.maximum(v + s, 2)
    return np.ones((s, s), bool)


MASKS = {(shape, s): _mask(shape, s) for shape in SHAPES for s in range(SMALL, BIG + 1)}
# Flat offsets of each mask's pixels inside a frame, for drawing by fancy indexing.
_OFFSETS = {k: (np.nonzero(m)[0] * FRAME_SIZE + np.nonzero(m)[1]) for k, m in MASKS.items()}


def size_name(px: float) -> str:
    """'small' or 'big' for a box side in px: big from BIG_FROM px (growing boxes pass 11..17); measured
    sides split halfway, at BIG_FROM - 0.5."""
    return "big" if px >= BIG_FROM - 0.5 else "small"


# ----------------------------------------------------------------------------- scenes and captions


@dataclass(frozen=True)
class Thing:
    """One object of a scene; `size` is the size word of the caption (None: not said)."""

    colour: str
    shape: str
    size: str | None
    motion: str

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {list(COLOURS)}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {list(SHAPES)}")
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; expected None or one of {list(SIZES)}")
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion {self.motion!r}; expected one of {list(MOTIONS)}")
        if self.size is not None and self.motion in SIZING:
            raise ValueError(
                f"{self.motion!r} takes no size word (grows starts small, shrinks starts big), got size {self.size!r}"
            )

    def phrase(self, first: bool = True) -> str:
        """'a [size] colour shape moves left' (first scene) or 'the colour shape grows' (later ones)."""
        words = ["a", self.size] if first else ["the"]
        verb = {"still": "stays still", "grows": "grows", "shrinks": "shrinks"}.get(self.motion)
        return " ".join([w for w in words if w] + [self.colour, self.shape, verb or f"moves {self.motion}"])


class Scene(tuple):
    """One or two Things, in caption order (also the order they move in each frame):
    `Scene(thing)`, `Scene(a, b)` or `Scene([a, b])`."""

    def __new__(cls, *things):
        if len(things) == 1 and not isinstance(things[0], Thing):
            things = tuple(things[0])
        if not 1 <= len(things) <= 2 or not all(isinstance(t, Thing) for t in things):
            raise ValueError(f"a Scene holds one or two Things, got {things!r}")
        if len(things) == 2 and things[0].colour == things[1].colour:
            raise ValueError(f"two objects share the colour {things[0].colour!r}; each needs its own")
        return super().__new__(cls, things)

    def __getnewargs__(self):
        return (tuple(self),)

    def __repr__(self) -> str:
        return f"Scene{tuple(self)!r}"

    def caption(self, first: bool = True) -> str:
        """The canonical caption: object phrases joined by ' and '."""
        return " and ".join(t.phrase(first) for t in self)


def as_scene(item) -> Scene:
    """`item` as a Scene: a Scene as it is, one Thing as a one-object Scene; anything else is a TypeError."""
    if isinstance(item, Thing):
        return Scene(item)
    if not isinstance(item, Scene):
        raise TypeError(f"expected a Scene (or one Thing), got {item!r}")
    return item


# ----------------------------------------------------------------------------- simulation and drawing


def _box(state) -> tuple:
    """(x0, y0, x1, y1), half-open, of an (x, y, size) state."""
    return state[0], state[1], state[0] + state[2], state[1] + state[2]


def _box_gap(a, b) -> int:
    """Empty px between two boxes along the axis that separates them (<= 0: they touch or overlap)."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def _step(state: tuple, motion: str) -> tuple:
    """Where one unobstructed step of `motion` takes an (x, y, size) state."""
    x, y, s = state
    if motion in VELOCITY:
        dx, dy = VELOCITY[motion]
        return x + dx, y + dy, s
    if motion == "grows" and s < BIG:
        return x - s % 2, y - s % 2, s + 1
    if motion == "shrinks" and s > SMALL:
        return x + 1 - s % 2, y + 1 - s % 2, s - 1
    return state


def advance(state: tuple, motions) -> tuple:
    """One frame: each object in turn takes its step unless that leaves the frame or comes within
    CLEARANCE px of another box (the ones before it already moved)."""
    new = list(state)
    for i, motion in enumerate(motions):
        cand = _step(new[i], motion)
        box = _box(cand)
        if (
            cand is not new[i]
            and box[0] >= 0
            and box[1] >= 0
            and box[2] <= FRAME_SIZE
            and box[3] <= FRAME_SIZE
            and all(_box_gap(box, _box(o)) > CLEARANCE for j, o in enumerate(new) if j != i)
        ):
            new[i] = cand
    return tuple(new)


def story_states(start: tuple, segments) -> list:
    """Per-frame states of a story [(Scene, n_frames), ...] (`segments` as `_as_segments` returns them):
    frame 0 is `start`, every later frame one `advance` with its segment's motions."""
    out, state = [start], start
    for i, (scene, n) in enumerate(segments):
        motions = [t.motion for t in scene]
        for _ in range(n - (i == 0)):
            state = advance(state, motions)
            out.append(state)
    return out


def _as_segments(segments) -> list[tuple[Scene, int]]:
    """Normalise [(Scene, n), (Scene or motion(s), n), ...]: later segments keep the first's objects."""
    out = []
    for item, n in segments:
        if int(n) < 1:
            raise ValueError(f"segment length must be >= 1, got {n}")
        if out and not isinstance(item, (Scene, Thing)):
            first = out[0][0]
            motions = (item,) if isinstance(item, str) else tuple(item)
            if len(motions) != len(first):
                raise ValueError(f"{len(motions)} motions {motions} for {len(first)} objects")
            item = Scene([Thing(t.colour, t.shape, None, m) for t, m in zip(first, motions)])
        scene = as_scene(item)
        if out:
            names = [(t.colour, t.shape) for t in out[0][0]]
            if [(t.colour, t.shape) for t in scene] != names:
                raise ValueError(
                    f"a story keeps its objects {names} (same order), got {[(t.colour, t.shape) for t in scene]}"
                )
            if any(t.size for t in scene):
                raise ValueError(f"later scenes name objects without a size word, got {scene.caption()!r}")
        out.append((scene, int(n)))
    if not out:
        raise ValueError("a story needs at least one segment")
    return out


def _start_states(scene: Scene, starts, u: Uniforms | None = None) -> tuple:
    """Validated (x, y, size_px) per object from (x, y) or (x, y, size_px) starts. The size follows the
    caption (size word; grows starts small, shrinks big); if it says none, `u` draws one, else it must
    be given."""
    starts = [tuple(int(v) for v in s) for s in starts]
    if len(starts) != len(scene):
        raise ValueError(f"{len(starts)} starts for {len(scene)} objects")
    out = []
    for t, start in zip(scene, starts):
        said = SIZES[t.size] if t.size else {"grows": SMALL, "shrinks": BIG}.get(t.motion)
        if len(start) not in (2, 3):
            raise ValueError(f"a start is (x, y) or (x, y, size_px), got {start}")
        s = start[2] if len(start) == 3 else said if said or u is None else u.pick((SMALL, BIG))
        if s is None:
            raise ValueError(f"the size of the {t.colour} {t.shape} is not said: give (x, y, size_px)")
        if said and s != said or not SMALL <= s <= BIG:
            raise ValueError(f"start size {s} px for {t.phrase()!r}; expected {said or f'{SMALL}..{BIG}'}")
        if min(start[:2]) < 0 or max(start[:2]) + s > FRAME_SIZE:
            raise ValueError(f"start {start} puts the {t.colour} {t.shape} ({s} px) outside the frame")
        out.append((start[0], start[1], s))
    if len(out) == 2 and _box_gap(_box(out[0]), _box(out[1])) <= CLEARANCE:
        raise ValueError(f"starts {out}: boxes must be more than {CLEARANCE} px apart")
    return tuple(out)


def simulate(segments, starts) -> np.ndarray:
    """(T, n_objects, 3) int64 (x, y, size_px) per frame of the story [(Scene, n_frames), ...] (later
    items may be Scenes without size words or just motions for the same objects)."""
    segs = _as_segments(segments)
    return np.array(story_states(_start_states(segs[0][0], starts), segs), dtype=np.int64)


def render(states, things) -> np.ndarray:
    """(T, 64, 64, 3) uint8 frames of (T, n, 3) states; `things` gives each object's colour and shape."""
    states = np.asarray(states, dtype=np.int64)
    if states.ndim != 3 or states.shape[1:] != (len(things), 3):
        raise ValueError(f"states must be (T, {len(things)}, 3) for {len(things)} objects, got {states.shape}")
    x, y, s = states[..., 0], states[..., 1], states[..., 2]
    if len(states) and (
        (s < SMALL).any()
        or (s > BIG).any()
        or min(x.min(), y.min()) < 0
        or max((x + s).max(), (y + s).max()) > FRAME_SIZE
    ):
        raise ValueError(f"states put a box outside the frame or outside {SMALL}..{BIG} px")
    frames = np.zeros((len(states), FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    flat = frames.reshape(-1, 3)
    corners = np.arange(len(states))[:, None] * FRAME_SIZE**2 + y * FRAME_SIZE + x  # (T, n)
    for i, t in enumerate(things):
        sizes = s[:, i]
        distinct = set(sizes.tolist())
        for size in distinct:
            at = corners[:, i] if len(distinct) == 1 else corners[sizes == size, i]
            flat[(at[:, None] + _OFFSETS[(t.shape, size)]).ravel()] = COLOURS[t.colour]
    return frames


def segment_bounds(total: int, segment_lengths=None) -> list[tuple[int, int]]:
    """[(first, stop), ...] frame ranges of the segments (one segment if None)."""
    if segment_lengths is None:
        return [(0, total)] if total else []
    lengths = [int(n) for n in segment_lengths]
    if sum(lengths) != total or min(lengths, default=1) < 1:
        raise ValueError(f"segment_lengths {lengths} must be >= 1 and sum to the {total} frames")
    ends = list(itertools.accumulate(lengths))
    return list(zip([0] + ends[:-1], ends))


def seen_motion(a: tuple, b: tuple) -> str:
    """The motion a viewer sees between states a and b: a size change of GROWTH_SEEN px, else a move of
    the box centre by MOVE_SEEN px (the larger axis), else still."""
    ds = b[2] - a[2]
    if abs(ds) >= GROWTH_SEEN:
        return "grows" if ds > 0 else "shrinks"
    dx2, dy2 = 2 * (b[0] - a[0]) + ds, 2 * (b[1] - a[1]) + ds  # centre shift in half px
    if max(abs(dx2), abs(dy2)) < 2 * MOVE_SEEN:
        return "still"
    if abs(dx2) >= abs(dy2):
        return "right" if dx2 > 0 else "left"
    return "down" if dy2 > 0 else "up"


def state_motions(states, segment_lengths=None) -> list[list[str]]:
    """Per object, per segment: what a viewer sees it do from the segment's first frame to its last
    (a blocked move reads `still`); `describe` reads the same from the frames."""
    states = np.asarray(states).tolist()
    spans = segment_bounds(len(states), segment_lengths)
    return [[seen_motion(states[a][i], states[b - 1][i]) for a, b in spans] for i in range(len(states[0]))]


# ----------------------------------------------------------------------------- clips and stories


class Uniforms:
    """Uniform draws in [0, 1) fetched from a Generator in blocks: numpy's per-call overhead, not the
    arithmetic, is what a clip's random choices would otherwise cost. Every seeded draw of shapes world 2
    (starts, scenes, paraphrases) goes through one, so a seed fixes a whole clip."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.pool = rng, []

    def __call__(self) -> float:
        """The next draw in [0, 1)."""
        if not self.pool:
            self.pool = self.rng.random(32).tolist()
        return self.pool.pop()

    def below(self, n: int) -> int:
        """A uniform integer in [0, n)."""
        return min(int(self() * n), n - 1)

    def pick(self, options):
        """A uniform choice among `options` (a sequence)."""
        return options[self.below(len(options))]


def _sweep(state: tuple, motion: str, steps: int) -> tuple:
    """The box covering every box of `steps` unobstructed steps of `motion` from `state`."""
    box = _box(state)
    for _ in range(steps):
        state = _step(state, motion)
        b = _box(state)
        box = min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3])
    return box


def random_starts(u: Uniforms, scene: Scene, steps: int = ROOM_STEPS) -> tuple:
    """Random starts whose sweeps over `steps` steps of the first motion stay inside the frame and more
    than CLEARANCE px apart: nothing blocks the first `steps` steps. Sizes follow the caption, else
    are drawn."""
    sizes = [
        SIZES[t.size] if t.size else {"grows": SMALL, "shrinks": BIG}.get(t.motion) or u.pick((SMALL, BIG))
        for t in scene
    ]
    while True:
        placed, swept = [], []
        for t, s in zip(scene, sizes):
            x0, y0, x1, y1 = _sweep((0, 0, s), t.motion, steps)
            for _ in range(20):
                x, y = u.below(FRAME_SIZE - x1 + x0 + 1) - x0, u.below(FRAME_SIZE - y1 + y0 + 1) - y0
                box = (x0 + x, y0 + y, x1 + x, y1 + y)
                if all(_box_gap(box, b) > CLEARANCE for b in swept):
                    placed.append((x, y, s))
                    swept.append(box)
                    break
        if len(placed) == len(scene):
            return tuple(placed)


def render_story(segments, seed: int = 0, starts=None) -> tuple[np.ndarray, list[str]]:
    """Frames and captions (first `a ...`, later `the ...`) of a story [(Scene, n_frames), ...]; starts
    (x, y) or (x, y, size_px) per object, random (with room, as in training) from `seed` if None."""
    segs = _as_segments(segments)
    u = Uniforms(np.random.default_rng(seed))
    first = segs[0][0]
    start = random_starts(u, first) if starts is None else _start_states(first, starts, u)
    frames = render(np.array(story_states(start, segs)), first)
    return frames, [scene.caption(first=i == 0) for i, (scene, _) in enumerate(segs)]


def render_clip(scene, num_frames: int = 17, seed: int = 0, starts=None) -> np.ndarray:
    """(num_frames, 64, 64, 3) uint8 frames of one scene (see render_story)."""
    return render_story([(scene, num_frames)], seed, starts)[0]
