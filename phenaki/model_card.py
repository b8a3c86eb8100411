"""A model's card: `README.md` with the Hub's YAML metadata, and by default a summary of its config and parameter
counts (read from the safetensors header, no torch needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import ModelCardData

from .hub import MODEL_CARD_NAME, WEIGHTS_NAME, ModelLoadError, check_safetensors

MODEL_TAGS = ["text-to-video", "phenaki", "maskgit", "c-vivit", "video-generation", "pytorch"]


def _size(value) -> str | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}×{value[1]}"
    return f"{value}×{value}" if isinstance(value, int) else None


def _describe_text_encoder(config) -> str | None:
    if isinstance(config, str):
        return config
    if not isinstance(config, dict):
        return None
    if config.get("name"):
        return f"{config.get('kind', 'pretrained')} `{config['name']}`"
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k != "kind" and not isinstance(v, dict))
    return f"{config.get('kind', 'custom')} ({settings})"


def _human(n: int) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _parameter_counts(weights: Path) -> dict[str, int]:
    """Parameters per top-level module (the first part of each tensor name), read from the safetensors header."""
    counts: dict[str, int] = {}
    for name, info in check_safetensors(weights).items():
        if name != "__metadata__":
            numel = 1
            for dim in info["shape"]:
                numel *= dim
            counts[name.split(".")[0]] = counts.get(name.split(".")[0], 0) + numel
    return counts


def _default_body(config: dict, weights: Path) -> str:
    facts = [
        ("Frame size", _size(config.get("frame_size", config.get("image_size")))),
        ("Frames per second", config.get("fps")),
        ("Text encoder", _describe_text_encoder(config.get("text_encoder"))),
    ]
    try:
        counts = _parameter_counts(weights) if weights.is_file() else {}
    except ModelLoadError:
        counts = {}
    if counts:
        parts = ", ".join(f"{name} {_human(n)}" for name, n in counts.items())
        facts.append(("Parameters", f"{_human(sum(counts.values()))} ({parts})"))
    lines = [
        "# Phenaki text-to-video model",
        "",
        "A [Phenaki](https://arxiv.org/abs/2210.02399) model: a causal C-ViViT video tokenizer and a MaskGIT "
        "transformer that fills in video tokens conditioned on text embeddings.",
        "",
    ]
    lines += [f"- **{label}:** {value}" for label, value in facts if value is not None]
    top = {k: v for k, v in config.items() if not isinstance(v, dict) and v is not None}
    sections = [("settings", top)] + [(k, v) for k, v in config.items() if isinstance(v, dict)]
    for title, params in sections:  # one table per config section (video tokenizer, transformer, ...)
        rows = {k: v for k, v in params.items() if not isinstance(v, dict)}
        if rows:
            lines += ["", f"## {title.replace('_', ' ').capitalize()}", "", "| parameter | value |", "|---|---|"]
            lines += [f"| `{k}` | `{json.dumps(v)}` |" for k, v in rows.items()]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from phenaki import Phenaki",
        "",
        'model = Phenaki.from_pretrained("<this repo id or folder>")',
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(directory: str | os.PathLike, config: dict, body: str | None = None) -> Path:
    """Write ``README.md`` with the Hub's YAML metadata and `body`.

    The default body summarises `config` (frame size, fps, text encoder, one table per section) and, when
    ``model.safetensors`` is already in `directory`, the parameter count of each part.
    """
    data = ModelCardData(library_name="phenaki", pipeline_tag="text-to-video", license="mit", tags=MODEL_TAGS)
    if body is None:
        body = _default_body(config, Path(directory) / WEIGHTS_NAME)
    path = Path(directory) / MODEL_CARD_NAME
    path.write_text(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n", encoding="utf-8")
    return path
