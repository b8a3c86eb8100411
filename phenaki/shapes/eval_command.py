"""The `phenaki eval` command: measures a model on the world it was trained on (`eval.py` for the shapes world,
`eval2.py` for world 2), prints the table against its targets, writes eval.json and, with --card, the model card.

    phenaki eval weights                                   # the default model: table and weights/eval.json
    phenaki eval weights --precision fp32 --out weights/eval-fp32.json
    phenaki eval weights --card --compare weights/eval-fp32.json --card-notes scripts/default-model-notes.md
    phenaki eval weights-shapes2                           # world 2, from its training.json

Its own module because it imports both evals, and eval2 builds on eval.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from ..pipeline import Phenaki
from ..precision import PRECISIONS, precision, sampling_precision
from ..serialization import read_training_record
from . import eval2
from .card import write_card
from .eval import evaluate
from .targets import TARGETS, TARGETS2, report


def trained_world(folder: str) -> str:
    """The shapes world a model folder's transformer was trained on, from its training record (else shapes)."""
    record = read_training_record(folder) if Path(folder).is_dir() else None
    while record is not None and record.get("stage") != "transformer":
        record = record.get("model") or record.get("tokenizer")
    return (record or {}).get("args", {}).get("world") or "shapes"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="phenaki eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a model folder or Hub repo id")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--stories", type=int, default=20)
    parser.add_argument("--out", help="where to write the JSON results (default: <model>/eval.json if a folder)")
    parser.add_argument("--card", action="store_true", help="also write the folder's model card (README.md)")
    parser.add_argument("--card-notes", help="a Markdown file for the card's 'What to expect' section")
    parser.add_argument(
        "--world",
        choices=["shapes", "shapes2"],
        help="the world to measure on (eval.py or eval2.py); default: the one the model was trained on "
        "(its training.json), else shapes",
    )
    parser.add_argument("--held-out", type=int, default=50, help="shapes2: clips prompted with held-out pairs")
    parser.add_argument(
        "--precision", choices=PRECISIONS, help="sample in this precision (default: what this machine uses)"
    )
    parser.add_argument(
        "--compare", help="with --card: the eval JSON of the same model in another precision, shown beside"
    )
    args = parser.parse_args(argv)
    if args.card and not Path(args.model).is_dir():
        parser.error("--card writes into a model folder; give a folder, not a Hub repo id")
    for name in ("card_notes", "compare"):
        if getattr(args, name) and not Path(getattr(args, name)).is_file():
            parser.error(f"--{name.replace('_', '-')}: no file {getattr(args, name)}")
    model = Phenaki.from_pretrained(args.model)
    world = args.world or trained_world(args.model)
    try:
        compare = json.loads(Path(args.compare).read_text()) if args.compare else None
    except ValueError as error:
        parser.error(f"--compare {args.compare}: not JSON ({error})")
    targets = TARGETS2 if world == "shapes2" else TARGETS
    if compare is not None:
        missing = [f"{g}.{k}" for g, k, _ in targets if k not in compare.get(g, {})]
        missing += [] if "precision" in compare else ["precision (an eval.json of phenaki eval --precision)"]
        if missing:
            lacks = ", ".join(missing)
            parser.error(f"--compare {args.compare}: not the results of this world's eval; it lacks {lacks}")
    with precision(args.precision) if args.precision else contextlib.nullcontext():
        if world == "shapes2":
            results = eval2.evaluate(model, args.clips, args.samples, args.stories, args.held_out)
        else:
            results = evaluate(model, args.clips, args.samples, args.stories)
        results["precision"] = sampling_precision(model.device)
    print(report(results, targets, compare))
    out = Path(args.out) if args.out else Path(args.model) / "eval.json" if Path(args.model).is_dir() else None
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    if args.card:
        notes = Path(args.card_notes).read_text(encoding="utf-8") if args.card_notes else None
        print(f"wrote {write_card(args.model, model, results, notes, world, compare)}")


if __name__ == "__main__":
    main()
