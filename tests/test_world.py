import itertools

import numpy as np
import pytest

from phenaki.shapes import world as w
from phenaki.shapes.world import COLOURS, MOTIONS, SHAPES, Scene

COMBOS = list(itertools.product(COLOURS, SHAPES, MOTIONS))


def degrade(frames, rng, sigma=8.0, dim=1.0):
    """Simulate a tokenizer reconstruction: [1, 2, 1] blur in x and y, dimming, gaussian noise."""
    p = np.pad(frames.astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    x = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4
    x = (x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]) / 4
    x = x * dim + sigma * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def object_pixels(frame):
    return np.argwhere(frame.max(axis=-1) > 0)  # (n, 2) rows of (y, x)


def centroid(frame):
    yx = object_pixels(frame).mean(axis=0)
    return np.array([yx[1], yx[0]])  # (x, y)


def test_constants():
    assert COLOURS == {
        "red": (255, 0, 0),
        "green": (0, 255, 0),
        "blue": (0, 0, 255),
        "yellow": (255, 255, 0),
        "cyan": (0, 255, 255),
        "magenta": (255, 0, 255),
        "white": (255, 255, 255),
    }
    assert list(COLOURS) == ["red", "green", "blue", "yellow", "cyan", "magenta", "white"]
    assert (w.FRAME_SIZE, w.FPS, w.OBJECT_SIZE, w.SPEED) == (64, 8, 14, 2)
    assert SHAPES == ("circle", "square", "triangle")
    assert MOTIONS == ("left", "right", "up", "down", "still")


@pytest.mark.parametrize("colour", list(COLOURS))
def test_exact_colour_pixels(colour):
    frames = w.render_clip(colour, "square", "right", num_frames=3, start=(10, 20))
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    lit = frames[0][frames[0].max(axis=-1) > 0]
    assert {tuple(int(v) for v in p) for p in lit} == {COLOURS[colour]}
    # Background is exactly black and the square sits at the given top-left corner.
    assert frames[0][20:34, 10:24].reshape(-1, 3).tolist() == [list(COLOURS[colour])] * 196
    assert (frames[0].sum() // sum(COLOURS[colour])) == 196


def test_object_sizes():
    counts = {s: len(object_pixels(w.render_clip("white", s, "still", 1, start=(20, 20))[0])) for s in SHAPES}
    assert counts["square"] == 196
    assert abs(counts["circle"] - np.pi * 49) < 0.05 * np.pi * 49
    assert 85 <= counts["triangle"] <= 115
    for s in SHAPES:  # every shape fills its 14x14 box exactly
        yx = object_pixels(w.render_clip("white", s, "still", 1, start=(20, 20))[0])
        assert (yx.min(0).tolist(), yx.max(0).tolist()) == ([20, 20], [33, 33]), s
    # The triangle points up: rows get wider towards the base.
    widths = w.MASKS["triangle"].sum(axis=1)
    assert widths[0] < widths[6] < widths[-1] == 14 and np.all(np.diff(widths) >= 0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "motion,step", [("left", (-2, 0)), ("right", (2, 0)), ("up", (0, -2)), ("down", (0, 2)), ("still", (0, 0))]
)
def test_motion_two_px_per_frame(shape, motion, step):
    frames = w.render_clip("green", shape, motion, num_frames=10, start=(25, 25))
    c = np.array([centroid(f) for f in frames])
    np.testing.assert_allclose(np.diff(c, axis=0), np.tile(step, (9, 1)), atol=1e-9)


@pytest.mark.parametrize(
    "motion,start,final",
    [("left", (5, 30), (0, 30)), ("right", (44, 30), (50, 30)), ("up", (30, 3), (30, 0)), ("down", (30, 47), (30, 50))],
)
def test_clamped_at_border(motion, start, final):
    frames = w.render_clip("blue", "circle", motion, num_frames=17, start=start)
    counts = [len(object_pixels(f)) for f in frames]
    assert counts == [counts[0]] * 17  # never cut off by the frame edge
    pos = w.trajectory([(Scene("blue", "circle", motion), 17)], start)
    assert tuple(pos[-1]) == final and pos.min() >= 0 and pos.max() <= w.MAX_POS
    # It stops: the last frames are identical once the box touches the border.
    assert np.array_equal(frames[-1], frames[-5]) and not np.array_equal(frames[0], frames[-1])
    yx = object_pixels(frames[-1])
    assert yx.min() >= 0 and yx.max() <= 63 and (yx.min() == 0 or yx.max() == 63)


def test_bad_arguments():
    with pytest.raises(ValueError, match="start"):
        w.render_clip("red", "square", "left", start=(51, 0))
    with pytest.raises(ValueError, match="colour"):
        w.render_clip("purple", "square", "left")
    with pytest.raises(ValueError, match="shape"):
        Scene("red", "hexagon", "left")


def test_determinism_and_seed_dependence():
    a = w.render_clip("red", "circle", "up", seed=7)
    assert np.array_equal(a, w.render_clip("red", "circle", "up", seed=7))
    starts = {tuple(object_pixels(w.render_clip("red", "circle", "up", seed=s)[0]).min(0)) for s in range(8)}
    assert len(starts) >= 6
    f1, c1, s1 = w.random_clip(3)
    f2, c2, s2 = w.random_clip(3)
    assert np.array_equal(f1, f2) and (c1, s1) == (c2, s2)
    clips = [w.random_clip(s) for s in range(20)]
    assert len({c for _, c, _ in clips}) >= 10
    assert len({f.tobytes() for f, _, _ in clips}) == 20
    story1, story2 = w.random_story(4), w.random_story(4)
    assert np.array_equal(story1[0], story2[0]) and story1[1:] == story2[1:]
    assert not np.array_equal(story1[0], w.random_story(5)[0])


def test_captions_and_parse_roundtrip():
    assert Scene("red", "circle", "left").caption() == "a red circle moves left"
    assert Scene("cyan", "square", "still").caption() == "a cyan square stays still"
    assert Scene("white", "triangle", "up").caption(first=False) == "the white triangle moves up"
    assert Scene("blue", "circle", "still").caption(False) == "the blue circle stays still"
    for colour, shape, motion in COMBOS:
        for first in (True, False):
            assert w.parse_caption(Scene(colour, shape, motion).caption(first)) == (colour, shape, motion)
    assert w.parse_caption("  A  Red   CIRCLE moves\tLEFT. ") == ("red", "circle", "left")
    assert w.parse_caption("The magenta square stays still") == ("magenta", "square", "still")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a red circle",
        "a purple circle moves left",
        "a red hexagon moves up",
        "a red circle moves sideways",
        "a red circle stays left",
        "red circle moves left",
        "an red circle moves left",
        "a red circle moves left quickly",
    ],
)
def test_parse_caption_rejects(bad):
    with pytest.raises(ValueError) as err:
        w.parse_caption(bad)
    assert repr(bad) in str(err.value)


def test_paraphrases():
    rng = np.random.default_rng(0)
    for motion in MOTIONS:
        texts = {w.paraphrase("yellow", "triangle", motion, rng) for _ in range(40)}
        assert len(texts) >= 3
        for t in texts:
            assert "yellow" in t and "triangle" in t and (motion in t or motion == "still")
            with pytest.raises(ValueError):  # paraphrases never masquerade as canonical captions
                w.parse_caption(t)
    # Canonical captions are the default; paraphrasing leaves the frames for a seed unchanged.
    for seed in range(10):
        frames, caption, scene = w.random_clip(seed)
        assert caption == scene.caption()
        frames_p, caption_p, scene_p = w.random_clip(seed, paraphrase_prob=1.0)
        assert np.array_equal(frames, frames_p) and scene_p == scene and caption_p != caption


def test_story_keeps_object_and_position():
    red_sq = Scene("red", "square", "right")
    frames, captions = w.render_story([(red_sq, 6), ("down", 5), (Scene("red", "square", "still"), 4)], start=(30, 10))
    assert frames.shape == (15, 64, 64, 3)
    assert captions == ["a red square moves right", "the red square moves down", "the red square stays still"]
    lit = frames[frames.max(axis=-1) > 0]
    assert np.all(lit == COLOURS["red"]) and len(lit) == 15 * 196
    c = np.array([centroid(f) for f in frames])
    steps = np.diff(c, axis=0)
    expected = [(2, 0)] * 5 + [(0, 2)] * 5 + [(0, 0)] * 4  # no jump between segments
    np.testing.assert_allclose(steps, expected, atol=1e-9)
    # The story continues through clamping: a right move that hits the border stops there.
    pos = w.trajectory([(red_sq, 10), ("down", 10)], (40, 0))
    assert tuple(pos[9]) == (50, 0) and tuple(pos[-1]) == (50, 20)


def test_story_rejects_changing_object():
    with pytest.raises(ValueError, match="blue"):
        w.render_story([(Scene("red", "square", "left"), 4), (Scene("blue", "square", "up"), 4)])
    with pytest.raises(ValueError, match="circle"):
        w.render_story([(Scene("red", "square", "left"), 4), (Scene("red", "circle", "up"), 4)])
    with pytest.raises(ValueError):
        w.render_story([("left", 4)])


def test_random_story():
    for seed in range(10):
        frames, captions, scenes = w.random_story(seed, num_segments=4, frames_per_segment=8)
        assert frames.shape == (32, 64, 64, 3) and len(captions) == len(scenes) == 4
        assert captions == [s.caption(first=i == 0) for i, s in enumerate(scenes)]
        assert len({(s.colour, s.shape) for s in scenes}) == 1
        desc = w.describe(frames, [8] * 4)
        # Random stories keep room for every commanded move, so the captions are truthful.
        assert desc.motions == [s.motion for s in scenes]


def test_expected_motion_and_clamping():
    left = Scene("red", "circle", "left")
    assert w.expected_motion(left, (0, 20), 17) == "still"
    assert w.expected_motion(left, (1, 20), 17) == "still"  # 1 px is not a visible move
    assert w.expected_motion(left, (2, 20), 17) == "left"
    assert w.expected_motion(left, (30, 20), 1) == "still"
    assert w.expected_motion(Scene("red", "circle", "down"), (0, 50), 17) == "still"
    assert w.expected_motion(Scene("red", "circle", "down"), (0, 0), 17) == "down"
    assert w.expected_motion(Scene("red", "circle", "still"), (25, 25), 17) == "still"
    # describe agrees at the 1 px / 2 px boundary, on exact and degraded frames.
    rng = np.random.default_rng(4)
    for x, seen in [(0, "still"), (1, "still"), (2, "left"), (3, "left")]:
        frames = w.render_clip("red", "triangle", "left", 17, start=(x, 20))
        assert w.describe(frames).motions == w.describe(degrade(frames, rng)).motions == [seen], x


def _random_starts(rng, n):
    # Half uniform, half hugging a border, so clamping is well covered.
    starts = [tuple(rng.integers(0, w.MAX_POS + 1, 2)) for _ in range(n)]
    starts += [
        (int(rng.choice([0, 1, 2, 3, 47, 48, 49, 50])), int(rng.integers(0, 51)))[:: int(rng.choice([1, -1]))]
        for _ in range(n)
    ]
    return starts


def test_describe_every_rendered_clip_exact_and_degraded():
    rng = np.random.default_rng(0)
    n_checked = 0
    for (colour, shape, motion), start in zip(COMBOS * 3, _random_starts(rng, 3 * len(COMBOS) // 2 + 1)):
        num_frames = int(rng.choice([6, 10]))  # short clips keep the suite fast; 17 is covered below
        frames = w.render_clip(colour, shape, motion, num_frames, start=start)
        truth = (colour, shape, [w.expected_motion(Scene(colour, shape, motion), start, num_frames)])
        for version in (frames, degrade(frames, rng)):
            d = w.describe(version)
            assert (d.colour, d.shape, d.motions) == truth, (colour, shape, motion, start)
            n_checked += 1
    assert n_checked == 2 * 3 * len(COMBOS)


def test_describe_stories_exact_and_degraded():
    rng = np.random.default_rng(1)
    for seed in range(40):
        scene0 = w.random_scene(rng)
        motions = [m for m in rng.choice(MOTIONS, size=3)]
        lengths = [int(n) for n in rng.integers(4, 12, size=3)]
        segments = [(scene0, lengths[0])] + list(zip(motions[1:], lengths[1:]))
        start = tuple(int(v) for v in rng.integers(0, w.MAX_POS + 1, 2))
        frames, _ = w.render_story(segments, start=start)
        pos = w.trajectory(segments, start)
        bounds = np.cumsum([0] + lengths)
        truth = [
            w.expected_motion(Scene(scene0.colour, scene0.shape, m), tuple(pos[a]), n)
            for m, a, n in zip([scene0.motion] + motions[1:], bounds[:-1], lengths)
        ]
        for version in (frames, degrade(frames, rng)):
            d = w.describe(version, lengths)
            assert (d.colour, d.shape, d.motions) == (scene0.colour, scene0.shape, truth), seed


def test_describe_dimmer_float_frames():
    rng = np.random.default_rng(2)
    for colour, shape in itertools.product(COLOURS, SHAPES):
        frames = degrade(w.render_clip(colour, shape, "down", 9, start=(20, 5)), rng, sigma=10, dim=0.5)
        d = w.describe(frames.astype(np.float32) / 255.0)
        assert (d.colour, d.shape, d.motions) == (colour, shape, ["down"])
        assert not np.isnan(d.centroids).any()


def test_random_clips_are_truthful():
    for seed in range(60):
        frames, caption, scene = w.random_clip(seed)
        assert w.parse_caption(caption) == (scene.colour, scene.shape, scene.motion)
        d = w.describe(frames)
        assert (d.colour, d.shape, d.motions) == (scene.colour, scene.shape, [scene.motion])


def test_describe_empty_video():
    d = w.describe(np.zeros((9, 64, 64, 3), np.uint8))
    assert (d.colour, d.shape, d.motions) == (None, None, [None])
    noisy = degrade(np.zeros((9, 64, 64, 3), np.uint8), np.random.default_rng(3))
    d = w.describe(noisy, [4, 5])
    assert (d.colour, d.shape, d.motions) == (None, None, [None, None])
    with pytest.raises(ValueError):
        w.describe(noisy, [4, 4])
    assert w.describe(np.zeros((0, 64, 64, 3), np.uint8)).colour is None
    # Scattered hot pixels (e.g. decoder artefacts) are not an object.
    speckle = np.zeros((3, 64, 64, 3), np.uint8)
    ys, xs = np.random.default_rng(5).integers(0, 64, (2, 30))
    speckle[:, ys, xs] = 255
    assert w.describe(speckle).colour is None
    # Visible in only the last frame: colour and shape known, the first segment has no motion.
    late = np.concatenate([np.zeros((4, 64, 64, 3), np.uint8), w.render_clip("cyan", "square", "up", 1)])
    d = w.describe(late, [3, 2])
    assert (d.colour, d.shape, d.motions) == ("cyan", "square", [None, "still"])


def test_motion_matches():
    at_left = w.render_clip("red", "square", "left", 9, start=(0, 20))
    middle = w.render_clip("red", "square", "still", 9, start=(25, 20))
    assert w.describe(at_left).motions == ["still"]
    assert w.motion_matches("left", "still", at_left)  # pushed into the border it touches
    assert not w.motion_matches("right", "still", at_left)
    assert not w.motion_matches("left", "still", middle)
    assert not w.motion_matches("left", "right", at_left)
    assert w.motion_matches("up", "up", middle) and w.motion_matches("still", "still", middle)
    assert not w.motion_matches("left", "still", np.zeros((9, 64, 64, 3), np.uint8))
