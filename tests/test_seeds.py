"""Seeds per window: a window's draws depend on the story's seed, its index and its prime frames only."""

import numpy as np
import pytest
import torch

from phenaki.media import to_uint8_frames
from phenaki.seeds import story_seed, window_seed

A, B = "a red circle moves left", "the red circle moves up"
FAST = dict(steps=2, refine_passes=0)


def frames(chunks) -> np.ndarray:
    return np.concatenate([c.frames for c in chunks])


def test_window_seed_is_splitmix64_from_the_seed_and_window_0_the_seed_itself():
    # SplitMix64's published outputs for the state 1234567 (Vigna's splitmix64.c, Java's SplittableRandom)
    assert [window_seed(1234567, k) for k in range(1, 6)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    assert window_seed(5, 0) == 5 and window_seed(-3, 0) == -3  # one-window samples are seeded as before
    seeds = {window_seed(s, k) for s in range(50) for k in range(1, 50)}
    assert len(seeds) == 50 * 49 and all(0 <= x < 2**64 for x in seeds)  # neighbours get unrelated seeds
    assert window_seed(-1, 3) == window_seed(2**64 - 1, 3)  # taken mod 2**64
    torch.Generator().manual_seed(window_seed(2**64 - 1, 7))  # every window seed is one torch takes


def test_story_seed_checks_and_draws():
    assert story_seed(7) == 7 and story_seed(np.int64(7)) == 7 and 0 <= story_seed(None) < 2**31
    for bad in (1.5, "3", True, 2**64):
        with pytest.raises(ValueError, match="seed must be None \\(a random one\\) or a whole number"):
            story_seed(bad)


def test_window_k_is_the_same_in_a_longer_story_and_after_other_work(tiny_model):
    fps = tiny_model.fps
    short = list(tiny_model.stream([(A, 29 / fps)], seed=3, **FAST))  # windows of 17 and 12 frames
    tiny_model.sample(texts=B, num_frames=30, seed=9, **FAST)  # other work in between
    longer = tiny_model.stream([(A, 41 / fps), (B, 12 / fps)], seed=3, **FAST)
    other = tiny_model.stream([(B, 41 / fps)], seed=3, **FAST)
    interleaved = []
    for chunk in longer:  # two stories made turn about, window by window
        interleaved.append(chunk)
        next(other, None)
    assert [len(c.frames) for c in interleaved] == [17, 12, 12, 12]
    for a, b in zip(short, interleaved):
        assert np.array_equal(a.frames, b.frames)


def test_a_prompt_change_at_window_k_keeps_every_frame_before_it(tiny_model):
    fps = tiny_model.fps
    same = frames(tiny_model.stream([(A, 41 / fps)], seed=4, **FAST))
    changed = frames(tiny_model.stream([(A, 29 / fps), (B, 12 / fps)], seed=4, **FAST))
    assert np.array_equal(same[:29], changed[:29]) and not np.array_equal(same[29:], changed[29:])


def test_sample_and_stream_seed_their_windows_alike(tiny_model):
    """A batch's first window is the one-window sample; a longer sample is the stream of the same prompt."""
    whole = tiny_model.sample(texts=[A, B], num_frames=29, seed=6, **FAST)
    assert torch.equal(whole[:, :, :17], tiny_model.sample(texts=[A, B], num_frames=17, seed=6, **FAST))
    one = tiny_model.sample(texts=A, num_frames=29, seed=6, **FAST)
    streamed = frames(tiny_model.stream([(A, 29 / tiny_model.fps)], seed=6, **FAST))
    assert np.array_equal(to_uint8_frames(one[0]), streamed)
