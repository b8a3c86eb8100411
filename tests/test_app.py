"""The demo: its back-end called directly (phenaki.demo.stories, startup, phenaki.media), and `python app.py` on a
free port driven with gradio_client. All on the tiny random model (32x32 frames), but one test that serves the
bundled weights/ model. The page built in-process (phenaki.demo.ui, phenaki.demo.app) is tests/test_demo_ui.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from app_server import ROOT, AppServer, FailsAfterFirstWindow, app_env, client, tiny_model_dir
from PIL import Image

from phenaki import Phenaki, media
from phenaki.demo import startup, timeline_table
from phenaki.demo import stories as logic
from phenaki.shapes.vocabulary import world_vocabulary
from phenaki.shapes.world import parse_caption
from phenaki.shapes.world2 import HELD_OUT as HELD_OUT_PAIRS
from phenaki.shapes.world2_captions import parse_scene

TWO_SCENES = [["a red circle moves right", 2], ["the red circle moves up", 2]]  # 16 + 16 frames at 8 fps


@pytest.fixture(scope="module")
def model():
    return Phenaki.from_pretrained(tiny_model_dir(), device="cpu")


def settings(**kw):
    return logic.Settings(**{"steps": 2, "seed": 0, **kw})


def gif_timing(path) -> tuple[int, int, int]:
    """(frames, total milliseconds, loop) of a GIF."""
    with Image.open(path) as gif:
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
        return gif.n_frames, total, gif.info["loop"]


def count_frames(path) -> int:
    with imageio.get_reader(path) as reader:
        return sum(1 for _ in reader)


def read_frames(path) -> np.ndarray:
    with imageio.get_reader(path) as reader:
        return np.stack([frame for frame in reader])


# ---- inputs -------------------------------------------------------------------------------------------------


def test_timeline_from_ui_table_api_dict_and_lists():
    import pandas as pd

    ui = pd.DataFrame(
        [["  a red circle   moves right ", 2.0], ["", None], ["the red circle moves up", 1.5]],
        columns=["prompt", "seconds"],
    )
    assert logic.parse_timeline(ui) == [("a red circle moves right", 2.0), ("the red circle moves up", 1.5)]
    # API callers: headers in another order, values as strings, a blank row in the middle
    api = {
        "headers": ["seconds", "prompt"],
        "data": [["2", "a blue square stays still"], ["", ""], [" 0.5 ", "the blue square moves left"]],
    }
    assert logic.parse_timeline(api) == [("a blue square stays still", 2.0), ("the blue square moves left", 0.5)]
    assert logic.parse_timeline([("a", 1), {"prompt": "b", "seconds": "3"}]) == [("a", 1.0), ("b", 3.0)]
    assert logic.parse_timeline([["x", 60], ["y", 60]]) == [("x", 60.0), ("y", 60.0)]  # exactly 2 minutes


@pytest.mark.parametrize(
    "table, message",
    [
        ([], "timeline is empty"),
        ({"headers": ["prompt", "seconds"], "data": [["", ""], [None, None]]}, "timeline is empty"),
        ([["", 2]], "row 1 has no prompt"),
        ([["a", 2], ["   ", "1"]], "row 2 has no prompt"),
        ([["a", 0]], "row 1: seconds must be more than 0"),
        ([["a", -1]], "more than 0"),
        ([["a", "abc"]], "row 1: seconds must be a number, got 'abc'"),
        ([["a", ""]], "row 1: seconds is missing"),
        ([["a", True]], "must be a number"),
        ([["a", "nan"]], "finite"),
        ([[2, "a red circle"]], "the prompt must be text"),
        ([["a", 60], ["b", 60.5]], "lasts 120.5 s; at most 120 s"),
        ([["a", 1]] * 65, "at most 64"),
        ([["x" * 301, 1]], "longer than 300"),
        ("a red circle", "must be a table"),
        ({"rows": []}, "must be a table"),
        ({"data": 5}, "'data' must be a list of rows"),
        ({"headers": 5, "data": [["a", 1]]}, "its 'headers' a list"),
    ],
)
def test_bad_timelines_are_explained(table, message):
    with pytest.raises(logic.InputError, match=re.escape(message)):
        logic.parse_timeline(table)


def test_settings_coerce_api_strings_and_random_seed():
    s = logic.parse_settings("12", "1.5", "0.25", "3", "42", has_critic=True)
    assert s == logic.Settings(steps=12, temperature=1.5, critic_strength=0.25, guidance_scale=3.0, seed=42)
    assert isinstance(s.steps, int) and isinstance(s.seed, int)
    assert logic.parse_settings(8.0, 0, None, 0, -1, has_critic=False).seed is None
    assert logic.parse_settings(8, 0, 0, 0, "", has_critic=False).seed is None
    resolved = logic.parse_settings(8, 0, 0, 0, -1, "1", has_critic=False).resolve_seed()
    assert isinstance(resolved.seed, int) and 0 <= resolved.seed < 2**31 and resolved.refine_passes == 1
    assert s.refine_passes == logic.DEFAULTS["refine_passes"] == 1  # left out: the library's default
    assert logic.parse_settings(8, 0, 0, 0, 1, "", has_critic=False).refine_passes == 1
    assert logic.parse_settings(8, 0, 0, 0, 1, 0, has_critic=False).sampling_kwargs()["refine_passes"] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(steps=0), "steps must be between 1 and 64, got 0"),
        (dict(steps=65), "steps must be between 1 and 64"),
        (dict(steps="ten"), "steps must be a number, got 'ten'"),
        (dict(steps=2.5), "steps must be a whole number"),
        (dict(steps=None), "steps is missing"),
        (dict(temperature=-0.1), "temperature must be between 0 and 10"),
        (dict(guidance_scale="inf"), "guidance scale must be a finite number"),
        (dict(critic_strength=1.5), "critic strength must be between 0 and 1"),
        (dict(critic_strength=0.5, has_critic=False), "this model has no Token Critic"),
        (dict(seed=-5), "seed must be between 0 and"),
        (dict(seed="x"), "seed must be a number"),
        (dict(seed=True), "seed must be a number"),
        (dict(refine_passes=5), "refine passes must be between 0 and 4, got 5"),
        (dict(refine_passes=-1), "refine passes must be between 0 and 4"),
        (dict(refine_passes=1.5), "refine passes must be a whole number"),
        (dict(refine_passes="twice"), "refine passes must be a number, got 'twice'"),
    ],
)
def test_bad_settings_are_explained(args, message):
    values = dict(steps=12, temperature=1.0, critic_strength=0.0, guidance_scale=3.0, seed=0, has_critic=True)
    values.update(args)
    with pytest.raises(logic.InputError, match=re.escape(message)):
        logic.parse_settings(**values)


def test_add_and_delete_scene_buttons():
    rows = timeline_table.add_scene({"headers": ["prompt", "seconds"], "data": [["a red circle moves right", 1.5]]})
    assert rows == [["a red circle moves right", 1.5], ["the red circle ", 1.5]]
    assert timeline_table.add_scene([]) == [["", logic.NEW_SCENE_SECONDS]]
    assert timeline_table.delete_scene(rows) == [["a red circle moves right", 1.5]]
    assert timeline_table.delete_scene([["only", 1]]) == [["only", 1]]  # one row always stays


def test_timeline_summary_counts_frames_or_says_what_is_wrong():
    assert timeline_table.timeline_summary(TWO_SCENES, 8).startswith("2 scenes · 4 s · 32 frames at 8 fps")
    assert "has no prompt" in timeline_table.timeline_summary([["", 1]], 8)


# ---- frames and files ---------------------------------------------------------------------------------------


def test_nearest_neighbour_upscale_and_even_sizes():
    assert media.display_scale((64, 64)) == 8 and media.display_scale((32, 32)) == 16
    assert media.display_scale((256, 128)) == 2 and media.display_scale((1000, 1000)) == 1
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    big = media.upscale(frames, 3)
    assert big.shape == (2, 15, 21, 3)
    assert (big[:, ::3, ::3] == frames).all() and (big[:, 2::3, 2::3] == frames).all()  # blocks, no blending
    even = media.upscale(frames, 3, even=True)
    assert even.shape == (2, 16, 22, 3) and (even[:, :15, :21] == big).all()
    assert media.upscale(frames[0], 2).shape == (10, 14, 3)
    with pytest.raises(ValueError):
        media.upscale(frames, 0)


def test_mp4_is_h264_with_every_frame_and_gif_loops(tmp_path):
    frames = np.zeros((12, 16, 16, 3), np.uint8)
    for i in range(12):
        frames[i, :, i : i + 4] = (255, 0, 0)  # a red bar moving right
    big = media.upscale(frames, 8)
    mp4 = media.write_mp4(tmp_path / "a.mp4", big, fps=8)
    with imageio.get_reader(mp4) as reader:
        meta = reader.get_meta_data()
        decoded = np.stack([frame for frame in reader])  # (list(reader) asks len(): infinite)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 8
    assert decoded.shape == (12, 128, 128, 3)
    assert np.abs(decoded.astype(int) - big).mean() < 4
    # appended chunk by chunk, odd sizes padded to even
    writer = media.Mp4Writer(tmp_path / "b.mp4", fps=8)
    writer.append(media.upscale(frames[:5], 3))
    writer.append(media.upscale(frames[5:], 3))
    assert count_frames(writer.close()) == 12 and read_frames(tmp_path / "b.mp4").shape[1:3] == (48, 48)
    odd = media.write_mp4(tmp_path / "odd.mp4", media.upscale(frames[:3, :15, :15], 1), fps=8)
    assert read_frames(odd).shape == (3, 16, 16, 3)
    gif = media.write_gif(tmp_path / "a.gif", media.upscale(frames, 2), fps=8, stride=2)
    assert gif_timing(gif) == (12, 3000, 0)  # 12 frames of 250 ms, looping
    assert gif_timing(media.write_gif(tmp_path / "b.gif", frames, fps=8)) == (12, 1500, 0)  # 125 ms: 120, 130


def test_contact_sheet_tiles_every_frame():
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    frames[:, :, :, 1] = np.arange(10)[:, None, None] * 20
    sheet = media.contact_sheet(frames, tile=64, columns=4, gap=2)
    assert sheet.shape == (3 * 64 + 4, 4 * 64 + 6, 3)
    assert sheet[64 + 2 + 10, 3 * (64 + 2) + 10, 1] == 7 * 20  # frame 7: second row, fourth column


# ---- the story generator ------------------------------------------------------------------------------------


def test_story_streams_every_window_then_mp4_and_gif(model, tmp_path):
    chunks = list(model.stream(TWO_SCENES, steps=2, seed=0))  # what the library makes, window by window
    assert len(chunks) >= 2
    updates = list(logic.generate_story(model, logic.parse_timeline(TWO_SCENES), settings(), tmp_path))
    final = updates[-1]
    assert [u.final for u in updates] == [False] * 2 * len(chunks) + [True]
    # every window twice: its frames (contact sheet) first, then the same with its own MP4 (live preview)
    windows, videos = updates[:-1:2], updates[1:-1:2]
    assert all(u.window_video is None for u in windows) and all(v.window_video for v in videos)
    assert [(v.window_sheet, v.frames_done, v.scene) for v in videos] == [
        (u.window_sheet, u.frames_done, u.scene) for u in windows
    ]
    assert [u.frames_done for u in windows] == list(np.cumsum([len(c.frames) for c in chunks]))
    assert [u.scene for u in windows] == [c.segment for c in chunks]
    assert windows[-1].prompt == "the red circle moves up" and all(u.seed == 0 for u in updates)
    scale = media.display_scale(model.frame_size)
    for update, video, chunk in zip(windows, videos, chunks):
        assert Image.open(update.window_sheet).size[0] > 32 * 8
        live = read_frames(video.window_video)
        assert live.shape == (len(chunk.frames), 32 * scale, 32 * scale, 3)
        assert np.abs(live.astype(int) - media.upscale(chunk.frames, scale)).mean() < 12
    assert final.frames_done == final.frames_total == 32 and not final.stopped and final.error is None
    story = read_frames(final.video)
    assert story.shape == (32, 512, 512, 3)
    made = np.concatenate([c.frames for c in chunks])
    assert np.abs(story.astype(int) - media.upscale(made, scale)).mean() < 12
    assert gif_timing(final.gif) == (32, 4000, 0) and Image.open(final.gif).size == (256, 256)


def test_a_window_s_frames_come_before_its_mp4_is_encoded(model, tmp_path):
    story = logic.generate_story(model, logic.parse_timeline(TWO_SCENES), settings(), tmp_path)
    first = next(story)
    assert Path(first.window_sheet).is_file() and first.window_video is None
    assert list(tmp_path.glob("*.mp4")) == []  # no MP4 encoded yet: the picture goes out first
    second = next(story)
    assert Path(second.window_video).is_file() and second.frames_done == first.frames_done
    story.close()
    # without live preview clips, one update a window
    updates = list(
        logic.generate_story(
            model, logic.parse_timeline(TWO_SCENES), settings(), tmp_path / "no-clips", window_videos=False
        )
    )
    assert all(u.window_video is None for u in updates) and len(updates) == windows_of(model, TWO_SCENES) + 1


def test_story_gif_is_subsampled_for_long_stories(model, tmp_path):
    final = list(
        logic.generate_story(
            model,
            [("a red circle moves right", 3)],
            settings(steps=1),
            tmp_path,
            window_videos=False,
            gif_max_frames=10,
        )
    )[-1]
    assert count_frames(final.video) == 24
    assert gif_timing(final.gif) == (8, 3000, 0)  # every 3rd frame, shown 3 x 125 ms


def test_stop_file_ends_the_story_between_windows_and_keeps_the_frames(model, tmp_path):
    stop = tmp_path / "STOP"
    story = logic.generate_story(model, logic.parse_timeline(TWO_SCENES), settings(), tmp_path / "run", stop_file=stop)
    first = next(story)
    stop.touch()
    rest = list(story)  # the first window's MP4 (live preview), then the end
    assert [u.final for u in rest] == [False, True] and rest[0].window_video and rest[1].stopped
    assert rest[1].frames_done == first.frames_done < rest[1].frames_total
    assert count_frames(rest[1].video) == first.frames_done
    # asked to stop before it started: nothing is made, and it says so
    updates = list(
        logic.generate_story(model, logic.parse_timeline(TWO_SCENES), settings(), tmp_path / "r2", stop_file=stop)
    )
    assert len(updates) == 1 and updates[0].stopped and updates[0].video is None and updates[0].frames_done == 0


def test_failure_mid_story_keeps_the_frames_made(model, tmp_path):
    updates = list(
        logic.generate_story(FailsAfterFirstWindow(model), logic.parse_timeline(TWO_SCENES), settings(), tmp_path)
    )
    final = updates[-1]
    assert len(updates) == 3 and final.final and "CUDA out of memory (simulated)" in final.error  # 1 window, 2 updates
    assert count_frames(final.video) == updates[0].frames_done == 16 and Path(final.gif).stat().st_size > 0


def test_bad_input_starts_nothing(model, tmp_path):
    no_critic = Phenaki.from_pretrained(tiny_model_dir(critic=False))
    with pytest.raises(logic.InputError, match="Token Critic"):
        next(logic.generate_story(no_critic, [("a", 1.0)], settings(critic_strength=0.5), tmp_path / "a"))
    with pytest.raises(logic.InputError, match="prompt must be a non-empty string"):
        next(logic.generate_story(model, [(" ", 1.0)], settings(), tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_gpu_duration_estimate_grows_with_the_story(model):
    short = logic.estimate_seconds(model, [("a", 1)], settings(steps=12), low=0, high=1e9)
    long = logic.estimate_seconds(model, [("a", 60), ("b", 60)], settings(steps=12), low=0, high=1e9)
    assert 0 < short < long
    unrefined = logic.estimate_seconds(
        model, [("a", 60), ("b", 60)], settings(steps=12, refine_passes=0), low=0, high=1e9
    )
    assert unrefined < long  # refinement's steps are counted
    assert logic.estimate_seconds(model, [("a", 60), ("b", 60)], settings(steps=64)) == 120  # clamped


# ---- start-up, examples ------------------------------------------------------------------------------------


def test_model_source_and_missing_model_message(tmp_path):
    assert startup.model_source({}, default="weights") == ("weights", None)
    assert startup.model_source({"PHENAKI_MODEL": "me/phenaki", "PHENAKI_REVISION": "v1"}) == ("me/phenaki", "v1")
    default = tmp_path / "weights"
    with pytest.raises(startup.StartupError) as error:
        startup.load_model(str(default), default=default)
    assert "PHENAKI_MODEL" in str(error.value) and "weights/" in str(error.value)
    with pytest.raises(startup.StartupError, match="PHENAKI_MODEL"):
        startup.load_model(str(tmp_path / "elsewhere"), default=default)
    assert startup.pick_device({"PHENAKI_DEVICE": "cpu"}) == "cpu"
    assert startup.pick_device({"SPACES_ZERO_GPU": "true"}) == "cuda"


def test_threads_leave_a_core_to_a_browser_on_the_same_machine():
    pick = startup.pick_threads
    assert pick("cpu", {}, default=2) == 1 and pick("cpu", {"GRADIO_SERVER_NAME": "localhost"}, default=8) == 7
    assert pick("cpu", {}, default=1) is None  # nothing to leave
    assert pick("cpu", {"GRADIO_SERVER_NAME": "0.0.0.0"}, default=2) is None  # a Space: the browser is elsewhere
    assert pick("cuda", {}, default=2) is None and pick("cpu", {"OMP_NUM_THREADS": "2"}, default=2) is None
    assert pick("cuda", {"PHENAKI_THREADS": "3"}, default=2) == 3
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(startup.StartupError, match=f"PHENAKI_THREADS must be a whole number .*got '{bad}'"):
            pick("cpu", {"PHENAKI_THREADS": bad}, default=2)


@pytest.mark.server  # starts python app.py (which exits)
def test_app_exits_with_a_clear_message_without_a_model_or_with_bad_threads(tmp_path):
    env = app_env(PHENAKI_MODEL=str(tmp_path / "no-such-model"), GRADIO_SERVER_PORT="9")
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "PHENAKI_MODEL" in result.stderr and "weights/" in result.stderr and "Traceback" not in result.stderr
    env = app_env(PHENAKI_MODEL=str(tiny_model_dir()), PHENAKI_THREADS="many", GRADIO_SERVER_PORT="9")
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "PHENAKI_THREADS must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_examples_are_valid_shapes_world_timelines():
    files = sorted((ROOT / "examples").glob("*.json"))
    examples = startup.load_examples(ROOT / "examples")
    assert len(examples) == len(files) >= 3
    assert len({e.title for e in examples}) == len(examples)
    for example, path in zip(examples, files):
        data = json.loads(path.read_text())
        assert set(data) >= {"title", "timeline", "seed"}
        objects = [(t.colour, t.shape) for t in parse_scene(example.timeline[0][0])]  # world 2 reads world 1's
        assert example.timeline[0][0].startswith("a ")
        for prompt, _ in example.timeline[1:]:  # later scenes continue the same objects
            assert prompt.startswith("the ") and [(t.colour, t.shape) for t in parse_scene(prompt)] == objects
    # a world-1 model is offered the examples it has the words for: those of one object, no size, no growth
    for_world1 = startup.load_examples(ROOT / "examples", world_vocabulary("shapes"))
    assert 3 <= len(for_world1) < len(examples)
    assert all(len(parse_caption(p)) == 3 for e in for_world1 for p, _ in e.timeline)
    assert startup.load_examples(ROOT / "examples", world_vocabulary("shapes2")) == examples


def test_the_examples_show_what_world_2_adds():
    """Issue 24: examples with two objects, growth, held-out pairs and a story that changes each object's motion."""
    stories = [[parse_scene(prompt) for prompt, _ in e.timeline] for e in startup.load_examples(ROOT / "examples")]
    things = [thing for story in stories for scene in story for thing in scene]
    assert any(len(story[0]) == 2 for story in stories)
    assert {"grows", "shrinks"} <= {thing.motion for thing in things}
    assert {(t.colour, t.shape) for t in things} & set(HELD_OUT_PAIRS)
    assert any(  # two objects, and each scene change gives both a new motion
        len(story) >= 3
        and len(story[0]) == 2
        and all(a.motion != b.motion for x, y in pairwise(story) for a, b in zip(x, y))
        for story in stories
    )


# ---- the running app, through gradio_client -------------------------------------------------------------------


def table(rows):
    return {"headers": ["prompt", "seconds"], "data": rows}


def windows_of(model, timeline) -> int:
    return len(list(model.stream(timeline, steps=1, seed=0)))  # the number of windows does not depend on steps


def test_api_streams_an_update_per_window_then_the_mp4(server, model):
    expected_windows = windows_of(model, TWO_SCENES)
    job = client(server).submit(
        table([["a red circle moves right", "2"], ["the red circle moves up", 2]]),
        2,
        1.0,
        0.0,
        3.0,
        3,
        api_name="/generate",
    )
    seen = []  # (outputs, whether the job was still running when they arrived)
    for outputs in job:
        seen.append((outputs, not job.done()))
    final = job.result()
    window_updates = [o for o, _ in seen if isinstance(o[1], str) and o[1].endswith(".png") and "Generating" in o[2]]
    assert len(window_updates) >= expected_windows >= 2
    assert sum(running for o, running in seen if o in window_updates) >= expected_windows - 1  # before the end
    done = [int(re.search(r"(\d+)/32 frames", o[2]).group(1)) for o in window_updates]
    assert done == sorted(done) and done[-1] == 32
    # the live preview (on: tests/conftest.py fails server tests without ffmpeg and ffprobe) streams as HLS
    assert "live preview on" in server.log()
    assert all(o[0].endswith(".m3u8") for o in window_updates)
    # each window comes twice: its frames at once, still beside the last clip, then with its own clip
    assert len(window_updates) >= 2 * expected_windows
    firsts = [i for i in range(1, len(window_updates)) if window_updates[i][1] != window_updates[i - 1][1]]
    assert len(firsts) == expected_windows - 1
    # (the client names a playlist by its content when it fetches it: a window's frames may already show the
    # playlist with its clip when the client fetched it late, e.g. after the emerging picture's files)
    assert all(window_updates[i - 1][0] != window_updates[i + 1][0] for i in firsts)
    live, sheet, status, video, mp4, gif, seed, picture = final
    assert "Done" in status and seed == 3 and picture is None  # the emerging picture: tests/test_emerging.py
    assert mp4.endswith(".mp4") and count_frames(mp4) == 32
    assert read_frames(mp4).shape[1:3] == (512, 512)
    assert Image.open(gif).n_frames == 32


@pytest.mark.parametrize(
    "rows, args, message",
    [
        ([["", 2]], {}, "row 1 has no prompt"),
        ([], {}, "timeline is empty"),
        ([["a red circle", "0"]], {}, "seconds must be more than 0"),
        ([["a red circle", 100], ["the red circle", 30]], {}, "at most 120 s"),
        ([["a red circle", "two"]], {}, "seconds must be a number, got 'two'"),
        ([["a red circle", 1]], {"steps": "many"}, "steps must be a number"),
        ([["a red circle", 1]], {"steps": 0}, "steps must be between 1 and 64"),
        ([["a red circle", 1]], {"steps": 999}, "steps must be between 1 and 64"),
        ([["a red circle", 1]], {"temperature": "hot"}, "temperature must be a number"),
        ([["a red circle", 1]], {"seed": "lucky"}, "seed must be a number"),
        ([["a red circle", 1]], {"refine_passes": 9}, "refine passes must be between 0 and 4, got 9"),
    ],
)
def test_api_bad_inputs_are_errors_and_start_nothing(server, rows, args, message):
    from gradio_client.exceptions import AppError

    values = dict(steps=2, temperature=1.0, critic_strength=0.0, guidance_scale=3.0, seed=0, refine_passes=2)
    values.update(args)
    runs = len(server.runs())
    job = client(server).submit(table(rows), *values.values(), api_name="/generate")
    with pytest.raises(AppError, match=re.escape(message)):
        job.result(timeout=60)
    assert job.outputs() == [] and len(server.runs()) == runs and server.alive()


def test_api_stop_keeps_what_was_made(server):
    c = client(server)
    job = c.submit(
        table([["a green square moves down", 4], ["the green square moves left", 4]]),
        2,
        1.0,
        0.0,
        3.0,
        5,
        api_name="/generate",
    )
    while not any(isinstance(o[1], str) for o in job.outputs()):  # the first window is there
        assert not job.done(), job.exception()
        time.sleep(0.05)
    assert "Stopping" in c.predict(api_name="/stop")
    live, sheet, status, video, mp4, gif, seed, _ = job.result(timeout=120)
    made = int(re.search(r"(\d+)/64 frames", status).group(1))
    assert "Stopped" in status and 0 < made < 64 and count_frames(mp4) == made


def test_two_clients_at_once_both_finish_the_second_waits_in_line(server):
    a, b = client(server), client(server)
    rows = table([["a cyan circle moves up", 2], ["the cyan circle moves left", 2]])
    job_a = a.submit(rows, 2, 1.0, 0.0, 3.0, -1, api_name="/generate")
    while not job_a.outputs():
        time.sleep(0.05)
    job_b = b.submit(rows, 2, 1.0, 0.0, 3.0, -1, api_name="/generate")
    waiting = []  # B's queue position while A was still generating
    while not job_b.outputs() and not job_b.done():
        status = job_b.status()
        if status.code.name == "IN_QUEUE" and status.rank is not None and not job_a.done():
            waiting.append(status.rank)
        time.sleep(0.05)
    result_a, result_b = job_a.result(timeout=120), job_b.result(timeout=120)
    assert waiting and set(waiting) == {0}  # B waited, first in line, instead of running beside A
    assert "Done" in result_a[2] and "Done" in result_b[2]
    assert count_frames(result_a[4]) == count_frames(result_b[4]) == 32
    assert all(isinstance(r[6], int) and r[6] >= 0 for r in (result_a, result_b))  # random seeds, reported
    assert server.alive()


def test_app_makes_no_outside_calls(server):
    assert server.trap.hits == []
    assert "Running on local URL" in server.log() and "public link" not in server.log().lower().replace(
        "to create a public link, set `share=true` in `launch()`.", ""
    )


# right, up, still: 3 scenes of 16 frames. Measured through the library (and an MP4 read back as below) on 6 held-out
# seeds, HELD_OUT + 0 ... 5: every scene's colour, shape and motion right on all 6.
BUNDLED_STORY = [
    ["a yellow triangle moves right", 2],
    ["the yellow triangle moves up", 2],
    ["the yellow triangle stays still", 2],
]


def downscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, H / factor, W / factor, 3): each factor x factor block's mean (the inverse of the app's
    nearest-neighbour upscale, averaging out the MP4's compression noise)."""
    t, h, w, c = frames.shape
    blocks = frames.reshape(t, h // factor, factor, w // factor, factor, c).astype(np.float32)
    return blocks.mean(axis=(2, 4)).round().astype(np.uint8)


@pytest.mark.server  # starts its own python app.py
@pytest.mark.bundled_model
def test_the_bundled_model_is_served_by_default():
    """The one server test on the bundled weights/ model (the others serve the tiny random model: they test the
    plumbing). `python app.py` without PHENAKI_MODEL, as `bash scripts/demo.sh` starts it, makes a three-scene story
    through the API at the library's default settings and a held-out seed, and the MP4 it returns shows what each
    scene asks for, read back by the shapes world's `describe` (the reading the model card's figures come from)."""
    from phenaki.sampling import SamplingSettings
    from phenaki.shapes import world
    from phenaki.shapes.eval import HELD_OUT

    defaults = SamplingSettings()
    server = AppServer(None, timeout=180)
    try:
        assert "model weights/ (bundled) on cpu" in server.log()
        *_, status, video, mp4, gif, seed, _ = client(server).predict(
            table(BUNDLED_STORY),
            defaults.steps,
            defaults.temperature,
            defaults.critic_strength,
            defaults.guidance_scale,
            HELD_OUT,
            defaults.refine_passes,
            api_name="/generate",
        )
        assert "Done" in status and "48/48 frames" in status and seed == HELD_OUT
        frames = read_frames(mp4)
        assert frames.shape == (48, 512, 512, 3)  # the bundled model's 64x64 frames, upscaled 8x
        assert server.trap.hits == [] and server.crashes() == [], server.log()
    finally:
        server.stop()
    frames = downscale(frames, media.display_scale((world.FRAME_SIZE, world.FRAME_SIZE)))
    lengths = [round(seconds * world.FPS) for _, seconds in BUNDLED_STORY]
    scenes = np.split(frames, np.cumsum(lengths)[:-1])
    motions = world.describe(frames, lengths).motions  # each scene's motion from its own first to last frame
    for (prompt, _), scene, motion in zip(BUNDLED_STORY, scenes, motions):
        colour, shape, asked = world.parse_caption(prompt)
        seen = world.describe(scene)
        assert (seen.colour, seen.shape) == (colour, shape), (prompt, seen)
        assert world.motion_matches(asked, motion, scene), (prompt, motion)
