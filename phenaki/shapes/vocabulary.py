"""The words of a shapes world's training captions, computed from its caption grammar, every caption of it.

`world_vocabulary("shapes")` (world 1, `world.py`) or `"shapes2"` (`world2.py`): the words grouped for display
(colours, shapes, sizes, motions, other words), as the trainer records them in a model's config
(`phenaki/vocabulary.py`). Nothing is sampled: world 1 has 7 x 3 x 5 objects-and-motions, each captioned
canonically ('a ...', 'the ...') and by each paraphrase template; world 2 has 476 objects-with-motions (a size word
only with a move or stays still), each alone and each in both places of a two-object scene, with every choice
`draw_paraphrase` can make walked through (templates, joiners). A two-object caption's words are its two phrases'
words and the joiner's, so every word of every caption is among these. `tests/test_vocabulary.py` also checks
captions drawn by the training data's own generators against it.

`python -m phenaki.shapes.vocabulary FOLDER --world shapes` records it in a saved model's config.json (for models
trained before vocabularies were recorded; the bundled `weights/` and `weights-shapes2/`).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from ..serialization import read_config, write_config
from ..vocabulary import check_vocabulary, words
from . import world, world2, world2_captions

WORLDS = ("shapes", "shapes2")


class _Scripted:
    """Stands in for `world2.Uniforms` in `draw_paraphrase` (its only use there is `pick`): takes the choices
    `path` gives, then the first option, and records how many options each pick had."""

    def __init__(self, path: list[int]):
        self.path, self.counts = path, []

    def pick(self, options):
        i = len(self.counts)
        self.counts.append(len(options))
        return options[self.path[i] if i < len(self.path) else 0]


def _every_paraphrase(scene: world2.Scene) -> list[str]:
    """Every caption `draw_paraphrase` can write for `scene`: each sequence of choices once (depth first)."""
    texts, paths = [], [[]]
    while paths:
        path = paths.pop()
        chooser = _Scripted(path)
        texts.append(world2_captions.draw_paraphrase(scene, chooser))
        for j in range(len(path), len(chooser.counts)):  # the choices this run took by default
            paths += [path + [0] * (j - len(path)) + [k] for k in range(1, chooser.counts[j])]
    return texts


def _world1_captions() -> list[str]:
    texts = []
    for colour in world.COLOURS:
        for shape in world.SHAPES:
            for motion in world.MOTIONS:
                scene = world.Scene(colour, shape, motion)
                templates = world.PARAPHRASES_STILL if motion == "still" else world.PARAPHRASES_MOVING
                texts += [scene.caption(True), scene.caption(False)]  # `paraphrase` picks one of the templates:
                texts += [t.format(colour=colour, shape=shape, motion=motion) for t in templates]
    return texts


def _world2_things() -> list[world2.Thing]:
    things = []
    for colour in world2.COLOURS:
        for shape in world2.SHAPES:
            for motion in world2.MOTIONS:
                sizes = [None] if motion in world2.SIZING else [None, *world2.SIZES]
                things += [world2.Thing(colour, shape, size, motion) for size in sizes]
    return things


def _world2_captions() -> list[str]:
    things = _world2_things()
    colours = list(world2.COLOURS)
    scenes = []
    for thing in things:  # alone, first and second of two (beside an object of the next colour)
        other = world2.Thing(colours[(colours.index(thing.colour) + 1) % len(colours)], "circle", None, "still")
        scenes += [world2.Scene(thing), world2.Scene(thing, other), world2.Scene(other, thing)]
    texts = []
    for scene in scenes:
        texts += [scene.caption(True), scene.caption(False), *_every_paraphrase(scene)]
    return texts


@functools.cache
def _vocabulary(name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    module = world if name == "shapes" else world2
    found = {w for text in (_world1_captions() if name == "shapes" else _world2_captions()) for w in words(text)}
    groups = {"colours": list(module.COLOURS), "shapes": list(module.SHAPES)}
    if name == "shapes2":
        groups["sizes"] = list(world2.SIZES)
    groups["motions"] = list(module.MOTIONS)
    grouped = {w for members in groups.values() for w in members}
    groups["other words"] = sorted(found - grouped)
    return tuple((group, tuple(w for w in members if w in found)) for group, members in groups.items())


def world_vocabulary(name: str = "shapes") -> dict[str, list[str]]:
    """The words every training caption of shapes world `name` ("shapes" or "shapes2") can contain, grouped."""
    if name not in WORLDS:
        raise ValueError(f"unknown shapes world {name!r}; expected one of {list(WORLDS)}")
    return {group: list(members) for group, members in _vocabulary(name)}


def write_vocabulary(folder: str | Path, name: str) -> dict[str, list[str]]:
    """Records shapes world `name`'s vocabulary in the model folder's config.json (the rest kept as it is)."""
    config = read_config(folder)
    config["vocabulary"] = check_vocabulary(world_vocabulary(name))
    write_config(config, Path(folder))
    return config["vocabulary"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m phenaki.shapes.vocabulary",
        description="Record the words of a shapes world's training captions in a saved model's config.json.",
    )
    parser.add_argument("folder", help="a saved model folder (config.json + model.safetensors)")
    parser.add_argument("--world", choices=WORLDS, required=True, help="the world the model was trained on")
    args = parser.parse_args(argv)
    vocabulary = write_vocabulary(args.folder, args.world)
    print(f"{args.folder}: {sum(map(len, vocabulary.values()))} words recorded")


if __name__ == "__main__":
    main()
