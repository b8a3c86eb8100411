"""bench/gpu.py, the paper-size sampler benchmark for a GPU, run here on its tiny `test` size on the CPU: the code
path a GPU session runs (continuing a window from 5 context frames, each sampler variant checked against fp32,
the decoder, the report) works before any GPU time is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--size", "test", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )


def test_gpu_bench_runs_every_variant_on_the_cpu_and_checks_them_against_fp32(tmp_path):
    done = run_bench(tmp_path, "--repeats", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "gpu.json").read_text())
    # 11-frame windows of 6 latent frames x 4 x 4 tokens; 5 context frames are 3 latent frames, given
    assert (data["window_tokens"], data["given_tokens"], data["new_frames"], data["device"]) == (96, 48, 6, "cpu")
    variants = data["variants"]
    assert list(variants) == ["fp32", "bf16-autocast", "bf16-weights"]  # compiled: only when asked for
    assert variants["fp32"]["logits_error"] == 0.0
    for name, result in variants.items():
        assert "error" not in result, (name, result)
        assert len(result["times"]) == 2 and result["median"] > 0 and result["flops"] > 0
        assert result["logits_error"] < 0.05, name  # bf16 rounding, not another computation
    assert len({r["flops"] for r in variants.values()}) == 1 and data["decode"]["median"] > 0
    table = (tmp_path / "gpu.md").read_text()
    assert all(f"| {name} |" in table for name in variants) and "s per new frame" in table


def test_gpu_bench_rejects_unknown_variants(tmp_path):
    done = run_bench(tmp_path, "--variants", "fp32,fp8")
    assert done.returncode == 2 and "unknown variants ['fp8']" in done.stderr
    assert not (tmp_path / "gpu.json").exists()
