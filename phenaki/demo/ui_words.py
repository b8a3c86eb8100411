"""The Inspect tab's "Where the words go" view: MaskGit's cross-attention from a window's tokens to each word of the
prompt (`phenaki.demo.views_words` does the work). Its API endpoint:

- `/inspect_words` (prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes) -> (heat-map
  images: the layers' mean, then each layer; MP4 of the window and each word's heat map; the objects' attention
  table; summary).

Built by `ui_inspect.inspect_tab`, inside its tabs.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from . import views_words
from .tool_docs import describe_tool
from .ui_controls import dataframe
from .ui_hints import vocabulary_hints

EXAMPLE = "a red circle moves right and a blue square moves left"  # world 2's grammar; world 1 reads its first half


def words_tab(views, settings_sliders: Callable, refine_slider: Callable, shared: dict) -> None:
    """Builds the view inside the current tabs and wires `/inspect_words` (`shared`: its queue settings; `views`:
    the Inspect tab's `ui_inspect.InspectViews`, not imported here: that module imports this one).
    """

    @describe_tool
    def inspect_words(
        prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes, request: gr.Request
    ):
        """Makes the first window of a prompt's video and shows where its video tokens' cross-attention goes: for
        each word of the prompt (its bytes summed), per layer and averaged, as heat maps over the frames. For a
        caption of two objects ("... and ..."), each object is found by colour and the table gives how much of its
        tokens' attention goes to its own words and to the other object's.

        Args:
            prompt: what happens, as in a timeline's scene (e.g. "a red circle moves right and a blue square moves
                left"); up to 300 characters.
            steps: see SamplingSettings
            temperature: see SamplingSettings
            critic_strength: see SamplingSettings
            guidance_scale: see SamplingSettings
            seed: a whole number from 0, or -1 for a random one.
            refine_passes: see SamplingSettings; may be left out

        Returns:
            (heat-map images with captions; an MP4 of the window and each word's heat map; the objects' table; a
            summary in Markdown)."""
        args = (prompt, steps, temperature, critic_strength, guidance_scale, seed, refine_passes)
        v = views.run_view(views_words.words_view, request, *args)
        return v.gallery, v.video, dataframe(v.table, views_words.WORD_COLUMNS), v.summary

    with gr.Tab("Where the words go", id="inspect-words"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=280):
                prompt = gr.Textbox(value=EXAMPLE, label="Prompt", max_lines=2, elem_id="words-prompt")
                vocabulary_hints(views.ctx.model, prompt, "prompt", "words-prompt", "words_prompt_hint")
                settings = settings_sliders("words")
                seed = gr.Number(label="Seed (-1: random)", value=0, precision=0, minimum=-1, elem_id="words-seed")
                refine = refine_slider("words-refine_passes")
                run = gr.Button("Show the attention", variant="primary", elem_id="words-run")
            with gr.Column(scale=8, min_width=320):
                summary = gr.Markdown(label="Summary", elem_id="words-summary")
                table = gr.Dataframe(
                    label="Each object's tokens: where their attention goes", interactive=False, elem_id="words-table"
                )
                gallery = gr.Gallery(
                    label="Attention on each word (rows) over the frames: the layers' mean, then each layer",
                    columns=1,
                    format="png",
                    object_fit="contain",
                    elem_id="words-gallery",
                    elem_classes="pixelated",
                )
                video = gr.Video(
                    label="The window and each word's heat map (layers' mean)",
                    interactive=False,
                    autoplay=True,
                    loop=True,
                    height=400,
                    elem_id="words-video",
                    elem_classes="pixelated",
                )
    run.click(
        inspect_words,
        [prompt, *settings, seed, refine],
        [gallery, video, table, summary],
        api_name="inspect_words",
        **shared,
    )
