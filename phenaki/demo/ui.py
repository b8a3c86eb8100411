"""The demo's Gradio UI: `build_demo(model, ...)` returns the page as a `gr.Blocks`, for any loaded model.

Nothing here reads the environment or loads a model: `phenaki.demo.app.main` does that (for `python app.py` and
`phenaki demo`), and tests build the page around a small random model. The page is a header naming the model and
two tabs, each built by its own function over the back-end (`phenaki.demo.stories`, `views`, `views_tokenizer`):

- Generate (`ui_generate.generate_tab`): API endpoints `/generate` (streaming) and `/stop`;
- Inspect (`ui_inspect.inspect_tab`): `/inspect_steps`, `/inspect_tokenizer`, `/compare_seeds`.

Their event handlers share one `DemoContext`: the model, the per-session run folders, how many generations run
at once, and the two functions that need the GPU, which on ZeroGPU are wrapped by `spaces.GPU`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from . import stories as logic
from .sessions import Sessions, default_runs_dir
from .startup import Example, describe_model
from .ui_generate import generate_tab
from .ui_inspect import inspect_tab

INSPECT_GPU_SECONDS = 60  # an Inspect view is one window (or a few seeds of one): well under a minute on a GPU

CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
#mp4 .empty, #gif .empty { min-height: 72px; height: 72px; }
.story-status { padding: 6px 2px; }
.story-status progress { display: block; width: 100%; height: 10px; margin: 6px 0 2px; }
.story-status .detail { font-size: 0.9em; opacity: 0.85; }
.story-status.error b { color: var(--error-text-color, #dc2626); }
.story-status.done b { color: var(--color-green-600, #16a34a); }
"""


def gpu_functions(model, gpu: Callable | None = None) -> tuple[Callable, Callable]:
    """(story, view): the two parts of the demo that run the model.

    `story(timeline, settings, run_dir, stop_file, live)` yields `stories.StoryUpdate`s; `view(view_fn, run_dir,
    *args)` runs a `phenaki.demo.views` view. Both take and give picklable values (paths, numbers), because with
    `gpu=spaces.GPU` (ZeroGPU) they run in a GPU worker process: a story asks for a duration estimated from its
    request, a view for a minute. Without `gpu` they run here."""

    def story(timeline, settings, run_dir, stop_file, live):
        yield from logic.generate_story(model, timeline, settings, run_dir, stop_file=stop_file, window_videos=live)

    def seconds(timeline, settings, *args, **kwargs) -> int:
        return logic.estimate_seconds(model, timeline, settings)

    def view(view_fn, run_dir, *args):
        return view_fn(model, run_dir, *args)

    if gpu is not None:
        story = gpu(duration=seconds)(story)
        view = gpu(duration=INSPECT_GPU_SECONDS)(view)
    return story, view


@dataclass
class DemoContext:
    """What the tabs' event handlers share; `story` and `view` are made from `model` and `gpu`."""

    model: Any
    runs_dir: Path
    concurrency: int = 1
    live_preview: bool = True
    gpu: Callable | None = None
    sessions: Sessions = field(init=False)
    story: Callable = field(init=False, repr=False)
    view: Callable = field(init=False, repr=False)

    def __post_init__(self):
        self.sessions = Sessions(self.runs_dir)
        self.story, self.view = gpu_functions(self.model, self.gpu)


def can_stream_video() -> bool:
    """Whether the live preview can stream: Gradio needs ffmpeg and ffprobe on PATH to play MP4 chunks."""
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def build_demo(model, *, model_name: str = "Phenaki", revision: str | None = None,
               examples: Sequence[Example] = (), runs_dir: str | Path | None = None, concurrency: int = 1,
               live_preview: bool | None = None, gpu: Callable | None = None) -> gr.Blocks:
    """The demo page for `model` (a loaded `phenaki.Phenaki`), not yet queued or launched.

    model_name, revision: shown in the header. examples: timelines offered under Generate (not cached: nothing is
    generated at start-up). runs_dir: where each session's files go (default: <temp>/phenaki-demo/<pid>).
    concurrency: generations and Inspect views at once (they share one model). live_preview: stream each window
    as a clip (default: when ffmpeg and ffprobe are on PATH). gpu: `spaces.GPU` on ZeroGPU, else None."""
    ctx = DemoContext(model, Path(runs_dir) if runs_dir is not None else default_runs_dir(), concurrency,
                      can_stream_video() if live_preview is None else live_preview, gpu)
    with gr.Blocks(title="Phenaki: text to video", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Phenaki: text to video\nWrite a story as a timeline of scenes; each scene continues the one "
                    "before. The video is made window by window, and you watch the frames as they are decoded.")
        gr.Markdown(describe_model(model, model_name, revision), elem_id="model-info")
        with gr.Tab("Generate", id="generate"):
            stories = generate_tab(ctx, list(examples))
        with gr.Tab("Inspect", id="inspect"):  # how a video is made; each view is also a named API endpoint
            inspect_tab(ctx)
        demo.unload(stories.on_unload)
    return demo


def launch_options() -> dict:
    """What `demo.launch` needs besides the address: the theme and CSS (which Gradio 6 takes at launch), no share
    link, errors shown, and no server-side rendering (the page is served as tested here; Spaces would otherwise
    put a Node server in front)."""
    # system fonts only: the default theme's web fonts would be one more download (and Google Fonts is outside)
    theme = gr.themes.Default(
        font=[gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), gr.themes.Font("Roboto"), "sans-serif"],
        font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("Consolas"), "monospace"])
    return dict(theme=theme, css=CSS, share=False, show_error=True, ssr_mode=False)
