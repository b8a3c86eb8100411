"""The demo as an MCP server for agents: `python app.py` (the shared server, on the tiny random model) serves the
tools listed at /gradio_api/mcp/schema, described from their docstrings (phenaki.demo.tool_docs), and a real MCP
client (the `mcp` package, streamable HTTP at README.md's URL, and SSE) calls `generate` and gets a video it can
read back."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import urllib.request

import imageio.v2 as imageio
import numpy as np
from app_server import ROOT, client
from gradio.utils import get_function_description

from phenaki.demo import app, stories, tool_docs
from phenaki.demo.ui import build_demo
from phenaki.sampling import SamplingSettings

TOOLS = ["generate", "inspect_steps", "inspect_tokenizer", "compare_seeds", "inspect_words"]
HIDDEN = ["/stop", "/live", "/steer", "/stop_live"]  # callable through gradio_client, but not tools
GENERATE = ["timeline", "steps", "temperature", "critic_strength", "guidance_scale", "seed", "refine_passes", "start"]
SAMPLING = ("steps", "temperature", "critic_strength", "guidance_scale", "refine_passes")
NOT_PARAMETERS = ("self", "request", "progress")  # Gradio fills these; they are not in a tool's schema
ONE_SCENE = {"headers": ["prompt", "seconds"], "data": [["a red circle moves right", 1]]}  # 8 frames at 8 fps
MP4_URL = re.compile(r"http://127\.0\.0\.1:\d+/gradio_api/file=[^'\"\s]+\.mp4")


def test_flat_docstring_joins_wrapped_lines_and_writes_out_the_sampling_settings():
    doc = """Does a thing
        over two lines.

        Args:
            timeline: the scenes, wrapped
                onto a second line.
            steps: see SamplingSettings
            seed: a whole number.

        Returns:
            (a video, a seed),
            on two lines."""
    flat = tool_docs.flat_docstring(doc).splitlines()
    assert flat[:3] == ["Does a thing", "over two lines.", ""]
    assert flat[4:7] == [
        "    timeline: the scenes, wrapped onto a second line.",
        f"    steps: {tool_docs.sampling_text('steps')}",
        "    seed: a whole number.",
    ]
    assert flat[-1] == "    (a video, a seed), on two lines."
    (low, high), default = stories.LIMITS["steps"], SamplingSettings.steps
    meaning = SamplingSettings.help_texts()["steps"]
    assert tool_docs.sampling_text("steps") == f"{meaning}; a whole number from {low} to {high}, default {default}"


def test_the_tools_are_the_public_endpoints_and_gradio_reads_a_description_of_every_parameter(tiny_model, tmp_path):
    demo = build_demo(tiny_model, runs_dir=tmp_path)
    public = demo.get_api_info()["named_endpoints"]  # what Gradio's MCP server makes tools of
    assert list(public) == [f"/{name}" for name in TOOLS]
    every = demo.get_api_info(all_endpoints=True)["named_endpoints"]
    assert all(every[name]["api_visibility"] == "undocumented" for name in HIDDEN)
    for fn in (f.fn for f in demo.fns.values() if f"/{f.api_name}" in public):
        description, parameters, returns = get_function_description(fn)
        assert description and returns, fn.__name__
        names = [name for name in parameters if name not in NOT_PARAMETERS]
        assert names == [p["parameter_name"] for p in public[f"/{fn.__name__}"]["parameters"]]
        assert all(parameters[name] for name in names), (fn.__name__, parameters)
        for name in set(names) & set(SAMPLING):  # meaning, range and default from SamplingSettings
            assert parameters[name].startswith(tool_docs.sampling_text(name)), (fn.__name__, name)
    generate = next(f.fn for f in demo.fns.values() if f.api_name == "generate")
    _, parameters, _ = get_function_description(generate)
    limits = f"at most {stories.MAX_SCENES} scenes, {stories.MAX_PROMPT_CHARS} characters a prompt and "
    assert limits + f"{stories.MAX_STORY_SECONDS:g} seconds in all" in parameters["timeline"]


def readme_mcp_url() -> str:
    """The local demo's URL in README.md's MCP client settings (the JSON block after "**For agents (MCP):**")."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("**For agents (MCP):**", 1)[1]
    settings = json.loads(re.search(r"^```json\n(.*?)^```", section, re.S | re.M).group(1))
    return settings["mcpServers"]["phenaki"]["url"]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def read_frames(url: str, tmp_path) -> np.ndarray:
    path = tmp_path / url.rsplit("/", 1)[-1]
    with urllib.request.urlopen(url, timeout=30) as reply:
        path.write_bytes(reply.read())
    with imageio.get_reader(path) as reader:  # not list(reader): its length is inf, and list() preallocates
        return np.stack([frame for frame in reader])


def test_the_app_serves_mcp_where_the_mcp_package_is_installed_unless_told_not_to(monkeypatch):
    assert app.serve_mcp({}) == (True, "MCP tools at /gradio_api/mcp/")
    assert app.serve_mcp({"GRADIO_MCP_SERVER": "False"}) == (False, "MCP tools off (GRADIO_MCP_SERVER)")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else find_spec(name, *a))
    served, note = app.serve_mcp({"GRADIO_MCP_SERVER": "true"})
    assert not served and "pip install 'gradio[mcp]'" in note


def test_the_schema_lists_the_tools_with_typed_and_described_parameters(server):
    assert "MCP tools at /gradio_api/mcp/" in server.log()
    tools = {tool["name"]: tool for tool in get_json(server.url + "gradio_api/mcp/schema")}
    assert list(tools) == TOOLS
    generate = tools["generate"]
    assert "timeline of scenes" in generate["description"] and "Returns:" in generate["description"]
    properties = generate["inputSchema"]["properties"]
    assert list(properties) == GENERATE
    timeline = properties["timeline"]
    assert timeline["type"] == "object" and {"headers", "data"} <= set(timeline["required"])
    assert '{"headers": ["prompt", "seconds"], "data": [["a red circle moves right", 2]' in timeline["description"]
    assert properties["seed"]["type"] == "integer" and "-1 for a random one" in properties["seed"]["description"]
    start = properties["start"]  # optional: an image or a video file the story begins from
    assert start["format"].startswith("Gradio File Input") and "first frame" in start["description"]
    assert "start" not in generate["inputSchema"].get("required", [])
    for name in SAMPLING:
        assert properties[name]["type"] == "number"
        assert properties[name]["description"].startswith(tool_docs.sampling_text(name))
    assert properties["steps"]["default"] == SamplingSettings.steps
    low, high = stories.LIMITS["steps"]
    assert f"from {low} to {high}" in properties["steps"]["description"]
    # the Inspect views: every parameter described too
    for name in TOOLS[1:]:
        assert all(p["description"] for p in tools[name]["inputSchema"]["properties"].values()), name
    tokenizer = tools["inspect_tokenizer"]["inputSchema"]
    assert tokenizer["properties"]["video"]["format"].startswith("Gradio File Input") and "required" not in tokenizer


async def _call_generate(url: str, arguments: dict, progress: list | None):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def on_progress(value, total, message):
        progress.append(message)

    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        listed = [tool.name for tool in (await session.list_tools()).tools]
        result = await session.call_tool(
            "generate", arguments, progress_callback=on_progress if progress is not None else None
        )
        return listed, result


def test_an_mcp_client_calls_generate_and_gets_a_video(server, tmp_path):
    """Over streamable HTTP, as MCP clients connect: with a progress token (the client then hears how far the story
    is, and each output comes as its own content) and without (all outputs in one text); both give the MP4, which
    has the story's frames, the same as /generate makes through gradio_client at the same seed."""
    local = "http://127.0.0.1:7860/"  # where `python app.py` serves by default
    assert readme_mcp_url().startswith(local)
    url = readme_mcp_url().replace(local, server.url)  # the README's settings, on the test's port
    arguments = {"timeline": ONE_SCENE, "steps": 2, "seed": 7}
    progress: list = []
    listed, result = asyncio.run(_call_generate(url, arguments, progress))
    assert listed == TOOLS and not result.isError, result.content
    texts = [c.text for c in result.content if c.type == "text"]
    mp4 = [t for t in texts if MP4_URL.fullmatch(t)]
    assert len(set(mp4)) == 1 and texts[-1] == "7", texts  # the MP4 (video and file outputs), and the seed used
    assert any("Done" in t for t in texts) and any(c.type == "image" for c in result.content)  # status, frames
    assert any("Scene 1/1" in (m or "") for m in progress), progress
    frames = read_frames(mp4[0], tmp_path)
    assert frames.shape[:3] == (8, 512, 512)  # 1 s at 8 fps, the tiny model's 32x32 frames shown 16x

    _, plain = asyncio.run(_call_generate(url, arguments, None))
    assert not plain.isError and len(plain.content) == 1
    assert np.array_equal(read_frames(MP4_URL.findall(plain.content[0].text)[-1], tmp_path), frames)
    *_, by_api, _gif, seed = client(server).predict(ONE_SCENE, 2, 1.0, 0.0, 3.0, 7, api_name="/generate")
    with imageio.get_reader(by_api) as reader:
        assert seed == 7 and np.array_equal(np.stack([frame for frame in reader]), frames)
    assert server.trap.hits == []  # the MCP server calls the app through gradio_client, on the same machine


def test_bad_input_through_mcp_is_a_tool_error_that_says_what_to_fix(server):
    runs = len(server.runs())
    arguments = {"timeline": {"headers": ["prompt", "seconds"], "data": [["", 1]]}, "steps": 2}
    _, result = asyncio.run(_call_generate(server.url + "gradio_api/mcp/", arguments, None))
    assert result.isError and "timeline row 1 has no prompt" in result.content[0].text
    _, result = asyncio.run(_call_generate(server.url + "gradio_api/mcp/", {"timeline": "a red circle"}, None))
    assert result.isError and "is not of type 'object'" in result.content[0].text  # the schema's check
    assert len(server.runs()) == runs and server.alive()


def test_sse_clients_see_the_same_tools_and_call_an_inspect_view(server, tmp_path):
    """The same server through its SSE transport (older MCP clients): the tokenizer view, without a video (the
    shapes-world clip of a seed), gives its side-by-side MP4 and summary."""
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    async def call():
        async with sse_client(server.url + "gradio_api/mcp/sse") as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            listed = [tool.name for tool in (await s.list_tools()).tools]
            return listed, await s.call_tool("inspect_tokenizer", {"clip_seed": 3}, progress_callback=_ignore)

    listed, result = asyncio.run(call())
    assert listed == TOOLS and not result.isError, result.content
    texts = [c.text for c in result.content if c.type == "text"]
    (mp4,) = [t for t in texts if MP4_URL.fullmatch(t)]
    assert "shapes-world clip 3" in texts[-1] and read_frames(mp4, tmp_path).shape[0] == 17  # one window


async def _ignore(*_):
    pass
