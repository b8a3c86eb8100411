"""Trainers, on Hugging Face accelerate: the same command runs on a CPU, a GPU, or many with `accelerate launch`.

    phenaki train tokenizer   --preset shapes --steps 6000 --out runs/tokenizer
    phenaki train transformer --tokenizer runs/tokenizer/final --steps 8000 --out runs/phenaki
    phenaki train decoder     --model runs/phenaki/final --steps 2000 --out runs/decoder   # optional
    accelerate launch -m phenaki train transformer ...                    # several GPUs or machines

Stage 1 trains C-ViViT; stage 2 trains MaskGit (+ critic, + the byte text encoder) on the frozen tokenizer, or,
with `--model` instead of `--tokenizer`, trains a finished model's transformers further (`--local-mixers`: first
add MaskGit's local mixers); stage 3 fine-tunes the finished model's tokenizer decoder with its codes frozen, so
that stage 2 stays valid.
Each run folder holds `checkpoint/` (weights, EMA, optimiser and step, all safetensors + JSON: resumable by
running the same command again), `samples/` (periodic GIFs) and `final/` (EMA weights, loadable).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from einops import rearrange
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..machine import device_name
from ..media import to_uint8_frames, write_gif
from ..models.cvivit import CViViT
from ..pipeline import Phenaki
from ..serialization import (
    TRAINING_RECORD_NAME,
    WEIGHTS_NAME,
    load_weights,
    read_config,
    read_training_record,
    save_tensors,
    save_weights,
    write_config,
)
from .data import VideoFolder, WorldClips, WorldClips2, as_float_video, collate
from .presets import preset


class EMA:
    """Exponential moving average of a model's floating-point state (parameters and buffers).

    Not torch's `AveragedModel` (nor ema-pytorch): its state dict prefixes every key with `module.` and adds an
    `n_averaged` counter, so the averaged weights would not load into the model as they are, and our decay warms
    up with the step count ((1 + step) / (10 + step)), which its fixed-decay EMA function does not."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm up: early averages follow the model
        for ema, live in zip(self.model.state_dict().values(), model.state_dict().values()):
            if ema.dtype.is_floating_point:
                ema.lerp_(live.detach(), 1 - decay)
            else:
                ema.copy_(live)


# ---- checkpoints: no pickle, so a checkpoint from anywhere is safe to resume -----------------------------------


def save_checkpoint(
    folder: Path, model: nn.Module, ema: EMA, optimizer, step: int, processes: int = 1, elapsed_s: float = 0.0
) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_weights(model, tmp / "model.safetensors")
    save_weights(ema.model, tmp / "ema.safetensors")
    state = optimizer.state_dict()
    save_tensors(
        {f"{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}, tmp / "optimizer.safetensors"
    )
    meta = dict(step=step, param_groups=state["param_groups"], processes=processes, elapsed_s=elapsed_s)
    (tmp / "trainer.json").write_text(json.dumps(meta))
    if folder.exists():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    tmp.rename(folder)  # a run killed mid-save keeps the previous checkpoint


def load_checkpoint(folder: Path, model: nn.Module, ema: EMA, optimizer) -> tuple[int, float]:
    """Restores a checkpoint; returns (step, seconds of training so far)."""
    load_weights(model, folder / "model.safetensors")
    load_weights(ema.model, folder / "ema.safetensors")
    meta = json.loads((folder / "trainer.json").read_text())
    state: dict = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(dict(state=state, param_groups=meta["param_groups"]))
    return meta["step"], meta.get("elapsed_s", 0.0)


# ---- the shared loop ------------------------------------------------------------------------------------------


def _dataset(args, num_frames: int, frame_size) -> torch.utils.data.Dataset:
    if args.videos:
        return VideoFolder(args.videos, num_frames, frame_size)
    if args.world == "shapes2":
        if tuple(frame_size) != (64, 64):
            raise ValueError(f"shapes world 2 is 64x64; this model's frames are {tuple(frame_size)}")
        return WorldClips2(num_frames=num_frames, seed_offset=args.seed * 100_000_000)
    return WorldClips(num_frames=num_frames, seed_offset=args.seed * 10_000_000, frame_size=frame_size)


def _loop(args, accelerator: Accelerator, model: nn.Module, params, loss_fn, sample_fn, dataset) -> tuple[EMA, float]:
    """Optimises `loss_fn(model, batch)`; resumes from `out/checkpoint` if it exists. Returns the EMA and the
    seconds spent training, over all resumed runs."""
    out = Path(args.out)
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    ema = EMA(model, args.ema_decay)
    accelerator.print(
        f"training on {accelerator.num_processes} process(es), {accelerator.device}, "
        f"mixed precision {accelerator.mixed_precision}"
    )
    step, elapsed = 0, 0.0
    if (out / "checkpoint").exists():
        step, elapsed = load_checkpoint(out / "checkpoint", model, ema, optimizer)
        accelerator.print(f"resumed from {out / 'checkpoint'} at step {step}")
    warmup = max(1, min(500, args.steps // 10))
    per_step = args.batch_size * args.grad_accum * accelerator.num_processes
    sampler = ExampleStream(len(dataset), start=step * per_step, count=(args.steps - step) * per_step)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=args.workers,
        pin_memory=accelerator.device.type == "cuda",
        prefetch_factor=4 if args.workers else None,
        persistent_workers=args.workers > 0,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema.model.to(accelerator.device)  # made (and resumed) before prepare() moved the model
    batches = iter(loader)
    bar = tqdm(total=args.steps, initial=step, disable=not accelerator.is_main_process, dynamic_ncols=True)
    started = time.monotonic() - elapsed
    budget = _Budget(args, accelerator, step, started)
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = args.lr * _lr_factor(step, warmup, args.steps)
        for batch in islice(batches, args.grad_accum):
            with accelerator.accumulate(model):
                loss, logs = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        step += 1
        ema.update(accelerator.unwrap_model(model), step)
        if budget.fit(step):
            warmup, bar.total = max(1, min(500, args.steps // 10)), args.steps
            accelerator.print(f"{args.max_minutes} minutes fit {args.steps} steps")
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
        last = step == args.steps
        if accelerator.is_main_process and (step % args.save_every == 0 or last):
            save_checkpoint(
                out / "checkpoint",
                accelerator.unwrap_model(model),
                ema,
                optimizer,
                step,
                accelerator.num_processes,
                time.monotonic() - started,
            )
        if accelerator.is_main_process and args.sample_every and (step % args.sample_every == 0 or last):
            (out / "samples").mkdir(parents=True, exist_ok=True)
            sample_fn(ema.model, out / "samples" / f"step{step:07d}.gif")
        accelerator.wait_for_everyone()
    bar.close()
    return ema, time.monotonic() - started


def write_training_record(folder: Path, args, accelerator: Accelerator, elapsed_s: float, **extra) -> None:
    """`training.json` beside the final weights: the arguments, time and hardware, for the model card."""
    record = dict(
        stage=args.stage,
        args={k: v for k, v in vars(args).items() if k != "stage"},
        wall_time_s=round(elapsed_s, 1),
        processes=accelerator.num_processes,
        mixed_precision=accelerator.mixed_precision,
        device=device_name(accelerator.device),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    )
    (folder / TRAINING_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")


class _Budget:
    """`--max-minutes`: after the first 50 steps of this run, `args.steps` becomes the step count that the rest of
    the budget holds at the speed measured over the last 40 of them (the learning-rate schedule follows); with
    several processes, the fewest steps any of them measured, so that all stop together."""

    def __init__(self, args, accelerator: Accelerator, first_step: int, started: float):
        self.args, self.accelerator, self.first_step, self.started = args, accelerator, first_step, started
        self.mark = 0.0

    def fit(self, step: int) -> bool:
        if not self.args.max_minutes or step - self.first_step not in (10, 50):
            return False
        if step - self.first_step == 10:  # the first steps include start-up (workers, kernels)
            self.mark = time.monotonic()
            return False
        per_step = (time.monotonic() - self.mark) / 40
        left = self.args.max_minutes * 60 - (time.monotonic() - self.started)
        fits = torch.tensor([step + int(left / per_step)], device=self.accelerator.device)
        fits = int(self.accelerator.gather(fits).min())
        self.args.steps = max(step + 1, min(self.args.steps, fits))
        return True


class ExampleStream(Sampler):
    """Example indices start, start+1, ... (wrapping around a finite dataset): the same order on every run, so
    a resumed run continues with the examples it had not seen."""

    def __init__(self, size: int, start: int, count: int):
        self.size, self.start, self.count = size, start, count

    def __iter__(self):
        return ((self.start + k) % self.size for k in range(self.count))

    def __len__(self) -> int:
        return self.count


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _accelerator(args) -> Accelerator:
    precision = args.mixed_precision or ("bf16" if torch.cuda.is_available() else "no")
    return Accelerator(
        gradient_accumulation_steps=args.grad_accum,
        mixed_precision=precision,
        cpu=args.cpu,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


# ---- stage 1: the tokenizer -----------------------------------------------------------------------------------


def _train_cvivit(args, accelerator: Accelerator, cvivit: CViViT, frame_size, fps: int) -> tuple[EMA, float]:
    """The tokenizer's loss on clips of `--num-frames`, over whichever of its parameters require grad."""
    dataset = _dataset(args, args.num_frames, frame_size)
    probe = as_float_video(collate([dataset[i] for i in range(min(4, len(dataset)))])["video"])

    def loss_fn(model, batch):
        # `CViViT.loss` through `forward`: with several processes `model` is a DistributedDataParallel wrapper,
        # which has no `loss`, and only a call through its forward makes backward average the gradients
        loss, parts = model(as_float_video(batch["video"]), return_loss_breakdown=True)
        return loss, dict(loss=loss.item(), recon=parts.reconstruction.item(), usage=parts.codebook_usage)

    def sample_fn(ema_model, path):
        with torch.no_grad():
            recon = ema_model.reconstruct(probe.to(accelerator.device)).clamp(0, 1)  # EMA: never wrapped
        both = torch.cat((probe.to(recon.device), recon), dim=-1)  # original | reconstruction
        write_gif(path, to_uint8_frames(rearrange(both, "b c f h w -> c f h (b w)")), fps)

    params = [p for p in cvivit.parameters() if p.requires_grad]
    return _loop(args, accelerator, cvivit, params, loss_fn, sample_fn, dataset)


def train_tokenizer(args) -> Path:
    accelerator = _accelerator(args)
    set_seed(args.seed)
    config = preset(args.preset)
    frame_size, fps = config["frame_size"], config["fps"]
    ema, elapsed = _train_cvivit(args, accelerator, CViViT(**config["cvivit"]), frame_size, fps)
    final = Path(args.out) / "final"
    if accelerator.is_main_process:
        final.mkdir(parents=True, exist_ok=True)
        save_weights(ema.model, final / WEIGHTS_NAME)
        write_config(dict(cvivit=ema.model.config, frame_size=frame_size, fps=fps, tokenizer_only=True), final)
        write_training_record(final, args, accelerator, elapsed)
    accelerator.wait_for_everyone()
    return final


def load_tokenizer(folder: str | Path) -> CViViT:
    """The frozen C-ViViT of a tokenizer run's `final/` folder (or of a whole model's folder)."""
    cvivit = CViViT.from_config(read_config(folder, tokenizer_only=True)["cvivit"])
    load_weights(cvivit, Path(folder) / WEIGHTS_NAME)
    return cvivit.eval().requires_grad_(False)


# ---- stage 2: MaskGit, the critic and the text encoder --------------------------------------------------------


def train_transformer(args) -> Path:
    """A fresh MaskGit (+ critic, + text encoder) on the tokenizer of `--tokenizer`, or, with `--model`, a finished
    model's transformers trained further (its tokenizer unchanged); `--local-mixers` first gives MaskGit
    `LocalMixer`s (started at zero, so a fine-tune starts from the model's own outputs)."""
    accelerator = _accelerator(args)
    set_seed(args.seed)
    if args.model:
        model = Phenaki.from_pretrained(args.model).train()
    else:
        config = preset(args.preset)
        config.update(cvivit=read_config(args.tokenizer, tokenizer_only=True)["cvivit"])
        model = Phenaki.from_config(config)
        model.cvivit.load_state_dict(load_tokenizer(args.tokenizer).state_dict())
    if args.local_mixers:
        model.maskgit.add_local_mixers()
    model.cvivit.eval().requires_grad_(False)
    dataset = _dataset(args, model.window_frames, model.frame_size)
    prompts = [dataset[i]["caption"] for i in range(2)]

    def loss_fn(model, batch):
        loss, parts = model(
            as_float_video(batch["video"]),
            texts=batch["caption"],
            prime_latent_frames=batch["prime"],
            return_loss_breakdown=True,
        )
        return loss, dict(loss=loss.item(), **parts)

    def sample_fn(ema_model, path):
        video = ema_model.sample(texts=prompts, num_frames=model.window_frames, seed=0)
        write_gif(path, to_uint8_frames(rearrange(video, "b c f h w -> c f h (b w)")), model.fps)

    params = [p for p in model.parameters() if p.requires_grad]
    ema, elapsed = _loop(args, accelerator, model, params, loss_fn, sample_fn, dataset)
    final = Path(args.out) / "final"
    if accelerator.is_main_process:
        ema.model.save_pretrained(final)
        source = "model" if args.model else "tokenizer"  # the record of what this run started from
        write_training_record(
            final, args, accelerator, elapsed, **{source: read_training_record(getattr(args, source))}
        )
    accelerator.wait_for_everyone()
    return final


# ---- stage 3 (optional): the tokenizer's decoder, codes frozen ---------------------------------------------------


def train_decoder(args) -> Path:
    """Fine-tunes the decoder of a finished model (`CViViT.freeze_codes`): the same video gives the same ids, so
    MaskGit, the critic and the text encoder are saved unchanged beside the sharper decoder."""
    accelerator = _accelerator(args)
    set_seed(args.seed)
    model = Phenaki.from_pretrained(args.model)
    if args.pixel_refiner_dim is not None:  # 0 or less: add_pixel_refiner says what is wrong
        model.cvivit.add_pixel_refiner(args.pixel_refiner_dim)
    ema, elapsed = _train_cvivit(args, accelerator, model.cvivit.freeze_codes(), model.frame_size, model.fps)
    final = Path(args.out) / "final"
    if accelerator.is_main_process:
        model.cvivit.load_state_dict(ema.model.state_dict())
        model.save_pretrained(final)
        write_training_record(final, args, accelerator, elapsed, model=read_training_record(args.model))
    accelerator.wait_for_everyone()
    return final


STAGES = dict(tokenizer=train_tokenizer, transformer=train_transformer, decoder=train_decoder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phenaki train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--preset", default="shapes", help="model size (phenaki/presets.py)")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--tokenizer", help="transformer stage: the tokenizer run's final/ folder")
    parser.add_argument("--videos", help="a folder with captions.jsonl instead of the shapes world")
    parser.add_argument(
        "--world",
        choices=["shapes", "shapes2"],
        default="shapes",
        help="the synthetic world to train on: shapes (one object) or shapes2 (one or two objects, "
        "two sizes, growing and shrinking)",
    )
    parser.add_argument(
        "--model",
        help="decoder stage, or the transformer stage to train further: a finished "
        "model folder (a transformer run's final/)",
    )
    parser.add_argument(
        "--local-mixers",
        action="store_true",
        help="transformer stage: give MaskGit local mixers first (TokenTransformer.add_local_mixers)",
    )
    parser.add_argument(
        "--pixel-refiner-dim",
        type=int,
        help="decoder stage: first add a pixel refiner of this width (CViViT.add_pixel_refiner)",
    )
    parser.add_argument("--num-frames", type=int, default=17, help="tokenizer and decoder stages: frames per clip")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="fit the run to this many minutes: after 50 steps, --steps becomes what the rest holds",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--sample-every", type=int, default=500, help="0 = never")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], help="default: bf16 on a GPU")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stage == "transformer" and bool(args.tokenizer) == bool(args.model):
        parser.error(
            "the transformer stage needs --tokenizer (a trained tokenizer's final/ folder) or --model (a "
            "finished model to train further), not both"
        )
    if args.local_mixers and args.stage != "transformer":
        parser.error("--local-mixers is for the transformer stage")
    if args.stage == "decoder" and not args.model:
        parser.error("the decoder stage needs --model (a finished model folder, e.g. runs/phenaki/final)")
    final = STAGES[args.stage](args)
    if int(os.environ.get("RANK", "0")) == 0:  # one line, not one per process
        print(f"saved {final}")


if __name__ == "__main__":
    main()
