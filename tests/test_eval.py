"""The evaluation script, on a small random model of the shapes world's frame size."""

import json
import os

import numpy as np
import pytest
import torch

from phenaki.media import psnr
from phenaki.shapes import eval as evaluation
from phenaki.shapes import targets, world


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
    evaluation.main([str(tmp_path / "m"), "--clips", "2", "--samples", "1", "--stories", "1"])
    assert json.loads((tmp_path / "m" / "eval.json").read_text())["text_control"]["samples"] == 1


def test_model_card_from_measures_and_training_records(tmp_path, tiny_model):
    from accelerate import Accelerator
    from huggingface_hub import ModelCard

    from phenaki.shapes.card import card_body, train_command
    from phenaki.shapes.targets import missed_targets
    from phenaki.training.trainer import build_parser, write_training_record

    tokenizer_args = build_parser().parse_args(["tokenizer", "--out", "runs/tok", "--steps", "7", "--lr", "0.002"])
    args = build_parser().parse_args(["transformer", "--out", "runs/p", "--tokenizer", "runs/tok/final",
                                      "--steps", "9", "--grad-accum", "2", "--cpu"])
    write_training_record(tmp_path, tokenizer_args, Accelerator(cpu=True), 120.0)
    tokenizer_record = json.loads((tmp_path / "training.json").read_text())
    write_training_record(tmp_path, args, Accelerator(cpu=True), 600.0, tokenizer=tokenizer_record)
    record = json.loads((tmp_path / "training.json").read_text())
    decoder_args = build_parser().parse_args(["decoder", "--out", "runs/dec", "--model", "runs/p/final",
                                              "--steps", "5", "--lr", "0.0001"])
    write_training_record(tmp_path, decoder_args, Accelerator(cpu=True), 60.0, model=record)
    decoder_record = json.loads((tmp_path / "training.json").read_text())
    refiner_args = build_parser().parse_args(["decoder", "--out", "runs/ref", "--model", "runs/dec/final",
                                              "--pixel-refiner-dim", "32", "--steps", "4"])
    write_training_record(tmp_path, refiner_args, Accelerator(cpu=True), 60.0, model=decoder_record)
    refiner_record = json.loads((tmp_path / "training.json").read_text())
    further_args = build_parser().parse_args(["transformer", "--out", "runs/mix", "--model", "runs/ref/final",
                                              "--local-mixers", "--steps", "3"])
    write_training_record(tmp_path, further_args, Accelerator(cpu=True), 60.0, model=refiner_record)
    further_record = json.loads((tmp_path / "training.json").read_text())

    # the reproduce commands parse back to the very arguments that were recorded
    for stage_args, stage_record in ((tokenizer_args, tokenizer_record), (args, record),
                                     (decoder_args, decoder_record), (refiner_args, refiner_record),
                                     (further_args, further_record)):
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
        "| tokenizer (C-ViViT)", "| MaskGit + critic + text encoder (tokenizer frozen)",
        "| tokenizer decoder fine-tuned (codes frozen)"]
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
        "| MaskGit + critic + text encoder trained further, with new local mixers (tokenizer frozen) | 3 |")
    assert "phenaki train transformer --out runs/mix --model runs/ref/final --local-mixers" in body
    assert "cp runs/mix/final/* weights/" in body

    model = random_shapes_model()
    model.save_pretrained(tmp_path)
    (tmp_path / "notes.md").write_text("Objects come out in fragments.")
    evaluation.main([str(tmp_path), "--clips", "2", "--samples", "1", "--stories", "1", "--card",
                     "--card-notes", str(tmp_path / "notes.md")])
    card = ModelCard.load(tmp_path / "README.md")
    assert "## What to expect\n\nObjects come out in fragments." in card.text
    assert card.data.pipeline_tag == "text-to-video" and "## Reproduce" in card.text
    assert "phenaki train transformer --out runs/p --tokenizer runs/tok/final" in card.text
    with pytest.raises(SystemExit):
        evaluation.main(["some-user/some-repo", "--card"])  # a card is written into a folder only


def test_evaluate_refuses_models_of_another_world(tiny_model):
    with pytest.raises(ValueError, match="need a shapes-world model"):
        evaluation.evaluate(tiny_model, clips=1, samples=1, stories=1)
