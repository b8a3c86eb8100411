"""A live story: steered while it plays, and made again, frame for frame, by `Phenaki.stream` of its timeline."""

import threading

import numpy as np
import pytest
from test_sampling import Calls

from phenaki import LiveStory, SamplingSettings

A, B, C = "a red circle moves left", "the red circle moves up", "a blue square moves right"
FAST = dict(steps=2, refine_passes=0)


def frames(chunks) -> np.ndarray:
    return np.concatenate([c.frames for c in chunks])


def replayed(model, story) -> list:
    return list(model.stream(story.timeline, seed=story.seed, settings=story.settings))


def assert_same_story(live, again):
    assert [(c.segment, c.start, len(c.frames)) for c in live] == [(c.segment, c.start, len(c.frames)) for c in again]
    assert np.array_equal(frames(live), frames(again))


def test_a_steered_story_is_made_again_bit_for_bit_from_its_timeline(tiny_model):
    story = LiveStory(tiny_model, A, seed=11, steps=3, refine_passes=1, critic_strength=0.5)
    steers = {1: B, 3: C}  # after windows 1 and 3: windows 2 and 4 follow the new prompts
    live = []
    for i, chunk in enumerate(story):
        live.append(chunk)
        if i in steers:
            story.steer(steers[i])
        if i == 5:
            story.stop()
    assert [len(c.frames) for c in live] == [17] + [12] * 5  # whole windows: 5 of the 17 are the next prime
    assert [c.segment for c in live] == [0, 0, 1, 1, 2, 2]
    assert [c.start for c in live] == [0, 17, 29, 41, 53, 65] and story.frames_made == 77
    assert story.timeline == [(A, 29 / 8), (B, 24 / 8), (C, 24 / 8)]
    assert tiny_model.timeline_frames(story.timeline) == [29, 24, 24]
    assert_same_story(live, replayed(tiny_model, story))


def test_steer_and_stop_from_another_thread(tiny_model):
    """The UI's thread steers and stops while the story plays in another: whatever the timing, the timeline
    says what was made."""
    story = LiveStory(tiny_model, A, **FAST)  # a seed drawn at random
    live, made = [], threading.Event()

    def play():
        for chunk in story:
            live.append(chunk)
            made.set()

    player = threading.Thread(target=play)
    player.start()
    for prompt in (B, C):
        assert made.wait(60)
        made.clear()
        story.steer(prompt)
    assert made.wait(60)
    story.stop()
    player.join(60)
    assert not player.is_alive() and isinstance(story.seed, int)
    assert [p for p, _ in story.timeline] == [A, B, C][: len(story.timeline)] and len(story.timeline) >= 2
    assert sum(tiny_model.timeline_frames(story.timeline)) == story.frames_made == len(frames(live))
    assert_same_story(live, replayed(tiny_model, story))


def test_max_seconds_ends_after_the_window_that_reaches_it(tiny_model):
    story = LiveStory(tiny_model, A, seed=2, max_seconds=3.0, **FAST)  # 24 frames: reached in the second window
    live = list(story)
    assert [len(c.frames) for c in live] == [17, 12] and story.timeline == [(A, 29 / 8)]
    assert len(list(LiveStory(tiny_model, A, seed=2, max_seconds=0.1, **FAST))) == 1


def test_stop_before_playing_makes_nothing_and_a_story_plays_once(tiny_model):
    story = LiveStory(tiny_model, A, seed=0, **FAST)
    story.stop()
    assert list(story) == [] and story.timeline == [] and story.frames_made == 0
    with pytest.raises(RuntimeError, match="already played: make a new one"):
        iter(story)


def test_the_text_is_encoded_once_per_prompt(tiny_model):
    story = LiveStory(tiny_model, A, seed=1, **FAST)
    with Calls(tiny_model.text_encoder.encoder) as calls:
        for i, _ in enumerate(story):
            story.steer([A, B, B, A, A][i])  # a steer to the prompt playing changes nothing
            if i == 4:
                story.stop()
    assert len(calls.batches) == 3 and [p for p, _ in story.timeline] == [A, B, A]


def test_seconds_round_trip_through_timeline_frames(tiny_model, monkeypatch):
    for fps in (8, 24, 25, 30):
        monkeypatch.setattr(tiny_model, "fps", fps)
        counts = list(range(1, 2000))
        assert tiny_model.timeline_frames([(A, n / fps) for n in counts]) == counts


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt="  "), "prompt: the prompt must be a non-empty string"),
        (dict(max_seconds=0), "max_seconds must be a positive number of seconds or None"),
        (dict(max_seconds=float("inf")), "max_seconds must be a positive number"),
        (dict(max_seconds="3"), "max_seconds must be a positive number"),
        (dict(seed=1.5), "seed must be None \\(a random one\\) or a whole number"),
        (dict(cond_scale=3.0), "unknown sampling setting 'cond_scale'"),
        (dict(settings=SamplingSettings(steps=0)), "steps must be an integer >= 1"),
    ],
)
def test_bad_input_is_refused_before_any_work(tiny_model, kwargs, match):
    kwargs = {"prompt": A, **kwargs}
    with pytest.raises(ValueError, match=match):
        LiveStory(tiny_model, kwargs.pop("prompt"), **kwargs)
    story = LiveStory(tiny_model, A)
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="steer: the prompt must be a non-empty string"):
            story.steer(bad)
