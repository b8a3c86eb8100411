"""The Generate tab's optional start: an upload (an image or a video: `/generate`'s last input, `start`), the start
as the model will see it (after the tokenizer), and a small canvas to draw on black (for the shapes world: a blob of
colour, then a prompt such as "the red circle moves left"). The work is `phenaki.demo.start_input`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr
import numpy as np

from . import start_input
from .stories import InputError

if TYPE_CHECKING:
    from ..start import Start
    from .context import DemoContext


@dataclass
class StartBox:
    """The start's parts another event may set: `/generate`'s input (the upload), what the model sees, the note."""

    upload: gr.File
    seen: gr.Image
    note: gr.Markdown

    @property
    def components(self) -> list:
        return [self.upload, self.seen, self.note]


def no_start():
    """`StartBox.components`' values without a start: what an example or "Open in Generate" sets, so that the
    story it fills in is made from the timeline alone (a start left from before would change its frames)."""
    return None, None, start_input.START_NOTE


def checked_start(model, value) -> Start | None:
    """The story's start from the upload's raw value, None without one, or gr.Error saying what is wrong."""
    try:
        return start_input.parse_start(value, model)
    except InputError as error:
        raise gr.Error(str(error), title="Please check the start", print_exception=False) from None


class StartHandlers:
    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    def preview(self, start, request: gr.Request):
        """The start as the model will see it (after the tokenizer), and a note; gr.Error for a bad file."""
        if start_input.file_path(start) is None:
            return None, start_input.START_NOTE
        checked_start(self.ctx.model, start)  # a bad file: the message at once, no run folder
        return self.ctx.view(start_input.start_view, str(self.ctx.sessions.new_run(request)), start)

    def use_drawing(self, drawing, request: gr.Request):
        """The canvas' picture, saved as the start's file."""
        try:
            return start_input.save_drawing(drawing, self.ctx.sessions.new_run(request))
        except InputError as error:
            raise gr.Error(str(error), title="Nothing to use", print_exception=False) from None


def start_box(ctx: DemoContext) -> StartBox:
    """Builds the start's box (closed) in the current column and wires it; the upload is `/generate`'s input."""
    handlers, size = StartHandlers(ctx), start_input.CANVAS_SIZE
    with gr.Accordion("Start from a picture or a clip (optional)", open=False, elem_id="start-box"):
        note = gr.Markdown(start_input.START_NOTE, elem_id="start-note")
        with gr.Row(equal_height=True):
            upload = gr.File(
                label="Start: an image or a video", file_types=["image", "video"], height=160, elem_id="start"
            )
            seen = gr.Image(
                label="What the model sees",
                type="filepath",
                format="png",
                interactive=False,
                height=160,
                buttons=[],
                elem_id="start-preview",
                elem_classes="pixelated",
            )
        canvas = gr.Sketchpad(
            value=dict(background=np.zeros((size, size, 3), np.uint8), layers=[], composite=None),
            canvas_size=(size, size),
            fixed_canvas=True,
            image_mode="RGB",
            format="png",
            layers=False,
            transforms=(),
            brush=gr.Brush(colors=start_input.CANVAS_COLOURS, default_color="#ff0000", default_size=16),
            label="Or draw on black (then: Use the drawing)",
            elem_id="start-canvas",
        )
        use = gr.Button("Use the drawing", size="sm", elem_id="use-drawing")
    # the preview runs the tokenizer in its own queue slot (one at a time), not behind a story
    upload.change(handlers.preview, upload, [seen, note], preprocess=False, api_visibility="private")
    use.click(handlers.use_drawing, canvas, upload, queue=False, api_visibility="private")
    return StartBox(upload, seen, note)
