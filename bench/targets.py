"""The targets table of bench/RESULTS.md: each target (issue 22's on this 2-core CPU, and the earlier ones it did not
replace), the measured value, met or not. The bars are the issues'; nothing here relaxes one for a short run: a
quick run that did not measure what a target names says so and counts as not met."""

from __future__ import annotations

import statistics

from bench import emerging
from bench.browser_live import live_summary

STORY_SECONDS = 120  # "the default model's 2-minute story"
STORY_S_PER_FRAME = 0.040  # at least 3x real time at 8 fps (0.125 s a frame), as issue 22 puts it
STORY_THREADS = 2
FIRST_CHUNK_S = 0.5
FIRST_FRAMES_S = 1.5  # in the browser, after Start or Generate (issue 22; it was 3 s before)
LIVE_SECONDS = 120
README_SPEEDUP = 2.5  # against the reference's best of fp32 and bf16 autocast (issue 22; it was 2x against fp32)
CEILING_SHARE = 0.7


def best_reference(results: dict) -> tuple[str, dict]:
    """The reference's faster row of a task (lower median): the ratios are against it."""
    rows = {row: m for row, m in results.items() if row.startswith("reference")}
    return min(rows.items(), key=lambda item: item[1]["median"])


def targets(
    comparisons: dict,
    story: list[dict],
    browser: dict | None = None,
    bf16_units: bool = True,
    previews: dict | None = None,
) -> list[str]:
    lines = ["| target | measured | met |", "| --- | --- | --- |"]

    def row(name, value, ok):
        lines.append(f"| {name} | {value} | {'yes' if ok else '**no**'} |")

    def ratio(cfg, task):
        r = comparisons[cfg]["results"][task]
        return best_reference(r)[1]["median"] / r["ours"]["median"]

    def memory(cfg, task):
        r = comparisons[cfg]["results"][task]
        return r["ours"]["peak_mb"] / max(best_reference(r)[1]["peak_mb"], 1e-9)

    def against(cfg, task):
        """Which reference row the ratio is against, and the speed-up if this project ran its FLOPs at 100% of the
        ceiling of the precision it ran in."""
        c = comparisons[cfg]
        r = c["results"][task]
        ref_row, ref = best_reference(r)
        precision = c["precision"] if task == "sample" else "fp32"
        best = r["ours"]["flops"] / c["ceiling"][precision]
        which = "bf16 autocast" if ref_row.endswith("bf16") else "as shipped"
        return (
            f" (against the reference {which}; at 100% of the {precision} ceiling: {best:.3g} s, "
            f"{ref['median'] / best:.1f}x at most)"
        )

    if "small" in comparisons:
        for task, title, bar in (("sample", "sampling", 10), ("encode_decode", "C-ViViT encode+decode", 3)):
            value = f"{ratio('small', task):.1f}x" + against("small", task)
            row(f"small: {title} >= {bar}x faster", value, ratio("small", task) >= bar)
        worst = max(memory("small", t) for t in ("sample", "encode_decode"))
        row(
            "small: peak memory <= half (sample, encode+decode)",
            f"{memory('small', 'sample'):.2f}x, {memory('small', 'encode_decode'):.2f}x",
            worst <= 0.5,
        )
    if "readme" in comparisons:
        row(
            f"README size: sampling >= {README_SPEEDUP:g}x faster than the reference's best",
            f"{ratio('readme', 'sample'):.1f}x" + against("readme", "sample"),
            ratio("readme", "sample") >= README_SPEEDUP,
        )
        c = comparisons["readme"]
        m = c["results"]["sample"]["ours"]
        ceiling = "bf16" if bf16_units else "fp32"  # the bf16 ceiling wherever the CPU has bf16 units
        share = m["flops"] / m["median"] / c["ceiling"][ceiling]
        row(
            f"README size: sampling at >= {100 * CEILING_SHARE:.0f}% of the {ceiling} matmul ceiling (FLOPs performed)",
            f"{100 * share:.0f}% (ran in {c['precision']}; {m['flops'] / m['median'] / 1e9:.0f} of "
            f"{c['ceiling'][ceiling] / 1e9:.0f} GFLOP/s)",
            share >= CEILING_SHARE,
        )
    if story:
        _story_rows(story, row)
    if browser is not None:
        _browser_rows(browser, row)
    for name, value, met in emerging.target_rows(previews) if previews else []:  # bench/emerging.py
        row(name, value, met)
    return lines


def _story_rows(story: list[dict], row) -> None:
    long = max(story, key=lambda s: s["seconds"])
    short = min(story, key=lambda s: s["seconds"])
    full = long["seconds"] >= STORY_SECONDS and long.get("threads") == STORY_THREADS
    how = f"{long['seconds']:g} s story, {long.get('threads')} threads, {long.get('precision', 'fp32')}"
    if long is not short:
        growth = long["peak_rss_mb"] / short["peak_rss_mb"] - 1
        row(
            f"{long['seconds']:g} s story: peak memory within 10% of a {short['seconds']:g} s one",
            f"{long['peak_rss_mb']:.0f} MB vs {short['peak_rss_mb']:.0f} MB ({100 * growth:+.1f}%)",
            growth <= 0.1,
        )
    row(
        f"2-minute story: >= 3x real time with {STORY_THREADS} threads (<= {STORY_S_PER_FRAME:.3f} s per frame)",
        f"{long['s_per_frame']:.3f} s/frame, {0.125 / long['s_per_frame']:.1f}x real time ({long['frames']} frames "
        f"in {long['total_s']:.0f} s; {how})",
        full and long["s_per_frame"] <= STORY_S_PER_FRAME,
    )
    warm = short["warm_first_chunk_s"]
    later = f"; later requests with the demo's timeline {statistics.median(warm):.2f} s" if warm else ""
    row(
        f"2-minute story: first chunk within {FIRST_CHUNK_S:g} s (demo's settings, first request after loading)",
        f"{long['first_chunk_s']:.2f} s ({how}){later}",
        full and long["first_chunk_s"] <= FIRST_CHUNK_S,
    )


def _browser_rows(browser: dict, row) -> None:
    generate = f"in the app: first frames within {FIRST_FRAMES_S:g} s of pressing Generate (default model, CPU)"
    live_first = f"in the app: first frames play within {FIRST_FRAMES_S:g} s of pressing Start (Live tab)"
    live_ahead = f"in the app: live generation stays ahead of playback for {LIVE_SECONDS} s (no stall after the first"
    live_ahead += " window, in the browser)"
    if browser.get("skipped"):
        for name in (generate, live_first, live_ahead):
            row(name, f"not measured: {browser['skipped']}", False)
        return
    if "presses" in browser:
        worst = max(browser["first_s"], browser["later_max_s"])
        row(
            generate,
            f"frames picture: {browser['first_s']:.2f} s first press, {browser['later_median_s']:.2f} s "
            f"median of the later ones (slowest {browser['later_max_s']:.2f} s); the live preview's clip: "
            f"{browser['live_median_s']:.2f} s median",
            worst <= FIRST_FRAMES_S,
        )
    else:
        row(generate, "not measured (--presses 0)", False)
    live = browser.get("live")
    if not live:
        row(live_first, "not measured (--live-seconds 0)", False)
        row(live_ahead, "not measured (--live-seconds 0)", False)
        return
    row(live_first, f"{live['first_play_s']:.2f} s", live["first_play_s"] <= FIRST_FRAMES_S)
    clean = not live["stalls"] and not live["events"]
    row(live_ahead, live_summary(live), clean and live["watched_s"] >= LIVE_SECONDS)
