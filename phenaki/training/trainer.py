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
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from einops import rearrange

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
    save_weights,
    write_config,
)
from ..shapes.vocabulary import world_vocabulary
from .data import VideoFolder, WorldClips, WorldClips2, as_float_video, collate
from .loop import EMA, train_loop
from .presets import preset

# ---- the shared loop ------------------------------------------------------------------------------------------


def _dataset(args, num_frames: int, frame_size) -> torch.utils.data.Dataset:
    if args.videos:
        return VideoFolder(args.videos, num_frames, frame_size)
    if args.world == "shapes2":
        if tuple(frame_size) != (64, 64):
            raise ValueError(f"shapes world 2 is 64x64; this model's frames are {tuple(frame_size)}")
        return WorldClips2(num_frames=num_frames, seed_offset=args.seed * 100_000_000)
    return WorldClips(num_frames=num_frames, seed_offset=args.seed * 10_000_000, frame_size=frame_size)


def training_vocabulary(args, earlier: dict | None = None) -> dict | None:
    """The words this run's captions can contain (recorded in the model's config, `phenaki/vocabulary.py`): the
    shapes world's, joined to those of the model trained further (`earlier`, from `--model`); None for a folder of
    videos (its captions are open language, and a pretrained text encoder may know words they lack) or when the
    model trained further has none recorded (what it saw is unknown)."""
    if args.videos or (args.model and earlier is None):
        return None
    vocabulary = {group: list(members) for group, members in (earlier or {}).items()}
    for group, members in world_vocabulary(getattr(args, "world", "shapes")).items():
        vocabulary[group] = list(dict.fromkeys([*vocabulary.get(group, []), *members]))
    return vocabulary


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


def training_precision(args, cuda: bool | None = None) -> str:
    """`--mixed-precision`, else bf16 on a GPU (`cuda`: whether one is used; default: whether one is present and
    `--cpu` is not given) and fp32 ("no") on a CPU, where bf16 autocast is asked for by name."""
    if args.mixed_precision:
        return args.mixed_precision
    cuda = torch.cuda.is_available() and not args.cpu if cuda is None else cuda
    return "bf16" if cuda else "no"


def _accelerator(args) -> Accelerator:
    return Accelerator(
        gradient_accumulation_steps=args.grad_accum,
        mixed_precision=training_precision(args),
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
    return train_loop(args, accelerator, cvivit, params, loss_fn, sample_fn, dataset)


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
        config, tokenizer = preset(args.preset), read_config(args.tokenizer, tokenizer_only=True)
        for key in ("frame_size", "fps"):  # MaskGit's token grid follows the preset's frames
            if key in tokenizer and tokenizer[key] != config[key]:
                raise ValueError(
                    f"the tokenizer {args.tokenizer} was trained with {key} {tokenizer[key]}, but --preset "
                    f"{args.preset} has {config[key]}: give the preset the tokenizer was trained with"
                )
        config.update(cvivit=tokenizer["cvivit"])
        model = Phenaki.from_config(config)
        model.cvivit.load_state_dict(load_tokenizer(args.tokenizer).state_dict())
    if args.local_mixers:
        model.maskgit.add_local_mixers()
    model.vocabulary = training_vocabulary(args, model.vocabulary)
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
    ema, elapsed = train_loop(args, accelerator, model, params, loss_fn, sample_fn, dataset)
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


def trained_worlds(record: dict | None) -> set[str]:
    """The worlds (or "videos") in a training record's chain of stages: the run's own and those of the model or
    tokenizer it started from; empty without a record. Records from before `--world` are world 1's."""
    if not record:
        return set()
    args = record.get("args", {})
    own = {"videos" if args.get("videos") else args.get("world") or "shapes"}
    return own.union(*(trained_worlds(record.get(source)) for source in ("model", "tokenizer")))


def held_out_conflict(args) -> str | None:
    """Why a world-2 run would break its held-out colour-shape pairs (kept out of all training, issue 24): it
    starts from a model or tokenizer whose record shows world-1 training (world 1 draws yellow triangles, cyan
    squares and magenta circles); None otherwise (what a folder of videos shows is not known)."""
    if args.world != "shapes2" or args.videos:
        return None
    for flag, source in (("--model", args.model), ("--tokenizer", args.tokenizer)):
        if "shapes" in trained_worlds(read_training_record(source) if source and Path(source).is_dir() else None):
            return (
                f"{flag} {source} was trained on shapes (world 1), which shows shapes world 2's held-out pairs: "
                "start a --world shapes2 run from a tokenizer or model trained on shapes2 only"
            )
    return None


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
    parser.add_argument(
        "--record-processes",
        action="store_true",
        help="each process writes out/processes/<rank>.json: its losses, digests of its batches and of its final "
        "weights (to check a multi-process run)",
    )
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
    conflict = held_out_conflict(args)
    if conflict:
        parser.error(conflict)
    try:
        final = STAGES[args.stage](args)
    except ValueError as error:  # what the inputs are (a folder, a preset, a world), said in one line
        parser.error(str(error))
    if int(os.environ.get("RANK", "0")) == 0:  # one line, not one per process
        print(f"saved {final}")


if __name__ == "__main__":
    main()
