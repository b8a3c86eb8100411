"""The Inspect tab: `phenaki.demo.views` and `views_tokenizer` called directly on the tiny random model (32x32
frames, 17-frame windows of 9x4x4 tokens), and its named endpoints on the running app (tests/app_server.py) driven
with gradio_client."""

from __future__ import annotations

import re

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from app_server import client, tiny_model_dir
from conftest import tiny_phenaki
from PIL import Image

from phenaki import Phenaki, media
from phenaki.demo import views as insp
from phenaki.demo import views_tokenizer as insp_tok
from phenaki.demo.stories import InputError
from phenaki.sampling import masked_count
from phenaki.shapes import world
from phenaki.shapes.world2 import Scene, Thing, render_clip
from phenaki.shapes.world2_describe import describe, score

PROMPT = "a red circle moves right"


@pytest.fixture(scope="module")
def model():
    return tiny_phenaki()


def as_uint8(video: torch.Tensor) -> np.ndarray:
    return video[0].permute(1, 2, 3, 0).mul(255).round().byte().numpy()


def read_frames(path) -> np.ndarray:
    with imageio.get_reader(path) as reader:
        return np.stack([frame for frame in reader])


def moving_bar(frames: int, height: int, width: int) -> np.ndarray:
    video = np.zeros((frames, height, width, 3), np.uint8)
    for i in range(frames):
        video[i, :, (3 * i) % width : (3 * i) % width + 12] = (255, 200, 0)
    return video


# ---- decoding, step by step ---------------------------------------------------------------------------------


@pytest.mark.parametrize("critic_strength", [0.0, 0.5])
def test_the_steps_end_in_exactly_what_a_normal_generation_makes(model, critic_strength):
    settings = dict(steps=4, temperature=1.0, guidance_scale=3.0, critic_strength=critic_strength, seed=5)
    trace = insp.trace_decoding(model, PROMPT, 17, **settings)
    assert np.array_equal(trace.frames, as_uint8(model.sample(texts=PROMPT, num_frames=17, **settings)))
    longer = model.sample(texts=PROMPT, num_frames=24, **settings)  # the first window of a longer video
    assert np.array_equal(trace.frames, as_uint8(longer)[:17])
    chunk = next(model.stream([(PROMPT, 3.0)], **settings))  # what /generate streams
    assert np.array_equal(trace.frames, chunk.frames)
    other = insp.trace_decoding(model, PROMPT, 17, **{**settings, "seed": 6})
    assert not np.array_equal(trace.frames, other.frames)
    # the last step's frames are decoded from the final tokens (in a batch with the other steps)
    assert np.abs(trace.steps[-1].frames.astype(int) - trace.frames).max() <= 1
    assert trace.ids.shape == (9, 4, 4) and trace.ids.max() < model.cvivit.codebook_size


@pytest.mark.parametrize("critic_strength", [0.0, 0.5])
def test_each_step_says_what_was_masked_filled_and_sent_back(model, critic_strength):
    trace = insp.trace_decoding(model, PROMPT, 17, steps=4, seed=3, critic_strength=critic_strength, refine_passes=2)
    total = trace.ids.size
    refinement = [f"refinement {k}, {half} frames" for k in (1, 2) for half in ("even", "odd")]
    assert [s.phase for s in trace.steps] == ["parallel"] * 4 + refinement  # 2 passes, a step per half
    parallel = trace.steps[:4]
    assert [s.masked.sum() for s in parallel] == [masked_count(i, 4, total) for i in range(4)]  # cosine
    before = np.ones_like(trace.ids, bool)
    for step in trace.steps:
        assert not (step.filled & step.masked).any() and not (step.sent_back & before).any()
        assert (step.filled | step.masked).sum() + (~before & ~step.masked & ~step.filled).sum() == total
        assert step.filled.sum() == before.sum() - step.masked.sum() + step.sent_back.sum()
        assert np.isfinite(step.score[step.filled]).all() and (step.score[np.isfinite(step.score)] <= 0).all()
        before = step.masked
    assert not trace.steps[-1].masked.any()
    # each refinement step sends back a whole half of the latent frames and fills it again
    even = (np.arange(trace.ids.shape[0]) % 2 == 0)[:, None, None]
    for step in trace.steps[4:]:
        half = np.broadcast_to(even if "even" in step.phase else ~even, trace.ids.shape)
        assert np.array_equal(step.sent_back, half) and np.array_equal(step.filled, half)
        assert np.isposinf(step.score[~half]).all() and not step.filled[~half].any()
    sent_back = sum(s.sent_back.sum() for s in parallel)
    if critic_strength:  # the critic ranks every token and may send fixed ones back
        assert sent_back > 0 and all(np.isfinite(s.score).all() for s in parallel)
    else:  # plain MaskGIT never changes a fixed token: it is no longer ranked (+inf)
        assert sent_back == 0
        for prev, step in zip(parallel, parallel[1:]):
            assert np.isposinf(step.score[~prev.masked]).all() and np.isfinite(step.score[prev.masked]).all()
        # so a step's tokens are those at the end of the parallel steps where not masked: its frames decode those
        # ([MASK] as token 0)
        states = []
        model.sample(texts=PROMPT, num_frames=17, steps=4, seed=3, refine_passes=0, on_step=states.append)
        final = states[-1].ids[0].reshape(trace.ids.shape).numpy()
        last = torch.from_numpy(np.where(parallel[1].masked, 0, final).reshape(1, -1))
        assert np.abs(as_uint8(model.decode_ids(last)).astype(int) - parallel[1].frames).max() <= 1
    table = [s.row() for s in trace.steps]
    assert [r[0] for r in table] == list(range(1, 9)) and table[-1][1] == 0
    assert sum(r[2] for r in table) - sum(s.sent_back.sum() for s in trace.steps) == total
    assert [r[-1] for r in table] == [s.phase for s in trace.steps]


def test_a_schedule_that_ends_early_still_matches_the_generation(model):
    # 16 tokens over 64 steps: the schedule reaches 0 masked before the last step
    trace = insp.trace_decoding(model, PROMPT, 1, steps=64, seed=2, critic_strength=0.0)
    assert len(trace.steps) < 64 and not trace.steps[-1].masked.any()
    assert np.array_equal(trace.frames, as_uint8(model.sample(texts=PROMPT, num_frames=1, steps=64, seed=2)))


def test_step_image_draws_masked_filled_and_the_heat_map(model):
    trace = insp.trace_decoding(model, PROMPT, 17, steps=3, seed=0, guidance_scale=1.0)
    decoded, states, heat = insp.step_tiles(trace, 1, tile=64)  # 32 px frames x2, a token is 16 px
    step = trace.steps[1]
    assert decoded.shape == states.shape == heat.shape == (9, 64, 64, 3)
    assert np.array_equal(decoded, insp.upscale(step.frames[[0, 1, 3, 5, 7, 9, 11, 13, 15]], 2))
    t, r, c = np.argwhere(step.masked)[0]
    cell = states[t, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16]
    assert set(map(tuple, cell.reshape(-1, 3).astype(int))) == {(128, 128, 128), (70, 70, 70)}  # hatched grey
    t, r, c = np.argwhere(step.filled)[0]
    assert (states[t, 16 * r, 16 * c : 16 * c + 16] == insp.GREEN).all()  # outlined in green
    t, r, c = np.argwhere(~step.masked & ~step.filled)[0]  # fixed at step 1: as decoded, grey in the heat map
    assert np.array_equal(states[t, 16 * r + 5, 16 * c + 5], decoded[t, 16 * r + 5, 16 * c + 5])
    assert np.allclose(heat[t, 16 * r + 5, 16 * c + 5], 0.3 * decoded[t, 16 * r + 5, 16 * c + 5] + 0.7 * 128)
    t, r, c = np.argwhere(step.filled)[0]
    p = np.exp(step.score[t, r, c])
    assert np.allclose(
        heat[t, 16 * r + 5, 16 * c + 5],
        0.25 * decoded[t, 16 * r + 5, 16 * c + 5] + 0.75 * insp.colormap(np.array([p]))[0],
    )
    assert np.array_equal(insp.colormap(np.array([0.0, 1.0, np.nan])), [[68, 1, 84], [253, 231, 37], [128] * 3])
    image = insp.render_step(trace, 1)
    assert image.shape[0] > 3 * 128 and image.shape[1] > 9 * 128 and image.dtype == np.uint8


# ---- the tokenizer ------------------------------------------------------------------------------------------


def test_tokenizer_on_a_shapes_world_clip(model):
    frames, caption = insp_tok.world_clip(model, 4)
    source, expected_caption, _ = world.random_clip(4, 17)
    assert caption == expected_caption and frames.shape == (17, 32, 32, 3)
    resized = media.resize_video(torch.from_numpy(source).permute(3, 0, 1, 2).float() / 255, (32, 32))
    assert np.abs(frames.astype(int) - as_uint8(resized[None])).max() <= 1
    tok = insp_tok.tokenize(model, frames)
    video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 255
    ids = model.cvivit.encode(video)
    assert np.array_equal(tok.ids, ids[0].numpy()) and tok.ids.shape == (9, 4, 4)
    assert np.array_equal(tok.recon, as_uint8(model.cvivit.decode(ids).clamp(0, 1)))
    mse = ((frames / 255.0 - tok.recon / 255.0) ** 2).mean(axis=(1, 2, 3))
    assert np.allclose(tok.psnr, 10 * np.log10(1 / mse))
    assert tok.used == len(np.unique(tok.ids)) and tok.codebook == 64 and 1 <= tok.perplexity <= tok.used
    image = insp_tok.render_tokens(tok, 8, 2)
    assert image.shape[0] > 4 * 128 and image.shape[1] > 9 * 128


def test_uploads_are_cut_to_a_window_and_resized(model, tmp_path):
    long = moving_bar(40, 64, 96)
    media.write_mp4(tmp_path / "long.mp4", long, fps=8)
    frames, notes = insp_tok.read_video(tmp_path / "long.mp4", model)
    assert frames.shape == (17, 32, 32, 3)
    assert any("the first 17 frames are used" in n for n in notes) and any("96×64 to 32×32" in n for n in notes)
    decoded = read_frames(tmp_path / "long.mp4")[:17]
    expected = as_uint8(media.resize_video(torch.from_numpy(decoded).permute(3, 0, 1, 2).float() / 255, (32, 32))[None])
    assert np.abs(frames.astype(int) - expected).max() <= 1  # centre crop to square, then area resize
    media.write_gif(tmp_path / "short.gif", moving_bar(10, 32, 32), fps=8)
    frames, notes = insp_tok.read_video(tmp_path / "short.gif", model)
    assert frames.shape == (9, 32, 32, 3) and notes == ["10 frames cut to 9: the tokenizer takes 1 + 2·k frames"]
    Image.fromarray(moving_bar(1, 20, 20)[0, :, :, 0]).save(tmp_path / "grey.png")  # one grey image: one frame
    frames, _ = insp_tok.read_video(tmp_path / "grey.png", model)
    assert frames.shape == (1, 32, 32, 3) and (frames[..., 0] == frames[..., 2]).all()


def test_bad_uploads_are_refused_with_a_reason(model, tmp_path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.gif").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a video")
    for name in ("noise.mp4", "empty.gif", "notes.txt"):
        with pytest.raises(InputError, match=f"could not read {re.escape(name)} as a video or an image"):
            insp_tok.read_video(tmp_path / name, model)
    media.write_mp4(tmp_path / "big.mp4", moving_bar(5, 64, 96), fps=8)
    with pytest.raises(InputError, match=r"big\.mp4 is [\d.]+ MB; at most [\d.]+ MB is taken"):
        insp_tok.read_video(tmp_path / "big.mp4", model, max_bytes=1000)
    with pytest.raises(InputError, match="frames of 96×64 px are too large"):
        insp_tok.read_video(tmp_path / "big.mp4", model, max_side=64)


# ---- text control -------------------------------------------------------------------------------------------


def test_seeds_and_guidance_are_normal_generations(model):
    by_seed, by_guidance = insp.compare_seeds(
        model, PROMPT, [3, 1], guidance_scale=3.0, baseline_guidance=1.0, steps=2, temperature=1.0, critic_strength=0.0
    )
    for sample in by_seed:
        expected = model.sample(texts=PROMPT, num_frames=17, steps=2, guidance_scale=3.0, seed=sample.seed)
        assert np.array_equal(sample.frames, as_uint8(expected))
    assert [(x.seed, x.guidance_scale) for x in by_guidance] == [(3, 1.0), (3, 3.0)] and by_guidance[1] is by_seed[0]
    assert np.array_equal(
        by_guidance[0].frames, as_uint8(model.sample(texts=PROMPT, num_frames=17, steps=2, guidance_scale=1.0, seed=3))
    )
    assert not np.array_equal(by_seed[0].frames, by_seed[1].frames)
    assert not np.array_equal(by_guidance[0].frames, by_guidance[1].frames)
    seen = describe(by_seed[0].frames)  # world 2's analyser: it reads both worlds' clips, object by object
    assert by_seed[0].seen == [(d.colour, d.shape, d.size, d.motions[0]) for d in seen]
    assert by_seed[0].matches == score(PROMPT, seen).right
    other, _ = insp.compare_seeds(model, "hello world", [0], steps=1)
    assert other[0].matches is None  # not a shapes-world caption: nothing to match
    grid = insp.video_grid([x.frames for x in by_seed], ["seed 3", "seed 1"])
    assert grid.shape[0] == 17 and grid.shape[2] >= 2 * 256 and grid.shape[1] >= 256


def test_the_read_back_table_has_a_row_per_object():
    """Compare's table on rendered two-object clips (world 2), read back as the view reads its samples."""
    scene = Scene(Thing("red", "circle", "big", "right"), Thing("blue", "square", "small", "still"))
    samples = []
    for seed, wanted in ((4, scene), (5, Scene(Thing("green", "diamond", None, "grows")))):
        seen = describe(render_clip(wanted, seed=seed))
        samples.append(insp.Sample(seed, 3.0, None, [(d.colour, d.shape, d.size, d.motions[0]) for d in seen], True))
    samples.append(insp.Sample(6, 1.0, None, [], None))  # nothing seen, no shapes-world prompt
    assert insp.read_back_table(samples) == [
        [4, 3.0, "red", "circle", "big", "right", "yes"],
        [4, 3.0, "blue", "square", "small", "still", "yes"],
        [5, 3.0, "green", "diamond", "big", "grows", "yes"],
        [6, 1.0, "", "", "", "", ""],
    ]
    assert all(len(row) == len(insp.COMPARE_COLUMNS) for row in insp.read_back_table(samples))


# ---- the views: raw values, files, messages -----------------------------------------------------------------


def test_views_take_api_strings_and_write_files(model, tmp_path):
    steps = insp.steps_view(model, tmp_path / "a", " a red   circle moves right ", "9", "2", "1", "0", "3", "7")
    assert len(steps.gallery) == len(steps.table) == 2 + 2 and steps.seed == 7  # 2 parallel steps, refinement
    assert Image.open(steps.gallery[0][0]).size[0] > 5 * 128 and steps.gallery[1][1].startswith("step 2/4: ")
    assert steps.gallery[3][1].startswith("step 4/4 (refinement 1, odd frames): ")
    assert read_frames(steps.video).shape == (9, 512, 512, 3)
    assert "**a red circle moves right** · seed 7" in steps.summary and "5×4×4 = 80 tokens" in steps.summary
    assert "2 steps, then 1 refinement pass (2 steps)" in steps.summary
    assert insp.steps_view(model, tmp_path / "b", PROMPT, 1, 1, 1, 0, 3, -1).seed >= 0  # -1: a random seed
    tok = insp_tok.tokenizer_view(model, tmp_path / "c", None, "4")
    assert read_frames(tok.video).shape[0] == 17 and [r[0] for r in tok.psnr] == list(range(17))
    assert [r[2] for r in tok.psnr] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]
    assert "shapes-world clip 4" in tok.summary and re.search(r"\*\*\d+ of 64 codebook entries", tok.summary)
    cmp = insp.compare_view(model, tmp_path / "d", PROMPT, "2, 2, 1", "1", "1", "0", "3", "1")
    seen = list(dict.fromkeys(tuple(row[:2]) for row in cmp.table))  # a row per object seen
    assert seen == [(2, 3.0), (1, 3.0), (2, 1.0)]  # duplicates dropped
    assert read_frames(cmp.seeds_video).shape[0] == read_frames(cmp.guidance_video).shape[0] == 17
    assert Image.open(cmp.sheet).size[1] > 3 * 64


@pytest.mark.parametrize(
    "view, args, message",
    [
        ("steps", ("", 17, 2, 1, 0, 3, 0), "the prompt is empty"),
        ("steps", (None, 17, 2, 1, 0, 3, 0), "the prompt is empty"),
        ("steps", (5, 17, 2, 1, 0, 3, 0), "the prompt must be text"),
        ("steps", ("x" * 301, 17, 2, 1, 0, 3, 0), "longer than 300"),
        ("steps", (PROMPT, 18, 2, 1, 0, 3, 0), "frames must be between 1 and 17 (one window), got 18"),
        ("steps", (PROMPT, "all", 2, 1, 0, 3, 0), "frames must be a number"),
        ("steps", (PROMPT, 17, 0, 1, 0, 3, 0), "steps must be between 1 and 64"),
        ("steps", (PROMPT, 17, 2, 1, 0.5, 3, 0), "no Token Critic"),
        ("tokenizer", (None, -1), "clip seed must be between 0"),
        ("tokenizer", (None, "x"), "clip seed must be a number"),
        ("compare", (PROMPT, "a, b", 2, 1, 0, 3, 1), "seed must be a number, got 'a'"),
        ("compare", (PROMPT, "", 2, 1, 0, 3, 1), "give 1 to 8 seeds"),
        ("compare", (PROMPT, ",".join(map(str, range(9))), 2, 1, 0, 3, 1), "give 1 to 8 seeds"),
        ("compare", (PROMPT, "0", 2, 1, 0, 3, 31), "baseline guidance must be between 0 and 30"),
    ],
)
def test_views_explain_bad_inputs_and_write_nothing(view, args, message, tmp_path):
    no_critic = tiny_phenaki(critic=False)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=re.escape(message)):
        {"steps": insp.steps_view, "tokenizer": insp_tok.tokenizer_view, "compare": insp.compare_view}[view](
            no_critic, out, *args
        )
    assert not out.exists()


# ---- the running app, through gradio_client -------------------------------------------------------------------


def test_api_names_and_parameters(server):
    endpoints = client(server).view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = {
        name: [p["parameter_name"] for p in endpoints[name]["parameters"]]
        for name in ("/inspect_steps", "/inspect_tokenizer", "/compare_seeds")
    }
    assert params == {
        "/inspect_steps": [
            "prompt",
            "frames",
            "steps",
            "temperature",
            "critic_strength",
            "guidance_scale",
            "seed",
            "refine_passes",
        ],
        "/inspect_tokenizer": ["video", "clip_seed"],
        "/compare_seeds": [
            "prompt",
            "seeds",
            "steps",
            "temperature",
            "critic_strength",
            "guidance_scale",
            "baseline_guidance",
            "refine_passes",
        ],
    }
    # refine_passes comes last and may be left out: callers written before it still work
    refine = [p for p in endpoints["/inspect_steps"]["parameters"] if p["parameter_name"] == "refine_passes"][0]
    assert refine["parameter_has_default"] and refine["parameter_default"] == 1


def test_api_steps_end_in_the_frames_that_generate_makes(server):
    c = client(server)
    gallery, table, video, summary = c.predict(PROMPT, 8, "3", 1.0, 0.5, 3.0, 11, api_name="/inspect_steps")
    refinement = [f"refinement 1, {half} frames" for half in ("even", "odd")]
    assert [item["caption"].split(":")[0] for item in gallery] == (
        ["step 1/5", "step 2/5", "step 3/5"] + [f"step {i}/5 ({p})" for i, p in enumerate(refinement, 4)]
    )
    assert all(Image.open(item["image"]).size[0] > 5 * 128 for item in gallery)
    assert table["headers"] == insp.STEP_COLUMNS and [r[0] for r in table["data"]] == list(range(1, 6))
    assert table["data"][-1][1] == 0 and "seed 11" in summary and "then 1 refinement pass (2 steps)" in summary
    gallery, table, video_plain, summary = c.predict(PROMPT, 8, "3", 1.0, 0.5, 3.0, 11, 0, api_name="/inspect_steps")
    assert len(gallery) == 3 and [r[-1] for r in table["data"]] == ["parallel"] * 3
    assert "refinement pass" not in summary
    assert np.abs(read_frames(video_plain).astype(int) - read_frames(video)).mean() > 0  # refinement changed them
    *_, mp4, _, seed, _ = c.predict(
        {"headers": ["prompt", "seconds"], "data": [[PROMPT, 1]]}, 3, 1.0, 0.5, 3.0, 11, api_name="/generate"
    )  # 8 frames: one window
    inspected, generated = read_frames(video), read_frames(mp4)
    assert inspected.shape == generated.shape == (8, 512, 512, 3) and seed == 11
    assert np.abs(inspected.astype(int) - generated).mean() < 1  # the same frames, encoded the same way
    model = Phenaki.from_pretrained(tiny_model_dir(), device="cpu")
    other = as_uint8(model.sample(texts=PROMPT, num_frames=8, steps=3, critic_strength=0.5, seed=12))
    assert np.abs(inspected.astype(int) - media.upscale(other, 16)).mean() > 5  # another seed: other frames


def test_api_tokenizer_on_an_upload_and_on_a_clip(server, model, tmp_path):
    from gradio_client import handle_file

    c = client(server)
    media.write_mp4(tmp_path / "clip.mp4", moving_bar(30, 48, 64), fps=8)
    video, plot, grid, summary = c.predict(handle_file(str(tmp_path / "clip.mp4")), 0, api_name="/inspect_tokenizer")
    assert read_frames(video).shape[0] == 17 and read_frames(video).shape[2] >= 2 * 256
    assert plot["columns"] == ["frame", "PSNR (dB)", "latent frame"] and [r[0] for r in plot["data"]] == list(range(17))
    assert "`clip.mp4`" in summary and "the first 17 frames are used" in summary and "of 64 codebook" in summary
    assert Image.open(grid).size[0] > 9 * 128
    served = Phenaki.from_pretrained(tiny_model_dir(), device="cpu")
    expected = insp_tok.tokenize(served, insp_tok.world_clip(served, 3)[0])
    video, plot, grid, summary = c.predict(None, 3, api_name="/inspect_tokenizer")
    assert "shapes-world clip 3" in summary and f"**{expected.used} of 64 codebook entries" in summary
    assert np.allclose([r[1] for r in plot["data"]], expected.psnr, atol=0.01)


def test_api_tokenizer_refuses_unreadable_and_too_large_files(server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    c = client(server)
    runs = len(server.runs())
    (tmp_path / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(20000))
    with pytest.raises(AppError, match="could not read broken.mp4 as a video or an image"):
        c.predict(handle_file(str(tmp_path / "broken.mp4")), 0, api_name="/inspect_tokenizer")
    with open(tmp_path / "huge.mp4", "wb") as f:  # sparse: 51 MB on the wire, nothing on disk
        f.truncate(51 * 2**20)
    with pytest.raises(AppError, match=r"huge.mp4 is 51.0 MB; at most 50 MB"):
        c.predict(handle_file(str(tmp_path / "huge.mp4")), 0, api_name="/inspect_tokenizer")
    assert len(server.runs()) == runs and server.alive()


def test_api_compare_seeds_and_bad_inputs(server):
    from gradio_client.exceptions import AppError

    c = client(server)
    seeds_video, guidance_video, sheet, table, summary = c.predict(
        PROMPT, "4, 5", 1, 1.0, 0.0, 3.0, 1.0, api_name="/compare_seeds"
    )
    assert read_frames(seeds_video).shape[0] == read_frames(guidance_video).shape[0] == 17
    assert read_frames(seeds_video).shape[2] >= 2 * 256 and Image.open(sheet).size[1] > 3 * 64
    assert list(dict.fromkeys(tuple(row[:2]) for row in table["data"])) == [(4, 3.0), (5, 3.0), (4, 1.0)]
    assert table["headers"] == insp.COMPARE_COLUMNS  # a row per object seen
    assert "seeds 4, 5 at guidance 3; seed 4 at guidance 1 and 3" in summary
    runs = len(server.runs())
    for args, message in [
        (("  ", "1", 1, 1.0, 0.0, 3.0, 1.0), "the prompt is empty"),
        ((PROMPT, "lucky", 1, 1.0, 0.0, 3.0, 1.0), "seed must be a number, got 'lucky'"),
    ]:
        with pytest.raises(AppError, match=re.escape(message)):
            c.predict(*args, api_name="/compare_seeds")
    with pytest.raises(AppError, match="the prompt is empty"):
        c.predict("", 17, 2, 1.0, 0.0, 3.0, 0, api_name="/inspect_steps")
    assert len(server.runs()) == runs and server.alive()
    assert server.trap.hits == []  # nothing here calls outside
