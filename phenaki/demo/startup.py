"""What the demo does before it serves: which model (PHENAKI_MODEL / PHENAKI_REVISION, else the bundled
`weights/`), on which device (PHENAKI_DEVICE, else the GPU when there is one), with how many CPU threads
(PHENAKI_THREADS), its one-line description, and the example timelines. Failures become one `StartupError` whose
message says what to do.

The bundled folders (`weights/`, `examples/`) live in the repository next to `phenaki/`; an installed package has
neither, so `bundled` also looks in the working directory (a checkout, or a Space's folder)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..vocabulary import unseen_words
from .stories import InputError, parse_timeline

ENV_MODEL, ENV_REVISION, ENV_DEVICE = "PHENAKI_MODEL", "PHENAKI_REVISION", "PHENAKI_DEVICE"
ENV_THREADS = "PHENAKI_THREADS"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_MODEL_DIR, EXAMPLES_DIR = "weights", "examples"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding phenaki/: the repository, in a checkout


class StartupError(RuntimeError):
    """The demo cannot start (no model); the message says what to do."""


def bundled(
    name: str, package_root: str | os.PathLike = PACKAGE_ROOT, cwd: str | os.PathLike | None = None
) -> Path | None:
    """The repository's `name` folder: next to the `phenaki` package (a checkout, or an editable install), else in
    the working directory (a package installed elsewhere, run from a checkout); None when neither has it."""
    for folder in (Path(package_root) / name, Path(cwd or Path.cwd()) / name):
        if folder.is_dir():
            return folder.resolve()
    return None


def model_source(
    environ: Mapping[str, str] = os.environ, default: str | os.PathLike | None = DEFAULT_MODEL_DIR
) -> tuple[str, str | None]:
    """(PHENAKI_MODEL or the default folder, PHENAKI_REVISION or None). With neither (`default` None: no bundled
    model was found), StartupError saying where it looked and what to set."""
    name = (environ.get(ENV_MODEL) or "").strip() or (str(default) if default is not None else "")
    if not name:
        raise StartupError(
            f"No Phenaki model found: {ENV_MODEL} is not set, and there is no {DEFAULT_MODEL_DIR}/ folder next to "
            f"the phenaki package ({PACKAGE_ROOT}; an installed package does not include the repository's bundled "
            f"model) or in the working directory ({Path.cwd()}). Set {ENV_MODEL} to a Phenaki model folder or a "
            f"Hugging Face Hub repo id ({ENV_REVISION} pins a revision), or start the demo in a folder that has "
            f"{DEFAULT_MODEL_DIR}/."
        )
    revision = (environ.get(ENV_REVISION) or "").strip() or None
    return name, revision


def pick_device(environ: Mapping[str, str] = os.environ) -> str:
    """PHENAKI_DEVICE if set, else the GPU when there is one (ZeroGPU included), else the CPU."""
    if (environ.get(ENV_DEVICE) or "").strip():
        return environ[ENV_DEVICE].strip()
    if (environ.get("SPACES_ZERO_GPU") or "").lower() in ("1", "true"):
        return "cuda"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_threads(device: str, environ: Mapping[str, str] = os.environ, default: int | None = None) -> int | None:
    """Torch's CPU threads for the demo, or None to keep torch's `default` (`torch.get_num_threads()`).

    PHENAKI_THREADS if set. Otherwise, on the CPU, served to this machine only (Gradio's default address,
    127.0.0.1) and with no OMP_NUM_THREADS: one thread fewer than torch's default, leaving a core to the browser
    that shows the demo. A torch thread that the browser preempts holds up the others at every barrier: on a 2-core
    machine with Chromium, the first frames came 2.0-2.8 s after pressing Generate with 1 thread and 2.2-4.2 s with
    2 (15 presses each, interleaved). A GPU, or a server open to other machines (a Space), keeps the default."""
    value = (environ.get(ENV_THREADS) or "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise StartupError(f"{ENV_THREADS} must be a whole number of CPU threads (1 or more), got {value!r}")
        return int(value)
    served_here = (environ.get("GRADIO_SERVER_NAME") or LOOPBACK[0]).strip() in LOOPBACK
    if not device.startswith("cpu") or not served_here or (environ.get("OMP_NUM_THREADS") or "").strip():
        return None
    if default is None:
        import torch

        default = torch.get_num_threads()
    return default - 1 if default > 1 else None


def load_model(
    name: str, revision: str | None = None, device: str | None = None, *, default: str | os.PathLike | None = None
):
    """The model in eval mode on `device`, or StartupError naming PHENAKI_MODEL and the default folder."""
    from ..pipeline import Phenaki

    shown_default = f"{Path(default or DEFAULT_MODEL_DIR).name}/"
    how = (
        f"Set {ENV_MODEL} to a Phenaki model folder or a Hugging Face Hub repo id ({ENV_REVISION} pins a "
        f"revision), or put the bundled model in {shown_default} (the default)."
    )
    if default is not None and Path(name) == Path(default) and not Path(name).exists():
        raise StartupError(
            f"No Phenaki model found: {ENV_MODEL} is not set and the default model folder "
            f"{shown_default} ({Path(name).resolve()}) does not exist. {how}"
        )
    try:
        model = Phenaki.from_pretrained(name, revision=revision, device=device)
    except Exception as error:  # noqa: BLE001 - every failure becomes one start-up message
        raise StartupError(
            f"Could not load the Phenaki model {name!r}"
            f"{f' at revision {revision!r}' if revision else ''}: {error}\n{how}"
        ) from error
    return model.eval()


def describe_model(model, name: str, revision: str | None = None) -> str:
    """One Markdown line: which model, on which device, frame size, fps, window, critic."""
    height, width = model.frame_size
    params = sum(p.numel() for p in model.parameters())
    critic = "Token Critic: yes" if model.has_critic else "Token Critic: none"
    rev = f" @ `{revision[:12]}`" if revision else ""
    return (
        f"**Model** `{name}`{rev} · **device** `{model.device}` · **frames** {width}×{height} px · "
        f"**{model.fps} fps** · windows of {model.window_frames} frames · {params / 1e6:.1f} M parameters · "
        f"{critic}"
    )


@dataclass
class Example:
    title: str
    timeline: list[list]
    seed: int = 0
    settings: dict = field(default_factory=dict)


def load_examples(folder: str | os.PathLike, vocabulary=None) -> list[Example]:
    """The `*.json` timelines in `folder`, sorted by file name; each is checked like user input. With a model's
    `vocabulary`, only those whose every word it knows (the world-2 examples are not offered to a world-1 model)."""
    examples = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            timeline = parse_timeline(data["timeline"])
            seed = data.get("seed", 0)
            settings = {k: data[k] for k in ("steps", "temperature", "critic_strength", "guidance_scale") if k in data}
        except (KeyError, InputError) as error:
            raise ValueError(f"{path}: not a valid example timeline ({error})") from error
        if not any(unseen_words(vocabulary, prompt) for prompt, _ in timeline):
            examples.append(
                Example(str(data.get("title") or path.stem), [list(row) for row in timeline], int(seed), settings)
            )
    return examples
