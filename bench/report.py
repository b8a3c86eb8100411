"""bench/RESULTS.md from the measured data: tables, targets, and how the two systems were run."""

from __future__ import annotations

import os
import platform

import torch

from bench import emerging
from bench.browser import seconds
from bench.browser_live import STALL_MS, live_summary
from bench.systems import ROW_NAMES, TASK_TITLES, TASKS, Config, row_precision, tokens_of
from bench.targets import best_reference, targets
from phenaki.sampling import SamplingSettings


def settings_text() -> str:
    """The default sampling settings as the report names them, e.g. "8 steps, guidance 3, no critic, 1 refinement
    pass"."""
    d = SamplingSettings()
    critic = "no critic" if d.critic_strength == 0 else f"critic {d.critic_strength:g}"
    return f"{d.steps} steps, guidance {d.guidance_scale:g}, {critic}, {d.refine_passes} refinement pass" + (
        "es" * (d.refine_passes != 1)
    )


def table(comparison: dict) -> list[str]:
    cfg, ceiling, precision = comparison["config"], comparison["ceiling"], comparison["precision"]
    lines = [
        f"**{cfg['name']}** ({cfg['frame']}x{cfg['frame']}, {cfg['frames']} frames -> {Config(**cfg).tokens} "
        f"tokens; CViViT dim {cfg['cvivit_dim']}, patch {cfg['patch']}x{cfg['temporal_patch']}, depths "
        f"{cfg['spatial_depth']}+{cfg['temporal_depth']}, {cfg['cvivit_heads']} heads x "
        f"{cfg['cvivit_dim_head']}; MaskGit dim {cfg['maskgit_dim']}, depth {cfg['maskgit_depth']}, "
        f"{cfg['maskgit_heads']} heads x {cfg['maskgit_dim_head']}; LFQ codebook {cfg['codebook']}; text "
        f"{cfg['text_len']} x {cfg['text_dim']}; {cfg['steps']} steps, guidance {cfg['guidance']:g}; "
        f"train batch {cfg['train_batch']}). Matrix-multiply ceilings: fp32 {ceiling['fp32'] / 1e9:.0f}, bf16 "
        f"{ceiling['bf16'] / 1e9:.0f} GFLOP/s (medians of {len(comparison['ceilings']['fp32'])} rounds). This "
        f"project samples in {precision} by default here; each row's % of ceiling is against the ceiling of the "
        "precision it ran in; speed-up and memory are against the reference's faster row of the task.",
        "",
        "| task | system | precision | median s | runs (s) | tokens/s | peak MB | GFLOP | GFLOP/s | % of ceiling | "
        "speed-up | memory |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task in TASKS:
        res = comparison["results"][task]
        ref = best_reference(res)[1]
        for i, (row, m) in enumerate(res.items()):
            rate = m["flops"] / m["median"]
            ran_in = row_precision(row, task, precision)
            ours = row.startswith("ours")
            speed = f"**{ref['median'] / m['median']:.1f}x**" if ours else ""
            memory = f"{m['peak_mb'] / ref['peak_mb']:.2f}x" if ours and ref["peak_mb"] > 0 else ""
            lines.append(
                f"| {TASK_TITLES[task] if i == 0 else ''} | {ROW_NAMES[row]} | {ran_in} | {m['median']:.3f} | "
                f"{' '.join(f'{t:.2f}' for t in m['times'])} | "
                f"{tokens_of(Config(**cfg), task) / m['median']:.0f} | {m['peak_mb']:.0f} | "
                f"{m['flops'] / 1e9:.1f} | {rate / 1e9:.1f} | {100 * rate / ceiling[ran_in]:.0f}% | {speed} | "
                f"{memory} |"
            )
    return lines


def browser_section(browser: dict) -> list[str]:
    lines = [
        "## The demo in a browser",
        "",
        "`app.py` as a user starts it (the bundled default model, on the CPU with its default threads: one "
        "fewer than torch's, leaving a core to the browser) and Debian's headless "
        f"Chromium {browser.get('chromium', '')} on the same machine, driven by Playwright "
        "(`bench/browser.py`).",
        "",
    ]
    if browser.get("skipped"):
        return lines + [f"Not measured: {browser['skipped']}.", ""]
    if "presses" in browser:
        lines += _presses(browser)
    if browser.get("live"):
        lines += _live(browser["live"])
    return lines


def _presses(browser: dict) -> list[str]:
    lines = [
        f"Generate: each press uses the default timeline and settings ({settings_text()}, a random seed) "
        "and is timed in the page from the click: the story started on the server, the first window's status "
        "arrived, its frames picture loaded (the first frames a person sees), and the live preview holds its "
        "clip (encoded after the picture is sent); the next press comes after the story has ended.",
        "",
        "| press | story started s | emerging picture s | first window's status s | frames picture s | "
        "live preview's clip s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    columns = ("started_s", "picture_s", "window_s", "frames_s", "live_s")
    lines += [
        f"| {i + 1} | " + " | ".join(seconds(r[k]) for k in columns) + " |" for i, r in enumerate(browser["presses"])
    ]
    cpu = browser["cpu_s"]
    return lines + [
        "",
        f"CPU used over all presses: server {cpu['server']:.1f} s, Chromium {cpu['chromium']:.1f} s "
        "(they share the cores).",
        "",
    ]


def _live(live: dict) -> list[str]:
    stalls = "; ".join(f"at {s['at']:.1f} s for {s['s']:.1f} s" for s in live["stalls"][:10]) or "none"
    events = ", ".join(f"{e['event']} at {e['at']:.1f} s" for e in live["events"][:10]) or "none"
    cpu = live.get("cpu_s", {})
    return [
        "Live: the Live tab, Start with its default prompt and settings; timed in the page from the click to the "
        "first frames playing (the player's first frame presented, or its playhead past 0), then playback watched "
        f"for {live['watched_s']:g} s: a stall is a `waiting` or `stalled` event of the <video> element or its "
        f"playhead not moving for over {STALL_MS} ms while not ended; then Stop.",
        "",
        f"- {live_summary(live)}",
        f"- stalls: {stalls}; waiting/stalled events: {events}",
        f"- status at Stop: {live['status']}",
        f"- CPU used: server {cpu.get('server', 0):.1f} s, Chromium {cpu.get('chromium', 0):.1f} s",
        "",
    ]


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    from phenaki.precision import BF16_CPU_FLAGS, host_cpu_flags

    return dict(
        bf16_units=sorted(BF16_CPU_FLAGS & host_cpu_flags()),
        cpu=cpu,
        cores=os.cpu_count(),
        python=platform.python_version(),
        torch=torch.__version__,
        reference=version("phenaki-pytorch"),
        memory_gb=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    )


def report(data: dict) -> str:
    m = data["machine"]
    lines = [
        "# Benchmark: this project against the reference implementation",
        "",
        f"- date: {data['date']}",
        f"- command: `{data['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB; Python {m['python']}, torch "
        f"{m['torch']}, phenaki-pytorch {m['reference']}; no GPU; CPU bf16 units: "
        f"{', '.join(m.get('bf16_units', [])) or 'none'}",
        f"- threads: {data['threads']} for both systems (auto: fp32 matmul GFLOP/s by thread count at start: "
        f"{data['thread_probe'] or 'fixed by --threads'}); {data.get('story_threads', data['threads'])} for the "
        "stories",
        f"- load average (1 min) at start / end: {data['load_start']:.2f} / {data['load_end']:.2f}; the machine is "
        "a shared virtual machine, so absolute times are noisy (they moved by up to 40% between runs on one day); "
        "the A/B rounds are interleaved and the ratios are of medians",
        f"- CPU time stolen by the hypervisor during the run (/proc/stat 'steal', all cores): "
        f"{100 * data['steal']:.0f}%; while it is high, everything here runs slower, the two systems alike",
        f"- niceness of the benchmark process at start / end: {data['nice'][0]} / {data['nice'][1]}"
        + (
            " (changed from outside during the run; the benchmark never renices itself: both systems ran under it "
            "alike, but the story and first-chunk times are then pessimistic)"
            if data["nice"][0] != data["nice"][1]
            else ""
        ),
        f"- wall time of the whole run: {data['wall_s'] / 60:.1f} min",
        "",
        "## How the two systems are run",
        "",
        "- Same hyperparameters on both sides (listed above each table); both with the LFQ quantizer of "
        "vector-quantize-pytorch (the reference's default; hence a power-of-two codebook), no critic, 18 steps, "
        "guidance scale 3, no refinement passes (the reference has none), a 17-frame clip from scratch, batch 1 "
        "for sampling and encode+decode.",
        "- Same text: one random (1, 16, text width) tensor. This project's `Phenaki.encode_text` and the "
        "reference's `Phenaki.encode_texts` are replaced on the instances by functions returning it, so no text "
        "encoder runs on either side. The rest is each library's public path: `Phenaki.sample` (MaskGit sampling "
        "+ C-ViViT decode), `CViViT.encode` + `decode` / the reference's `CViViT(video, return_recons_only=True)`, "
        "`Phenaki(video_codebook_ids=...)` + backward + Adam for a MaskGit step, `CViViT(video, return_loss=True)` "
        "/ the reference's `CViViT(video)` + backward + Adam for a C-ViViT step.",
        "- Offline: the reference fetches a T5 config from the Hub at construction (`get_encoded_dim`, replaced "
        "in `phenaki_pytorch.phenaki_pytorch` by a function returning the text width) and VGG16 weights through "
        "torchvision (only when `use_vgg_and_gan=True`: it is built with `use_vgg_and_gan=False`, which also "
        "leaves out its discriminator; neither is part of any task timed here). `HF_HUB_OFFLINE=1` and "
        "`TRANSFORMERS_OFFLINE=1` are set so any other download would fail loudly.",
        "- Timing: one warm-up of every task (counting FLOPs), then rounds of A B A B per task; medians. "
        "FLOPs: `torch.utils.flop_counter.FlopCounterMode` (matrix multiplies, convolutions, attention; the CPU "
        "flash-attention kernel added), i.e. the work each system actually performs, whatever the precision. "
        "Ceilings: best of 3 2048^3 `torch.mm` in fp32 and in bf16 (bf16 inputs and output, what bf16 autocast "
        "runs a linear layer in) on the same threads, both measured in every round; medians over rounds.",
        "- Precision: sampling runs in four ways. This project at the library's default "
        "(`phenaki.precision.sampling_precision`: bf16 autocast on a CPU with bf16 units, fp32 elsewhere) and "
        'forced to fp32 (`with phenaki.precision.precision("fp32")`); the reference as shipped (fp32) and with '
        '`torch.autocast("cpu", dtype=torch.bfloat16)` around its `sample` call, its code unchanged. The '
        "speed-up and memory ratios are against the reference's faster row (lower median). Encode+decode and "
        "the training steps run in fp32 on both sides.",
        "- Peak memory: one child process per system and configuration; each task runs once to warm up, then once "
        "more while a thread samples RSS every millisecond; reported is the peak above the RSS just before the "
        "call (weights, optimizer state and caches excluded). The child runs with `MALLOC_MMAP_THRESHOLD_=65536` "
        "so that freed tensors leave RSS at once.",
        "",
    ]
    for name, comparison in data["comparisons"].items():
        lines += [f"## {name}", ""] + table(comparison) + [""]
    if data["stories"]:
        lines += [
            "## Stories on the default model",
            "",
            "The bundled default model (weights/), `Phenaki.stream` with the default settings "
            f"(the library's and the demo's: {settings_text()}), 5-second segments cycling through four prompts, "
            "each story in its own process with the usual allocator (not the memory measures' eager "
            "`MALLOC_MMAP_THRESHOLD_`, which made every large tensor a fresh mmap and doubled a story's time); "
            "peak memory is that process's peak RSS (`VmHWM`: Python, torch "
            "and the model included). Time to first chunk: the first `stream` call after the model is built, "
            "and later calls with the demo's default timeline. At the library's default precision (as a user "
            "gets it) and on the threads given (`--story-threads`, 2 by default: issue 22's targets are for 2).",
            "",
            "| story | precision | threads | frames | windows | total s | s/frame | first chunk s | peak RSS MB | "
            "of which above the built model MB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in data["stories"]:
            lines.append(
                f"| {s['seconds']:g} s | {s.get('precision', '-')} | {s.get('threads', '-')} | {s['frames']} | "
                f"{s['windows']} | {s['total_s']:.1f} | "
                f"{s['s_per_frame']:.3f} | {s['first_chunk_s']:.2f} | {s['peak_rss_mb']:.0f} | "
                f"{s['peak_rss_mb'] - s['model_rss_mb']:.0f} |"
            )
        lines.append("")
    if data.get("browser"):
        lines += browser_section(data["browser"])
    if data.get("emerging"):
        lines += emerging.section(data["emerging"])
    bf16_units = bool(m.get("bf16_units", True))
    table_of_targets = targets(
        data["comparisons"], data["stories"], data.get("browser"), bf16_units, previews=data.get("emerging")
    )
    lines += ["## Targets", ""] + table_of_targets + [""]
    lines += [
        "## Where this project's time goes, and what was changed for it",
        "",
        "Sampling does the least work that gives the same result (each shortcut has a plain reference path "
        "beside it, `phenaki.models.attention.reference_paths()`, and tests/test_fast_paths.py checks logits, ids "
        "and decoded frames of both on random inputs):",
        "",
        "- conditioned and unconditioned passes in one batch; the unconditioned half skips the text "
        "cross-attention (its output is the null value through `to_out`, a constant);",
        "- both halves have the same tokens, so the layers before the first cross-attention run once;",
        "- logits only where tokens are still masked, and the last layer itself (queries, cross-attention, "
        "feed-forward) only there; the guided mix is taken before the (affine) output layer, so the codebook "
        "projection runs once;",
        "- no work after the last step; no autograd (GELU in place, which also keeps glibc from handing the "
        "feed-forward's wide buffer back and paging it in again every layer);",
        "- SDPA attention (the CPU flash kernel) and bf16 autocast on a GPU and on a CPU with bf16 units (the "
        "fp32 row of the sampling table shows what it gives).",
        "",
        "The rest is matrix multiplies and attention; tokens are drawn by inverse CDF, one uniform per token "
        "(`torch.multinomial`, the reference path, draws one exponential per codebook entry: about 8% of the "
        'small configuration\'s time). The "at most" figures in the targets table '
        "divide the reference's time by this project's FLOPs at 100% of the measured ceiling: on this "
        "machine the small configuration cannot reach 10x for sampling nor 3x for C-ViViT encode+decode "
        "without doing less arithmetic than it does now (C-ViViT's own code, `phenaki/cvivit.py`, was outside "
        "this work). What makes the reference slow on the small configuration is mostly memory traffic: its "
        "continuous position bias builds (n x n x hidden) tensors every forward (about 2 million page faults "
        "per sample were counted while developing this), so its time, and the ratio, moves with the machine's "
        "load.",
        "",
        "The default model's stories and the app's first frames: since 2026-12-04 the default is 8 parallel "
        "steps instead of 12, which drew and kept objects as well on the model's held-out eval (the card, "
        "weights/README.md) and makes a window in about 0.6 of the time; and each half of a refinement pass is "
        "filled in one step instead of two (as good on the same eval, a story in 0.88x the time). The story "
        "processes run with the usual allocator: the memory measures' eager `MALLOC_MMAP_THRESHOLD_` had doubled "
        "their time.",
        "",
        "Tried and not kept (2026-12-04): bf16 attention on the CPU as two batched matrix multiplies with a bf16 "
        "softmax between, a few heads at a time so the scores stay in cache. On the models' own tensors alone it "
        "beat SDPA's flash kernel 1.5-1.8x (README size, 2 x 8 heads x 576 x 64: 12.8 -> 7.0 ms), but in whole "
        "runs, alternating processes, it was within the noise on the default model's story (0.037-0.048 s a "
        "frame either way) and 0-15% faster at the README size (3.5-4.2 s against 3.8-5.1 s for a sample): not "
        "enough for the README-size targets, whose 2.5x needs about 82% of the bf16 ceiling at the FLOPs "
        'performed (see "at most" above), so SDPA stays. Seen on the way, on this CPU: a softmax asked for '
        "fp32 output from bf16 scores ran 8x slower than the same softmax in bf16 (3.7 against 0.42 ms on "
        "4 x 576 x 576 scores; PyTorch computes the bf16 one in fp32 inside), because bf16 -> fp32 copies run "
        "at about 0.4 G elements/s here. Tried again with all heads at once on the default model's self-"
        "attention (2 x 4 heads x 576 x 48: 3.9 -> 2.2 ms alone, where it is 28% of a story's profile): four "
        "pairs of 20-second stories, alternating, measured 0.032-0.043 s a frame with it and 0.032-0.041 without.",
        "",
        "Threads: during development, two threads on this shared 2-core machine (with a training run at "
        "normal priority beside it) made a small-configuration sample take 37 s instead of 1.8 s, every "
        "OpenMP barrier waiting for a preempted thread; `--threads auto` therefore probes and picks.",
        "",
        "In the app, the first window's frames picture is sent as soon as the window is decoded, and its "
        "MP4s (the story's and the live preview's clip, which Gradio then muxes for streaming) are encoded "
        "after: about 0.5 s of a window's wait on this CPU. Chromium on the same two cores takes about half "
        "a core while a story is made; a torch thread it preempts holds up the other at every barrier, so "
        "the app, served on 127.0.0.1 on the CPU, runs one thread fewer than torch's default (here 1 of 2; "
        "`PHENAKI_THREADS` to choose). Interleaved, 15 presses each: first frames 2.0-2.8 s with 1 thread, "
        "2.2-4.2 s with 2. The table above gives, as seen from the page, when the story started on the "
        "server and when the first window's status arrived.",
        "",
        "On a GPU: `python bench/gpu.py` measures the sampler at the paper's size (1.8 B parameters, 1536 "
        "tokens, 48 steps with guidance, 5 context frames) in seconds per new frame, for fp32, bf16 autocast "
        "(the library's default on CUDA), bf16 weights and `torch.compile`; see bench/README.md. Measured on "
        "an NVIDIA H200: [RESULTS-gpu.md](RESULTS-gpu.md).",
        "",
    ]
    return "\n".join(lines)
