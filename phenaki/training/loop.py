"""The training loop every stage shares: AdamW with warm-up and a cosine schedule, gradient accumulation and
clipping through accelerate, an EMA of the weights, resumable checkpoints (safetensors + JSON, no pickle, so a
checkpoint from anywhere is safe to resume), and `--max-minutes` (the step count fitted to a time budget)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from itertools import islice
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..serialization import load_weights, save_tensors, save_weights
from .data import collate


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


def train_loop(
    args, accelerator: Accelerator, model: nn.Module, params, loss_fn, sample_fn, dataset
) -> tuple[EMA, float]:
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
    record = _ProcessRecord(args, accelerator)
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = args.lr * _lr_factor(step, warmup, args.steps)
        for batch in islice(batches, args.grad_accum):
            with accelerator.accumulate(model):
                loss, logs = loss_fn(model, batch)
                record.batch(step, batch, logs)
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
    record.save(accelerator.unwrap_model(model), ema)
    return ema, time.monotonic() - started


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and bytes): equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def video_digest(video: torch.Tensor) -> str:
    """SHA-256 of a batch of videos as the data loader gave it (dtype and bytes)."""
    video = video.detach().cpu().contiguous()
    return hashlib.sha256(str(video.dtype).encode() + video.view(torch.uint8).numpy().tobytes()).hexdigest()


class _ProcessRecord:
    """`--record-processes`: each process writes `out/processes/<rank>.json` at the end of its run: per micro-batch
    its step, loss and a digest of its videos, and the digests of its final weights and EMA. To check a
    multi-process run (tests/test_train.py): the processes end with the same weights and each saw its own data."""

    def __init__(self, args, accelerator: Accelerator):
        self.on = bool(getattr(args, "record_processes", False))
        self.path = Path(args.out) / "processes" / f"{accelerator.process_index}.json"
        self.rank, self.batches = accelerator.process_index, []

    def batch(self, step: int, batch: dict, logs: dict) -> None:
        if self.on:
            self.batches.append(dict(step=step, loss=float(logs["loss"]), video=video_digest(batch["video"])))

    def save(self, model: nn.Module, ema: EMA) -> None:
        if self.on:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            record = dict(
                rank=self.rank, batches=self.batches, weights=state_digest(model), ema=state_digest(ema.model)
            )
            self.path.write_text(json.dumps(record))


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
