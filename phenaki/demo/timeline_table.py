"""The Generate tab's timeline table, without Gradio: its one-line summary and the add / delete scene buttons."""

from __future__ import annotations

from collections.abc import Mapping

from .stories import (
    MAX_STORY_SECONDS,
    NEW_SCENE_SECONDS,
    InputError,
    is_blank,
    parse_number,
    parse_timeline,
    read_table,
    table_columns,
)


def timeline_summary(value, fps: int) -> str:
    """One line under the table: scenes, length and frames, or what is wrong with it."""
    try:
        timeline = parse_timeline(value)
    except InputError as error:
        return f"⚠️ {error}"
    seconds = sum(s for _, s in timeline)
    frames = sum(max(1, round(s * fps)) for _, s in timeline)
    scenes = f"{len(timeline)} scene{'s' if len(timeline) > 1 else ''}"
    return f"{scenes} · {seconds:g} s · {frames} frames at {fps} fps (at most {MAX_STORY_SECONDS:g} s in all)"


def table_rows(value) -> list[list]:
    """The table as [[prompt, seconds], ...] (for the add / delete scene buttons)."""
    headers, rows = read_table(value)
    columns = table_columns(headers)
    out = []
    for row in rows:
        if isinstance(row, Mapping):
            out.append([row.get("prompt", ""), row.get("seconds", "")])
        elif isinstance(row, (list, tuple)):
            out.append([row[i] if i < len(row) and not is_blank(row[i]) else "" for i in columns])
    return out


def add_scene(value) -> list[list]:
    """The table with one more scene at the end: the last scene's subject continued, for the same length."""
    rows = table_rows(value)
    prompt = ""
    if rows and isinstance(rows[-1][0], str) and rows[-1][0].strip():
        words = rows[-1][0].split()
        if len(words) >= 3 and words[0].lower() in ("a", "an", "the"):
            prompt = " ".join(["the", *words[1:3], ""])  # "the red circle " — the user adds the motion
    seconds = NEW_SCENE_SECONDS
    if rows:
        try:
            seconds = parse_number("seconds", rows[-1][1])
        except InputError:
            pass
    return rows + [[prompt, seconds]]


def delete_scene(value) -> list[list]:
    """The table without its last scene (one row always stays)."""
    rows = table_rows(value)
    return rows[:-1] if len(rows) > 1 else (rows or [["", NEW_SCENE_SECONDS]])
