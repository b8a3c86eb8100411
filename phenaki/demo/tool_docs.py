"""The demo's endpoints as tools for agents (MCP), described from their functions' docstrings.

`phenaki.demo.app` launches the page with `mcp_server=True` where gradio's `mcp` extra is installed: Gradio then
serves each public API endpoint as an MCP tool, at /gradio_api/mcp/ (streamable HTTP; /gradio_api/mcp/sse for SSE
clients; the tools as JSON at /gradio_api/mcp/schema), named after its function (on a Space, with the Space's name
before it) and typed from its input components. The tools: `generate` (a timeline in, a video out) and the Inspect
views `inspect_steps`, `inspect_tokenizer`, `compare_seeds` and `inspect_words`. `/live`, `/steer`, `/stop` and
`/stop_live` are "undocumented" endpoints, callable through gradio_client as before but not tools (nor on the API
page): a live story is steered while it plays, and a stop acts on the caller's session, while a tool call is one
request.

Gradio reads a tool's description from its function's docstring: the text before "Args:", then under "Args:" the
first line of each parameter (`name: description`) and the lines after "Returns:", joined with commas.
`describe_tool` lets those docstrings be wrapped as usual (it joins each parameter's lines, and the Returns
paragraph, into one), and writes each sampling setting's meaning, range and default from `SamplingSettings` (the
demo's ranges, `stories.LIMITS`) where the docstring says "see SamplingSettings".
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import fields

from phenaki.sampling import SamplingSettings

from .stories import DEFAULTS, LIMITS

SAMPLING = "see SamplingSettings"
SECTIONS = ("Args:", "Returns:")
_ENTRY = re.compile(r"(\w+):(?:\s|$)")


def sampling_text(name: str) -> str:
    """A sampling setting for an agent: what it does, its demo range and its default, e.g. for steps "parallel
    MaskGIT steps per window; a whole number from 1 to 64, default 8"."""
    meta = next(f.metadata for f in fields(SamplingSettings) if f.name == name)
    low, high = LIMITS[name]
    kind = "a whole number" if meta["integer"] else "a number"
    return f"{meta['help']}; {kind} from {low:g} to {high:g}, default {DEFAULTS[name]:g}"


def flat_docstring(doc: str) -> str:
    """`doc` with each parameter under "Args:" on one line (its wrapped lines, indented deeper, joined to it),
    the "Returns:" paragraph on one line, and "see SamplingSettings" written out for the sampling settings."""
    out: list[str] = []
    section, indent = None, None
    for line in inspect.cleandoc(doc).splitlines():
        text = line.strip()
        if text in SECTIONS:
            section, indent = text, None
            out.append(text)
        elif section is None or not text:
            out.append(line)
        elif section == "Args:" and (indent is None or len(line) - len(line.lstrip()) <= indent):
            indent = len(line) - len(line.lstrip())
            out.append(line)
        elif section == "Returns:" and indent is None:
            indent = 0
            out.append(line)
        else:  # a wrapped line: joined to the entry (or Returns paragraph) it continues
            out[-1] = f"{out[-1].rstrip()} {text}"
    return "\n".join(_with_sampling(line) for line in out)


def _with_sampling(line: str) -> str:
    entry = _ENTRY.match(line.strip())
    if entry and entry.group(1) in LIMITS and SAMPLING in line:
        return line.replace(SAMPLING, sampling_text(entry.group(1)))
    return line


def describe_tool(fn: Callable) -> Callable:
    """Rewrites `fn`'s docstring as Gradio's MCP server reads it (see the module's docstring); returns `fn`."""
    fn.__doc__ = flat_docstring(fn.__doc__ or "")
    return fn
