"""The shapes-world-2 eval (phenaki/shapes/eval2.py): against the world's ground truth (tests/reference_model.py),
whose scores are known, the same with every colour swapped, and on a small random model."""

import json
import math

import numpy as np
import pytest
from reference_model import GroundTruth2
from test_eval import random_shapes_model

from phenaki.shapes import eval2, eval_command, targets
from phenaki.shapes.card import card_body
from phenaki.shapes.eval import HELD_OUT
from phenaki.shapes.world2 import COLOURS
from phenaki.shapes.world2_data import random_scene

SWAPPED = dict(zip(COLOURS, [*list(COLOURS)[1:], list(COLOURS)[0]]))  # a cycle: two objects stay distinct


@pytest.fixture(scope="module")
def truth():
    return GroundTruth2()


def test_the_ground_truth_scores_full_marks(truth):
    control = eval2.text_control_metrics(truth, samples=20)
    assert control["two_object_samples"] > 0
    for key in ("colour", "shape", "size", "motion", "count", "two_objects_right", "first_frame"):
        assert control[key] == 1.0, key
    assert eval2.held_out_metrics(truth, samples=10)["colour_and_shape"] == 1.0
    stories = eval2.story_metrics(truth, stories=3)
    assert stories["object_kept"] == 1.0 and stories["motion_followed"] == 1.0
    tokenizer = eval2.tokenizer_metrics(truth, clips=4)
    assert tokenizer["psnr_db"] > 100 and tokenizer["describe_agreement"] == 1.0


def test_swapped_colours_score_colours_wrong_and_the_count_right():
    control = eval2.text_control_metrics(GroundTruth2(SWAPPED), samples=10)
    # a prompted object pairs with a drawn one of its colour first: right only where the other object's colour
    # was swapped into its own
    scenes = [random_scene(np.random.default_rng((HELD_OUT, i))) for i in range(10)]
    expected = [any(SWAPPED[o.colour] == t.colour for o in scene if o is not t) for scene in scenes for t in scene]
    assert control["colour"] == np.mean(expected) < 0.5
    assert control["first_frame"] == 0.0 and control["two_objects_right"] == 0.0
    assert control["count"] == 1.0  # (shapes and motions are read from partners paired by colour: not checked)
    assert eval2.held_out_metrics(GroundTruth2(SWAPPED), samples=5)["colour_and_shape"] == 0.0


def test_the_world_of_a_model_comes_from_its_training_record():
    assert eval_command.trained_world("weights") == "shapes"
    assert eval_command.trained_world("weights-shapes2") == "shapes2"
    assert eval_command.trained_world("tests") == "shapes"  # no record


def test_evaluate_a_random_model_report_every_target_and_write_the_card():
    model = random_shapes_model()
    results = eval2.evaluate(model, clips=2, samples=2, stories=1, held_out=2)
    for group, key, _ in targets.TARGETS2:
        value = results[group][key]
        assert math.isnan(value) or 0 <= value <= (100 if key == "psnr_db" else 1), (group, key)
    table = targets.report(results, targets.TARGETS2)
    assert "| held_out colour_and_shape |" in table and "| no |" in table
    card = card_body(model, results, None, world="shapes2")
    assert "shapes world 2" in card and "held-out pairs" in card and "two_objects_right" in card
    assert f"of {len(targets.TARGETS2) + 1} targets" in card


def test_the_card_sets_two_precisions_side_by_side(tmp_path):
    model = random_shapes_model()
    model.save_pretrained(tmp_path / "m")
    eval_command.main([str(tmp_path / "m"), "--clips", "1", "--samples", "1", "--stories", "1", "--precision", "fp32"])
    fp32 = json.loads((tmp_path / "m" / "eval.json").read_text())
    assert fp32["precision"] == "fp32"
    (tmp_path / "fp32.json").write_text(json.dumps(fp32))
    bf16 = dict(fp32, precision="bf16", text_control=dict(fp32["text_control"], colour=0.25))
    table = targets.report(bf16, targets.TARGETS, fp32)
    assert table.splitlines()[0] == "| measure | value (bf16) | fp32 | target | met |"
    row = next(r for r in table.splitlines() if r.startswith("| text_control colour"))
    assert row == f"| text_control colour | 0.250 | {fp32['text_control']['colour']:.3f} | >= 0.95 | no |"
    card = card_body(model, bf16, None, compare=fp32)
    assert "the fp32 column: the same seeds sampled in fp32" in card and row in card


def test_compare_must_be_results_of_the_same_world(tmp_path, capsys):
    random_shapes_model().save_pretrained(tmp_path / "m")
    (tmp_path / "world1.json").write_text(json.dumps({"tokenizer": {"psnr_db": 30.0}}))
    (tmp_path / "broken.json").write_text("{")
    for name, message in [("world1.json", "it lacks tokenizer.describe_agreement"), ("broken.json", "not JSON")]:
        with pytest.raises(SystemExit):
            eval_command.main([str(tmp_path / "m"), "--world", "shapes2", "--compare", str(tmp_path / name)])
        assert message in capsys.readouterr().err
