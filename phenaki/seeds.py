"""Seeds: one random stream per window of a story, so that a window's draws depend only on the story's seed, the
window's index and its prime frames, never on what else this process sampled before.

Window 0 draws from a generator seeded with the story's seed itself (so a one-window sample is what
`torch.Generator().manual_seed(seed)` gives, as before per-window seeds); window k > 0 from one seeded with
`window_seed(seed, k)`, the k-th output of SplitMix64 (Steele, Lea and Flood, 2014) started at the seed: a
bijective 64-bit mix of `seed + k * 0x9E3779B97F4A7C15` (mod 2**64). Neighbouring windows of one story and the same
window of neighbouring seeds get unrelated seeds. Two seeds share window seeds only where they differ by a multiple
j * 0x9E3779B97F4A7C15 (mod 2**64), window k + j of one being window k of the other; between seeds below 2**43 that
takes j > 10**6 (computed: the least |j * gamma mod 2**64| for j <= 10**6 is 2**43.2).
"""

from __future__ import annotations

import numbers
import secrets

import torch

MASK64 = 2**64 - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 / golden ratio, odd
MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed takes


def splitmix64_mix(z: int) -> int:
    """SplitMix64's output function (the finaliser of MurmurHash3 with Stafford's 'Mix13' constants)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def window_seed(seed: int, window: int) -> int:
    """The seed of window `window` (0-based) of a story seeded with `seed`: `seed` itself for window 0, else the
    window-th output of SplitMix64 started at `seed` (taken mod 2**64), in [0, 2**64)."""
    if window == 0:
        return seed
    return splitmix64_mix((seed + window * GOLDEN_GAMMA) & MASK64)


def window_generator(device: torch.device | str, seed: int, window: int) -> torch.Generator:
    """A fresh generator on `device` for window `window` of the story seeded with `seed`."""
    return torch.Generator(device).manual_seed(window_seed(seed, window))


def story_seed(seed: int | None) -> int:
    """`seed` as an int, checked; None: one drawn at random (below 2**31, as the demo draws), so that it can be
    reported and the story made again."""
    if seed is None:
        return secrets.randbelow(2**31)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not MIN_SEED <= seed <= MAX_SEED:
        raise ValueError(f"seed must be None (a random one) or a whole number in [-2**63, 2**64 - 1], got {seed!r}")
    return int(seed)
