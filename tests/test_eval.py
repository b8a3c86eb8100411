"""The evaluation script: on a small random model of the shapes world's frame size, and against references (the
world's ground truth rendered by tests/reference_model.py, and the same with one known error) whose scores are
known in advance."""

import json
import os

import numpy as np
import pytest
import torch
from reference_model import WRONG_COLOUR, WRONG_MOTION, GroundTruth

from phenaki.media import psnr
from phenaki.shapes import eval as evaluation
from phenaki.shapes import eval_command, targets, world


def test_psnr():
    frames = world.random_clip(0)[0]
    assert psnr(frames, frames) > 100
    noisy = np.clip(frames.astype(int) + 8, 0, 255).astype(np.uint8)
    assert 28 < psnr(frames, noisy) < 31
    noisy[0] = frames[0]  # per frame: the first is exact, the others as noisy as before
    by_frame = psnr(frames, noisy, per_frame=True)
    assert by_frame.shape == (len(frames),) and by_frame[0] > 100 and (by_frame[1:] < 31).all()


def random_shapes_model():
    """The tiny preset at the shapes world's frame size, untrained."""
    from phenaki import Phenaki
    from phenaki.training.presets import preset

    config = preset("tiny")
    config.update(frame_size=[64, 64])
    for part in ("maskgit", "critic"):
        config[part]["max_seq_len"] = 9 * 64
    return Phenaki.from_config(config).eval()


def test_evaluate_on_a_random_model(tmp_path):
    model = random_shapes_model()
    results = evaluation.evaluate(model, clips=3, samples=2, stories=1)
    assert results["tokenizer"]["psnr_db"] < 25  # an untrained tokenizer is far from the target
    for group, key, _ in targets.TARGETS:
        assert 0 <= results[group][key] <= (100 if key == "psnr_db" else 1)
    assert results["speed"]["seconds_per_17_frame_clip"] > 0
    assert results["speed"]["machine"].endswith(f"{os.cpu_count()} cores")  # the CPU's name, for the card
    table = targets.report(results)
    assert "| tokenizer psnr_db |" in table and "| no |" in table

    model.save_pretrained(tmp_path / "m")
    eval_command.main([str(tmp_path / "m"), "--clips", "2", "--samples", "1", "--stories", "1"])
    assert json.loads((tmp_path / "m" / "eval.json").read_text())["text_control"]["samples"] == 1


def test_model_card_from_measures_and_training_records(tmp_path, tiny_model):
    from accelerate import Accelerator
    from huggingface_hub import ModelCard

    from phenaki.shapes.card import card_body, train_command
    from phenaki.shapes.targets import missed_targets
    from phenaki.training.trainer import build_parser, write_training_record

    tokenizer_args = build_parser().parse_args(["tokenizer", "--out", "runs/tok", "--steps", "7", "--lr", "0.002"])
    args = build_parser().parse_args(
        [
            "transformer",
            "--out",
            "runs/p",
            "--tokenizer",
            "runs/tok/final",
            "--steps",
            "9",
            "--grad-accum",
            "2",
            "--cpu",
        ]
    )
    write_training_record(tmp_path, tokenizer_args, Accelerator(cpu=True), 120.0)
    tokenizer_record = json.loads((tmp_path / "training.json").read_text())
    write_training_record(tmp_path, args, Accelerator(cpu=True), 600.0, tokenizer=tokenizer_record)
    record = json.loads((tmp_path / "training.json").read_text())
    decoder_args = build_parser().parse_args(
        ["decoder", "--out", "runs/dec", "--model", "runs/p/final", "--steps", "5", "--lr", "0.0001"]
    )
    write_training_record(tmp_path, decoder_args, Accelerator(cpu=True), 60.0, model=record)
    decoder_record = json.loads((tmp_path / "training.json").read_text())
    refiner_args = build_parser().parse_args(
        ["decoder", "--out", "runs/ref", "--model", "runs/dec/final", "--pixel-refiner-dim", "32", "--steps", "4"]
    )
    write_training_record(tmp_path, refiner_args, Accelerator(cpu=True), 60.0, model=decoder_record)
    refiner_record = json.loads((tmp_path / "training.json").read_text())
    further_args = build_parser().parse_args(
        ["transformer", "--out", "runs/mix", "--model", "runs/ref/final", "--local-mixers", "--steps", "3"]
    )
    write_training_record(tmp_path, further_args, Accelerator(cpu=True), 60.0, model=refiner_record)
    further_record = json.loads((tmp_path / "training.json").read_text())

    # the reproduce commands parse back to the very arguments that were recorded
    for stage_args, stage_record in (
        (tokenizer_args, tokenizer_record),
        (args, record),
        (decoder_args, decoder_record),
        (refiner_args, refiner_record),
        (further_args, further_record),
    ):
        command = train_command(stage_record)
        assert command.startswith(f"phenaki train {stage_args.stage} ")
        assert build_parser().parse_args(command.split()[2:]) == stage_args

    results = evaluation.evaluate(random_shapes_model(), clips=2, samples=1, stories=1)
    missed = missed_targets(results)
    assert any(m.startswith("tokenizer psnr_db") for m in missed)  # an untrained model misses targets
    body = card_body(tiny_model, results, record)
    assert f"misses {len(missed)} of 8 targets" in body
    assert targets.report(results) in body
    assert "| 9 | 16 | 0.0003, cosine | 10 min |" in body  # steps, batch 8 x accumulation 2, lr, time
    assert "| 7 | 8 | 0.002, cosine | 2 min |" in body
    assert "phenaki train tokenizer" not in body.split("phenaki train transformer")[1]
    assert "cp runs/p/final/* weights/" in body and "runs/dec" not in body

    # a decoder fine-tune adds a third row and command, after the stages it started from
    body = card_body(tiny_model, results, decoder_record)
    rows = [line for line in body.splitlines() if line.endswith(f"torch {torch.__version__} |")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| tokenizer (C-ViViT)",
        "| MaskGit + critic + text encoder (tokenizer frozen)",
        "| tokenizer decoder fine-tuned (codes frozen)",
    ]
    assert "| 5 | 8 | 0.0001, cosine | 1 min |" in rows[2]
    commands = [line for line in body.splitlines() if line.startswith("phenaki train")]
    assert [c.split()[2] for c in commands] == ["tokenizer", "transformer", "decoder"]
    assert "cp runs/dec/final/* weights/" in body

    # and a second decoder stage that adds a pixel refiner, a fourth, named for what it added
    body = card_body(tiny_model, results, refiner_record)
    rows = [line for line in body.splitlines() if line.endswith(f"torch {torch.__version__} |")]
    assert len(rows) == 4 and rows[2].startswith("| tokenizer decoder fine-tuned (codes frozen) |")
    assert rows[3].startswith("| tokenizer decoder fine-tuned with a new pixel refiner of width 32 (codes frozen) |")
    assert "phenaki train decoder --out runs/ref --model runs/dec/final --pixel-refiner-dim 32" in body
    assert "cp runs/ref/final/* weights/" in body

    # then the transformer trained further from that model, with new local mixers: a fifth
    body = card_body(tiny_model, results, further_record)
    rows = [line for line in body.splitlines() if line.endswith(f"torch {torch.__version__} |")]
    assert len(rows) == 5 and rows[4].startswith(
        "| MaskGit + critic + text encoder trained further, with new local mixers (tokenizer frozen) | 3 |"
    )
    assert "phenaki train transformer --out runs/mix --model runs/ref/final --local-mixers" in body
    assert "cp runs/mix/final/* weights/" in body

    model = random_shapes_model()
    model.save_pretrained(tmp_path)
    (tmp_path / "notes.md").write_text("Objects come out in fragments.")
    eval_command.main(
        [
            str(tmp_path),
            "--clips",
            "2",
            "--samples",
            "1",
            "--stories",
            "1",
            "--card",
            "--card-notes",
            str(tmp_path / "notes.md"),
        ]
    )
    card = ModelCard.load(tmp_path / "README.md")
    assert "## What to expect\n\nObjects come out in fragments." in card.text
    assert card.data.pipeline_tag == "text-to-video" and "## Reproduce" in card.text
    assert "phenaki train transformer --out runs/p --tokenizer runs/tok/final" in card.text
    with pytest.raises(SystemExit):
        eval_command.main(["some-user/some-repo", "--card"])  # a card is written into a folder only


def test_evaluate_refuses_models_of_another_world(tiny_model):
    with pytest.raises(ValueError, match="need a shapes-world model"):
        evaluation.evaluate(tiny_model, clips=1, samples=1, stories=1)


# ---- the eval against references: the shapes world's ground truth, and the ground truth with one known error ----


def test_the_ground_truth_scores_full_marks():
    results = evaluation.evaluate(GroundTruth(), clips=16, samples=20, stories=10)
    assert results["tokenizer"]["psnr_db"] > 100 and results["tokenizer"]["describe_agreement"] == 1.0
    assert results["text_control"] == dict(colour=1.0, shape=1.0, motion=1.0, samples=20)
    assert results["stories"] == dict(object_kept=1.0, motion_followed=1.0, stories=10)
    assert targets.missed_targets(results) == []


def test_a_wrong_colour_scores_zero_on_colour_and_nothing_else():
    results = evaluation.evaluate(
        GroundTruth(colours=WRONG_COLOUR, tokenizer_colours=WRONG_COLOUR), clips=16, samples=20, stories=10
    )
    assert results["tokenizer"]["describe_agreement"] == 0.0 and results["tokenizer"]["psnr_db"] < 20
    assert results["text_control"] == dict(colour=0.0, shape=1.0, motion=1.0, samples=20)
    # the same wrong colour in every scene: the object is kept
    assert results["stories"] == dict(object_kept=1.0, motion_followed=1.0, stories=10)
    assert {m.split(" ")[:2][1] for m in targets.missed_targets(results)} == {"describe_agreement", "psnr_db", "colour"}


def test_a_wrong_motion_scores_zero_on_motion():
    model = GroundTruth(motions=WRONG_MOTION)
    assert evaluation.text_control_metrics(model, samples=20) == dict(colour=1.0, shape=1.0, motion=0.0, samples=20)
    stories = evaluation.story_metrics(model, stories=10)
    assert stories["object_kept"] == 1.0 and stories["motion_followed"] < 0.5  # (a still object stuck at a border
    # reads as still, which a still prompt asks for: not every segment can go wrong)


def test_an_object_that_changes_at_each_scene_is_not_kept():
    changing = GroundTruth(new_colour_each_scene=True)
    assert evaluation.story_metrics(changing, stories=10) == dict(object_kept=0.0, motion_followed=1.0, stories=10)
    assert evaluation.story_scores(changing, STILL_RIGHT_STILL) == ([False, False], [True, True, True])


STILL_RIGHT_STILL = ["a red square stays still", "the red square moves right", "the red square stays still"]


@pytest.mark.parametrize(
    "switch, followed",
    [
        (0, [True, True, True]),  # the world's own timing: a segment's first frame is its motion's first step
        (-1, [False, True, True]),  # one frame early: the first still segment ends with a step right
        (-2, [False, True, True]),
        (1, [True, True, True]),  # one frame late: the step between two segments is read in neither
        (2, [True, True, False]),  # two frames late: the last still segment starts with a step right
    ],
)
def test_story_segments_are_read_where_the_timeline_puts_them(switch, followed):
    """A still -> right -> still story whose motion starts `switch` frames off the timeline's boundaries (from the
    left border: it never reaches the right one). One stray step of SPEED px inside a still segment is motion by the
    world's threshold, so the results pin each segment's first and last frame: a split one frame earlier would pass
    the stand-in that is one frame early, one frame later fail the exact one."""
    assert world.SPEED >= world.MOTION_THRESHOLD > world.SPEED / 2  # one step shows, half a step would not
    model = GroundTruth(switch=switch, start=(0, 25))
    kept, seen = evaluation.story_scores(model, STILL_RIGHT_STILL, seconds=2.0, seed=3)
    assert kept == [True, True] and seen == followed


def test_a_mistimed_switch_between_two_motions_counts_by_which_motion_dominates():
    """right -> up: each segment's motion is read from its first to its last frame, so a switch k frames early puts
    k steps up into the 15 steps of the segment told to move right, and reads as up once they outnumber the rest."""
    captions = ["a blue circle moves right", "the blue circle moves up"]
    for switch in (-1, -7):
        model = GroundTruth(switch=switch, start=(0, world.MAX_POS))  # room for every step: nothing is clamped
        assert evaluation.story_scores(model, captions) == ([True], [True, True])
    assert evaluation.story_scores(GroundTruth(switch=-8, start=(0, world.MAX_POS)), captions) == (
        [True],
        [False, True],
    )
