"""The demo's Inspect tab: how a video is made. Each view is also a named API endpoint:

- `/inspect_steps` (prompt, frames, steps, temperature, critic_strength, guidance_scale, seed, refine_passes) ->
  (step images, per-step table, MP4 of the window, summary);
- `/inspect_tokenizer` (video file or None, shapes-world clip seed) -> (original | reconstruction MP4, PSNR per
  frame, token grid image, summary);
- `/compare_seeds` (prompt, seeds, steps, temperature, critic_strength, guidance_scale, baseline_guidance,
  refine_passes) -> (MP4 of the seeds, MP4 of the two guidance scales, frames sheet, read-back table, summary).
- `/inspect_words` (prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes) -> (heat maps
  of the tokens' attention on each word, their MP4, the objects' table, summary): `ui_words.py`.

refine_passes comes last and may be left out (default 1). The work is done by `phenaki.demo.views` and
`phenaki.demo.views_tokenizer`, through `DemoContext.view` (on ZeroGPU, in a GPU worker process); this module is
its layout and wiring, built inside `phenaki.demo.ui.build_demo`.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import gradio as gr

from . import stories as logic
from . import views as inspecting
from . import views_tokenizer
from .tool_docs import describe_tool
from .ui_controls import dataframe, refine_slider, sampling_slider
from .ui_hints import vocabulary_hints
from .ui_words import words_tab

if TYPE_CHECKING:
    from .context import DemoContext


class InspectViews:
    """The event handlers, over one `DemoContext`."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    def run_view(self, view, request, *args):
        """Runs a `phenaki.demo.views` view in a fresh per-request folder (on the GPU where there is one); bad
        input is a message and leaves nothing behind."""
        run_dir = self.ctx.sessions.new_run(request)
        try:
            return self.ctx.view(view, str(run_dir), *args)
        except logic.InputError as error:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise gr.Error(str(error), title="Please check the input", print_exception=False) from None
        except Exception as error:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise gr.Error(
                f"The inspection failed: {type(error).__name__}: {error}", title="Inspection failed"
            ) from error

    @describe_tool
    def inspect_steps(
        self,
        prompt,
        frames,
        steps,
        temperature,
        critic_strength,
        guidance_scale,
        seed,
        refine_passes,
        request: gr.Request,
    ):
        """Shows how MaskGIT decodes the first window of a prompt's video, step by step: which tokens each step
        fills and keeps, how confident it was, and the frames decoded so far.

        Args:
            prompt: what happens, as in a timeline's scene (e.g. "a red circle moves right"); up to 300 characters.
            frames: how many frames of the first window to make, a whole number from 1 to the model's window (17
                for the bundled model).
            steps: see SamplingSettings
            temperature: see SamplingSettings
            critic_strength: see SamplingSettings
            guidance_scale: see SamplingSettings
            seed: a whole number from 0, or -1 for a random one.
            refine_passes: see SamplingSettings; may be left out

        Returns:
            (one image per step, refinement's steps included, with its caption; a table of the steps; the window
            as an MP4; a summary in Markdown)."""
        v = self.run_view(
            inspecting.steps_view,
            request,
            prompt,
            frames,
            steps,
            temperature,
            critic_strength,
            guidance_scale,
            seed,
            refine_passes,
        )
        return v.gallery, dataframe(v.table, inspecting.STEP_COLUMNS), v.video, v.summary

    @describe_tool
    def inspect_tokenizer(self, video=None, clip_seed=0, request: gr.Request = None):  # defaults: optional for MCP
        """Runs a video through the model's C-ViViT video tokenizer, to token ids and back to frames: how
        faithful the reconstruction is, frame by frame, and which codebook entries the video uses.

        Args:
            video: the video file (MP4, WebM, GIF, ...; at most 50 MB; its first window of frames is used), as a
                URL; left out (or None), the shapes-world clip of clip_seed is used.
            clip_seed: without a video, which clip of the shapes world to use, a whole number from 0.

        Returns:
            (an MP4 of the original beside its reconstruction; the PSNR of each frame; an image of the token
            grid; a summary in Markdown)."""
        path = video.get("path") if isinstance(video, dict) else video  # raw values: a FileData dict or a path
        v = self.run_view(views_tokenizer.tokenizer_view, request, path, clip_seed)
        return v.video, dataframe(v.psnr, ["frame", "PSNR (dB)", "latent frame"]), v.tokens, v.summary

    @describe_tool
    def compare_seeds(
        self,
        prompt,
        seeds,
        steps,
        temperature,
        critic_strength,
        guidance_scale,
        baseline_guidance,
        refine_passes,
        request: gr.Request,
    ):
        """Makes one prompt's first window under several seeds, side by side, and the first seed again at two
        guidance scales: how much the seed and the guidance change a clip.

        Args:
            prompt: what happens, as in a timeline's scene (e.g. "a red circle moves right"); up to 300 characters.
            seeds: 1 to 8 different whole numbers from 0, as text, e.g. "0, 1, 2, 3".
            steps: see SamplingSettings
            temperature: see SamplingSettings
            critic_strength: see SamplingSettings
            guidance_scale: see SamplingSettings
            baseline_guidance: the guidance scale the first seed is compared at (1: no guidance); a number in the
                guidance scale's range.
            refine_passes: see SamplingSettings; may be left out

        Returns:
            (an MP4 of the seeds side by side; an MP4 of the first seed at the two guidance scales; a sheet of
            every other frame; what the shapes-world analyser reads in each clip; a summary in Markdown)."""
        v = self.run_view(
            inspecting.compare_view,
            request,
            prompt,
            seeds,
            steps,
            temperature,
            critic_strength,
            guidance_scale,
            baseline_guidance,
            refine_passes,
        )
        table = dataframe(v.table, inspecting.COMPARE_COLUMNS)
        return v.seeds_video, v.guidance_video, v.sheet, table, v.summary


def show_step(gallery, step):
    """The step chosen on the slider, from the gallery of all steps."""
    if not gallery:
        return gr.skip(), gr.skip()
    path, caption = gallery[min(max(int(step or 1), 1), len(gallery)) - 1]
    return path, caption


def first_step(gallery):
    count = len(gallery or [])
    return (gr.Slider(minimum=1, maximum=max(count, 2), value=1, step=1, interactive=count > 1), *show_step(gallery, 1))


def inspect_tab(ctx: DemoContext) -> InspectViews:
    """Builds the tab's views inside the current `gr.Tab` and wires them; they queue with the generations (one
    model). Returns the handlers."""
    views, model = InspectViews(ctx), ctx.model
    gr.Markdown(
        "See what the model does: MaskGIT filling a window token by token, the C-ViViT tokenizer on a "
        "video of yours, how the seed and the guidance scale change a clip, and where the tokens' attention on "
        "the prompt's words goes."
    )

    def settings_sliders(prefix: str) -> list:
        """Steps, temperature, critic strength, guidance scale: the order of the API's arguments."""
        names = ("steps", "temperature", "critic_strength", "guidance_scale")
        return [sampling_slider(name, f"{prefix}-{name}", model.has_critic, note=False) for name in names]

    with gr.Tab("Decoding, step by step", id="inspect-steps"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=280):
                steps_prompt = gr.Textbox(
                    value=logic.DEFAULT_TIMELINE[0][0], label="Prompt", max_lines=2, elem_id="steps-prompt"
                )
                vocabulary_hints(model, steps_prompt, "prompt", "steps-prompt", "steps_prompt_hint")
                steps_frames = gr.Slider(
                    1,
                    model.window_frames,
                    value=model.window_frames,
                    step=1,
                    label="Frames",
                    info="of the first window",
                    elem_id="steps-frames",
                )
                steps_settings = settings_sliders("steps")
                steps_seed = gr.Number(
                    label="Seed (-1: random)", value=0, precision=0, minimum=-1, elem_id="steps-seed"
                )
                steps_refine = refine_slider("steps-refine_passes")
                steps_btn = gr.Button("Decode step by step", variant="primary", elem_id="steps-run")
            with gr.Column(scale=8, min_width=320):
                step_slider = gr.Slider(1, 2, value=1, step=1, label="Step", interactive=False, elem_id="step-slider")
                step_caption = gr.Markdown(label="Step", elem_id="step-caption")
                step_image = gr.Image(
                    label="Decoded frames, token states and confidence at this step",
                    type="filepath",
                    format="png",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="step-image",
                    elem_classes="pixelated",
                )
                steps_summary = gr.Markdown(label="Summary", elem_id="steps-summary")
                with gr.Row(equal_height=False):
                    steps_video = gr.Video(
                        label="The window",
                        interactive=False,
                        autoplay=True,
                        loop=True,
                        height=280,
                        elem_id="steps-video",
                        elem_classes="pixelated",
                    )
                    steps_table = gr.Dataframe(label="Steps", interactive=False, elem_id="steps-table")
                with gr.Accordion("All steps", open=False):
                    steps_gallery = gr.Gallery(
                        label="All steps",
                        columns=4,
                        format="png",
                        object_fit="contain",
                        elem_id="steps-gallery",
                        elem_classes="pixelated",
                    )
    with gr.Tab("Tokenizer", id="inspect-tokenizer"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=280):
                tok_file = gr.File(
                    label=f"Your video (MP4, WebM, GIF; at most "
                    f"{views_tokenizer.MAX_UPLOAD_BYTES // 2**20} MB; the first "
                    f"{model.window_frames} frames are used)",
                    file_types=["video", ".gif"],
                    type="filepath",
                    height=120,
                    elem_id="tok-file",
                )
                tok_seed = gr.Number(
                    label="…or, without a file, the shapes-world clip",
                    value=0,
                    precision=0,
                    minimum=0,
                    elem_id="tok-seed",
                )
                tok_btn = gr.Button("Tokenize and reconstruct", variant="primary", elem_id="tok-run")
                tok_summary = gr.Markdown(label="Summary", elem_id="tok-summary")
            with gr.Column(scale=8, min_width=320):
                tok_video = gr.Video(
                    label="Original | reconstruction",
                    interactive=False,
                    autoplay=True,
                    loop=True,
                    height=300,
                    elem_id="tok-video",
                    elem_classes="pixelated",
                )
                tok_psnr = gr.LinePlot(
                    x="frame",
                    y="PSNR (dB)",
                    title="PSNR per frame",
                    label="PSNR per frame",
                    height=220,
                    elem_id="tok-psnr",
                )
                tok_grid = gr.Image(
                    label="Token grid",
                    type="filepath",
                    format="png",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="tok-grid",
                    elem_classes="pixelated",
                )
    with gr.Tab("Seeds and guidance", id="inspect-compare"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=280):
                cmp_prompt = gr.Textbox(
                    value=logic.DEFAULT_TIMELINE[0][0], label="Prompt", max_lines=2, elem_id="cmp-prompt"
                )
                vocabulary_hints(model, cmp_prompt, "prompt", "cmp-prompt", "cmp_prompt_hint")
                cmp_seeds = gr.Textbox(
                    value="0, 1, 2, 3", label=f"Seeds (1 to {inspecting.MAX_SEEDS})", elem_id="cmp-seeds"
                )
                cmp_settings = settings_sliders("cmp")
                cmp_baseline = gr.Slider(
                    *logic.LIMITS["guidance_scale"],
                    value=1.0,
                    step=0.5,
                    label="Compared with guidance scale",
                    info="the first seed again, at this scale (1: no guidance)",
                    elem_id="cmp-baseline",
                )
                cmp_refine = refine_slider("cmp-refine_passes")
                cmp_btn = gr.Button("Compare", variant="primary", elem_id="cmp-run")
            with gr.Column(scale=8, min_width=320):
                cmp_summary = gr.Markdown(label="Summary", elem_id="cmp-summary")
                cmp_seeds_video = gr.Video(
                    label="Seeds side by side",
                    interactive=False,
                    autoplay=True,
                    loop=True,
                    height=300,
                    elem_id="cmp-seeds-video",
                    elem_classes="pixelated",
                )
                cmp_guidance_video = gr.Video(
                    label="One seed, two guidance scales",
                    interactive=False,
                    autoplay=True,
                    loop=True,
                    height=300,
                    elem_id="cmp-guidance-video",
                    elem_classes="pixelated",
                )
                cmp_sheet = gr.Image(
                    label="Every other frame",
                    type="filepath",
                    format="png",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="cmp-sheet",
                    elem_classes="pixelated",
                )
                cmp_table = gr.Dataframe(
                    label="What the shapes-world analyser sees", interactive=False, elem_id="cmp-table"
                )
    # raw values (preprocess=False): the views check them, API callers may send strings; one model, so
    # these queue with the generations
    shared = dict(concurrency_limit=ctx.concurrency, concurrency_id="generate", preprocess=False)
    decoded = steps_btn.click(
        views.inspect_steps,
        [steps_prompt, steps_frames, *steps_settings, steps_seed, steps_refine],
        [steps_gallery, steps_table, steps_video, steps_summary],
        api_name="inspect_steps",
        **shared,
    )
    decoded.success(
        first_step, steps_gallery, [step_slider, step_image, step_caption], queue=False, api_visibility="private"
    )
    step_slider.input(
        show_step,
        [steps_gallery, step_slider],
        [step_image, step_caption],
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    tok_btn.click(
        views.inspect_tokenizer,
        [tok_file, tok_seed],
        [tok_video, tok_psnr, tok_grid, tok_summary],
        api_name="inspect_tokenizer",
        **shared,
    )
    cmp_btn.click(
        views.compare_seeds,
        [cmp_prompt, cmp_seeds, *cmp_settings, cmp_baseline, cmp_refine],
        [cmp_seeds_video, cmp_guidance_video, cmp_sheet, cmp_table, cmp_summary],
        api_name="compare_seeds",
        **shared,
    )
    words_tab(views, settings_sliders, refine_slider, shared)
    return views
