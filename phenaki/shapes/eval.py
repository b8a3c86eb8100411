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

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ..machine import device_name
from ..media import psnr, to_uint8_frames, to_video_tensor
from ..pipeline import Phenaki
from ..precision import PRECISIONS, bf16_autocast, precision, sampling_precision
from ..serialization import read_training_record
from . import world
from .card import write_card
from .targets import TARGETS, TARGETS2, report

HELD_OUT = 1_000_000_000  # training seeds are far below this


@torch.no_grad()
def tokenizer_metrics(model: Phenaki, clips: int = 200, batch: int = 8) -> dict:
    psnrs, same = [], []
    for first in range(0, clips, batch):
        originals = [
            world.random_clip(HELD_OUT + i, model.window_frames)[0] for i in range(first, min(first + batch, clips))
        ]
        video = torch.stack([to_video_tensor(f) for f in originals]).to(model.device)
        ids = model.cvivit.encode(video)
        with bf16_autocast(model.device):  # the decoder in the sampling precision, as Phenaki.decode_ids runs it
            recons = model.cvivit.decode(ids).float()
        for original, recon in zip(originals, recons):
            recon = to_uint8_frames(recon)
            psnrs.append(psnr(original, recon))
            a, b = world.describe(original), world.describe(recon)
            same.append((a.colour, a.shape, a.motions) == (b.colour, b.shape, b.motions))
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


def trained_world(folder: str) -> str:
    """The shapes world a model folder's transformer was trained on, from its training record (else shapes)."""
    record = read_training_record(folder) if Path(folder).is_dir() else None
    while record is not None and record.get("stage") != "transformer":
        record = record.get("model") or record.get("tokenizer")
    return (record or {}).get("args", {}).get("world") or "shapes"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="phenaki eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a model folder or Hub repo id")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--stories", type=int, default=20)
    parser.add_argument("--out", help="where to write the JSON results (default: <model>/eval.json if a folder)")
    parser.add_argument("--card", action="store_true", help="also write the folder's model card (README.md)")
    parser.add_argument("--card-notes", help="a Markdown file for the card's 'What to expect' section")
    parser.add_argument(
        "--world",
        choices=["shapes", "shapes2"],
        help="the world to measure on (eval.py or eval2.py); default: the one the model was trained on "
        "(its training.json), else shapes",
    )
    parser.add_argument("--held-out", type=int, default=50, help="shapes2: clips prompted with held-out pairs")
    parser.add_argument(
        "--precision", choices=PRECISIONS, help="sample in this precision (default: what this machine uses)"
    )
    parser.add_argument(
        "--compare", help="with --card: the eval JSON of the same model in another precision, shown beside"
    )
    args = parser.parse_args(argv)
    if args.card and not Path(args.model).is_dir():
        parser.error("--card writes into a model folder; give a folder, not a Hub repo id")
    for name in ("card_notes", "compare"):
        if getattr(args, name) and not Path(getattr(args, name)).is_file():
            parser.error(f"--{name.replace('_', '-')}: no file {getattr(args, name)}")
    model = Phenaki.from_pretrained(args.model)
    world = args.world or trained_world(args.model)
    try:
        compare = json.loads(Path(args.compare).read_text()) if args.compare else None
    except ValueError as error:
        parser.error(f"--compare {args.compare}: not JSON ({error})")
    targets = TARGETS2 if world == "shapes2" else TARGETS
    if compare is not None:
        missing = [f"{g}.{k}" for g, k, _ in targets if k not in compare.get(g, {})]
        missing += [] if "precision" in compare else ["precision (an eval.json of phenaki eval --precision)"]
        if missing:
            lacks = ", ".join(missing)
            parser.error(f"--compare {args.compare}: not the results of this world's eval; it lacks {lacks}")
    with precision(args.precision) if args.precision else contextlib.nullcontext():
        if world == "shapes2":
            from . import eval2  # eval2 imports this module's HELD_OUT and speed_metrics

            results = eval2.evaluate(model, args.clips, args.samples, args.stories, args.held_out)
        else:
            results = evaluate(model, args.clips, args.samples, args.stories)
        results["precision"] = sampling_precision(model.device)
    print(report(results, targets, compare))
    out = Path(args.out) if args.out else Path(args.model) / "eval.json" if Path(args.model).is_dir() else None
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    if args.card:
        notes = Path(args.card_notes).read_text(encoding="utf-8") if args.card_notes else None
        print(f"wrote {write_card(args.model, model, results, notes, world, compare)}")


if __name__ == "__main__":
    main()
