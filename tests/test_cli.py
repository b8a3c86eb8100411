"""The `phenaki` command, run as users run it (`python -m phenaki`, a subprocess) on a tiny random model: stories
to MP4 and GIF, seeds that reproduce a video, one clear line for each bad input, and the forwarded commands."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from conftest import tiny_phenaki

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["a red circle moves right", "the red circle moves up"]
TINY_FPS = 8  # the tiny preset's frame rate and size
TINY_SIZE = 32
FAST = ["--steps", "2"]  # the frames of a random model need no more


def cli_env(tmp_path: Path) -> dict:
    """No network, no telemetry, one thread, and a Hub cache of its own (so a repo id is never found)."""
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("HF_TOKEN", None)
    return env


def phenaki(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m phenaki ARGS` from the repository root (so this checkout's package is the one run)."""
    return subprocess.run(
        [sys.executable, "-m", "phenaki", *map(str, args)],
        cwd=ROOT,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def succeeded(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def printed_seed(stdout: str) -> int:
    match = re.search(r"^seed (\d+) \(--seed \1 makes the same video again\)$", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1))


def read_frames(path: Path) -> np.ndarray:
    with imageio.get_reader(path) as reader:
        return np.stack([frame[..., :3] for frame in reader])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_phenaki().save_pretrained(tmp_path_factory.mktemp("cli") / "m")


# ---- stories -------------------------------------------------------------------------------------------------


def test_story_to_mp4_with_a_given_seed(model_dir, tmp_path):
    options = ["--seconds", "1", "--seed", "7", *FAST, "--model", model_dir, "--out", tmp_path / "story.mp4"]
    out = succeeded(phenaki(tmp_path, "generate", *PROMPTS, *options))
    assert printed_seed(out) == 7
    assert f"wrote {tmp_path / 'story.mp4'}: 16 frames, 2 s at {TINY_FPS} fps, 512x512" in out
    # 2 scenes of 1 s, upscaled to about 512 pixels as the demo shows them
    assert read_frames(tmp_path / "story.mp4").shape == (2 * 1 * TINY_FPS, 512, 512, 3)


def test_story_to_gif_with_a_random_seed_made_again_from_a_timeline_file(model_dir, tmp_path):
    """The printed seed makes the same frames again (here through a timeline file that holds it)."""
    # two prompts of the default 2 s, no seed: one is drawn and printed
    small = [*FAST, "--scale", "1", "--model", model_dir]
    result = phenaki(tmp_path, "generate", *PROMPTS, *small, "--out", tmp_path / "story.gif")
    seed = printed_seed(succeeded(result))
    assert "generating: 100%" in result.stderr and f"{2 * 2 * TINY_FPS}/{2 * 2 * TINY_FPS}" in result.stderr
    first = read_frames(tmp_path / "story.gif")
    assert first.shape == (2 * 2 * TINY_FPS, TINY_SIZE, TINY_SIZE, 3)
    # the same story as a file in examples/' format, whose seed is the printed one: the same frames
    story = tmp_path / "story.json"
    story.write_text(json.dumps({"title": "t", "timeline": [[prompt, 2] for prompt in PROMPTS], "seed": seed}))
    out = succeeded(phenaki(tmp_path, "generate", "--timeline", story, *small, "--out", tmp_path / "again.gif"))
    assert printed_seed(out) == seed
    np.testing.assert_array_equal(read_frames(tmp_path / "again.gif"), first)


def test_a_story_from_a_start_picture_is_the_library_s(model_dir, tmp_path):
    """--start: the frames are those of `Phenaki.stream(..., start=the file)`, and the picture changes them."""
    from phenaki import Phenaki
    from phenaki.media import write_gif, write_png

    picture = np.zeros((48, 64, 3), np.uint8)
    picture[10:30, 30:50] = (255, 0, 0)  # wider than tall: centre-cropped, then resized to the model's 32x32
    png = write_png(tmp_path / "start.png", picture)
    small = [*FAST, "--seconds", "1", "--seed", "3", "--scale", "1", "--model", model_dir]
    succeeded(phenaki(tmp_path, "generate", PROMPTS[0], *small, "--start", png, "--out", tmp_path / "cli.gif"))
    succeeded(phenaki(tmp_path, "generate", PROMPTS[0], *small, "--out", tmp_path / "plain.gif"))
    model = Phenaki.from_pretrained(model_dir, device="cpu")
    chunks = model.stream([(PROMPTS[0], 1.0)], start=png, seed=3, steps=2)
    library = write_gif(tmp_path / "library.gif", np.concatenate([c.frames for c in chunks]), TINY_FPS)
    np.testing.assert_array_equal(read_frames(tmp_path / "cli.gif"), read_frames(library))
    assert (read_frames(tmp_path / "cli.gif")[0] != read_frames(tmp_path / "plain.gif")[0]).any()


# ---- bad inputs: exit status 1, one line on stderr, no traceback ----------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Timeline files that are not usable, and a model without a Token Critic."""
    folder = tmp_path_factory.mktemp("cli_inputs")
    (folder / "broken.json").write_text('{"timeline": [["a red circle moves right", 2]')
    (folder / "notes.png").write_text("not a picture")
    (folder / "no_prompt.json").write_text(json.dumps([{"prompt": " ", "seconds": 1}, {"prompt": "a", "seconds": 1}]))
    tiny_phenaki(critic=False).save_pretrained(folder / "no_critic")
    return folder


BAD = {  # id: (arguments after `generate`, with {model} and {files} filled in; what the one line says)
    "empty prompt": (["a red circle", "  ", "--model", "{model}"], "prompt 2 is empty"),
    "missing folder": (["a", "--model", "{files}/no_such_model"], "neither an existing local folder"),
    "missing repo": (["a", "--model", "nobody/no-such-model"], "Hub repo 'nobody/no-such-model'"),
    "unknown video type": (["a", "--model", "{model}", "--out", "clip.avi"], "use one of .mp4, .gif"),
    "zero seconds": (["a", "--seconds", "0", "--model", "{model}"], "--seconds must be more than 0, got 0"),
    "seconds not a number": (["a", "--seconds", "two", "--model", "{model}"], "--seconds must be a number"),
    "missing timeline": (["--timeline", "{files}/nothing.json", "--model", "{model}"], "there is no file"),
    "timeline not JSON": (["--timeline", "{files}/broken.json", "--model", "{model}"], "is not valid JSON"),
    "timeline row without prompt": (
        ["--timeline", "{files}/no_prompt.json", "--model", "{model}"],
        "timeline row 1 has no prompt",
    ),
    "timeline and prompts": (["a", "--timeline", str(ROOT / "examples" / "01_red_circle.json")], "not both"),
    "missing start": (["a", "--start", "{files}/nothing.png", "--model", "{model}"], "the start file nothing.png"),
    "start not a picture": (["a", "--start", "{files}/notes.png", "--model", "{model}"], "neither a picture nor"),
    "library ValueError": (
        ["a", "--critic-strength", "0.5", "--model", "{files}/no_critic"],
        "needs a model with a Token Critic",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_is_one_line_on_stderr(case, model_dir, files, tmp_path):
    arguments, message = BAD[case]
    arguments = [a.format(model=model_dir, files=files) for a in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "clip.mp4")]
    result = phenaki(tmp_path, "generate", *arguments)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phenaki generate: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "clip.mp4").exists() and result.stdout == ""


def test_usage_errors_stay_argparse_ones(tmp_path):
    result = phenaki(tmp_path, "generate", "a red circle")  # no --out
    assert result.returncode == 2 and "required: --out" in result.stderr and "usage: phenaki generate" in result.stderr


# ---- forwarded commands ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, expected", [("train", "usage: phenaki train"), ("eval", "usage: phenaki eval")])
def test_forwarded_help(command, expected, tmp_path):
    assert expected in succeeded(phenaki(tmp_path, command, "--help"))


def test_demo_help(tmp_path):
    assert "usage:" in succeeded(phenaki(tmp_path, "demo", "--help"))
