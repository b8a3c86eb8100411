"""Training data: captioned clips from the shapes world (made on the fly), or a folder of the user's videos.

Every example is a dict: `video` float (3, frames, H, W) in [0, 1], `caption` str, and `prime` (how many latent
frames at the start are a given continuation prefix; -1 = let the objective draw one).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from ..media import resize_video, to_video_tensor
from ..shapes import world, world2_data


class WorldClips(Dataset):
    """Clip `i` is made from seed `seed_offset + i`, so a run (and its resumption) sees the same data.

    A fraction `change_prob` of clips change motion after the first `prime_frames` frames and are captioned with
    the new motion in the story form ('the red circle moves up'): the situation of every window after the first
    in a story, where the primed frames show the previous scene."""

    def __init__(
        self,
        length: int = 1_000_000,
        num_frames: int = 17,
        seed_offset: int = 0,
        paraphrase_prob: float = 0.1,
        change_prob: float = 0.3,
        prime_frames: int = 5,
        prime_latent_frames: int = 3,
        frame_size: tuple[int, int] = (world.FRAME_SIZE, world.FRAME_SIZE),
    ):
        self.length, self.num_frames, self.seed_offset = length, num_frames, seed_offset
        self.frame_size = tuple(frame_size)
        self.paraphrase_prob, self.change_prob = paraphrase_prob, change_prob
        self.prime_frames, self.prime_latent_frames = prime_frames, prime_latent_frames

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        example = self.make(i)
        if self.frame_size != (world.FRAME_SIZE, world.FRAME_SIZE):  # smaller models see a resized world
            example["video"] = resize_video(example["video"], self.frame_size)
        return example

    def make(self, i: int) -> dict:
        seed = self.seed_offset + i
        rng = np.random.default_rng((seed, 1))
        if rng.random() < self.change_prob:
            first = world.random_scene(rng)
            second = world.Scene(first.colour, first.shape, world.MOTIONS[rng.integers(len(world.MOTIONS))])
            start = tuple(int(v) for v in rng.integers(16, world.MAX_POS - 15, size=2))  # room for both moves
            frames, captions = world.render_story(
                [(first, self.prime_frames), (second, self.num_frames - self.prime_frames)], start=start
            )
            return dict(video=to_video_tensor(frames), caption=captions[1], prime=self.prime_latent_frames)
        frames, caption, scene = world.random_clip(seed, self.num_frames, self.paraphrase_prob)
        if rng.random() < 0.3 and caption == scene.caption(first=True):
            caption = scene.caption(first=False)  # stories continue with 'the ...'
        return dict(video=to_video_tensor(frames), caption=caption, prime=-1)


class VideoFolder(Dataset):
    """Videos (mp4, gif, webm, ... anything imageio reads) listed in a JSONL file of
    {"video": "relative/path.mp4", "caption": "..."} lines. Clips are cut to `num_frames` and resized to
    `frame_size`. A video that cannot be read is skipped with a warning naming the file."""

    def __init__(
        self, folder: str | Path, num_frames: int, frame_size: tuple[int, int], captions: str = "captions.jsonl"
    ):
        self.folder, self.num_frames, self.frame_size = Path(folder), num_frames, tuple(frame_size)
        path = self.folder / captions
        if not path.exists():
            raise ValueError(
                f'{path} not found: a video folder needs a JSONL file of {{"video": ..., "caption": ...}} lines'
            )
        self.items = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                self.items.append((str(item["video"]), str(item["caption"])))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f'{path}, line {n}: expected {{"video": ..., "caption": ...}}: {error}') from None
        if not self.items:
            raise ValueError(f"{path} lists no videos")
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.items)

    def read(self, i: int) -> torch.Tensor | None:
        import imageio.v3 as iio

        name = self.items[i][0]
        try:
            frames = np.asarray(iio.imread(self.folder / name, index=None))
            if frames.ndim == 3:  # a single image or a grey video
                frames = frames[None] if frames.shape[-1] in (3, 4) else frames[..., None].repeat(3, -1)
            frames = frames[..., :3]
            if len(frames) == 0:
                raise ValueError("no frames")
        except Exception as error:  # noqa: BLE001 - any decoder failure means: skip this file
            warnings.warn(f"skipping unreadable video {self.folder / name}: {error}", stacklevel=2)
            return None
        if len(frames) < self.num_frames:  # too short: hold the last frame
            frames = np.concatenate([frames, frames[-1:].repeat(self.num_frames - len(frames), 0)])
        start = (len(frames) - self.num_frames) // 2
        video = to_video_tensor(frames[start : start + self.num_frames])
        return resize_video(video, self.frame_size)

    def __getitem__(self, i: int) -> dict:
        for offset in range(len(self.items)):  # skip unreadable files, each warned about once
            j = (i + offset) % len(self.items)
            if j in self.bad:
                continue
            video = self.read(j)
            if video is not None:
                return dict(video=video, caption=self.items[j][1], prime=-1)
            self.bad.add(j)
        raise ValueError(f"no readable video in {self.folder}")


class WorldClips2(Dataset):
    """Shapes world 2 (`phenaki/shapes/world2.py`: one or two objects, sizes, growing and shrinking), clip `i` made by
    `world2_data.make_example` from seed `seed_offset + i`. Videos stay uint8 (3, frames, H, W) until they reach the
    trainer's device: a quarter of the bytes through the data-loader workers' shared memory and the copy to a GPU
    (`as_float_video`)."""

    def __init__(
        self,
        length: int = 100_000_000,
        num_frames: int = 17,
        seed_offset: int = 0,
        paraphrase_prob: float = 0.1,
        change_prob: float = 0.3,
        prime_frames: int = 5,
    ):
        self.length, self.num_frames, self.seed_offset = length, num_frames, seed_offset
        self.paraphrase_prob, self.change_prob, self.prime_frames = paraphrase_prob, change_prob, prime_frames

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        example = world2_data.make_example(
            self.seed_offset + i,
            num_frames=self.num_frames,
            prime_frames=self.prime_frames,
            change_prob=self.change_prob,
            paraphrase_prob=self.paraphrase_prob,
        )
        video = rearrange(torch.from_numpy(np.ascontiguousarray(example["frames"])), "f h w c -> c f h w")
        return dict(video=video, caption=example["caption"], prime=example["prime"])


def as_float_video(video: torch.Tensor) -> torch.Tensor:
    """A batch of videos as floats in [0, 1], whether it came as uint8 (`WorldClips2`) or float."""
    return video.float().div_(255) if video.dtype == torch.uint8 else video


def collate(batch: list[dict]) -> dict:
    return dict(
        video=torch.stack([b["video"] for b in batch]),
        caption=[b["caption"] for b in batch],
        prime=torch.tensor([b["prime"] for b in batch]),
    )
