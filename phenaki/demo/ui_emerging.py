"""The emerging picture on the page: the first window's first frame as it is decoded (`phenaki.demo.emerging`),
laid over the streaming video of the Generate and Live tabs until that video has its first clip.

`streaming_player(...)` builds a tab's streaming video with the picture over it; `picture(path)` is the update
that shows a preview (or, with None, hides the picture). The handlers send it as the last output of `/generate`
and `/live`, so positional readers of the earlier outputs are unaffected; over the API it is the preview's PNG
while the first window is made, None otherwise.
"""

from __future__ import annotations

import gradio as gr

# what the status box says while the picture shows (the picture has no label: the video's shows over it)
EMERGING = "The first frame emerges as its tokens are chosen (grey checker: not chosen yet)"
# the picture covers the video of its column (the stack) while it is shown, its PNG (the model's frame size) scaled
# up to fill it, pixelated; hidden, the video is seen as before
CSS = """
.emerging-stack { position: relative; }
.emerging-stack .emerging { position: absolute; inset: 0; z-index: 20; }
.emerging-stack .emerging img { width: 100%; height: 100%; object-fit: contain; }
"""


def streaming_player(label: str, video_id: str, picture_id: str, visible: bool, height: int) -> tuple:
    """(picture, video): the tab's streaming video, and the emerging picture laid over it (hidden until a story's
    first preview), in one column as large as the video's half of its row."""
    with gr.Column(elem_classes="emerging-stack", min_width=160):
        emerging = gr.Image(
            show_label=False,
            type="filepath",
            format="png",
            interactive=False,
            visible=False,
            height=height,
            buttons=[],
            elem_id=picture_id,
            elem_classes=["emerging", "pixelated"],
        )
        video = gr.Video(
            label=label,
            streaming=True,
            autoplay=True,
            interactive=False,
            visible=visible,
            height=height,
            buttons=[],
            elem_id=video_id,
            elem_classes="pixelated",
        )
    return emerging, video


def picture(path: str | None) -> gr.Image:
    """The update that shows the preview at `path`, or hides the picture (None)."""
    return gr.Image(value=path, visible=path is not None)
