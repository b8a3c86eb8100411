"""Looking inside the model: the demo's Inspect tab without Gradio (`ui_inspect.py` is its view), so tests call it.

- Decoding, step by step: `trace_decoding` makes one window with `Phenaki.sample` and its `on_step` callback
  (same seed, same generator draws, same frames as without it) and keeps every MaskGIT step: tokens still masked,
  filled, sent back by the critic, the score that ranked them, and the frames decoded from the tokens so far.
  `render_step` draws one step.
- The tokenizer: `read_video` (an upload, cut to one window and resized, or refused) or `world_clip`, then
  `tokenize`: the C-ViViT reconstruction, PSNR per frame, the token ids and how much of the codebook they use.
- Text control: `compare_seeds`, one prompt under several seeds, and one seed under two guidance scales.
- `steps_view`, `tokenizer_view`, `compare_view`: each of the three from raw UI/API values (`InputError` for the
  user) to files; they return paths and plain values (ZeroGPU runs them in another process).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ..media import (
    board,
    display_scale,
    psnr,
    resize_video,
    to_uint8_frames,
    to_video_tensor,
    upscale,
    write_mp4,
    write_png,
)
from ..models.cvivit import first_frames
from ..models.quantizer import codebook_usage
from ..shapes import world
from .stories import (
    LIMITS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    InputError,
    is_blank,
    parse_number,
    parse_settings,
)

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_UPLOAD_SIDE = 4096  # larger frames are refused, not decoded
MAX_SEEDS = 8
TILE = 128  # about this many pixels a frame in the step and token images
GREY, GREEN, RED = np.array((128, 128, 128)), np.array((40, 230, 90)), np.array((235, 50, 50))
# viridis at 0, 1/4, 1/2, 3/4, 1: probabilities as colours without matplotlib
VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], np.float32)
LEGEND = ("Hatched grey: still [MASK] (decoded as token 0: those pixels mean nothing); green outline: filled at "
          "this step; red hatch: fixed before, sent back by the critic or by refinement (after the parallel steps, "
          "it redraws the even latent frames, then the odd ones, without guidance). Heat map: the probability that "
          "ranked each token (the generator's, blended with the critic's when critic strength > 0), purple 0 to "
          "yellow 1; grey: fixed, no longer ranked.")
STEP_COLUMNS = ["step", "masked", "filled", "sent back", "mean p (filled)", "mean p (ranked)", "phase"]
COMPARE_COLUMNS = ["seed", "guidance", "colour seen", "shape seen", "motion seen", "matches prompt"]


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
        return [self.step + 1, int(self.masked.sum()), int(self.filled.sum()), int(self.sent_back.sum()),
                mean(self.score[self.filled & ranked]), mean(self.score[ranked]), self.phase]

    def caption(self, steps: int) -> str:
        _, masked, filled, back, p, _, phase = self.row()
        return (f"step {self.step + 1}/{steps}" + ("" if phase == "parallel" else f" ({phase})") + f": {filled} filled"
                + (f", {back} sent back" if back else "") + f", {masked} still masked"
                + (f", mean p {p:.3f}" if p is not None else ""))


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
    video = model.sample(texts=text, num_frames=min(num_frames or model.window_frames, model.window_frames),
                         on_step=states.append, **settings)
    mask_id, (h, w) = model.maskgit.mask_id, model.grid
    ids = torch.cat([s.ids for s in states])  # (steps, t*h*w): a first window has no primed prefix
    # [MASK] is no codebook entry: decode it as token 0, and draw those patches as masked
    decoded = torch.cat([model.decode_ids(chunk.masked_fill(chunk == mask_id, 0)) for chunk in ids.split(8)])
    grid = lambda x: rearrange(x.cpu().numpy(), "(t h w) -> t h w", h=h, w=w)  # noqa: E731
    steps = [Step(state.step, grid(state.ids[0] == mask_id), grid(state.filled[0]), grid(state.sent_back[0]),
                  grid(state.confidence[0].float()), to_uint8_frames(pixels), state.phase)
             for state, pixels in zip(states, decoded)]
    latent = ids.shape[1] // model.frame_tokens
    return Trace(grid(ids[-1]), to_uint8_frames(video[0]), steps, model.cvivit.patch_size,
                 first_frames(latent, model.cvivit.temporal_patch_size))


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
    rows = [[(f, f"frame {i}" if r == 0 else "") for f, i in zip(tiles, trace.first_frames)]
            for r, tiles in enumerate(step_tiles(trace, index, tile))]
    return board(rows, ["decoded", "tokens\n(masked,\nfilled)", "p(token)\nheat map"],
                 trace.steps[index].caption(len(trace.steps)))


# ---- the tokenizer ------------------------------------------------------------------------------------------


def _fit(frame: np.ndarray, size) -> np.ndarray:
    """One decoded frame of any layout and depth -> (H, W, 3) uint8 at the model's size (centre crop, area)."""
    frame = frame[..., None] if frame.ndim == 2 else frame
    if frame.ndim != 3 or frame.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"unexpected frame shape {frame.shape}")
    frame = frame[..., :3] if frame.shape[-1] >= 3 else frame[..., :1].repeat(3, -1)  # no alpha; grey -> RGB
    top = np.iinfo(frame.dtype).max if frame.dtype.kind in "ui" else 1.0
    pixels = torch.from_numpy(frame.astype(np.float32) / top).permute(2, 0, 1)[:, None]  # (3, 1, h, w)
    return to_uint8_frames(resize_video(pixels, tuple(size)))[0]


def read_video(path, model, *, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_UPLOAD_SIDE
               ) -> tuple[np.ndarray, list[str]]:
    """An uploaded video (or image) as at most one window of frames at the model's size, and notes on what was
    changed. Frames are read and resized one by one, so a long or large file never sits in memory."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path.name}")
    size, limit, tp = path.stat().st_size, model.window_frames, model.cvivit.temporal_patch_size
    if size > max_bytes:
        raise InputError(f"{path.name} is {size / 2**20:.1f} MB; at most {max_bytes / 2**20:g} MB is taken "
                         f"(only the first {limit} frames are used: cut the video to a few seconds)")
    frames, notes, source = [], [], None
    try:
        for frame in iio.imiter(path):
            source = np.shape(frame)[:2]
            if max(source) > max_side:
                raise InputError(f"{path.name}: frames of {source[1]}×{source[0]} px are too large "
                                 f"(at most {max_side} px a side)")
            if len(frames) == limit:
                notes.append(f"longer than one window: the first {limit} frames are used")
                break
            frames.append(_fit(np.asarray(frame), model.frame_size))
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - every decoder failure means the same to the user
        first = (str(error).strip().splitlines() or [""])[0][:160]  # ffmpeg appends pages of its log
        raise InputError(f"could not read {path.name} as a video or an image ({type(error).__name__}: {first}); "
                         f"upload an MP4, WebM or GIF") from None
    if not frames:
        raise InputError(f"{path.name} has no frames")
    usable = model.cvivit.usable_frames(len(frames))
    if usable < len(frames):
        notes.append(f"{len(frames)} frames cut to {usable}: the tokenizer takes 1 + {tp}·k frames")
    if tuple(source) != tuple(model.frame_size):
        notes.append(f"resized from {source[1]}×{source[0]} to {model.frame_size[1]}×{model.frame_size[0]} px "
                     f"(centre crop)")
    return np.stack(frames[:usable]), notes


def world_clip(model, seed: int) -> tuple[np.ndarray, str]:
    """A shapes-world clip of one window at the model's frame size, and its caption."""
    frames, caption, _ = world.random_clip(seed, model.window_frames)
    if frames.shape[1:3] != tuple(model.frame_size):
        frames = np.stack([_fit(f, model.frame_size) for f in frames])
    return frames, caption


@dataclass
class Tokenized:
    original: np.ndarray  # (f, H, W, 3) uint8
    recon: np.ndarray  # (f, H, W, 3) uint8
    ids: np.ndarray  # (t, h, w)
    psnr: np.ndarray  # (f,) dB
    used: int  # distinct codebook entries in `ids`
    perplexity: float
    codebook: int


@torch.no_grad()
def tokenize(model, frames: np.ndarray) -> Tokenized:
    video = to_video_tensor(frames)[None].to(model.device)
    ids = model.cvivit.encode(video)
    recon = to_uint8_frames(model.cvivit.decode(ids)[0])
    _, perplexity = codebook_usage(ids, model.cvivit.codebook_size)
    return Tokenized(frames, recon, ids[0].cpu().numpy(), psnr(frames, recon, per_frame=True),
                     int(ids.unique().numel()), perplexity, model.cvivit.codebook_size)


def render_tokens(tok: Tokenized, patch: int, temporal_patch_size: int, tile: int = TILE) -> np.ndarray:
    """For each latent frame (its first frame): the original, its token ids colour-coded (one id, one colour),
    the reconstruction and the error (x4)."""
    from PIL import Image, ImageDraw

    index = first_frames(len(tok.ids), temporal_patch_size)
    scale = display_scale(tok.original.shape[1:3], tile)
    cell = patch * scale
    hues = {i: colorsys.hsv_to_rgb(i * 0.618034 % 1, 0.55, 0.95) for i in np.unique(tok.ids).tolist()}
    grids = []
    for ids in tok.ids:
        image = Image.fromarray(upscale((np.array([[hues[i] for i in r] for r in ids.tolist()]) * 255
                                         ).astype(np.uint8), cell))
        if cell >= 8 * len(str(tok.codebook - 1)):  # the ids themselves, where they fit
            for (r, c), i in np.ndenumerate(ids):
                ImageDraw.Draw(image).text((c * cell + 2, r * cell + cell // 2 - 6), str(i), fill=(0, 0, 0))
        grids.append(np.asarray(image))
    error = colormap(np.abs(tok.original.astype(np.float32) - tok.recon).mean(-1)[index] / 255 * 4)
    tiles = [upscale(tok.original[index], scale), grids, upscale(tok.recon[index], scale), upscale(error, scale)]
    rows = [[(f, f"frame {i}" if r == 0 else "") for f, i in zip(row, index)] for r, row in enumerate(tiles)]
    return board(rows, ["original", "token ids", "recon-\nstruction", "error x4"],
                 f"{'x'.join(map(str, tok.ids.shape))} tokens: {tok.used} of {tok.codebook} codebook entries, "
                 f"perplexity {tok.perplexity:.1f}")


# ---- text control -------------------------------------------------------------------------------------------


@dataclass
class Sample:
    seed: int
    guidance_scale: float
    frames: np.ndarray  # (f, H, W, 3) uint8
    seen: tuple = ()  # colour, shape, motion that the shapes-world analyser reads in the frames
    matches: bool | None = None  # whether they are the prompt's (None: the prompt is no shapes-world caption)


@torch.no_grad()
def compare_seeds(model, text: str, seeds: list[int], *, guidance_scale: float = 3.0, baseline_guidance: float = 1.0,
                  num_frames: int | None = None, **settings) -> tuple[list[Sample], list[Sample]]:
    """(a sample per seed at `guidance_scale`, [the first seed at `baseline_guidance`, at `guidance_scale`]);
    each is exactly `model.sample(texts=text, seed=seed, ...)`."""
    try:
        wanted = world.parse_caption(text)
    except ValueError:
        wanted = None

    def one(seed: int, guidance: float) -> Sample:
        frames = to_uint8_frames(model.sample(texts=text, num_frames=num_frames or model.window_frames,
                                              seed=seed, guidance_scale=guidance, **settings)[0])
        d = world.describe(frames)
        matches = None if wanted is None else bool(
            (d.colour, d.shape) == wanted[:2] and world.motion_matches(wanted[2], d.motions[0], frames))
        return Sample(seed, guidance, frames, (d.colour, d.shape, d.motions[0]), matches)

    by_seed = [one(seed, guidance_scale) for seed in seeds]
    return by_seed, [one(seeds[0], baseline_guidance), by_seed[0]]


def video_grid(videos: list[np.ndarray], captions: list[str], columns: int = 4, tile: int = 256) -> np.ndarray:
    """Videos (f, H, W, 3) of one length, tiled frame by frame under their captions: (f, H', W', 3)."""
    big = [upscale(v, display_scale(v.shape[1:3], tile)) for v in videos]
    return np.stack([board([[(big[k][i], captions[k]) for k in range(r, min(r + columns, len(big)))]
                            for r in range(0, len(big), columns)]) for i in range(len(videos[0]))])


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
    items = value.replace(",", " ").split() if isinstance(value, str) else \
        list(value) if isinstance(value, (list, tuple)) else [value]
    seeds = list(dict.fromkeys(parse_number("seed", item, integer=True) for item in items))
    if not 1 <= len(seeds) <= MAX_SEEDS or not all(0 <= s <= MAX_SEED for s in seeds):
        raise InputError(f"give 1 to {MAX_SEEDS} seeds between 0 and {MAX_SEED}, e.g. '0, 1, 2, 3'; got {seeds}")
    return seeds


def _folder(path) -> Path:
    """The view's output folder, made once its inputs are known to be good."""
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


def steps_view(model, out_dir, text, num_frames, steps, temperature, critic_strength, guidance_scale, seed,
               refine_passes=None) -> StepsView:
    text = check_prompt(text)
    s = parse_settings(steps, temperature, critic_strength, guidance_scale, seed, refine_passes,
                       has_critic=model.has_critic).resolve_seed()
    if not 1 <= (frames := parse_number("frames", num_frames, integer=True)) <= model.window_frames:
        raise InputError(f"frames must be between 1 and {model.window_frames} (one window), got {frames}")
    trace, out = trace_decoding(model, text, frames, **s.sampling_kwargs()), _folder(out_dir)
    gallery = [(str(write_png(out / f"step_{i + 1:03d}.png", render_step(trace, i))), step.caption(len(trace.steps)))
               for i, step in enumerate(trace.steps)]
    video = write_mp4(out / "window.mp4", upscale(trace.frames, display_scale(model.frame_size), even=True),
                      model.fps)
    refined = sum(step.phase != "parallel" for step in trace.steps)
    passes = f", then {_passes(s.refine_passes)} ({refined} steps)" if refined else ""
    summary = (f"**{text}** · seed {s.seed} · {s.steps} steps{passes} · guidance {s.guidance_scale:g} · "
               f"temperature {s.temperature:g} · critic {s.critic_strength:g} · "
               f"{'×'.join(map(str, trace.ids.shape))} = {trace.ids.size} tokens for {frames} frames. The frames "
               f"made are exactly the first window that Generate (and `Phenaki.sample`) makes with this seed and "
               f"these settings.\n\n{LEGEND}")
    return StepsView(gallery, [step.row() for step in trace.steps], str(video), summary, s.seed)


@dataclass
class TokenizerView:
    video: str  # MP4: original | reconstruction
    psnr: list[list]  # [frame, PSNR dB, latent frame]
    tokens: str  # PNG of the token grid
    summary: str


def tokenizer_view(model, out_dir, video_path, clip_seed) -> TokenizerView:
    if video_path:
        (frames, notes), source = read_video(video_path, model), f"`{Path(video_path).name}`"
    else:
        if not 0 <= (seed := parse_number("clip seed", clip_seed, integer=True)) <= MAX_SEED:
            raise InputError(f"clip seed must be between 0 and {MAX_SEED}, got {seed}")
        (frames, caption), notes = world_clip(model, seed), []
        source = f"shapes-world clip {seed}: *{caption}*"
    tok, out, tp = tokenize(model, frames), _folder(out_dir), model.cvivit.temporal_patch_size
    side = video_grid([tok.original, tok.recon], ["original", "C-ViViT reconstruction"])
    video = write_mp4(out / "tokenizer.mp4", side, model.fps)
    tokens = write_png(out / "tokens.png", render_tokens(tok, model.cvivit.patch_size, tp))
    rows = [[f, round(float(p), 2), model.cvivit.latent_frames_covering(f + 1) - 1] for f, p in enumerate(tok.psnr)]
    rest = f", later frames {tok.psnr[1:].mean():.2f} dB" if len(frames) > 1 else ""
    summary = (f"{source} · {len(frames)} frames → {'×'.join(map(str, tok.ids.shape))} tokens · **{tok.used} of "
               f"{tok.codebook} codebook entries, perplexity {tok.perplexity:.1f}** · PSNR {tok.psnr.mean():.2f} dB "
               f"(first frame, patched alone: {tok.psnr[0]:.2f} dB{rest})" + "".join(f"\n- {n}" for n in notes))
    return TokenizerView(str(video), rows, str(tokens), summary)


@dataclass
class CompareView:
    seeds_video: str  # MP4: a tile a seed
    guidance_video: str  # MP4: the first seed at the baseline and at the chosen guidance
    sheet: str  # PNG: every other frame of every sample
    table: list[list]  # COMPARE_COLUMNS a sample
    summary: str


def compare_view(model, out_dir, text, seeds, steps, temperature, critic_strength, guidance_scale,
                 baseline_guidance, refine_passes=None) -> CompareView:
    text, seeds = check_prompt(text), parse_seeds(seeds)
    s = parse_settings(steps, temperature, critic_strength, guidance_scale, seeds[0], refine_passes,
                       has_critic=model.has_critic)
    low, high = LIMITS["guidance_scale"]
    if not low <= (base := parse_number("baseline guidance", baseline_guidance)) <= high:
        raise InputError(f"baseline guidance must be between {low:g} and {high:g}, got {base:g}")
    by_seed, by_guidance = compare_seeds(model, text, seeds, guidance_scale=s.guidance_scale, baseline_guidance=base,
                                         steps=s.steps, temperature=s.temperature, critic_strength=s.critic_strength,
                                         refine_passes=s.refine_passes)
    out, samples = _folder(out_dir), by_seed + by_guidance[:1]
    videos = [write_mp4(out / f"{name}.mp4", video_grid([x.frames for x in group], [
        f"seed {x.seed}" + (f", guidance {x.guidance_scale:g}" if name == "guidance" else "") for x in group]),
        model.fps) for name, group in (("seeds", by_seed), ("guidance", by_guidance))]
    scale = display_scale(model.frame_size, 64)
    rows = [[(f, f"frame {2 * i}" if r == 0 else "") for i, f in enumerate(upscale(x.frames[::2], scale))]
            for r, x in enumerate(samples)]
    sheet = write_png(out / "sheet.png", board(rows, [f"seed {x.seed}\nguidance {x.guidance_scale:g}"
                                                      for x in samples], f"{text} (every other frame)", 84))
    table = [[x.seed, x.guidance_scale, *x.seen, {None: "", True: "yes", False: "no"}[x.matches]] for x in samples]
    matched = [x.matches for x in by_seed if x.matches is not None]
    score = f" · {sum(matched)} of {len(matched)} seeds match the prompt (shapes-world read-back)" if matched else ""
    summary = (f"**{text}** · {s.steps} steps · {_passes(s.refine_passes)} · temperature {s.temperature:g} "
               f"· critic {s.critic_strength:g} · seeds "
               f"{', '.join(map(str, seeds))} at guidance {s.guidance_scale:g}; seed {seeds[0]} at guidance {base:g} "
               f"and {s.guidance_scale:g}{score}. Each clip is the first window Generate makes with that seed and "
               f"these settings.")
    return CompareView(str(videos[0]), str(videos[1]), str(sheet), table, summary)
