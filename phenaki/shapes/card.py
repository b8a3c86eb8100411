"""The bundled model's card, written from what was measured and recorded, not typed by hand.

    phenaki eval weights --card     # evaluates, then writes weights/README.md

The figures come from `phenaki.shapes.eval` (held to `phenaki.shapes.targets`); the training table and the
commands that reproduce the model come from the `training.json` records the trainers leave beside their final
weights (copied into the model folder).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from ..model_card import write_model_card
from ..pipeline import Phenaki
from ..serialization import read_training_record
from ..training.data import WorldClips, WorldClips2
from .targets import DEFAULTS, TARGETS, TARGETS2, missed_targets, report


def train_command(record: dict) -> str:
    """The `phenaki train` command line of a training record (arguments left at their default
    are left out)."""
    from ..training.trainer import build_parser

    defaults = vars(build_parser().parse_args([record["stage"], "--out", "x"]))
    parts = ["phenaki train", record["stage"]]
    for name, value in record["args"].items():
        if name not in defaults or (value == defaults[name] and name != "out"):
            continue
        flag = "--" + name.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts)


STAGE_LABELS = dict(
    tokenizer="tokenizer (C-ViViT)",
    transformer="MaskGit + critic + text encoder (tokenizer frozen)",
    decoder="tokenizer decoder fine-tuned (codes frozen)",
)


def training_stages(record: dict) -> list[dict]:
    """The records of every stage that made a model, first to last: each holds the record of what it started
    from (a transformer run its tokenizer's or model's, a decoder run its model's)."""
    earlier = record.get("model") or record.get("tokenizer")
    return [*(training_stages(earlier) if earlier else []), record]


def _stage_label(record: dict) -> str:
    args = record["args"]
    refiner = args.get("pixel_refiner_dim")
    if record["stage"] == "decoder" and refiner:
        return f"tokenizer decoder fine-tuned with a new pixel refiner of width {refiner} (codes frozen)"
    if record["stage"] == "transformer" and args.get("model"):
        mixers = ", with new local mixers" if args.get("local_mixers") else ""
        return f"MaskGit + critic + text encoder trained further{mixers} (tokenizer frozen)"
    return STAGE_LABELS[record["stage"]]


def _stage_row(record: dict) -> str:
    args = record["args"]
    batch = args["batch_size"] * args["grad_accum"] * record["processes"]
    hardware = (
        f"{record['device']}; {record['processes']} process(es) x {record['torch_threads']} torch "
        f"thread(s); {record['mixed_precision']} mixed precision; torch {record['torch']}"
    )
    return (
        f"| {_stage_label(record)} | {args['steps']} | {batch} | {args['lr']:g}, cosine | "
        f"{record['wall_time_s'] / 60:.0f} min | {hardware} |"
    )


WORLDS = dict(  # what the card says of each shapes world
    shapes=dict(
        title="shapes world",
        data=WorldClips,
        targets=TARGETS,
        world="**shapes world** (`phenaki/shapes/world.py`): {w}x{h} frames at {fps} fps, one circle, square or "
        "triangle in one of 7 colours, moving left/right/up/down or still, captioned `a red circle moves left`, "
        "`the red circle moves up`, `a blue square stays still`.",
        example="a yellow square moves down",
    ),
    shapes2=dict(
        title="shapes world 2",
        data=WorldClips2,
        targets=TARGETS2,
        world="**shapes world 2** (`phenaki/shapes/world2.py`): {w}x{h} frames at {fps} fps, one or two objects "
        "(circle, square, triangle, diamond; small or big; 7 colours, never shared) that move left/right/up/down, "
        "stay still, grow or shrink, and stop before they meet; captioned `a big red circle moves left and a small "
        "blue square stays still`, later scenes `the red circle moves up and the blue square grows`. The "
        "colour-shape pairs yellow triangle, cyan square, magenta circle and white diamond are held out of "
        "training.",
        example="a big red circle moves left and a small blue square stays still",
    ),
)


def _data_line(model: Phenaki, world: str = "shapes") -> str:
    data = {k: p.default for k, p in inspect.signature(WORLDS[world]["data"]).parameters.items()}
    return (
        f"Data: shapes-world clips made on the fly from seeds ({data['paraphrase_prob']:.0%} of captions "
        f"paraphrased; {data['change_prob']:.0%} of clips change motion after {data['prime_frames']} frames, "
        "captioned in the story form, with those frames as a primed prefix). Text dropped for "
        f"{model.cond_drop_prob:.0%} of examples (classifier-free guidance); {model.continuation_prob:.0%} of "
        "the others keep a random prefix of latent frames unmasked (continuation). The saved weights are the "
        "EMA of the trained ones."
    )


def card_body(
    model: Phenaki,
    results: dict,
    record: dict | None,
    notes: str | None = None,
    world: str = "shapes",
    compare: dict | None = None,
) -> str:
    parameters = sum(p.numel() for p in model.parameters())
    cv = model.cvivit.config
    about = WORLDS[world]
    missed = missed_targets(results, about["targets"])
    status = (
        "It meets every target below."
        if not missed
        else f"**It misses {len(missed)} of {len(about['targets']) + 1} targets** "
        "(measured values below, targets unchanged): " + "; ".join(missed) + "."
    )
    lines = [
        f"# Phenaki, {about['title']} (the demo's default model)",
        "",
        f"A complete Phenaki (C-ViViT tokenizer, MaskGit, Token Critic, byte-level text encoder; "
        f"{parameters / 1e6:.1f} M parameters) trained from scratch on the synthetic "
        + about["world"].format(w=model.frame_size[0], h=model.frame_size[1], fps=model.fps),
        "",
        f"Tokenizer: patches {cv['patch_size']}x{cv['patch_size']}, {cv['temporal_patch_size']} frames per "
        f"tubelet after the first frame, quantizer {cv['quantizer']} with {cv['codebook_size']} codes"
        + (f", a per-pixel MLP head of width {cv['pixel_mlp_dim']}" if cv.get("pixel_mlp_dim") else "")
        + (
            f" and a pixel refiner of width {cv['pixel_refiner_dim']} (3x3 convolutions over each frame)"
            if cv.get("pixel_refiner_dim")
            else ""
        )
        + ".",
        "",
        status,
        *(["", "## What to expect", "", notes.strip()] if notes else []),
        "",
        "## Measured (held-out seeds, default sampling settings: "
        f"{DEFAULTS['steps']} steps, temperature {DEFAULTS['temperature']:g}, token temperature "
        f"{DEFAULTS['token_temperature']:g}, guidance {DEFAULTS['guidance_scale']:g}, no critic, "
        f"{DEFAULTS['refine_passes']} refinement pass{'es' * (DEFAULTS['refine_passes'] != 1)})",
        "",
        "Command: `phenaki eval weights --card` (`weights/eval.json` holds the raw figures)"
        + (
            f"; the {compare['precision']} column: the same seeds sampled in {compare['precision']} "
            f"(`phenaki eval weights --precision {compare['precision']} --out "
            f"weights/eval-{compare['precision']}.json`, "
            "then `--card --compare` it)."
            if compare
            else "."
        ),
        "",
        report(results, about["targets"], compare),
        "",
        f"Counts: {results['tokenizer']['clips']} tokenizer clips, {results['text_control']['samples']} sampled "
        f"clips"
        + (f", {results['held_out']['samples']} with held-out pairs" if "held_out" in results else "")
        + f", {results['stories']['stories']} stories of 3 segments. Speed: median of {results['speed']['runs']} "
        f"runs, {results['speed']['threads']} torch threads, on {results['speed']['machine']}.",
    ]
    if record is not None:
        stages = training_stages(record)
        lines += [
            "",
            "## Training",
            "",
            "| stage | steps | batch | lr | wall time | hardware |",
            "| --- | --- | --- | --- | --- | --- |",
            *[_stage_row(r) for r in stages],
            "",
            _data_line(model, world),
            "",
            "## Reproduce",
            "",
            "```bash",
            *[train_command(r) for r in stages],
            f"cp {stages[-1]['args']['out']}/final/* weights/",
            "phenaki eval weights --card --card-notes scripts/default-model-notes.md",
            "```",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from phenaki import Phenaki",
        'model = Phenaki.from_pretrained("weights")',
        f'video = model.sample(texts="{about["example"]}", num_frames=17, seed=0)  # (1, 3, 17, H, W)',
        "```",
    ]
    return "\n".join(lines)


def write_card(
    folder: str | Path,
    model: Phenaki,
    results: dict,
    notes: str | None = None,
    world: str = "shapes",
    compare: dict | None = None,
) -> Path:
    """`notes`: what the figures don't show (how samples look, known failure modes), in Markdown; `compare`: the
    results in another precision, shown beside."""
    record = read_training_record(folder)
    body = card_body(model, results, record, notes, world, compare)
    return write_model_card(Path(folder), model.config, body)
