"""The words the model knows, beside every prompt box: `vocabulary_hints` adds them under a box (Generate's
timeline, Live's prompt, Inspect's prompts) and keeps the note about unseen words up to date as the person types
(`phenaki.demo.hints`; nothing is shown for a model that records no vocabulary).

Each box's note is also an undocumented API endpoint (callable, not listed on the API page), e.g. `/timeline_hint`
(timeline) and `/prompt_hint` (prompt): the note as Markdown, "" when every word is known or nothing is recorded.
"""

from __future__ import annotations

import gradio as gr

from . import hints

NOTES = {"timeline": hints.timeline_note, "prompt": hints.prompt_note}


def vocabulary_hints(model, box: gr.components.Component, kind: str, elem_id: str, api_name: str) -> gr.Markdown:
    """Under `box` in the current layout: the line of known words (hidden when the model records none) and the
    note on `box`'s value (`kind` "timeline" or "prompt"), updated on every change (typing, an example, a new row)."""
    note, vocabulary = NOTES[kind], getattr(model, "vocabulary", None)
    gr.Markdown(
        hints.known_words_line(vocabulary),
        visible=vocabulary is not None,
        elem_id=f"{elem_id}-words",
        elem_classes="vocabulary",
    )
    warning = gr.Markdown(note(vocabulary, box.value), elem_id=f"{elem_id}-unseen", elem_classes="unseen-words")
    box.change(
        lambda value: note(vocabulary, value),
        box,
        warning,
        queue=False,
        show_progress="hidden",
        api_name=api_name,
        api_visibility="undocumented",
        preprocess=False,  # the raw value: hints read any table form and never raise
    )
    return warning
