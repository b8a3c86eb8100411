"""What the demo's Live tab does, without Gradio: a story that plays while it is made and follows a new prompt.

- `live_story` runs a `phenaki.live.LiveStory` and yields a `LiveUpdate` after every window (its frames as a short
  MP4 for the streaming player), paced so that it runs at most `AHEAD_WINDOWS` windows ahead of playback (the
  wall-clock time since the first window was handed out), then waits: compute and memory stay bounded however
  long a story plays. Every frame goes into one MP4 as it is made (nothing is kept in memory); at the end comes
  that MP4 and the steering history as a timeline JSON in the Generate tab's format, which `Phenaki.stream` (and
  the Generate tab) makes again frame for frame with the same seed and settings.
- `LiveControl` is how other events of the same session reach a running story: Steer and Stop write files in the
  session's folder (`phenaki.demo.sessions`), which `live_story` reads between windows. Files, not memory, for
  the reason the Generate tab's Stop uses them: on ZeroGPU the story runs in a GPU worker process. Each session
  has its own folder, so one session's Steer or Stop never reaches another's story.

A story ends when stopped, when the tab is closed (the page's unload event stops it), after the window that
reaches `max_seconds` of video, or after `max_seconds` of wall-clock time (plus the few seconds of the buffer: only
reached when the model makes video slower than real time), so that no story holds the model longer than that
while others wait; or before the window that would take its files (the MP4, the latest clips, the timeline) past
`max_bytes`, so that a story's disk use has a cap too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..live import LiveStory
from ..media import DISPLAY_SIZE, Mp4Writer, display_scale, upscale, write_mp4
from ..sampling import SamplingSettings
from .emerging import EmergingPicture, next_chunk
from .stories import MAX_PROMPT_CHARS, InputError, Settings, is_blank

DEFAULT_MAX_SECONDS = 600  # PHENAKI_LIVE_MAX_SECONDS
# PHENAKI_LIVE_MAX_MB: a story's files at most. The bundled model's 10-minute story is about 5 MB (its 512 px MP4
# grows 7-8 KB a second of video, measured); the cap leaves room for a model of busier pictures
DEFAULT_MAX_MB = 200
HEADROOM_WINDOWS = 3  # a story ends while its files plus this many of its largest windows' growth fit the cap
AHEAD_WINDOWS = 3  # windows of video made beyond what playback has reached, at most
TICK_S = 1.0  # while waiting for playback, an update (frames played, the prompt playing) this often
KEEP_CLIPS = 6  # the latest window clips kept on disk (the player has fetched older ones)
LIVE_QUEUED, LIVE_RUNNING, LIVE_STOP, LIVE_STEER = "LIVE_QUEUED", "LIVE_RUNNING", "LIVE_STOP", "LIVE_STEER"
MP4_NAME, TIMELINE_NAME = "live.mp4", "live_timeline.json"


def parse_prompt(value, what: str = "the prompt") -> str:
    """A prompt from the UI or an API caller, whitespace collapsed as in a timeline's rows; InputError otherwise."""
    if is_blank(value):
        raise InputError(f"{what} is empty: describe what should happen (e.g. 'the red circle moves up')")
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {value!r}")
    prompt = " ".join(value.split())
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"{what} is longer than {MAX_PROMPT_CHARS} characters")
    return prompt


# ---- reaching a running story -------------------------------------------------------------------------------


class LiveControl:
    """A session's live-story flags in its folder: QUEUED (Start pressed, waiting for a slot), RUNNING, STOP, and
    STEER (the latest prompt asked for, not yet taken by the story)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _path(self, name: str) -> Path:
        return self.folder / name

    def running(self) -> bool:
        return self._path(LIVE_RUNNING).exists()

    def busy(self) -> bool:
        """Queued or running: what Stop and closing the tab act on."""
        return self.running() or self._path(LIVE_QUEUED).exists()

    def queue(self) -> None:
        """Start was pressed: a Stop from now on applies to the story once it starts."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._path(LIVE_STOP).unlink(missing_ok=True)
        self._path(LIVE_QUEUED).touch()

    def begin(self) -> bool:
        """Marks the story running; False if this session already runs one. A Stop given while it was queued
        stays (the story then ends before its first window); anything older is cleared."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self._path(LIVE_RUNNING), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        queued = self._path(LIVE_QUEUED)
        if not queued.exists():  # an API call (no Start button): a STOP lying here is left from before
            self._path(LIVE_STOP).unlink(missing_ok=True)
        queued.unlink(missing_ok=True)
        self._path(LIVE_STEER).unlink(missing_ok=True)
        return True

    def end(self) -> None:
        for name in (LIVE_RUNNING, LIVE_QUEUED, LIVE_STOP, LIVE_STEER):
            self._path(name).unlink(missing_ok=True)

    def steer(self, prompt: str) -> None:
        """Asks the running story to follow `prompt` from its next window (a later steer replaces it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self._path(f"{LIVE_STEER}.{os.getpid()}.{time.monotonic_ns()}")
        temporary.write_text(prompt, encoding="utf-8")
        os.replace(temporary, self._path(LIVE_STEER))  # atomic: the story never reads half a prompt

    def pending_steer(self) -> str | None:
        try:
            return self._path(LIVE_STEER).read_text(encoding="utf-8")
        except OSError:
            return None

    def take_steer(self) -> str | None:
        """The prompt asked for since the last call, or None; a steer written meanwhile waits for the next call."""
        taken = self._path(f"{LIVE_STEER}.taken")
        try:
            os.replace(self._path(LIVE_STEER), taken)
        except FileNotFoundError:
            return None
        prompt = taken.read_text(encoding="utf-8")
        taken.unlink(missing_ok=True)
        return prompt

    def stop(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._path(LIVE_STOP).touch()

    def leave(self) -> None:
        """The session went away: a running story stops at its next window; a queued one, which Gradio drops from
        its queue, leaves no flags behind."""
        if self.running():
            self.stop()
        elif self.busy():
            self.end()

    def stop_requested(self) -> bool:
        return self._path(LIVE_STOP).exists()


# ---- pacing -------------------------------------------------------------------------------------------------


class Pacer:
    """Playback's position in wall-clock time: it starts when the first window is handed out and plays `fps` frames
    a second. `wait_s` is how long to wait before making `next_frames` more frames so that at most `ahead_frames`
    are made beyond what has been played."""

    def __init__(self, fps: float, ahead_frames: int, clock: Callable[[], float] = time.monotonic):
        self.fps, self.ahead_frames, self.clock = fps, ahead_frames, clock
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def played(self, made: int) -> int:
        """Frames played by now (never more than were made)."""
        if self.started is None:
            return 0
        return min(made, int((self.clock() - self.started) * self.fps))

    def wait_s(self, made: int, next_frames: int) -> float:
        if self.started is None:
            return 0.0
        must_have_played = made + next_frames - self.ahead_frames
        return max(0.0, self.started + must_have_played / self.fps - self.clock())


# ---- the story ----------------------------------------------------------------------------------------------


@dataclass
class LiveUpdate:
    """What `live_story` yields: after each window (with its clip, `window_video`), while waiting for playback
    (every `TICK_S`, no clip), and once at the end (`final`)."""

    timeline: list[tuple[str, float]]  # (prompt, seconds) made so far: one entry per prompt that made frames
    frames_made: int
    frames_played: int  # by wall-clock time since the first window was handed out
    seed: int
    fps: int
    max_seconds: float
    compute_s: float  # time spent making windows (not waiting)
    elapsed: float  # since the story started
    window_video: str | None = None
    next_prompt: str | None = None  # a steer not yet taken by a window
    final: bool = False
    video: str | None = None  # final: everything made, as one MP4
    timeline_file: str | None = None  # final: the timeline JSON (the Generate tab's format, with seed and settings)
    ended: str = ""  # final: "stopped", "limit" (max_seconds of video), "time" (wall-clock), "disk" (max_bytes)
    error: str | None = None  # final: what went wrong mid-story (the frames made before are kept)
    preview: str | None = None  # while the first window is made: its first frame so far (PNG; demo/emerging.py)

    @property
    def scene(self) -> int:
        """0-based scene (prompt) of the latest window."""
        return max(0, len(self.timeline) - 1)

    @property
    def prompt(self) -> str:
        return self.timeline[-1][0] if self.timeline else ""

    def playing(self) -> tuple[int, str]:
        """(0-based scene, prompt) of the frame being played now."""
        end = 0
        for scene, (prompt, seconds) in enumerate(self.timeline):
            end += round(seconds * self.fps)
            if self.frames_played < end:
                return scene, prompt
        return self.scene, self.prompt

    @property
    def speed(self) -> float:
        """Video made per second of compute: a multiple of real time."""
        return self.frames_made / self.fps / self.compute_s if self.compute_s > 0 else 0.0


def sampling_settings(settings: Settings) -> SamplingSettings:
    """The sampling part of the demo's settings (the seed is given separately)."""
    return SamplingSettings(**{f.name: getattr(settings, f.name) for f in fields(SamplingSettings)})


def timeline_json(timeline: list[tuple[str, float]], settings: Settings) -> dict:
    """The Generate tab's timeline format (examples/*.json): title, timeline rows, seed and the settings."""
    first = timeline[0][0] if timeline else ""
    return {
        "title": f"Live story: {first}" + (f" (+{len(timeline) - 1} more)" if len(timeline) > 1 else ""),
        "timeline": [[prompt, seconds] for prompt, seconds in timeline],
        "seed": settings.seed,
        **{f.name: getattr(settings, f.name) for f in fields(SamplingSettings)},
    }


def files_size(folder: Path) -> int:
    """Bytes of the files in `folder` (not its subfolders)."""
    total = 0
    for path in folder.iterdir():
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:  # a clip rotated out meanwhile
            pass
    return total


@dataclass
class _Clips:
    """The window clips on disk: the latest `keep` (the player fetched the older ones when they were handed out)."""

    folder: Path
    keep: int = KEEP_CLIPS
    paths: list[Path] = field(default_factory=list)

    def write(self, index: int, frames: np.ndarray, fps: int) -> str:
        path = write_mp4(self.folder / f"window_{index:05d}.mp4", frames, fps)
        self.paths.append(path)
        while len(self.paths) > self.keep:
            self.paths.pop(0).unlink(missing_ok=True)
        return str(path)


def live_story(
    model,
    prompt: str,
    settings: Settings,
    out_dir: str | os.PathLike,
    control: LiveControl,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_bytes: int | None = DEFAULT_MAX_MB * 10**6,
    window_videos: bool = True,
    ahead_windows: int = AHEAD_WINDOWS,
    display_size: int = DISPLAY_SIZE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    previews: bool = False,
) -> Iterator[LiveUpdate]:
    """Plays a live story from `prompt` (see the module's docstring), reading Steer and Stop from `control`.

    The prompt and settings are checked first (InputError; nothing is written). The caller marks the story
    running (`control.begin()`) and ends it (`control.end()`). An exception before the first window is raised;
    later, the final update carries it along with the frames made. With `previews`, updates with a `preview` come
    while the first window is made (`phenaki.demo.emerging`); the frames are the same."""
    prompt = parse_prompt(prompt)
    settings = settings.resolve_seed()
    picture = EmergingPicture(model, out_dir) if previews else None
    try:
        settings.validate(model.has_critic)
        story = LiveStory(
            model,
            prompt,
            settings=sampling_settings(settings),
            seed=settings.seed,
            max_seconds=max_seconds,
            on_step=picture and picture.on_step,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fps = int(model.fps)
    scale = display_scale(model.frame_size, display_size)
    pacer = Pacer(fps, ahead_windows * max(1, model.window_frames - model.prime_frames), clock)
    writer, clips = Mp4Writer(out / MP4_NAME, fps), _Clips(out)
    started, compute, windows, last = clock(), 0.0, 0, 0
    told, ended, error = started, "", None
    used = step = 0  # bytes of the story's files, and the most one window added to them
    grace = ahead_windows * max(1, model.window_frames - model.prime_frames) / fps

    def update(**kwargs) -> LiveUpdate:
        return LiveUpdate(
            timeline=story.timeline,
            frames_made=story.frames_made,
            frames_played=pacer.played(story.frames_made),
            seed=settings.seed,
            fps=fps,
            max_seconds=max_seconds,
            compute_s=compute,
            elapsed=clock() - started,
            next_prompt=control.pending_steer(),
            **kwargs,
        )

    def over() -> str:
        if control.stop_requested():
            return "stopped"
        if story.frames_made >= max_seconds * fps:  # the story's own end (after the window that reached it)
            return "limit"
        if max_bytes is not None and used + HEADROOM_WINDOWS * step > max_bytes:
            return "disk"
        return "time" if clock() - started >= max_seconds + grace else ""

    frames_of = iter(story)
    try:
        while not (ended := over()):
            wait = pacer.wait_s(story.frames_made, last)
            if wait > 0:  # ahead of playback: wait for it, saying every TICK_S how far it got
                sleep(min(wait, TICK_S, max(0.05, told + TICK_S - clock())))
                if clock() - told >= TICK_S and not over():
                    told = clock()
                    yield update()
                continue
            steer = control.take_steer()
            if steer is not None:
                story.steer(steer)  # checked by the Steer event; the window about to be made follows it
            began = clock()
            try:
                chunk = yield from next_chunk(picture, windows == 0, frames_of, lambda p: update(preview=p))
            except Exception as exc:  # noqa: BLE001 - a failure mid-story keeps what was made
                if windows == 0:
                    raise
                error = f"{type(exc).__name__}: {exc}"
                break
            compute += clock() - began
            if chunk is None:  # the window that reached max_seconds was the last
                ended = "limit"
                break
            windows, last = windows + 1, len(chunk.frames)
            big = upscale(np.asarray(chunk.frames), scale, even=True)
            clip = clips.write(windows, big, fps) if window_videos else None
            used, step = (size := files_size(out)), max(step, size - used)
            pacer.start()
            told = clock()
            yield update(window_video=clip)
            writer.append(big)  # the story's MP4 after the clip has gone out: the first frames play sooner
    except BaseException:
        writer.abort()
        raise
    finally:
        story.stop()
        getattr(frames_of, "close", lambda: None)()
    if story.frames_made == 0:  # stopped before the first window: nothing to show
        writer.abort()
        yield update(final=True, ended=ended, error=error)
        return
    video = str(writer.close())
    timeline_file = out / TIMELINE_NAME
    timeline_file.write_text(json.dumps(timeline_json(story.timeline, settings), indent=1), encoding="utf-8")
    yield update(final=True, video=video, timeline_file=str(timeline_file), ended=ended, error=error)
