"""The user's own examples from the issue, and README.md's library example (read from the README), run verbatim."""

import re
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cvivit_example():
    import torch

    from phenaki import CViViT

    cvivit = CViViT(
        dim=512,
        codebook_size=5000,
        patch_size=32,
        temporal_patch_size=2,
        spatial_depth=4,
        temporal_depth=4,
        dim_head=64,
        heads=8,
    )

    video = torch.randn(1, 3, 17, 256, 256)  # (batch, channels, frames + 1 leading frame, image height, image width)

    loss = cvivit(video, return_loss=True)
    loss.backward()

    assert loss.ndim == 0 and torch.isfinite(loss)
    assert cvivit.to_tokens_first[0].weight.grad is not None


def test_maskgit_example():
    import torch

    from phenaki import MaskGit

    model = MaskGit(num_tokens=5000, max_seq_len=1024, dim=512, depth=6)

    x = torch.randint(0, 5000, (1, 1024))
    logits = model(x)  # shape (1, 1024, 5000)

    assert logits.shape == (1, 1024, 5000)
    assert torch.isfinite(logits).all()


def test_exports():
    import phenaki

    for name in ("CViViT", "MaskGit", "TokenCritic", "Phenaki", "make_video"):
        assert hasattr(phenaki, name), name


def library_example() -> str:
    """The ```python block under README.md's "## The library", as it stands."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## The library\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 1, "one python block under '## The library'"
    return blocks[0]


def test_the_readme_library_example_runs_verbatim_and_its_comments_hold(tmp_path, monkeypatch):
    import numpy as np
    import torch

    from phenaki import Phenaki

    def no_network(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # "a small byte-level T5 text encoder": no download
    monkeypatch.chdir(tmp_path)  # it saves my-model/ where it runs
    torch.manual_seed(0)
    names = {}
    exec(compile(library_example(), "README.md, ## The library", "exec"), names)

    video = names["video"]
    assert video.shape == (1, 3, 17, 256, 256) and 0 <= video.min() and video.max() <= 1
    last = names["steps"][-1]
    assert (last.window, last.step, last.phase) == (0, 9, "refinement 1, odd frames")
    chunk = names["chunk"]  # the story's last window: 2 s + 3 s at 8 fps are 40 frames
    assert chunk.frames.dtype == np.uint8 and chunk.frames.shape[1:] == (256, 256, 3)
    assert chunk.segment == 1 and chunk.start + len(chunk.frames) == 40
    assert sorted(p.name for p in (tmp_path / "my-model").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert isinstance(names["phenaki"], Phenaki) and names["phenaki"].frame_size == (256, 256)
    first = names["first"]  # the story from a picture: its first window, the picture (through the tokenizer) first
    assert first.start == 0 and first.segment == 0 and first.frames.shape == (16, 256, 256, 3)
    story = names["story"]  # the live story: 4 s at most, one prompt, as long as the windows it made
    assert story.frames_made >= 32 and story.timeline == [("a red circle moves right", story.frames_made / 8)]
