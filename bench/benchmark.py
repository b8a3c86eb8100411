"""Sampling speed: this project against the reference implementation (phenaki-pytorch 0.5.0), same work, one run.

Run it with `bash bench/run.sh` (it makes bench/.venv with both packages); `--quick` for a smoke run.

What it does, in one process:
- builds this project's Phenaki and the reference's with the same hyperparameters (frame size, patch sizes, depths,
  widths, heads, LFQ codebook, text width, 18 sampling steps, guidance 3) and gives both the same random text
  embeddings, with no download (see `Reference` in bench/systems.py);
- times, interleaved A B A B after a warm-up, medians of several rounds: `sample` of a 17-frame clip (this project
  at the library's default precision, bf16 autocast on a CPU with bf16 units, and forced to fp32; the reference as
  shipped, fp32, and under CPU bf16 autocast: issue 22), C-ViViT encode + decode of a 17-frame clip, one MaskGit
  training step and one C-ViViT training step of each;
- counts the matrix-multiply FLOPs each system actually performs (FlopCounterMode, with the CPU SDPA kernel added),
  and measures two matrix-multiply ceilings (a 2048^3 `torch.mm` in fp32 and in bf16) in every round, on the same
  threads;
- peak memory of each task in a child process per system (RSS sampled every millisecond, above the resting RSS of
  the built model; glibc is told to hand large blocks back at once so that RSS follows the tensors);
- a 2-minute story (960 frames at 8 fps) against a 10-second one on the default model (the bundled weights/),
  each in its own process on 2 threads at the library's default precision, with the usual allocator; and the time
  to the first chunk of `Phenaki.stream` with the default settings (the library's and the demo's,
  `SamplingSettings()`);
- the demo itself in a real browser: seconds from pressing Generate to the first frames on the page, and the Live
  tab's story watched for stalls for 2 minutes (bench/browser.py, bench/browser_live.py).
Results go to bench/out/ and, for a full run, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))
for key, value in dict(
    HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false"
).items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402

from bench import emerging  # noqa: E402
from bench.browser import demo_in_browser  # noqa: E402
from bench.measure import (  # noqa: E402
    ceilings,
    count_flops,
    cpu_ticks,
    peak_rss_during,
    peak_rss_of_process,
    pick_threads,
    rss_bytes,
    timed,
)
from bench.report import machine, report, table  # noqa: E402
from bench.systems import CONFIGS, ROWS, SYSTEMS, TASKS, Config, Inputs  # noqa: E402
from bench.targets import targets  # noqa: E402

STORY_PROMPTS = [
    "a red circle moves right",
    "the red circle moves up",
    "a blue square moves left",
    "the blue square moves down",
]
APP_TIMELINE = [("a red circle moves right", 2.0), ("the red circle moves up", 2.0)]  # the demo's default


# ---- the A/B comparison ------------------------------------------------------------------------------------------


@dataclass
class Measure:
    times: list = field(default_factory=list)
    flops: int = 0
    rest_mb: float = 0.0
    peak_mb: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def compare(cfg: Config, rounds: int, threads: int, log) -> dict:
    inputs = Inputs(cfg)
    log(f"\n== {cfg.name}: building both models")
    systems = {key: cls(cfg, inputs) for key, cls in SYSTEMS.items()}
    for system in systems.values():
        params = sum(p.numel() for p in system.model.parameters())
        log(f"   {system.name}: {params / 1e6:.1f} M parameters")
    precision = systems["ours"].precision
    log(f"   this project samples in {precision} by default here (phenaki.precision.sampling_precision)")
    runs = {task: {row: getattr(systems[key], method) for row, key, method in ROWS[task]} for task in TASKS}
    results = {task: {row: Measure() for row in runs[task]} for task in TASKS}
    rounds_ceilings = {"fp32": [], "bf16": []}
    log("   warm-up (and FLOP count): " + ", ".join(f"{task} ({', '.join(runs[task])})" for task in TASKS))
    for task in TASKS:
        for row, fn in runs[task].items():
            torch.manual_seed(0)
            results[task][row].flops = count_flops(fn)
    for r in range(rounds):
        for name, value in ceilings().items():
            rounds_ceilings[name].append(value)
        for task in TASKS:
            for row, fn in runs[task].items():  # A B, A B, ... in every round
                torch.manual_seed(r)
                results[task][row].times.append(timed(fn))
        log(
            f"   round {r + 1}/{rounds}: "
            + "; ".join(f"{task} " + " / ".join(f"{m.times[-1]:.2f}" for m in results[task].values()) for task in TASKS)
            + " s; mm ceilings "
            + ", ".join(f"{name} {v[-1] / 1e9:.0f}" for name, v in rounds_ceilings.items())
            + f" GFLOP/s; load {os.getloadavg()[0]:.1f}"
        )
    del systems, runs
    log("   peak memory, one child process per system")
    for key in SYSTEMS:
        memory = _child(["--memory-worker", cfg.name, key, "--threads", str(threads)])
        for task in TASKS:
            for row, (rest, peak) in memory[task].items():
                results[task][row].rest_mb, results[task][row].peak_mb = rest, peak
    return dict(
        config=asdict(cfg),
        precision=precision,
        ceiling={name: statistics.median(v) for name, v in rounds_ceilings.items()},
        ceilings=rounds_ceilings,
        results={t: {k: asdict(m) | {"median": m.median} for k, m in v.items()} for t, v in results.items()},
    )


def memory_worker(config: str, system: str) -> None:
    cfg = CONFIGS[config]
    runner = SYSTEMS[system](cfg, Inputs(cfg))
    out = {}
    for task in TASKS:
        out[task] = {}
        for row, key, method in ROWS[task]:
            if key != system:
                continue
            fn = getattr(runner, method)
            fn()  # warm-up: optimizer state, first-call allocations
            before, peak = peak_rss_during(fn)
            out[task][row] = (before / 2**20, (peak - before) / 2**20)
    print(json.dumps(out))


def _child(args: list[str], timeout: float = 3600, eager_free: bool = True) -> dict:
    """Runs this file with `args` in a child process; its last stdout line is JSON. `eager_free`: glibc hands every
    block over 64 KB back at once, so that RSS follows the tensors (the memory measures); it also makes each large
    allocation a fresh mmap, paged in again, which doubled a story's time (0.033 -> 0.073 s a frame on the default
    model): timed children run with the usual allocator."""
    tuning = dict(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536") if eager_free else {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | tuning
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- stories on the default model's size -------------------------------------------------------------------------


def story_worker(seconds: float, warm_first_chunks: int) -> None:
    from phenaki import Phenaki
    from phenaki.precision import sampling_precision

    start_rss = peak_rss_of_process()
    model = Phenaki.from_pretrained(REPO / "weights", device="cpu")  # the default model, as the demo serves it
    built_rss = rss_bytes()
    segment = 5.0
    timeline = [
        (STORY_PROMPTS[i % len(STORY_PROMPTS)], min(segment, seconds - i * segment))
        for i in range(int(-(-seconds // segment)))
    ]
    kwargs = dict(seed=0)  # the default settings, the demo's too
    start = time.perf_counter()
    first, frames, windows = None, 0, 0
    for chunk in model.stream(timeline, **kwargs):
        if first is None:
            first = time.perf_counter() - start
        frames += len(chunk.frames)
        windows += 1
    total = time.perf_counter() - start
    peak_rss = peak_rss_of_process()
    warm = []
    for _ in range(warm_first_chunks):  # the app's case: the model is loaded, a user presses Generate
        start = time.perf_counter()
        next(iter(model.stream(APP_TIMELINE, **kwargs)))
        warm.append(time.perf_counter() - start)
    print(
        json.dumps(
            dict(
                seconds=seconds,
                precision=sampling_precision(model.device),  # the library's default here: what a user gets
                threads=torch.get_num_threads(),
                frames=frames,
                windows=windows,
                total_s=total,
                s_per_frame=total / frames,
                first_chunk_s=first,
                warm_first_chunk_s=warm,
                peak_rss_mb=peak_rss / 2**20,
                model_rss_mb=built_rss / 2**20,
                import_peak_mb=start_rss / 2**20,
            )
        )
    )


def stories(lengths: list[float], threads: int, log) -> list[dict]:
    out = []
    for i, seconds in enumerate(lengths):
        log(f"\n== story of {seconds:g} s on the default model (own process, {threads} threads)")
        result = _child(
            ["--story-worker", str(seconds), "--warm-first-chunks", "3" if i == 0 else "0", "--threads", str(threads)],
            eager_free=False,
        )
        log(
            f"   {result['frames']} frames in {result['total_s']:.1f} s ({result['s_per_frame']:.3f} s/frame), "
            f"first chunk {result['first_chunk_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
            f"{result['precision']}"
        )
        out.append(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small config, 2 rounds, short stories")
    parser.add_argument("--configs", default=None, help="comma-separated: small,readme (default: both)")
    parser.add_argument("--rounds", type=int, default=None, help="timed A/B rounds (default: per config)")
    parser.add_argument(
        "--story", default=None, help='story lengths in seconds, comma-separated (default 10,120; "": none)'
    )
    parser.add_argument("--threads", default="auto", help="torch threads for both systems, or auto")
    parser.add_argument(
        "--story-threads",
        type=int,
        default=2,
        help="torch threads for the stories (default 2: issue 22's story targets are for 2 threads)",
    )
    parser.add_argument(
        "--presses", type=int, default=None, help="Generate presses in the browser (default 6, --quick 3; 0: none)"
    )
    parser.add_argument(
        "--live-seconds",
        type=float,
        default=None,
        help="seconds the Live tab's story is watched for stalls in the browser (default 120, --quick 20; 0: none)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    parser.add_argument("--memory-worker", nargs=2, metavar=("CONFIG", "SYSTEM"), help=argparse.SUPPRESS)
    parser.add_argument("--story-worker", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--warm-first-chunks", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="render bench/out/results.json again into bench/out/RESULTS.md (and bench/RESULTS.md)",
    )
    args = parser.parse_args()

    if args.report_only:
        data = json.loads((OUT / "results.json").read_text())
        text = report(data)
        (OUT / "RESULTS.md").write_text(text)
        if not args.no_write and "--quick" not in data["command"]:
            (REPO / "bench" / "RESULTS.md").write_text(text)
        print(text)
        return

    if args.memory_worker or args.story_worker is not None:
        torch.set_num_threads(int(args.threads))
        if args.memory_worker:
            memory_worker(*args.memory_worker)
        else:
            story_worker(args.story_worker, args.warm_first_chunks)
        return

    presses = args.presses if args.presses is not None else (3 if args.quick else 6)
    if presses == 1 or presses < 0:
        parser.error(
            f"--presses must be 0 (no browser measure) or at least 2 (the first is reported apart), got {presses}"
        )
    live_seconds = args.live_seconds if args.live_seconds is not None else (20 if args.quick else 120)
    if live_seconds < 0:
        parser.error(f"--live-seconds must be 0 (no live measure) or more, got {live_seconds:g}")
    configs = (args.configs or ("small" if args.quick else "small,readme")).split(",")
    story_arg = args.story if args.story is not None else ("2,6" if args.quick else "10,120")
    lengths = [float(s) for s in story_arg.split(",") if s]  # --story "": no stories
    OUT.mkdir(parents=True, exist_ok=True)
    log_file = open(OUT / "log.txt", "w")

    def log(message: str) -> None:
        print(message, flush=True)
        log_file.write(message + "\n")
        log_file.flush()

    started, load_start, nice_start, ticks_start = time.time(), os.getloadavg()[0], os.nice(0), cpu_ticks()
    threads, probe = pick_threads(args.threads)
    log(f"threads: {threads} {probe}; load {load_start:.2f}")
    comparisons = {}
    for name in configs:
        cfg = CONFIGS[name]
        rounds = args.rounds or (2 if args.quick else cfg.rounds)
        comparisons[name] = compare(cfg, rounds, threads, log)
        for line in table(comparisons[name]):
            log(line)
    story = stories(lengths, args.story_threads, log) if lengths else []
    browser = None
    if presses or live_seconds:
        log(
            f"\n== the demo in Chromium: {presses} presses of Generate, then the Live tab watched for "
            f"{live_seconds:g} s; default model and settings"
        )
        browser = demo_in_browser(presses, live_seconds, log)
        if browser.get("skipped"):
            log("   " + browser["skipped"])
    command = "bash bench/run.sh" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    ticks_end = cpu_ticks()
    data = dict(
        emerging=emerging.measure(2 if args.quick else 12, log),  # first: wall_s and load_end include it
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=command,
        machine=machine(),
        threads=threads,
        story_threads=args.story_threads,
        thread_probe=probe,
        load_start=load_start,
        steal=(ticks_end[1] - ticks_start[1]) / max(1, ticks_end[0] - ticks_start[0]),
        load_end=os.getloadavg()[0],
        nice=(nice_start, os.nice(0)),
        wall_s=time.time() - started,
        comparisons=comparisons,
        stories=story,
        browser=browser,
    )
    (OUT / "results.json").write_text(json.dumps(data, indent=1))
    text = report(data)
    (OUT / "RESULTS.md").write_text(text)
    rows = targets(comparisons, story, browser, bool(data["machine"]["bf16_units"]), previews=data["emerging"])
    log("\n" + "\n".join(rows))
    if not args.quick and not args.no_write:
        (REPO / "bench" / "RESULTS.md").write_text(text)
        log(f"\nwrote {REPO / 'bench' / 'RESULTS.md'}")
    else:
        log(f"\nwrote {OUT / 'RESULTS.md'} (bench/RESULTS.md is written by a full run)")


if __name__ == "__main__":
    main()
