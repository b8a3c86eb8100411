"""What the demo says beside a prompt box about the words the model knows, without Gradio.

A model that records its training captions' words (`Phenaki.vocabulary`, `phenaki/vocabulary.py`; the notes take
that vocabulary, None for none) gets, next to every prompt box, one line listing them by group, and a gentle note
naming the words of the prompt it never saw ("This model has not seen: purple, elephant, dances"). Generation
stays allowed: the note only explains. A model without a recorded vocabulary (trained on real videos) gets
neither. The notes never raise: an unreadable table or a value that is not text gives no note (generating it
explains what is wrong).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..vocabulary import unseen_words
from .stories import InputError, read_table, table_columns

AFTER = "It still makes a video, but may not follow them."


def known_words_line(vocabulary) -> str:
    """'Words this model knows — colours: red, green, …; shapes: …' ("" without a vocabulary)."""
    if not vocabulary:
        return ""
    groups = "; ".join(f"*{group}*: {', '.join(members)}" for group, members in vocabulary.items() if members)
    return f"Words this model knows — {groups}."


def _unseen(vocabulary, prompt) -> list[str]:
    return unseen_words(vocabulary, prompt) if isinstance(prompt, str) else []


def prompt_note(vocabulary, prompt) -> str:
    """The note under a single prompt box (Live's): the words the model never saw, or ""."""
    unseen = _unseen(vocabulary, prompt)
    return f"⚠️ This model has not seen: {', '.join(unseen)}. {AFTER}" if unseen else ""


def timeline_prompts(value) -> list[str]:
    """The prompts of a timeline table (as the Generate tab's table or an API caller gives it); [] if unreadable."""
    try:
        headers, rows = read_table(value)
    except (InputError, TypeError):  # TypeError: {"data": 5}, {"headers": 5, ...}
        return []
    column = table_columns(headers)[0]
    prompts = []
    for row in rows:
        if isinstance(row, Mapping):
            prompt = row.get("prompt")
        else:
            prompt = row[column] if isinstance(row, list | tuple) and len(row) > column else None
        prompts.append(prompt if isinstance(prompt, str) else "")
    return prompts


def timeline_note(vocabulary, value) -> str:
    """The note under the Generate tab's timeline: each scene's words the model never saw, or ""."""
    scenes = [(i, _unseen(vocabulary, prompt)) for i, prompt in enumerate(timeline_prompts(value), 1)]
    parts = [f"{', '.join(unseen)} (scene {i})" for i, unseen in scenes if unseen]
    return f"⚠️ This model has not seen: {'; '.join(parts)}. {AFTER}" if parts else ""
