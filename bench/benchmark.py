"""Sampling speed: this project against the reference implementation (phenaki-pytorch 0.5.0), same work, one run.

Run it with `bash bench/run.sh` (it makes bench/.venv with both packages); `--quick` for a smoke run.

What it does, in one process:
- builds this project's Phenaki and the reference's with the same hyperparameters (frame size, patch sizes, depths,
  widths, heads, LFQ codebook, text width, 18 sampling steps, guidance 3) and gives both the same random text
  embeddings, with no download (see `build_reference`);
- times, interleaved A B A B after a warm-up, medians of several rounds: `sample` of a 17-frame clip, C-ViViT
  encode + decode of a 17-frame clip, one MaskGit training step and one C-ViViT training step of each;
- counts the matrix-multiply FLOPs each system actually performs (FlopCounterMode, with the CPU SDPA kernel added),
  and measures a matrix-multiply ceiling (a 2048^3 fp32 `torch.mm`) in every round, on the same threads;
- peak memory of each task in a child process per system (RSS sampled every millisecond, above the resting RSS of
  the built model; glibc is told to hand large blocks back at once so that RSS follows the tensors);
- a 2-minute story (960 frames at 8 fps) against a 10-second one on the default model's size (a randomly
  initialised `shapes` preset: the trained weights are not part of this measure), each in its own process; and the
  time to the first chunk of `Phenaki.stream` with the demo's default settings.
Results go to bench/out/ and, for a full run, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))
for key, value in dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
                       TOKENIZERS_PARALLELISM="false").items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count  # noqa: E402

PROMPT = "a red circle moves right"
STORY_PROMPTS = ["a red circle moves right", "the red circle moves up", "a blue square moves left",
                 "the blue square moves down"]
APP_TIMELINE = [("a red circle moves right", 2.0), ("the red circle moves up", 2.0)]  # the demo's default


@dataclass
class Config:
    name: str
    frame: int
    patch: int
    temporal_patch: int
    cvivit_dim: int
    spatial_depth: int
    temporal_depth: int
    cvivit_heads: int
    cvivit_dim_head: int
    codebook: int
    maskgit_dim: int
    maskgit_depth: int
    maskgit_heads: int
    maskgit_dim_head: int
    max_seq_len: int
    text_dim: int
    text_len: int = 16
    frames: int = 17
    steps: int = 18  # the reference's default (and only) number of steps
    guidance: float = 3.0
    train_batch: int = 2
    rounds: int = 5

    @property
    def grid(self) -> int:
        return self.frame // self.patch

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // self.temporal_patch

    @property
    def tokens(self) -> int:
        return self.latent_frames * self.grid ** 2


CONFIGS = {
    # the default model's size (the `shapes` preset), with a power-of-two codebook for the reference's LFQ
    "small": Config("small", frame=64, patch=8, temporal_patch=2, cvivit_dim=128, spatial_depth=2, temporal_depth=2,
                    cvivit_heads=4, cvivit_dim_head=32, codebook=1024, maskgit_dim=192, maskgit_depth=4,
                    maskgit_heads=4, maskgit_dim_head=48, max_seq_len=9 * 64, text_dim=128, rounds=5),
    # the user's example (README): CViViT 512 / patch 32 / 4+4 layers on 256x256, MaskGit 512 x 6
    "readme": Config("readme", frame=256, patch=32, temporal_patch=2, cvivit_dim=512, spatial_depth=4,
                     temporal_depth=4, cvivit_heads=8, cvivit_dim_head=64, codebook=4096, maskgit_dim=512,
                     maskgit_depth=6, maskgit_heads=8, maskgit_dim_head=64, max_seq_len=1024, text_dim=512,
                     rounds=3),
}
TASKS = ("sample", "encode_decode", "train_maskgit", "train_cvivit")
TASK_TITLES = {"sample": "sample 17 frames", "encode_decode": "C-ViViT encode+decode", "train_maskgit":
               "MaskGit train step", "train_cvivit": "C-ViViT train step"}


class Inputs:
    """The same random inputs for both systems."""

    def __init__(self, cfg: Config, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)
        self.video = torch.rand(1, 3, cfg.frames, cfg.frame, cfg.frame, generator=g)
        self.ids = torch.randint(0, cfg.codebook, (cfg.train_batch, cfg.latent_frames, cfg.grid, cfg.grid),
                                 generator=g)


# ---- the two systems ---------------------------------------------------------------------------------------------


def train_step(module: torch.nn.Module, optimizer, loss_fn) -> torch.Tensor:
    """One optimiser step of `module` in training mode (the same steps for both systems); back in eval mode after."""
    module.train()
    loss = loss_fn()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    module.eval()
    return loss.detach()


class Ours:
    name = "this project"

    def __init__(self, cfg: Config, inputs: Inputs, seed: int = 0):
        from phenaki import CViViT, MaskGit, Phenaki

        torch.manual_seed(seed)
        self.cfg, self.inputs = cfg, inputs
        cvivit = CViViT(dim=cfg.cvivit_dim, codebook_size=cfg.codebook, patch_size=cfg.patch,
                        temporal_patch_size=cfg.temporal_patch, spatial_depth=cfg.spatial_depth,
                        temporal_depth=cfg.temporal_depth, dim_head=cfg.cvivit_dim_head, heads=cfg.cvivit_heads,
                        quantizer="lfq")
        maskgit = MaskGit(num_tokens=cfg.codebook, max_seq_len=cfg.max_seq_len, dim=cfg.maskgit_dim,
                          depth=cfg.maskgit_depth, heads=cfg.maskgit_heads, dim_head=cfg.maskgit_dim_head,
                          dim_context=cfg.text_dim)
        self.model = Phenaki(cvivit=cvivit, maskgit=maskgit, frame_size=cfg.frame).eval()
        # the same precomputed text embeddings as the reference: no text encoder runs on either side
        text, mask = inputs.text, torch.ones(inputs.text.shape[:2], dtype=torch.bool)
        self.model.encode_text = lambda texts: (text.expand(len(texts), -1, -1), mask.expand(len(texts), -1))
        self.opt_maskgit = torch.optim.Adam(maskgit.parameters(), lr=1e-4)
        self.opt_cvivit = torch.optim.Adam(cvivit.parameters(), lr=1e-4)

    def sample(self):
        return self.model.sample(texts=PROMPT, num_frames=self.cfg.frames, steps=self.cfg.steps,
                                 guidance_scale=self.cfg.guidance, temperature=1.0, seed=0)

    def encode_decode(self):
        cvivit = self.model.cvivit
        return cvivit.decode(cvivit.encode(self.inputs.video))

    def train_maskgit(self):
        return train_step(self.model.maskgit, self.opt_maskgit, lambda: self.model(
            video_codebook_ids=self.inputs.ids, texts=[PROMPT] * self.inputs.ids.shape[0]))

    def train_cvivit(self):
        return train_step(self.model.cvivit, self.opt_cvivit, lambda: self.model.cvivit(self.inputs.video,
                                                                                         return_loss=True))


class Reference:
    name = "phenaki-pytorch 0.5.0"

    def __init__(self, cfg: Config, inputs: Inputs, seed: int = 0):
        import phenaki_pytorch.phenaki_pytorch as reference
        from phenaki_pytorch import CViViT, MaskGit, Phenaki

        torch.manual_seed(seed)
        self.cfg, self.inputs = cfg, inputs
        # Offline: the reference asks the Hub for the T5 config (`get_encoded_dim`) at construction and runs T5 in
        # `sample`; both are replaced by our text width and our precomputed embeddings. VGG16 (ImageNet weights
        # fetched by torchvision) and the discriminator are built only with use_vgg_and_gan=True: they are off, and
        # neither takes part in any timed task.
        reference.get_encoded_dim = lambda name: cfg.text_dim
        self.cvivit = CViViT(dim=cfg.cvivit_dim, codebook_size=cfg.codebook, image_size=cfg.frame,
                             patch_size=cfg.patch, temporal_patch_size=cfg.temporal_patch,
                             spatial_depth=cfg.spatial_depth, temporal_depth=cfg.temporal_depth,
                             dim_head=cfg.cvivit_dim_head, heads=cfg.cvivit_heads, use_vgg_and_gan=False)
        maskgit = MaskGit(num_tokens=cfg.codebook, max_seq_len=cfg.max_seq_len, dim=cfg.maskgit_dim,
                          depth=cfg.maskgit_depth, heads=cfg.maskgit_heads, dim_head=cfg.maskgit_dim_head,
                          dim_context=cfg.text_dim)
        self.model = Phenaki(cvivit=self.cvivit, maskgit=maskgit, steps=cfg.steps, t5_name="offline",
                             text_embed_dim=cfg.text_dim)
        text = inputs.text
        self.model.encode_texts = lambda texts, output_device=None: text.expand(len(texts), -1, -1).to(
            output_device or text.device)
        self.opt_maskgit = torch.optim.Adam(maskgit.parameters(), lr=1e-4)
        self.opt_cvivit = torch.optim.Adam(self.cvivit.parameters(), lr=1e-4)

    def sample(self):
        return self.model.sample(texts=[PROMPT], num_frames=self.cfg.frames, cond_scale=self.cfg.guidance)

    @torch.no_grad()
    def encode_decode(self):
        return self.model.cvivit(self.inputs.video, return_recons_only=True)  # the sampler's (eval) copy

    def train_maskgit(self):
        batch = self.inputs.ids.shape[0]
        return train_step(self.model.maskgit, self.opt_maskgit, lambda: self.model(
            video_codebook_ids=self.inputs.ids, text_embeds=self.inputs.text.expand(batch, -1, -1)))

    def train_cvivit(self):
        # reconstruction loss (no VGG, no GAN: as ours)
        return train_step(self.cvivit, self.opt_cvivit, lambda: self.cvivit(self.inputs.video))


SYSTEMS = {"ours": Ours, "reference": Reference}


def tokens_of(cfg: Config, task: str) -> int:
    return cfg.tokens * (cfg.train_batch if task == "train_maskgit" else 1)


# ---- measuring ---------------------------------------------------------------------------------------------------


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


FLOP_EXTRA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def count_flops(fn) -> int:
    """Matrix-multiply FLOPs (mm, addmm, bmm, convolutions, attention; forward and backward) of one call."""
    with FlopCounterMode(display=False, custom_mapping=FLOP_EXTRA) as counter:
        fn()
    return counter.get_total_flops()


def matmul_ceiling(n: int = 2048, reps: int = 3) -> float:
    """FLOP/s of the best of `reps` fp32 n^3 matrix multiplies: what this machine's BLAS reaches right now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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
    """`auto`: whichever of 1 or all cores gives the faster matrix multiply now (on a shared machine, a second
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
    for key, system in systems.items():
        params = sum(p.numel() for p in system.model.parameters())
        log(f"   {system.name}: {params / 1e6:.1f} M parameters")
    results = {task: {key: Measure() for key in systems} for task in TASKS}
    ceilings = []
    log("   warm-up (and FLOP count): " + ", ".join(TASKS))
    for task in TASKS:
        for key, system in systems.items():
            torch.manual_seed(0)
            results[task][key].flops = count_flops(getattr(system, task))
    for r in range(rounds):
        ceilings.append(matmul_ceiling())
        for task in TASKS:
            for key, system in systems.items():  # A B, A B, ... in every round
                torch.manual_seed(r)
                results[task][key].times.append(_timed(getattr(system, task)))
        log(f"   round {r + 1}/{rounds}: " + "; ".join(
            f"{task} " + " / ".join(f"{results[task][k].times[-1]:.2f}" for k in systems) for task in TASKS)
            + f" s; mm ceiling {ceilings[-1] / 1e9:.0f} GFLOP/s; load {os.getloadavg()[0]:.1f}")
    del systems
    log("   peak memory, one child process per system")
    for key in SYSTEMS:
        memory = _child(["--memory-worker", cfg.name, key, "--threads", str(threads)])
        for task in TASKS:
            results[task][key].rest_mb, results[task][key].peak_mb = memory[task]
    return dict(config=asdict(cfg), ceiling=statistics.median(ceilings), ceilings=ceilings,
                results={t: {k: asdict(m) | {"median": m.median} for k, m in v.items()} for t, v in results.items()})


def memory_worker(config: str, system: str) -> None:
    cfg = CONFIGS[config]
    runner = SYSTEMS[system](cfg, Inputs(cfg))
    out = {}
    for task in TASKS:
        fn = getattr(runner, task)
        fn()  # warm-up: optimizer state, first-call allocations
        before, peak = peak_rss_during(fn)
        out[task] = (before / 2 ** 20, (peak - before) / 2 ** 20)
    print(json.dumps(out))


def _child(args: list[str], timeout: float = 3600) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- stories on the default model's size -------------------------------------------------------------------------


def story_worker(seconds: float, warm_first_chunks: int) -> None:
    from phenaki import Phenaki
    from phenaki.presets import preset

    start_rss = peak_rss_of_process()
    torch.manual_seed(0)
    model = Phenaki.from_config(preset("shapes")).eval()  # random weights: same compute as the trained model
    built_rss = rss_bytes()
    segment = 5.0
    timeline = [(STORY_PROMPTS[i % len(STORY_PROMPTS)], min(segment, seconds - i * segment))
                for i in range(int(-(-seconds // segment)))]
    kwargs = dict(steps=12, guidance_scale=3.0, temperature=1.0, critic_strength=0.0, seed=0)  # the demo's
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
    print(json.dumps(dict(seconds=seconds, frames=frames, windows=windows, total_s=total, s_per_frame=total / frames,
                          first_chunk_s=first, warm_first_chunk_s=warm, peak_rss_mb=peak_rss / 2 ** 20,
                          model_rss_mb=built_rss / 2 ** 20, import_peak_mb=start_rss / 2 ** 20)))


def stories(lengths: list[float], threads: int, log) -> list[dict]:
    out = []
    for i, seconds in enumerate(lengths):
        log(f"\n== story of {seconds:g} s on the default model's size (own process)")
        result = _child(["--story-worker", str(seconds), "--warm-first-chunks", "3" if i == 0 else "0",
                         "--threads", str(threads)])
        log(f"   {result['frames']} frames in {result['total_s']:.1f} s ({result['s_per_frame']:.3f} s/frame), "
            f"first chunk {result['first_chunk_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
        out.append(result)
    return out


# ---- report ------------------------------------------------------------------------------------------------------


def table(comparison: dict) -> list[str]:
    cfg, ceiling = comparison["config"], comparison["ceiling"]
    lines = [f"**{cfg['name']}** ({cfg['frame']}x{cfg['frame']}, {cfg['frames']} frames -> {Config(**cfg).tokens} "
             f"tokens; CViViT dim {cfg['cvivit_dim']}, patch {cfg['patch']}x{cfg['temporal_patch']}, depths "
             f"{cfg['spatial_depth']}+{cfg['temporal_depth']}, {cfg['cvivit_heads']} heads x "
             f"{cfg['cvivit_dim_head']}; MaskGit dim {cfg['maskgit_dim']}, depth {cfg['maskgit_depth']}, "
             f"{cfg['maskgit_heads']} heads x {cfg['maskgit_dim_head']}; LFQ codebook {cfg['codebook']}; text "
             f"{cfg['text_len']} x {cfg['text_dim']}; {cfg['steps']} steps, guidance {cfg['guidance']:g}; "
             f"train batch {cfg['train_batch']}). Matrix-multiply ceiling: {ceiling / 1e9:.0f} GFLOP/s "
             f"(median of {len(comparison['ceilings'])} rounds).", "",
             "| task | system | median s | runs (s) | tokens/s | peak MB | GFLOP | GFLOP/s | % of ceiling | "
             "speed-up | memory |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for task in TASKS:
        res = comparison["results"][task]
        ours, ref = res["ours"], res["reference"]
        for key, name in (("ours", Ours.name), ("reference", Reference.name)):
            m = res[key]
            rate = m["flops"] / m["median"]
            speed = f"**{ref['median'] / ours['median']:.1f}x**" if key == "ours" else ""
            memory = f"{ours['peak_mb'] / ref['peak_mb']:.2f}x" if key == "ours" and ref["peak_mb"] > 0 else ""
            lines.append(f"| {TASK_TITLES[task] if key == 'ours' else ''} | {name} | {m['median']:.3f} | "
                         f"{' '.join(f'{t:.2f}' for t in m['times'])} | "
                         f"{tokens_of(Config(**cfg), task) / m['median']:.0f} | {m['peak_mb']:.0f} | "
                         f"{m['flops'] / 1e9:.1f} | {rate / 1e9:.1f} | {100 * rate / ceiling:.0f}% | {speed} | "
                         f"{memory} |")
    return lines


def targets(comparisons: dict, story: list[dict]) -> list[str]:
    lines = ["| target | measured | met |", "| --- | --- | --- |"]

    def row(name, value, ok):
        lines.append(f"| {name} | {value} | {'yes' if ok else '**no**'} |")

    def ratio(cfg, task):
        r = comparisons[cfg]["results"][task]
        return r["reference"]["median"] / r["ours"]["median"]

    def memory(cfg, task):
        r = comparisons[cfg]["results"][task]
        return r["ours"]["peak_mb"] / max(r["reference"]["peak_mb"], 1e-9)

    def bound(cfg, task):
        """The speed-up if this project ran its FLOPs at 100% of the measured ceiling."""
        c = comparisons[cfg]
        r = c["results"][task]
        best = r["ours"]["flops"] / c["ceiling"]
        return f" (at 100% of the ceiling: {best:.3g} s, {r['reference']['median'] / best:.1f}x at most)"

    if "small" in comparisons:
        row("small: sampling >= 10x faster", f"{ratio('small', 'sample'):.1f}x" + bound("small", "sample"),
            ratio("small", "sample") >= 10)
        row("small: C-ViViT encode+decode >= 3x faster",
            f"{ratio('small', 'encode_decode'):.1f}x" + bound("small", "encode_decode"),
            ratio("small", "encode_decode") >= 3)
        worst = max(memory("small", t) for t in ("sample", "encode_decode"))
        row("small: peak memory <= half (sample, encode+decode)",
            f"{memory('small', 'sample'):.2f}x, {memory('small', 'encode_decode'):.2f}x", worst <= 0.5)
    if "readme" in comparisons:
        row("README size: sampling >= 2x faster", f"{ratio('readme', 'sample'):.1f}x" + bound("readme", "sample"),
            ratio("readme", "sample") >= 2)
        c = comparisons["readme"]
        m = c["results"]["sample"]["ours"]
        share = m["flops"] / m["median"] / c["ceiling"]
        row("README size: sampling at >= 70% of the matmul ceiling", f"{100 * share:.0f}%", share >= 0.7)
    if len(story) == 2:
        short, long = story
        growth = long["peak_rss_mb"] / short["peak_rss_mb"] - 1
        row(f"{long['seconds']:g} s story: peak memory within 10% of a {short['seconds']:g} s one",
            f"{long['peak_rss_mb']:.0f} MB vs {short['peak_rss_mb']:.0f} MB ({100 * growth:+.1f}%)", growth <= 0.1)
        row(f"{long['seconds']:g} s story: seconds per frame (reported)", f"{long['s_per_frame']:.3f} s/frame "
            f"({long['frames']} frames in {long['total_s']:.0f} s)", True)
        first = short["first_chunk_s"]
        warm = statistics.median(short["warm_first_chunk_s"]) if short["warm_first_chunk_s"] else first
        row("first frames of a story within 3 s (library: first chunk of `stream`, demo defaults)",
            f"{first:.2f} s first request after loading, {warm:.2f} s later ones", max(first, warm) <= 3.0)
    return lines


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                reference=version("phenaki-pytorch"), memory_gb=round(os.sysconf("SC_PAGE_SIZE")
                                                                        * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1))


def report(data: dict) -> str:
    m = data["machine"]
    lines = [
        "# Benchmark: this project against the reference implementation",
        "",
        f"- date: {data['date']}",
        f"- command: `{data['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB; Python {m['python']}, torch "
        f"{m['torch']}, phenaki-pytorch {m['reference']}; no GPU",
        f"- threads: {data['threads']} for both systems (auto: matmul GFLOP/s by thread count at start: "
        f"{data['thread_probe'] or 'fixed by --threads'})",
        f"- load average (1 min) at start / end: {data['load_start']:.2f} / {data['load_end']:.2f}; the machine is "
        "shared (a training run and other sessions), so absolute times are noisy; the A/B rounds are interleaved "
        "and the ratios are of medians",
        f"- niceness of the benchmark process at start / end: {data['nice'][0]} / {data['nice'][1]}"
        + (" (changed from outside during the run; the benchmark never renices itself: both systems ran under it "
           "alike, but the story and first-chunk times are then pessimistic)"
           if data["nice"][0] != data["nice"][1] else ""),
        f"- wall time of the whole run: {data['wall_s'] / 60:.1f} min",
        "",
        "## How the two systems are run",
        "",
        "- Same hyperparameters on both sides (listed above each table); both with the LFQ quantizer of "
        "vector-quantize-pytorch (the reference's default; hence a power-of-two codebook), no critic, 18 steps, "
        "guidance scale 3, a 17-frame clip from scratch, batch 1 for sampling and encode+decode.",
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
        "flash-attention kernel added), i.e. the work each system actually performs. Ceiling: best of 3 fp32 "
        "2048^3 `torch.mm` on the same threads, measured in every round; median over rounds.",
        "- Peak memory: one child process per system and configuration; each task runs once to warm up, then once "
        "more while a thread samples RSS every millisecond; reported is the peak above the RSS just before the "
        "call (weights, optimizer state and caches excluded). The child runs with `MALLOC_MMAP_THRESHOLD_=65536` "
        "so that freed tensors leave RSS at once.",
        "",
    ]
    for name, comparison in data["comparisons"].items():
        lines += [f"## {name}", ""] + table(comparison) + [""]
    if data["stories"]:
        lines += ["## Stories on the default model's size", "",
                  "A randomly initialised `phenaki.presets.preset(\"shapes\")` model (the trained default model "
                  "was not ready; the compute is the same), `Phenaki.stream` with the demo's defaults (12 steps, "
                  "guidance 3, no critic), 5-second segments cycling through four prompts, each story in its own "
                  "process; peak memory is that process's peak RSS (`VmHWM`: Python, torch and the model included). "
                  "Time to first chunk: the first `stream` call after the model is built, and later calls with the "
                  "demo's default timeline.", "",
                  "| story | frames | windows | total s | s/frame | first chunk s | peak RSS MB | of which above the "
                  "built model MB |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s in data["stories"]:
            lines.append(f"| {s['seconds']:g} s | {s['frames']} | {s['windows']} | {s['total_s']:.1f} | "
                         f"{s['s_per_frame']:.3f} | {s['first_chunk_s']:.2f} | {s['peak_rss_mb']:.0f} | "
                         f"{s['peak_rss_mb'] - s['model_rss_mb']:.0f} |")
        lines.append("")
    lines += ["## Targets", ""] + targets(data["comparisons"], data["stories"]) + [""]
    lines += ["## Where this project's time goes, and what was changed for it", "",
              "Sampling does the least work that gives the same result (each shortcut has a plain reference path "
              "beside it, `phenaki.attention.reference_paths()`, and tests/test_fast_paths.py checks logits, ids "
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
              "- SDPA attention (the CPU flash kernel) and, on a GPU, bf16 autocast.",
              "",
              "The rest is matrix multiplies, attention and the sampler's own `torch.multinomial` (about 10% of the "
              "small configuration's time: it draws one exponential per codebook entry; a one-uniform-per-token "
              "draw would be faster but changes every seeded result). The \"at most\" figures in the targets table "
              "divide the reference's time by this project's FLOPs at 100% of the measured ceiling: on this "
              "machine the small configuration cannot reach 10x for sampling nor 3x for C-ViViT encode+decode "
              "without doing less arithmetic than it does now (C-ViViT's own code, `phenaki/cvivit.py`, was outside "
              "this work). What makes the reference slow on the small configuration is mostly memory traffic: its "
              "continuous position bias builds (n x n x hidden) tensors every forward (about 2 million page faults "
              "per sample were counted while developing this), so its time, and the ratio, moves with the machine's "
              "load.",
              "",
              "Threads: during development, two threads on this shared 2-core machine (with a training run at "
              "normal priority beside it) made a small-configuration sample take 37 s instead of 1.8 s, every "
              "OpenMP barrier waiting for a preempted thread; `--threads auto` therefore probes and picks.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small config, 2 rounds, short stories")
    parser.add_argument("--configs", default=None, help="comma-separated: small,readme (default: both)")
    parser.add_argument("--rounds", type=int, default=None, help="timed A/B rounds (default: per config)")
    parser.add_argument("--story", default=None, help="story lengths in seconds, comma-separated (default 10,120)")
    parser.add_argument("--threads", default="auto", help="torch threads for both systems, or auto")
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    parser.add_argument("--memory-worker", nargs=2, metavar=("CONFIG", "SYSTEM"), help=argparse.SUPPRESS)
    parser.add_argument("--story-worker", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--warm-first-chunks", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true",
                        help="render bench/out/results.json again into bench/out/RESULTS.md (and bench/RESULTS.md)")
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

    configs = (args.configs or ("small" if args.quick else "small,readme")).split(",")
    lengths = [float(s) for s in (args.story or ("2,6" if args.quick else "10,120")).split(",") if s]
    OUT.mkdir(parents=True, exist_ok=True)
    log_file = open(OUT / "log.txt", "w")

    def log(message: str) -> None:
        print(message, flush=True)
        log_file.write(message + "\n")
        log_file.flush()

    started, load_start, nice_start = time.time(), os.getloadavg()[0], os.nice(0)
    threads, probe = pick_threads(args.threads)
    log(f"threads: {threads} {probe}; load {load_start:.2f}")
    comparisons = {}
    for name in configs:
        cfg = CONFIGS[name]
        rounds = args.rounds or (2 if args.quick else cfg.rounds)
        comparisons[name] = compare(cfg, rounds, threads, log)
        for line in table(comparisons[name]):
            log(line)
    story = stories(lengths, threads, log) if lengths else []
    command = "bash bench/run.sh" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    data = dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), command=command,
                machine=machine(), threads=threads, thread_probe=probe, load_start=load_start,
                load_end=os.getloadavg()[0], nice=(nice_start, os.nice(0)), wall_s=time.time() - started,
                comparisons=comparisons, stories=story)
    (OUT / "results.json").write_text(json.dumps(data, indent=1))
    text = report(data)
    (OUT / "RESULTS.md").write_text(text)
    log("\n" + "\n".join(targets(comparisons, story)))
    if not args.quick and not args.no_write:
        (REPO / "bench" / "RESULTS.md").write_text(text)
        log(f"\nwrote {REPO / 'bench' / 'RESULTS.md'}")
    else:
        log(f"\nwrote {OUT / 'RESULTS.md'} (bench/RESULTS.md is written by a full run)")


if __name__ == "__main__":
    main()
