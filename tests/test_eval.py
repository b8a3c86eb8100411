"""The evaluation script, on a small random model of the shapes world's frame size."""

import json

import numpy as np
import pytest

from phenaki import eval as evaluation
from phenaki import world




def test_psnr():
    frames = world.random_clip(0)[0]
    assert evaluation._psnr(frames, frames) > 100
    noisy = np.clip(frames.astype(int) + 8, 0, 255).astype(np.uint8)
    assert 28 < evaluation._psnr(frames, noisy) < 31


def test_evaluate_on_a_random_model(tmp_path):
    from phenaki.presets import preset
    from phenaki import Phenaki

    config = preset("tiny")
    config.update(frame_size=[64, 64])
    for part in ("maskgit", "critic"):
        config[part]["max_seq_len"] = 9 * 64
    model = Phenaki.from_config(config).eval()
    results = evaluation.evaluate(model, clips=3, samples=2, stories=1)
    assert results["tokenizer"]["psnr_db"] < 25  # an untrained tokenizer is far from the target
    for group, key, _ in evaluation.TARGETS:
        assert 0 <= results[group][key] <= (100 if key == "psnr_db" else 1)
    assert results["speed"]["seconds_per_17_frame_clip"] > 0
    table = evaluation.report(results)
    assert "| tokenizer psnr_db |" in table and "| no |" in table

    model.save_pretrained(tmp_path / "m")
    evaluation.main([str(tmp_path / "m"), "--clips", "2", "--samples", "1", "--stories", "1"])
    assert json.loads((tmp_path / "m" / "eval.json").read_text())["text_control"]["samples"] == 1


def test_evaluate_refuses_models_of_another_world(tiny_model):
    with pytest.raises(ValueError, match="need a shapes-world model"):
        evaluation.evaluate(tiny_model, clips=1, samples=1, stories=1)
