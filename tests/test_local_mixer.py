"""MaskGit's local mixers: a depthwise 3x3x3 convolution over the token grid at the start of every layer, which
reaches exactly a token's neighbours, never sees padding, and can be added to a trained model without changing it."""

import pytest
import torch
from conftest import randomised, tiny_phenaki

from phenaki import MaskGit, Phenaki
from phenaki.models.attention import LocalMixer
from phenaki.training.presets import preset

GRID = (3, 4, 5)


def random_mixer() -> LocalMixer:
    torch.manual_seed(0)
    return randomised(LocalMixer(8, GRID))  # randomised: to_out is no longer zero


def test_a_token_reaches_exactly_its_3x3x3_neighbourhood():
    mixer = random_mixer()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 60, 8, generator=g)
    moved = x.clone()
    moved[0, (1 * 4 + 2) * 5 + 3] = torch.randn(8, generator=g)  # frame 1, row 2, column 3
    with torch.no_grad():
        changed = (mixer(moved) - mixer(x)).abs().amax(-1).view(GRID) > 1e-6
    t, h, w = torch.meshgrid(*(torch.arange(n) for n in GRID), indexing="ij")
    neighbours = ((t - 1).abs() <= 1) & ((h - 2).abs() <= 1) & ((w - 3).abs() <= 1)
    assert torch.equal(changed, neighbours)


def test_padding_never_leaks_and_a_shorter_window_is_the_grid_padded_with_zeros():
    mixer = random_mixer()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 60, 8, generator=g)
    mask = torch.rand(2, 60, generator=g) > 0.3
    garbage = x.masked_fill(~mask[..., None], 1e3)
    with torch.no_grad():
        torch.testing.assert_close(mixer(garbage, mask), mixer(x, mask))
        short = mixer(x[:, :45])  # the last frame's last 15 positions are not in this window
        tail_masked = torch.arange(60) < 45
        torch.testing.assert_close(short, mixer(x, tail_masked.expand(2, -1))[:, :45])


def test_mixers_added_to_a_trained_model_change_nothing_until_trained(tmp_path):
    model = tiny_phenaki(seed=4, maskgit={**preset("tiny")["maskgit"], "position_grid": [9, 4, 4]})
    randomised(model.maskgit, seed=5)
    kwargs = dict(texts="a red circle moves left", num_frames=17, steps=3, seed=1)
    before = model.sample(**kwargs)
    model.maskgit.add_local_mixers()
    assert model.config["maskgit"]["local_mixer"] is True
    assert torch.equal(model.sample(**kwargs), before)

    randomised(model.maskgit.transformer.local_mixers, seed=6)  # as if trained: now they matter
    mixed = model.sample(**kwargs)
    assert not torch.equal(mixed, before)
    model.save_pretrained(tmp_path)
    loaded = Phenaki.from_pretrained(tmp_path)
    assert loaded.config["maskgit"]["local_mixer"] is True
    assert torch.equal(loaded.sample(**kwargs), mixed)


def test_local_mixer_errors():
    with pytest.raises(ValueError, match="local_mixer needs position_grid"):
        MaskGit(num_tokens=10, max_seq_len=8, dim=16, depth=1, heads=2, dim_head=8, local_mixer=True)
    with pytest.raises(ValueError, match="need a transformer with position_grid"):
        MaskGit(num_tokens=10, max_seq_len=8, dim=16, depth=1, heads=2, dim_head=8).add_local_mixers()
    model = MaskGit(
        num_tokens=10, max_seq_len=8, dim=16, depth=1, heads=2, dim_head=8, position_grid=[2, 2, 2], local_mixer=True
    )
    with pytest.raises(ValueError, match="already has local mixers"):
        model.add_local_mixers()
