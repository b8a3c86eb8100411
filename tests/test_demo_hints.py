"""The words the model knows, beside the demo's prompt boxes (`phenaki.demo.hints`, `ui_hints`): the notes, the
page built in-process around a model with and without a vocabulary, and the running app through gradio_client."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import pytest
from app_server import client
from conftest import tiny_phenaki

from phenaki.demo import hints
from phenaki.demo.ui import build_demo
from phenaki.shapes.vocabulary import world_vocabulary

WORLD1 = world_vocabulary("shapes")
ELEPHANT = "This model has not seen: purple, elephant, dances."
BOXES = ("timeline", "live-prompt", "steps-prompt", "cmp-prompt", "words-prompt")  # every prompt box of the page
HINTS = ("/timeline_hint", "/prompt_hint", "/steps_prompt_hint", "/cmp_prompt_hint", "/words_prompt_hint")


def table(rows):
    return {"headers": ["prompt", "seconds"], "data": rows}


def test_the_notes_name_unseen_words_and_stay_quiet_otherwise():
    assert hints.prompt_note(WORLD1, "a purple elephant dances").startswith(f"⚠️ {ELEPHANT} It still makes a video")
    assert hints.prompt_note(WORLD1, "a red circle moves left") == ""
    assert hints.prompt_note(None, "a purple elephant dances") == ""  # nothing recorded: nothing to say
    assert hints.prompt_note(WORLD1, None) == "" and hints.prompt_note(WORLD1, 42) == ""  # never raises
    rows = [["a red circle moves right", 2], ["two red circles move up", 1], ["", 1], ["the red circle moves up", 1]]
    expected = "This model has not seen: two, circles, move (scene 2)."
    for value in (table(rows), rows, pd.DataFrame(rows, columns=["prompt", "seconds"])):
        assert expected in hints.timeline_note(WORLD1, value)
    french = [["a purple elephant dances", 1], ["un cercle bleu", 1]]
    assert "purple, elephant, dances (scene 1); un, cercle, bleu (scene 2)." in hints.timeline_note(WORLD1, french)
    assert hints.timeline_note(WORLD1, table(rows[:1])) == "" and hints.timeline_note(None, table(french)) == ""
    unreadable_tables = ({"no": "data"}, {"data": 5}, {"headers": 5, "data": []}, [[None, 1], [5, 2], 7])
    for unreadable in (None, "text", 3, *unreadable_tables):
        assert hints.timeline_note(WORLD1, unreadable) == ""
    line = hints.known_words_line(WORLD1)
    assert line.startswith("Words this model knows — *colours*: red, green, blue")
    assert "*shapes*: circle, square, triangle; *motions*: left, right, up, down, still;" in line
    assert hints.known_words_line(None) == ""


def page_parts(model, tmp_path) -> tuple[dict, dict]:
    """(the Markdown elements by elem_id, the hint handlers by endpoint) of the page built around `model`."""
    demo = build_demo(model, runs_dir=tmp_path)
    markdown = {c.elem_id: c for c in demo.blocks.values() if isinstance(c, gr.Markdown) and c.elem_id}
    handlers = {f"/{f.api_name}": f.fn for f in demo.fns.values() if f.api_name and f.api_name.endswith("_hint")}
    assert sorted(handlers) == sorted(HINTS)
    prompts = {c.elem_id for c in demo.blocks.values() if isinstance(c, gr.Textbox) and "prompt" in c.label.lower()}
    assert {"timeline", *prompts} == set(BOXES)  # a new prompt box fails here until it has its notes
    return markdown, handlers


def test_every_prompt_box_shows_the_known_words_and_notes_unseen_ones(tmp_path):
    markdown, handlers = page_parts(tiny_phenaki(vocabulary=WORLD1), tmp_path)
    for box in BOXES:
        words, note = markdown[f"{box}-words"], markdown[f"{box}-unseen"]
        assert words.visible and words.value == hints.known_words_line(WORLD1), box
        if box == "words-prompt":  # world 2's two objects: world 1 has not seen "and" (and reads the first)
            assert "This model has not seen: and." in note.value
        else:
            assert note.value == "", box  # the other default prompts are in the world's words
    for name in HINTS[1:]:
        assert ELEPHANT in handlers[name]("a purple elephant dances") and handlers[name]("a red circle") == ""
    assert ELEPHANT[:-1] + " (scene 1)." in handlers["/timeline_hint"](table([["a purple elephant dances", 2]]))
    assert handlers["/timeline_hint"](table([["a red circle moves left", 2]])) == ""


def test_a_model_without_a_vocabulary_shows_no_words_and_no_note(tmp_path):
    markdown, handlers = page_parts(tiny_phenaki(), tmp_path)
    assert all(not markdown[f"{box}-words"].visible and markdown[f"{box}-unseen"].value == "" for box in BOXES)
    assert all(handlers[name]("a purple elephant dances") == "" for name in HINTS[1:])
    assert handlers["/timeline_hint"](table([["a purple elephant dances", 2]])) == ""


def test_the_app_notes_unseen_words_and_still_generates(server):
    """Through the running app (the tiny model records world 1's words): the notes the page shows, then a story
    of the unseen words, which is made all the same."""
    c = client(server)
    assert ELEPHANT in c.predict("a purple elephant dances", api_name="/prompt_hint")
    assert c.predict("a red circle moves left", api_name="/prompt_hint") == ""
    two_scenes = table([["a red circle moves left", 1], ["a purple elephant dances", 1]])
    note = c.predict(two_scenes, api_name="/timeline_hint")
    assert "This model has not seen: purple, elephant, dances (scene 2)." in note
    assert c.predict(table([["a red circle moves left", 1]]), api_name="/timeline_hint") == ""
    *_, status, video, mp4, gif, seed, _ = c.predict(
        table([["a purple elephant dances", 1]]), 2, 1.0, 0.0, 3.0, 0, api_name="/generate"
    )
    assert "Done" in status and mp4.endswith(".mp4")


@pytest.mark.parametrize("prompt", [None, 7])
def test_the_app_s_notes_take_any_value_without_an_error(server, prompt):
    assert client(server).predict(prompt, api_name="/prompt_hint") == ""
    assert server.alive()
