"""Measuring helpers of the CPU benchmark: FLOP counts, matrix-multiply ceilings (fp32 and bf16), timing, memory,
the thread probe."""

from __future__ import annotations

import os
import statistics
import threading
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


FLOP_EXTRA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def count_flops(fn) -> int:
    """Matrix-multiply FLOPs (mm, addmm, bmm, convolutions, attention; forward and backward) of one call. The count
    is of the arithmetic, whatever the dtype it runs in."""
    with FlopCounterMode(display=False, custom_mapping=FLOP_EXTRA) as counter:
        fn()
    return counter.get_total_flops()


def matmul_ceiling(n: int = 2048, reps: int = 3, precision: str = "fp32") -> float:
    """FLOP/s of the best of `reps` n^3 matrix multiplies in `precision` ("fp32" or "bf16": bf16 inputs and output,
    what bf16 autocast runs a linear layer in): what this machine's BLAS reaches right now. On a CPU with
    AVX512-BF16 the bf16 one uses its bf16 units (330-420 GFLOP/s against 140-160 in fp32 on this project's 2-core
    EPYC); on a CPU without them bf16 is emulated and slower than fp32."""
    dtype = DTYPES[precision]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n**3 / best


def ceilings() -> dict[str, float]:
    """Both ceilings, fp32 then bf16, on the threads set now."""
    return {name: matmul_ceiling(precision=name) for name in DTYPES}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks of the machine so far (/proc/stat): on a virtual machine, the time the hypervisor gave
    this machine's virtual CPUs to others shows up as 'steal'."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks[:8]), ticks[7]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_of_process() -> int:
    """VmHWM: the peak RSS of this process image (unlike ru_maxrss, not inherited from the parent across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def peak_rss_during(fn, interval: float = 0.001) -> tuple[int, int]:
    """(resting RSS before the call, peak RSS during it), sampled every `interval` seconds by a thread."""
    before = rss_bytes()
    peak, done = [before], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        fn()
    finally:
        done.set()
        watcher.join()
    return before, max(peak[0], rss_bytes())


def pick_threads(requested: str) -> tuple[int, dict]:
    """`auto`: whichever of 1 or all cores gives the faster fp32 matrix multiply now (on a shared machine, a second
    thread that keeps being preempted makes every OpenMP barrier wait)."""
    cores = os.cpu_count() or 1
    if requested != "auto":
        torch.set_num_threads(int(requested))
        return int(requested), {}
    probe = {}
    for n in sorted({1, cores}):
        torch.set_num_threads(n)
        probe[n] = statistics.median(matmul_ceiling(reps=2) for _ in range(3))
    best = max(probe, key=probe.get)
    torch.set_num_threads(best)
    return best, {str(k): round(v / 1e9, 1) for k, v in probe.items()}
