"""The demo's page built in-process: `phenaki.demo.ui.build_demo` around the tiny random model (its API endpoints,
its handlers called directly, ZeroGPU's wrapping), and `phenaki.demo.app` turning the environment and options into
a queued page, without launching a server (tests/test_app.py drives the running one)."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import gradio as gr
import pytest
from app_server import FailsAfterFirstWindow, tiny_model_dir
from conftest import tiny_phenaki

from phenaki.demo import app, startup
from phenaki.demo.live_session import LiveControl
from phenaki.demo.sessions import QUEUED, STOP
from phenaki.demo.start_input import START_NOTE
from phenaki.demo.ui import build_demo, launch_options
from phenaki.shapes.vocabulary import world_vocabulary

TWO_SCENES = [["a red circle moves right", 2], ["the red circle moves up", 2]]  # 16 + 16 frames at 8 fps
ENDPOINTS = {
    "/generate": [
        "timeline",
        "steps",
        "temperature",
        "critic_strength",
        "guidance_scale",
        "seed",
        "refine_passes",
        "start",
    ],
    "/stop": [],
    "/live": ["prompt", "steps", "temperature", "critic_strength", "guidance_scale", "seed", "refine_passes"],
    "/steer": ["prompt"],
    "/stop_live": [],
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
    "/inspect_words": ["prompt", "steps", "temperature", "critic_strength", "guidance_scale", "seed", "refine_passes"],
}


def table(rows):
    return {"headers": ["prompt", "seconds"], "data": rows}


def handler(demo: gr.Blocks, name: str):
    """The function wired to an event, found by its name (what the browser and API callers reach)."""
    return next(f.fn for f in demo.fns.values() if f.name == name)


def count_frames(path) -> int:
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        return sum(1 for _ in reader)


@pytest.fixture(scope="module")
def no_critic():
    return tiny_phenaki(critic=False)


def test_build_demo_serves_the_named_endpoints_and_nothing_else(tiny_model, tmp_path):
    demo = build_demo(tiny_model, runs_dir=tmp_path)
    api = demo.get_api_info(all_endpoints=True)  # the public ones and the undocumented (not MCP tools: test_mcp.py)
    endpoints = {name: e for name, e in api["named_endpoints"].items() if not name.endswith("_hint")}  # test_demo_hints
    named = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in endpoints.items()}
    assert named == ENDPOINTS and api["unnamed_endpoints"] == {}  # the page's own helpers are private
    returns = {name: len(e["returns"]) for name, e in endpoints.items()}
    assert returns == {
        "/generate": 8,  # the first window's emerging picture last (phenaki/demo/ui_emerging.py)
        "/stop": 1,
        "/live": 6,
        "/steer": 1,
        "/stop_live": 1,
        "/inspect_steps": 4,
        "/inspect_tokenizer": 4,
        "/compare_seeds": 5,
        "/inspect_words": 4,
    }
    for name in ("/generate", "/live", "/inspect_steps", "/compare_seeds", "/inspect_words"):  # last, may be left out
        refine = api["named_endpoints"][name]["parameters"][-2 if name == "/generate" else -1]
        assert refine["parameter_has_default"] and refine["parameter_default"] == 1
    start = api["named_endpoints"]["/generate"]["parameters"][-1]  # after refine_passes: may be left out too
    assert start["parameter_has_default"] and start["parameter_default"] is None
    # one model: the generations, live stories and Inspect views wait for each other; Stop and Steer never wait
    queued = {f.api_name: (f.concurrency_id, f.concurrency_limit) for f in demo.fns.values() if f.queue and f.api_name}
    at_once = ("/stop", "/steer", "/stop_live")
    assert {name: queued.get(name[1:]) for name in ENDPOINTS} == {
        name: None if name in at_once else ("generate", 1) for name in ENDPOINTS
    }
    assert not list(tmp_path.iterdir())  # building makes no files


def test_every_tab_s_sampling_sliders_take_their_range_and_default_from_sampling_settings(no_critic, tmp_path):
    from phenaki.demo.stories import DEFAULTS, LIMITS

    sliders = {
        c.elem_id: c for c in build_demo(no_critic, runs_dir=tmp_path).blocks.values() if isinstance(c, gr.Slider)
    }
    ids = {
        "steps": ["steps", "live-steps", "steps-steps", "cmp-steps", "words-steps"],
        "guidance_scale": [
            "guidance",
            "live-guidance",
            "steps-guidance_scale",
            "cmp-guidance_scale",
            "words-guidance_scale",
        ],
        "critic_strength": [
            "critic",
            "live-critic",
            "steps-critic_strength",
            "cmp-critic_strength",
            "words-critic_strength",
        ],
        "refine_passes": ["refine", "live-refine", "steps-refine_passes", "cmp-refine_passes", "words-refine_passes"],
    }
    for name, elem_ids in ids.items():
        for elem_id in elem_ids:
            slider = sliders[elem_id]
            assert (slider.minimum, slider.maximum) == LIMITS[name] and slider.value == DEFAULTS[name], elem_id
            assert slider.interactive is not False or name == "critic_strength", elem_id
    assert all(sliders[e].interactive is False for e in ids["critic_strength"])  # this model has no critic


def test_the_environment_configures_the_page():
    """`phenaki.demo.app` on a model without a Token Critic, 2 generations at once, a queue of 5, the examples."""
    environ = dict(
        PHENAKI_MODEL=str(tiny_model_dir(critic=False)),
        PHENAKI_DEVICE="cpu",
        PHENAKI_CONCURRENCY="2",
        PHENAKI_QUEUE_SIZE="5",
        OMP_NUM_THREADS="1",
    )
    demo, line = app.demo_from_environment(environ)
    assert line.startswith(
        f"Phenaki demo: model {environ['PHENAKI_MODEL']} on cpu; 2 generation(s) at once, queue of 5; live preview"
    )
    critic = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "critic")
    assert critic.interactive is False and "no Token Critic" in critic.info
    config = demo.config
    text = json.dumps(config, ensure_ascii=False)
    assert "32×32 px" in text and "8 fps" in text and "cpu" in text and environ["PHENAKI_MODEL"] in text
    generate = next(d for d in config["dependencies"] if d.get("api_name") == "generate")
    assert [demo.blocks[i].label for i in generate["inputs"]] == [
        "Timeline",
        "Steps",
        "Temperature",
        "Critic strength",
        "Guidance scale",
        "Seed (-1: random)",
        "Refinement passes",
        "Start: an image or a video",
    ]
    generate_fn = next(f for f in demo.fns.values() if f.api_name == "generate")
    assert generate_fn.queue and generate_fn.concurrency_limit == 2 and demo._queue.max_size == 5
    # the examples fill the table and the seed, and are not cached: nothing is generated at start-up
    dataset = next(b for b in demo.blocks.values() if isinstance(b, gr.Dataset))
    examples = startup.load_examples(startup.bundled(startup.EXAMPLES_DIR), world_vocabulary("shapes"))
    assert len(dataset.samples) == len(examples) >= 3  # the world-1 examples: this model knows world 1's words
    assert sorted(f.name for f in demo.fns.values() if f.name.startswith("load_example")) == ["load_example"]
    launch = launch_options()
    assert launch["share"] is False and launch["ssr_mode"] is False
    assert "GoogleFont" not in repr(launch["theme"]._font)


def test_options_win_over_the_environment_and_bad_values_are_one_line(capsys):
    environ = app.environment(
        ["--model", "org/model", "--threads", "3", "--port", "7999", "--live-max-seconds", "60"],
        "phenaki demo",
        {"PHENAKI_MODEL": "weights", "PHENAKI_QUEUE_SIZE": "4"},
    )
    assert environ == {
        "PHENAKI_MODEL": "org/model",
        "PHENAKI_THREADS": "3",
        "GRADIO_SERVER_PORT": "7999",
        "PHENAKI_QUEUE_SIZE": "4",
        "PHENAKI_LIVE_MAX_SECONDS": "60",
    }
    with pytest.raises(SystemExit) as exit_:
        app.environment(["--concurrency", "0"], "phenaki demo", {})
    assert (
        exit_.value.code == 2
        and "--concurrency: must be a whole number, at least 1; got '0'" in capsys.readouterr().err
    )
    for name, value, message in [
        ("PHENAKI_CONCURRENCY", "two", "PHENAKI_CONCURRENCY must be a whole number, got 'two'"),
        ("PHENAKI_QUEUE_SIZE", "0", "PHENAKI_QUEUE_SIZE must be at least 1"),
        ("PHENAKI_LIVE_MAX_SECONDS", "0", "PHENAKI_LIVE_MAX_SECONDS must be at least 1"),
        ("PHENAKI_LIVE_MAX_SECONDS", "1.5", "PHENAKI_LIVE_MAX_SECONDS must be a whole"),
    ]:
        with pytest.raises(startup.StartupError, match=message):
            app.demo_from_environment({name: value})


def test_the_bundled_folders_are_found_next_to_the_package_or_in_the_working_directory(tmp_path):
    checkout, installed, cwd = tmp_path / "repo", tmp_path / "site-packages", tmp_path / "cwd"
    for folder in (checkout / "weights", checkout / "examples", installed / "phenaki", cwd / "weights"):
        folder.mkdir(parents=True)
    assert startup.bundled("weights", checkout, cwd) == (checkout / "weights").resolve()  # the checkout first
    assert startup.bundled("weights", installed, cwd) == (cwd / "weights").resolve()
    assert startup.bundled("examples", installed, cwd) is None
    assert startup.PACKAGE_ROOT == startup.bundled("weights").parent  # this checkout has its bundled model
    # installed without the model and run elsewhere: PHENAKI_MODEL is needed, and the message says so
    with pytest.raises(startup.StartupError) as error:
        startup.model_source({}, default=None)
    message = str(error.value)
    assert "PHENAKI_MODEL is not set" in message and "weights/" in message and "installed package" in message
    assert startup.model_source({"PHENAKI_MODEL": "org/model"}, default=None) == ("org/model", None)


def test_generate_handler_directly(no_critic, tmp_path):
    generate = handler(build_demo(no_critic, runs_dir=tmp_path, live_preview=True), "generate")
    with pytest.raises(gr.Error, match="no Token Critic"):
        next(generate(table([["a red circle", 1]]), 2, 1, 0.5, 3, 0, 2, None))
    with pytest.raises(gr.Error, match="row 1 has no prompt"):
        next(generate(table([["", 1]]), 2, 1, 0, 3, 0, 2, None))
    assert not list(tmp_path.glob("*/run-*"))  # bad input: no run folder
    outputs = list(generate(table([["a red circle moves right", "1"]]), "2", "1", "0", "3", "7", "1", None))
    assert len(outputs) >= 3 and all(len(o) == 8 for o in outputs)
    assert outputs[0][2].count("Starting") == 1 and outputs[0][7].visible is False
    # the first window's emerging picture (a PNG, shown) until its clip is in the live preview, then hidden
    first_sheet = next(i for i, o in enumerate(outputs) if o[1] is not None)
    first_clip = next(i for i, o in enumerate(outputs) if o[0] is not None)
    assert outputs[1][7].visible is True and outputs[1][7].value["path"].endswith(".png") and outputs[1][1] is None
    assert 1 < first_sheet < first_clip and outputs[first_sheet][1].endswith(".png")
    assert outputs[first_sheet][7].visible is True and outputs[first_clip][7].visible is False
    live, sheet, status, video, mp4, gif, seed, picture = outputs[-1]
    assert "Done" in status and seed == 7 and video == mp4 and count_frames(mp4) == 8 and gif.endswith(".gif")
    assert picture is None  # a plain value (MCP tool results end with the seed); .then hides the picture
    assert [p.parent.name for p in tmp_path.glob("*/run-*")] == ["anonymous"]  # a direct call has no session


def test_failure_mid_story_shows_the_error_and_keeps_the_frames(no_critic, tmp_path):
    generate = handler(build_demo(FailsAfterFirstWindow(no_critic), runs_dir=tmp_path), "generate")
    # outside a request gr.Warning becomes a Python warning; in the browser, a message next to the frames
    with pytest.warns(UserWarning, match="failed in scene 1: RuntimeError: CUDA out of memory"):
        outputs = list(generate(table(TWO_SCENES), 2, 1, 0, 3, 1, 2, None))
    live, sheet, status, video, mp4, gif, seed, _ = outputs[-1]
    assert "Failed in scene 1/2" in status and "CUDA out of memory (simulated)" in status
    assert "16/32 frames" in status and count_frames(mp4) == 16 and sheet.endswith(".png") and seed == 1


def test_prepare_stop_and_closing_the_tab_use_the_session_s_flags(no_critic, tmp_path):
    demo = build_demo(no_critic, runs_dir=tmp_path)
    prepare, stop, unload = handler(demo, "prepare"), handler(demo, "stop"), handler(demo, "on_unload")
    alice, bob = SimpleNamespace(session_hash="alice"), SimpleNamespace(session_hash="bob")
    assert stop(alice) == gr.skip()  # nothing queued or running: Stop does nothing
    *cleared, status, button = prepare(table(TWO_SCENES), 2, 1, 0, 3, 0, 1, None, alice)  # None: no start
    assert cleared == [None, None, None] and "Waiting for a free slot" in status and button.interactive is False
    assert (tmp_path / "alice" / QUEUED).exists() and not (tmp_path / "alice" / STOP).exists()
    assert "Stopping after the current window" in stop(alice) and (tmp_path / "alice" / STOP).exists()
    unload(bob)
    assert not (tmp_path / "bob").exists()  # another session's tab closing touches nothing of alice's
    with pytest.raises(gr.Error, match="row 1 has no prompt"):
        prepare(table([["", 1]]), 2, 1, 0, 3, 0, 1, None, bob)
    assert not (tmp_path / "bob").exists()  # a bad input queues nothing


def endpoint(demo: gr.Blocks, api_name: str):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def test_live_steer_stop_and_closing_the_tab_reach_only_the_session_s_story(no_critic, tmp_path):
    demo = build_demo(no_critic, runs_dir=tmp_path)
    steer, stop_live = endpoint(demo, "steer"), endpoint(demo, "stop_live")
    unloads = [f.fn for f in demo.fns.values() if f.name.startswith("on_unload")]
    alice, bob = SimpleNamespace(session_hash="alice"), SimpleNamespace(session_hash="bob")
    with pytest.raises(gr.Error, match="No live story is running in this session"):
        steer("the red circle moves up", alice)
    assert stop_live(alice) == "No live story is running in this session."
    story = LiveControl(tmp_path / "alice")
    assert story.begin()  # alice's live story runs
    assert steer("  the red circle   moves up ", alice) == "Next window: *the red circle moves up*"
    assert story.pending_steer() == "the red circle moves up"
    for bad, message in (("", "the new prompt is empty"), ("z" * 301, "longer than 300 characters")):
        with pytest.raises(gr.Error, match=message):
            steer(bad, alice)
    with pytest.raises(gr.Error, match="No live story is running"):
        steer("a blue square moves left", bob)
    assert stop_live(bob) == "No live story is running in this session."
    for unload in unloads:  # bob closes his tab
        unload(bob)
    assert story.pending_steer() == "the red circle moves up" and not story.stop_requested()
    assert not (tmp_path / "bob").exists()
    assert "Stopping after the current window" in stop_live(alice) and story.stop_requested()
    story.end()
    story.begin()
    for unload in unloads:  # alice closes hers: her live story stops at the next window
        unload(alice)
    assert story.stop_requested()


def test_live_handler_directly_and_open_in_generate(no_critic, tmp_path):
    demo = build_demo(no_critic, runs_dir=tmp_path, live_preview=True, live_max_seconds=2)
    story = handler(demo, "live")("a red circle moves right", "2", "1", "0", "3", "7", "1", None)
    outputs = []
    while not outputs or not isinstance(outputs[-1][2], str):  # to the end (Gradio copies its files, then asks on)
        outputs.append(next(story))
    first_clip = next(i for i, o in enumerate(outputs) if isinstance(o[0], str))
    assert "Starting" in outputs[0][1] and outputs[first_clip][0].endswith(".mp4")
    assert "Playing scene 1" in outputs[first_clip][1] and outputs[first_clip][5].visible is False
    assert first_clip > 1 and all(o[5].visible and o[5].value["path"].endswith(".png") for o in outputs[1:first_clip])
    video, status, mp4, timeline_file, seed, picture = outputs[-1]
    assert picture is None
    assert "Reached the length limit" in status and count_frames(mp4) == 17 and seed == 7  # one window: 2.1 s
    assert not list(tmp_path.glob("anonymous/LIVE_*"))  # its flags are gone
    kept = tmp_path / "kept.json"  # as Gradio's copy
    kept.write_bytes(open(timeline_file, "rb").read())
    assert next(story, None) is None and not list(tmp_path.glob("anonymous/run-*"))  # then its files go
    timeline_file = str(kept)
    rows, seed_box, steps, guidance, temperature, critic, refine, tabs, *start = handler(demo, "open_in_generate")(
        timeline_file
    )
    assert rows == [["a red circle moves right", 17 / 8]] and seed_box.value == 7 and tabs.selected == "generate"
    assert start == [None, None, START_NOTE]  # no start left loaded (tests/test_start_app.py)
    assert (steps, guidance, temperature, critic, refine) == (2, 3.0, 1.0, 0.0, 1)
    with pytest.raises(gr.Error, match="no finished live story yet"):
        handler(demo, "open_in_generate")(None)
    with pytest.raises(gr.Error, match="the prompt is empty"):
        next(handler(demo, "live")(" ", 2, 1, 0, 3, 7, 1, None))
    with pytest.raises(gr.Error, match="no Token Critic"):
        prepare = next(f.fn for f in demo.fns.values() if f.fn.__qualname__ == "LiveHandlers.prepare")
        prepare("a red circle", 2, 1, 0.5, 3, 7, 1, SimpleNamespace(session_hash="carol"))
    assert not (tmp_path / "carol").exists()  # a bad input queues nothing


SPACES_STUB = """
import inspect

calls = []


def GPU(task=None, *, duration=None, size=None):
    def wrap(fn):
        def record(args, kwargs):
            calls.append(duration(*args, **kwargs) if callable(duration) else duration)

        if inspect.isgeneratorfunction(fn):
            def wrapped(*args, **kwargs):
                record(args, kwargs)
                yield from fn(*args, **kwargs)
        else:
            def wrapped(*args, **kwargs):
                record(args, kwargs)
                return fn(*args, **kwargs)
        wrapped.zerogpu = None
        return wrapped
    return wrap(task) if callable(task) else wrap
"""


def test_zero_gpu_wraps_the_model_parts_with_a_duration_from_the_request(monkeypatch, tiny_model, tmp_path):
    """With the `spaces` package present, the story runs under spaces.GPU(duration=<a function of the call>) and
    an Inspect view under spaces.GPU(duration=60); here a stand-in for the package (the real one is only active on
    a ZeroGPU Space) records the calls."""
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "__init__.py").write_text(SPACES_STUB)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    gpu = app.zero_gpu()
    spaces = sys.modules["spaces"]
    assert gpu is spaces.GPU
    demo = build_demo(tiny_model, runs_dir=tmp_path / "runs", gpu=gpu)
    outputs = list(handler(demo, "generate")(table([["a red circle", 1]]), 1, 1, 0, 3, 0, 2, None))
    assert "Done" in outputs[-1][2]
    assert len(spaces.calls) == 1 and isinstance(spaces.calls[0], int) and 30 <= spaces.calls[0] <= 120
    video, psnr, grid, summary = handler(demo, "inspect_tokenizer")(None, 3, None)
    assert spaces.calls[1:] == [60] and "shapes-world clip 3" in summary
    monkeypatch.delitem(sys.modules, "spaces")
