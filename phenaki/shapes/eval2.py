"""Measures a model on held-out seeds of shapes world 2 (`world2.py`): the figures of issue 24's targets.

    phenaki eval weights-shapes2 --world shapes2     # a table against the targets, <model>/eval.json

- tokenizer: PSNR of reconstructions, and whether `describe` reads every object (colour, shape, size, motion) back
  the same from the reconstruction as from the original;
- text control, per prompted object: colour, shape, size (where the caption gives one), motion; whether the number
  of objects is right; two-object captions with both objects entirely right; the first frame's colours;
- held-out colour-shape pairs (never in training): their objects' colour and shape;
- stories of 3 scenes with two objects: objects kept (colour and shape) through each scene change, and each
  scene's motions followed;
- speed: seconds for a 17-frame clip at the default settings on this machine.

Like `eval.py` it uses only `sample`, `stream`, `cvivit.encode` / `decode`, `window_frames`, `fps` and `device`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..media import to_uint8_frames
from ..pipeline import Phenaki
from . import eval as world1_eval
from . import world2 as w
from .eval import HELD_OUT, speed_metrics
from .world2_data import random_clip, random_scene, random_story
from .world2_describe import describe, kept, score


def _reading(description: list) -> list:
    """What `describe` says of a clip, as comparable values: each object's colour, shape, size and motions."""
    return [(d.colour, d.shape, d.size, tuple(d.motions)) for d in description]


def tokenizer_metrics(model: Phenaki, clips: int = 200, batch: int = 8) -> dict:
    """`eval.tokenizer_metrics` on world 2's held-out clips (any colour-shape pair), read object by object."""
    return world1_eval.tokenizer_metrics(
        model,
        clips,
        batch,
        clip=lambda i, n: random_clip(HELD_OUT + i, n, held_out=None)[0],
        reading=lambda frames: _reading(describe(frames)),
    )


def first_frame_colours(scene: w.Scene, description: list) -> bool:
    """Whether the clip's first frame shows exactly the prompted colours."""
    seen = {d.colour for d in description if not np.isnan(d.centroids[0, 0])}
    return seen == {t.colour for t in scene}


def _sampled(model: Phenaki, scenes: list, seed: int, settings: dict) -> list:
    videos = model.sample(
        texts=[s.caption() for s in scenes], num_frames=model.window_frames, seed=seed, **settings
    )  # (b, 3, f, h, w)
    return [describe(to_uint8_frames(v)) for v in videos]


@torch.no_grad()
def text_control_metrics(model: Phenaki, samples: int = 100, batch: int = 10, **settings) -> dict:
    """`samples` captions of training's colour-shape pairs, one or two objects equally often."""
    tally = {k: [] for k in ("colour", "shape", "size", "motion", "count", "two_objects_right", "first_frame")}
    for first in range(0, samples, batch):
        scenes = [random_scene(np.random.default_rng((HELD_OUT, i))) for i in range(first, min(first + batch, samples))]
        for scene, description in zip(scenes, _sampled(model, scenes, HELD_OUT + first, settings)):
            result = score(scene, description)
            for o in result.objects:
                tally["colour"].append(o.colour)
                tally["shape"].append(o.shape)
                tally["motion"].append(o.motion)
                if o.size is not None:
                    tally["size"].append(o.size)
            tally["count"].append(result.count)
            if len(scene) == 2:
                tally["two_objects_right"].append(result.right)
            tally["first_frame"].append(first_frame_colours(scene, description))
    means = {k: float(np.mean(v)) if v else float("nan") for k, v in tally.items()}
    return dict(means, samples=samples, two_object_samples=len(tally["two_objects_right"]))


@torch.no_grad()
def held_out_metrics(model: Phenaki, samples: int = 50, batch: int = 10, **settings) -> dict:
    """Captions with at least one held-out colour-shape pair: those objects' colour and shape both right."""
    right = []
    for first in range(0, samples, batch):
        scenes = [
            random_scene(np.random.default_rng((HELD_OUT, 1, i)), held_out=True)
            for i in range(first, min(first + batch, samples))
        ]
        for scene, description in zip(scenes, _sampled(model, scenes, HELD_OUT + 7 + first, settings)):
            for thing, o in zip(scene, score(scene, description).objects):
                if (thing.colour, thing.shape) in w.HELD_OUT:
                    right.append(o.colour and o.shape)
    return dict(colour_and_shape=float(np.mean(right)), samples=samples, objects=len(right))


@torch.no_grad()
def story_scores(model: Phenaki, captions: list[str], seconds: float = 2.0, seed=None, **settings) -> tuple:
    """One story of `captions`, `seconds` each: for each scene change whether every object was kept, and for each
    scene whether every object's motion follows its caption."""
    per_segment = round(seconds * model.fps)
    chunks = model.stream([(c, seconds) for c in captions], seed=seed, **settings)
    frames = np.concatenate([c.frames for c in chunks])
    lengths = [per_segment] * (len(captions) - 1)
    description = describe(frames, segment_lengths=lengths + [len(frames) - sum(lengths)])
    story_kept = [kept(description, i) for i in range(1, len(captions))]
    followed = [all(o.motion for o in score(c, description, i).objects) for i, c in enumerate(captions)]
    return story_kept, followed


@torch.no_grad()
def story_metrics(model: Phenaki, stories: int = 20, seconds: float = 2.0, **settings) -> dict:
    all_kept, all_followed = [], []
    per_segment = round(seconds * model.fps)
    for i in range(stories):
        _, captions, _ = random_story(HELD_OUT + i, 3, per_segment, num_objects=2)
        story_kept, followed = story_scores(model, captions, seconds, seed=HELD_OUT + i, **settings)
        all_kept += story_kept
        all_followed += followed
    return dict(object_kept=float(np.mean(all_kept)), motion_followed=float(np.mean(all_followed)), stories=stories)


def evaluate(model: Phenaki, clips: int = 200, samples: int = 100, stories: int = 20, held_out: int = 50) -> dict:
    size = (w.FRAME_SIZE, w.FRAME_SIZE)
    if tuple(model.frame_size) != size or model.fps != w.FPS:
        raise ValueError(
            f"these measures need a shapes-world model ({size[0]}x{size[1]} frames at {w.FPS} fps); this one "
            f"makes {model.frame_size[0]}x{model.frame_size[1]} at {model.fps} fps"
        )
    return dict(
        tokenizer=tokenizer_metrics(model, clips),
        text_control=text_control_metrics(model, samples),
        held_out=held_out_metrics(model, held_out),
        stories=story_metrics(model, stories),
        speed=speed_metrics(model),
    )
