"""bench/targets.py judges issue 22's targets from measured data: ratios against the reference's faster row, the
bf16 ceiling where the CPU has bf16 units, and a run that did not measure what a target names (a quick run: short
stories, a short live watch) reported as not met."""

from __future__ import annotations

from bench.targets import best_reference, targets


def _measure(median: float, flops: float = 1e12, peak_mb: float = 100.0) -> dict:
    return dict(median=median, flops=flops, peak_mb=peak_mb, times=[median])


def _readme(ours_s: float, ref_fp32_s: float, ref_bf16_s: float) -> dict:
    results = dict(
        sample=dict(
            ours=_measure(ours_s),
            ours_fp32=_measure(2 * ours_s),
            reference=_measure(ref_fp32_s),
            reference_bf16=_measure(ref_bf16_s),
        )
    )
    return dict(readme=dict(precision="bf16", ceiling=dict(fp32=150e9, bf16=400e9), results=results))


def _rows(lines: list[str]) -> dict[str, tuple[str, bool]]:
    out = {}
    for line in lines[2:]:
        name, value, met = [cell.strip() for cell in line.strip("|").split(" | ")]
        out[name] = (value, met == "yes")
    return out


def test_readme_ratio_is_against_the_reference_best_and_the_bf16_ceiling():
    # the reference's bf16 row (8 s) is its best: 3 s is 2.7x of it (met), though 6x of its fp32 row
    rows = _rows(targets(_readme(3.0, 18.0, 8.0), [], None, bf16_units=True))
    value, met = rows["README size: sampling >= 2.5x faster than the reference's best"]
    assert met and value.startswith("2.7x") and "bf16 autocast" in value
    # 1e12 FLOPs in 3 s: 333 GFLOP/s, 83% of the bf16 ceiling (400), met; against fp32 (150) it would read 222%
    value, met = rows["README size: sampling at >= 70% of the bf16 matmul ceiling (FLOPs performed)"]
    assert met and value.startswith("83%")
    # 3.5 s: 2.3x the reference's best, under the bar, and 71% of the ceiling
    rows = _rows(targets(_readme(3.5, 18.0, 8.0), [], None, bf16_units=True))
    assert not rows["README size: sampling >= 2.5x faster than the reference's best"][1]
    assert best_reference(_readme(3.5, 18.0, 8.0)["readme"]["results"]["sample"])[0] == "reference_bf16"


def _story(seconds: float, s_per_frame: float, first: float, threads: int = 2) -> dict:
    frames = int(seconds * 8)
    return dict(
        seconds=seconds, frames=frames, windows=frames // 12, total_s=frames * s_per_frame, s_per_frame=s_per_frame,
        first_chunk_s=first, warm_first_chunk_s=[first], peak_rss_mb=800.0, model_rss_mb=760.0, precision="bf16",
        threads=threads,
    )  # fmt: skip


def test_story_targets_need_the_two_minute_story_on_two_threads():
    speed = "2-minute story: >= 3x real time with 2 threads (<= 0.040 s per frame)"
    first = "2-minute story: first chunk within 0.5 s (demo's settings, first request after loading)"
    rows = _rows(targets({}, [_story(10, 0.03, 0.4), _story(120, 0.035, 0.45)]))
    assert rows[speed][1] and rows[first][1]
    rows = _rows(targets({}, [_story(10, 0.03, 0.4), _story(120, 0.045, 0.6)]))
    assert not rows[speed][1] and not rows[first][1]
    rows = _rows(targets({}, [_story(2, 0.03, 0.4), _story(6, 0.03, 0.4)]))  # a quick run: fast but not measured
    assert not rows[speed][1] and not rows[first][1]
    rows = _rows(targets({}, [_story(10, 0.03, 0.4, 1), _story(120, 0.035, 0.45, 1)]))  # one thread
    assert not rows[speed][1]


def test_live_targets_count_any_stall_and_need_two_minutes_watched():
    ahead = (
        "in the app: live generation stays ahead of playback for 120 s (no stall after the first window, in the "
        "browser)"
    )
    start = "in the app: first frames play within 1.5 s of pressing Start (Live tab)"

    def live(watched, stalls=(), events=(), first=1.2):
        return dict(live=dict(first_play_s=first, watched_s=watched, played_s=watched, stalls=list(stalls),
                              events=list(events)))  # fmt: skip

    assert _rows(targets({}, [], live(120)))[ahead][1]
    assert _rows(targets({}, [], live(120)))[start][1]
    assert not _rows(targets({}, [], live(120, first=1.6)))[start][1]
    assert not _rows(targets({}, [], live(20)))[ahead][1]
    assert not _rows(targets({}, [], live(120, stalls=[dict(at=30.0, s=0.7)])))[ahead][1]
    assert not _rows(targets({}, [], live(120, events=[dict(event="waiting", at=30.0, time=28.0)])))[ahead][1]
