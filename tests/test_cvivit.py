"""C-ViViT: causality, quantizers, losses, shapes and errors."""

import pytest
import torch
import torch.nn as nn

from phenaki import CViViT
from phenaki.models.cvivit import first_frames


def small_cvivit(**overrides) -> CViViT:
    torch.manual_seed(0)
    kwargs = dict(
        dim=32,
        codebook_size=64,
        patch_size=8,
        temporal_patch_size=2,
        spatial_depth=1,
        temporal_depth=2,
        dim_head=16,
        heads=2,
        quantizer="fsq",
        fsq_levels=[4, 4, 4],
    )
    kwargs.update(overrides)
    return CViViT(**kwargs)


QUANTIZERS = [
    dict(quantizer="vq", fsq_levels=None),
    dict(quantizer="lfq", fsq_levels=None),
    dict(quantizer="fsq", fsq_levels=[4, 4, 4]),
]


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=lambda q: q["quantizer"])
def test_tokens_of_a_prefix_equal_the_prefix_of_the_tokens(quantizer):
    cvivit = small_cvivit(**quantizer)
    video = torch.rand(2, 3, 9, 32, 32)
    cvivit(video, return_loss=True)  # one training-mode pass (k-means init for vq), then freeze
    cvivit.eval()
    whole = cvivit.encode(video)
    assert whole.shape == (2, 5, 4, 4) and whole.dtype == torch.long
    for k in range(4):
        frames = 1 + k * 2
        assert torch.equal(cvivit.encode(video[:, :, :frames]), whole[:, : k + 1]), f"prefix of {frames} frames"


def test_a_change_to_the_last_frame_changes_no_earlier_token():
    cvivit = small_cvivit().eval()
    video = torch.rand(1, 3, 9, 32, 32)
    changed = video.clone()
    changed[:, :, -1] = torch.rand(1, 3, 32, 32)
    before, after = cvivit.encode_embeddings(video), cvivit.encode_embeddings(changed)
    assert torch.equal(before[:, :-1], after[:, :-1])
    assert not torch.allclose(before[:, -1], after[:, -1])  # the last latent frame does see it
    assert torch.equal(cvivit.encode(video)[:, :-1], cvivit.encode(changed)[:, :-1])


def with_trained_refiner(cvivit: CViViT, dim: int = 6) -> CViViT:
    """`cvivit` with a pixel refiner whose last layer is not zero, as after training."""
    cvivit.add_pixel_refiner(dim)
    nn.init.normal_(cvivit.pixel_refiner[-1].weight, std=0.3)
    return cvivit


@pytest.mark.parametrize("head", ["linear", "pixel mlp", "pixel mlp + refiner"])
def test_decoder_is_causal_too(head):
    cvivit = small_cvivit(pixel_mlp_dim=None if head == "linear" else 8).eval()
    if head.endswith("refiner"):
        with_trained_refiner(cvivit)
    ids = torch.randint(0, 64, (1, 5, 4, 4))
    whole = cvivit.decode(ids)
    assert whole.shape == (1, 3, 9, 32, 32)
    assert torch.allclose(cvivit.decode(ids[:, :3]), whole[:, :, :5], atol=1e-5)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 64
    assert torch.allclose(cvivit.decode(changed)[:, :, :7], whole[:, :, :7], atol=1e-5)


def test_a_new_pixel_refiner_leaves_the_decoded_frames_as_they_were():
    cvivit = small_cvivit(pixel_mlp_dim=8).eval()
    ids = torch.randint(0, 64, (2, 3, 4, 4))
    before = cvivit.decode(ids)
    cvivit.add_pixel_refiner(6)
    assert cvivit.config["pixel_refiner_dim"] == 6
    assert torch.equal(cvivit.decode(ids), before)
    nn.init.normal_(cvivit.pixel_refiner[-1].weight, std=0.3)
    assert not torch.allclose(cvivit.decode(ids), before, atol=1e-3)  # once trained, it does change them
    rebuilt = CViViT(**cvivit.config)
    rebuilt.load_state_dict(cvivit.state_dict())  # the config says how to rebuild it, refiner included
    assert torch.equal(rebuilt.eval().decode(ids), cvivit.decode(ids))


def test_the_pixel_refiner_sees_across_patch_borders():
    """The per-pixel head draws each pixel from its own features; the refiner's 3x3 convolutions mix neighbours,
    so a change to one patch's features reaches the pixels just outside it."""
    cvivit = small_cvivit(pixel_mlp_dim=8)
    features = torch.randn(1, 8, 1, 32, 32)  # what the decoder hands the head: (b, features, frames, H, W)
    changed = features.clone()
    changed[..., 8:16, 8:16] += 1.0  # one patch
    outside = (..., slice(16, 18), slice(8, 16))  # the two rows below it
    assert torch.equal(cvivit._pixel_head(features)[outside], cvivit._pixel_head(changed)[outside])
    with_trained_refiner(cvivit)
    assert not torch.allclose(cvivit._pixel_head(features)[outside], cvivit._pixel_head(changed)[outside])


def test_an_image_is_a_one_frame_video_and_frames_may_be_rectangular():
    cvivit = small_cvivit().eval()
    image = torch.rand(1, 3, 1, 24, 40)
    ids = cvivit.encode(image)
    assert ids.shape == (1, 1, 3, 5)
    assert cvivit.decode(ids).shape == (1, 3, 1, 24, 40)
    assert cvivit(torch.rand(1, 3, 5, 16, 48)).shape == (1, 3, 5, 16, 48)


def test_reference_spellings():
    """The reference implementation's flags, written exactly as its users write them, are thin shims over
    `encode`, `reconstruct`, `loss` and `decode`."""
    cvivit = small_cvivit().eval()
    video = torch.rand(1, 3, 5, 32, 32)
    ids = cvivit(video, return_only_codebook_ids=True)
    assert torch.equal(ids, cvivit.encode(video))
    assert torch.equal(cvivit.decode_from_codebook_indices(ids), cvivit.decode(ids))
    loss, parts = cvivit.loss(video)
    assert torch.equal(cvivit(video, return_loss=True), loss)
    shim_loss, shim_parts = cvivit(video, return_loss_breakdown=True)
    assert torch.equal(shim_loss, loss) and shim_parts == parts
    recon = cvivit.reconstruct(video)
    assert torch.equal(cvivit(video), recon)
    assert torch.allclose(recon, cvivit.decode(ids), atol=1e-5)  # the same tokens, decoded with gradients
    shim_loss, shim_recon = cvivit(video, return_recons=True, return_loss=True)
    assert torch.equal(shim_loss, loss) and torch.equal(shim_recon, recon)
    shim_loss, shim_parts, shim_recon = cvivit(video, return_loss_breakdown=True, return_recons=True)
    assert torch.equal(shim_loss, loss) and shim_parts == parts and torch.equal(shim_recon, recon)
    assert torch.equal(cvivit(video, return_recons=True), recon)


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=lambda q: q["quantizer"])
def test_loss_reports_codebook_usage_and_trains(quantizer):
    cvivit = small_cvivit(**quantizer)
    video = torch.rand(2, 3, 5, 32, 32)
    loss, parts = cvivit(video, return_loss_breakdown=True)
    assert 0 < parts.codebook_usage <= 1
    assert 1 <= parts.perplexity <= 64
    assert torch.isclose(loss, parts.reconstruction + parts.quantizer)
    loss.backward()
    assert cvivit.to_tokens_rest[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("pixel_mlp_dim", [None, 8])
def test_training_reduces_reconstruction_error(pixel_mlp_dim):
    cvivit = small_cvivit(pixel_mlp_dim=pixel_mlp_dim)
    video = torch.rand(2, 3, 5, 32, 32)
    opt = torch.optim.Adam(cvivit.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = cvivit(video, return_loss=True)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_configs_saved_with_the_removed_discriminator_still_load():
    """Configs written before the untrained adversarial / perceptual path was removed carry its keys; while the
    discriminator was off they did nothing, so they are dropped. One that turned it on is refused."""
    config = {
        **small_cvivit().config,
        "use_discriminator": False,
        "discr_dim": 64,
        "adversarial_loss_weight": 0.1,
        "perceptual_loss_weight": 0.1,
    }
    cvivit = CViViT.from_config(config)
    assert not any("discr" in key for key in cvivit.state_dict())
    assert "use_discriminator" not in cvivit.config
    with pytest.raises(ValueError, match="use_discriminator: true.*no discriminator trainer"):
        CViViT.from_config({**config, "use_discriminator": True})


def test_the_bundled_tokenizer_loads_every_tensor_of_its_file():
    from pathlib import Path

    from safetensors import safe_open

    from phenaki import Phenaki

    folder = Path(__file__).resolve().parents[1] / "weights"
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        keys = f.keys()
    saved = {k.removeprefix("cvivit.") for k in keys if k.startswith("cvivit.")}
    assert saved and not any("discr" in k for k in saved)
    model = Phenaki.from_pretrained(folder)
    assert set(model.cvivit.state_dict()) == saved
    video = torch.rand(1, 3, 5, 64, 64)
    assert torch.allclose(model.cvivit(video), model.cvivit.decode(model.cvivit.encode(video)), atol=1e-5)


@pytest.mark.parametrize("tp", [2, 3])
def test_frame_and_latent_frame_counts(tp):
    """The one place that knows how frames map to latent frames: frame 0 alone, then tubelets of tp frames."""
    cvivit = small_cvivit(temporal_patch_size=tp)
    assert first_frames(4, tp) == [0, 1, 1 + tp, 1 + 2 * tp]
    for latent in range(1, 6):
        frames = cvivit.num_frames(latent)
        assert cvivit.latent_frames(frames) == cvivit.latent_frames_covering(frames) == latent
        assert cvivit.usable_frames(frames) == frames
        assert first_frames(latent, tp)[-1] == (0 if latent == 1 else frames - tp)
        for extra in range(1, tp):  # frames that end part-way through a tubelet
            assert cvivit.latent_frames_covering(frames + extra) == latent + 1
            assert cvivit.usable_frames(frames + extra) == frames
    assert [cvivit.latent_frames_covering(f + 1) - 1 for f in range(7)] == [0] + [1 + k // tp for k in range(6)]


@pytest.mark.parametrize(
    "frames, size, match", [(4, (32, 32), "1 \\+ k \\* 2 frames"), (5, (30, 32), "not divisible by patch_size 8")]
)
def test_bad_videos_get_clear_errors(frames, size, match):
    with pytest.raises(ValueError, match=match):
        small_cvivit().encode(torch.rand(1, 3, frames, *size))


def test_bad_inputs_get_clear_errors():
    cvivit = small_cvivit()
    with pytest.raises(ValueError, match="shape \\(batch, 3, frames, height, width\\)"):
        cvivit.encode(torch.rand(3, 5, 32, 32))
    with pytest.raises(ValueError, match="token ids must be integers in \\[0, 64\\)"):
        cvivit.decode(torch.full((1, 2, 4, 4), 64))
    with pytest.raises(ValueError, match="power-of-two"):
        small_cvivit(quantizer="lfq", codebook_size=100, fsq_levels=None)
    with pytest.raises(ValueError, match="product is codebook_size"):
        small_cvivit(quantizer="fsq", codebook_size=100, fsq_levels=[4, 4, 4])
    with pytest.raises(ValueError, match="quantizer must be one of"):
        small_cvivit(quantizer="kmeans")
    with pytest.raises(ValueError, match="pixel_mlp_dim must be a positive int"):
        small_cvivit(pixel_mlp_dim=0)
    with pytest.raises(ValueError, match="pixel_refiner_dim must be a positive int"):
        small_cvivit(pixel_mlp_dim=8, pixel_refiner_dim=0)
    with pytest.raises(ValueError, match="needs the per-pixel head"):
        small_cvivit(pixel_refiner_dim=8)
    with pytest.raises(ValueError, match="already has a pixel refiner \\(width 8\\)"):
        small_cvivit(pixel_mlp_dim=8, pixel_refiner_dim=8).add_pixel_refiner(4)
