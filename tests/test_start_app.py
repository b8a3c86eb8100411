"""The Generate tab's start (phenaki/demo/ui_start.py, start_input.py) on a running `python app.py`: through
gradio_client (`/generate`'s last input, `start`), and in Chromium (upload a picture or draw one, see what the model
sees, generate, see the object move). What the story shows is read back by the shapes world's `describe`, so those
tests serve the bundled weights/ model; bad files are refused by the shared server on the tiny model."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from app_server import BROWSER_ARGS, CHROMIUM, AppServer, client

from phenaki.media import display_scale, psnr, upscale, write_mp4, write_png
from phenaki.sampling import SamplingSettings
from phenaki.shapes import world
from phenaki.start import reconstruct

PROMPT = "the red circle moves left"
DRAWN_AT = (40, 25)  # top-left of the circle's box in the 64x64 picture: room to move left


def table(rows):
    return {"headers": ["prompt", "seconds"], "data": rows}


def red_circle(folder: Path, scale: int = 4) -> tuple[Path, np.ndarray]:
    """A shapes-world red circle on black, 4x larger than the model's frames (the app resizes it): the PNG, and the
    picture at the model's size."""
    picture = world.render_clip("red", "circle", "still", 1, start=DRAWN_AT)[0]
    return write_png(folder / "red_circle.png", upscale(picture, scale)), picture


def story_frames(mp4) -> np.ndarray:
    """The MP4's frames at the model's size (each 8x8 block's mean: the app's upscale undone)."""
    with imageio.get_reader(mp4) as reader:
        frames = np.stack([frame for frame in reader])  # list(reader) asks its length: inf
    t, h, w, c = frames.shape
    f = display_scale((world.FRAME_SIZE, world.FRAME_SIZE))
    return frames.reshape(t, h // f, f, w // f, f, c).mean(axis=(2, 4)).round().astype(np.uint8)


def check_moves_left(frames: np.ndarray, picture: np.ndarray) -> None:
    """The picture is the first frame and its circle moves left from where it was drawn."""
    assert len(frames) == 16 and psnr(frames[0], picture) > 30  # 37 dB through the tokenizer, less through H.264
    seen, drawn = world.describe(frames), world.describe(picture[None]).centroids[0]
    assert (seen.colour, seen.shape, seen.motions) == ("red", "circle", ["left"]), seen
    assert np.abs(seen.centroids[0] - drawn).max() < 1.5 and seen.centroids[-1][0] < drawn[0] - 20, seen.centroids


# ---- the back-end, without a server ----------------------------------------------------------------------------


def test_an_example_and_open_in_generate_leave_no_start_behind(tiny_model, tmp_path):
    """An example, or "Open in Generate", fills in a story that its seed makes again frame for frame: so both also
    clear the start's upload, what the model sees and its note (a start left loaded would change the story)."""
    from phenaki.demo import start_input, startup
    from phenaki.demo.ui import build_demo

    demo = build_demo(
        tiny_model, runs_dir=tmp_path, examples=startup.load_examples(startup.bundled(startup.EXAMPLES_DIR))[:2]
    )
    start_ids, no_start = ["start", "start-preview", "start-note"], (None, None, start_input.START_NOTE)
    load = next(i for i, f in demo.fns.items() if f.name == "load_example")
    after = [f for f in demo.fns.values() if f.trigger_after == load]  # what runs once an example is in
    assert [[o.elem_id for o in f.outputs] for f in after] == [start_ids] and after[0].fn() == no_start
    opened = next(f for f in demo.fns.values() if f.name == "open_in_generate")
    assert [o.elem_id for o in opened.outputs[-3:]] == start_ids
    saved = tmp_path / "live.json"  # a finished live story's timeline file
    saved.write_text(json.dumps({"timeline": [["a red circle moves right", 2]], "seed": 7}), encoding="utf-8")
    rows, seed, *settings, tabs, upload, seen, note = opened.fn(str(saved))
    assert rows == [["a red circle moves right", 2]] and seed.value == 7 and tabs.selected == "generate"
    assert (upload, seen, note) == no_start


def test_upload_values_drawings_and_what_the_model_sees(tiny_model, tmp_path):
    from phenaki.demo import start_input
    from phenaki.demo.stories import InputError

    assert [start_input.file_path(v) for v in (None, "", [], {"path": None})] == [None] * 4
    assert start_input.file_path({"path": "/a/b.png", "orig_name": "b.png"}) == start_input.file_path(["/a/b.png"])
    for value, message in (([1, 2], "give one start file, got 2"), (3, "an image or video file, got int")):
        with pytest.raises(InputError, match=message):
            start_input.file_path(value)
    # the canvas: RGBA over black, as it is shown; nothing drawn is a message
    drawing = np.zeros((256, 256, 4), np.uint8)
    drawing[100:140, 150:190] = (255, 0, 0, 255)
    drawing[0, 0] = (200, 100, 50, 128)
    png = start_input.save_drawing({"background": None, "layers": [], "composite": drawing}, tmp_path)
    saved = imageio.imread(png)
    assert saved.shape == (256, 256, 3) and (saved[120, 170] == (255, 0, 0)).all() and saved[50, 50].max() == 0
    assert (saved[0, 0] == (100, 50, 25)).all()
    with pytest.raises(InputError, match="the canvas is empty"):
        start_input.save_drawing({"composite": None}, tmp_path)
    # what the model sees: the picture's reconstruction at 256 px, or the clip's last frames side by side
    image, note = start_input.start_view(tiny_model, str(tmp_path), {"path": png})
    assert imageio.imread(image).shape[:2] == (256, 256) and "first frame" in note and "dB PSNR" in note
    # ...the tokenizer's reconstruction, not the picture itself (a random tokenizer changes it beyond recognition)
    start = start_input.parse_start({"path": png}, tiny_model)
    seen = reconstruct(tiny_model, start)[0]
    scale = display_scale(tiny_model.frame_size, start_input.CANVAS_SIZE)
    assert np.array_equal(imageio.imread(image), upscale(seen, scale))
    assert psnr(seen[None], start.frames) < 30 and f"{psnr(seen[None], start.frames):.1f} dB PSNR" in note
    clip = write_mp4(tmp_path / "clip.mp4", np.zeros((9, 64, 64, 3), np.uint8), fps=8)
    image, note = start_input.start_view(tiny_model, str(tmp_path), str(clip))
    assert "last 5 frames" in note and imageio.imread(image).shape[1] > 4 * 32
    assert start_input.start_view(tiny_model, str(tmp_path), None) == (None, start_input.START_NOTE)
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(InputError, match="notes.mp4 is neither a picture nor a video"):
        start_input.parse_start({"path": str(tmp_path / "notes.mp4")}, tiny_model)


@pytest.fixture(scope="module")
def bundled_server():
    server = AppServer(None, timeout=180)
    yield server
    try:
        assert server.alive() and server.crashes() == [], server.log()
        assert server.trap.hits == []
    finally:
        server.stop()


# ---- gradio_client --------------------------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.bundled_model
def test_a_start_picture_is_the_first_frame_and_moves_as_prompted(bundled_server, tmp_path):
    from gradio_client import handle_file

    png, picture = red_circle(tmp_path)
    d = SamplingSettings()
    *_, status, video, mp4, gif, seed, _ = client(bundled_server).predict(
        table([[PROMPT, 2]]),
        *(d.steps, d.temperature, d.critic_strength, d.guidance_scale, 0, d.refine_passes),
        handle_file(str(png)),
        api_name="/generate",
    )
    assert "Done" in status and "16/16 frames" in status and seed == 0
    check_moves_left(story_frames(mp4), picture)


@pytest.fixture(scope="module")
def bad_files():
    """Start files the app must refuse, with the message: unreadable, too small to crop, too long, too large."""
    folder = Path(tempfile.mkdtemp(prefix="phenaki-bad-starts-"))
    (folder / "notes.png").write_text("not a picture")
    write_png(folder / "small.png", np.zeros((16, 48, 3), np.uint8))
    write_mp4(folder / "long.mp4", np.zeros((61, 32, 32, 3), np.uint8), fps=1)  # 61 s, a few kB
    with open(folder / "huge.mp4", "wb") as f:  # 51 MB
        f.truncate(51 * 2**20)
    return folder


@pytest.mark.parametrize(
    "name, message",
    [
        ("notes.png", "the start file notes.png is neither a picture nor a video"),
        ("small.png", "is 48x16 pixels, too small to crop to the model's 32x32 frames"),
        ("long.mp4", "lasts 61.0 s; at most 60 s are allowed"),
        ("huge.mp4", "is 51.0 MB; at most 50 MB is allowed"),
    ],
)
def test_bad_start_files_are_refused_and_start_nothing(server, bad_files, name, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    runs = len(server.runs())
    job = client(server).submit(
        table([[PROMPT, 1]]), 2, 1.0, 0.0, 3.0, 0, 1, handle_file(str(bad_files / name)), api_name="/generate"
    )
    with pytest.raises(AppError, match=re.escape(message)):
        job.result(timeout=120)
    assert job.outputs() == [] and len(server.runs()) == runs and server.alive()


def test_callers_without_a_start_still_send_six_or_seven_values(server):
    c = client(server)
    for values in ((2, 1.0, 0.0, 3.0, 4), (2, 1.0, 0.0, 3.0, 4, 0), (2, 1.0, 0.0, 3.0, 4, 0, None)):
        *_, status, video, mp4, gif, seed, _ = c.predict(table([[PROMPT, 1]]), *values, api_name="/generate")
        assert "Done" in status and "8/8 frames" in status and seed == 4


# ---- the browser ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, bundled_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.goto(bundled_server.url)
    page.wait_for_selector("#generate", timeout=60000)
    page.click("#start-box")  # the start's box is closed at first
    yield page
    context.close()


def one_scene(page, prompt: str):
    """The timeline: one scene of 2 s with `prompt`."""
    page.click("#delete-scene")
    page.wait_for_function("() => document.querySelector('#timeline-summary').innerText.startsWith('1 scene')")
    page.locator('#timeline [data-testid="cell-0-0"]').dblclick()
    editor = page.locator("#timeline textarea, #timeline input").first
    editor.fill(prompt)
    editor.press("Enter")


def generate_and_read(page) -> np.ndarray:
    page.click("#randomize input")  # untick: the seed box takes 0
    page.wait_for_function("() => document.querySelector('#seed input').value === '0'")
    page.click("#generate")
    page.wait_for_function("() => /Done|Failed/.test(document.querySelector('#status').innerText)", timeout=120000)
    assert "16/16 frames" in page.inner_text("#status"), page.inner_text("#status")
    mp4 = page.locator('#mp4 a[href*=".mp4"]').first.get_attribute("href")
    path = Path(tempfile.mkdtemp()) / "story.mp4"
    path.write_bytes(page.request.get(mp4).body())
    return story_frames(path)


def preview_pixels(page) -> int:
    """Width of the preview image once it is on the page (what the model sees)."""
    page.wait_for_function(
        "() => { const i = document.querySelector('#start-preview img'); return i && i.complete && i.naturalWidth; }",
        timeout=60000,
    )
    return page.evaluate("() => document.querySelector('#start-preview img').naturalWidth")


@pytest.mark.browser
@pytest.mark.bundled_model
def test_upload_a_picture_see_what_the_model_sees_generate_and_see_it_move(page, tmp_path):
    png, picture = red_circle(tmp_path)
    page.locator('#start input[type="file"]').set_input_files(str(png))
    assert preview_pixels(page) >= 4 * 64  # the reconstruction, upscaled
    assert "first frame" in page.inner_text("#start-note") and "dB" in page.inner_text("#start-note")
    one_scene(page, PROMPT)
    check_moves_left(generate_and_read(page), picture)


@pytest.mark.browser
@pytest.mark.bundled_model
def test_draw_a_red_blob_on_black_and_it_moves_as_prompted(page):
    canvas = page.locator("#start-canvas canvas").first
    canvas.wait_for(timeout=30000)
    box = canvas.bounding_box()
    # a small ring of strokes right of centre (room to move left), filled by the brush's width
    cx, cy, r = box["x"] + box["width"] * 0.68, box["y"] + box["height"] * 0.45, box["width"] * 0.03
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for angle in np.linspace(0, 2 * np.pi, 13)[1:]:
        page.mouse.move(cx + r * np.cos(angle), cy + r * np.sin(angle), steps=2)
    page.mouse.up()
    page.click("#use-drawing")
    assert preview_pixels(page) >= 4 * 64
    one_scene(page, PROMPT)
    frames = generate_and_read(page)
    seen = world.describe(frames)
    assert seen.colour == "red" and seen.motions == ["left"], seen
