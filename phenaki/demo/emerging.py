"""The emerging picture of a demo story's first window, without Gradio: what the page shows while the first window
is decoded, until its real frames play (on the default model the first window takes about 0.5 s of a 2-core CPU,
and its frames reach the page with their MP4 after that).

`EmergingPicture.first_window(advance, wrap)` runs `advance()` (the story's `next(...)`, which makes the first
window) in a worker thread and, while it runs, yields `wrap(path)` for each preview in turn: the window's first
frame as decoded so far (`phenaki.preview.StepPreviews`, masked tokens as a grey checker), written as a PNG at
the model's frame size (the page scales it up, pixelated); then it returns what `advance()` returned. Every preview
is handed out, in order (one per 3 steps of the window, and the last: 3 at the default 8 steps), so a story shows
the same pictures however busy the machine is. The PNG is written beside the sampler, so it is kept small: a 64x64 frame
took 4 ms and 250 bytes, the same upscaled to 512x512 16 ms and 2.2 KB (this 2-core EPYC, busy). The frames of the
story are those made without it: previews only read the sampler's state.

Why a thread: the previews come from `on_step`, inside the call that makes the window, and a generator (the
story, and the Gradio handler above it) can only hand them out between its own steps.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..media import write_png
from ..preview import PREVIEW_EVERY, StepPreviews

_ENDED = object()  # what the worker puts after the window


class EmergingPicture:
    """Previews of a story's first window as PNG files in `out_dir` (see the module's docstring). `on_step` goes to
    `Phenaki.stream` or `LiveStory`; `every`: a preview after every so many steps (`phenaki.preview`)."""

    def __init__(self, model, out_dir: str | os.PathLike, *, every: int = PREVIEW_EVERY):
        self.out = Path(out_dir)
        self.on_step = StepPreviews(model, self._made, every=every)
        self.written = 0
        self._made_frames: queue.SimpleQueue = queue.SimpleQueue()  # first frames, then _ENDED

    def _made(self, frames: np.ndarray, state) -> None:  # in the worker thread, inside the sampler's step
        self._made_frames.put(frames[0])

    def _write(self, frame: np.ndarray) -> str:
        self.written += 1
        self.out.mkdir(parents=True, exist_ok=True)
        return str(write_png(self.out / f"emerging_{self.written:02d}.png", frame))

    def first_window(self, advance: Callable[[], object], wrap: Callable[[str], object]) -> Iterator:
        """Yields `wrap(png path)` per preview while `advance()` runs in a thread; returns its result (or raises
        its exception). Closed early, it waits for `advance()` to end: the story it drives cannot be closed while
        it runs."""
        result: dict = {}

        def work():
            try:
                result["value"] = advance()
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                result["error"] = error
            finally:
                self._made_frames.put(_ENDED)

        worker = threading.Thread(target=work, name="phenaki-first-window", daemon=True)
        worker.start()
        try:
            while (frame := self._made_frames.get()) is not _ENDED:
                yield wrap(self._write(frame))
        finally:
            worker.join()
        if "error" in result:
            raise result["error"]
        return result["value"]


def next_chunk(picture: EmergingPicture | None, first: bool, chunks: Iterator, wrap: Callable[[str], object]):
    """A demo story's next chunk (None at its end), `next(chunks, None)`; the `first` window's through
    `picture.first_window` (yielding `wrap(path)` per preview) when there is a picture. A generator: the caller
    writes `chunk = yield from next_chunk(...)` (`stories.generate_story`, `live_session.live_story`)."""
    if picture is not None and first:
        return (yield from picture.first_window(lambda: next(chunks, None), wrap))
    return next(chunks, None)
