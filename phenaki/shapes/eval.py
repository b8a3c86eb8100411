"""Measures a model on held-out shapes-world seeds: the figures of the default model's card.

    phenaki eval weights            # prints a table, writes weights/eval.json
    phenaki eval weights --card     # and writes the model card, weights/README.md (phenaki/shapes/card.py)

- tokenizer: PSNR of reconstructions, and whether `describe` reads the same colour, shape and motion back;
- text control: colour, shape and motion of clips sampled from random captions;
- stories: 3-segment timelines, object kept across scene changes, each segment's motion as prompted;
- speed: seconds for a 17-frame clip at the default settings on this machine.

The measures use only this much of the model: `sample`, `stream`, `cvivit.encode` / `decode`, `window_frames`,
`frame_size`, `fps` and `device`; tests/reference_model.py answers them with the world's ground truth, whose scores
are known (tests/test_eval.py).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..machine import device_name
from ..media import psnr, to_uint8_frames, to_video_tensor
from ..pipeline import Phenaki
from ..precision import bf16_autocast
from . import world

HELD_OUT = 1_000_000_000  # training seeds are far below this


def _clip(i: int, num_frames: int) -> np.ndarray:
    return world.random_clip(HELD_OUT + i, num_frames)[0]


def _reading(frames: np.ndarray) -> tuple:
    d = world.describe(frames)
    return d.colour, d.shape, d.motions


@torch.no_grad()
def tokenizer_metrics(model: Phenaki, clips: int = 200, batch: int = 8, clip=_clip, reading=_reading) -> dict:
    """PSNR of held-out clips through the tokenizer and back (the decoder in the sampling precision, as
    Phenaki.decode_ids runs it), and whether `reading(frames)` says the same of each reconstruction as of its clip;
    `clip(i, num_frames)` is held-out clip i (this world's by default; eval2 passes world 2's)."""
    psnrs, same = [], []
    for first in range(0, clips, batch):
        originals = [clip(i, model.window_frames) for i in range(first, min(first + batch, clips))]
        video = torch.stack([to_video_tensor(f) for f in originals]).to(model.device)
        ids = model.cvivit.encode(video)
        with bf16_autocast(model.device):
            recons = model.cvivit.decode(ids).float()
        for original, recon in zip(originals, recons):
            recon = to_uint8_frames(recon)
            psnrs.append(psnr(original, recon))
            same.append(reading(original) == reading(recon))
    return dict(psnr_db=float(np.mean(psnrs)), describe_agreement=float(np.mean(same)), clips=clips)


@torch.no_grad()
def text_control_metrics(model: Phenaki, samples: int = 100, batch: int = 10, **settings) -> dict:
    colour, shape, motion = [], [], []
    for first in range(0, samples, batch):
        scenes = [
            world.random_scene(np.random.default_rng((HELD_OUT, i))) for i in range(first, min(first + batch, samples))
        ]
        videos = model.sample(
            texts=[s.caption() for s in scenes], num_frames=model.window_frames, seed=HELD_OUT + first, **settings
        )
        for scene, video in zip(scenes, videos):
            frames = to_uint8_frames(video)
            seen = world.describe(frames)
            colour.append(seen.colour == scene.colour)
            shape.append(seen.shape == scene.shape)
            motion.append(world.motion_matches(scene.motion, seen.motions[0], frames))
    return dict(
        colour=float(np.mean(colour)), shape=float(np.mean(shape)), motion=float(np.mean(motion)), samples=samples
    )


@torch.no_grad()
def story_scores(
    model: Phenaki, captions: list[str], seconds: float = 2.0, seed: int | None = None, **settings
) -> tuple[list[bool], list[bool]]:
    """One story of `captions`, `seconds` each: for each scene change whether the object was kept (colour and shape
    as read before it), and for each segment whether its motion follows its caption. The frames are split where the
    timeline's segments begin, each segment's motion read from its own first to its last frame."""
    per_segment = round(seconds * model.fps)
    chunks = model.stream([(c, seconds) for c in captions], seed=seed, **settings)
    frames = np.concatenate([c.frames for c in chunks])
    segments = np.split(frames, np.cumsum([per_segment] * (len(captions) - 1)))
    seen = [world.describe(s) for s in segments]
    kept = [after.colour == before.colour and after.shape == before.shape for before, after in zip(seen, seen[1:])]
    followed = [
        world.motion_matches(world.parse_caption(caption)[2], description.motions[0], segment)
        for caption, segment, description in zip(captions, segments, seen)
    ]
    return kept, followed


@torch.no_grad()
def story_metrics(model: Phenaki, stories: int = 20, seconds: float = 2.0, **settings) -> dict:
    kept, followed = [], []
    per_segment = round(seconds * model.fps)
    for i in range(stories):
        _, captions, _ = world.random_story(HELD_OUT + i, num_segments=3, frames_per_segment=per_segment)
        story_kept, story_followed = story_scores(model, captions, seconds, seed=HELD_OUT + i, **settings)
        kept += story_kept
        followed += story_followed
    return dict(object_kept=float(np.mean(kept)), motion_followed=float(np.mean(followed)), stories=stories)


def speed_metrics(model: Phenaki, runs: int = 3) -> dict:
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        model.sample(texts="a red circle moves left", num_frames=17, seed=i)
        times.append(time.perf_counter() - start)
    return dict(
        seconds_per_17_frame_clip=statistics.median(times[1:]),
        runs=runs,
        threads=torch.get_num_threads(),
        machine=device_name(model.device),
    )


def evaluate(model: Phenaki, clips: int = 200, samples: int = 100, stories: int = 20) -> dict:
    size = (world.FRAME_SIZE, world.FRAME_SIZE)
    if model.frame_size != size or model.fps != world.FPS:
        raise ValueError(
            f"these measures need a shapes-world model ({size[0]}x{size[1]} frames at {world.FPS} "
            f"fps); this one makes {model.frame_size[0]}x{model.frame_size[1]} at {model.fps} fps"
        )
    return dict(
        tokenizer=tokenizer_metrics(model, clips),
        text_control=text_control_metrics(model, samples),
        stories=story_metrics(model, stories),
        speed=speed_metrics(model),
    )
