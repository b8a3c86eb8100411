"""The first window's emerging picture, timed: what previews cost the demo's first window, and how soon the first
one comes (phenaki/preview.py, phenaki/demo/emerging.py).

In a child process on the bundled default model (weights/) with 2 threads, the demo's back-end
(`phenaki.demo.stories.generate_story`) makes the first window of the default timeline at the default settings,
with previews on and off, interleaved (on off, off on, ...: drift cancels), after a warm-up of each; timed from
the call to the update with the window's frames (what the page shows first of the real video), and to the first
preview. Medians, and the ratio of the medians (target: at most 1.15), the seed fixed so that every run does the
same work. The story is driven from a worker thread, as Gradio drives the app's handlers (on this machine a
story driven from the main thread ran several times slower under load: 35-52 s against 5-7 s a window, at a load
average of 12, 2 threads; at 1 thread both took 5 s).

    python bench/emerging.py --rounds 3       # alone (bench/run.sh runs it as part of the benchmark)
    python bench/emerging.py --rounds 1 --model <a tiny model folder>    # a smoke run of the code
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from phenaki.preview import PREVIEW_EVERY

REPO = Path(__file__).resolve().parents[1]
THREADS = 2
TARGET_RATIO = 1.15  # previews may slow the first window by at most 15%
TARGET_FIRST_PREVIEW_S = 0.5  # "a picture well within a second"


def _first_window(model, previews: bool) -> tuple[float, float | None, int]:
    """(seconds to the first window's frames, seconds to the first preview or None, previews) of one story."""
    from phenaki.demo import stories

    out = tempfile.mkdtemp(prefix="phenaki-bench-emerging-")
    result = {}

    def drive():  # in a worker thread, as Gradio drives the app's generators
        start, first, shown = time.perf_counter(), None, 0
        story = stories.generate_story(
            model, stories.DEFAULT_TIMELINE, stories.Settings(seed=0), out, previews=previews
        )
        for update in story:
            if update.preview:
                shown += 1
                first = first if first is not None else time.perf_counter() - start
            if update.window_sheet:
                result["value"] = (time.perf_counter() - start, first, shown)
                break
        story.close()

    worker = threading.Thread(target=drive)
    worker.start()
    worker.join()
    shutil.rmtree(out, ignore_errors=True)
    return result["value"]


def worker(rounds: int, threads: int = THREADS, model_dir: str | Path = REPO / "weights") -> dict:
    import torch

    from phenaki import Phenaki

    torch.set_num_threads(threads)
    model = Phenaki.from_pretrained(model_dir, device="cpu").eval()
    _first_window(model, True), _first_window(model, False)  # warm-up
    on, off, first, shown = [], [], [], []
    for r in range(rounds):
        for previews in (True, False) if r % 2 == 0 else (False, True):
            seconds, preview, count = _first_window(model, previews)
            (on if previews else off).append(seconds)
            if previews:
                first.append(preview)
                shown.append(count)
    median_on, median_off = statistics.median(on), statistics.median(off)
    return dict(
        model=str(model_dir),
        threads=threads,
        rounds=rounds,
        on_s=on,
        off_s=off,
        first_preview_s=first,
        previews=shown,
        median_on_s=median_on,
        median_off_s=median_off,
        ratio=median_on / median_off,
        median_first_preview_s=statistics.median(first),
    )


def measure(rounds: int, log) -> dict:
    """`worker` in its own process (its threads and model apart from the rest of the benchmark)."""
    log(f"\n== the first window's emerging picture: previews on and off, {rounds} rounds, {THREADS} threads")
    done = subprocess.run(
        [sys.executable, __file__, "--rounds", str(rounds), "--json"],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench/emerging.py failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log(
        f"   first window: {result['median_on_s']:.3f} s with previews, {result['median_off_s']:.3f} s without "
        f"(ratio {result['ratio']:.3f}); first preview after {result['median_first_preview_s']:.3f} s"
    )
    return result


# ---- the report -------------------------------------------------------------------------------------------------


def section(result: dict) -> list[str]:
    runs = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    return [
        "## The first window's emerging picture",
        "",
        f"The demo's back-end (`generate_story`) on the model in `{Path(result['model']).name}/`, "
        f"{result['threads']} threads, the default timeline and settings with a fixed seed; the first window timed "
        f"from the call to its frames, with previews (its first frame as decoded every {PREVIEW_EVERY} steps, "
        "masked tokens as a "
        f"grey checker) and without, interleaved, {result['rounds']} rounds after a warm-up; the story driven from a "
        "worker thread, as Gradio "
        "drives it (`bench/emerging.py`).",
        "",
        "| first window | median s | runs (s) |",
        "| --- | ---: | --- |",
        f"| with previews | {result['median_on_s']:.3f} | {runs(result['on_s'])} |",
        f"| without | {result['median_off_s']:.3f} | {runs(result['off_s'])} |",
        f"| first preview | {result['median_first_preview_s']:.3f} | {runs(result['first_preview_s'])} |",
        "",
        f"Ratio of the medians: {result['ratio']:.3f}; previews a window: {statistics.median(result['previews']):g}.",
        "",
    ]


def target_rows(result: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows for the targets table."""
    return [
        (
            f"first window with previews within {100 * (TARGET_RATIO - 1):.0f}% of without (default model, "
            f"{result['threads']} threads)",
            f"{result['median_on_s']:.3f} s vs {result['median_off_s']:.3f} s ({result['ratio']:.3f}x)",
            result["ratio"] <= TARGET_RATIO,
        ),
        (
            f"first preview (a picture) within {TARGET_FIRST_PREVIEW_S:g} s of the story's start",
            f"{result['median_first_preview_s']:.3f} s",
            result["median_first_preview_s"] <= TARGET_FIRST_PREVIEW_S,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds of previews on and off")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2)")
    parser.add_argument("--model", default=str(REPO / "weights"), help="a model folder (default: weights/)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line only")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    result = worker(args.rounds, args.threads, args.model)
    if args.json:
        print(json.dumps(result))
        return
    print("\n".join(section(result)))
    for name, value, met in target_rows(result):
        print(f"{name}: {value} ({'met' if met else 'NOT met'})")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
