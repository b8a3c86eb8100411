"""The demo's Gradio UI: `build_demo(model, ...)` returns the page as a `gr.Blocks`, for any loaded model.

Nothing here reads the environment or loads a model: `phenaki.demo.app.main` does that (for `python app.py` and
`phenaki demo`), and tests build the page around a small random model. The page is a header naming the model and
three tabs, each built by its own function over the back-end (`phenaki.demo.stories`, `live_session`, `views`,
`views_tokenizer`):

- Generate (`ui_generate.generate_tab`): API endpoints `/generate` (streaming) and `/stop`;
- Live (`ui_live.live_tab`): `/live` (streaming), `/steer` and `/stop_live`;
- Inspect (`ui_inspect.inspect_tab`): `/inspect_steps`, `/inspect_tokenizer`, `/compare_seeds`, `/inspect_words`.

Their event handlers share one `DemoContext`: the model, the per-session run folders, how many generations run
at once (stories and live stories share one queue), and the functions that need the GPU, which on ZeroGPU are
wrapped by `spaces.GPU`. Closing the page stops the session's story and live story at their next window.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr

from ..story_cache import StoryCache
from .context import DemoContext
from .live_session import DEFAULT_MAX_MB, DEFAULT_MAX_SECONDS
from .sessions import default_runs_dir
from .startup import Example, describe_model
from .ui_generate import generate_tab
from .ui_inspect import inspect_tab
from .ui_live import live_tab

CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
#mp4 .empty, #gif .empty { min-height: 72px; height: 72px; }
.story-status { padding: 6px 2px; }
.story-status progress { display: block; width: 100%; height: 10px; margin: 6px 0 2px; }
.story-status .detail { font-size: 0.9em; opacity: 0.85; }
.story-status.error b { color: var(--error-text-color, #dc2626); }
.story-status.done b { color: var(--color-green-600, #16a34a); }
.vocabulary .prose { font-size: 0.88em; }
"""


def can_stream_video() -> bool:
    """Whether the live preview can stream: Gradio needs ffmpeg and ffprobe on PATH to play MP4 chunks."""
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def build_demo(
    model,
    *,
    model_name: str = "Phenaki",
    revision: str | None = None,
    examples: Sequence[Example] = (),
    runs_dir: str | Path | None = None,
    concurrency: int = 1,
    live_preview: bool | None = None,
    gpu: Callable | None = None,
    live_max_seconds: float = DEFAULT_MAX_SECONDS,
    story_cache: StoryCache | None = None,
    live_max_mb: float = DEFAULT_MAX_MB,
) -> gr.Blocks:
    """The demo page for `model` (a loaded `phenaki.Phenaki`), not yet queued or launched.

    model_name, revision: shown in the header. examples: timelines offered under Generate (not cached: nothing is
    generated at start-up). runs_dir: where each session's files go (default: <temp>/phenaki-demo/<pid>).
    concurrency: generations, live stories and Inspect views at once (they share one model). live_preview: stream
    each window as a clip (default: when ffmpeg and ffprobe are on PATH). gpu: `spaces.GPU` on ZeroGPU, else None.
    live_max_seconds: the longest live story, in seconds of video (and of wall-clock time). live_max_mb: a live
    story's files (its MP4, the player's latest clips, its timeline) at most, in MB. story_cache: where
    Generate keeps the windows it made, to make an edited story only from its first changed window (None: a cache
    of the default size, `phenaki.story_cache.DEFAULT_MB`; `StoryCache(0)`: none)."""
    ctx = DemoContext(
        model,
        Path(runs_dir) if runs_dir is not None else default_runs_dir(),
        concurrency,
        can_stream_video() if live_preview is None else live_preview,
        gpu,
        live_max_seconds,
        story_cache,
        int(live_max_mb * 10**6),
    )
    with gr.Blocks(title="Phenaki: text to video", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            "# Phenaki: text to video\nWrite a story as a timeline of scenes; each scene continues the one "
            "before. The video is made window by window, and you watch the frames as they are decoded. "
            "Or play one live, and steer it with a new prompt as it plays."
        )
        gr.Markdown(describe_model(model, model_name, revision), elem_id="model-info")
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                generate = generate_tab(ctx, list(examples))
            with gr.Tab("Live", id="live"):  # a story that plays while it is made, steered as it plays
                live = live_tab(ctx, generate, tabs)
            with gr.Tab("Inspect", id="inspect"):  # how a video is made; each view is also a named API endpoint
                inspect_tab(ctx)
        demo.unload(generate.handlers.on_unload)
        demo.unload(live.on_unload)
    return demo


def launch_options() -> dict:
    """What `demo.launch` needs besides the address: the theme and CSS (which Gradio 6 takes at launch), no share
    link, errors shown, and no server-side rendering (the page is served as tested here; Spaces would otherwise
    put a Node server in front)."""
    # system fonts only: the default theme's web fonts would be one more download (and Google Fonts is outside)
    theme = gr.themes.Default(
        font=[gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), gr.themes.Font("Roboto"), "sans-serif"],
        font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("Consolas"), "monospace"],
    )
    return dict(theme=theme, css=CSS, share=False, show_error=True, ssr_mode=False)
