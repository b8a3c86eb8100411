"""What a model knows: its training captions' words (`phenaki/vocabulary.py`), computed from the shapes worlds'
grammars (`phenaki/shapes/vocabulary.py`), saved in its config, recorded by the trainer, and in the bundled models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_phenaki
from hub_server import TOKEN, HubServer, hub_environment

from phenaki import Phenaki
from phenaki.shapes import world2_captions, world2_data
from phenaki.shapes.vocabulary import main as write_main
from phenaki.shapes.vocabulary import world_vocabulary
from phenaki.training.data import WorldClips
from phenaki.training.trainer import build_parser, training_vocabulary
from phenaki.vocabulary import check_vocabulary, known_words, unseen_words, words

ROOT = Path(__file__).resolve().parents[1]
WORLD1 = world_vocabulary("shapes")


@pytest.mark.parametrize(
    "prompt, unseen",
    [
        ("a purple elephant dances", ["purple", "elephant", "dances"]),
        ("A red circle moves left.", []),
        ("  the BLUE square,  stays   still ", []),
        ("a square, green, heading up", []),
        ("two red circles move up", ["two", "circles", "move"]),
        ("un cercle rouge se déplace à gauche", ["un", "cercle", "rouge", "se", "déplace", "à", "gauche"]),
        ("purple purple red Purple elephant", ["purple", "elephant"]),  # order of appearance, each once
        ("2 red circles", ["2", "circles"]),  # digits are words
        ("the circle doesn't move-left", ["doesn't", "move"]),  # apostrophes inside a word, hyphens split
        ("", []),
    ],
)
def test_unseen_words_of_a_prompt(prompt, unseen):
    assert unseen_words(WORLD1, prompt) == unseen
    model = tiny_phenaki(vocabulary=WORLD1)
    assert unseen_words(model, prompt) == unseen
    assert unseen_words(tiny_phenaki(), prompt) == [] and unseen_words(None, prompt) == []  # nothing recorded


def test_words_and_vocabularies_are_checked():
    assert words("It's a Red-circle, 2x!") == ["it's", "a", "red", "circle", "2x"]
    assert unseen_words(["red", "circle"], "a red circle") == ["a"]  # a flat list of words is a vocabulary too
    assert check_vocabulary(["red", "a", "red"]) == {"words": ["red", "a"]}
    assert known_words({"colours": ["red"], "shapes": ["circle"]}) == {"red", "circle"} and known_words(None) is None
    for bad, message in (
        ("red circle", "a dict of word lists or a list of words"),
        (42, "a dict of word lists or a list of words"),
        ({"colours": "red"}, "group 'colours'"),
        ({"colours": ["Red"]}, "holds 'Red', which is not one lower-case word"),
        (["red circle"], "holds 'red circle'"),
        (["red", None], "holds None"),
    ):
        with pytest.raises(ValueError, match=message):
            check_vocabulary(bad)
    for bad_prompt in (None, 3, ["a red circle"]):
        with pytest.raises(ValueError, match="expected a prompt as a string"):
            unseen_words(WORLD1, bad_prompt)
        with pytest.raises(ValueError, match="expected a prompt as a string"):
            unseen_words(None, bad_prompt)
    with pytest.raises(ValueError, match="unknown shapes world 'shapes3'"):
        world_vocabulary("shapes3")


def test_the_worlds_vocabularies_are_exactly_the_words_of_their_training_captions():
    """Captions drawn by the training data's own generators (paraphrased half the time: every template shows up)
    hold no word outside the vocabulary, and every word of it shows up: nothing missed, nothing invented."""
    clips = WorldClips(paraphrase_prob=0.5)
    drawn = {
        "shapes": [clips.make(i)["caption"] for i in range(3000)],
        "shapes2": [world2_data.make_example(i, paraphrase_prob=0.5)["caption"] for i in range(3000)],
    }
    for world, captions in drawn.items():
        known = known_words(world_vocabulary(world))
        seen = {w for caption in captions for w in words(caption)}
        assert seen == known, (world, seen ^ known)
    assert known_words(world_vocabulary("shapes2")) == set(world2_captions.vocabulary())  # its own word list
    assert list(WORLD1) == ["colours", "shapes", "motions", "other words"]
    assert WORLD1["colours"][:3] == ["red", "green", "blue"] and "grows" not in known_words(WORLD1)
    assert world_vocabulary("shapes2")["sizes"] == ["small", "big"]


def test_a_model_saves_and_loads_its_vocabulary_and_an_older_one_has_none(tmp_path):
    model = tiny_phenaki(vocabulary=WORLD1)
    assert model.vocabulary == WORLD1 and model.config["vocabulary"] == WORLD1
    model.save_pretrained(tmp_path / "with")
    assert json.loads((tmp_path / "with" / "config.json").read_text())["vocabulary"] == WORLD1
    assert Phenaki.from_pretrained(tmp_path / "with").vocabulary == WORLD1
    plain = tiny_phenaki()
    assert plain.vocabulary is None and "vocabulary" not in plain.config  # older configs stay as they were
    plain.save_pretrained(tmp_path / "without")
    assert Phenaki.from_pretrained(tmp_path / "without").vocabulary is None
    with pytest.raises(ValueError, match="holds 'Purple'"):
        plain.vocabulary = ["Purple"]
    with pytest.raises(ValueError, match="holds 'two words'"):
        tiny_phenaki(vocabulary=["two words"])


def test_the_command_records_a_world_s_vocabulary_in_a_saved_model(tmp_path, capsys):
    tiny_phenaki().save_pretrained(tmp_path)
    write_main([str(tmp_path), "--world", "shapes2"])
    assert "44 words recorded" in capsys.readouterr().out
    assert Phenaki.from_pretrained(tmp_path).vocabulary == world_vocabulary("shapes2")
    with pytest.raises(SystemExit):
        write_main([str(tmp_path), "--world", "nowhere"])


@pytest.mark.parametrize("folder, world", [("weights", "shapes"), ("weights-shapes2", "shapes2")])
def test_the_bundled_models_record_the_vocabulary_of_the_world_they_were_trained_on(folder, world):
    record, stages = json.loads((ROOT / folder / "training.json").read_text()), []
    while record:  # every run of the chain; runs from before --world existed trained on world 1
        stages.append((record["stage"], record["args"].get("world", "shapes")))
        record = record.get("model") or record.get("tokenizer")
    assert {w for stage, w in stages if stage == "transformer"} == {world}
    config = json.loads((ROOT / folder / "config.json").read_text())
    assert config["vocabulary"] == world_vocabulary(world)


def test_the_trainer_records_the_world_s_words_joins_them_to_a_model_s_and_none_for_videos():
    def run(*args):
        return build_parser().parse_args(["transformer", "--out", "x", *args])

    assert training_vocabulary(run("--tokenizer", "t")) == WORLD1
    assert training_vocabulary(run("--tokenizer", "t", "--world", "shapes2")) == world_vocabulary("shapes2")
    assert training_vocabulary(run("--tokenizer", "t", "--videos", "v")) is None
    assert training_vocabulary(run("--model", "m"), None) is None  # what the earlier model saw is unknown
    joined = training_vocabulary(run("--model", "m", "--world", "shapes2"), WORLD1)
    assert known_words(joined) == known_words(world_vocabulary("shapes2")) and joined["shapes"][-1] == "diamond"


def test_the_bundled_model_loads_with_its_vocabulary():
    model = Phenaki.from_pretrained(ROOT / "weights")
    assert model.vocabulary == WORLD1
    assert unseen_words(model, "a purple elephant dances") == ["purple", "elephant", "dances"]


def test_a_model_pushed_to_the_hub_keeps_its_vocabulary(tmp_path):
    with HubServer(tmp_path / "server") as hub, hub_environment(hub, tmp_path / "hf_home"):
        tiny_phenaki(vocabulary=WORLD1).push_to_hub("org/knows-words", token=TOKEN)
        tiny_phenaki().push_to_hub("org/knows-nothing", token=TOKEN)
        assert Phenaki.from_pretrained("org/knows-words").vocabulary == WORLD1
        assert Phenaki.from_pretrained("org/knows-nothing").vocabulary is None
