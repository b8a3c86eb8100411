"""The story cache (phenaki.story_cache, phenaki.story_resume): an edited story is made again only from its first
changed window, and its frames are those of a fresh story, in this process and in a fresh one; everything that
decides a window is in its key; the cache is bounded in bytes. Then the demo: generate_story's reuse update, and
/generate through gradio_client on the shared server (the browser's view is in tests/test_browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from app_server import ROOT, app_env, client, tiny_model_dir
from PIL import Image

from phenaki import Phenaki
from phenaki.demo import app, startup
from phenaki.demo import stories as logic
from phenaki.media import to_uint8_frames
from phenaki.precision import precision
from phenaki.story_cache import ENV_VAR, StoryCache, model_fingerprint, runtime_fingerprint
from phenaki.story_resume import cached_stream, describe_reuse, plan_windows

FAST = dict(steps=2, refine_passes=1)
# 16 | 12 + 12 | 12 + 8 frames: windows 0 | 1, 2 | 3, 4 (a first window of 17 frames holds all of scene 1)
STORY = [("a red circle moves right", 2.0), ("the red circle moves up", 3.0), ("the red circle stays still", 2.5)]
EDITED = [*STORY[:2], ("a blue square moves left", 2.5)]


@pytest.fixture(scope="module")
def model():
    return Phenaki.from_pretrained(tiny_model_dir(), device="cpu")


def frames_of(chunks) -> list[np.ndarray]:
    return [np.asarray(chunk.frames) for chunk in chunks]


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(frames_of(a), frames_of(b)))


def big_cache() -> StoryCache:
    return StoryCache(64 * 2**20)


def test_an_edited_last_scene_is_made_from_its_first_window_and_equals_a_fresh_story(model):
    cache = big_cache()
    first = cached_stream(model, STORY, cache=cache, seed=3, **FAST)
    assert first.reused == 0 and [(w.segment, w.new_frames) for w in first.plan] == [
        (0, 16),
        (1, 12),
        (1, 12),
        (2, 12),
        (2, 8),
    ]
    made = list(first)
    assert same(made, list(model.stream(STORY, seed=3, **FAST)))  # with an empty cache: stream's frames
    assert [(c.segment, c.start, c.window, c.reused) for c in made][-1] == (2, 52, 4, False) and len(cache) == 5

    steps = []
    edited = cached_stream(model, EDITED, cache=cache, seed=3, on_step=steps.append, **FAST)
    assert edited.reused == 3 and describe_reuse(edited.plan, edited.reused) == "scenes 1–2 reused, 3 made"
    chunks = list(edited)
    assert [c.reused for c in chunks] == [True, True, True, False, False]
    assert {s.window for s in steps} == {3, 4}  # only the made windows were sampled
    assert same(chunks, list(model.stream(EDITED, seed=3, **FAST)))
    assert not same(chunks[3:], made[3:])  # the edit did change the last scene
    assert [c.start for c in chunks] == [0, 16, 28, 40, 52]


def test_a_longer_scene_keeps_its_unchanged_windows_and_added_scenes_keep_every_window(model):
    cache = big_cache()
    list(cached_stream(model, STORY, cache=cache, seed=5, **FAST))
    longer = [STORY[0], (STORY[1][0], 4.0), STORY[2]]  # scene 2: 12 + 12 + 8 frames, its first two windows kept
    story = cached_stream(model, longer, cache=cache, seed=5, **FAST)
    assert story.reused == 3
    assert describe_reuse(story.plan, story.reused) == "scene 1 reused, 2–3 made (scene 2's first 24 frames reused)"
    assert same(list(story), list(model.stream(longer, seed=5, **FAST)))
    added = [*STORY, ("the red circle moves left", 1.0)]
    story = cached_stream(model, added, cache=cache, seed=5, **FAST)
    assert story.reused == 5 and describe_reuse(story.plan, story.reused) == "scenes 1–3 reused, 4 made"
    assert same(list(story), list(model.stream(added, seed=5, **FAST)))
    again = cached_stream(model, added, cache=cache, seed=5, **FAST)
    assert again.reused == len(again.plan) == 6 and describe_reuse(again.plan, 6) == "scenes 1–4 reused"


def test_everything_that_decides_a_window_is_in_its_key(model):
    cache = big_cache()
    list(cached_stream(model, STORY, cache=cache, seed=3, **FAST))
    assert cached_stream(model, STORY, cache=cache, seed=3, **FAST).reused == 5
    assert cached_stream(model, STORY, cache=cache, seed=4, **FAST).reused == 0
    assert cached_stream(model, STORY, cache=cache, seed=3, steps=3, refine_passes=1).reused == 0
    assert cached_stream(model, STORY, cache=cache, seed=3, temperature=0.9, **FAST).reused == 0
    assert cached_stream(model, [("a red circle moves left", 2.0), *STORY[1:]], cache=cache, seed=3, **FAST).reused == 0
    other = "fp32" if runtime_fingerprint("cpu")["precision"] == "bf16" else "bf16"
    with precision(other):
        assert cached_stream(model, STORY, cache=cache, seed=3, **FAST).reused == 0
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert cached_stream(model, STORY, cache=cache, seed=3, **FAST).reused == 0
    finally:
        torch.set_num_threads(threads)
    # a start: its frames are in the key, and the story continues them as sample's prime_frames
    start = torch.rand(1, 3, 5, *model.frame_size, generator=torch.Generator().manual_seed(0))
    one = [("the red circle moves up", 2.0)]
    primed = list(cached_stream(model, one, cache=cache, seed=3, prime=start, **FAST))
    video = model.sample("the red circle moves up", 16, prime_frames=start, seed=3, **FAST)
    assert np.array_equal(np.concatenate(frames_of(primed)), to_uint8_frames(video[0]))
    assert cached_stream(model, one, cache=cache, seed=3, prime=start, **FAST).reused == 2
    assert cached_stream(model, one, cache=cache, seed=3, prime=start.flip(2), **FAST).reused == 0
    assert cached_stream(model, one, cache=cache, seed=3, **FAST).reused == 0


def test_changed_weights_never_reuse_stale_frames():
    changed = Phenaki.from_pretrained(tiny_model_dir(), device="cpu")
    cache = big_cache()
    before = model_fingerprint(changed)
    list(cached_stream(changed, STORY, cache=cache, seed=3, **FAST))
    weight = changed.maskgit.token_emb.weight
    with torch.no_grad():
        weight.add_(0.01)  # in place (as an optimizer step or load_state_dict does): its version counter moves
    assert model_fingerprint(changed) != before
    story = cached_stream(changed, STORY, cache=cache, seed=3, **FAST)
    assert story.reused == 0 and same(list(story), list(changed.stream(STORY, seed=3, **FAST)))
    after = model_fingerprint(changed)
    weight.data[0, 0] += 1.0  # through .data, which no version counter sees: the weights' sums do
    assert model_fingerprint(changed) not in (before, after)
    story = cached_stream(changed, STORY, cache=cache, seed=3, **FAST)
    assert story.reused == 0 and same(list(story), list(changed.stream(STORY, seed=3, **FAST)))
    # the same weights loaded again (another object): the same fingerprint, so the windows are found
    assert model_fingerprint(Phenaki.from_pretrained(tiny_model_dir(), device="cpu")) == before


FRESH = """
import json, sys
import numpy as np, torch
torch.set_num_threads(1)
from phenaki import Phenaki
model = Phenaki.from_pretrained(sys.argv[1], device="cpu")
timeline, seed, settings, out = json.loads(sys.argv[2])
np.save(out, np.concatenate([c.frames for c in model.stream([tuple(e) for e in timeline], seed=seed, **settings)]))
"""


def test_a_resumed_story_equals_the_same_story_made_in_a_fresh_process(model, tmp_path):
    cache = big_cache()
    list(cached_stream(model, STORY, cache=cache, seed=9, **FAST))
    story = cached_stream(model, EDITED, cache=cache, seed=9, **FAST)
    assert story.reused == 3
    resumed = np.concatenate(frames_of(story))
    out = tmp_path / "fresh.npy"
    args = json.dumps([EDITED, 9, FAST, str(out)])
    subprocess.run(
        [sys.executable, "-c", FRESH, str(tiny_model_dir()), args],
        cwd=ROOT,
        env=app_env(OMP_NUM_THREADS="1"),
        check=True,
        timeout=240,
    )
    assert resumed.shape == (60, *model.frame_size, 3) and np.array_equal(np.load(out), resumed)


def window_bytes(model, timeline, seed) -> list[int]:
    cache = big_cache()
    story = cached_stream(model, timeline, cache=cache, seed=seed, **FAST)
    list(story)
    return [entry.nbytes for entry in cache.lookup(story.keys)]


def test_the_cache_is_bounded_in_bytes_and_evicts_the_least_recent_story_from_its_end(model):
    sizes = window_bytes(model, STORY, 3)
    cache = StoryCache(sum(sizes[:4]) + sizes[4] // 2)  # room for 4 of the story's 5 windows
    list(cached_stream(model, STORY, cache=cache, seed=3, **FAST))
    assert len(cache) == 4 and cache.nbytes <= cache.max_bytes  # the story's start is kept, not its end
    assert cached_stream(model, STORY, cache=cache, seed=3, **FAST).reused == 4
    two = [("a green square moves down", 2.0), ("the green square moves left", 1.5)]  # 16 | 12 frames: 2 windows
    list(cached_stream(model, two, cache=cache, seed=3, **FAST))  # evicts STORY's last two stored windows
    assert cache.nbytes <= cache.max_bytes and len(cache) == 4
    assert cached_stream(model, two, cache=cache, seed=3, **FAST).reused == 2
    assert cached_stream(model, STORY, cache=cache, seed=3, **FAST).reused == 2
    # a cache too small for one window keeps nothing and the story is made all the same
    tiny = StoryCache(min(sizes) - 1)
    assert same(
        list(cached_stream(model, STORY, cache=tiny, seed=3, **FAST)), list(model.stream(STORY, seed=3, **FAST))
    )
    assert len(tiny) == 0 and tiny.nbytes == 0


def test_the_cache_size_comes_from_the_environment():
    assert StoryCache.from_env({}).max_bytes == 512 * 2**20
    assert StoryCache.from_env({ENV_VAR: "1.5"}).max_bytes == int(1.5 * 2**20)
    assert StoryCache.from_env({ENV_VAR: "0"}).max_bytes == 0
    for bad in ("lots", "-1", "nan"):
        with pytest.raises(ValueError, match=f"{ENV_VAR} must be a number of megabytes >= 0"):
            StoryCache.from_env({ENV_VAR: bad})
    with pytest.raises(startup.StartupError, match=f"{ENV_VAR} must be a number of megabytes"):
        app.demo_from_environment({ENV_VAR: "lots"})
    assert app.environment(["--story-cache-mb", "64"], "phenaki demo", {}) == {ENV_VAR: "64"}


def test_describe_reuse_names_reused_and_made_scenes(model):
    plan = plan_windows(model, [("a", 16), ("b", 24), ("c", 20), ("d", 8)])  # windows 1 | 2 | 2 | 1
    assert [w.segment for w in plan] == [0, 1, 1, 2, 2, 3]
    assert describe_reuse(plan, 0) == ""
    assert describe_reuse(plan, 1) == "scene 1 reused, 2–4 made"
    assert describe_reuse(plan, 3) == "scenes 1–2 reused, 3–4 made"
    assert describe_reuse(plan, 4) == "scenes 1–2 reused, 3–4 made (scene 3's first 12 frames reused)"
    assert describe_reuse(plan, 5) == "scenes 1–3 reused, 4 made"
    assert describe_reuse(plan, 6) == "scenes 1–4 reused"
    assert plan_windows(model, [("a", 16)], primed=5)[0].new_frames == 12  # after a start of 5 frames


def test_generate_story_gives_the_reused_windows_in_one_update_and_says_so(model, tmp_path):
    cache, settings = big_cache(), logic.Settings(steps=2, seed=3)
    first = list(logic.generate_story(model, STORY, settings, tmp_path / "a", cache=cache))
    assert [u.reuse for u in first] == [""] * len(first) and len(first) == 2 * 5 + 1
    edited = list(logic.generate_story(model, EDITED, settings, tmp_path / "b", cache=cache))
    # one update for windows 1-3 (its sheet, no clip), then the two made windows' two updates each, then the end
    assert [(u.windows_done, u.window_video is not None) for u in edited[:-1]] == [
        (3, False),
        (4, False),
        (4, True),
        (5, False),
        (5, True),
    ]
    final = edited[-1]
    assert final.final and final.reuse == "scenes 1–2 reused, 3 made" and final.frames_done == 60
    fresh = list(logic.generate_story(model, EDITED, settings, tmp_path / "c"))[-1]
    assert fresh.reuse == "" and gif_frames(final.gif) == gif_frames(fresh.gif)


def test_a_start_picture_s_own_chunk_is_made_and_the_reused_window_after_it_has_no_clip(model, tmp_path):
    """A start picture and a first scene of 1 frame: the picture is a chunk of its own (made again, never cached),
    then the story's windows; a reused window gives no update of its own when it is the last reused (here the only
    one) and never a clip."""
    picture = np.random.default_rng(0).integers(0, 256, (*model.frame_size, 3), dtype=np.uint8)
    one_frame = [("a red circle stays still", 0.125), ("the red circle moves down", 1.0)]  # 1 | 8 frames
    cache, settings = big_cache(), logic.Settings(steps=2, seed=3)
    kept = dict(cache=cache, start=picture)
    list(logic.generate_story(model, one_frame, settings, tmp_path / "a", **kept))
    longer = [*one_frame, ("the red circle moves up", 1.0)]
    edited = list(logic.generate_story(model, longer, settings, tmp_path / "b", **kept))
    # (windows done, with a clip): the picture and its clip, the reused window's sheet, the made window's two
    assert [(u.windows_done, u.window_video is not None) for u in edited[:-1]] == [
        (1, False),
        (1, True),
        (2, False),
        (3, False),
        (3, True),
    ]
    final, fresh = edited[-1], list(logic.generate_story(model, longer, settings, tmp_path / "c", start=picture))[-1]
    assert final.reuse == "scenes 1–2 reused, 3 made" and final.frames_done == fresh.frames_done == 17
    assert gif_frames(final.gif) == gif_frames(fresh.gif)


def gif_frames(path) -> list[bytes]:
    with Image.open(path) as gif:
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(gif.convert("RGB").tobytes())
        return frames


def status_seconds(status: str) -> float:
    return float(re.search(r"frames · ([\d.]+) s", status).group(1))


def test_api_editing_the_last_scene_reuses_the_rest_is_faster_and_equals_a_fresh_story(server, model, tmp_path):
    scenes = [[f"a {c} circle moves {d}", 2] for c, d in (("red", "right"), ("cyan", "up"), ("red", "left"))]
    scenes += [["the red circle moves down", 2], ["the red circle stays still", 2], ["the red circle moves up", 2]]
    edited = [*scenes[:-1], ["a magenta square moves left", 2]]
    heavy = (32, 1.0, 0.0, 3.0, 77, 2)  # steps, temperature, critic, guidance, seed, refine: the model's time
    c = client(server)
    first = c.predict({"headers": ["prompt", "seconds"], "data": scenes}, *heavy, api_name="/generate")
    again = c.predict({"headers": ["prompt", "seconds"], "data": edited}, *heavy, api_name="/generate")
    assert "Done" in first[2] and "reused" not in first[2]
    assert "Done" in again[2] and "scenes 1–5 reused, 6 made" in again[2], again[2]
    # 11 windows made at first, 2 again (and every frame written again): under half the time, measured by the server
    assert status_seconds(again[2]) < 0.5 * status_seconds(first[2]), (first[2], again[2])
    settings = logic.Settings(
        steps=32, temperature=1.0, critic_strength=0.0, guidance_scale=3.0, seed=77, refine_passes=2
    )
    fresh = list(logic.generate_story(model, logic.parse_timeline(edited), settings, tmp_path, window_videos=False))[-1]
    assert gif_frames(again[5]) == gif_frames(fresh.gif)  # the frames of a fresh story, made in this process
