"""Looking inside the model: the demo's Inspect tab without Gradio (`ui_inspect.py` is its view), so tests call it.

- Decoding, step by step: `trace_decoding` makes one window with `Phenaki.sample` and its `on_step` callback
  (same seed, same generator draws, same frames as without it) and keeps every MaskGIT step: tokens still masked,
  filled, sent back by the critic, the score that ranked them, and the frames decoded from the tokens so far.
  `render_step` draws one step.
- Text control: `compare_seeds`, one prompt under several seeds, and one seed under two guidance scales.
- `steps_view`, `compare_view`: each from raw UI/API values (`InputError` for the user) to files; they return paths
  and plain values (ZeroGPU runs them in another process).

The tokenizer's view (uploads, shapes-world clips, reconstructions and token ids) is `views_tokenizer.py`; it draws
with this module's `colormap`, `video_grid` and `TILE`, and writes into an `output_folder` like the views here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ..media import board, display_scale, to_uint8_frames, upscale, write_mp4, write_png
from ..models.cvivit import first_frames
from ..shapes.world2_captions import parse_scene
from ..shapes.world2_describe import describe, score
from .stories import LIMITS, MAX_PROMPT_CHARS, MAX_SEED, InputError, is_blank, parse_number, parse_settings

MAX_SEEDS = 8
TILE = 128  # about this many pixels a frame in the step and token images
GREY, GREEN, RED = np.array((128, 128, 128)), np.array((40, 230, 90)), np.array((235, 50, 50))
# viridis at 0, 1/4, 1/2, 3/4, 1: probabilities as colours without matplotlib
VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], np.float32)
LEGEND = (
    "Hatched grey: still [MASK] (decoded as token 0: those pixels mean nothing); green outline: filled at "
    "this step; red hatch: fixed before, sent back by the critic or by refinement (after the parallel steps, "
    "it redraws the even latent frames, then the odd ones, without guidance). Heat map: the probability that "
    "ranked each token (the generator's, blended with the critic's when critic strength > 0), purple 0 to "
    "yellow 1; grey: fixed, no longer ranked."
)
STEP_COLUMNS = ["step", "masked", "filled", "sent back", "mean p (filled)", "mean p (ranked)", "phase"]
COMPARE_COLUMNS = ["seed", "guidance", "colour seen", "shape seen", "size seen", "motion seen", "matches prompt"]


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB (viridis); NaN -> grey."""
    v = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(VIRIDIS) - 1)
    rgb = np.stack([np.interp(v, np.arange(len(VIRIDIS)), VIRIDIS[:, c]) for c in range(3)], -1)
    return np.where(np.isnan(values)[..., None], GREY, rgb).astype(np.uint8)


# ---- decoding, step by step ---------------------------------------------------------------------------------


@dataclass
class Step:
    step: int  # 0-based
    masked: np.ndarray  # (t, h, w) bool: still [MASK] after this step
    filled: np.ndarray  # (t, h, w) bool: filled at this step and kept
    sent_back: np.ndarray  # (t, h, w) bool: fixed before, masked again (by the critic, or by refinement)
    score: np.ndarray  # (t, h, w) log-score that ranked the tokens before the Gumbel noise; +inf: fixed
    frames: np.ndarray  # (f, H, W, 3) uint8 decoded from the tokens after this step
    phase: str  # "parallel", or "refinement k, even frames" / "odd frames"

    def row(self) -> list:
        """STEP_COLUMNS: step (1-based), the three counts, mean p of the tokens filled and of all ranked ones, the
        phase."""
        ranked = np.isfinite(self.score)
        mean = lambda x: round(float(np.exp(x).mean()), 4) if x.size else None  # noqa: E731
        return [
            self.step + 1,
            int(self.masked.sum()),
            int(self.filled.sum()),
            int(self.sent_back.sum()),
            mean(self.score[self.filled & ranked]),
            mean(self.score[ranked]),
            self.phase,
        ]

    def caption(self, steps: int) -> str:
        _, masked, filled, back, p, _, phase = self.row()
        return (
            f"step {self.step + 1}/{steps}"
            + ("" if phase == "parallel" else f" ({phase})")
            + f": {filled} filled"
            + (f", {back} sent back" if back else "")
            + f", {masked} still masked"
            + (f", mean p {p:.3f}" if p is not None else "")
        )


@dataclass
class Trace:
    ids: np.ndarray  # (t, h, w) the window's tokens
    frames: np.ndarray  # (num_frames, H, W, 3) uint8: what `Phenaki.sample` returns for this window
    steps: list[Step]
    patch: int  # pixels a token covers, each side
    first_frames: list[int]


@torch.no_grad()
def trace_decoding(model, text: str, num_frames: int | None = None, **settings) -> Trace:
    """The first window of `model.sample(texts=text, num_frames=num_frames, **settings)`, step by step: that very
    call, with an `on_step` that keeps every step's state (which changes no frame)."""
    states = []
    video = model.sample(
        texts=text,
        num_frames=min(num_frames or model.window_frames, model.window_frames),
        on_step=states.append,
        **settings,
    )
    mask_id, (h, w) = model.maskgit.mask_id, model.grid
    ids = torch.cat([s.ids for s in states])  # (steps, t*h*w): a first window has no primed prefix
    # [MASK] is no codebook entry: decode it as token 0, and draw those patches as masked
    decoded = torch.cat([model.decode_ids(chunk.masked_fill(chunk == mask_id, 0)) for chunk in ids.split(8)])
    grid = lambda x: rearrange(x.cpu().numpy(), "(t h w) -> t h w", h=h, w=w)  # noqa: E731
    steps = [
        Step(
            state.step,
            grid(state.ids[0] == mask_id),
            grid(state.filled[0]),
            grid(state.sent_back[0]),
            grid(state.confidence[0].float()),
            to_uint8_frames(pixels),
            state.phase,
        )
        for state, pixels in zip(states, decoded)
    ]
    latent = ids.shape[1] // model.frame_tokens
    return Trace(
        grid(ids[-1]),
        to_uint8_frames(video[0]),
        steps,
        model.cvivit.patch_size,
        first_frames(latent, model.cvivit.temporal_patch_size),
    )


def step_tiles(trace: Trace, index: int, tile: int = TILE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each latent frame (its first frame): the decoded frame, the token states over it, the score's heat map;
    three (t, H', W', 3) float arrays, upscaled nearest-neighbour to about `tile` pixels."""
    s = trace.steps[index]
    big = upscale(s.frames[trace.first_frames], display_scale(s.frames.shape[1:3], tile)).astype(np.float32)
    cell = trace.patch * big.shape[1] // s.frames.shape[1]
    up = lambda m: m.repeat(cell, 1).repeat(cell, 2)  # noqa: E731  (t, h, w, ...) tokens -> pixels
    yy, xx = np.indices(big.shape[1:3])
    hatch = ((yy + xx) % 8 < 3)[None, ..., None]
    edge = ((yy % cell < 2) | (yy % cell >= cell - 2) | (xx % cell < 2) | (xx % cell >= cell - 2))[None, ..., None]
    masked, back, filled = (up(m)[..., None] for m in (s.masked, s.sent_back, s.filled))
    states = np.where(masked, np.where(hatch, np.where(back, RED, 70), GREY), big)
    states = np.where(filled, np.where(edge, GREEN, 0.8 * big + 0.2 * GREEN), states)
    prob = up(np.exp(np.where(np.isfinite(s.score), s.score, np.nan)))
    heat = np.where(np.isnan(prob)[..., None], 0.3 * big + 0.7 * GREY, 0.25 * big + 0.75 * colormap(prob))
    return big, states, heat


def render_step(trace: Trace, index: int, tile: int = TILE) -> np.ndarray:
    rows = [
        [(f, f"frame {i}" if r == 0 else "") for f, i in zip(tiles, trace.first_frames)]
        for r, tiles in enumerate(step_tiles(trace, index, tile))
    ]
    return board(
        rows,
        ["decoded", "tokens\n(masked,\nfilled)", "p(token)\nheat map"],
        trace.steps[index].caption(len(trace.steps)),
    )


# ---- text control -------------------------------------------------------------------------------------------


@dataclass
class Sample:
    seed: int
    guidance_scale: float
    frames: np.ndarray  # (f, H, W, 3) uint8
    seen: list = ()  # (colour, shape, size, motion) of each object the shapes-world analyser reads in the frames
    matches: bool | None = None  # whether they are the prompt's (None: the prompt is no shapes-world caption)


@torch.no_grad()
def compare_seeds(
    model,
    text: str,
    seeds: list[int],
    *,
    guidance_scale: float = 3.0,
    baseline_guidance: float = 1.0,
    num_frames: int | None = None,
    **settings,
) -> tuple[list[Sample], list[Sample]]:
    """(a sample per seed at `guidance_scale`, [the first seed at `baseline_guidance`, at `guidance_scale`]);
    each is exactly `model.sample(texts=text, seed=seed, ...)`."""
    try:  # world 2's grammar holds world 1's captions, and its analyser reads both worlds' clips
        wanted = parse_scene(text)
    except ValueError:
        wanted = None

    def one(seed: int, guidance: float) -> Sample:
        frames = to_uint8_frames(
            model.sample(
                texts=text, num_frames=num_frames or model.window_frames, seed=seed, guidance_scale=guidance, **settings
            )[0]
        )
        seen = describe(frames)
        matches = None if wanted is None else score(wanted, seen).right
        return Sample(seed, guidance, frames, [(d.colour, d.shape, d.size, d.motions[0]) for d in seen], matches)

    by_seed = [one(seed, guidance_scale) for seed in seeds]
    return by_seed, [one(seeds[0], baseline_guidance), by_seed[0]]


def read_back_table(samples: list[Sample]) -> list[list]:
    """The Compare view's table (`COMPARE_COLUMNS`): a row per object seen in each sample, one with blanks where
    none is."""
    verdict = {None: "", True: "yes", False: "no"}
    return [[x.seed, x.guidance_scale, *thing, verdict[x.matches]] for x in samples for thing in x.seen or [("",) * 4]]


def video_grid(videos: list[np.ndarray], captions: list[str], columns: int = 4, tile: int = 256) -> np.ndarray:
    """Videos (f, H, W, 3) of one length, tiled frame by frame under their captions: (f, H', W', 3)."""
    big = [upscale(v, display_scale(v.shape[1:3], tile)) for v in videos]
    return np.stack(
        [
            board(
                [
                    [(big[k][i], captions[k]) for k in range(r, min(r + columns, len(big)))]
                    for r in range(0, len(big), columns)
                ]
            )
            for i in range(len(videos[0]))
        ]
    )


# ---- the views: raw UI / API values in, files out -----------------------------------------------------------


def check_prompt(text) -> str:
    if is_blank(text):
        raise InputError("the prompt is empty: describe a scene, e.g. 'a red circle moves right'")
    if not isinstance(text, str):
        raise InputError(f"the prompt must be text, got {text!r}")
    if len(text := " ".join(text.split())) > MAX_PROMPT_CHARS:
        raise InputError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    return text


def parse_seeds(value) -> list[int]:
    """Seeds from '0, 1, 2' (or a list, or one number): 1 to MAX_SEEDS distinct whole numbers, in order."""
    items = (
        value.replace(",", " ").split()
        if isinstance(value, str)
        else list(value)
        if isinstance(value, (list, tuple))
        else [value]
    )
    seeds = list(dict.fromkeys(parse_number("seed", item, integer=True) for item in items))
    if not 1 <= len(seeds) <= MAX_SEEDS or not all(0 <= s <= MAX_SEED for s in seeds):
        raise InputError(f"give 1 to {MAX_SEEDS} seeds between 0 and {MAX_SEED}, e.g. '0, 1, 2, 3'; got {seeds}")
    return seeds


def output_folder(path) -> Path:
    """A view's output folder, made once its inputs are known to be good (call it after checking them)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def _passes(n: int) -> str:
    return f"{n} refinement pass{'es' * (n != 1)}"


@dataclass
class StepsView:
    gallery: list[tuple[str, str]]  # (PNG, caption) a step
    table: list[list]  # STEP_COLUMNS a step
    video: str  # MP4 of the window
    summary: str  # Markdown
    seed: int


def steps_view(
    model, out_dir, text, num_frames, steps, temperature, critic_strength, guidance_scale, seed, refine_passes=None
) -> StepsView:
    text = check_prompt(text)
    s = parse_settings(
        steps, temperature, critic_strength, guidance_scale, seed, refine_passes, has_critic=model.has_critic
    ).resolve_seed()
    if not 1 <= (frames := parse_number("frames", num_frames, integer=True)) <= model.window_frames:
        raise InputError(f"frames must be between 1 and {model.window_frames} (one window), got {frames}")
    trace, out = trace_decoding(model, text, frames, **s.sampling_kwargs()), output_folder(out_dir)
    gallery = [
        (str(write_png(out / f"step_{i + 1:03d}.png", render_step(trace, i))), step.caption(len(trace.steps)))
        for i, step in enumerate(trace.steps)
    ]
    video = write_mp4(out / "window.mp4", upscale(trace.frames, display_scale(model.frame_size), even=True), model.fps)
    refined = sum(step.phase != "parallel" for step in trace.steps)
    passes = f", then {_passes(s.refine_passes)} ({refined} steps)" if refined else ""
    summary = (
        f"**{text}** · seed {s.seed} · {s.steps} steps{passes} · guidance {s.guidance_scale:g} · "
        f"temperature {s.temperature:g} · critic {s.critic_strength:g} · "
        f"{'×'.join(map(str, trace.ids.shape))} = {trace.ids.size} tokens for {frames} frames. The frames "
        f"made are exactly the first window that Generate (and `Phenaki.sample`) makes with this seed and "
        f"these settings.\n\n{LEGEND}"
    )
    return StepsView(gallery, [step.row() for step in trace.steps], str(video), summary, s.seed)


@dataclass
class CompareView:
    seeds_video: str  # MP4: a tile a seed
    guidance_video: str  # MP4: the first seed at the baseline and at the chosen guidance
    sheet: str  # PNG: every other frame of every sample
    table: list[list]  # COMPARE_COLUMNS a sample
    summary: str


def compare_view(
    model,
    out_dir,
    text,
    seeds,
    steps,
    temperature,
    critic_strength,
    guidance_scale,
    baseline_guidance,
    refine_passes=None,
) -> CompareView:
    text, seeds = check_prompt(text), parse_seeds(seeds)
    s = parse_settings(
        steps, temperature, critic_strength, guidance_scale, seeds[0], refine_passes, has_critic=model.has_critic
    )
    low, high = LIMITS["guidance_scale"]
    if not low <= (base := parse_number("baseline guidance", baseline_guidance)) <= high:
        raise InputError(f"baseline guidance must be between {low:g} and {high:g}, got {base:g}")
    by_seed, by_guidance = compare_seeds(
        model,
        text,
        seeds,
        guidance_scale=s.guidance_scale,
        baseline_guidance=base,
        steps=s.steps,
        temperature=s.temperature,
        critic_strength=s.critic_strength,
        refine_passes=s.refine_passes,
    )
    out, samples = output_folder(out_dir), by_seed + by_guidance[:1]
    videos = [
        write_mp4(
            out / f"{name}.mp4",
            video_grid(
                [x.frames for x in group],
                [f"seed {x.seed}" + (f", guidance {x.guidance_scale:g}" if name == "guidance" else "") for x in group],
            ),
            model.fps,
        )
        for name, group in (("seeds", by_seed), ("guidance", by_guidance))
    ]
    scale = display_scale(model.frame_size, 64)
    rows = [
        [(f, f"frame {2 * i}" if r == 0 else "") for i, f in enumerate(upscale(x.frames[::2], scale))]
        for r, x in enumerate(samples)
    ]
    sheet = write_png(
        out / "sheet.png",
        board(
            rows, [f"seed {x.seed}\nguidance {x.guidance_scale:g}" for x in samples], f"{text} (every other frame)", 84
        ),
    )
    table = read_back_table(samples)
    matched = [x.matches for x in by_seed if x.matches is not None]
    score = f" · {sum(matched)} of {len(matched)} seeds match the prompt (shapes-world read-back)" if matched else ""
    summary = (
        f"**{text}** · {s.steps} steps · {_passes(s.refine_passes)} · temperature {s.temperature:g} "
        f"· critic {s.critic_strength:g} · seeds "
        f"{', '.join(map(str, seeds))} at guidance {s.guidance_scale:g}; seed {seeds[0]} at guidance {base:g} "
        f"and {s.guidance_scale:g}{score}. Each clip is the first window Generate makes with that seed and "
        f"these settings."
    )
    return CompareView(str(videos[0]), str(videos[1]), str(sheet), table, summary)
