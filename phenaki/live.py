"""A live story: made window after window, each primed with the last frames, under a prompt that may change while
it plays (`steer`, from another thread: a UI's text box).

Every window makes a whole window of new frames (17 at first, then a window less the usable prime: 12 for the
default model), so a prompt's scene always ends at a window boundary. That is what lets the story be made again:
`story.timeline` fed to `Phenaki.stream(story.timeline, seed=story.seed, settings=story.settings)` makes the same
windows, and each window draws from its own generator (`phenaki.seeds`), so the same frames, bit for bit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator

import torch

from .media import to_uint8_frames
from .pipeline import Phenaki, VideoChunk, located_on_step
from .sampling import SamplingSettings, StepState
from .scenes import check_prompt
from .seeds import story_seed


class LiveStory:
    """A story whose prompt can change while it is made: window after window, each primed with the last frames."""

    def __init__(
        self,
        model: Phenaki,
        prompt: str,
        *,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        max_seconds: float | None = None,
        on_step: Callable[[StepState], None] | None = None,
        **overrides,
    ):
        """`settings`, keyword `overrides` and `on_step` as in `Phenaki.stream` (a step's `segment` counts the
        prompts); `seed` None: drawn at random (see `seed`); `max_seconds`: the story ends after the window that
        reaches it (None: when stopped)."""
        check_prompt(prompt, "prompt")
        if max_seconds is not None and (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, (int, float))
            or not math.isfinite(max_seconds)
            or max_seconds <= 0
        ):
            raise ValueError(
                f"max_seconds must be a positive number of seconds or None (until stopped), got {max_seconds!r}"
            )
        self.model, self.max_seconds, self.on_step = model, max_seconds, on_step
        self.settings = model.sampling_settings(settings, **overrides)
        self.seed: int = story_seed(seed)
        self.frames_made = 0
        self._lock = threading.Lock()
        self._prompt, self._stopped, self._started = prompt, False, False
        self._scenes: list[list] = []  # [prompt, frames] for each prompt that made frames

    def steer(self, prompt: str) -> None:
        """The next window follows `prompt` (the window being made keeps its own). ValueError for a bad prompt."""
        check_prompt(prompt, "steer")
        with self._lock:
            self._prompt = prompt

    def stop(self) -> None:
        """No window after the current one: the iteration ends once it is handed out."""
        with self._lock:
            self._stopped = True

    @property
    def timeline(self) -> list[tuple[str, float]]:
        """What has been made so far: (prompt, seconds) for each prompt that made frames, seconds = frames / fps."""
        with self._lock:
            return [(prompt, frames / self.model.fps) for prompt, frames in self._scenes]

    def __iter__(self) -> Iterator[VideoChunk]:
        """Each window's new frames as soon as they are decoded; `segment` counts the prompts (one per steer that
        took effect), `start` is the chunk's first frame in the story. A story plays once."""
        with self._lock:
            if self._started:
                raise RuntimeError(
                    "this LiveStory has already played: make a new one (with seed=story.seed and "
                    "its timeline, Phenaki.stream makes the same frames again)"
                )
            self._started = True
        return self._play()

    def _next_prompt(self) -> str | None:
        """The prompt of the next window, or None when the story is over (stopped, or max_seconds reached)."""
        with self._lock:
            over = self._stopped or (
                self.max_seconds is not None and self.frames_made >= self.max_seconds * self.model.fps
            )
            return None if over else self._prompt

    @torch.no_grad()
    def _play(self) -> Iterator[VideoChunk]:
        model, prime, window, playing = self.model, None, 0, None
        while (prompt := self._next_prompt()) is not None:
            if prompt != playing:  # a steer took effect: encode the text once for all its windows
                context, context_mask = model.encode_text([prompt])
                playing = prompt
                with self._lock:
                    self._scenes.append([prompt, 0])
            video, prime = model.story_window(
                context,
                context_mask,
                prime,
                model.window_frames,
                self.settings,
                self.seed,
                window,
                on_step=located_on_step(self.on_step, window, len(self._scenes) - 1),
            )
            chunk = VideoChunk(to_uint8_frames(video[0]), len(self._scenes) - 1, self.frames_made)
            with self._lock:
                self._scenes[-1][1] += len(chunk.frames)
                self.frames_made += len(chunk.frames)
            window += 1
            yield chunk
