"""The demo in a real browser: Debian's headless Chromium driven by Playwright's Python package (no browser
download). Opens the page, edits the timeline, generates, watches the frames arrive and plays the video; picks
an example and stops it half-way; plays a live story, steers it and stops it, stops one waiting behind another
page's, and closes a page that plays one;
and checks that the page fetches nothing from outside."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_server import BROWSER_ARGS, CHROMIUM, shared_server

LIVE_RUNNING = "LIVE_RUNNING"  # phenaki.demo.live_session's flag: a session's live story is running

# set up before Generate is pressed: when the first frames and the end arrived, and the status each time
WATCH = """() => {
  window.__seen = {frames: null, done: null, statusAtFrames: null};
  const t0 = performance.now();
  const check = () => {
    const img = document.querySelector('#frames img');
    const status = document.querySelector('#status').innerText;
    if (window.__seen.frames === null && img && img.complete && img.naturalWidth > 0) {
      window.__seen.frames = performance.now() - t0;
      window.__seen.statusAtFrames = status;
    }
    if (window.__seen.done === null && /Done|Stopped|Failed/.test(status)) window.__seen.done = performance.now() - t0;
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                       characterData: true});
  document.addEventListener('load', check, true);
}"""

PLAYABLE = """async (selector) => {
  const video = document.querySelector(selector);
  if (!video || !video.src) return null;
  if (video.readyState < 2) await new Promise((ok, fail) => {
    video.addEventListener('loadeddata', ok, {once: true});
    video.addEventListener('error', () => fail(new Error('video error ' + (video.error && video.error.code))),
                           {once: true});
    setTimeout(() => fail(new Error('video did not load')), 20000);
  });
  video.muted = true;
  await video.play();
  const start = video.currentTime;
  await new Promise(ok => setTimeout(ok, 700));
  return {duration: video.duration, width: video.videoWidth, height: video.videoHeight,
          advanced: video.currentTime > start, error: video.error && video.error.code};
}"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run scripts/setup.sh --dev (Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    server = shared_server()
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = context.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(server.url)
    page.wait_for_selector("#generate", timeout=60000)
    yield page
    outside = sorted(
        {
            urlparse(u).netloc
            for u in page.requests
            if urlparse(u).scheme in ("http", "https", "ws", "wss")
            and urlparse(u).hostname not in ("127.0.0.1", "localhost")
        }
    )
    context.close()
    assert outside == [], f"the page fetched from outside: {outside}"
    assert server.alive(), server.log()


def edit_cell(page, row: int, column: int, text: str):
    page.locator(f'#timeline [data-testid="cell-{row}-{column}"]').dblclick()
    editor = page.locator("#timeline textarea, #timeline input").first
    editor.fill(text)
    editor.press("Enter")


def rows(page) -> int:
    return page.locator('#timeline [data-testid^="cell-"][data-col="0"]').count()


def set_steps(page, steps: int, refine_passes: int | None = None, prefix: str = ""):
    page.click(f"#{prefix}sampling")
    for elem_id, value in ((f"{prefix}steps", steps), (f"{prefix}refine", refine_passes)):
        if value is not None:
            number = page.locator(f'#{elem_id} input[type="number"]')
            number.fill(str(value))
            number.press("Enter")


def test_write_a_timeline_generate_watch_frames_and_play_the_video(page):
    info = page.inner_text("#model-info")
    assert "32×32 px" in info and "8 fps" in info and "cpu" in info
    assert page.locator("#randomize input").is_checked() and page.input_value("#seed input") == "-1"
    # the table: edit a prompt and a length, add and delete scenes
    edit_cell(page, 0, 0, "a blue square moves left")
    edit_cell(page, 1, 0, "the blue square moves down")
    edit_cell(page, 1, 1, "1")
    page.wait_for_function("() => document.querySelector('#timeline-summary').innerText.includes('24 frames')")
    page.click("#add-scene")
    page.wait_for_function("() => document.querySelector('#timeline-summary').innerText.startsWith('3 scenes')")
    assert rows(page) == 3
    page.click("#delete-scene")
    page.wait_for_function("() => document.querySelector('#timeline-summary').innerText.startsWith('2 scenes')")
    assert rows(page) == 2
    set_steps(page, 3, refine_passes=0)
    assert page.input_value('#refine input[type="number"]') == "0" and "Refinement passes" in page.inner_text("#refine")
    page.evaluate(WATCH)
    page.click("#generate")
    page.wait_for_function("() => window.__seen.done !== null", timeout=90000)
    seen = page.evaluate("() => window.__seen")
    status = page.inner_text("#status")
    assert "Done" in status and "24/24 frames" in status, status
    # the frames of the first window were on the page while the story was still being made
    assert seen["frames"] is not None and seen["frames"] < seen["done"], seen
    assert "Generating" in seen["statusAtFrames"], seen
    sheet = page.evaluate(
        "() => { const i = document.querySelector('#frames img'); return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert sheet[0] >= 8 * 64 and sheet[1] >= 64  # the window's frames side by side, upscaled
    # the live preview streamed the windows
    assert page.locator("#live video").count() == 1
    # the result: a playable H.264 MP4 of every frame, upscaled nearest-neighbour to 512 px
    page.wait_for_selector("#video video", timeout=30000)
    played = page.evaluate(PLAYABLE, "#video video")
    assert played and played["error"] is None and played["advanced"], played
    assert played["width"] == played["height"] == 512 and abs(played["duration"] - 3.0) < 0.2, played
    mp4 = page.locator('#mp4 a[href*=".mp4"]').first.get_attribute("href")
    gif = page.locator('#gif a[href*=".gif"]').first.get_attribute("href")
    body = page.request.get(mp4).body()
    assert body[4:8] == b"ftyp" and len(body) > 1000
    assert page.request.get(gif).body()[:6] == b"GIF89a"
    seed = page.input_value("#seed-used input")
    assert seed.isdigit() and seed in status
    # reuse it: the seed box gets it and the randomize box is unticked
    page.click("#reuse-seed")
    page.wait_for_function(f"() => document.querySelector('#seed input').value === '{seed}'")
    assert not page.locator("#randomize input").is_checked()


def test_bad_input_is_explained_then_an_example_is_stopped_half_way(page):
    edit_cell(page, 0, 0, " ")
    page.click("#generate")
    toast = page.locator(".toast-body", has_text="row 1 has no prompt")
    toast.first.wait_for(timeout=30000)
    assert "Ready" in page.inner_text("#status")  # nothing started, nothing cleared
    # an example fills the table and its seed
    page.get_by_text("Magenta square: a 12-second story").click()
    page.wait_for_function("() => document.querySelector('#timeline-summary').innerText.startsWith('4 scenes')")
    page.wait_for_function("() => document.querySelector('#seed input').value === '11'")
    assert not page.locator("#randomize input").is_checked()
    page.evaluate(WATCH)
    page.click("#generate")
    page.wait_for_function("() => window.__seen.frames !== null", timeout=90000)
    page.click("#stop")
    page.wait_for_function("() => window.__seen.done !== null", timeout=90000)
    status = page.inner_text("#status")
    assert "Stopped" in status, status
    made = int(re.search(r"(\d+)/96 frames", status).group(1))
    assert 0 < made < 96
    page.wait_for_selector("#video video", timeout=30000)
    played = page.evaluate(PLAYABLE, "#video video")
    assert played and played["error"] is None and abs(played["duration"] - made / 8) < 0.2, (played, made)
    assert page.input_value("#seed-used input") == "11"


# the live player: how far it has played, and whether it is playing
PLAYHEAD = """() => { const v = document.querySelector('#live-video video');
  return v ? {time: v.currentTime, paused: v.paused, error: v.error && v.error.code} : null; }"""


def live_running(server) -> list:
    return list(server.tmp.glob(f"phenaki-demo/*/*/{LIVE_RUNNING}"))


def start_live(page, prompt: str):
    page.get_by_role("tab", name="Live").click()
    set_steps(page, 2, refine_passes=0, prefix="live-")
    box = page.locator("#live-prompt textarea, #live-prompt input").first
    box.fill(prompt)
    page.click("#live-start")
    return box


def test_live_plays_while_made_follows_a_new_prompt_stops_and_opens_in_generate(page):
    server = shared_server()
    box = start_live(page, "a green square moves down")
    # the video plays while it is made: its playhead moves on
    page.wait_for_function(f"() => {{ const p = ({PLAYHEAD})(); return p && p.time > 0.5; }}", timeout=60000)
    first = page.evaluate(PLAYHEAD)
    assert first["error"] is None and not first["paused"], first
    page.wait_for_timeout(1500)
    later = page.evaluate(PLAYHEAD)
    assert later["time"] > first["time"] + 0.5, (first, later)
    assert "Playing scene 1" in page.inner_text("#live-status")
    # a new prompt, applied with Enter
    box.fill("the green square moves left")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#live-note').innerText.includes('Next window')")
    assert "the green square moves left" in page.inner_text("#live-note")
    page.wait_for_function("() => /scene 2\\)/.test(document.querySelector('#live-status').innerText)", timeout=30000)
    page.wait_for_function(
        "() => document.querySelector('#live-status').innerText.includes('Playing scene 2')", timeout=30000
    )  # and playback reached it
    assert page.evaluate(PLAYHEAD)["time"] > later["time"]
    page.click("#live-stop")
    page.wait_for_function("() => document.querySelector('#live-status').innerText.includes('Stopped')", timeout=30000)
    status = page.inner_text("#live-status")
    made = int(re.search(r"(\d+) frames made", status).group(1))
    assert "2 scenes" in status and made >= 29, status
    assert live_running(server) == []
    # the session's MP4 and its timeline, as links
    page.wait_for_selector('#live-mp4 a[href*=".mp4"]', timeout=30000)
    body = page.request.get(page.locator('#live-mp4 a[href*=".mp4"]').first.get_attribute("href")).body()
    assert body[4:8] == b"ftyp" and len(body) > 1000
    timeline = page.request.get(page.locator('#live-timeline a[href*=".json"]').first.get_attribute("href")).json()
    assert [p for p, _ in timeline["timeline"]] == ["a green square moves down", "the green square moves left"]
    assert round(sum(s for _, s in timeline["timeline"]) * 8) == made
    seed = page.input_value("#live-seed-used input")
    assert seed == str(timeline["seed"])
    # into the Generate tab: its table, seed and settings
    page.click("#live-to-generate")
    page.wait_for_function("() => document.querySelector('#timeline-summary').innerText.startsWith('2 scenes')")
    assert page.locator("#generate").is_visible()
    assert page.input_value("#seed input") == seed and not page.locator("#randomize input").is_checked()
    page.click("#sampling")
    assert str(timeline["steps"]) == "2" and str(timeline["refine_passes"]) == "0"
    # the sliders are set by the same event as the table, but may reach the page after it: wait for them
    for slider, value in (("steps", "2"), ("refine", "0")):
        page.wait_for_function(
            f"() => document.querySelector('#{slider} input[type=\"number\"]')?.value === '{value}'", timeout=10000
        )


def test_closing_the_page_stops_its_live_story_within_a_window(browser):
    server = shared_server()
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("#generate", timeout=60000)
    start_live(page, "a yellow circle moves up")
    page.wait_for_function(
        "() => document.querySelector('#live-status').innerText.includes('frames made')", timeout=60000
    )
    assert len(live_running(server)) == 1
    closed = time.monotonic()
    context.close()
    while live_running(server):
        assert time.monotonic() - closed < 5, "the live story still runs after its page was closed"
        time.sleep(0.1)
    assert server.alive()


def test_the_words_the_model_knows_and_a_note_on_unseen_ones_follow_what_is_typed(page):
    """The tiny model records shapes world 1's words: each prompt box lists them, and a note names the words of
    what is typed that it never saw (a note, not an error: Generate and Start stay enabled)."""
    note = "This model has not seen: purple, elephant, dances"
    assert "colours: red, green, blue" in page.inner_text("#timeline-words")
    assert page.inner_text("#timeline-unseen").strip() == ""
    edit_cell(page, 0, 0, "a purple elephant dances")
    page.wait_for_function(f"() => document.querySelector('#timeline-unseen').innerText.includes({note!r})")
    assert "(scene 1)" in page.inner_text("#timeline-unseen") and page.is_enabled("#generate")
    edit_cell(page, 0, 0, "a red circle moves left")
    page.wait_for_function("() => document.querySelector('#timeline-unseen').innerText.trim() === ''")
    page.get_by_role("tab", name="Live").click()
    assert "shapes: circle, square, triangle" in page.inner_text("#live-prompt-words")
    box = page.locator("#live-prompt textarea, #live-prompt input").first
    box.fill("a purple elephant dances")
    page.wait_for_function(f"() => document.querySelector('#live-prompt-unseen').innerText.includes({note!r})")
    assert page.is_enabled("#live-start")
    box.fill("a red circle moves left")
    page.wait_for_function("() => document.querySelector('#live-prompt-unseen').innerText.trim() === ''")


def test_editing_the_last_scene_remakes_only_it_and_the_status_says_so(page):
    edit_cell(page, 0, 0, "a cyan square moves right")
    edit_cell(page, 1, 0, "the cyan square moves down")
    set_steps(page, 2, refine_passes=0)
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Done')", timeout=90000)
    assert "reused" not in page.inner_text("#status")
    seed = page.input_value("#seed-used input")
    page.click("#reuse-seed")  # the same story again, but for its last scene
    page.wait_for_function(f"() => document.querySelector('#seed input').value === '{seed}'")
    edit_cell(page, 1, 0, "the cyan square moves up")
    page.click("#generate")
    page.wait_for_function(
        "() => { const s = document.querySelector('#status').innerText; return s.includes('Done') "
        "&& s.includes('reused'); }",
        timeout=90000,
    )
    status = page.inner_text("#status")
    assert "scene 1 reused, 2 made" in status and "32/32 frames" in status and f"seed {seed}" in status, status
    page.wait_for_selector("#video video", timeout=30000)
    played = page.evaluate(PLAYABLE, "#video video")
    assert played and played["error"] is None and abs(played["duration"] - 4.0) < 0.2, played


def test_stop_on_a_live_story_waiting_behind_another_page_s_ends_it_before_it_makes_a_frame(page, browser):
    """Two pages: B's live story waits behind A's with its place in the queue shown; B's Stop ends it, when its
    turn comes, without a frame made, and A's story plays on until A stops it."""
    server = shared_server()
    start_live(page, "a red circle moves right")
    made_a = "() => (document.querySelector('#live-status').innerText.match(/(\\d+) frames made/) || [0, -1])[1] * 1"
    page.wait_for_function(f"() => ({made_a})() >= 17", timeout=60000)
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    try:
        other = context.new_page()
        other.goto(server.url)
        other.wait_for_selector("#generate", timeout=60000)
        start_live(other, "a blue square moves left")
        queued = "() => { const t = document.querySelector('#live-status').innerText;"
        queued += " return /queue: 1\\/1/.test(t) && t.includes('Waiting for a free slot'); }"
        other.wait_for_function(queued, timeout=30000)  # first in line, behind A's story
        other.click("#live-stop")
        other.wait_for_function(
            "() => document.querySelector('#live-note').innerText.includes('Stopped before it started')"
        )
        made = page.evaluate(made_a)
        page.wait_for_function(f"() => ({made_a})() >= {made + 24}", timeout=60000)  # A plays on
        assert "frames made" not in other.inner_text("#live-status")  # B still waits: no window of its own
        page.click("#live-stop")
        page.wait_for_function(
            "() => document.querySelector('#live-status').innerText.includes('Stopped')", timeout=30000
        )
        other.wait_for_function(
            "() => document.querySelector('#live-status').innerText.includes('Stopped')", timeout=30000
        )
        status = other.inner_text("#live-status")
        assert "0 frames made" in status and "0 scenes" in status, status
        assert live_running(server) == [] and not list(server.tmp.glob("phenaki-demo/*/*/LIVE_*"))
    finally:
        context.close()
