"""Sampling at the paper's size on a GPU: seconds per new frame when a story is continued.

    python bench/gpu.py                # CUDA: the paper's size; writes bench/out/gpu.json and gpu.md
    python bench/gpu.py --variants bf16-weights,compiled    # torch.compile too (opt-in: its compile time is unknown)
    python bench/gpu.py --size test    # the same code on a tiny model, on any device (the test suite runs it)

The model, with random weights (speed does not depend on them): MaskGit of 24 layers, width 2048, 32 heads of 64,
cross-attention on a text of 128 tokens of width 4096; a window of 11 frames at 128x128, 8x8 patches, temporal
patch 2: 6 latent frames of 16x16 = 1536 tokens. A story is continued from 5 context frames (3 latent frames, 768
tokens kept), so each window makes 6 new frames: 48 MaskGIT steps on 768 tokens, guidance 3, no refinement (the
paper's sampler), then a C-ViViT (dim 512, 4 + 4 layers, LFQ codebook 8192) decodes the window in fp32.
Seconds per new frame = (sampling + decoding one window) / 6.

Sampler variants, on the same weights and inputs (warm-up, then the median of --repeats windows):
  fp32            the fast paths in fp32 (TF32 off): the plain baseline
  bf16-autocast   the library's default on CUDA: bf16 autocast for the transformer, one region a window
  bf16-weights    MaskGit held in bf16 (no casts at all; LayerNorm in bf16 too)
  compiled        bf16-weights with `torch.compile(dynamic=True)` on the transformer (the number of masked
                  positions changes every step); only when asked for: compiling 24 layers may take minutes
Each variant also gives the guided logits of one step on the same ids, compared to fp32's (relative max error),
so a fast variant can't quietly compute something else. FLOPs of one window (the same arithmetic for every
variant): `FlopCounterMode` on the fp32 one; achieved FLOP/s against a bf16 (or, on a CPU, fp32) matrix-multiply
ceiling measured in the same run.

On the `device` machine (its image has torch, einops, transformers, safetensors; not vector-quantize-pytorch,
which the C-ViViT needs), carry the wheels as /work/.library/device/README.md says:
  pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform
      manylinux2014_x86_64 -d .whl vector-quantize-pytorch einx loguru torch-einops-utils frozendict
Without them the decoder is skipped (reported), and the sampler is measured all the same.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from phenaki import MaskGit  # noqa: E402
from phenaki.sampling import SamplingSettings, sample_tokens, step_logits  # noqa: E402

SIZES = {
    "paper": dict(
        dim=2048,
        depth=24,
        heads=32,
        dim_head=64,
        text_len=128,
        text_dim=4096,
        frame=128,
        patch=8,
        frames=11,
        context_frames=5,
        steps=48,
        codebook=8192,
        cvivit=dict(dim=512, spatial_depth=4, temporal_depth=4, heads=8, dim_head=64),
    ),
    "test": dict(
        dim=32,
        depth=2,
        heads=2,
        dim_head=16,
        text_len=8,
        text_dim=24,
        frame=32,
        patch=8,
        frames=11,
        context_frames=5,
        steps=4,
        codebook=64,
        cvivit=dict(dim=32, spatial_depth=1, temporal_depth=1, heads=2, dim_head=16),
    ),
}
TEMPORAL_PATCH = 2
VARIANTS = ("fp32", "bf16-autocast", "bf16-weights", "compiled")
DEFAULT_VARIANTS = VARIANTS[:3]


class Window:
    """The shapes of one continued window, and its inputs (random, seeded)."""

    def __init__(self, size: dict, device: torch.device, seed: int = 0):
        self.size, self.device = size, device
        self.grid = size["frame"] // size["patch"]
        self.latent = 1 + (size["frames"] - 1) // TEMPORAL_PATCH
        self.context_latent = 1 + (size["context_frames"] - 1) // TEMPORAL_PATCH
        self.frame_tokens = self.grid**2
        self.length, self.prefix_len = self.latent * self.frame_tokens, self.context_latent * self.frame_tokens
        self.new_frames = size["frames"] - size["context_frames"]
        g = torch.Generator().manual_seed(seed)
        self.text = torch.randn(1, size["text_len"], size["text_dim"], generator=g).to(device)
        self.text_mask = torch.ones(1, size["text_len"], dtype=torch.bool, device=device)
        self.prefix = torch.randint(0, size["codebook"], (1, self.prefix_len), generator=g).to(device)
        self.probe = torch.randint(0, size["codebook"], (1, self.length), generator=g).to(device)
        self.probe[:, self.prefix_len :][torch.rand(1, self.length - self.prefix_len, generator=g).to(device) < 0.5] = (
            size["codebook"]
        )  # half of the new tokens masked: one step's logits are compared there
        self.positions = (self.probe[0] == size["codebook"]).nonzero()[:, 0][None]


def build_maskgit(size: dict, window: Window, seed: int = 0) -> MaskGit:
    torch.manual_seed(seed)
    with window.device:  # initialised where it runs: 1.8 B parameters at the paper's size
        return MaskGit(
            num_tokens=size["codebook"],
            max_seq_len=window.length,
            dim=size["dim"],
            depth=size["depth"],
            heads=size["heads"],
            dim_head=size["dim_head"],
            dim_context=size["text_dim"],
            position_grid=[window.latent, window.grid, window.grid],
        ).eval()


def build_cvivit(size: dict, window: Window, seed: int = 0):
    try:
        from phenaki import CViViT

        torch.manual_seed(seed)
        with window.device:
            return CViViT(
                codebook_size=size["codebook"],
                patch_size=size["patch"],
                temporal_patch_size=TEMPORAL_PATCH,
                quantizer="lfq",
                **size["cvivit"],
            ).eval()
    except ImportError as error:  # vector-quantize-pytorch missing (see the module's docstring)
        return f"not measured: {error}"


def variant_model(name: str, fp32: MaskGit) -> tuple[MaskGit, bool]:
    """(the MaskGit to sample with, whether to autocast)."""
    if name in ("fp32", "bf16-autocast"):
        return fp32, name == "bf16-autocast"
    model = copy.deepcopy(fp32).to(torch.bfloat16)
    if name == "compiled":
        model.transformer = torch.compile(model.transformer, dynamic=True)
    return model, False


def timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, dtype: torch.dtype, n: int) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    return 2 * n**3 / min(timed(lambda: torch.mm(a, b), device) for _ in range(10))


def measure(size_name: str, variants: list[str], repeats: int, device: torch.device, log) -> dict:
    size = SIZES[size_name]
    window = Window(size, device)
    settings = SamplingSettings(steps=size["steps"], guidance_scale=3.0, refine_passes=0)
    fp32 = build_maskgit(size, window)
    params = sum(p.numel() for p in fp32.parameters())
    log(
        f"{size_name}: MaskGit {params / 1e9:.2f} B parameters, window of {window.length} tokens "
        f"({window.prefix_len} given), {window.new_frames} new frames, {size['steps']} steps, on {device}"
    )
    ceiling_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ceiling = matmul_ceiling(device, ceiling_dtype, 8192 if device.type == "cuda" else 1024)
    log(f"matrix-multiply ceiling ({str(ceiling_dtype)[6:]}): {ceiling / 1e12:.1f} TFLOP/s")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    def sampler(model: MaskGit, autocast: bool):
        text = window.text.to(model.token_emb.weight.dtype)
        return lambda: sample_tokens(
            model,
            length=window.length,
            context=text,
            context_mask=window.text_mask,
            settings=settings,
            prefix=window.prefix,
            frame_tokens=window.frame_tokens,
            generator=torch.Generator(device).manual_seed(0),
            autocast=autocast,
        )

    with torch.no_grad():
        reference = step_logits(fp32, window.probe, window.positions, window.text, window.text_mask, 3.0).float()
    with FlopCounterMode(display=False) as counter:  # every variant does the same arithmetic
        sampler(fp32, False)()
    flops = counter.get_total_flops()
    log(f"FLOPs of one window: {flops / 1e12:.2f} T")
    results = {}
    for name in variants:
        try:
            model, autocast = variant_model(name, fp32)
            sample = sampler(model, autocast)
            text = window.text.to(model.token_emb.weight.dtype)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = step_logits(model, window.probe, window.positions, text, window.text_mask, 3.0).float()
            error = ((logits - reference).abs().max() / reference.abs().max()).item()
            warmup = timed(sample, device)  # compiles, for the compiled variant
            times = [timed(sample, device) for _ in range(repeats)]
            results[name] = dict(
                times=times, median=statistics.median(times), warmup=warmup, flops=flops, logits_error=error
            )
            log(
                f"  {name}: {results[name]['median']:.3f} s a window (runs {' '.join(f'{t:.3f}' for t in times)}; "
                f"warm-up {warmup:.1f} s), {results[name]['flops'] / results[name]['median'] / 1e12:.1f} TFLOP/s, "
                f"logits within {error:.1e} of fp32"
            )
            del model
        except Exception as error:  # noqa: BLE001 - one variant failing must not lose the others' figures
            results[name] = dict(error=f"{type(error).__name__}: {error}")
            log(f"  {name}: failed: {results[name]['error']}")
        if device.type == "cuda":
            torch.cuda.empty_cache()

    decode = None
    cvivit = build_cvivit(size, window)
    if isinstance(cvivit, str):
        decode = dict(skipped=cvivit)
    else:
        ids = torch.randint(0, size["codebook"], (1, window.latent, window.grid, window.grid), device=device)
        cvivit.decode(ids)
        times = [timed(lambda: cvivit.decode(ids), device) for _ in range(max(repeats, 3))]
        decode = dict(times=times, median=statistics.median(times))
    log("  C-ViViT decode of the window (fp32): " + (decode.get("skipped") or f"{decode['median']:.3f} s"))
    return dict(
        size=size_name,
        config=size,
        device=str(device),
        device_name=_device_name(device),
        parameters=params,
        window_tokens=window.length,
        given_tokens=window.prefix_len,
        new_frames=window.new_frames,
        ceiling=ceiling,
        ceiling_dtype=str(ceiling_dtype),
        variants=results,
        decode=decode,
        torch=torch.__version__,
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=" ".join(["python bench/gpu.py"] + sys.argv[1:]),
    )


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def report(data: dict) -> str:
    decode = data["decode"].get("median", 0.0)
    lines = [
        f"# Sampling at the {data['size']} size on {data['device_name']}",
        "",
        f"- date: {data['date']}; command: `{data['command']}`; torch {data['torch']}",
        f"- MaskGit {data['parameters'] / 1e9:.2f} B parameters; window of {data['window_tokens']} tokens, "
        f"{data['given_tokens']} given (5 context frames), {data['new_frames']} new frames; "
        f"{data['config']['steps']} steps, guidance 3",
        f"- matrix-multiply ceiling ({data['ceiling_dtype'][6:]}): {data['ceiling'] / 1e12:.1f} TFLOP/s",
        "- C-ViViT decode of a window (fp32): " + (data["decode"].get("skipped") or f"{decode:.3f} s"),
        "",
        "| sampler | s a window | runs | TFLOP | TFLOP/s | of the ceiling | logits vs fp32 | s per new frame |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in data["variants"].items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:200]} | | | | | | |")
            continue
        rate = r["flops"] / r["median"]
        lines.append(
            f"| {name} | {r['median']:.3f} | {' '.join(f'{t:.3f}' for t in r['times'])} | "
            f"{r['flops'] / 1e12:.3g} | {rate / 1e12:.3g} | {100 * rate / data['ceiling']:.0f}% | "
            f"{r['logits_error']:.1e} | **{(r['median'] + decode) / data['new_frames']:.3f}** |"
        )
    lines += [
        "",
        "Seconds per new frame = (sampling + decoding a window) / new frames. Target at the paper's size: "
        "0.12 s or less (the paper: about 0.24 s for its 1.8 B model).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per variant (after a warm-up)")
    parser.add_argument("--device", default=None, help="default: cuda when there is one, else cpu")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or args.repeats < 1:
        parser.error(f"unknown variants {unknown}" if unknown else "--repeats must be >= 1")
    data = measure(args.size, variants, args.repeats, device, lambda message: print(message, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(data, indent=1))
    text = report(data)
    (args.out / "gpu.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
