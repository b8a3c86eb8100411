"""Random data of shapes world 2, deterministic for a seed: scenes, clips, stories whose later scenes
give every object a new motion with room to show, and the trainer's examples (`make_example`).

Training data never contains the colour-shape pairs in HELD_OUT (`held_out=False`, the default of
every generator here); `held_out=True` draws scenes with at least one of them, for the evaluation.
"""

from __future__ import annotations

import itertools

import numpy as np

from .world2 import (
    BIG,
    COLOURS,
    HELD_OUT,
    MOTIONS,
    SHAPES,
    SIZES,
    SIZING,
    SMALL,
    SPEED,
    VELOCITY,
    Scene,
    Thing,
    Uniforms,
    advance,
    random_starts,
    render,
    seen_motion,
    story_states,
)
from .world2_captions import draw_paraphrase

_PAIRS = tuple((c, s) for c in COLOURS for s in SHAPES)
_TRAINING_PAIRS = tuple(p for p in _PAIRS if p not in HELD_OUT)


def _random_scene(u: Uniforms, held_out=False, num_objects=None) -> Scene:
    if held_out not in (False, True, None):
        raise ValueError(
            f"held_out must be False (no held-out pairs), True (at least one) or None (any), got {held_out!r}"
        )
    n = 1 + u.below(2) if num_objects is None else num_objects
    if n not in (1, 2):
        raise ValueError(f"num_objects must be 1, 2 or None (either), got {num_objects!r}")
    pools = (
        [_PAIRS] * n if held_out is None else [_TRAINING_PAIRS] * n if not held_out else [HELD_OUT] + [_PAIRS] * (n - 1)
    )
    pairs = []
    for pool in pools:
        pairs.append(u.pick([p for p in pool if all(p[0] != q[0] for q in pairs)]))
    if held_out and n == 2 and u() < 0.5:
        pairs.reverse()
    things = []
    for colour, shape in pairs:
        motion = u.pick(MOTIONS)
        size = u.pick(tuple(SIZES)) if u() < 0.5 and motion not in SIZING else None
        things.append(Thing(colour, shape, size, motion))
    return Scene(things)


def random_scene(rng: np.random.Generator, held_out: bool | None = False, num_objects=None) -> Scene:
    """A random scene of 1 or 2 objects (equally often) with distinct colours, uniform motions and a
    size word half the time it is allowed. held_out: False excludes HELD_OUT pairs (training), True
    makes at least one object a held-out pair, None allows any pair."""
    return _random_scene(Uniforms(rng), held_out, num_objects)


def _shows(motion: str, a: tuple, b: tuple, steps: int) -> bool:
    """Whether states a -> b (`steps` frames apart) show `motion` clearly: a move of at least
    min(8, its free travel) px, or a size change that completes (ending at BIG or SMALL)."""
    if seen_motion(a, b) != motion:
        return False
    if motion in VELOCITY:
        dx, dy = VELOCITY[motion]
        return ((b[0] - a[0]) * dx + (b[1] - a[1]) * dy) // SPEED >= min(8, SPEED * steps)
    return motion == "still" or b[2] == (BIG if motion == "grows" else SMALL)


def _next_scene(u: Uniforms, scene: Scene, state: tuple, n: int) -> tuple[Scene, list]:
    """A later scene of n frames from `state`: each object gets a new motion, at random among the
    combinations that all show (see _shows); all `still` if none does. Returns it and its states."""
    options = [[m for m in MOTIONS if m != t.motion] for t in scene]
    guesses = [tuple(u.pick(o) for o in options) for _ in range(8)]
    for motions in itertools.chain(guesses, itertools.product(*options)):
        states = [state]
        for _ in range(n):
            states.append(advance(states[-1], motions))
        if all(_shows(m, states[1][i], states[-1][i], n - 1) for i, m in enumerate(motions)):
            break
    else:
        motions, states = ("still",) * len(scene), [state] * (n + 1)
    return Scene([Thing(t.colour, t.shape, None, m) for t, m in zip(scene, motions)]), states[1:]


def random_clip(seed: int, num_frames: int = 17, paraphrase_prob: float = 0.0, held_out=False):
    """(frames, caption, Scene), deterministic for `seed`; caption canonical unless paraphrased (the
    frames for a seed do not depend on paraphrase_prob)."""
    u = Uniforms(np.random.default_rng(seed))
    scene = _random_scene(u, held_out)
    frames = render(np.array(story_states(random_starts(u, scene), [(scene, num_frames)])), scene)
    caption = draw_paraphrase(scene, u) if u() < paraphrase_prob else scene.caption()
    return frames, caption, scene


def random_story(seed: int, num_segments: int = 3, frames_per_segment: int = 16, num_objects=None, held_out=False):
    """(frames, captions, scenes): the same objects through `num_segments` scenes; every later scene
    gives each object a new motion that has room to show."""
    if num_segments < 1 or frames_per_segment < 1:
        raise ValueError(
            f"need num_segments >= 1 and frames_per_segment >= 1, got {num_segments}, {frames_per_segment}"
        )
    u = Uniforms(np.random.default_rng(seed))
    scenes = [_random_scene(u, held_out, num_objects)]
    states = story_states(random_starts(u, scenes[0]), [(scenes[0], frames_per_segment)])
    for _ in range(num_segments - 1):
        scene, more = _next_scene(u, scenes[-1], states[-1], frames_per_segment)
        scenes.append(scene)
        states += more
    frames = render(np.array(states), scenes[0])
    return frames, [s.caption(first=i == 0) for i, s in enumerate(scenes)], scenes


def make_example(
    seed: int,
    num_frames: int = 17,
    prime_frames: int = 5,
    change_prob: float = 0.3,
    paraphrase_prob: float = 0.1,
    prime_latent_frames: int = 3,
    held_out=False,
) -> dict:
    """A training example, deterministic for `seed`: dict(frames=(T, 64, 64, 3) uint8, caption, prime).
    With probability change_prob the motions change after `prime_frames` frames and the caption is the
    story form of the new scene (prime = prime_latent_frames given); else a random clip (prime = -1)
    whose canonical caption takes the `the` form 30% of the time."""
    if not 1 <= prime_frames < num_frames:
        raise ValueError(f"need 1 <= prime_frames < num_frames, got {prime_frames}, {num_frames}")
    u = Uniforms(np.random.default_rng((seed, 1)))
    if u() < change_prob:
        first = _random_scene(u, held_out)
        states = story_states(random_starts(u, first), [(first, prime_frames)])
        second, more = _next_scene(u, first, states[-1], num_frames - prime_frames)
        frames = render(np.array(states + more), first)
        return {"frames": frames, "caption": second.caption(first=False), "prime": prime_latent_frames}
    frames, caption, scene = random_clip(seed, num_frames, paraphrase_prob, held_out)
    if u() < 0.3 and caption == scene.caption():
        caption = scene.caption(first=False)
    return {"frames": frames, "caption": caption, "prime": -1}
