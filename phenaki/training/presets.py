"""Named model sizes. `tiny` is for tests and development; `shapes` is the bundled default model's size."""

from __future__ import annotations

import copy

PRESETS: dict[str, dict] = {
    # a few hundred thousand parameters: fast enough for unit tests on a CPU
    "tiny": dict(
        cvivit=dict(
            dim=32,
            codebook_size=64,
            patch_size=8,
            temporal_patch_size=2,
            spatial_depth=1,
            temporal_depth=1,
            dim_head=16,
            heads=2,
            quantizer="fsq",
            fsq_levels=[4, 4, 4],
        ),
        maskgit=dict(num_tokens=64, max_seq_len=9 * 16, dim=32, depth=2, heads=2, dim_head=16, dim_context=32),
        critic=dict(num_tokens=64, max_seq_len=9 * 16, dim=32, depth=1, heads=2, dim_head=16, dim_context=32),
        text_encoder=dict(kind="byte", dim=32, depth=1, heads=2, dim_head=16, ff_mult=2, max_length=64),
        frame_size=[32, 32],
        fps=8,
        prime_frames=5,
    ),
    # the default model: 64x64 shapes world, 17-frame windows of 9 x 8 x 8 tokens
    "shapes": dict(
        cvivit=dict(
            dim=128,
            codebook_size=1000,
            patch_size=8,
            temporal_patch_size=2,
            spatial_depth=2,
            temporal_depth=2,
            dim_head=32,
            heads=4,
            quantizer="fsq",
            fsq_levels=[8, 5, 5, 5],
            pixel_mlp_dim=16,
        ),
        maskgit=dict(
            num_tokens=1000,
            max_seq_len=9 * 64,
            dim=192,
            depth=4,
            heads=4,
            dim_head=48,
            dim_context=128,
            position_grid=[9, 8, 8],
        ),
        critic=dict(
            num_tokens=1000,
            max_seq_len=9 * 64,
            dim=128,
            depth=2,
            heads=4,
            dim_head=32,
            dim_context=128,
            position_grid=[9, 8, 8],
        ),
        text_encoder=dict(kind="byte", dim=128, depth=2, heads=4, dim_head=32, ff_mult=2, max_length=64),
        frame_size=[64, 64],
        fps=8,
        prime_frames=5,
    ),
    # shapes world 2 (one or two objects, two sizes, growth): the default model's compute per window, with a
    # larger codebook for patches that hold edges of two objects, a pixel refiner from the start, and room for
    # two-object captions (up to ~70 bytes; paraphrases longer)
    "shapes2": dict(
        cvivit=dict(
            dim=128,
            codebook_size=1920,
            patch_size=8,
            temporal_patch_size=2,
            spatial_depth=2,
            temporal_depth=2,
            dim_head=32,
            heads=4,
            quantizer="fsq",
            fsq_levels=[8, 8, 6, 5],
            pixel_mlp_dim=16,
            pixel_refiner_dim=32,
        ),
        maskgit=dict(
            num_tokens=1920,
            max_seq_len=9 * 64,
            dim=192,
            depth=4,
            heads=4,
            dim_head=48,
            dim_context=128,
            position_grid=[9, 8, 8],
            local_mixer=True,
        ),
        critic=dict(
            num_tokens=1920,
            max_seq_len=9 * 64,
            dim=128,
            depth=2,
            heads=4,
            dim_head=32,
            dim_context=128,
            position_grid=[9, 8, 8],
        ),
        text_encoder=dict(kind="byte", dim=128, depth=2, heads=4, dim_head=32, ff_mult=2, max_length=128),
        frame_size=[64, 64],
        fps=8,
        prime_frames=5,
    ),
}


def preset(name: str) -> dict:
    """A deep copy of the named config, ready for `Phenaki.from_config`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
