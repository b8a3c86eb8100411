"""A story's start (phenaki/start.py, `Phenaki.stream(start=...)`): a picture becomes the first frame and the first
scene continues it, a clip's last frames prime the first window; starts in every layout and file, cropped and
resized; bad ones refused. The plumbing on the tiny random model, what the story does on the bundled one."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from phenaki import Phenaki
from phenaki import start as starts
from phenaki.media import psnr, to_uint8_frames, to_video_tensor, upscale, write_gif, write_mp4, write_png
from phenaki.shapes import world
from phenaki.start import Start, as_start, read_start, reconstruct

TWO_SCENES = [("a red circle moves left", 2.0), ("the red circle moves up", 1.0)]  # 16 + 8 frames
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def story(model, start=None, timeline=TWO_SCENES, **kw):
    chunks = list(model.stream(timeline, start=start, steps=2, seed=0, **kw))
    return chunks, np.concatenate([c.frames for c in chunks])


# ---- the story --------------------------------------------------------------------------------------------------


def test_a_picture_is_the_first_frame_and_the_first_scene_continues_it(tiny_model):
    size = tiny_model.frame_size
    picture = noise((*size, 3))
    plain, _ = story(tiny_model)
    chunks, frames = story(tiny_model, picture)
    # the story keeps its length and its windows: the picture is the first scene's first frame
    assert [(len(c.frames), c.segment, c.start) for c in chunks] == [(len(c.frames), c.segment, c.start) for c in plain]
    assert len(frames) == 24
    start = as_start(picture, tiny_model)
    assert start.is_image and np.array_equal(frames[:1], reconstruct(tiny_model, start))
    # the rest of the first scene is the model's continuation of the picture: the library's prime_frames
    primed = tiny_model.sample("a red circle moves left", 15, prime_frames=start.video(), steps=2, seed=0)
    assert np.array_equal(frames[1:16], to_uint8_frames(primed[0]))
    # deterministic: the same start, seed and settings give the same frames; another start others
    assert np.array_equal(story(tiny_model, picture.copy())[1], frames)
    assert not np.array_equal(story(tiny_model, noise((*size, 3), seed=1))[1][:16], frames[:16])


def test_a_clip_primes_the_first_window_and_the_story_continues_it(tiny_model):
    clip = noise((9, *tiny_model.frame_size, 3))
    chunks, frames = story(tiny_model, clip)
    assert len(frames) == 24 and chunks[0].start == 0  # the clip itself is not repeated
    start = as_start(clip, tiny_model)
    assert not start.is_image and np.array_equal(start.frames, clip[-tiny_model.prime_frames :])
    primed = tiny_model.sample(
        "a red circle moves left", 16, prime_frames=to_video_tensor(clip[-5:])[None], steps=2, seed=0
    )
    assert np.array_equal(frames[:16], to_uint8_frames(primed[0]))
    assert np.array_equal(story(tiny_model, torch.from_numpy(clip).permute(3, 0, 1, 2) / 255)[1], frames)
    # a clip of 2 frames: the tokenizer takes its last one, and it is still continued, not shown
    two = as_start(clip[:2], tiny_model)
    assert not two.is_image and np.array_equal(two.frames, clip[1:2])
    assert len(story(tiny_model, clip[:2])[1]) == 24


def test_a_first_scene_of_one_frame_is_the_picture_alone(tiny_model):
    picture = noise((*tiny_model.frame_size, 3))
    timeline = [("a red circle stays still", 0.125), ("the red circle moves down", 1.0)]
    chunks, frames = story(tiny_model, picture, timeline)
    assert [(len(c.frames), c.segment, c.start) for c in chunks] == [(1, 0, 0), (8, 1, 1)]
    assert np.array_equal(frames[:1], reconstruct(tiny_model, as_start(picture, tiny_model)))


def test_starts_in_every_layout_are_cropped_and_resized_alike(tiny_model, tmp_path):
    h, w = tiny_model.frame_size
    picture = noise((h, w, 3))
    # 3x larger, nearest-neighbour, with 12 columns of other pixels each side: the centre crop and the area
    # resize give the picture back exactly
    wide = np.concatenate([noise((3 * h, 12, 3), 1), upscale(picture, 3), noise((3 * h, 12, 3), 2)], axis=1)
    tall = np.swapaxes(np.concatenate([noise((3 * w, 6, 3), 1), upscale(np.swapaxes(picture, 0, 1), 3),
                                       noise((3 * w, 6, 3), 2)], axis=1), 0, 1)  # fmt: skip
    video = to_video_tensor(picture[None])  # (3, 1, H, W)
    forms = [
        picture,
        picture[None],
        picture.astype(np.float32) / 255,
        wide,
        tall,
        video[:, 0],
        video,
        video[None],
        write_png(tmp_path / "picture.png", wide),
        str(write_png(tmp_path / "picture2.png", picture)),
        Start(picture[None], True),
    ]
    fingerprints = set()
    for form in forms:
        start = as_start(form, tiny_model)
        assert start.is_image and start.frames.dtype == np.uint8 and np.array_equal(start.frames, picture[None])
        fingerprints.add(start.fingerprint)
    assert len(fingerprints) == 1
    changed = picture.copy()
    changed[0, 0, 0] ^= 1
    assert as_start(changed, tiny_model).fingerprint not in fingerprints
    assert Start(picture[None], False).fingerprint not in fingerprints  # a clip's last frame is another start


@pytest.mark.parametrize(
    "start, message",
    [
        (np.zeros((31, 64, 3), np.uint8), "is 64x31 pixels, too small to crop to the model's 32x32 frames"),
        (np.zeros((32, 32), np.uint8), "an RGB picture (H, W, 3)"),
        (np.zeros((32, 32, 3), np.int32), "uint8, or floats in [0, 1]"),
        (np.full((32, 32, 3), np.nan, np.float32), "uint8, or floats in [0, 1]"),
        (torch.zeros(3, 32, 32, dtype=torch.uint8), "a float picture (3, H, W)"),
        (torch.zeros(2, 3, 1, 32, 32), "a float picture (3, H, W)"),
        (torch.full((3, 32, 32), torch.nan), "finite values in [0, 1]: it has NaN or infinite values"),
        (torch.full((3, 2, 32, 32), torch.inf), "finite values in [0, 1]: it has NaN or infinite values"),
        ([[0, 0, 0]], "got list"),
        ("no-such-file.png", "no-such-file.png does not exist"),
    ],
)
def test_bad_starts_are_explained_before_anything_runs(tiny_model, start, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        as_start(start, tiny_model)
    with pytest.raises(ValueError, match=re.escape(message)):
        next(tiny_model.stream(TWO_SCENES, start=start, steps=2, seed=0))


# ---- files --------------------------------------------------------------------------------------------------


def test_pictures_and_clips_are_read_from_files(tiny_model, tmp_path):
    size = tiny_model.frame_size
    clip = world.render_clip("red", "circle", "right", 9, start=(4, 20))  # 64x64: read, then halved
    small = to_uint8_frames(torch.nn.functional.avg_pool2d(to_video_tensor(clip), 2))
    from PIL import Image

    Image.fromarray(clip[0]).save(tmp_path / "picture.jpg", quality=95)
    picture = read_start(tmp_path / "picture.jpg", tiny_model)
    assert picture.is_image and picture.frames.shape == (1, *size, 3) and psnr(picture.frames, small[:1]) > 30
    gif = read_start(write_gif(tmp_path / "clip.gif", clip, 8), tiny_model)  # an animated picture is a clip
    assert not gif.is_image and np.array_equal(gif.frames, small[-5:])
    mp4 = read_start(write_mp4(tmp_path / "clip.mp4", clip, 8), tiny_model)
    assert not mp4.is_image and mp4.frames.shape == (5, *size, 3) and psnr(mp4.frames, small[-5:]) > 30
    one = read_start(write_mp4(tmp_path / "one.mp4", clip[:1], 8), tiny_model)  # a 1-frame video is a picture
    assert one.is_image and psnr(one.frames, small[:1]) > 30


def test_bad_files_name_what_is_wrong(tiny_model, tmp_path, monkeypatch):
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("notes.png", "empty.mp4"):
        with pytest.raises(ValueError, match=f"the start file {name} is neither a picture nor a video"):
            read_start(tmp_path / name, tiny_model)
    clip = world.render_clip("red", "circle", "right", 17, start=(4, 20))
    mp4, gif = write_mp4(tmp_path / "clip.mp4", clip, 8), write_gif(tmp_path / "clip.gif", clip, 8)
    monkeypatch.setattr(starts, "MAX_CLIP_SECONDS", 1.5)
    with pytest.raises(ValueError, match=r"clip.mp4 lasts 2\.1 s; at most 1\.5 s are allowed"):
        read_start(mp4, tiny_model)
    monkeypatch.setattr(starts, "MAX_CLIP_SECONDS", 60)
    monkeypatch.setattr(starts, "MAX_CLIP_FRAMES", 10)
    with pytest.raises(ValueError, match="clip.mp4 has over 10 frames; at most 10"):
        read_start(mp4, tiny_model)
    with pytest.raises(ValueError, match="clip.gif has 17 frames; at most 10"):
        read_start(gif, tiny_model)
    monkeypatch.setattr(starts, "MAX_START_SIDE", 48)
    for path in (mp4, gif):
        with pytest.raises(ValueError, match=f"{path.name} is 64x64 pixels; at most 48 pixels a side"):
            read_start(path, tiny_model)
    monkeypatch.setattr(starts, "MAX_START_BYTES", 1000)
    with pytest.raises(ValueError, match=r"clip.mp4 is 0\.\d MB; at most 0\.000953674 MB"):
        read_start(mp4, tiny_model)


def black_png(path: Path, width: int, height: int) -> Path:
    """A valid black 1-bit PNG: 20000x20000 is about 50 kB on disk, 400 M pixels once opened."""
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    row, packer = bytes(1 + (width + 7) // 8), zlib.compressobj(9)
    pixels = b"".join(packer.compress(row * 500) for _ in range(height // 500)) + packer.compress(row * (height % 500))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels + packer.flush()) + chunk(b"IEND", b"")
    )
    return path


def test_a_huge_picture_is_refused_before_its_pixels_are_read(tiny_model, tmp_path):
    """Pillow refuses over 2 * MAX_IMAGE_PIXELS (about 179 M) with its own DecompressionBombError, and warns above
    half that: both are the 4096-pixel limit's ValueError, whatever the file's size."""
    bomb = black_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ValueError, match=r"bomb.png is a picture of over [\d,]+ pixels; at most 4096 pixels a side"):
        read_start(bomb, tiny_model)
    big = black_png(tmp_path / "big.png", 10000, 10000)  # over MAX_IMAGE_PIXELS: a warning only, then refused
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ValueError, match="is 10000x10000 pixels"):
        read_start(big, tiny_model)
    assert as_start(black_png(tmp_path / "ok.png", 40, 32), tiny_model).frames.max() == 0  # the helper's PNG reads


# ---- what the bundled model makes of a start ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return Phenaki.from_pretrained(WEIGHTS, device="cpu")


@pytest.mark.bundled_model
def test_the_bundled_model_moves_a_pictured_object_as_prompted(bundled):
    """A red circle drawn by the shapes world is the first frame (37 dB through the tokenizer, measured), and the
    circle then moves left from where it was: on 3 seeds (measured: 30 px in 15 frames, the world's speed)."""
    picture = world.render_clip("red", "circle", "still", 1, start=(40, 25))[0]
    drawn = world.describe(picture[None]).centroids[0]
    for seed in range(3):
        frames = np.concatenate(
            [c.frames for c in bundled.stream([("the red circle moves left", 2.0)], start=picture, seed=seed)]
        )
        seen = world.describe(frames)
        assert len(frames) == 16 and psnr(frames[0], picture) > 32
        assert (seen.colour, seen.shape, seen.motions) == ("red", "circle", ["left"]), seed
        assert np.abs(seen.centroids[0] - drawn).max() < 1.5  # starts where it was drawn
        assert seen.centroids[-1][0] < drawn[0] - 20  # and travels left


@pytest.mark.bundled_model
def test_the_bundled_model_continues_a_clip(bundled):
    """A blue square moving right for 9 frames, then "moves up": the first new frame is one step on from the clip's
    last (measured: 2 px up, none sideways), and it goes up; on 3 seeds."""
    clip = world.render_clip("blue", "square", "right", 9, start=(4, 30))
    last = world.describe(clip).centroids[-1]
    for seed in range(3):
        frames = np.concatenate(
            [c.frames for c in bundled.stream([("the blue square moves up", 2.0)], start=clip, seed=seed)]
        )
        seen = world.describe(frames)
        assert len(frames) == 16 and (seen.colour, seen.shape, seen.motions) == ("blue", "square", ["up"]), seed
        assert np.abs(seen.centroids[0] - last).max() < 3.5, (seen.centroids[0], last)


def test_a_cached_story_from_a_start_is_the_stream_s_and_the_start_is_in_its_key(tiny_model):
    """phenaki.story_resume.cached_stream (the demo's Generate) with a start: the frames of `stream(start=...)`; made
    again, every window comes from the cache (the picture is made again: it is never cached); another start or a
    picture in place of the clip ending in it reuses nothing."""
    from phenaki.story_cache import StoryCache
    from phenaki.story_resume import cached_stream

    cache = StoryCache(2**26)
    picture, clip = noise((*tiny_model.frame_size, 3)), noise((9, *tiny_model.frame_size, 3), seed=2)
    for start in (picture, clip):
        chunks, frames = story(tiny_model, start)
        for made in range(2):
            cached = cached_stream(tiny_model, TWO_SCENES, cache=cache, start=start, steps=2, seed=0)
            assert cached.reused == (0 if made == 0 else len(cached.plan))
            got = list(cached)
            assert [(len(c.frames), c.segment, c.start) for c in got] == [
                (len(c.frames), c.segment, c.start) for c in chunks
            ]
            assert np.array_equal(np.concatenate([c.frames for c in got]), frames)
    for other in (noise((*tiny_model.frame_size, 3), seed=3), clip[-1], np.stack([picture, picture])):
        assert cached_stream(tiny_model, TWO_SCENES, cache=cache, start=other, steps=2, seed=0).reused == 0
