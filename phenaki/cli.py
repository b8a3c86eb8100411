"""The `phenaki` command (also `python -m phenaki`): videos from prompts, and the trainer, eval and demo.

    phenaki generate "a red circle moves right" "the red circle moves up" --out story.mp4   # 2 scenes of 2 s
    phenaki generate --timeline examples/01_red_circle.json --out story.gif
    phenaki train tokenizer --preset shapes --steps 2500 --out runs/tokenizer    # phenaki.training.trainer
    phenaki eval weights                                                        # phenaki.shapes.eval_command
    phenaki demo                                                                # the Gradio demo ("phenaki[demo]")

Exit status: 0 done; 1 an input or the model is unusable (one line on stderr says what, and how to fix it);
2 a usage error found by argparse; 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import secrets
import sys
from pathlib import Path

from .media import DISPLAY_SIZE
from .sampling import SamplingSettings

SUFFIXES = (".mp4", ".gif")
DEFAULT_SECONDS = 2.0  # each prompt's scene, as a new scene in the demo
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes up to 2**64 - 1; the demo allows this range
# the bundled default model, in a source checkout (or an editable install): <repository>/weights next to phenaki/
BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "weights"
_DEFAULTS = SamplingSettings()  # the library's defaults, so that they are written down once


class UsageError(Exception):
    """An input the command cannot use; its message is the one line the user sees."""


# ---- forwarded commands: their own parsers take the rest of the arguments ----------------------------------


def _train(argv: list[str]) -> None:
    from .training.trainer import main

    main(argv)


def _eval(argv: list[str]) -> None:
    from .shapes.eval_command import main

    main(argv)


def _demo(argv: list[str]) -> None:
    try:  # imported here: the demo needs Gradio, which the library does not
        from .demo.app import main
    except ModuleNotFoundError as error:
        fix = (
            "this installation of phenaki is incomplete: reinstall it"
            if (error.name or "").startswith("phenaki")
            else 'pip install "phenaki[demo]" installs what the demo needs'
        )
        raise UsageError(f"the demo cannot start: there is no module {error.name!r} ({fix})") from None
    main(argv)


FORWARDED = {
    "train": (_train, "train a tokenizer or transformer (phenaki train --help)"),
    "eval": (_eval, "measure a model on the shapes world, write its card (phenaki eval --help)"),
    "demo": (_demo, 'start the Gradio demo (needs pip install "phenaki[demo]")'),
}


# ---- the parser --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phenaki", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(commands)
    for name, (_, help_text) in FORWARDED.items():  # listed for --help; main() hands them their arguments
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _add_generate(commands) -> None:
    gen = commands.add_parser(
        "generate",
        help="make a video (MP4 or GIF) from prompts, one scene each",
        description="Makes one video from a story: each prompt is a scene of --seconds, or the scenes of a "
        "--timeline file. Prints the seed (drawn at random unless given) so that the video can be made again.",
    )
    gen.add_argument(
        "prompts",
        nargs="*",
        metavar="PROMPT",
        help="a scene's description, e.g. 'a red circle moves left'; several prompts are scenes of one story, in order",
    )
    gen.add_argument(
        "--timeline",
        metavar="FILE",
        help="a JSON story instead of prompts, as in examples/: "
        '{"timeline": [["a red circle moves right", 2], ...], "seed": 0}, or a list of '
        '{"prompt": ..., "seconds": ...}; a seed in the file is used unless --seed is given',
    )
    gen.add_argument("--seconds", metavar="S", help=f"each prompt's length in seconds (default {DEFAULT_SECONDS})")
    gen.add_argument("--out", required=True, metavar="FILE", help="the video to write: FILE.mp4 or FILE.gif")
    gen.add_argument(
        "--model",
        metavar="DIR_OR_REPO",
        help="a model folder or Hub repo id (default: the bundled weights/ of a source checkout)",
    )
    gen.add_argument("--revision", metavar="R", help="with a Hub repo id: a branch, tag or commit")
    gen.add_argument(
        "--start",
        metavar="FILE",
        help="a picture (the story's first frame; the first scene continues it) or a video whose last frames the "
        "story continues; centre-cropped and resized to the model's frames",
    )
    gen.add_argument(
        "--seed", type=int, metavar="N", help="makes the same video again (default: a random one, printed)"
    )
    _add_sampling_options(gen)
    gen.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="integer upscaling of the frames (default: to about "
        f"{DISPLAY_SIZE} pixels, as the demo shows them; 1: the model's own pixels)",
    )
    gen.add_argument("--device", metavar="D", help="cpu, cuda, cuda:1, ... (default: the GPU when there is one)")


def _add_sampling_options(gen) -> None:
    """--steps, --temperature, ... : one option per `SamplingSettings` field, with its default and help from there."""
    for field in dataclasses.fields(SamplingSettings):
        kind = int if field.metadata["integer"] else float
        metavar = field.name.split("_")[0][0].upper() if kind is float else "N"
        gen.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=kind,
            metavar=metavar,
            default=getattr(_DEFAULTS, field.name),
            help=f"{field.metadata['help']} (default %(default)s)",
        )


# ---- generate ----------------------------------------------------------------------------------------------


def _output(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(
            f"--out {text}: unknown video type {path.suffix or '(no suffix)'!r}; use one of {', '.join(SUFFIXES)}"
        )
    return path


def _seconds(text: str | None) -> float:
    if text is None:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        raise UsageError(f"--seconds must be a number of seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"--seconds must be more than 0, got {text}")
    return seconds


def _story(args) -> tuple[list[tuple[str, float]], int | None]:
    """The (prompt, seconds) scenes and the seed of a timeline file, if any, from the prompts or the file."""
    if args.timeline is not None:
        if args.prompts:
            raise UsageError("give prompts or --timeline FILE, not both (the file holds the story's prompts)")
        if args.seconds is not None:
            raise UsageError("--seconds is for prompts; a --timeline file gives each scene's seconds")
        return _read_timeline(Path(args.timeline))
    if not args.prompts:
        raise UsageError('give one or more prompts (one per scene), e.g. "a red circle moves left", or --timeline FILE')
    seconds = _seconds(args.seconds)
    timeline = []
    for number, prompt in enumerate(args.prompts, start=1):
        prompt = " ".join(prompt.split())
        if not prompt:
            raise UsageError(f'prompt {number} is empty: describe the scene, e.g. "a red circle moves left"')
        timeline.append((prompt, seconds))
    return timeline, None


def _read_timeline(path: Path) -> tuple[list[tuple[str, float]], int | None]:
    """A story file in the demo's format (examples/*.json), checked as the demo checks it, without its limits on
    length (they protect a shared server, not this machine)."""
    from .demo.stories import InputError, parse_timeline

    if not path.is_file():
        raise UsageError(f"--timeline: there is no file {path} (a JSON story, like examples/01_red_circle.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"--timeline: {path} is not valid JSON ({error})") from None
    rows, seed = (
        (data.get("timeline"), data.get("seed")) if isinstance(data, dict) and "timeline" in data else (data, None)
    )
    try:
        timeline = parse_timeline(rows, max_seconds=math.inf, max_scenes=sys.maxsize)
    except InputError as error:
        raise UsageError(f"--timeline {path}: {error}") from None
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed <= MAX_SEED):
        raise UsageError(f"--timeline {path}: the seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return timeline, None if seed == -1 else seed  # -1: a random seed, as in the demo


def _model_name(args) -> str:
    if args.model:
        return args.model
    if (BUNDLED_MODEL / "config.json").is_file():
        return str(BUNDLED_MODEL)
    raise UsageError(
        "--model is needed: give a model folder or a Hub repo id (there is no bundled weights/ "
        "folder next to this installation)"
    )


def _device(name: str | None):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: there is no CUDA GPU here; use --device cpu")
    return device


def _seed(args, file_seed: int | None) -> int:
    seed = args.seed if args.seed is not None else file_seed
    if seed is None:
        return secrets.randbelow(2**31)  # short enough to type back in
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be from 0 to {MAX_SEED}, got {seed}")
    return seed


def _load(name: str, args, device, timeline, settings: SamplingSettings):
    """The model, with the story and settings checked against it: a ValueError here is about the inputs."""
    from .pipeline import Phenaki

    try:
        model = Phenaki.from_pretrained(name, revision=args.revision, device=device)
        frames = model.timeline_frames(timeline)
        settings.validate(model.has_critic)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return model, frames


def _settings(args) -> SamplingSettings:
    """The sampling settings, checked before the model loads (whether it has a critic is checked after)."""
    settings = SamplingSettings(**{name: getattr(args, name) for name in SamplingSettings.names()})
    try:
        settings.validate(has_critic=True)
    except ValueError as error:
        raise UsageError(str(error).replace("_", "-")) from None  # named as the options are: guidance-scale, ...
    return settings


def _start(path: str | None, model):
    """The story's start read from --start for `model` (`phenaki.start.read_start`); None without it."""
    if path is None:
        return None
    from .start import read_start

    try:
        return read_start(path, model)
    except ValueError as error:
        raise UsageError(f"--start: {error}") from None


def _frames(model, timeline, total: int, settings: SamplingSettings, seed: int, start=None):
    """The story's frames, (n, H, W, 3) uint8, window after window under a progress bar."""
    import numpy as np
    from tqdm import tqdm

    chunks = []
    stream = model.stream(timeline, settings=settings, seed=seed, start=start)
    with tqdm(total=total, unit="frame", desc="generating", file=sys.stderr) as bar:
        for chunk in stream:
            chunks.append(chunk.frames)
            bar.set_postfix_str(f"scene {chunk.segment + 1}/{len(timeline)}")
            bar.update(len(chunk.frames))
    return np.concatenate(chunks)


def _write(out: Path, frames, fps: int) -> None:
    from .media import write_gif, write_mp4

    out.parent.mkdir(parents=True, exist_ok=True)
    write = write_gif if out.suffix.lower() == ".gif" else write_mp4
    try:
        write(out, frames, fps)
    except (OSError, RuntimeError) as error:
        raise UsageError(f"writing {out} failed: {error}") from None
    height, width = frames.shape[1:3]
    print(f"wrote {out}: {len(frames)} frames, {len(frames) / fps:g} s at {fps} fps, {width}x{height}")


def generate(args) -> None:
    """Checks everything, loads the model, streams the story's windows under a progress bar, writes the video."""
    from .media import display_scale, upscale

    out = _output(args.out)
    timeline, file_seed = _story(args)
    seed = _seed(args, file_seed)
    settings = _settings(args)
    if args.scale is not None and args.scale < 1:
        raise UsageError(f"--scale must be a whole number >= 1, got {args.scale}")
    model, scene_frames = _load(_model_name(args), args, _device(args.device), timeline, settings)
    start = _start(args.start, model)
    print(f"seed {seed} (--seed {seed} makes the same video again)", flush=True)
    frames = _frames(model, timeline, sum(scene_frames), settings, seed, start)
    _write(out, upscale(frames, args.scale or display_scale(model.frame_size, DISPLAY_SIZE)), model.fps)


# ---- entry point -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Runs a command; returns the exit status (the console script passes it to sys.exit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command in FORWARDED:
            FORWARDED[command][0](argv[1:])
        else:
            generate(build_parser().parse_args(argv))
    except UsageError as error:
        message = " ".join(str(error).split())  # one line, whatever the library's message held
        print(f"phenaki {command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"phenaki {command}: interrupted", file=sys.stderr)
        return 130
    return 0
