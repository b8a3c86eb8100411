"""Starts the demo: `main()` reads the configuration, loads the model, builds the page and serves it.

Run by the root `app.py` (`python app.py`, `bash scripts/demo.sh`, a Hugging Face Space) and by `phenaki demo`.
Configuration, all optional, from the environment, each variable also an option that wins over it (`OPTIONS`,
`--help`): PHENAKI_MODEL (a model folder or Hub repo id; default: the bundled weights/, next to the phenaki package
in a checkout, else in the working directory: an installed package needs PHENAKI_MODEL elsewhere),
PHENAKI_REVISION, PHENAKI_DEVICE, PHENAKI_THREADS (default: torch's; one fewer on the CPU when served on 127.0.0.1,
so that a browser on the same machine has a core), PHENAKI_CONCURRENCY (default 1), PHENAKI_QUEUE_SIZE (default
16), PHENAKI_LIVE_MAX_SECONDS (the longest live story, in seconds of video; default 600), PHENAKI_LIVE_MAX_MB (a
live story's files at most, in MB; default 200), PHENAKI_STORY_CACHE_MB (the megabytes of windows Generate keeps
to remake an edited story from its first change; default 512), and Gradio's GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT. Where gradio's `mcp` extra is installed, the page also serves its tools to agents over MCP at
/gradio_api/mcp/ (`phenaki.demo.tool_docs`), unless GRADIO_MCP_SERVER=False.

The page's API: `/generate` and `/stop` (Generate), `/live`, `/steer` and `/stop_live` (Live), `/inspect_steps`,
`/inspect_tokenizer`, `/compare_seeds` and `/inspect_words` (Inspect); see `phenaki.demo.ui`.

A bad value, or no model, ends the program with one line saying what to fix (exit status 1; a bad option: 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..story_cache import StoryCache
from . import startup
from .live_session import DEFAULT_MAX_MB as DEFAULT_LIVE_MAX_MB
from .live_session import DEFAULT_MAX_SECONDS as DEFAULT_LIVE_MAX_SECONDS

if TYPE_CHECKING:
    import gradio as gr

# (option, the variable it overrides, metavar, help): each option, left out, comes from its variable
OPTIONS = [
    ("model", startup.ENV_MODEL, "FOLDER|REPO", "model folder or Hugging Face Hub repo id (else the bundled weights/)"),
    ("revision", startup.ENV_REVISION, "REV", "Hub revision to load: branch, tag or commit"),
    ("device", startup.ENV_DEVICE, "DEVICE", "torch device (else cuda when there is a GPU, else cpu)"),
    ("threads", startup.ENV_THREADS, "N", "CPU threads (else torch's; one fewer on the CPU served on 127.0.0.1)"),
    ("concurrency", "PHENAKI_CONCURRENCY", "N", "generations at once (else 1)"),
    ("queue_size", "PHENAKI_QUEUE_SIZE", "N", "requests that may wait (else 16)"),
    ("live_max_seconds", "PHENAKI_LIVE_MAX_SECONDS", "SECONDS", "longest live story, in seconds of video (else 600)"),
    ("live_max_mb", "PHENAKI_LIVE_MAX_MB", "MB", "a live story's files at most, in MB (else 200)"),
    ("story_cache_mb", "PHENAKI_STORY_CACHE_MB", "MB", "memory for windows of stories made, reused (else 512; 0: off)"),
    ("host", "GRADIO_SERVER_NAME", "ADDRESS", "address to serve on (else 127.0.0.1)"),
    ("port", "GRADIO_SERVER_PORT", "PORT", "port (else 7860, or the next free one)"),
]
WHOLE_NUMBERS = ("threads", "concurrency", "queue_size", "live_max_seconds", "live_max_mb", "port")


def _whole(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, at least 1; got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serves the Phenaki text-to-video demo (Gradio).",
        epilog="An option left out comes from the environment variable in its help.",
    )
    for option, variable, metavar, text in OPTIONS:
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            type=_whole if option in WHOLE_NUMBERS else str,
            metavar=metavar,
            help=f"{text}; ${variable}",
        )
    return parser.parse_args(argv)


def env_int(environ: Mapping[str, str], name: str, default: int, low: int = 1) -> int:
    """A whole-number setting, or StartupError naming the variable and what it got."""
    value = (environ.get(name) or "").strip()
    try:
        number = int(value) if value else default
    except ValueError:
        raise startup.StartupError(f"{name} must be a whole number, got {value!r}") from None
    if number < low:
        raise startup.StartupError(f"{name} must be at least {low}, got {number}")
    return number


def zero_gpu():
    """`spaces.GPU` where the `spaces` package is installed (Hugging Face Spaces: the root app.py imports it
    before torch, as ZeroGPU needs), else None. Off ZeroGPU the decorator returns functions unchanged."""
    try:
        import spaces
    except ImportError:
        return None
    return spaces.GPU


def demo_from_environment(environ: Mapping[str, str]) -> tuple[gr.Blocks, str]:
    """(the page, queued, for the model that `environ` names; a line saying what it serves), or StartupError."""
    concurrency = env_int(environ, "PHENAKI_CONCURRENCY", 1)
    queue_size = env_int(environ, "PHENAKI_QUEUE_SIZE", 16)
    live_max_seconds = env_int(environ, "PHENAKI_LIVE_MAX_SECONDS", DEFAULT_LIVE_MAX_SECONDS)
    live_max_mb = env_int(environ, "PHENAKI_LIVE_MAX_MB", DEFAULT_LIVE_MAX_MB)
    try:
        story_cache = StoryCache.from_env(environ)
    except ValueError as error:
        raise startup.StartupError(str(error)) from None
    default_model = startup.bundled(startup.DEFAULT_MODEL_DIR)
    name, revision = startup.model_source(environ, default=default_model)
    device = startup.pick_device(environ)
    threads = startup.pick_threads(device, environ)
    if threads:
        import torch

        torch.set_num_threads(threads)
    model = startup.load_model(name, revision, device, default=default_model)
    shown_name = f"{startup.DEFAULT_MODEL_DIR}/ (bundled)" if default_model and name == str(default_model) else name
    examples_dir = startup.bundled(startup.EXAMPLES_DIR)
    examples = startup.load_examples(examples_dir, model.vocabulary) if examples_dir else []

    from .ui import build_demo, can_stream_video  # after the model: a missing model is told without waiting for gradio

    live = can_stream_video()
    demo = build_demo(
        model,
        model_name=shown_name,
        revision=revision,
        examples=examples,
        concurrency=concurrency,
        live_preview=live,
        gpu=zero_gpu(),
        live_max_seconds=live_max_seconds,
        live_max_mb=live_max_mb,
        story_cache=story_cache,
    )
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    cpu = f" ({threads} CPU thread{'s' if threads > 1 else ''})" if threads else ""
    line = (
        f"Phenaki demo: model {shown_name} on {model.device}{cpu}; {concurrency} generation(s) at once, queue of "
        f"{queue_size}; live preview {'on' if live else 'off (needs ffmpeg and ffprobe)'}; live stories up to "
        f"{live_max_seconds} s and {live_max_mb} MB of files; story cache {story_cache.max_bytes / 2**20:g} MB"
    )
    return demo, line


def environment(argv: list[str] | None, prog: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`environ` with the options given in `argv` written over their variables."""
    args = parse_args(argv, prog)
    overrides = {
        variable: str(getattr(args, option)) for option, variable, *_ in OPTIONS if getattr(args, option) is not None
    }
    return {**environ, **overrides}


def serve_mcp(environ: Mapping[str, str]) -> tuple[bool, str]:
    """(whether to serve the MCP tools, a note saying so): yes where the `mcp` package (gradio's `mcp` extra) is
    installed, unless GRADIO_MCP_SERVER is false."""
    import importlib.util

    if (environ.get("GRADIO_MCP_SERVER") or "true").strip().lower() in ("false", "0", "no"):
        return False, "MCP tools off (GRADIO_MCP_SERVER)"
    if importlib.util.find_spec("mcp") is None:
        return False, "MCP tools off (pip install 'gradio[mcp]' adds them)"
    return True, "MCP tools at /gradio_api/mcp/"


def main(argv: list[str] | None = None, prog: str = "phenaki demo") -> None:
    """Serves the demo configured by `argv` (options) and the environment; one line on stderr if it cannot."""
    environ = environment(argv, prog)
    # no call to any outside server; for gradio, imported below (app.py sets these before anything is imported)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        port = env_int(environ, "GRADIO_SERVER_PORT", 0, low=0) or None  # None: Gradio's choice (7860 or next)
        demo, line = demo_from_environment(environ)
    except startup.StartupError as error:
        sys.exit(f"error: {error}")
    from .ui import launch_options

    mcp, mcp_note = serve_mcp(environ)
    print(f"{line}; {mcp_note}", flush=True)
    host = environ.get("GRADIO_SERVER_NAME") or None
    demo.launch(server_name=host, server_port=port, mcp_server=mcp, **launch_options())
