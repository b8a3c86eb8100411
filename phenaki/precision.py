"""The precision sampling runs in: bf16 autocast where the hardware has bf16 matrix units, fp32 elsewhere. The rule,
first match wins (`sampling_precision`):

1. under `phenaki.models.attention.reference_paths()`: fp32 (the reference is the plain fp32 computation);
2. inside `with precision("fp32" | "bf16"):` that (tests, benchmarks);
3. the environment variable PHENAKI_PRECISION=fp32|bf16, read each time it is decided (not at import);
4. CUDA: bf16; a CPU whose /proc/cpuinfo flags include avx512_bf16 or amx_bf16: bf16; anything else: fp32
   (`choose_precision`, a pure function of the device, the flags and the environment).

It covers MaskGit and the critic while sampling, and the C-ViViT decoder in `Phenaki.decode_ids` (not the encoder
that re-encodes a window's prime frames: their ids must not move).

Why: on a CPU with AVX512-BF16 (this project's 2-core AMD EPYC, torch 2.14) a bf16 matmul runs at 330-420 GFLOP/s
against 140-160 in fp32. The bundled model, one thread, machine busy, median of 3: a 17-frame clip 1.33 -> 0.97 s,
a 10 s story (80 frames) 0.100 -> 0.076 s per frame (2 threads, quiet: the clip 0.93 -> 0.72 s). A CPU without bf16
units emulates bf16 and is slower in it. bf16 changes which tokens are drawn (the tiny model's logits move by ~1% of
their range; tests/test_precision.py), not what the frames show: the eval's text-control read-back on 50 held-out
samples (shapes.eval.text_control_metrics) is colour 1.00, shape 0.98, motion 0.98 in both precisions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from .models.attention import fast_paths_enabled

PRECISIONS = ("fp32", "bf16")
ENV_VAR = "PHENAKI_PRECISION"
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # Linux's names for AVX512-BF16 and AMX-BF16

_forced: str | None = None  # set by `precision(...)`


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The CPU flags listed in /proc/cpuinfo text (its first 'flags' line; every core lists the same)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


@functools.cache
def host_cpu_flags() -> frozenset[str]:
    """This machine's CPU flags; none where there is no /proc/cpuinfo (not Linux)."""
    path = Path("/proc/cpuinfo")
    return cpu_flags(path.read_text()) if path.exists() else frozenset()


def check_precision(name, where: str) -> str:
    if name not in PRECISIONS:
        raise ValueError(f"{where} must be one of {', '.join(PRECISIONS)}, got {name!r}")
    return name


def choose_precision(device_type: str, flags: frozenset[str] | set[str], environ: Mapping[str, str]) -> str:
    """ "fp32" or "bf16" for a device of `device_type` ("cpu", "cuda", ...) on a CPU with `flags`, given the
    environment `environ`: PHENAKI_PRECISION if set (ValueError naming the allowed values for any other value),
    else bf16 on CUDA and on a CPU with bf16 units, fp32 anywhere else."""
    value = environ.get(ENV_VAR, "").strip().lower()
    if value:
        return check_precision(value, f"the environment variable {ENV_VAR} (unset: the hardware decides)")
    if device_type == "cuda" or (device_type == "cpu" and BF16_CPU_FLAGS & set(flags)):
        return "bf16"
    return "fp32"


def sampling_precision(device: torch.device | str) -> str:
    """The precision sampling on `device` runs in now (the rule in the module's docstring)."""
    if not fast_paths_enabled():
        return "fp32"
    if _forced is not None:
        return _forced
    return choose_precision(torch.device(device).type, host_cpu_flags(), os.environ)


def bf16_autocast(device: torch.device | str, enabled: bool | None = None) -> torch.autocast:
    """bf16 autocast on `device` where `sampling_precision` says bf16 (or where `enabled` says, when given)."""
    device = torch.device(device)
    if enabled is None:
        enabled = sampling_precision(device) == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(enabled))


@contextmanager
def precision(name: str) -> Iterator[None]:
    """Within this block the library samples in `name` ("fp32" or "bf16") whatever the hardware and the
    environment say (but fp32 under `reference_paths()`): for tests that compare paths, and for benchmarks."""
    global _forced
    previous, _forced = _forced, check_precision(name, "precision")
    try:
        yield
    finally:
        _forced = previous
