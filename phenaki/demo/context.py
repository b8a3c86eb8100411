"""What the demo's tabs share, without Gradio: the model, the per-session run folders, and the functions that run
the model (on ZeroGPU wrapped by `spaces.GPU`, so that they run in a GPU worker process)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..story_cache import StoryCache
from . import live_session
from . import stories as logic
from .sessions import Sessions

INSPECT_GPU_SECONDS = 60  # an Inspect view is one window (or a few seeds of one): well under a minute on a GPU


def gpu_functions(model, gpu: Callable | None = None, cache: StoryCache | None = None) -> tuple[Callable, Callable]:
    """(story, view): the two parts of the demo that run the model.

    `story(timeline, settings, run_dir, stop_file, live, start=None)` yields `stories.StoryUpdate`s; `view(view_fn,
    run_dir, *args)` runs a `phenaki.demo.views` view. Both take and give picklable values (paths, numbers, a
    story's `Start` of numpy frames), because with `gpu=spaces.GPU` (ZeroGPU) they run in a GPU worker process: a
    story asks for a duration estimated from its request, a view for a minute. Without `gpu` they run here. A story
    takes the windows it can from `cache` (per process: under ZeroGPU, in the worker's memory) and stores there
    those it makes."""

    def story(timeline, settings, run_dir, stop_file, live, start=None):  # start: a phenaki.start.Start, or None
        yield from logic.generate_story(
            model,
            timeline,
            settings,
            run_dir,
            stop_file=stop_file,
            window_videos=live,
            cache=cache,
            start=start,
            previews=True,
        )

    def seconds(timeline, settings, *args, **kwargs) -> int:
        return logic.estimate_seconds(model, timeline, settings)

    def view(view_fn, run_dir, *args):
        return view_fn(model, run_dir, *args)

    if gpu is not None:
        story = gpu(duration=seconds)(story)
        view = gpu(duration=INSPECT_GPU_SECONDS)(view)
    return story, view


def live_function(
    model, max_seconds: float, gpu: Callable | None = None, max_bytes: int | None = live_session.DEFAULT_MAX_MB * 10**6
) -> Callable:
    """`live(prompt, settings, run_dir, session_dir, clips)`: yields `live_session.LiveUpdate`s of a live story of
    at most `max_seconds` and `max_bytes` of files, steered and stopped through the files in `session_dir`. With
    `gpu`, it asks for the longest a story can take (its wall-clock limit plus a minute)."""

    def live(prompt, settings, run_dir, session_dir, clips):
        yield from live_session.live_story(
            model,
            prompt,
            settings,
            run_dir,
            live_session.LiveControl(session_dir),
            max_seconds=max_seconds,
            max_bytes=max_bytes,
            window_videos=clips,
            previews=True,
        )

    if gpu is not None:
        live = gpu(duration=int(max_seconds) + 60)(live)
    return live


@dataclass
class DemoContext:
    """What the tabs' event handlers share; `story`, `view` and `live` are made from `model` and `gpu`."""

    model: Any
    runs_dir: Path
    concurrency: int = 1
    live_preview: bool = True
    gpu: Callable | None = None
    live_max_seconds: float = live_session.DEFAULT_MAX_SECONDS
    story_cache: StoryCache | None = None  # None: one of the default size (StoryCache(0): none)
    live_max_bytes: int | None = live_session.DEFAULT_MAX_MB * 10**6  # a live story's files at most
    sessions: Sessions = field(init=False)
    story: Callable = field(init=False, repr=False)
    view: Callable = field(init=False, repr=False)
    live: Callable = field(init=False, repr=False)

    def __post_init__(self):
        self.sessions = Sessions(self.runs_dir)
        if self.story_cache is None:
            self.story_cache = StoryCache.from_env({})
        self.story, self.view = gpu_functions(self.model, self.gpu, self.story_cache)
        self.live = live_function(self.model, self.live_max_seconds, self.gpu, self.live_max_bytes)
