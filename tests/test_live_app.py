"""The Live tab: its back-end (phenaki.demo.live_session) on the tiny random model, paced by a stand-in clock so
that minutes of playback take a moment, and `python app.py` driven with gradio_client (`/live`, `/steer`,
`/stop_live`, next to `/generate`). One test serves the bundled weights/ model, to check that steering changes
what is made. The page in a browser is tests/test_browser.py."""

from __future__ import annotations

import json
import re
import time

import imageio.v2 as imageio
import numpy as np
import pytest
from app_server import AppServer, client, tiny_model_dir

from phenaki import Phenaki, media
from phenaki.demo import live_session as live
from phenaki.demo import startup
from phenaki.demo import stories as logic
from phenaki.shapes import world

RIGHT, UP = "a red circle moves right", "the red circle moves up"
AHEAD = live.AHEAD_WINDOWS * 12  # frames: the tiny model's windows make 17, then 12 new frames
MADE = re.compile(r"(\d+) frames made \([\d.]+ s, scene (\d+)\) · (\d+) played")


@pytest.fixture(scope="module")
def model():
    return Phenaki.from_pretrained(tiny_model_dir(), device="cpu")


def settings(**kw):
    return logic.Settings(**{"steps": 2, "seed": 0, **kw})


def read_frames(path) -> np.ndarray:
    with imageio.get_reader(path) as reader:
        return np.stack([frame for frame in reader])


class FakeClock:
    """Time that passes only when slept (or when a `Timed` model makes a window)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= live.TICK_S
        self.now += seconds


class Timed:
    """The real model, whose windows take `seconds` each on `clock`; `fail_at` breaks that window (0-based);
    `during(window)` runs while a window is being made (as a Steer or Stop from another event would)."""

    def __init__(self, model, clock: FakeClock, seconds: float = 0.0, fail_at: int | None = None, during=None):
        self._model, self._clock, self._seconds, self._fail_at = model, clock, seconds, fail_at
        self._during, self.windows = during, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def story_window(self, *args, **kwargs):
        if self.windows == self._fail_at:
            raise RuntimeError("CUDA out of memory (simulated)")
        if self._during:
            self._during(self.windows)
        self.windows += 1
        self._clock.now += self._seconds
        return self._model.story_window(*args, **kwargs)


def play(model, control, out, clock, prompt=RIGHT, on_update=None, **kw):
    """Every update of a live story (`on_update(update, control)` after each, e.g. to steer or stop)."""
    assert control.begin()
    updates, story_settings = [], kw.pop("story_settings", settings())
    try:
        for update in live.live_story(
            model, prompt, story_settings, out, control, clock=clock, sleep=clock.sleep, **kw
        ):
            updates.append(update)
            if on_update:
                on_update(update, control)
    finally:
        control.end()
    return updates


def windows(updates):
    return [u for u in updates if u.window_video]


# ---- the back-end -------------------------------------------------------------------------------------------


def test_generation_stays_at_most_three_windows_ahead_of_playback_until_the_limit(model, tmp_path):
    clock = FakeClock()
    fast = Timed(model, clock, seconds=0.1)  # 1.5 s of video in 0.1 s: 15x real time, were it not paced
    updates = play(fast, live.LiveControl(tmp_path / "s"), tmp_path / "run", clock, max_seconds=20)
    final = updates[-1]
    assert final.final and final.ended == "limit" and final.error is None
    assert final.frames_made == 17 + 12 * 12  # the window that reached 20 s (160 frames) is the last
    for update in updates:
        assert 0 <= update.frames_made - update.frames_played <= AHEAD, update
    # paced: the story took about as long as its video plays (less the buffer), not 13 windows x 0.1 s
    assert 20 - AHEAD / 8 - 1.5 <= final.elapsed <= 20 + 1, final.elapsed
    assert 1.0 < final.speed / 15 < 1.2  # 12 or 17 frames (1.5-2.1 s) per 0.1 s of compute
    ticks = [u for u in updates[:-1] if not u.window_video]
    assert ticks and len(windows(updates)) == 13  # waiting for playback: about an update a second
    gaps = np.diff([u.elapsed for u in updates[:-1]])
    assert gaps.max() <= live.TICK_S + 0.11, gaps
    assert len(list((tmp_path / "run").glob("window_*.mp4"))) == live.KEEP_CLIPS  # old clips are removed
    assert len(read_frames(final.video)) == final.frames_made and final.timeline == [(RIGHT, 161 / 8)]


def test_a_story_made_slower_than_real_time_ends_at_the_time_limit(model, tmp_path):
    clock = FakeClock()
    slow = Timed(model, clock, seconds=3.0)  # 1.5 s of video in 3 s
    final = play(slow, live.LiveControl(tmp_path / "s"), tmp_path / "run", clock, max_seconds=10)[-1]
    grace = AHEAD / 8
    assert final.ended == "time" and 10 + grace <= final.elapsed <= 10 + grace + 3
    assert final.frames_made < 10 * 8 and 0.4 < final.speed < 0.8


def test_steer_and_stop_reach_the_story_between_windows_and_its_timeline_makes_it_again(model, tmp_path):
    clock = FakeClock()
    alice, bob = live.LiveControl(tmp_path / "alice"), live.LiveControl(tmp_path / "bob")

    def events(window):  # while windows 1 and 3 are made: a steer, then a stop (and bob's, for his own story)
        if window == 1:
            alice.steer(UP)
            bob.steer("a blue square moves left")
            bob.stop()
        if window == 3:
            alice.stop()

    updates = play(
        Timed(model, clock, during=events), alice, tmp_path / "run", clock, story_settings=settings(seed=11, steps=3)
    )
    final = updates[-1]
    assert final.ended == "stopped" and final.frames_made == 17 + 3 * 12  # the window being made is kept
    assert final.timeline == [(RIGHT, 29 / 8), (UP, 24 / 8)]  # from the window after the one it came during
    assert [u.scene for u in windows(updates)] == [0, 0, 1, 1]
    assert windows(updates)[1].next_prompt == UP and windows(updates)[2].next_prompt is None  # then taken
    # the exported timeline: the Generate tab's format, read as an example, and the same frames from it
    data = json.loads(open(final.timeline_file).read())
    assert data["timeline"] == [[RIGHT, 3.625], [UP, 3.0]] and data["seed"] == 11 and data["steps"] == 3
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "live.json").write_text(json.dumps(data))
    assert startup.load_examples(tmp_path / "ex")[0].timeline == [[RIGHT, 3.625], [UP, 3.0]]
    again = logic.Settings(**{k: data[k] for k in logic.LIMITS}, seed=data["seed"])
    chunks = list(model.stream(logic.parse_timeline(data["timeline"]), **again.sampling_kwargs()))
    writer = media.Mp4Writer(tmp_path / "again.mp4", 8)
    for chunk in chunks:
        writer.append(media.upscale(chunk.frames, media.display_scale(model.frame_size), even=True))
    assert np.array_equal(read_frames(writer.close()), read_frames(final.video))


def test_stop_while_waiting_for_playback_ends_at_once_and_before_the_first_window_makes_nothing(model, tmp_path):
    clock = FakeClock()

    def stop_when_waiting(update, control):
        if not update.window_video and not update.final:
            control.stop()

    updates = play(model, live.LiveControl(tmp_path / "s"), tmp_path / "run", clock, on_update=stop_when_waiting)
    final = updates[-1]
    assert final.ended == "stopped" and updates[-2].frames_made == final.frames_made
    assert final.elapsed <= updates[-2].elapsed + 0.01  # no window, no further wait
    control = live.LiveControl(tmp_path / "s2")
    control.queue()
    control.stop()  # Stop pressed while it waited for a slot
    updates = play(model, control, tmp_path / "run2", clock)
    assert len(updates) == 1 and updates[0].final and updates[0].video is None and updates[0].frames_made == 0
    # a stop flag left from an earlier story (no Start pressed: an API call) is not this story's
    control.stop()
    assert live.LiveControl(tmp_path / "s2").begin() and not control.stop_requested()


def test_failure_mid_story_keeps_what_was_made(model, tmp_path):
    clock = FakeClock()
    final = play(Timed(model, clock, fail_at=2), live.LiveControl(tmp_path / "s"), tmp_path / "run", clock)[-1]
    assert "CUDA out of memory (simulated)" in final.error and final.frames_made == 29
    assert len(read_frames(final.video)) == 29 and json.loads(open(final.timeline_file).read())["timeline"]
    with pytest.raises(RuntimeError, match="simulated"):  # the first window: nothing made, the error is raised
        play(Timed(model, clock, fail_at=0), live.LiveControl(tmp_path / "s2"), tmp_path / "run2", clock)


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("", "the prompt is empty"),
        ("   ", "the prompt is empty"),
        (None, "the prompt is empty"),
        ("x" * 301, "longer than 300 characters"),
        (3, "must be text"),
    ],
)
def test_bad_prompts_start_nothing(model, tmp_path, prompt, message):
    control = live.LiveControl(tmp_path / "s")
    with pytest.raises(logic.InputError, match=message):
        next(live.live_story(model, prompt, settings(), tmp_path / "run", control))
    assert not (tmp_path / "run").exists()


def test_one_live_story_a_session_and_steers_are_taken_once(tmp_path):
    alice, bob = live.LiveControl(tmp_path / "alice"), live.LiveControl(tmp_path / "bob")
    assert alice.begin() and not alice.begin() and bob.begin()
    alice.steer("first")
    alice.steer("second")  # the latest wins
    assert alice.pending_steer() == "second" and bob.pending_steer() is None
    assert alice.take_steer() == "second" and alice.take_steer() is None
    alice.end()
    assert not alice.running() and bob.running() and not list((tmp_path / "alice").iterdir())


# ---- the running app, through gradio_client -------------------------------------------------------------------


def status_numbers(status: str) -> tuple[int, int, int]:
    """(frames made, scene of the latest window, frames played) from a status box."""
    made, scene, played = MADE.search(status).groups()
    return int(made), int(scene), int(played)


def wait_for(job, predicate, timeout=120):
    """The first of the job's outputs so far that satisfies `predicate` (waiting for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for outputs in job.outputs():
            if predicate(outputs):
                return outputs
        assert not job.done(), job.exception() or job.outputs()[-1:]
        time.sleep(0.05)
    raise TimeoutError("no such update")


def has_made(frames: int, scene: int = 1):
    return lambda o: (
        isinstance(o[1], str)
        and MADE.search(o[1]) is not None
        and status_numbers(o[1])[0] >= frames
        and status_numbers(o[1])[1] >= scene
    )


@pytest.fixture(scope="module")
def steered(server):
    """A live story through the API: started, steered after its first window, stopped three windows later."""
    c = client(server)
    job = c.submit(RIGHT, 2, 1.0, 0.0, 3.0, 21, 1, api_name="/live")
    wait_for(job, has_made(17))
    started = time.monotonic()
    note = c.predict(UP, api_name="/steer")
    after = wait_for(job, has_made(1, scene=2))
    wait_for(job, has_made(status_numbers(after[1])[0] + 24, scene=2))
    assert "Stopping" in c.predict(api_name="/stop_live")
    return dict(note=note, outputs=job.outputs(), result=job.result(timeout=60), seconds=time.monotonic() - started)


def test_live_api_streams_steers_and_stops(server, steered):
    assert steered["note"] == f"Next window: *{UP}*"
    video, status, mp4, timeline_file, seed, _ = steered["result"]
    assert "Stopped" in status and seed == 21
    data = json.loads(open(timeline_file).read())
    assert [p for p, _ in data["timeline"]] == [RIGHT, UP] and data["seed"] == 21 and data["steps"] == 2
    made = status_numbers(status)[0]
    frames = read_frames(mp4)
    assert frames.shape == (made, 512, 512, 3) and made == round(sum(s for _, s in data["timeline"]) * 8)
    assert data["timeline"][1][1] * 8 >= 24  # at least two windows under the new prompt
    updates = [o for o in steered["outputs"] if isinstance(o[1], str) and MADE.search(o[1])]
    assert any(o[0] and o[0].endswith(".m3u8") for o in updates)  # the video streams as HLS
    # paced: never more than three windows ahead of playback, so it took about as long as it plays
    assert all(0 <= m - p <= AHEAD for m, _, p in map(status_numbers, (o[1] for o in updates)))
    assert steered["seconds"] >= (data["timeline"][1][1] + data["timeline"][0][1]) - AHEAD / 8 - 2.5
    assert any("Playing scene 2" in o[1] for o in updates) and server.alive()


def test_the_exported_timeline_makes_the_same_frames_through_generate(server, steered):
    """H.264 is lossy, but deterministic: the same frames through the same encoder settings (both MP4s are written
    by phenaki.media.Mp4Writer at 512 px) decode to the same pixels, and different frames do not."""
    _, _, mp4, timeline_file, seed, _ = steered["result"]
    data = json.loads(open(timeline_file).read())
    rows = {"headers": ["prompt", "seconds"], "data": data["timeline"]}
    *_, status, video, again, gif, seed_again, _ = client(server).predict(
        rows,
        data["steps"],
        data["temperature"],
        data["critic_strength"],
        data["guidance_scale"],
        data["seed"],
        data["refine_passes"],
        api_name="/generate",
    )
    assert "Done" in status and seed_again == seed
    assert np.array_equal(read_frames(again), read_frames(mp4))
    *_, other, _, _, _ = client(server).predict(
        rows,
        data["steps"],
        data["temperature"],
        data["critic_strength"],
        data["guidance_scale"],
        seed + 1,
        data["refine_passes"],
        api_name="/generate",
    )
    assert not np.array_equal(read_frames(other), read_frames(mp4))  # the comparison can fail


def test_steer_without_a_live_story_and_bad_prompts_are_refused(server):
    from gradio_client.exceptions import AppError

    c = client(server)
    with pytest.raises(AppError, match="No live story is running in this session"):
        c.predict(UP, api_name="/steer")
    with pytest.raises(AppError, match="the prompt is empty"):  # a bad /live starts nothing
        c.predict(" ", 2, 1.0, 0.0, 3.0, 4, 1, api_name="/live")
    job = c.submit(RIGHT, 2, 1.0, 0.0, 3.0, 4, 1, api_name="/live")
    wait_for(job, has_made(17))
    for prompt, message in (
        ("", "the new prompt is empty"),
        ("  ", "the new prompt is empty"),
        ("y" * 301, "longer than 300 characters"),
    ):
        with pytest.raises(AppError, match=message):
            c.predict(prompt, api_name="/steer")
    assert c.predict("  the red circle   moves up ", api_name="/steer") == f"Next window: *{UP}*"
    made = max(status_numbers(o[1])[0] for o in job.outputs() if has_made(0)(o))  # seen before the 2nd steer
    assert c.predict(RIGHT, api_name="/steer") == f"Next window: *{RIGHT}*"  # the latest steer wins
    # a window may start between the two steers (and play UP), and the story may be a few windows ahead of what
    # this client has seen: three windows more, and the last follows RIGHT
    wait_for(job, has_made(made + 36))
    c.predict(api_name="/stop_live")
    *_, timeline_file, _, _ = job.result(timeout=60)
    prompts = [p for p, _ in json.loads(open(timeline_file).read())["timeline"]]
    assert set(prompts) <= {RIGHT, UP} and prompts[-1] == RIGHT  # the refused prompts never played
    with pytest.raises(AppError, match="No live story is running"):  # it ended: nothing to steer
        c.predict(UP, api_name="/steer")
    assert server.alive()


def test_a_live_story_and_a_generate_story_of_two_clients_are_isolated(server):
    """One model: B's Generate story waits in the queue behind A's live story (its position shown), and B's
    Stop, Steer and Stop live never touch A's story; A's Stop ends it and B's story runs."""
    from gradio_client.exceptions import AppError

    a, b = client(server), client(server)
    job_a = a.submit(RIGHT, 2, 1.0, 0.0, 3.0, 8, 1, api_name="/live")
    wait_for(job_a, has_made(17))
    job_b = b.submit(
        {"headers": ["prompt", "seconds"], "data": [["a cyan circle moves up", 2]]},
        2,
        1.0,
        0.0,
        3.0,
        2,
        api_name="/generate",
    )
    ranks = []
    while len(ranks) < 5:
        status = job_b.status()
        assert not job_b.outputs() and not job_a.done()
        if status.code.name == "IN_QUEUE" and status.rank is not None:
            ranks.append(status.rank)
        time.sleep(0.1)
    assert set(ranks) == {0}  # first in line, behind the live story
    b.predict(api_name="/stop")  # B's Generate stop (its story is only queued: not flagged through the API)
    assert b.predict(api_name="/stop_live") == "No live story is running in this session."  # B's: none
    with pytest.raises(AppError, match="No live story is running in this session"):
        b.predict(UP, api_name="/steer")
    made = status_numbers(wait_for(job_a, has_made(53))[1])[0]
    assert not job_a.done() and made >= 53  # A plays on
    a.predict(api_name="/stop_live")
    _, status_a, mp4_a, timeline_a, _, _ = job_a.result(timeout=60)
    assert "Stopped" in status_a and [p for p, _ in json.loads(open(timeline_a).read())["timeline"]] == [RIGHT]
    *_, status_b, video_b, mp4_b, gif_b, seed_b, _ = job_b.result(timeout=120)
    assert "Done" in status_b and len(read_frames(mp4_b)) == 16 and seed_b == 2


def test_closing_the_client_stops_its_live_story(server):
    """gradio_client's heartbeat is the page's: when it goes, Gradio runs the unload event, and the story stops
    within a window (its session's RUNNING flag goes), leaving no compute for a page nobody has open."""
    c = client(server)
    job = c.submit(RIGHT, 2, 1.0, 0.0, 3.0, 6, 1, api_name="/live")
    wait_for(job, has_made(17))
    running = list(server.tmp.glob(f"phenaki-demo/*/*/{live.LIVE_RUNNING}"))
    assert len(running) == 1
    c.close()
    deadline = time.monotonic() + 30
    while running[0].exists():
        assert time.monotonic() < deadline, "the live story still runs after its client left"
        time.sleep(0.1)
    assert server.alive()


@pytest.mark.server  # starts its own python app.py
def test_live_max_seconds_ends_a_story_and_frees_the_model_for_the_next():
    server = AppServer(tiny_model_dir(), PHENAKI_LIVE_MAX_SECONDS="3")
    try:
        assert "live stories up to 3 s" in server.log()
        job = client(server).submit(RIGHT, 2, 1.0, 0.0, 3.0, 1, 1, api_name="/live")
        waiting = client(server).submit(
            {"headers": ["prompt", "seconds"], "data": [[UP, 1]]}, 2, 1.0, 0.0, 3.0, 1, api_name="/generate"
        )
        _, status, mp4, timeline_file, seed, _ = job.result(timeout=60)  # nobody stops it
        assert "Reached the length limit" in status and len(read_frames(mp4)) == 29  # 17 + 12: 3.6 s >= 3 s
        assert "Done" in waiting.result(timeout=60)[2]
        assert server.crashes() == []
    finally:
        server.stop()


@pytest.mark.bundled_model
def test_steering_the_bundled_model_changes_what_it_makes():
    """The bundled weights/ model, steered mid-stream from moving right to moving up: the frames made after the
    change (from the timeline JSON) move up, read back by phenaki.shapes.world.describe at 64x64."""
    server = AppServer(None, timeout=180)
    try:
        c = client(server)
        job = c.submit(RIGHT, 8, 1.0, 0.0, 3.0, 0, 1, api_name="/live")
        wait_for(job, has_made(17))
        c.predict(UP, api_name="/steer")
        after = wait_for(job, has_made(1, scene=2))
        wait_for(job, has_made(status_numbers(after[1])[0] + 12, scene=2))
        c.predict(api_name="/stop_live")
        _, status, mp4, timeline_file, _, _ = job.result(timeout=120)
        timeline = json.loads(open(timeline_file).read())["timeline"]
        lengths = [round(seconds * 8) for _, seconds in timeline]
        assert [p for p, _ in timeline] == [RIGHT, UP] and lengths[1] >= 24
        frames = read_frames(mp4)[:, 4::8, 4::8]  # the 64x64 frames, upscaled 8x: one pixel per block
        seen = world.describe(frames, lengths)
        assert (seen.colour, seen.shape) == ("red", "circle") and seen.motions[0] == "right"
        assert world.motion_matches("up", seen.motions[1], frames[lengths[0] :]), seen.motions
        assert server.crashes() == []
    finally:
        server.stop()
