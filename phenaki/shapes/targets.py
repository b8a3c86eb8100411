"""What the shapes-world model is measured with and held to: the sampling settings of every measure, the targets,
and the table that sets results beside them. Its own module so that the eval (which measures) and the model card
(which reports) both import it, and neither imports the other's importer."""

from __future__ import annotations

from dataclasses import asdict

from ..sampling import SamplingSettings

DEFAULTS = {k: v for k, v in asdict(SamplingSettings()).items() if k != "top_k"}  # the library's sampling defaults
TARGETS = [
    ("tokenizer", "psnr_db", 32.0),
    ("tokenizer", "describe_agreement", 0.99),
    ("text_control", "colour", 0.95),
    ("text_control", "shape", 0.90),
    ("text_control", "motion", 0.90),
    ("stories", "object_kept", 0.95),
    ("stories", "motion_followed", 0.85),
]
TARGETS2 = [  # shapes world 2 (eval2.py), issue 24's targets
    ("tokenizer", "psnr_db", 32.0),
    ("tokenizer", "describe_agreement", 0.99),
    ("text_control", "colour", 0.95),
    ("text_control", "shape", 0.90),
    ("text_control", "size", 0.90),
    ("text_control", "motion", 0.90),
    ("text_control", "count", 0.95),
    ("text_control", "two_objects_right", 0.80),
    ("text_control", "first_frame", 0.98),
    ("held_out", "colour_and_shape", 0.75),
    ("stories", "object_kept", 0.95),
    ("stories", "motion_followed", 0.85),
]
SPEED_TARGET_S = 3  # seconds for a 17-frame clip


def report(results: dict, targets: list = TARGETS, compare: dict | None = None) -> str:
    """A Markdown table of `results` (as `eval.evaluate` or, with TARGETS2, `eval2.evaluate` returns them) against
    the targets; `compare`: the same measures in another precision, as a second column (`met` is `results`')."""
    label = f" ({results['precision']})" if "precision" in results else ""
    other = f" {compare['precision']} |" if compare else ""
    rows = [f"| measure | value{label} |{other} target | met |", "| --- |" + " --- |" * (3 + bool(compare))]
    for group, key, target in targets:
        value = results[group][key]
        also = f" {compare[group][key]:.3f} |" if compare else ""
        rows.append(f"| {group} {key} | {value:.3f} |{also} >= {target} | {'yes' if value >= target else 'no'} |")
    seconds = results["speed"]["seconds_per_17_frame_clip"]
    met = "yes" if seconds <= SPEED_TARGET_S else "no"
    also = f" {compare['speed']['seconds_per_17_frame_clip']:.2f} s |" if compare else ""
    rows.append(f"| speed, 17-frame clip | {seconds:.2f} s |{also} <= {SPEED_TARGET_S} s | {met} |")
    return "\n".join(rows)


def missed_targets(results: dict, targets: list = TARGETS) -> list[str]:
    """Each target that `results` misses, with the value measured (NaN, nothing measured, counts as missed)."""
    missed = [
        f"{group} {key} {results[group][key]:.3f} (target >= {target})"
        for group, key, target in targets
        if not results[group][key] >= target
    ]
    seconds = results["speed"]["seconds_per_17_frame_clip"]
    if seconds > SPEED_TARGET_S:
        missed.append(f"speed {seconds:.2f} s per 17-frame clip (target <= {SPEED_TARGET_S} s)")
    return missed
