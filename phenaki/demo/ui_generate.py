"""The demo's Generate tab: a timeline of scenes in, a video streamed window by window out.

Layout and wiring only; the work is `phenaki.demo.stories` (checked inputs, the streaming story generator, MP4/GIF
files), run through `DemoContext.story` (on ZeroGPU, in a GPU worker process). Its API endpoints: `/generate`
(timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes, start) streams an update
per window, (live preview, frames of the latest window, status, video, MP4 file, GIF file, seed used, the first
window's emerging picture: `ui_emerging.py`); `/stop` stops the caller's running (or queued) story after the
current window. The start's box is `ui_start`. Built inside `phenaki.demo.ui.build_demo`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from . import stories as logic
from . import timeline_table, ui_start
from .sessions import QUEUED, RUNNING, STOP, touch, unlink
from .tool_docs import describe_tool
from .ui_controls import sampling_slider
from .ui_emerging import EMERGING, picture, streaming_player
from .ui_hints import vocabulary_hints

if TYPE_CHECKING:
    from .context import DemoContext
    from .startup import Example

VIDEO_HEIGHT = 360


# ---- status -------------------------------------------------------------------------------------------------


def status_html(title: str, detail: str = "", fraction: float | None = None, kind: str = "info") -> str:
    """The status box: a title, a progress bar when `fraction` is known, a detail line; `kind` colours it."""
    bar = (
        ""
        if fraction is None
        else (f'<progress max="1000" value="{round(1000 * fraction)}" aria-label="story progress"></progress>')
    )
    detail = f'<div class="detail">{detail}</div>' if detail else ""
    return f'<div class="story-status {kind}"><b>{title}</b>{bar}{detail}</div>'


def update_status(u: logic.StoryUpdate) -> str:
    scene = f"Scene {u.scene + 1}/{u.scenes}: <i>{html.escape(u.prompt)}</i>"
    frames = f"{u.frames_done}/{u.frames_total} frames · {u.elapsed:.1f} s · seed {u.seed}"
    frames += f" · {html.escape(u.reuse)}" if u.reuse else ""  # from the story cache: "scenes 1–2 reused, 3 made"
    if not u.final:
        return status_html(f"Generating… {scene}", frames + (f"<br>{EMERGING}" if u.preview else ""), u.fraction)
    if u.error:
        return status_html(
            f"Failed in scene {u.scene + 1}/{u.scenes}",
            f"{html.escape(u.error)}<br>Kept what was made: {frames}",
            u.fraction,
            "error",
        )
    if u.stopped:
        return status_html("Stopped", f"Kept what was made: {frames}", u.fraction, "warning")
    return status_html("Done", f"{u.scenes} scene{'s' if u.scenes > 1 else ''} · {frames}", 1.0, "done")


IDLE = status_html("Ready", "Write a timeline and press Generate.")


# ---- event handlers -----------------------------------------------------------------------------------------


class StoryHandlers:
    """The handlers that touch the model or the session's files, over one `DemoContext`."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    @describe_tool
    def generate(
        self,
        timeline,
        steps,
        temperature,
        critic_strength,
        guidance_scale,
        seed,
        refine_passes,
        start: dict | str | None = None,
        request: gr.Request = None,
        progress=gr.Progress(),  # noqa: B008 - Gradio's way to ask for a progress bar
    ):
        """Makes a video from a story told as a timeline of scenes, each a text prompt and its length in seconds,
        each scene continuing the one before; every window of frames is streamed as soon as it is decoded.

        Args:
            timeline: the scenes in order, as a table {"headers": ["prompt", "seconds"], "data": [["a red circle
                moves right", 2], ["the red circle moves up", 3]]}; at most 64 scenes, 300 characters a prompt
                and 120 seconds in all. The bundled model draws one shape: prompts such as "a red circle moves
                right", then "the red circle stays still" (red, green, blue, yellow, cyan, magenta or white; circle,
                square or triangle; moves left, right, up or down, or stays still).
            steps: see SamplingSettings
            temperature: see SamplingSettings
            critic_strength: see SamplingSettings
            guidance_scale: see SamplingSettings
            seed: a whole number from 0, or -1 for a random one (the seed used is returned); the same seed and
                settings make the same video.
            refine_passes: see SamplingSettings; may be left out
            start: optional (may be left out), an image or a video file the story begins from, at most 50 MB and
                60 seconds: an image becomes the story's first frame and the first scene continues it; a video's
                last frames start the story, which continues them. It is centre-cropped and resized to the model's
                frames (an image smaller than a frame is refused).

        Returns:
            (live preview chunk, frames of the latest window as a PNG, status HTML, video, MP4 file, GIF file, seed
            used, emerging picture), once per window while the story is made (the first update of a window has no
            live chunk), and last with the MP4 (H.264) and GIF of the whole story, which is what a tool call
            returns; files are kept for about an hour. Before the first window, while it is made: its first frame
            as decoded so far (the emerging picture, a PNG with a grey checker where tokens are not chosen yet),
            shown until the window's clip is there."""
        session = self.ctx.sessions.folder(request)
        stop_file, running = session / STOP, session / RUNNING
        unlink(session / QUEUED)
        story, settings = self.checked(
            timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes
        )
        begin = ui_start.checked_start(self.ctx.model, start)
        settings = settings.resolve_seed()
        touch(running)
        run_dir = self.ctx.sessions.new_run(request)
        first = story[0][0]
        progress(0.0, desc=f"Scene 1/{len(story)}: {first}")
        starting = status_html(
            f"Starting… Scene 1/{len(story)}: <i>{html.escape(first)}</i>", f"seed {settings.seed}", 0.0
        )
        yield None, None, starting, None, None, None, settings.seed, picture(None)
        update = shown = None
        try:
            for update in self.ctx.story(
                story, settings, str(run_dir), str(stop_file), self.ctx.live_preview, start=begin
            ):
                # the emerging picture until the first clip is in the live preview (its frames, without one)
                shown = update.preview or (None if update.window_video or not self.ctx.live_preview else shown)
                progress(
                    (update.frames_done, update.frames_total),
                    unit="frames",
                    desc=f"Scene {update.scene + 1}/{update.scenes}: {update.prompt}",
                )
                if not update.final:
                    clip, sheet, status = update.window_video, update.window_sheet, update_status(update)
                    yield clip, sheet, status, None, None, None, update.seed, picture(shown)
        except gr.Error:
            raise
        except Exception as error:  # the first window failed (later failures come back in the final update)
            raise gr.Error(
                f"The generation failed: {type(error).__name__}: {error}", title="Generation failed"
            ) from error
        finally:
            unlink(running, stop_file)
        if update is None or not update.final:  # cannot happen: generate_story always ends with a final update
            raise gr.Error("The generation ended without a result", title="Generation failed")
        if update.error:  # a message, not gr.Error: an error would cover the outputs, and the frames made are kept
            gr.Warning(
                f"The story failed in scene {update.scene + 1}: {html.escape(update.error)}. The "
                f"{update.frames_done} frames made before it are kept.",
                title="Generation failed",
                duration=None,
            )
        elif update.stopped:
            gr.Info(
                f"Stopped after {update.frames_done} of {update.frames_total} frames; the video has what was made.",
                title="Stopped",
            )
        files = update.video, update.video, update.gif  # the video, the MP4 file, the GIF file
        yield None, update.window_sheet, update_status(update), *files, update.seed, None  # then hidden (.then)

    def checked(self, timeline, steps, temperature, critic_strength, guidance_scale, seed, refine_passes):
        """(timeline, settings) checked against the model, or gr.Error with what to fix."""
        model = self.ctx.model
        try:
            story = logic.parse_timeline(timeline)
            settings = logic.parse_settings(
                steps, temperature, critic_strength, guidance_scale, seed, refine_passes, has_critic=model.has_critic
            )
            logic.check_story(model, story, settings)
        except logic.InputError as error:
            raise gr.Error(str(error), title="Please check the input", print_exception=False) from None
        return story, settings

    def prepare(self, timeline, steps, temperature, critic, guidance, seed, refine, start, request: gr.Request):
        """Runs at once when Generate is pressed: a bad input is a message (and nothing is queued); otherwise it
        clears the last result and arms the stop button. One round trip before the story is queued, not two."""
        self.checked(timeline, steps, temperature, critic, guidance, seed, refine)
        ui_start.checked_start(self.ctx.model, start)
        session = self.ctx.sessions.folder(request)
        unlink(session / STOP)
        touch(session / QUEUED)
        waiting = status_html("Waiting for a free slot…", "Your story starts as soon as the model is free.")
        return None, None, None, waiting, gr.Button(interactive=False)

    def stop(self, request: gr.Request):
        """Stops this session's story after the window being made (or before it starts, if it is still queued)."""
        if self.ctx.sessions.busy(request):
            touch(self.ctx.sessions.folder(request, create=False) / STOP)
            return status_html(
                "Stopping after the current window…", "The frames made so far are kept.", None, "warning"
            )
        return gr.skip()

    def on_unload(self, request: gr.Request):
        """The tab was closed: a running story of this session stops at the next window."""
        if self.ctx.sessions.busy(request):
            touch(self.ctx.sessions.folder(request, create=False) / STOP)


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


# ---- layout -------------------------------------------------------------------------------------------------


def settings_accordion(model, prefix: str = "") -> list[gr.Slider]:
    """Steps, guidance, temperature, critic strength, refinement passes (the controls, in display order), built
    from `SamplingSettings`' limits; `prefix` goes before each elem_id (another tab's copy: "live-")."""
    ids = dict(
        steps="steps",
        guidance_scale="guidance",
        temperature="temperature",
        critic_strength="critic",
        refine_passes="refine",
    )
    with gr.Accordion("Sampling settings", open=False, elem_id=f"{prefix}sampling"):
        return [sampling_slider(name, f"{prefix}{elem}", model.has_critic) for name, elem in ids.items()]


@dataclass
class GenerateTab:
    """What other parts of the page need of the Generate tab: its handlers (the page's unload event needs
    `on_unload`) and the inputs another tab may fill (the Live tab's "Open in Generate")."""

    handlers: StoryHandlers
    timeline: gr.Dataframe
    seed: gr.Number
    settings: list[gr.Slider]  # steps, guidance, temperature, critic, refine (as `settings_accordion` gives them)
    start: ui_start.StartBox  # cleared with the rest: a start left from before would change the story


def generate_tab(ctx: DemoContext, examples: list[Example] = ()) -> GenerateTab:
    """Builds the Generate tab's contents inside the current `gr.Tab` and wires its events."""
    handlers, model = StoryHandlers(ctx), ctx.model
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            timeline = gr.Dataframe(
                value=logic.DEFAULT_TIMELINE,
                headers=logic.TIMELINE_HEADERS,
                datatype=["str", "number"],
                column_count=(2, "fixed"),
                type="pandas",
                interactive=True,
                label="Timeline",
                column_widths=["75%", "25%"],
                wrap=True,
                show_row_numbers=True,
                elem_id="timeline",
            )
            summary = gr.Markdown(
                timeline_table.timeline_summary(logic.DEFAULT_TIMELINE, model.fps), elem_id="timeline-summary"
            )
            vocabulary_hints(model, timeline, "timeline", "timeline", "timeline_hint")  # words it knows, unseen ones
            with gr.Row():
                add_btn = gr.Button("+ Add scene", size="sm", elem_id="add-scene")
                del_btn = gr.Button("- Delete last scene", size="sm", elem_id="delete-scene")
            start = ui_start.start_box(ctx)
            with gr.Row(equal_height=True):
                seed_box = gr.Number(
                    label="Seed (-1: random)",
                    value=logic.RANDOM_SEED,
                    precision=0,
                    minimum=-1,
                    interactive=False,
                    elem_id="seed",
                )
                randomize = gr.Checkbox(label="Randomize seed", value=True, elem_id="randomize")
            steps, guidance, temperature, critic, refine = settings_accordion(model)
            with gr.Row():
                generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
            if examples:  # not cached, so nothing is generated at start-up; an example clears the start
                shown = gr.Examples(
                    examples=[[ex.timeline, ex.seed] for ex in examples],
                    inputs=[timeline, seed_box],
                    example_labels=[ex.title for ex in examples],
                    cache_examples=False,
                    label="Examples (pick one, then press Generate)",
                    examples_per_page=12,
                )
                shown.load_input_event.then(
                    ui_start.no_start, None, start.components, queue=False, api_visibility="private"
                )
        with gr.Column(scale=7, min_width=320):
            status = gr.HTML(IDLE, elem_id="status")
            with gr.Row(equal_height=True):
                emerging, live = streaming_player(  # the first window's picture over the preview, until it plays
                    "Live preview (each window as it is decoded)", "live", "emerging", ctx.live_preview, VIDEO_HEIGHT
                )
                video = gr.Video(
                    label="Video",
                    interactive=False,
                    autoplay=True,
                    loop=True,
                    height=VIDEO_HEIGHT,
                    buttons=["download"],
                    elem_id="video",
                    elem_classes="pixelated",
                )
            sheet = gr.Image(
                label="Frames of the latest window",
                type="filepath",
                interactive=False,
                format="png",
                buttons=["download", "fullscreen"],
                elem_id="frames",
                elem_classes="pixelated",
            )
            with gr.Row(equal_height=True):
                mp4_file = gr.File(label="MP4 (H.264)", interactive=False, height=80, elem_id="mp4")
                gif_file = gr.File(label="GIF", interactive=False, height=80, elem_id="gif")
            with gr.Row(equal_height=False):
                seed_used = gr.Number(
                    label="Seed used", value=None, precision=0, interactive=False, scale=3, elem_id="seed-used"
                )
                reuse_btn = gr.Button("Reuse this seed", size="sm", scale=1, min_width=120, elem_id="reuse-seed")

    private = dict(queue=False, api_visibility="private")  # the page's own helpers: not part of the API
    timeline.change(
        lambda t: timeline_table.timeline_summary(t, model.fps), timeline, summary, show_progress="hidden", **private
    )
    add_btn.click(timeline_table.add_scene, timeline, timeline, **private)
    del_btn.click(timeline_table.delete_scene, timeline, timeline, **private)
    randomize.change(randomize_changed, [randomize, seed_box, seed_used], seed_box, **private)
    seed_box.change(seed_changed, seed_box, randomize, show_progress="hidden", **private)
    reuse_btn.click(reuse_seed, seed_used, [seed_box, randomize], **private)
    # refine, then start, last: API callers may omit them
    inputs = [timeline, steps, temperature, critic, guidance, seed_box, refine, start.upload]
    # Generate: check and clear the last result (a bad input is a message, nothing queued) -> generate (queued,
    # streaming). The check is queued too, so that its error shows as a message, but never waits: no limit.
    prepared = generate_btn.click(
        handlers.prepare,
        inputs,
        [video, mp4_file, gif_file, status, generate_btn],
        preprocess=False,
        show_progress="hidden",
        concurrency_limit=None,
        api_visibility="private",
    )
    generated = prepared.success(
        handlers.generate,
        inputs,
        [live, sheet, status, video, mp4_file, gif_file, seed_used, emerging],
        api_name="generate",
        concurrency_limit=ctx.concurrency,
        concurrency_id="generate",
        preprocess=False,
        show_progress_on=[live, sheet, status, video, mp4_file, gif_file, seed_used],  # not over the picture
    )  # raw values: phenaki.demo.stories checks them (API callers may send strings)
    generated.then(lambda: (gr.Button(interactive=True), picture(None)), None, [generate_btn, emerging], **private)
    stop_btn.click(  # callable (gradio_client), not an MCP tool: it stops the caller's session's story
        handlers.stop, None, status, queue=False, api_name="stop", api_visibility="undocumented", show_progress="hidden"
    )
    return GenerateTab(handlers, timeline, seed_box, [steps, guidance, temperature, critic, refine], start)
