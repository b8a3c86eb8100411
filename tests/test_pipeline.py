"""The Phenaki pipeline: sampling, continuation, stories in constant memory, saving and loading, bad input."""

import gc
import inspect
import json
import os
import pickle
import socket

import numpy as np
import pytest
import torch
from conftest import tiny_phenaki

from phenaki import CViViT, MaskGit, Phenaki, SelfCritic, make_video
from phenaki.serialization import CONFIG_VERSION
from phenaki.training.presets import preset

PROMPT = "a red circle moves left"


def test_sample_shape_range_and_determinism(tiny_model):
    video = tiny_model.sample(
        texts=PROMPT, num_frames=17, steps=4, temperature=1.0, guidance_scale=3.0, critic_strength=0.0, seed=0
    )
    assert video.shape == (1, 3, 17, 32, 32) and video.dtype == torch.float32
    assert video.min() >= 0 and video.max() <= 1
    assert torch.equal(video, tiny_model.sample(texts=PROMPT, num_frames=17, steps=4, seed=0))
    assert not torch.equal(video, tiny_model.sample(texts=PROMPT, num_frames=17, steps=4, seed=1))


def test_the_issue_example_builds_offline_and_samples(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    torch.manual_seed(0)
    cvivit = CViViT(
        dim=32,
        codebook_size=64,
        patch_size=32,
        temporal_patch_size=2,
        spatial_depth=1,
        temporal_depth=1,
        dim_head=16,
        heads=2,
    )
    maskgit = MaskGit(num_tokens=64, max_seq_len=1024, dim=32, depth=1, heads=2, dim_head=16)
    phenaki = Phenaki(cvivit=cvivit, maskgit=maskgit).eval()
    video = phenaki.sample(
        texts="a red circle moves left",
        num_frames=17,
        steps=12,
        temperature=1.0,
        guidance_scale=3.0,
        critic_strength=0.0,
        seed=0,
    )
    assert video.shape == (1, 3, 17, 256, 256)


@pytest.mark.parametrize("grid", [False, True])
def test_sampling_can_be_traced_by_module_hooks(grid):
    """FlopCounterMode (the benchmark's FLOP count) hooks every module's output; a module that returned a slice
    of its weight under no_grad (requires grad, no grad function) broke it."""
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny_phenaki(**(dict(maskgit={**preset("tiny")["maskgit"], "position_grid": [9, 4, 4]}) if grid else {}))
    with FlopCounterMode(display=False) as counter:
        model.sample(texts="a red circle moves left", num_frames=5, steps=2, seed=0)
    assert counter.get_total_flops() > 0


def test_longer_than_a_window_and_odd_frame_counts(tiny_model):
    assert tiny_model.window_frames == 17
    video = tiny_model.sample(texts=PROMPT, num_frames=30, steps=2, seed=0)
    assert video.shape[2] == 30
    assert tiny_model.sample(texts=PROMPT, num_frames=4, steps=2, seed=0).shape[2] == 4


def test_prime_frames_continue_a_video(tiny_model):
    prime = tiny_model.sample(texts=PROMPT, num_frames=5, steps=2, seed=0)
    seen = []
    encode = tiny_model.cvivit.encode
    tiny_model.cvivit.encode = lambda video: seen.append(video.clone()) or encode(video)
    try:
        video = tiny_model.sample(texts=PROMPT, num_frames=8, prime_frames=prime, steps=2, seed=0)
    finally:
        del tiny_model.cvivit.encode
    assert video.shape == (1, 3, 8, 32, 32)
    assert torch.equal(seen[0], prime)  # the window was primed with exactly these frames
    with pytest.raises(ValueError, match="1 \\+ k \\* 2 frames"):
        tiny_model.sample(texts=PROMPT, num_frames=8, prime_frames=prime[:, :, :4], steps=2)
    with pytest.raises(ValueError, match="prime_frames must be"):
        tiny_model.sample(texts=PROMPT, num_frames=8, prime_frames=torch.rand(1, 3, 5, 16, 16), steps=2)


def test_make_video(tiny_model):
    whole, scenes = make_video(
        tiny_model,
        texts=[PROMPT, "the red circle moves up", "the red circle stays still"],
        num_frames=[9, 6, 4],
        prime_lengths=[5, 3],
        steps=2,
        seed=0,
    )
    assert [s.shape[2] for s in scenes] == [9, 6, 4]
    assert whole.shape == (1, 3, 19, 32, 32)
    assert torch.equal(whole[:, :, 9:15], scenes[1])


def test_stream_yields_each_window_as_it_is_done(tiny_model):
    timeline = [(PROMPT, 3.0), ("the red circle moves up", 2.5)]
    assert tiny_model.timeline_frames(timeline) == [24, 20]
    primes, encode = [], tiny_model.cvivit.encode
    tiny_model.cvivit.encode = lambda video: primes.append(video.clone()) or encode(video)
    emitted = []
    try:
        for chunk in tiny_model.stream(timeline, steps=2, seed=0):
            assert chunk.frames.dtype == np.uint8 and chunk.frames.shape[1:] == (32, 32, 3)
            assert chunk.start == sum(len(c.frames) for c in emitted)
            if emitted:  # primed with the last 5 frames handed out so far
                last = np.concatenate([c.frames for c in emitted])[-5:]
                assert np.abs(primes[len(emitted) - 1][0].permute(1, 2, 3, 0).numpy() * 255 - last).max() <= 0.51
            emitted.append(chunk)
    finally:
        del tiny_model.cvivit.encode
    assert [c.segment for c in emitted] == [0, 0, 1, 1]  # windows of 17, then 12 new frames after 5 primed
    assert [len(c.frames) for c in emitted] == [17, 7, 12, 8]
    again = list(tiny_model.stream(timeline, steps=2, seed=0))
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(emitted, again))


def _live_bytes(model) -> int:
    """Bytes of every live tensor storage and array, the model's own weights excepted."""
    gc.collect()
    weights = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            if storage.data_ptr() not in weights:
                storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, np.ndarray):
            storages[id(obj)] = obj.nbytes
    return sum(storages.values())


def test_a_long_story_holds_no_more_than_a_short_one(tiny_model):
    long_story = tiny_model.stream([(PROMPT, 60.0), ("the red circle moves up", 60.0)], steps=1, seed=0)
    held = []
    for i, chunk in enumerate(long_story):
        del chunk
        held.append(_live_bytes(tiny_model))
        if i == 10:
            break
    assert held[0] > 0
    assert max(held[4:]) <= max(held[1:4]) * 1.05, held  # nothing accumulates from window to window


@pytest.mark.parametrize(
    "timeline, match",
    [
        ([], "non-empty list"),
        ("a red circle", "non-empty list"),
        ([("", 2.0)], "entry 0: the prompt must be a non-empty string"),
        ([(PROMPT, 2.0), ("   ", 1.0)], "entry 1: the prompt must be a non-empty string"),
        ([(PROMPT, 0)], "entry 0: seconds must be a positive number"),
        ([(PROMPT, float("nan"))], "seconds must be a positive number"),
        ([(PROMPT, "2")], "seconds must be a positive number"),
        ([(PROMPT,)], "must be \\(prompt, seconds\\)"),
    ],
)
def test_bad_timelines_get_clear_errors_before_any_work(tiny_model, timeline, match):
    with pytest.raises(ValueError, match=match):
        next(tiny_model.stream(timeline, steps=1))


@pytest.mark.parametrize(
    "part, key, value, match",
    [
        ("maskgit", "num_tokens", 32, "num_tokens \\(32\\) is smaller than the tokenizer's codebook \\(64\\)"),
        (None, "frame_size", [30, 32], "not divisible by patch_size"),
        ("maskgit", "max_seq_len", 20, "fewer than 2 latent frames"),
        ("critic", "dim_context", 16, "critic takes text of width 16 but MaskGit 32: .*dim_context=32"),
        ("maskgit", "width", 3, "config does not describe a Phenaki model"),
        ("maskgit", "position_grid", [9, 4, 3], "position_grid must be \\(frames, rows, columns\\) of max_seq_len=144"),
        (
            "maskgit",
            "position_grid",
            [9, 2, 8],
            "maskgit position_grid \\[9, 2, 8\\] differs from the window's token "
            "grid \\[9, 4, 4\\].*: pass frame_size=\\(16, 64\\) \\(the frames "
            "that grid was built for at patch_size 8\\), or build maskgit with "
            "position_grid=\\[9, 4, 4\\]$",
        ),
        ("critic", "position_grid", [4, 4, 9], "critic position_grid .* differs"),
    ],
)
def test_construction_errors(part, key, value, match):
    config = preset("tiny")
    (config if part is None else config[part])[key] = value
    with pytest.raises(ValueError, match=match):
        Phenaki.from_config(config)


def test_a_window_too_small_for_the_frame_size_says_which_sizes_fit():
    """The fix is in the message: frame sizes that fit (half, a quarter, ... of the one given), or a longer
    max_seq_len; with a position_grid, the frame size that grid was built for."""
    torch.manual_seed(0)
    cvivit = CViViT(
        dim=32,
        codebook_size=64,
        patch_size=8,
        spatial_depth=1,
        temporal_depth=1,
        dim_head=16,
        heads=2,
        quantizer="fsq",
        fsq_levels=[4, 4, 4],
    )
    maskgit = MaskGit(num_tokens=64, max_seq_len=1024, dim=32, depth=1, heads=2, dim_head=16)
    with pytest.raises(
        ValueError,
        match="^max_seq_len 1024 holds fewer than 2 latent frames of 1024 tokens at frame "
        "size 256x256 \\(patch_size 8\\): pass frame_size=128 \\(a window of 4 latent frames\\) or "
        "smaller, or raise max_seq_len to at least 2048$",
    ):
        Phenaki(cvivit=cvivit, maskgit=maskgit, frame_size=256)
    with pytest.raises(ValueError, match="pass frame_size=\\(128, 256\\) \\(a window of 2 latent frames\\)"):
        Phenaki(cvivit=cvivit, maskgit=maskgit, frame_size=(256, 512))
    assert Phenaki(cvivit=cvivit, maskgit=maskgit, frame_size=128).window_latent_frames == 4  # as the message said
    config = preset("tiny")
    config.update(frame_size=[128, 128])
    config["maskgit"]["position_grid"] = [9, 4, 4]
    with pytest.raises(
        ValueError,
        match="pass frame_size=32 \\(a window of 9 latent frames\\), or raise max_seq_len "
        "to at least 512 \\(and position_grid with it\\)$",
    ):
        Phenaki.from_config(config)
    config.update(frame_size=[64, 64])  # fits max_seq_len, but not the grid
    with pytest.raises(
        ValueError,
        match="grid \\[2, 8, 8\\] .*: pass frame_size=32 .*, or build maskgit with "
        "max_seq_len=128 and position_grid=\\[2, 8, 8\\]$",
    ):
        Phenaki.from_config(config)


def test_model_folders_json(tmp_path):
    """config.json of a whole model or (tokenizer_only) of a tokenizer run; training.json where a trainer left one."""
    from phenaki.serialization import read_config, read_training_record, write_config

    write_config({"cvivit": {"dim": 8}}, tmp_path)
    assert read_config(tmp_path, tokenizer_only=True) == {"cvivit": {"dim": 8}}
    with pytest.raises(ValueError, match="is not a Phenaki config \\(needs 'cvivit' and 'maskgit' sections\\)"):
        read_config(tmp_path)
    write_config({"maskgit": {}}, tmp_path)
    with pytest.raises(ValueError, match="is not a tokenizer config \\(no 'cvivit' section\\)"):
        read_config(tmp_path, tokenizer_only=True)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        read_config(tmp_path)
    with pytest.raises(ValueError, match="has no config.json"):
        read_config(tmp_path / "nowhere", tokenizer_only=True)
    assert read_training_record(tmp_path) is None
    (tmp_path / "training.json").write_text(json.dumps({"stage": "tokenizer"}))
    assert read_training_record(tmp_path) == {"stage": "tokenizer"}


def test_save_and_load_sample_identically_without_pickle(tiny_model, tiny_model_dir, monkeypatch):
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = Phenaki.from_pretrained(tiny_model_dir)
    monkeypatch.undo()
    kwargs = dict(texts=PROMPT, num_frames=17, steps=3, critic_strength=0.5, seed=4)
    assert torch.equal(loaded.sample(**kwargs), tiny_model.sample(**kwargs))
    assert loaded.config == tiny_model.config


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_get_the_usual_permissions(tiny_model, tmp_path, umask):
    # safetensors writes 0600 by itself; a model saved for a server or a Space must be readable like any file
    old = os.umask(umask)
    try:
        tiny_model.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_config_that_does_not_match_the_weights(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["maskgit"]["dim"] = 48
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match its config.json.*maskgit"):
        Phenaki.from_pretrained(folder)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["critic"] = None
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unexpected"):
        Phenaki.from_pretrained(folder)


def test_truncated_weights(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    weights = (tiny_model_dir / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        Phenaki.from_pretrained(folder)


def copy_model(source, folder, **config_changes):
    """`source`'s saved model in `folder`, its config.json changed (a None value removes the key)."""
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    config = {**json.loads((source / "config.json").read_text()), **config_changes}
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return folder


def test_a_newer_config_version_asks_for_a_newer_phenaki(tiny_model, tiny_model_dir, tmp_path):
    assert json.loads((tiny_model_dir / "config.json").read_text())["version"] == CONFIG_VERSION == 1
    with pytest.raises(ValueError) as error:
        Phenaki.from_pretrained(copy_model(tiny_model_dir, tmp_path / "new", version=99))
    assert str(error.value) == (
        "this model's config is format version 99, newer than version 1 that this phenaki "
        "reads: upgrade phenaki (pip install -U phenaki) to load it"
    )
    unversioned = Phenaki.from_pretrained(copy_model(tiny_model_dir, tmp_path / "old", version=None))  # read as 1
    kwargs = dict(texts=PROMPT, num_frames=9, steps=2, seed=0)
    assert unversioned.config == tiny_model.config and torch.equal(
        unversioned.sample(**kwargs), tiny_model.sample(**kwargs)
    )
    for bad in ("2", 0, True):
        with pytest.raises(ValueError, match="the config's version must be a positive integer"):
            Phenaki.from_config({**preset("tiny"), "version": bad})


def test_configs_are_the_constructor_arguments(tiny_model):
    """`register_to_config`: each module's config is the arguments it was built with, defaults filled in, in the
    signature's order, and rebuilds it; what the constructor normalises is recorded normalised."""
    for module in (tiny_model.cvivit, tiny_model.maskgit, tiny_model.critic):
        names = list(inspect.signature(type(module).__init__).parameters)[1:]
        assert list(module.config) == names
        assert type(module)(**module.config).config == module.config
    assert list(tiny_model.text_encoder.config) == [
        "kind",
        "dim",
        "depth",
        "heads",
        "dim_head",
        "ff_mult",
        "max_length",
    ]
    maskgit = MaskGit(
        num_tokens=8, max_seq_len=16, dim=8, depth=1, heads=1, dim_head=8, position_grid=(4, 2, 2), local_mixer=1
    )
    assert maskgit.config == dict(
        num_tokens=8,
        max_seq_len=16,
        dim=8,
        depth=1,
        heads=1,
        dim_head=8,
        dim_context=8,
        unconditional=False,
        ff_mult=4,
        position_grid=[4, 2, 2],
        local_mixer=True,
    )
    assert MaskGit(num_tokens=8, max_seq_len=16, dim=8, depth=1, unconditional=True).config["dim_context"] is None
    assert SelfCritic(maskgit).config == dict(self_critic=True)
    with pytest.raises(TypeError, match="width"):
        MaskGit(num_tokens=8, max_seq_len=16, dim=8, depth=1, width=3)
    # a later change is recorded: the saved config rebuilds the changed model
    plain = MaskGit(num_tokens=8, max_seq_len=16, dim=8, depth=1, heads=1, dim_head=8, position_grid=[4, 2, 2])
    assert plain.add_local_mixers().config["local_mixer"] and MaskGit(**plain.config).config == plain.config
    cvivit = CViViT(
        dim=16,
        codebook_size=64,
        patch_size=8,
        heads=1,
        dim_head=8,
        quantizer="fsq",
        fsq_levels=[4, 4, 4],
        pixel_mlp_dim=4,
    )
    assert cvivit.config["pixel_refiner_dim"] is None
    assert cvivit.add_pixel_refiner(8).config["pixel_refiner_dim"] == 8
    assert CViViT(**cvivit.config).config == cvivit.config


def test_the_bundled_config_saves_as_it_was_read(tmp_path):
    """...but for the retired discriminator keys, which loading drops."""
    import json
    from pathlib import Path

    from phenaki.models.cvivit import RETIRED_KEYS

    folder = Path(__file__).resolve().parents[1] / "weights"
    Phenaki.from_pretrained(folder).save_pretrained(tmp_path)
    bundled = json.loads((folder / "config.json").read_text())
    assert set(RETIRED_KEYS) <= set(bundled["cvivit"])
    bundled["cvivit"] = {k: v for k, v in bundled["cvivit"].items() if k not in RETIRED_KEYS}
    assert json.loads((tmp_path / "config.json").read_text()) == bundled


def test_grid_positions_are_frame_plus_row_plus_column(tmp_path):
    """The default model's position embedding: what a position learns is shared along its frame, row and column.
    Older configs (no position_grid) keep one learned vector per position, under the same weight name."""
    model = tiny_phenaki(maskgit={**preset("tiny")["maskgit"], "position_grid": [9, 4, 4]})
    positions = model.maskgit.pos_emb
    table = positions(144).view(9, 4, 4, -1)
    assert torch.allclose(table[2, 1, 3], positions.frame[2] + positions.row[1] + positions.column[3])
    assert torch.allclose(table[5, 1, 3] - table[2, 1, 3], table[5, 0, 0] - table[2, 0, 0])  # shared frame offset
    model.save_pretrained(tmp_path)
    loaded = Phenaki.from_pretrained(tmp_path)
    assert loaded.config["maskgit"]["position_grid"] == [9, 4, 4]
    assert torch.equal(loaded.maskgit.pos_emb(144), positions(144))
    kwargs = dict(texts=PROMPT, num_frames=17, steps=3, seed=1)
    assert torch.equal(loaded.sample(**kwargs), model.sample(**kwargs))

    learned = tiny_phenaki().maskgit
    assert learned.config["position_grid"] is None and "pos_emb.weight" in learned.state_dict()


@pytest.mark.parametrize("position_grid", [None, [9, 4, 4]])
def test_training_step_lowers_the_loss(position_grid):
    model = tiny_phenaki(maskgit={**preset("tiny")["maskgit"], "position_grid": position_grid}).train()
    video = torch.rand(2, 3, 17, 32, 32)
    ids = model.cvivit.encode(video)
    params = [p for n, p in model.named_parameters() if not n.startswith("cvivit.")]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for step in range(25):
        loss = model(video_codebook_ids=ids, texts=["a", "b"], generator=torch.Generator().manual_seed(step % 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_the_bundled_default_model_loads_and_makes_a_story():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "weights"
    model = Phenaki.from_pretrained(folder)
    assert model.frame_size == (64, 64) and model.fps == 8 and model.has_critic
    assert (folder / "model.safetensors").stat().st_size < 25 * 2**20
    assert "pipeline_tag: text-to-video" in (folder / "README.md").read_text()
    chunks = list(model.stream([("a red circle moves right", 1.0), ("the red circle moves up", 1.0)], steps=2, seed=0))
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (16, 64, 64, 3) and frames.max() > 0
