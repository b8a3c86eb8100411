"""The trainers: every stage end to end, resuming, EMA, two processes on the CPU, and a folder of videos."""

import json
import os
import socket
import subprocess
import sys
import warnings
from argparse import Namespace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from phenaki import Phenaki
from phenaki.serialization import load_weights
from phenaki.shapes.vocabulary import world_vocabulary
from phenaki.training.data import VideoFolder, WorldClips, WorldClips2, collate
from phenaki.training.loop import EMA, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}


def run_trainer(*args, launcher=(sys.executable, "-m", "phenaki.training.trainer")) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=240, env=ENV)


def train(*args, launcher=(sys.executable, "-m", "phenaki.training.trainer")) -> str:
    result = run_trainer(*args, launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_both_stages_resume_and_load(tmp_path):
    tok = tmp_path / "tokenizer"
    common = ["--preset", "tiny", "--batch-size", "2", "--save-every", "2", "--sample-every", "2"]
    out = train("tokenizer", "--steps", "2", "--out", str(tok), *common)
    assert "training on 1 process(es)" in out
    first_run = json.loads((tok / "checkpoint" / "trainer.json").read_text())
    assert first_run["step"] == 2 and first_run["elapsed_s"] > 0
    out = train("tokenizer", "--steps", "4", "--out", str(tok), *common)  # the same command, longer: resumes
    assert "resumed" in out and "at step 2" in out
    assert json.loads((tok / "checkpoint" / "trainer.json").read_text())["step"] == 4
    assert sorted(p.name for p in (tok / "samples").iterdir()) == ["step0000002.gif", "step0000004.gif"]
    assert iio.imread(tok / "samples" / "step0000004.gif", index=None).shape[0] == 17

    run = tmp_path / "phenaki"
    train(
        "transformer",
        "--tokenizer",
        str(tok / "final"),
        "--steps",
        "2",
        "--grad-accum",
        "2",
        "--out",
        str(run),
        *common,
    )
    refused = run_trainer("transformer", "--tokenizer", str(tok / "final"), "--out", str(tmp_path / "x"))  # shapes
    assert refused.returncode == 2 and "trained with frame_size [32, 32], but --preset shapes" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "x").exists()
    model = Phenaki.from_pretrained(run / "final")
    video = model.sample(texts="a red circle moves left", num_frames=9, steps=2, seed=0)
    assert video.shape == (1, 3, 9, 32, 32)
    assert model.vocabulary == world_vocabulary("shapes")  # what its captions can say, for the demo's hints
    # the tokenizer inside the final model is the trained one, frozen
    from phenaki.training.trainer import load_tokenizer

    # what the model card needs: the arguments, the time over both resumed runs, the hardware
    record = json.loads((run / "final" / "training.json").read_text())
    assert record["stage"] == "transformer" and record["args"]["steps"] == 2 and record["args"]["grad_accum"] == 2
    assert record["processes"] == 1 and record["device"] and record["wall_time_s"] > 0
    assert record["tokenizer"]["args"]["steps"] == 4
    assert record["tokenizer"]["wall_time_s"] >= round(first_run["elapsed_s"], 1)  # counts the resumed run too

    tokenizer = load_tokenizer(tok / "final")
    assert all(torch.equal(a, b) for a, b in zip(tokenizer.state_dict().values(), model.cvivit.state_dict().values()))


@pytest.mark.parametrize("refiner", [False, True], ids=["decoder", "decoder + new pixel refiner"])
def test_decoder_stage_keeps_every_token_id_and_the_transformer(tmp_path, refiner):
    """Stage 3 trains only the decoder: the same video encodes to the same ids, MaskGit, the critic and the
    text encoder are saved bit for bit, and the decoder has moved. With --pixel-refiner-dim it first adds a
    refiner, which is trained, saved and named in the config."""
    from conftest import tiny_phenaki

    from phenaki.training.presets import preset

    start = tiny_phenaki(seed=3, cvivit={**preset("tiny")["cvivit"], "pixel_mlp_dim": 4}, vocabulary=["zebra"])
    start.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "training.json").write_text(json.dumps(dict(stage="transformer", args={})))
    train(
        "decoder",
        "--model",
        str(tmp_path / "model"),
        "--out",
        str(tmp_path / "dec"),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--ema-decay",
        "0.5",
        "--sample-every",
        "0",
        *(["--pixel-refiner-dim", "5"] if refiner else []),
    )
    tuned = Phenaki.from_pretrained(tmp_path / "dec" / "final")
    assert tuned.vocabulary == {"words": ["zebra"]}  # the text side is unchanged, and so is what it knows

    video = torch.rand(2, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(start.cvivit.encode(video), tuned.cvivit.encode(video))
    before, after = start.state_dict(), tuned.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("cvivit.") for k in moved)
    assert any(k.startswith("cvivit.dec_") for k in moved) and any(k.startswith("cvivit.to_pixels") for k in moved)
    assert not any(k.startswith(("cvivit.enc_", "cvivit.to_tokens", "cvivit.quantizer")) for k in moved)
    added = set(after) - set(before)
    assert tuned.cvivit.config["pixel_refiner_dim"] == (5 if refiner else None)
    assert added == ({k for k in after if k.startswith("cvivit.pixel_refiner.")} if refiner else set())
    if refiner:
        assert tuned.cvivit.pixel_refiner[-1].weight.abs().sum() > 0  # trained away from its zero start
    record = json.loads((tmp_path / "dec" / "final" / "training.json").read_text())
    assert record["stage"] == "decoder" and record["model"]["stage"] == "transformer"
    assert record["args"]["pixel_refiner_dim"] == (5 if refiner else None)


def test_transformer_stage_trains_a_finished_model_further_with_new_local_mixers(tmp_path):
    """`transformer --model`: starts from a finished model's weights (tokenizer kept bit for bit); with
    --local-mixers MaskGit first gets mixers, which are trained, saved and named in the config."""
    from conftest import tiny_phenaki

    from phenaki.training.presets import preset

    start = tiny_phenaki(
        seed=3, maskgit={**preset("tiny")["maskgit"], "position_grid": [9, 4, 4]}, vocabulary=["zebra"]
    )
    start.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "training.json").write_text(json.dumps(dict(stage="transformer", args={"steps": 7})))
    train(
        "transformer",
        "--model",
        str(tmp_path / "model"),
        "--local-mixers",
        "--out",
        str(tmp_path / "more"),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--ema-decay",
        "0.5",
        "--sample-every",
        "0",
    )
    tuned = Phenaki.from_pretrained(tmp_path / "more" / "final")
    assert tuned.config["maskgit"]["local_mixer"] is True
    assert tuned.vocabulary == {"words": ["zebra"], **world_vocabulary("shapes")}  # what it knew, and world 1's
    before, after = start.state_dict(), tuned.state_dict()
    assert set(after) - set(before) == {k for k in after if k.startswith("maskgit.transformer.local_mixers.")}
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("cvivit."))
    assert not torch.equal(before["maskgit.to_out.weight"], after["maskgit.to_out.weight"])  # started, not redone
    assert torch.allclose(before["maskgit.to_out.weight"], after["maskgit.to_out.weight"], atol=0.1)
    assert tuned.maskgit.transformer.local_mixers[0].to_out.weight.abs().sum() > 0  # trained from zero
    record = json.loads((tmp_path / "more" / "final" / "training.json").read_text())
    assert record["model"]["args"]["steps"] == 7 and record["args"]["local_mixers"] is True


def test_a_stage_without_its_input_is_refused():
    for args, message in (
        (["transformer"], "--tokenizer"),
        (["decoder"], "--model"),
        (["transformer", "--tokenizer", "t", "--model", "m"], "not both"),
        (["decoder", "--model", "m", "--local-mixers"], "--local-mixers is for the transformer"),
        # world 2's held-out pairs are drawn in world 1: its models may not start a world-2 run
        (["transformer", "--world", "shapes2", "--model", str(ROOT / "weights")], "trained on shapes (world 1)"),
        (["decoder", "--world", "shapes2", "--model", str(ROOT / "weights")], "held-out pairs"),
    ):
        result = run_trainer(*args, "--out", "x")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_the_held_out_check_reads_every_stage_of_a_record():
    from phenaki.serialization import read_training_record
    from phenaki.training.trainer import held_out_conflict, trained_worlds

    assert trained_worlds(read_training_record(ROOT / "weights-shapes2")) == {"shapes2"}  # its five stages
    assert trained_worlds(read_training_record(ROOT / "weights")) == {"shapes"}  # before --world: world 1
    stage = dict(args=dict(world="shapes2"), tokenizer=dict(args=dict(world="shapes2", videos="clips/")))
    assert trained_worlds(dict(args=dict(world="shapes2"), model=stage)) == {"shapes2", "videos"}
    args = Namespace(world="shapes2", videos=None, model=str(ROOT / "weights-shapes2"), tokenizer=None)
    assert held_out_conflict(args) is None
    assert "--model" in held_out_conflict(Namespace(**{**vars(args), "model": str(ROOT / "weights")}))
    assert held_out_conflict(Namespace(**{**vars(args), "world": "shapes", "model": str(ROOT / "weights")})) is None


def test_bf16_on_a_gpu_fp32_on_a_cpu_unless_asked():
    from phenaki.training.trainer import training_precision

    def args(precision=None, cpu=False):
        return Namespace(mixed_precision=precision, cpu=cpu)

    assert training_precision(args(), cuda=True) == "bf16"  # the trainers' CUDA path (weights-shapes2's stages)
    assert training_precision(args(), cuda=False) == "no"
    assert training_precision(args("bf16"), cuda=False) == "bf16"  # bf16 autocast on a CPU, by name
    assert training_precision(args("no"), cuda=True) == "no"
    assert training_precision(args(cpu=True)) == "no"  # --cpu on a machine with a GPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    "stage, world, preset, steps, batch, falls_to",
    [  # falls_to: the loss's mean over the last 5 steps, at most this share of the first 5's (None: not checked)
        ("tokenizer", "shapes", "tiny", 30, 2, 0.5),  # measured 0.39 -> 0.02
        ("tokenizer", "shapes2", "shapes2", 4, 1, None),  # world 2 is 64x64, not the tiny preset's 32x32; 4 steps
        ("transformer", "shapes", "tiny", 30, 2, 0.75),  # MaskGit, critic and text encoder under DDP: 4.3 -> 2.3
    ],
)
def test_two_processes_launched_as_the_readme_says(tmp_path, stage, world, preset, steps, batch, falls_to):
    """`accelerate launch` (README, Training) with 2 CPU processes on a free port: both end with the same weights
    (and they are the ones saved), each drew its own batches of the example stream, and the loss falls (over the
    tiny preset's 30 steps; 4 steps of world 2 show nothing). `--record-processes` makes each process write what
    it saw. 10 to 20 s each on 2 cores."""
    from phenaki.training.loop import state_digest, video_digest
    from phenaki.training.trainer import load_tokenizer

    run = tmp_path / "run"
    inputs = ("--preset", preset)
    if stage == "transformer":  # its tokenizer: a short run in one process
        tokenizer = tmp_path / "tokenizer"
        train("tokenizer", *inputs, "--steps", "2", "--batch-size", "2", "--sample-every", "0", "--out", str(tokenizer))
        inputs += ("--tokenizer", str(tokenizer / "final"))
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2")
    launcher += ("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    launcher += ("--main_process_port", str(free_port()), "-m", "phenaki", "train")
    out = train(
        stage,
        *(*inputs, "--world", world, "--steps", str(steps), "--batch-size", str(batch), "--lr", "0.003"),
        *("--save-every", "1000", "--sample-every", "0", "--cpu", "--record-processes", "--out", str(run)),
        launcher=launcher,
    )
    assert "training on 2 process(es)" in out
    meta = json.loads((run / "checkpoint" / "trainer.json").read_text())
    assert meta["processes"] == 2 and meta["step"] == steps
    assert sorted(p.name for p in (run / "processes").iterdir()) == ["0.json", "1.json"]
    records = [json.loads((run / "processes" / f"{rank}.json").read_text()) for rank in (0, 1)]

    # the same weights (and EMA) in both processes, and they are what was saved
    assert records[0]["weights"] == records[1]["weights"] and records[0]["ema"] == records[1]["ema"]
    load = load_tokenizer if stage == "tokenizer" else lambda folder: Phenaki.from_pretrained(folder)
    assert state_digest(load(run / "final")) == records[0]["ema"]
    checkpoint = load(run / "final")
    load_weights(checkpoint, run / "checkpoint" / "model.safetensors")
    assert state_digest(checkpoint) == records[0]["weights"] != records[0]["ema"]

    # different data: the example stream 0, 1, 2, ... in batches, dealt out alternately (rank 0 the even batches)
    stream = WorldClips2() if world == "shapes2" else WorldClips(num_frames=17, frame_size=(32, 32))
    expected = [
        video_digest(collate([stream[i] for i in range(k * batch, (k + 1) * batch)])["video"]) for k in range(2 * steps)
    ]
    for rank, record in enumerate(records):
        assert [b["step"] for b in record["batches"]] == list(range(steps))
        assert [b["video"] for b in record["batches"]] == expected[rank::2]
    assert not {b["video"] for b in records[0]["batches"]} & {b["video"] for b in records[1]["batches"]}

    # the loss falls, in each process
    for record in records if falls_to else []:
        losses = [b["loss"] for b in record["batches"]]
        assert np.mean(losses[-5:]) < falls_to * np.mean(losses[:5]), losses


def test_ema_follows_the_model_slowly():
    model = torch.nn.Linear(4, 4)
    ema = EMA(model, decay=0.9)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1000)
    moved = ema.model.weight - before
    assert torch.allclose(moved, torch.full_like(moved, 0.1), atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    ema = EMA(model, 0.99)
    save_checkpoint(tmp_path / "ckpt", model, ema, optimizer, step=7)
    assert not any(p.suffix in (".pt", ".bin", ".pkl") for p in (tmp_path / "ckpt").iterdir())
    fresh = torch.nn.Linear(4, 3)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    assert load_checkpoint(tmp_path / "ckpt", fresh, EMA(fresh, 0.99), fresh_opt) == (7, 0.0)
    assert torch.equal(fresh.weight, model.weight)
    a, b = optimizer.state_dict()["state"][0], fresh_opt.state_dict()["state"][0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_world_clips_are_deterministic_and_include_scene_changes():
    data = WorldClips(num_frames=17)
    assert torch.equal(data[5]["video"], data[5]["video"])
    examples = [data[i] for i in range(60)]
    assert all(e["video"].shape == (3, 17, 64, 64) for e in examples)
    changes = [e for e in examples if e["prime"] >= 0]
    assert changes and all(e["caption"].startswith("the ") for e in changes)
    assert WorldClips(frame_size=(32, 32))[0]["video"].shape == (3, 17, 32, 32)


def test_a_folder_of_videos_skips_unreadable_files(tmp_path):
    rng = np.random.default_rng(0)
    iio.imwrite(
        tmp_path / "a.mp4",
        rng.integers(0, 255, (12, 48, 64, 3), dtype=np.uint8),
        fps=8,
        codec="libx264",
        macro_block_size=1,
    )
    iio.imwrite(tmp_path / "b.gif", rng.integers(0, 255, (4, 40, 40, 3), dtype=np.uint8), duration=125, loop=0)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    lines = [
        {"video": "a.mp4", "caption": "noise"},
        {"video": "broken.mp4", "caption": "bad"},
        {"video": "b.gif", "caption": "short noise"},
    ]
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    data = VideoFolder(tmp_path, num_frames=9, frame_size=(32, 32))
    assert data[0]["video"].shape == (3, 9, 32, 32)
    with pytest.warns(UserWarning, match="broken.mp4"):
        item = data[1]
    assert item["caption"] == "short noise"  # skipped to the next readable video
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, then remembered
        assert data[1]["caption"] == "short noise"
    out = train(
        "tokenizer",
        "--preset",
        "tiny",
        "--videos",
        str(tmp_path),
        "--num-frames",
        "9",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--sample-every",
        "0",
        "--out",
        str(tmp_path / "run"),
    )
    assert "broken.mp4" in out and (tmp_path / "run" / "final" / "model.safetensors").exists()

    (tmp_path / "bad.jsonl").write_text('{"video": "a.mp4"}\n')
    with pytest.raises(ValueError, match="bad.jsonl, line 1"):
        VideoFolder(tmp_path, 9, (32, 32), captions="bad.jsonl")
