"""Phenaki text-to-video: the browser demo, locally (`python app.py`) or as a Hugging Face Space.

A thin view: the layout and its wiring. What it does lives in `phenaki/demo.py` (checked inputs, the streaming
story generator, MP4/GIF files) and `phenaki/startup.py` (which model, on which device). Configuration, all
optional, from the environment:

  PHENAKI_MODEL        model folder or Hub repo id (default: weights/ next to this file)
  PHENAKI_REVISION     Hub revision (branch, tag or commit) to load
  PHENAKI_DEVICE       torch device (default: cuda when there is a GPU, else cpu)
  PHENAKI_THREADS      CPU threads (default: torch's; one fewer on the CPU when served on 127.0.0.1, so that the
                       browser on the same machine has a core)
  PHENAKI_CONCURRENCY  generations at once (default 1: one per device)
  PHENAKI_QUEUE_SIZE   requests that may wait in the queue (default 16)

API (for gradio_client): `/generate` (timeline, steps, temperature, critic_strength, guidance_scale, seed,
refine_passes) streams an update per window; its outputs are (live preview, frames of the latest window, status,
video, MP4 file, GIF file, seed used). `/stop` stops the caller's running (or queued) story after the current
window. The Inspect tab (`app_inspect.py`, over `phenaki/inspect.py`): `/inspect_steps` (prompt, frames, steps,
temperature, critic_strength, guidance_scale, seed, refine_passes) -> (step images, per-step table, MP4 of the
window, summary); `/inspect_tokenizer` (video file or None, shapes-world clip seed) -> (original | reconstruction
MP4, PSNR per frame, token grid image, summary); `/compare_seeds` (prompt, seeds, steps, temperature,
critic_strength, guidance_scale, baseline_guidance, refine_passes) -> (MP4 of the seeds, MP4 of the two guidance
scales, frames sheet, read-back table, summary). refine_passes comes last and may be left out (default 1).
"""

from __future__ import annotations

import html
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# no call to any outside server: set before gradio and huggingface_hub are imported
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

try:  # ZeroGPU on Hugging Face Spaces (imported before torch); without it nothing changes
    import spaces
except ImportError:
    spaces = None

from phenaki.demo import startup  # noqa: E402
from phenaki.demo import stories as logic  # noqa: E402

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = ROOT / startup.DEFAULT_MODEL_DIR
EXAMPLES = ROOT / "examples"


def _env_int(name: str, default: int, low: int = 1) -> int:
    value = os.environ.get(name, "").strip()
    try:
        number = int(value) if value else default
    except ValueError:
        sys.exit(f"error: {name} must be a whole number, got {value!r}")
    if number < low:
        sys.exit(f"error: {name} must be at least {low}, got {number}")
    return number


CONCURRENCY = _env_int("PHENAKI_CONCURRENCY", 1)
QUEUE_SIZE = _env_int("PHENAKI_QUEUE_SIZE", 16)
# the live preview streams each window as an MP4 chunk; Gradio needs ffmpeg and ffprobe on PATH for that
LIVE_PREVIEW = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))
RUNS = Path(tempfile.gettempdir()) / "phenaki-demo" / str(os.getpid())  # per session, per request: MP4s, GIFs
KEEP_RUNS_S = 3600
VIDEO_HEIGHT = 360

# ---- the model: loaded once ---------------------------------------------------------------------------------

MODEL_NAME, MODEL_REVISION = startup.model_source(default=DEFAULT_MODEL)
try:
    DEVICE = startup.pick_device()
    THREADS = startup.pick_threads(DEVICE)
    if THREADS:
        import torch

        torch.set_num_threads(THREADS)
    MODEL = startup.load_model(MODEL_NAME, MODEL_REVISION, DEVICE, default=DEFAULT_MODEL)
except startup.StartupError as error:
    if __name__ == "__main__":
        sys.exit(f"error: {error}")
    raise
SHOWN_NAME = "weights/ (bundled)" if Path(MODEL_NAME) == DEFAULT_MODEL else MODEL_NAME

import gradio as gr  # noqa: E402  (after the model: a missing model is reported without waiting for gradio)

from phenaki.demo.ui_inspect import inspect_tab, refine_slider  # noqa: E402


def _story(timeline, settings, run_dir, stop_file, live):
    """The part that needs the GPU (on ZeroGPU it runs in a worker process; it yields picklable updates)."""
    yield from logic.generate_story(MODEL, timeline, settings, run_dir, stop_file=stop_file, window_videos=live)


def _gpu_seconds(timeline, settings, *args, **kwargs) -> int:
    return logic.estimate_seconds(MODEL, timeline, settings)


if spaces is not None:
    _story = spaces.GPU(duration=_gpu_seconds)(_story)


# ---- per-session files and the stop flag -------------------------------------------------------------------


def _session_dir(request: gr.Request | None, create: bool = True) -> Path:
    session = getattr(request, "session_hash", None) or "anonymous"
    folder = RUNS / "".join(c for c in session if c.isalnum() or c in "-_")[:64]
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _remove_old_runs() -> None:
    cutoff = time.time() - KEEP_RUNS_S
    for run in RUNS.glob("*/run-*"):
        try:
            if run.stat().st_mtime < cutoff:
                shutil.rmtree(run, ignore_errors=True)
        except OSError:
            pass


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# ---- status -------------------------------------------------------------------------------------------------


def _status(title: str, detail: str = "", fraction: float | None = None, kind: str = "info") -> str:
    bar = "" if fraction is None else (f'<progress max="1000" value="{round(1000 * fraction)}" '
                                       f'aria-label="story progress"></progress>')
    detail = f'<div class="detail">{detail}</div>' if detail else ""
    return f'<div class="story-status {kind}"><b>{title}</b>{bar}{detail}</div>'


def _update_status(u: logic.StoryUpdate) -> str:
    scene = f"Scene {u.scene + 1}/{u.scenes}: <i>{html.escape(u.prompt)}</i>"
    frames = f"{u.frames_done}/{u.frames_total} frames · {u.elapsed:.1f} s · seed {u.seed}"
    if not u.final:
        return _status(f"Generating… {scene}", frames, u.fraction)
    if u.error:
        return _status(f"Failed in scene {u.scene + 1}/{u.scenes}", f"{html.escape(u.error)}<br>Kept what was "
                       f"made: {frames}", u.fraction, "error")
    if u.stopped:
        return _status("Stopped", f"Kept what was made: {frames}", u.fraction, "warning")
    return _status("Done", f"{u.scenes} scene{'s' if u.scenes > 1 else ''} · {frames}", 1.0, "done")


IDLE = _status("Ready", "Write a timeline and press Generate.")

# ---- event handlers -----------------------------------------------------------------------------------------


def generate(timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes,
             request: gr.Request, progress=gr.Progress()):
    """Generates a video from a timeline of (prompt, seconds) scenes, streaming every window as it is decoded.

    Yields (live preview chunk, frames of the latest window, status HTML, video, MP4 file, GIF file, seed used):
    for each window, its frames as soon as they are decoded, then the same with its clip for the live preview (the
    first update has no clip: its chunk is None); the last update carries the MP4 and GIF of the whole story.
    seed -1 picks a random seed; refine_passes may be left out (default 1)."""
    session = _session_dir(request)
    stop_file, running = session / "STOP", session / "RUNNING"
    _unlink(session / "QUEUED")
    story, settings = _checked(timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes)
    settings = settings.resolve_seed()
    _touch(running)
    _remove_old_runs()
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=session))
    first = story[0][0]
    progress(0.0, desc=f"Scene 1/{len(story)}: {first}")
    starting = _status(f"Starting… Scene 1/{len(story)}: <i>{html.escape(first)}</i>", f"seed {settings.seed}", 0.0)
    yield None, None, starting, None, None, None, settings.seed
    update = None
    try:
        for update in _story(story, settings, str(run_dir), str(stop_file), LIVE_PREVIEW):
            progress((update.frames_done, update.frames_total), unit="frames",
                     desc=f"Scene {update.scene + 1}/{update.scenes}: {update.prompt}")
            if not update.final:
                yield (update.window_video, update.window_sheet, _update_status(update), None, None, None,
                       update.seed)
    except gr.Error:
        raise
    except Exception as error:  # the first window failed (later failures come back in the final update)
        raise gr.Error(f"The generation failed: {type(error).__name__}: {error}", title="Generation failed") \
            from error
    finally:
        _unlink(running, stop_file)
    if update is None or not update.final:  # cannot happen: generate_story always ends with a final update
        raise gr.Error("The generation ended without a result", title="Generation failed")
    if update.error:  # a message, not gr.Error: an error would cover the outputs, and the frames made are kept
        gr.Warning(f"The story failed in scene {update.scene + 1}: {html.escape(update.error)}. The "
                   f"{update.frames_done} frames made before it are kept.", title="Generation failed", duration=None)
    elif update.stopped:
        gr.Info(f"Stopped after {update.frames_done} of {update.frames_total} frames; the video has what was made.",
                title="Stopped")
    yield (None, update.window_sheet, _update_status(update), update.video, update.video, update.gif, update.seed)


def _checked(timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes):
    try:
        story = logic.parse_timeline(timeline)
        settings = logic.parse_settings(steps, temperature, critic_strength, guidance_scale, seed, refine_passes,
                                        has_critic=MODEL.has_critic)
        logic.check_story(MODEL, story, settings)
    except logic.InputError as error:
        raise gr.Error(str(error), title="Please check the input", print_exception=False) from None
    return story, settings


def prepare(timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes,
            request: gr.Request):
    """Runs at once when Generate is pressed: a bad input is a message (and nothing is queued); otherwise it clears
    the last result and arms the stop button. One round trip before the story is queued, not two."""
    _checked(timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes)
    session = _session_dir(request)
    _unlink(session / "STOP")
    _touch(session / "QUEUED")
    return (None, None, None, _status("Waiting for a free slot…", "Your story starts as soon as the model is free."),
            gr.Button(interactive=False))


def stop(request: gr.Request):
    """Stops this session's story after the window being made (or before it starts, if it is still queued)."""
    session = _session_dir(request, create=False)
    if (session / "RUNNING").exists() or (session / "QUEUED").exists():
        _touch(session / "STOP")
        return _status("Stopping after the current window…", "The frames made so far are kept.", None, "warning")
    return gr.skip()


def on_unload(request: gr.Request):
    """The tab was closed: a running story of this session stops at the next window."""
    session = _session_dir(request, create=False)
    if (session / "RUNNING").exists() or (session / "QUEUED").exists():
        _touch(session / "STOP")


def randomize_changed(randomize: bool, seed, last_seed):
    if randomize:
        return gr.Number(value=logic.RANDOM_SEED, interactive=False)
    keep = last_seed if last_seed not in (None, "") and float(last_seed) >= 0 else 0
    return gr.Number(value=int(keep) if seed in (None, "") or float(seed) < 0 else seed, interactive=True)


def seed_changed(seed):
    """A seed was put in the box (by an example, or "Reuse this seed"): use it rather than a random one."""
    try:
        return False if float(seed) >= 0 else gr.skip()
    except (TypeError, ValueError):
        return gr.skip()


def reuse_seed(last_seed):
    if last_seed in (None, "") or float(last_seed) < 0:
        return gr.skip(), gr.skip()
    return gr.Number(value=int(last_seed), interactive=True), False


# ---- the Inspect tab ----------------------------------------------------------------------------------------


def _inspect_gpu(view, run_dir, *args):
    """The model part of an Inspect view (on ZeroGPU it runs in a worker process: it returns paths and values)."""
    return view(MODEL, run_dir, *args)


if spaces is not None:
    _inspect_gpu = spaces.GPU(duration=60)(_inspect_gpu)


def _inspect(view, request, *args):
    """Runs an Inspect view in a fresh per-request folder; bad input is a message and leaves nothing behind."""
    _remove_old_runs()
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=_session_dir(request)))
    try:
        return _inspect_gpu(view, str(run_dir), *args)
    except logic.InputError as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise gr.Error(str(error), title="Please check the input", print_exception=False) from None
    except Exception as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise gr.Error(f"The inspection failed: {type(error).__name__}: {error}", title="Inspection failed") \
            from error


# ---- layout -------------------------------------------------------------------------------------------------

CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
#mp4 .empty, #gif .empty { min-height: 72px; height: 72px; }
.story-status { padding: 6px 2px; }
.story-status progress { display: block; width: 100%; height: 10px; margin: 6px 0 2px; }
.story-status .detail { font-size: 0.9em; opacity: 0.85; }
.story-status.error b { color: var(--error-text-color, #dc2626); }
.story-status.done b { color: var(--color-green-600, #16a34a); }
"""
# system fonts only: the default theme's web fonts would be one more download (and Google Fonts is outside)
THEME = gr.themes.Default(
    font=[gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), gr.themes.Font("Roboto"), "sans-serif"],
    font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("Consolas"), "monospace"])

examples = startup.load_examples(EXAMPLES) if EXAMPLES.is_dir() else []
critic_note = ("How much the Token Critic, rather than the generator's own confidence, picks the tokens to keep."
               if MODEL.has_critic else "This model has no Token Critic, so this stays at 0.")

with gr.Blocks(title="Phenaki: text to video", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
    gr.Markdown("# Phenaki: text to video\nWrite a story as a timeline of scenes; each scene continues the one "
                "before. The video is made window by window, and you watch the frames as they are decoded.")
    gr.Markdown(startup.describe_model(MODEL, SHOWN_NAME, MODEL_REVISION), elem_id="model-info")
    with gr.Tab("Generate", id="generate"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                timeline = gr.Dataframe(
                    value=logic.DEFAULT_TIMELINE, headers=logic.TIMELINE_HEADERS, datatype=["str", "number"],
                    column_count=(2, "fixed"), type="pandas", interactive=True, label="Timeline",
                    column_widths=["75%", "25%"], wrap=True, show_row_numbers=True, elem_id="timeline")
                summary = gr.Markdown(logic.timeline_summary(logic.DEFAULT_TIMELINE, MODEL.fps),
                                      elem_id="timeline-summary")
                with gr.Row():
                    add_btn = gr.Button("+ Add scene", size="sm", elem_id="add-scene")
                    del_btn = gr.Button("- Delete last scene", size="sm", elem_id="delete-scene")
                with gr.Row(equal_height=True):
                    seed_box = gr.Number(label="Seed (-1: random)", value=logic.RANDOM_SEED, precision=0,
                                         minimum=-1, interactive=False, elem_id="seed")
                    randomize = gr.Checkbox(label="Randomize seed", value=True, elem_id="randomize")
                with gr.Accordion("Sampling settings", open=False, elem_id="sampling"):
                    steps = gr.Slider(*logic.LIMITS["steps"], value=logic.DEFAULTS["steps"], step=1,
                                      label="Steps", info="MaskGIT decoding steps per window (more: slower)",
                                      elem_id="steps")
                    guidance = gr.Slider(*logic.LIMITS["guidance_scale"], value=logic.DEFAULTS["guidance_scale"],
                                         step=0.5, label="Guidance scale",
                                         info="How strongly the prompt is followed (1: no guidance, 0: prompt ignored)",
                                         elem_id="guidance")
                    temperature = gr.Slider(*logic.LIMITS["temperature"], value=logic.DEFAULTS["temperature"],
                                            step=0.1, label="Temperature",
                                            info="Randomness of which tokens are kept at each step",
                                            elem_id="temperature")
                    critic = gr.Slider(*logic.LIMITS["critic_strength"], value=logic.DEFAULTS["critic_strength"],
                                       step=0.05, label="Critic strength", info=critic_note,
                                       interactive=MODEL.has_critic, elem_id="critic")
                    refine = refine_slider("refine")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                examples_block = None
                if examples:  # not cached, so nothing is generated at start-up
                    examples_block = gr.Examples(
                        examples=[[ex.timeline, ex.seed] for ex in examples], inputs=[timeline, seed_box],
                        example_labels=[ex.title for ex in examples], cache_examples=False,
                        label="Examples (pick one, then press Generate)", examples_per_page=12)
            with gr.Column(scale=7, min_width=320):
                status = gr.HTML(IDLE, elem_id="status")
                with gr.Row(equal_height=True):
                    live = gr.Video(label="Live preview (each window as it is decoded)", streaming=True,
                                    autoplay=True, interactive=False, visible=LIVE_PREVIEW, height=VIDEO_HEIGHT,
                                    buttons=[], elem_id="live", elem_classes="pixelated")
                    video = gr.Video(label="Video", interactive=False, autoplay=True, loop=True,
                                     height=VIDEO_HEIGHT, buttons=["download"], elem_id="video",
                                     elem_classes="pixelated")
                sheet = gr.Image(label="Frames of the latest window", type="filepath", interactive=False,
                                 format="png", buttons=["download", "fullscreen"], elem_id="frames",
                                 elem_classes="pixelated")
                with gr.Row(equal_height=True):
                    mp4_file = gr.File(label="MP4 (H.264)", interactive=False, height=80, elem_id="mp4")
                    gif_file = gr.File(label="GIF", interactive=False, height=80, elem_id="gif")
                with gr.Row(equal_height=False):
                    seed_used = gr.Number(label="Seed used", value=None, precision=0, interactive=False, scale=3,
                                          elem_id="seed-used")
                    reuse_btn = gr.Button("Reuse this seed", size="sm", scale=1, min_width=120,
                                          elem_id="reuse-seed")
    with gr.Tab("Inspect", id="inspect"):  # how a video is made; each view is also a named API endpoint
        inspect_tab(MODEL, _inspect, CONCURRENCY)
    timeline.change(lambda t: logic.timeline_summary(t, MODEL.fps), timeline, summary, queue=False,
                    show_progress="hidden", api_visibility="private")
    add_btn.click(logic.add_scene, timeline, timeline, queue=False, api_visibility="private")
    del_btn.click(logic.delete_scene, timeline, timeline, queue=False, api_visibility="private")
    randomize.change(randomize_changed, [randomize, seed_box, seed_used], seed_box, queue=False,
                     api_visibility="private")
    seed_box.change(seed_changed, seed_box, randomize, queue=False, show_progress="hidden",
                    api_visibility="private")
    reuse_btn.click(reuse_seed, seed_used, [seed_box, randomize], queue=False, api_visibility="private")
    inputs = [timeline, steps, temperature, critic, guidance, seed_box, refine]  # refine last: API callers may omit it
    # Generate: check and clear the last result (a bad input is a message, nothing queued) -> generate (queued,
    # streaming). The check is queued too, so that its error shows as a message, but never waits: no limit.
    prepared = generate_btn.click(prepare, inputs, [video, mp4_file, gif_file, status, generate_btn],
                                  preprocess=False, show_progress="hidden", concurrency_limit=None,
                                  api_visibility="private")
    generated = prepared.success(
        generate, inputs, [live, sheet, status, video, mp4_file, gif_file, seed_used], api_name="generate",
        concurrency_limit=CONCURRENCY, concurrency_id="generate",
        preprocess=False)  # raw values: phenaki.demo.stories checks them (API callers may send strings)
    generated.then(lambda: gr.Button(interactive=True), None, generate_btn, queue=False, api_visibility="private")
    stop_btn.click(stop, None, status, queue=False, api_name="stop", show_progress="hidden")
    demo.unload(on_unload)

demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)

# ssr_mode off: the page is served as tested here (Spaces would otherwise put a Node server in front)
LAUNCH = dict(theme=THEME, css=CSS, share=False, show_error=True, ssr_mode=False)

if __name__ == "__main__":
    threads = f" ({THREADS} CPU thread{'s' if THREADS > 1 else ''})" if THREADS else ""
    print(f"Phenaki demo: model {SHOWN_NAME} on {MODEL.device}{threads}; {CONCURRENCY} generation(s) at once, "
          f"queue of {QUEUE_SIZE}; live preview {'on' if LIVE_PREVIEW else 'off (needs ffmpeg and ffprobe)'}",
          flush=True)
    demo.launch(**LAUNCH)
