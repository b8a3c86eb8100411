"""What the demo's Generate tab does, without Gradio: so that it can be tested, and reused by other front ends.

- `parse_timeline` / `parse_settings` turn what the UI or an API caller sent (a table, strings, numbers) into a
  checked timeline and sampling settings, or raise `InputError` with a message for the user.
- `generate_story` runs `Phenaki.stream` and yields a `StoryUpdate` after every window: the window's frames as a
  short MP4 (for a live preview) and as a contact sheet, progress, and at the end the whole story as MP4 and GIF.
  Given a `StoryCache`, the windows a story shares with one made before come from it (one update for all of them).
  It stops between windows when a stop file appears, and a failure mid-story still finalises the frames made.
- Start-up (which model, which device, the examples) is in `phenaki.demo.startup`.

Everything a `StoryUpdate` holds is a plain value or a file path, so it can cross a process boundary (ZeroGPU runs
the GPU function in a worker process).
"""

from __future__ import annotations

import math
import numbers
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..media import DISPLAY_SIZE, Mp4Writer, contact_sheet, display_scale, upscale, write_gif, write_mp4, write_png
from ..sampling import REFINE_STEPS_PER_PASS, SamplingSettings
from ..story_cache import StoryCache
from ..story_resume import cached_stream, describe_reuse
from .emerging import EmergingPicture, next_chunk

# ---- limits and defaults ------------------------------------------------------------------------------------

MAX_STORY_SECONDS = 120.0  # the whole timeline
MAX_SCENES = 64
MAX_PROMPT_CHARS = 300
MAX_SEED = 2**63 - 1
RANDOM_SEED = -1  # what the API takes for "pick one"
GIF_SIZE = 256
GIF_MAX_FRAMES = 240  # longer stories are subsampled (keeping real-time speed) so the GIF stays small

# (low, high) accepted from the UI and API, and the UI sliders' ranges: the `ui` ranges of SamplingSettings' fields
LIMITS = SamplingSettings.limits(ui=True)
DEFAULTS = dict(seed=RANDOM_SEED, **{name: getattr(SamplingSettings, name) for name in LIMITS})  # the library's
REFINE_NOTE = (
    "After the parallel steps, the even latent frames are redrawn beside the odd ones, then the odd "
    f"ones (0: off; a pass costs {REFINE_STEPS_PER_PASS} steps without guidance)"
)
DEFAULT_TIMELINE = [["a red circle moves right", 2.0], ["the red circle moves up", 2.0]]
NEW_SCENE_SECONDS = 2.0
TIMELINE_HEADERS = ["prompt", "seconds"]


class InputError(ValueError):
    """Something the user (or an API caller) sent is not usable; the message is meant for them."""


# ---- inputs -------------------------------------------------------------------------------------------------


def is_blank(value) -> bool:
    """Whether a UI / API value is missing: None, an empty or blank string, NaN or a pandas missing value."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing values, without importing pandas


def parse_number(name: str, value, *, integer: bool = False) -> float | int:
    """A finite number from a number or a numeric string (API callers send strings); InputError otherwise."""
    shown = repr(value) if not isinstance(value, str) else f"'{value}'"
    if is_blank(value):
        raise InputError(f"{name} is missing: give a number")
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be a number, got {shown}")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InputError(f"{name} must be a number, got {shown}") from None
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise InputError(f"{name} must be a number, got {shown}")
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {shown}")
    if integer:
        if number != int(number):
            raise InputError(f"{name} must be a whole number, got {shown}")
        return int(number)
    return number


def read_table(value) -> tuple[list[str] | None, list]:
    """(headers or None, rows) of a table given as a DataFrame, a {"headers", "data"} dict or a list of rows."""
    if value is None:
        return None, []
    if hasattr(value, "columns") and hasattr(value, "to_numpy"):  # pandas (or polars) DataFrame
        return [str(c) for c in value.columns], value.to_numpy(dtype=object).tolist() if len(value) else []
    if isinstance(value, Mapping):
        if "data" not in value:
            raise InputError("the timeline must be a table of rows (prompt, seconds)")
        headers, data = value.get("headers"), value["data"] or []
        if not isinstance(data, (list, tuple)) or not isinstance(headers, (list, tuple, type(None))):
            raise InputError("the timeline's 'data' must be a list of rows (prompt, seconds) and its 'headers' a list")
        return (None if headers is None else [str(h) for h in headers]), list(data)
    if isinstance(value, (list, tuple)):
        return None, list(value)
    raise InputError(f"the timeline must be a table of rows (prompt, seconds), got {type(value).__name__}")


def table_columns(headers: list[str] | None) -> tuple[int, int]:
    """Indices of the prompt and seconds columns: by header when both are named, else the first two."""
    lower = [h.strip().lower() for h in headers or []]
    if "prompt" in lower and "seconds" in lower:
        return lower.index("prompt"), lower.index("seconds")
    return 0, 1


def parse_timeline(
    value, *, max_seconds: float = MAX_STORY_SECONDS, max_scenes: int = MAX_SCENES
) -> list[tuple[str, float]]:
    """The (prompt, seconds) scenes of the table the UI or an API caller sent.

    Columns are found by their headers (`prompt`, `seconds`) when given, else taken in that order. Fully empty
    rows are dropped; seconds may be numeric strings. InputError names the row (1-based, as in the table)."""
    headers, rows = read_table(value)
    columns = table_columns(headers)
    timeline: list[tuple[str, float]] = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, Mapping):
            cells = [row.get("prompt"), row.get("seconds")]
        elif isinstance(row, (list, tuple)):
            cells = [row[i] if i < len(row) else None for i in columns]
        elif is_blank(row):
            continue
        else:
            raise InputError(f"timeline row {number} must be (prompt, seconds), got {row!r}")
        prompt, seconds = cells
        if is_blank(prompt) and is_blank(seconds):
            continue
        if is_blank(prompt):
            raise InputError(f"timeline row {number} has no prompt: describe the scene, or delete the row")
        if not isinstance(prompt, str):
            raise InputError(
                f"timeline row {number}: the prompt must be text, got {prompt!r} (columns are: prompt, seconds)"
            )
        prompt = " ".join(prompt.split())
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"timeline row {number}: the prompt is longer than {MAX_PROMPT_CHARS} characters")
        seconds = parse_number(f"timeline row {number}: seconds", seconds)
        if seconds <= 0:
            raise InputError(f"timeline row {number}: seconds must be more than 0, got {seconds:g}")
        timeline.append((prompt, seconds))
    if not timeline:
        raise InputError("the timeline is empty: add at least one scene (a prompt and its length in seconds)")
    if len(timeline) > max_scenes:
        raise InputError(f"the timeline has {len(timeline)} scenes; at most {max_scenes} are allowed")
    total = sum(seconds for _, seconds in timeline)
    if total > max_seconds + 1e-9:
        raise InputError(
            f"the timeline lasts {total:g} s; at most {max_seconds:g} s ({max_seconds / 60:g} min) in all are allowed"
        )
    return timeline


@dataclass(frozen=True)
class Settings(SamplingSettings):
    """The sampling settings and the seed of a story (what the UI and API send)."""

    seed: int | None = None  # None: pick one at random when the story starts

    def resolve_seed(self) -> Settings:
        """The same settings with a concrete seed (so it can be shown and reused)."""
        if self.seed is not None:
            return self
        return replace(self, seed=secrets.randbelow(2**31))

    def sampling_kwargs(self) -> dict:
        """Keywords for `Phenaki.sample` / `stream`: every setting and the seed."""
        return asdict(self)


def parse_settings(
    steps, temperature, critic_strength, guidance_scale, seed, refine_passes=None, *, has_critic: bool
) -> Settings:
    """Checked sampling settings from UI or API values (numbers or numeric strings); seed -1 (or empty): random;
    refine passes empty: the default."""
    values = dict(
        steps=parse_number("steps", steps, integer=True),
        temperature=parse_number("temperature", temperature),
        critic_strength=parse_number("critic strength", 0 if is_blank(critic_strength) else critic_strength),
        guidance_scale=parse_number("guidance scale", guidance_scale),
        refine_passes=DEFAULTS["refine_passes"]
        if is_blank(refine_passes)
        else parse_number("refine passes", refine_passes, integer=True),
    )
    for name, value in values.items():
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise InputError(f"{name.replace('_', ' ')} must be between {low:g} and {high:g}, got {value:g}")
    if values["critic_strength"] > 0 and not has_critic:
        raise InputError("this model has no Token Critic: critic strength must be 0")
    seed = None if is_blank(seed) else parse_number("seed", seed, integer=True)
    if seed == RANDOM_SEED:
        seed = None
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be between 0 and {MAX_SEED}, or -1 for a random one; got {seed}")
    return Settings(seed=seed, **values)


def check_story(model, timeline, settings: Settings) -> list[int]:
    """Frames per scene; everything the model itself checks, as InputError, before anything starts."""
    try:
        frames = model.timeline_frames(timeline)
        settings.validate(model.has_critic)
    except ValueError as error:
        raise InputError(str(error)) from None
    return frames


# ---- the story ----------------------------------------------------------------------------------------------


@dataclass
class StoryUpdate:
    """What `generate_story` yields: a window's frames, then (if asked for) its MP4, for every window (`final`
    False); and once at the end (`final` True)."""

    scene: int  # 0-based scene of the latest window (the last one made when final)
    scenes: int
    prompt: str
    frames_done: int
    frames_total: int
    windows_done: int
    seed: int
    fps: int
    elapsed: float  # seconds since the story started
    window_video: str | None = None  # the latest window's frames as an MP4 (live preview): its second update
    window_sheet: str | None = None  # the latest window's frames side by side (PNG); final: the last window's
    final: bool = False
    video: str | None = None  # final: the whole story (or what was made of it) as MP4
    gif: str | None = None  # final: the same as a GIF
    stopped: bool = False  # final: stopped by the user before the end
    error: str | None = None  # final: what went wrong mid-story (the frames made before are kept)
    reuse: str = ""  # what came from the story cache ("scenes 1–2 reused, 3–4 made"); "" when nothing did
    preview: str | None = None  # while the first window is made: its first frame so far (PNG; demo/emerging.py)

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0


def stop_requested(stop_file: str | os.PathLike | None) -> bool:
    return stop_file is not None and os.path.exists(stop_file)


def generate_story(
    model,
    timeline,
    settings: Settings,
    out_dir: str | os.PathLike,
    *,
    stop_file: str | os.PathLike | None = None,
    window_videos: bool = True,
    display_size: int = DISPLAY_SIZE,
    gif_size: int = GIF_SIZE,
    gif_max_frames: int = GIF_MAX_FRAMES,
    cache: StoryCache | None = None,
    start=None,
    previews: bool = False,
) -> Iterator[StoryUpdate]:
    """Generates the story window by window, then gives the MP4 and GIF of everything made. Each window yields a
    `StoryUpdate` with its frames side by side (`window_sheet`) as soon as it is decoded and, with `window_videos`,
    a second one that adds its MP4 (`window_video`, for a live preview); the last update is `final`.

    Inputs are checked first (InputError; nothing is written). The story stops between windows once `stop_file`
    exists (checked before the first window too). An exception mid-story ends it, and the final update carries the
    error along with the frames made before it; an exception before any frame was made is raised. With `cache`, the
    windows it holds of this story (`phenaki.story_resume.cached_stream`) make one update, without a window MP4.
    `start` (a `phenaki.start.Start`, or None): the picture or clip the story begins from (`Phenaki.stream`'s).

    With `previews`, updates with a `preview` come while the first window is made (`phenaki.demo.emerging`); the
    frames and files are the same."""
    scene_frames = check_story(model, timeline, settings)
    settings = settings.resolve_seed()
    picture = EmergingPicture(model, out_dir) if previews else None
    on_step = picture and picture.on_step
    stream = cached_stream(
        model, list(timeline), cache=cache, start=start, on_step=on_step, **settings.sampling_kwargs()
    )
    reuse = describe_reuse(stream.plan, stream.reused)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total, fps = sum(scene_frames), int(model.fps)
    scale = display_scale(model.frame_size, display_size)
    gif_scale = display_scale(model.frame_size, gif_size)
    gif_stride = max(1, math.ceil(total / gif_max_frames))
    writer = Mp4Writer(out / "story.mp4", fps)
    gif_frames: list[np.ndarray] = []  # every gif_stride-th frame, at the model's size
    done = windows = scene = 0
    sheet = None
    stopped, error = stop_requested(stop_file), None
    started = time.monotonic()

    def update(**kwargs) -> StoryUpdate:
        return StoryUpdate(
            scene=scene,
            scenes=len(timeline),
            prompt=timeline[scene][0],
            frames_done=done,
            frames_total=total,
            windows_done=windows,
            seed=settings.seed,
            fps=fps,
            elapsed=time.monotonic() - started,
            reuse=reuse,
            **kwargs,
        )

    try:
        while not stopped:
            try:
                chunk = yield from next_chunk(picture, windows == 0, stream, lambda p: update(preview=p))
            except Exception as exc:  # noqa: BLE001 - a failure mid-story keeps what was made
                if done == 0:
                    raise
                error = f"{type(exc).__name__}: {exc}"
                break
            if chunk is None:
                break
            frames = np.asarray(chunk.frames)
            windows, scene = windows + 1, int(chunk.segment)
            done += len(frames)
            if not chunk.reused or chunk.window == stream.reused - 1:  # the reused windows: one update, at the last
                sheet = str(write_png(out / f"window_{windows:04d}.png", contact_sheet(frames)))
                # the frames first: the picture is on its way while the MP4s are encoded (about 0.5 s a window
                # on a CPU, with the app's muxing of the live preview's clip)
                yield update(window_sheet=sheet)
            big = upscale(frames, scale, even=True)
            writer.append(big)
            gif_frames.extend(frame for i, frame in enumerate(frames, start=chunk.start) if i % gif_stride == 0)
            if window_videos and not chunk.reused:  # (a start picture's own chunk is made: not counted as reused)
                yield update(
                    window_sheet=sheet, window_video=str(write_mp4(out / f"window_{windows:04d}.mp4", big, fps))
                )
            stopped = stop_requested(stop_file) and done < total
    except BaseException:
        writer.abort()
        raise
    finally:
        stream.close()
    if done == 0:  # stopped before the first window: nothing to show
        writer.abort()
        yield update(final=True, stopped=stopped, error=error)
        return
    video = writer.close()
    gif = write_gif(out / "story.gif", upscale(np.stack(gif_frames), gif_scale), fps, stride=gif_stride)
    yield update(final=True, window_sheet=sheet, video=str(video), gif=str(gif), stopped=stopped, error=error)


def estimate_seconds(
    model, timeline, settings: Settings, seconds_per_step: float = 0.05, low: float = 30.0, high: float = 120.0
) -> int:
    """A generous guess at how long a story takes on a GPU (for ZeroGPU's `duration`): windows x steps x a per-step
    cost (doubled with guidance, which batches an unconditioned pass; refinement's steps are unguided),
    plus start-up; clamped to [low, high]."""
    try:
        frames = sum(model.timeline_frames(timeline))
    except ValueError:
        return int(low)
    new_per_window = max(1, model.window_frames - model.prime_frames)
    windows = 1 + max(0, math.ceil((frames - model.window_frames) / new_per_window))
    per_step = seconds_per_step * (2 if settings.guidance_scale != 1 else 1) * (2 if settings.critic_strength else 1)
    refinement = REFINE_STEPS_PER_PASS * settings.refine_passes * seconds_per_step
    return int(min(high, max(low, 10 + windows * (settings.steps * per_step + refinement + 0.2))))
