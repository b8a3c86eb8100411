"""The demo's Live tab: a story that plays while it is made and follows a new prompt as you type it.

Layout and wiring only; the work is `phenaki.demo.live_session` (the paced story, the files that reach it), run
through `DemoContext.live`. Its API endpoints:

- `/live` (prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes) streams an update per
  window, and about one a second while it waits for playback: (live video chunk, status HTML, MP4 file, timeline
  JSON file, seed used, the first window's emerging picture: `ui_emerging.py`); the last update carries the MP4
  of everything made and the timeline JSON (the Generate tab's format, with the seed and settings: `/generate` of
  it with them makes the same frames). seed -1: random.
  It waits in the same queue as `/generate` (one model run at a time) and ends at `/stop_live`, when the page is
  closed, at PHENAKI_LIVE_MAX_SECONDS of video, or before its files would pass PHENAKI_LIVE_MAX_MB (they are
  removed once handed to Gradio, which serves its own copy);
- `/steer` (prompt) -> a note: the caller's running live story (the same session: one gradio_client Client)
  follows `prompt` from its next window; an error when the session runs no live story or the prompt is bad;
- `/stop_live` () -> a note: the caller's live story ends after the current window, keeping what was made (the
  page's Stop also reaches one still waiting in the queue, which Start marked: it then ends, when its turn comes,
  before making a frame; an API caller cancels a waiting job instead). `/stop` stops the Generate tab's story.

Built inside `phenaki.demo.ui.build_demo`.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from . import stories as logic
from . import ui_start
from .live_session import LiveControl, LiveUpdate, parse_prompt
from .ui_emerging import EMERGING, picture, streaming_player
from .ui_generate import VIDEO_HEIGHT, settings_accordion, status_html
from .ui_hints import vocabulary_hints

if TYPE_CHECKING:
    from .context import DemoContext
    from .ui_generate import GenerateTab

DEFAULT_PROMPT = "a red circle moves right"
IDLE = status_html("Ready", "Write a prompt and press Start; while it plays, type a new prompt and press Enter.")
STOPPING = "Stopping after the current window… the frames made so far are kept."
STOPPING_QUEUED = "Stopped before it started: it ends, without making a frame, when its turn comes."
NOTHING_TO_STOP = "No live story is running in this session."
ENDINGS = {
    "stopped": ("Stopped", "warning"),
    "limit": ("Reached the length limit", "done"),
    "time": ("Reached the time limit", "warning"),
    "disk": ("Reached the file size limit", "warning"),
    "": ("Ended", "done"),
}


def live_status(u: LiveUpdate) -> str:
    """The status box: the prompt now playing, the scene, frames made and played, the speed."""
    scene, prompt = u.playing()
    numbers = (
        f"{u.frames_made} frames made ({u.frames_made / u.fps:.1f} s, scene {u.scene + 1}) · "
        f"{u.frames_played} played · {u.speed:.1f}× real time · seed {u.seed}"
    )
    fraction = min(1.0, u.frames_made / (u.max_seconds * u.fps))
    if u.final:
        title, kind = ("Failed", "error") if u.error else ENDINGS.get(u.ended, ENDINGS[""])
        scenes = f"{len(u.timeline)} scene{'s' * (len(u.timeline) != 1)}"
        error = f"{html.escape(u.error)}<br>" if u.error else ""
        return status_html(title, f"{error}{scenes} · {numbers}", fraction, kind)
    lines = [numbers]
    if u.scene != scene:
        lines.append(f"Made ahead: <i>{html.escape(u.prompt)}</i>")
    if u.next_prompt:
        lines.append(f"Next window: <i>{html.escape(u.next_prompt)}</i>")
    if u.preview:
        return status_html(f"Starting… <i>{html.escape(prompt)}</i>", f"{EMERGING} · seed {u.seed}", fraction)
    return status_html(f"Playing scene {scene + 1}: <i>{html.escape(prompt)}</i>", "<br>".join(lines), fraction)


class LiveHandlers:
    """The handlers that touch the model or the session's files, over one `DemoContext`."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    def control(self, request, create: bool = True) -> LiveControl:
        return LiveControl(self.ctx.sessions.folder(request, create=create))

    def checked(self, prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes):
        """(prompt, settings) checked, or gr.Error with what to fix."""
        try:
            prompt = parse_prompt(prompt)
            settings = logic.parse_settings(
                steps,
                temperature,
                critic_strength,
                guidance_scale,
                seed,
                refine_passes,
                has_critic=self.ctx.model.has_critic,
            )
        except logic.InputError as error:
            raise gr.Error(str(error), title="Please check the input", print_exception=False) from None
        return prompt, settings

    def prepare(
        self, prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes, request: gr.Request
    ):
        """Runs at once when Start is pressed: a bad input is a message (nothing is queued); otherwise it clears
        the last result and arms Stop."""
        self.checked(prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes)
        self.control(request).queue()
        waiting = status_html("Waiting for a free slot…", "Your story starts as soon as the model is free.")
        return None, None, None, waiting, "", gr.Button(interactive=False)

    def live(
        self, prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes, request: gr.Request
    ):
        """Plays a story from `prompt` while it is made, window after window, until /stop_live (or the page is
        closed, or the server's length limit); /steer from the same session changes the prompt from the next
        window.

        Yields (live video chunk, status HTML, MP4 file, timeline JSON file, seed used, emerging picture): while
        the first window is made, its first frame as decoded so far (a PNG, masked tokens as a grey checker; None
        from its clip on); one update a window with its clip, about one a second while waiting for playback (made
        at most 3 windows ahead of it), and at the end the MP4 of everything made and its timeline JSON (the
        Generate tab's format, with seed and settings). seed -1 picks a random seed; refine_passes may be left out
        (default 1)."""
        prompt, settings = self.checked(
            prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes
        )
        settings = settings.resolve_seed()
        control = self.control(request)
        if not control.begin():
            raise gr.Error(
                "A live story is already running in this session: stop it first.",
                title="Already running",
                print_exception=False,
            )
        update = run_dir = updates = None
        try:
            run_dir = self.ctx.sessions.new_run(request)
            yield (
                None,
                status_html(f"Starting… <i>{html.escape(prompt)}</i>", f"seed {settings.seed}", 0.0),
                None,
                None,
                settings.seed,
                picture(None),
            )
            updates = self.ctx.live(prompt, settings, str(run_dir), str(control.folder), self.ctx.live_preview)
            for update in updates:
                if not update.final:
                    video, status = update.window_video or gr.skip(), live_status(update)
                    yield (video, status, gr.skip(), gr.skip(), update.seed, picture(update.preview))
        except logic.InputError as error:
            raise gr.Error(str(error), title="Please check the input", print_exception=False) from None
        except gr.Error:
            raise
        except Exception as error:  # the first window failed (later failures come back in the final update)
            raise gr.Error(
                f"The live story failed: {type(error).__name__}: {error}", title="Live story failed"
            ) from error
        finally:
            getattr(updates, "close", lambda: None)()  # its MP4 writer ends now, not when collected
            control.end()
            if run_dir is not None and not (update and update.final):  # failed, or its client left: no result
                shutil.rmtree(run_dir, ignore_errors=True)
        if update is None or not update.final:  # cannot happen: live_story always ends with a final update
            raise gr.Error("The live story ended without a result", title="Live story failed")
        if update.error:
            gr.Warning(
                f"The live story failed: {html.escape(update.error)}. The {update.frames_made} frames made "
                f"before it are kept.",
                title="Live story failed",
                duration=None,
            )
        elif update.ended == "limit":
            gr.Info(f"The story reached this server's limit of {update.max_seconds:g} s.", title="Ended")
        elif update.ended == "time":
            gr.Info(f"The story ran for this server's limit of {update.max_seconds:g} s.", title="Ended")
        elif update.ended == "disk":
            mb = self.ctx.live_max_bytes / 1e6
            gr.Info(f"The story's files reached this server's limit of {mb:g} MB.", title="Ended")
        try:  # Gradio copies the MP4 and the timeline into its cache before it asks for more
            yield gr.skip(), live_status(update), update.video, update.timeline_file, update.seed, None  # then hidden
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def steer(self, prompt, request: gr.Request):
        """Changes the prompt of this session's running live story from its next window (/live's caller, in the
        same session). Returns a note saying what plays next."""
        control = self.control(request, create=False)
        if not control.running():
            raise gr.Error(
                "No live story is running in this session: press Start (or call /live) first.",
                title="Nothing to steer",
                print_exception=False,
            )
        try:
            prompt = parse_prompt(prompt, "the new prompt")
        except logic.InputError as error:
            raise gr.Error(str(error), title="Please check the prompt", print_exception=False) from None
        control.steer(prompt)
        return f"Next window: *{prompt}*"

    def stop(self, request: gr.Request):
        """Ends this session's live story after the current window (or before it starts, if it is still
        waiting), keeping what was made. Returns a note; when none is running, it says so (and does nothing)."""
        control = self.control(request, create=False)
        if control.busy():
            queued = not control.running()
            control.stop()
            return STOPPING_QUEUED if queued else STOPPING
        return NOTHING_TO_STOP

    def on_unload(self, request: gr.Request):
        """The tab was closed: a live story of this session stops at the next window (a queued one is dropped
        by Gradio, and its flags go)."""
        self.control(request, create=False).leave()


def open_in_generate(timeline_file):
    """The finished live story's timeline, seed and settings, into the Generate tab (which is then shown), and no
    start there (one left from before would change the story)."""
    if not timeline_file:
        raise gr.Error(
            "There is no finished live story yet: press Start, then Stop.",
            title="Nothing to open",
            print_exception=False,
        )
    try:
        data = json.loads(Path(timeline_file).read_text(encoding="utf-8"))
        rows = logic.parse_timeline(data["timeline"], max_seconds=math.inf, max_scenes=10**9)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise gr.Error(
            f"The timeline file cannot be read: {error}", title="Cannot open", print_exception=False
        ) from None
    seconds = sum(s for _, s in rows)
    if seconds > logic.MAX_STORY_SECONDS or len(rows) > logic.MAX_SCENES:
        gr.Warning(
            f"This story ({seconds:g} s, {len(rows)} scenes) is longer than the Generate tab makes (at most "
            f"{logic.MAX_STORY_SECONDS:g} s, {logic.MAX_SCENES} scenes): shorten it there."
        )
    setting = {
        name: data.get(name, logic.DEFAULTS[name])
        for name in ("steps", "guidance_scale", "temperature", "critic_strength", "refine_passes")
    }
    # the seed alone: the Generate tab unticks "Randomize seed" when a seed is put in its box (as an example does)
    return (
        [list(row) for row in rows],
        gr.Number(value=int(data.get("seed", 0)), interactive=True),
        *setting.values(),
        gr.Tabs(selected="generate"),
        *ui_start.no_start(),
    )


def live_tab(ctx: DemoContext, generate: GenerateTab, tabs: gr.Tabs) -> LiveHandlers:
    """Builds the Live tab's contents inside the current `gr.Tab` and wires its events; "Open in Generate" fills
    `generate`'s inputs and selects its tab in `tabs`. Returns the handlers (the page's unload event needs
    `on_unload`)."""
    handlers, model = LiveHandlers(ctx), ctx.model
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            prompt = gr.Textbox(
                value=DEFAULT_PROMPT,
                label="Prompt",
                lines=1,
                max_lines=3,
                max_length=logic.MAX_PROMPT_CHARS,
                elem_id="live-prompt",
                info="While it plays, type a new prompt and press Enter (or Steer): the next window follows it.",
            )
            vocabulary_hints(model, prompt, "prompt", "live-prompt", "prompt_hint")  # words it knows, unseen ones
            with gr.Row():
                start_btn = gr.Button("Start", variant="primary", elem_id="live-start")
                steer_btn = gr.Button("Steer", elem_id="live-steer")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="live-stop")
            note = gr.Markdown("", elem_id="live-note")
            seed_box = gr.Number(
                label="Seed (-1: random)", value=logic.RANDOM_SEED, precision=0, minimum=-1, elem_id="live-seed"
            )
            steps, guidance, temperature, critic, refine = settings_accordion(model, prefix="live-")
        with gr.Column(scale=7, min_width=320):
            status = gr.HTML(IDLE, elem_id="live-status")
            emerging, video = streaming_player(  # the first window's picture over the video, until it plays
                "Live (plays while it is made)", "live-video", "live-emerging", ctx.live_preview, VIDEO_HEIGHT
            )
            if not ctx.live_preview:
                gr.Markdown("The live player needs ffmpeg and ffprobe on the server; the MP4 comes at the end.")
            with gr.Row(equal_height=True):
                mp4_file = gr.File(label="MP4 of the session (H.264)", interactive=False, height=80, elem_id="live-mp4")
                timeline_file = gr.File(
                    label="Timeline (JSON, as the Generate tab takes it)",
                    interactive=False,
                    height=80,
                    elem_id="live-timeline",
                )
            with gr.Row(equal_height=False):
                seed_used = gr.Number(
                    label="Seed used", value=None, precision=0, interactive=False, scale=3, elem_id="live-seed-used"
                )
                open_btn = gr.Button("Open in Generate", size="sm", scale=1, min_width=140, elem_id="live-to-generate")

    private = dict(queue=False, api_visibility="private", show_progress="hidden")
    inputs = [prompt, steps, temperature, critic, guidance, seed_box, refine]  # as /generate's, refine last
    prepared = start_btn.click(
        handlers.prepare,
        inputs,
        [video, mp4_file, timeline_file, status, note, start_btn],
        preprocess=False,
        show_progress="hidden",
        concurrency_limit=None,
        api_visibility="private",
    )
    played = prepared.success(
        handlers.live,
        inputs,
        [video, status, mp4_file, timeline_file, seed_used, emerging],
        api_name="live",
        api_visibility="undocumented",  # callable (gradio_client), not an MCP tool: see phenaki.demo.tool_docs
        concurrency_limit=ctx.concurrency,
        concurrency_id="generate",  # one model: waits for /generate's stories
        preprocess=False,
        show_progress_on=[status],
    )
    played.then(lambda: (gr.Button(interactive=True), picture(None)), None, [start_btn, emerging], **private)
    session_only = dict(queue=False, api_visibility="undocumented", show_progress="hidden")  # not MCP tools either
    steer_btn.click(handlers.steer, prompt, note, api_name="steer", **session_only)
    prompt.submit(handlers.steer, prompt, note, **private)  # Enter: the same as Steer
    stop_btn.click(handlers.stop, None, note, api_name="stop_live", **session_only)
    open_btn.click(
        open_in_generate,
        timeline_file,
        [generate.timeline, generate.seed, *generate.settings, tabs, *generate.start.components],
        **private,
    )
    return handlers
