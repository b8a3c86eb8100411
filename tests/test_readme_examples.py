"""The user's own examples from the issue, run verbatim."""


def test_cvivit_example():
    import torch

    from phenaki import CViViT

    cvivit = CViViT(
        dim = 512,
        codebook_size = 5000,
        patch_size = 32,
        temporal_patch_size = 2,
        spatial_depth = 4,
        temporal_depth = 4,
        dim_head = 64,
        heads = 8
    )

    video = torch.randn(1, 3, 17, 256, 256) # (batch, channels, frames + 1 leading frame, image height, image width)

    loss = cvivit(video, return_loss = True)
    loss.backward()

    assert loss.ndim == 0 and torch.isfinite(loss)
    assert cvivit.to_tokens_first[0].weight.grad is not None


def test_maskgit_example():
    import torch

    from phenaki import MaskGit

    model = MaskGit(
        num_tokens = 5000,
        max_seq_len = 1024,
        dim = 512,
        depth = 6,
    )

    x = torch.randint(0, 5000, (1, 1024))
    logits = model(x)   # shape (1, 1024, 5000)

    assert logits.shape == (1, 1024, 5000)
    assert torch.isfinite(logits).all()


def test_exports():
    import phenaki

    for name in ("CViViT", "MaskGit", "TokenCritic", "Phenaki", "make_video"):
        assert hasattr(phenaki, name), name
