"""Where the words go: the Inspect tab's view of MaskGit's cross-attention from a window's video tokens to each word
of the prompt, without Gradio (`ui_words.py` is its view), so tests call it.

`word_attention` makes the first window exactly as `Phenaki.sample` does (same seed, same frames), then runs MaskGit
once more over the window's final tokens, conditioned on the prompt (no guidance half), with
`recording_cross_attention` on: for every layer, each token's softmax weights over the null key and the text's
tokens, averaged over the heads. This read-out shows how the finished window's tokens attend to the words; the
attention during decoding differs from step to step and, at the last layer, exists only at the positions still
masked. The byte-level text encoder has one token per UTF-8 byte (and an end token), so a word's attention is the
sum over its bytes (`pool_words`); what goes to the null key, the spaces and the end token is `rest`.

`object_tokens` finds each object of a shapes-world caption (its phrases split on " and ") in the decoded frames by
its palette colour (`world2_describe`'s labelling, which both worlds' colours share) and gives it the tokens whose
patch (8x8 px, over the token's frames: the first frame alone, then tubelets of `temporal_patch_size`) it covers;
`object_masses` says how much of those tokens' attention goes to the object's own words and to the other's.
`words_view` goes from raw UI/API values (`InputError` for the user) to files and plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from ..media import board, display_scale, to_uint8_frames, upscale, write_mp4, write_png
from ..models.attention import recording_cross_attention
from ..models.cvivit import first_frames
from ..models.text import ByteTextEncoder
from ..shapes import world2
from ..shapes.world2_describe import palette_labels
from .stories import InputError, parse_settings
from .views import check_prompt, colormap, output_folder, video_grid

COVER = 0.1  # a token is an object's when the object's pixels fill at least this share of its patch and frames
TILE = 96  # about this many pixels a frame in the heat-map boards (a board has a row per word)
WORD_COLUMNS = [
    "object",
    "layer",
    "tokens",
    "own words",
    "other object's words",
    "elsewhere",
    "own colour + shape",
    "other's colour + shape",
]


@dataclass
class WordAttention:
    text: str
    words: list[str]  # the words the encoder read (whitespace-separated), in order
    spans: list[tuple[int, int]]  # each word's text tokens [start, stop) (bytes of the UTF-8 text)
    layers: np.ndarray  # (layers, words, t, h, w): each token's attention mass on each word, heads averaged
    rest: np.ndarray  # (layers, t, h, w): on the null key, the spaces and the end token; with `layers`, sums to 1
    frames: np.ndarray  # (f, H, W, 3) uint8: what `Phenaki.sample` makes for this window
    patch: int  # pixels a token covers, each side
    temporal_patch: int  # frames a token covers after the first
    dropped: list[str]  # words past the text encoder's max_length (never read)

    @property
    def mean(self) -> np.ndarray:
        """(words, t, h, w): the layers' average."""
        return self.layers.mean(0)

    def frame_tokens(self) -> np.ndarray:
        """(f,) the latent frame each video frame belongs to."""
        return np.array([0] + [1 + (f - 1) // self.temporal_patch for f in range(1, len(self.frames))])


def word_spans(text: str, read_bytes: int) -> tuple[list[str], list[tuple[int, int]], list[str]]:
    """The words of `text` (runs of non-space), their byte ranges [start, stop) in its UTF-8 encoding, cut at the
    `read_bytes` the encoder read; and the words wholly past that."""
    words, spans, dropped = [], [], []
    for m in re.finditer(r"\S+", text):
        start, stop = len(text[: m.start()].encode()), len(text[: m.end()].encode())
        if start >= read_bytes:
            dropped.append(m.group())
            continue
        words.append(m.group())
        spans.append((start, min(stop, read_bytes)))
    return words, spans, dropped


def pool_words(weights, spans: list[tuple[int, int]]):
    """Weights (..., 1 + text tokens), key 0 the null key -> (..., words): each word's mass, its bytes summed."""
    return np.stack([weights[..., 1 + a : 1 + b].sum(-1) for a, b in spans], -1)


@torch.no_grad()
def word_attention(model, text: str, **settings) -> WordAttention:
    """The first window of `model.sample(texts=text, **settings)` and its tokens' cross-attention on each word
    (module docstring). Needs the byte-level text encoder."""
    if not isinstance(model.text_encoder, ByteTextEncoder):
        raise ValueError("word attention pools bytes into words: it needs the byte-level text encoder (kind='byte')")
    states = []
    video = model.sample(texts=text, num_frames=model.window_frames, on_step=states.append, **settings)
    ids = states[-1].ids  # the window's final tokens: a first window has no primed prefix
    context, mask = model.encode_text([text])
    with recording_cross_attention(model.maskgit) as records:
        model.maskgit(ids, context, mask)
    weights = torch.stack([layer[0][0] for layer in records]).mean(1).numpy()  # (layers, n, 1 + text tokens)
    read = int(mask.sum()) - 1  # bytes read, before the end token
    words, spans, dropped = word_spans(text, read)
    (h, w), layers = model.grid, len(weights)
    grid = lambda x: x.reshape(layers, -1, h, w, *x.shape[2:])  # noqa: E731  (layers, n, ...) -> (layers, t, h, w, ...)
    pooled = grid(pool_words(weights, spans))
    return WordAttention(
        text,
        words,
        spans,
        np.moveaxis(pooled, -1, 1),
        grid(weights).sum(-1) - pooled.sum(-1),
        to_uint8_frames(video[0]),
        model.cvivit.patch_size,
        model.cvivit.temporal_patch_size,
        dropped,
    )


# ---- objects and their words ----------------------------------------------------------------------------------


def phrases(words: list[str]) -> list[list[int]]:
    """The indices of each object phrase's words: the caption split at the word 'and'."""
    groups: list[list[int]] = [[]]
    for i, word in enumerate(words):
        if word.lower() == "and":
            groups.append([])
        else:
            groups[-1].append(i)
    return [g for g in groups if g]


def _find(words: list[str], indices: list[int], vocabulary) -> int | None:
    return next((i for i in indices if words[i].lower().strip(".,;!") in vocabulary), None)


def object_tokens(
    frames: np.ndarray, colours: list[str | None], patch: int, temporal_patch: int, grid: tuple[int, int, int]
) -> np.ndarray:
    """(t, h, w) int: which object (an index into `colours`, palette names) each token shows, -1 none. A token is
    an object's when the object's pixels fill at least COVER of the token's patch over its frames; of two, the one
    that fills more."""
    labels, palette = palette_labels(frames), list(world2.COLOURS)
    t, h, w = grid
    latent = np.array([0] + [1 + (f - 1) // temporal_patch for f in range(1, len(frames))])
    cover = np.zeros((len(colours), t, h, w))
    for k, colour in enumerate(colours):
        if colour is None:
            continue
        pixels = (labels == palette.index(colour)).reshape(len(frames), h, patch, w, patch).sum((2, 4))
        np.add.at(cover[k], latent, pixels)
    cover /= patch * patch * np.bincount(latent, minlength=t)[:, None, None]
    owner = cover.argmax(0) if len(colours) else np.zeros(grid, int)
    return np.where(cover.max(0, initial=0) >= COVER, owner, -1)


def _mean_mass(per_word: np.ndarray, words: list[int], tokens: np.ndarray, rest: np.ndarray | None = None):
    """The mean over `tokens` (t, h, w bool) of their mass on `words` (plus `rest`); None without tokens."""
    if not tokens.any():
        return None
    mass = per_word[words][:, tokens].sum(0) + (0 if rest is None else rest[tokens])
    return round(float(mass.mean()), 4)


def object_masses(wa: WordAttention, owner: np.ndarray, groups: list[list[int]], key_words: list[list[int]]):
    """Rows of WORD_COLUMNS: for each object (phrase) and for the layers' mean and each layer, the mean over the
    object's tokens (`owner` == its index) of the attention mass on its own phrase's words, on the other phrases'
    words, elsewhere (the other words, such as 'and', the null key, spaces and the end token: the three sum to 1),
    and on its own and the others' colour and shape words (`key_words`)."""
    rows = []
    for k, group in enumerate(groups):
        tokens = owner == k
        others = [i for j, g in enumerate(groups) if j != k for i in g]
        other_key = [i for j, g in enumerate(key_words) if j != k for i in g]
        unused = [i for i in range(len(wa.words)) if i not in group and i not in others]
        layers = [("mean", wa.mean, wa.rest.mean(0))]
        layers += [(str(i + 1), wa.layers[i], wa.rest[i]) for i in range(len(wa.layers))]
        for name, per_word, rest in layers:
            rows.append(
                [
                    " ".join(wa.words[i] for i in group),
                    name,
                    int(tokens.sum()),
                    _mean_mass(per_word, group, tokens),
                    _mean_mass(per_word, others, tokens),
                    _mean_mass(per_word, unused, tokens, rest),
                    _mean_mass(per_word, key_words[k], tokens),
                    _mean_mass(per_word, other_key, tokens),
                ]
            )
    return rows


def objects_table(wa: WordAttention) -> tuple[list[list], list[str]]:
    """WORD_COLUMNS rows for the caption's objects, found by colour; and a note per object not found."""
    groups = phrases(wa.words)
    colours = [_find(wa.words, g, world2.COLOURS) for g in groups]
    shapes = [_find(wa.words, g, world2.SHAPES) for g in groups]
    key_words = [[i for i in (c, s) if i is not None] for c, s in zip(colours, shapes)]
    names = [None if c is None else wa.words[c].lower().strip(".,;!") for c in colours]
    grid = (wa.layers.shape[2], *wa.layers.shape[3:])
    owner = object_tokens(wa.frames, names, wa.patch, wa.temporal_patch, grid)
    notes = [
        f"'{' '.join(wa.words[i] for i in g)}': "
        + ("no colour word, so it cannot be found" if n is None else f"no {n} pixels found in the frames")
        for k, (g, n) in enumerate(zip(groups, names))
        if n is None or not (owner == k).any()
    ]
    return object_masses(wa, owner, groups, key_words), notes


# ---- drawing ----------------------------------------------------------------------------------------------------


def overlay(frames: np.ndarray, heat: np.ndarray, scale: float, patch: int) -> np.ndarray:
    """Frames (f, H, W, 3) uint8 under a token heat map (f, h, w) (each frame's latent frame's), colour-mapped
    with `scale` as yellow: (f, H, W, 3) uint8."""
    pixels = heat.repeat(patch, 1).repeat(patch, 2) / max(scale, 1e-12)
    return (0.35 * frames + 0.65 * colormap(pixels)).astype(np.uint8)


def render_words(wa: WordAttention, layer: int | None = None, tile: int = TILE) -> np.ndarray:
    """A board: a row per word, a column per latent frame (its first frame), each frame under that word's heat
    map for `layer` (0-based; None: the layers' mean). Colours run from purple (0) to yellow (the board's largest
    mass, in the title)."""
    maps = wa.mean if layer is None else wa.layers[layer]  # (words, t, h, w)
    index = first_frames(maps.shape[1], wa.temporal_patch)
    scale, factor = float(maps.max()), display_scale(wa.frames.shape[1:3], tile)
    rows = [
        [
            (tile_, f"frame {i}" if r == 0 else "")
            for tile_, i in zip(upscale(overlay(wa.frames[index], heat, scale, wa.patch), factor), index)
        ]
        for r, heat in enumerate(maps)
    ]
    which = "all layers (mean)" if layer is None else f"layer {layer + 1} of {len(wa.layers)}"
    return board(rows, wa.words, f"{which}: attention on each word, yellow = {scale:.3f} (purple 0)")


def words_video(wa: WordAttention, tile: int = 128) -> np.ndarray:
    """The window, then each word's heat map (the layers' mean) over every frame: tiles under their captions."""
    latent = wa.frame_tokens()
    scale = float(wa.mean.max())
    heat = [overlay(wa.frames, maps[latent], scale, wa.patch) for maps in wa.mean]
    return video_grid([wa.frames, *heat], ["the window", *wa.words], columns=4, tile=tile)


# ---- the view: raw UI / API values in, files out ----------------------------------------------------------------


@dataclass
class WordsView:
    gallery: list[tuple[str, str]]  # (PNG, caption): the layers' mean, then each layer
    video: str  # MP4: the window and each word's heat map over its frames
    table: list[list]  # WORD_COLUMNS
    summary: str  # Markdown
    seed: int


def words_view(model, out_dir, text, steps, temperature, critic_strength, guidance_scale, seed, refine_passes=None):
    text = check_prompt(text)
    s = parse_settings(
        steps, temperature, critic_strength, guidance_scale, seed, refine_passes, has_critic=model.has_critic
    ).resolve_seed()
    if not isinstance(model.text_encoder, ByteTextEncoder):
        raise InputError("this view pools the bytes of each word: it needs a model with the byte-level text encoder")
    wa, out = word_attention(model, text, **s.sampling_kwargs()), output_folder(out_dir)
    gallery = [(str(write_png(out / "words_mean.png", render_words(wa))), "all layers (mean)")] + [
        (str(write_png(out / f"words_layer{i + 1}.png", render_words(wa, i))), f"layer {i + 1}")
        for i in range(len(wa.layers))
    ]
    video = write_mp4(out / "words.mp4", words_video(wa), model.fps)
    table, notes = objects_table(wa)
    own = [r for r in table if r[1] == "mean" and r[3] is not None]
    found = "".join(
        f"\n- **{r[0]}**: {r[2]} tokens, {r[3]:.3f} of their attention on its own words, "
        f"{r[4]:.3f} on the other object's"
        for r in own
    )
    summary = (
        f"**{text}** · seed {s.seed} · {s.steps} steps · guidance {s.guidance_scale:g} · the first window, "
        f"exactly as Generate makes it. MaskGit read its final tokens once more with the prompt: each heat map is "
        f"how much of a token's cross-attention (heads averaged) goes to one word's bytes; the rest goes to the "
        f"spaces, the end token and the null key. Objects are found by colour; a token is an object's when the "
        f"object fills at least {COVER:.0%} of its patch.{found}"
        + "".join(f"\n- {n}" for n in notes)
        + (f"\n- not read by the text encoder (too long): {' '.join(wa.dropped)}" if wa.dropped else "")
    )
    return WordsView(gallery, str(video), table, summary, s.seed)
