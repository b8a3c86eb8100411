"""The first window's emerging picture: `phenaki.preview` on the tiny random model (the tokens so far, decoded, masked
ones as a grey checker; every few steps of the first window only; no frame changed), the demo's back-end with
previews on and off (the same frames and files, the previews before the first frames), and `python app.py` driven
with gradio_client (`/generate` and `/live` hand out the picture before the first video chunk)."""

from __future__ import annotations

import time

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from app_server import client, tiny_model_dir
from PIL import Image

from phenaki import LiveStory, Phenaki
from phenaki.demo import live_session, stories
from phenaki.demo.emerging import EmergingPicture
from phenaki.media import to_uint8_frames
from phenaki.preview import StepPreviews, masked_checker, preview_frames
from phenaki.sampling import SamplingSettings

PROMPT = "a red circle moves right"
TIMELINE = [(PROMPT, 3.0)]  # 24 frames: two windows of the tiny model (17, then 7 new)


@pytest.fixture(scope="module")
def model():
    return Phenaki.from_pretrained(tiny_model_dir(), device="cpu")  # what the app server serves


def read_frames(path) -> np.ndarray:
    with imageio.get_reader(path) as reader:
        return np.stack([frame for frame in reader])


def patches(frame: np.ndarray, patch: int = 8) -> np.ndarray:
    """(H, W, 3) -> (rows, columns, patch, patch, 3)."""
    h, w = frame.shape[0] // patch, frame.shape[1] // patch
    return frame.reshape(h, patch, w, patch, 3).swapaxes(1, 2)


def masked_share(image: np.ndarray, tokens: int = 4) -> float:
    """The share of the `tokens` x `tokens` token patches of a square frame (at any scale) drawn as masked."""
    patch = image.shape[0] // tokens
    checker = patches(masked_checker(*image.shape[:2], patch // 2), patch)
    return float((patches(image, patch) == checker).all(axis=(2, 3, 4)).mean())


# ---- the library ----------------------------------------------------------------------------------------------


def test_preview_frames_decode_the_chosen_tokens_and_paint_masked_ones_as_a_checker(model):
    states = []
    video = model.sample(PROMPT, 17, steps=4, refine_passes=0, seed=1, on_step=states.append)
    mask = model.maskgit.mask_id
    middle = states[1]  # after parallel step 2 of 4: some tokens chosen, most still masked
    ids = middle.ids[0]
    masked = (ids == mask).view(9, *model.grid).numpy()
    assert 0 < masked.sum() < masked.size
    frames = preview_frames(model, middle)
    assert frames.shape == (17, 32, 32, 3) and frames.dtype == np.uint8
    checker = patches(masked_checker(32, 32, 4))
    latent_of_frame = [0] + [1 + (f - 1) // 2 for f in range(1, 17)]  # frame 0 alone, then tubelets of 2
    for f, t in enumerate(latent_of_frame):
        tiles = patches(frames[f])
        assert (tiles[masked[t]] == checker[masked[t]]).all()  # every masked token: the checker, in all its frames
        assert not (tiles[~masked[t]] == checker[~masked[t]]).all(axis=(1, 2, 3)).any()  # no chosen one
    # the chosen tokens are decoded with every masked one as the most common chosen token
    chosen = ids[ids != mask]
    placeholder = torch.bincount(chosen).argmax()
    decoded = to_uint8_frames(model.decode_ids(ids.masked_fill(ids == mask, placeholder)[None])[0])
    shown = ~np.stack([masked[t].repeat(8, 0).repeat(8, 1) for t in latent_of_frame])
    assert (frames[shown] == decoded[shown]).all()
    # once every token is chosen (the last step, no refinement) the preview is the video itself
    assert not (states[-1].ids == mask).any()
    assert (preview_frames(model, states[-1]) == to_uint8_frames(video[0])).all()
    # the first latent frame alone is the first frame of the whole decode (the decoder is causal in time)
    first = preview_frames(model, middle, latent_frames=1)
    assert first.shape == (1, 32, 32, 3) and np.abs(first[0].astype(int) - frames[0]).max() <= 1
    with pytest.raises(ValueError, match=r"latent_frames must be in \[1, 9\]"):
        preview_frames(model, middle, latent_frames=10)
    with pytest.raises(ValueError, match="must be the StepState"):
        preview_frames(model, ids)


def test_step_previews_show_every_few_steps_of_the_first_window_only_and_change_no_frame(model):
    shown = []
    previews = StepPreviews(model, lambda frames, state: shown.append((state.window, state.step, frames)), every=2)
    with_previews = [chunk.frames for chunk in model.stream(TIMELINE, steps=5, seed=3, on_step=previews)]
    without = [chunk.frames for chunk in model.stream(TIMELINE, steps=5, seed=3)]
    assert len(without) == 2 and all((a == b).all() for a, b in zip(with_previews, without, strict=True))
    # parallel steps 2 and 4 of 5, and the 5th (every token chosen); no refinement step, nothing of window 2
    assert [(window, step) for window, step, _ in shown] == [(0, 1), (0, 3), (0, 4)]
    assert all(frames.shape == (1, 32, 32, 3) for *_, frames in shown)  # the first frame
    shares = [masked_share(frames[0]) for *_, frames in shown]
    assert shares[0] > shares[1] > shares[2] == 0  # the picture fills in
    # a live story takes the same callback, and makes the same frames with it (its windows are whole: 17, then 12)
    story, shown[:] = LiveStory(model, PROMPT, seed=3, steps=5, max_seconds=3, on_step=previews), []
    live = [chunk.frames for chunk in story]
    assert [len(frames) for frames in live] == [17, 12] and (live[0] == without[0]).all()
    assert [(window, step) for window, step, _ in shown] == [(0, 1), (0, 3), (0, 4)]
    # a first window that continues primed frames (a story's start): its first new latent frame, not the prime's
    shown[:] = []
    model.sample(PROMPT, 8, prime_frames=torch.zeros(1, 3, 5, 32, 32), steps=4, seed=0, on_step=previews)
    assert [step for _, step, _ in shown] == [1, 3] and all(f.shape == (2, 32, 32, 3) for *_, f in shown)  # a tubelet
    assert masked_share(shown[0][2][0]) > 0 and masked_share(shown[1][2][0]) == 0
    # the default: every third parallel step, and the one that chooses the last token (3 of the default 8)
    shown[:] = []
    model.sample(PROMPT, 8, seed=0, on_step=StepPreviews(model, lambda frames, state: shown.append(state.step)))
    assert shown == [2, 5, 7] and SamplingSettings().steps == 8
    for bad, message in (
        (dict(every=0), "every must be a positive integer"),
        (dict(windows=1.5), "windows must be a positive integer"),
        (dict(latent_frames=0), "latent_frames must be a positive integer"),
        (dict(show="print"), "show must be a function"),
    ):
        with pytest.raises(ValueError, match=message):
            StepPreviews(model, **{"show": print, **bad})


# ---- the demo's back-end --------------------------------------------------------------------------------------


def test_generate_story_previews_come_first_and_change_no_frame_or_file(model, tmp_path):
    settings = stories.Settings(steps=8, seed=5)
    on = list(stories.generate_story(model, TIMELINE, settings, tmp_path / "on", previews=True))
    off = list(stories.generate_story(model, TIMELINE, settings, tmp_path / "off", previews=False))
    first_frames = next(i for i, u in enumerate(on) if u.window_sheet)
    assert first_frames >= 1 and all(u.preview for u in on[:first_frames])  # previews, then the first frames
    assert not any(u.preview for u in on[first_frames:] + off)
    assert [(u.windows_done, u.frames_done) for u in on[first_frames:]] == [
        (u.windows_done, u.frames_done) for u in off
    ]
    picture = np.asarray(Image.open(on[0].preview).convert("RGB"))
    assert picture.shape == (32, 32, 3) and masked_share(picture) > 0.5  # at the frame size; step 3 of 8: mostly masked
    assert first_frames == 3  # steps 3, 6 and 8 of 8, every one in order
    for a, b in zip(on[first_frames:], off, strict=True):  # the window sheets and clips, then the story's files
        for name in ("window_sheet", "window_video", "video"):
            if getattr(b, name):
                reader = read_frames if name != "window_sheet" else lambda p: np.asarray(Image.open(p))
                assert (reader(getattr(a, name)) == reader(getattr(b, name))).all(), name
    assert open(on[-1].gif, "rb").read() == open(off[-1].gif, "rb").read()


def test_live_story_previews_come_before_its_first_clip_and_change_no_frame(model, tmp_path):
    def play(folder, previews):
        control = live_session.LiveControl(folder / "session")
        story = live_session.live_story(
            model, PROMPT, stories.Settings(steps=8, seed=5), folder, control, max_seconds=2, previews=previews
        )
        return list(story)  # one window: 17 frames reach the 2 s limit

    on, off = play(tmp_path / "on", True), play(tmp_path / "off", False)
    first_clip = next(i for i, u in enumerate(on) if u.window_video)
    assert first_clip >= 1 and all(u.preview and not u.window_video for u in on[:first_clip])
    assert not any(u.preview for u in on[first_clip:] + off)
    assert (read_frames(on[first_clip].window_video) == read_frames(off[0].window_video)).all()
    assert (read_frames(on[-1].video) == read_frames(off[-1].video)).all() and on[-1].ended == "limit"


def test_a_closed_first_window_waits_for_the_window_and_errors_reach_the_caller(model, tmp_path):
    picture = EmergingPicture(model, tmp_path)
    ran = []

    def slow():
        time.sleep(0.3)
        ran.append("done")
        return "window"

    runner = picture.first_window(slow, lambda path: path)
    with pytest.raises(StopIteration) as ended:
        next(runner)  # no preview was made: it ends with the window
    assert ended.value.value == "window" and ran == ["done"]

    def fails():
        raise RuntimeError("out of memory (simulated)")

    with pytest.raises(RuntimeError, match="out of memory"):
        next(picture.first_window(fails, lambda path: path))
    states = []
    model.sample(PROMPT, 17, steps=4, seed=0, on_step=states.append)
    runner = picture.first_window(lambda: [picture.on_step(s) for s in states] and time.sleep(0.3), str)
    assert next(runner).endswith(".png")
    runner.close()  # closed while the window runs: returns once it has ended
    assert picture.written >= 1


# ---- the app --------------------------------------------------------------------------------------------------


def shown(output) -> str | None:
    """The emerging picture's PNG in an API output: an update that shows it, or hides the picture, or None (the
    last output: a plain value)."""
    return output["value"] if output and output["visible"] else None


def test_api_hands_out_the_emerging_picture_before_the_first_video_chunk(server, model, tmp_path):
    c = client(server)
    table = {"headers": ["prompt", "seconds"], "data": [[PROMPT, 1]]}  # 8 frames: one window
    job = c.submit(table, 8, 1.0, 0.0, 3.0, 9, 0, api_name="/generate")
    final = job.result(timeout=120)
    outputs = job.outputs()
    pictures = [i for i, o in enumerate(outputs) if shown(o[7])]
    frames_at = next(i for i, o in enumerate(outputs) if o[1])  # the window's frames, then (next) its clip
    clip_at = next(i for i in range(frames_at, len(outputs)) if outputs[i][0] != outputs[frames_at][0])
    # steps 3, 6, 8 of 8; then the window's frames (the picture stays until the clip is in the player)
    assert pictures == [1, 2, 3, 4] and frames_at == 4 and clip_at == 5 and shown(outputs[4][7]) == shown(outputs[3][7])
    assert "The first frame emerges" in outputs[1][2] and "emerges" not in outputs[frames_at][2]
    assert not any(shown(o[7]) for o in outputs[clip_at:]) and final[7] is None
    first = np.asarray(Image.open(shown(outputs[1][7])).convert("RGB"))
    assert first.shape == (32, 32, 3) and masked_share(first) > 0.5  # step 3 of 8: mostly masked
    # the story's MP4 is the one made without previews
    settings = stories.Settings(steps=8, seed=9, refine_passes=0)
    expected = list(stories.generate_story(model, [(PROMPT, 1)], settings, tmp_path))
    assert (read_frames(final[4]) == read_frames(expected[-1].video)).all()

    job = c.submit(PROMPT, 8, 1.0, 0.0, 3.0, 9, 0, api_name="/live")
    deadline = time.monotonic() + 120
    while not any("Playing" in o[1] for o in job.outputs()):  # the first window's update, with its clip
        assert not job.done() and time.monotonic() < deadline, job.exception()
        time.sleep(0.05)
    c.predict(api_name="/stop_live")
    *_, seed, last = job.result(timeout=120)
    outputs = job.outputs()
    pictures = [i for i, o in enumerate(outputs) if shown(o[5])]
    playing = next(i for i, o in enumerate(outputs) if "Playing" in o[1])
    assert pictures == [1, 2, 3] and playing == 4 and seed == 9 and last is None
    assert outputs[playing][0].endswith(".m3u8") and not any(shown(o[5]) for o in outputs[playing:])
    assert masked_share(np.asarray(Image.open(shown(outputs[1][5])).convert("RGB"))) > 0.5
