"""`cached_stream`: `Phenaki.stream` through a `StoryCache`. A story whose first windows are in the cache (the same
model, settings, seed, start and timeline up to them) hands those out at once and makes the rest from the first
window that changed, primed as the fresh story would be: the frames are those of `Phenaki.stream`, window for window.

    cache = StoryCache.from_env()
    story = cached_stream(model, timeline, cache=cache, seed=0, steps=8)
    story.reused                   # windows that come from the cache (known before the first is handed out)
    for chunk in story:            # StoryChunk: VideoChunk's frames, segment, start, and window, reused
        ...
    describe_reuse(story.plan, story.reused)   # "scenes 1–2 reused, 3–4 made"

The windows are planned before anything is made (`plan_windows`, the same arithmetic as `Phenaki.story_window`,
checked against every window made), so that each window's key is known: see `phenaki.story_cache`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .media import to_uint8_frames
from .pipeline import VideoChunk, located_on_step
from .sampling import SamplingSettings, StepState
from .seeds import story_seed
from .start import as_start, start_work, with_start
from .story_cache import (
    CachedWindow,
    StoryCache,
    model_fingerprint,
    runtime_fingerprint,
    story_key,
    tensor_fingerprint,
    window_key,
)


@dataclass
class StoryChunk(VideoChunk):
    """A `VideoChunk` that also says which window of the story it is and whether it came from the cache."""

    window: int = 0
    reused: bool = False


@dataclass(frozen=True)
class PlannedWindow:
    segment: int  # the timeline entry it belongs to
    prompt: str
    remaining: int  # frames of its entry still to make when it starts
    new_frames: int  # frames it makes


def plan_windows(model, scenes: Sequence[tuple[str, int]], primed: int = 0) -> list[PlannedWindow]:
    """The windows `Phenaki.stream` makes for `scenes` of (prompt, frames), after a start of `primed` frames: each
    makes as many frames as fit after the usable part of the last `prime_frames` frames, within its scene."""
    plan, available = [], primed
    for segment, (prompt, frames) in enumerate(scenes):
        remaining = frames
        while remaining > 0:
            usable = model._usable_prime(available) if available else 0
            new = min(remaining, model.window_frames - usable)
            plan.append(PlannedWindow(segment, prompt, remaining, new))
            remaining -= new
            available = min(model.prime_frames, available + new)
    return plan


class CachedStory(Iterator[StoryChunk]):
    """The chunks of one story (see `cached_stream`); `plan`, `keys`, `reused`, `seed` and `settings` are known
    before the first chunk."""

    def __init__(self, model, timeline, cache, settings, seed, prime, on_step, overrides, start=None):
        frames = model.timeline_frames(timeline)  # every input checked before anything is made, as stream does
        self.settings = model.sampling_settings(settings, **overrides)
        self.seed = story_seed(seed)
        begin = None if start is None else as_start(start, model)
        if begin is not None and prime is not None:
            raise ValueError("give a story's start as start= (a picture or a clip) or prime= (a clip), not both")
        if prime is not None:
            model._check_prime(prime, 1)
            prime = prime.to(model.device, torch.float32)
        scenes, start_prime = start_work([(prompt, n) for (prompt, _), n in zip(timeline, frames)], begin, model.device)
        prime = prime if begin is None else start_prime
        self.plan = plan_windows(model, scenes, 0 if prime is None else prime.shape[2])
        self.keys: list[str] = []
        hits: list[CachedWindow] = []
        if cache is not None and cache.max_bytes > 0:
            start = begin.fingerprint if begin is not None else None if prime is None else tensor_fingerprint(prime)
            key = story_key(
                model_fingerprint(model), self.settings, self.seed, start, runtime_fingerprint(model.device)
            )
            for index, window in enumerate(self.plan):
                key = window_key(key, index, window.prompt, window.new_frames)
                self.keys.append(key)
            hits = cache.lookup(self.keys)  # held here: evicting them later does not take them from this story
        self.reused = len(hits)
        chunks = self._generate(model, cache if self.keys else None, hits, prime, on_step)
        self._chunks = with_start(model, begin, chunks, StoryChunk)  # a picture: the first frame, never cached

    def __next__(self) -> StoryChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()

    @torch.no_grad()
    def _generate(self, model, cache: StoryCache | None, hits: list[CachedWindow], prime, on_step):
        start = 0
        for index, entry in enumerate(hits):
            yield StoryChunk(entry.frames, self.plan[index].segment, start, window=index, reused=True)
            start += len(entry.frames)
        if hits:
            prime = hits[-1].prime.to(model.device)
        encoded = None  # (segment, context, mask): the text is encoded once per scene, as in stream
        for index in range(len(hits), len(self.plan)):
            planned = self.plan[index]
            if encoded is None or encoded[0] != planned.segment:
                encoded = (planned.segment, *model.encode_text([planned.prompt]))
            video, prime = model.story_window(
                encoded[1],
                encoded[2],
                prime,
                planned.remaining,
                self.settings,
                self.seed,
                index,
                on_step=located_on_step(on_step, index, planned.segment),
            )
            if video.shape[2] != planned.new_frames:  # the plan (and so the keys) would be wrong
                raise RuntimeError(
                    f"window {index} made {video.shape[2]} frames where {planned.new_frames} were planned: "
                    f"phenaki.story_resume.plan_windows no longer follows Phenaki.story_window"
                )
            pixels = to_uint8_frames(video[0])
            if cache is not None:
                cache.put(self.keys[index], pixels, prime, before=self.keys[:index])
            yield StoryChunk(pixels, planned.segment, start, window=index, reused=False)
            start += len(pixels)


def cached_stream(
    model,
    timeline,
    *,
    cache: StoryCache | None,
    settings: SamplingSettings | None = None,
    seed: int | None = None,
    prime: Tensor | None = None,
    start=None,
    on_step: Callable[[StepState], None] | None = None,
    **overrides,
) -> CachedStory:
    """`model.stream(timeline, settings=, seed=, on_step=, **overrides)` (the same frames) that takes the windows it
    can from `cache` and stores the windows it makes there. `prime` (1, 3, f, H, W): a start the story continues
    (its frames are part of the key; they are not handed out). `start`: as `Phenaki.stream`'s (a picture is the
    first frame; `phenaki.start.Start.fingerprint` goes into the key). `cache` None: nothing is looked up or stored.
    Inputs are checked (ValueError) when it is called, before the first chunk is asked for."""
    return CachedStory(model, timeline, cache, settings, seed, prime, on_step, overrides, start)


def _scenes(first: int, last: int) -> str:
    return f"scene {first + 1}" if first == last else f"scenes {first + 1}–{last + 1}"


def describe_reuse(plan: Sequence[PlannedWindow], reused: int) -> str:
    """What a story took from the cache, for people: "scenes 1–2 reused, 3–4 made", with the reused start of a scene
    made in part ("(scene 3's first 12 frames reused)"); "" when nothing was reused."""
    if reused <= 0 or not plan:
        return ""
    last = plan[-1].segment
    if reused >= len(plan):
        return f"{_scenes(0, last)} reused"
    first_made = plan[reused].segment
    made = _scenes(first_made, last)
    if first_made == 0:
        text = f"{made} made"
    else:  # "scenes 1–2 reused, 3–4 made", as the issue put it
        text = f"{_scenes(0, first_made - 1)} reused, {made.split(' ', 1)[1]} made"
    partial = sum(w.new_frames for w in plan[:reused] if w.segment == first_made)
    if partial:
        text += f" (scene {first_made + 1}'s first {partial} frames reused)"
    return text
