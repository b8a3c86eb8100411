"""A per-process cache of a story's windows, so that editing scene k of a story (or adding scenes at its end) makes
it again only from the first window that changes (`phenaki.story_resume.cached_stream` uses it).

Window k of a story is decided by the model, the sampling settings, the seed, the start (the frames it continues, if
any), the precision and kernels it runs with, and the timeline up to window k: the prompt and the number of new
frames of every window so far (`phenaki.seeds`: a window's draws depend only on the seed, its index and its prime
frames). Its key is a chain: `window_key(previous key, index, prompt, new frames)`, starting from `story_key(...)`,
so two stories share window k's key exactly when they agree on all of that up to window k.

An entry holds the window's frames (uint8, as handed out) and the prime of the next window (the last frames in
float32, exactly as `Phenaki.story_window` returns them: re-encoding rounded uint8 frames would draw other tokens).
The cache is bounded in bytes and evicts the least recently used story first, from its last window back (a window
is of use only after the windows before it); a story being written keeps its own windows, so a story longer than the
whole cache keeps its start. `StoryCache.from_env`
reads the size from PHENAKI_STORY_CACHE_MB (default 512; 0 turns the cache off).

Sizes: the bundled model (64x64 frames, 12 new frames a window) keeps 147 KB of frames and 246 KB of prime a
window: a 120 s story (80 windows) is 31 MB. A model of 256x256 frames: 6.3 MB a window, 500 MB for 120 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .models.attention import fast_paths_enabled
from .precision import sampling_precision
from .sampling import SamplingSettings

ENV_VAR = "PHENAKI_STORY_CACHE_MB"
DEFAULT_MB = 512.0
ENTRY_OVERHEAD = 512  # bytes counted per entry beyond its arrays (key, dict slot, objects)


@dataclass(frozen=True)
class CachedWindow:
    """One window of a story: its frames as handed out and the prime its next window starts from."""

    frames: np.ndarray  # (n, H, W, 3) uint8, read-only
    prime: torch.Tensor  # (1, 3, p, H, W) float32 on the CPU

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.prime.numel() * self.prime.element_size() + ENTRY_OVERHEAD


class StoryCache:
    """Windows of stories by key, least recently used first out, at most `max_bytes` in all (0: keeps nothing).
    Safe to share between threads (the demo runs stories side by side with PHENAKI_CONCURRENCY > 1)."""

    def __init__(self, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a whole number >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedWindow] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StoryCache:
        """A cache of PHENAKI_STORY_CACHE_MB megabytes (MiB; default 512, 0: off); ValueError for anything else."""
        value = environ.get(ENV_VAR, "").strip()
        try:
            megabytes = DEFAULT_MB if not value else float(value)
        except ValueError:
            megabytes = -1.0
        if not 0 <= megabytes < 2**40:  # also NaN
            raise ValueError(
                f"the environment variable {ENV_VAR} must be a number of megabytes >= 0 (0 turns the story cache "
                f"off; unset: {DEFAULT_MB:g}), got {value!r}"
            )
        return cls(int(megabytes * 2**20))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def lookup(self, keys: Sequence[str]) -> list[CachedWindow]:
        """The windows stored under `keys[0]`, `keys[1]`, ... up to the first missing one (a story's cached start),
        made the most recently used, its first window most of all: a story's tail is evicted before its start."""
        with self._lock:
            hits = []
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    break
                hits.append(entry)
            for key in reversed(keys[: len(hits)]):
                self._entries.move_to_end(key)
            return hits

    def put(self, key: str, frames: np.ndarray, prime: torch.Tensor, before: Sequence[str] = ()) -> bool:
        """Stores a window (copied to the CPU) after the windows `before` it in its story. It evicts the least
        recently used entries but those to make room; then the story's windows are the most recently used, its
        first most of all. False when it does not fit (the cache is full of this story's earlier windows), or when
        a window before it is missing (evicted by another story): without them it is of no use."""
        frames = np.array(frames, dtype=np.uint8, copy=True)
        frames.setflags(write=False)
        entry = CachedWindow(frames, prime.detach().to("cpu", torch.float32, copy=True))
        keep = {key, *before}
        with self._lock:
            stored = key in self._entries
            complete = all(k in self._entries for k in before)
            if not stored and complete and entry.nbytes <= self.max_bytes:
                for old in [k for k in self._entries if k not in keep]:  # least recently used first
                    if self._bytes + entry.nbytes <= self.max_bytes:
                        break
                    self._bytes -= self._entries.pop(old).nbytes
                if self._bytes + entry.nbytes <= self.max_bytes:
                    self._entries[key] = entry
                    self._bytes += entry.nbytes
                    stored = True
            for old in [key, *reversed(before)]:
                if old in self._entries:
                    self._entries.move_to_end(old)
            return stored

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# ---- keys ---------------------------------------------------------------------------------------------------

_fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (signature, fingerprint)


def _tensors(model) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(), *model.named_buffers()]


def model_fingerprint(model) -> str:
    """A hash of the model's config and of every parameter and buffer (names, shapes, dtypes, bytes). Hashed again
    only when a tensor moved, was replaced or changed in place (its version counter), or when the sum of its values
    changed (which catches writes through `.data`, which has no version counter): about 40 ms for the bundled
    model's 23 MB, then a pass over the weights (a few ms) per call."""
    tensors = _tensors(model)
    with torch.no_grad():
        sums = torch.stack([t.detach().double().sum() for _, t in tensors]).tolist() if tensors else []
    signature = tuple(
        (name, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype), str(t.device), s)
        for (name, t), s in zip(tensors, sums)
    )
    memo = _fingerprints.get(model)
    if memo is not None and memo[0] == signature:
        return memo[1]
    digest = hashlib.sha256(json.dumps(model.config, sort_keys=True, default=str).encode())
    for name, tensor in tensors:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    fingerprint = digest.hexdigest()
    _fingerprints[model] = (signature, fingerprint)
    return fingerprint


def runtime_fingerprint(device: torch.device | str) -> dict:
    """What else moves a window's frames in this process: the device, the precision, the fast or reference
    kernels, the float32 matmul precision and the number of CPU threads (reductions split by thread)."""
    return dict(
        device=str(torch.device(device)),
        precision=sampling_precision(device),
        fast_paths=fast_paths_enabled(),
        matmul=torch.get_float32_matmul_precision(),
        threads=torch.get_num_threads(),
    )


def story_key(
    model_fingerprint: str,
    settings: SamplingSettings,
    seed: int,
    start: bytes | str | None = None,
    runtime: Mapping | None = None,
) -> str:
    """The key a story's windows chain from: the model's fingerprint, every sampling setting, the seed, the start's
    fingerprint (bytes or a hash; None: no start) and `runtime_fingerprint`."""
    if isinstance(start, bytes):
        start = hashlib.sha256(start).hexdigest()
    values = {name: getattr(settings, name) for name in SamplingSettings.names()}
    text = json.dumps(
        dict(model=model_fingerprint, settings=values, seed=int(seed), start=start, runtime=dict(runtime or {})),
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def window_key(previous: str, window: int, prompt: str, new_frames: int) -> str:
    """Window `window`'s key after the key of the window before it (or the story's key for window 0)."""
    text = json.dumps([previous, int(window), prompt, int(new_frames)])
    return hashlib.sha256(text.encode()).hexdigest()


def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """A hash of a tensor's shape, dtype and values (a start's frames)."""
    data = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{tuple(data.shape)}:{data.dtype}".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
