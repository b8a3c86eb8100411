"""Captions of shapes world 2 read and varied: `parse_caption`/`parse_scene` read a canonical caption
(the grammar `Thing.phrase` and `Scene.caption` in `world2.py` write), and `paraphrase` writes a
non-canonical one of the same meaning, for training-time variety only; `vocabulary` lists every word a
training caption can contain.
"""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple

import numpy as np

from .world2 import COLOURS, DIRECTIONS, MOTIONS, SHAPES, SIZES, SIZING, VELOCITY, Scene, Thing, Uniforms, as_scene


class Phrase(NamedTuple):
    """One object phrase of a caption, as `parse_caption` reads it."""

    colour: str
    shape: str
    size: str | None
    motion: str
    article: str


_PHRASE = (
    rf"(a|the) (?:({'|'.join(SIZES)}) )?({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) "
    rf"(?:moves ({'|'.join(DIRECTIONS)})|stays (still)|(grows|shrinks))"
)
_CAPTION_RE = re.compile(rf"^{_PHRASE}(?: and {_PHRASE})?\.?$")


def parse_caption(text: str) -> list[Phrase]:
    """The object phrases of a canonical caption (case, extra spaces and a final '.' are tolerated)."""
    m = _CAPTION_RE.match(" ".join(str(text).lower().split()))
    if m is None:
        raise ValueError(f"caption does not fit the shapes-world grammar: {text!r}")
    g = m.groups()
    phrases = [Phrase(g[i + 2], g[i + 3], g[i + 1], g[i + 4] or g[i + 5] or g[i + 6], g[i]) for i in (0, 7) if g[i]]
    problem = None
    if len({p.article for p in phrases}) > 1:
        problem = "both objects take the same article, 'a' or 'the'"
    elif any(p.size and (p.article == "the" or p.motion in SIZING) for p in phrases):
        problem = "a size word goes only after 'a' and only with 'moves ...' or 'stays still'"
    elif len({p.colour for p in phrases}) < len(phrases):
        problem = "two objects never share a colour"
    if problem:
        raise ValueError(f"caption does not fit the shapes-world grammar: {text!r} ({problem})")
    return phrases


def parse_scene(text: str) -> Scene:
    """The Scene a canonical caption describes."""
    return Scene([Thing(p.colour, p.shape, p.size, p.motion) for p in parse_caption(text)])


# Training-time variety only; the canonical captions stay the default everywhere.
PARAPHRASES = {
    "move": (
        "a {noun} going {motion}",
        "{noun} moving {motion}",
        "a {noun} heading {motion}",
        "a {noun} travels {motion}",
        "a {noun} sliding {motion}",
    ),
    "still": (
        "a {noun} not moving",
        "{noun} standing still",
        "a motionless {noun}",
        "a {noun} that stays put",
        "a still {noun}",
    ),
    "grows": (
        "a {noun} growing",
        "a {noun} getting bigger",
        "a {noun} that grows",
        "a small {noun} becoming big",
        "{noun} expanding",
    ),
    "shrinks": (
        "a {noun} shrinking",
        "a {noun} getting smaller",
        "a {noun} that shrinks",
        "a big {noun} becoming small",
        "{noun} contracting",
    ),
}
JOINERS = ("{} and {}", "{}, and {}", "{} while {}")


def draw_paraphrase(scene: Scene, u: Uniforms) -> str:
    """`paraphrase` drawing from `u`: the seeded generators of `world2_data.py` share one Uniforms per clip."""
    parts = []
    for t in scene:
        noun = " ".join(w for w in (t.size, t.colour, t.shape) if w)
        kind = "move" if t.motion in VELOCITY else t.motion
        parts.append(u.pick(PARAPHRASES[kind]).format(noun=noun, motion=t.motion))
    return parts[0] if len(parts) == 1 else u.pick(JOINERS).format(*parts)


def paraphrase(scene: Scene, rng: np.random.Generator) -> str:
    """A non-canonical caption with the same meaning as `scene.caption()`."""
    return draw_paraphrase(as_scene(scene), Uniforms(rng))


def vocabulary() -> list[str]:
    """Every word (run of letters) that a training caption can contain, sorted."""
    texts = [
        *COLOURS,
        *SHAPES,
        *SIZES,
        *MOTIONS,
        "a the and moves stays",
        *JOINERS,
        *itertools.chain(*PARAPHRASES.values()),
    ]
    return sorted(set(re.findall(r"[a-z]+", re.sub(r"\{\w*\}", " ", " ".join(texts)))))
