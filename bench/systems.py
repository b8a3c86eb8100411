"""The two systems under test, built with the same hyperparameters and fed the same inputs: this project and
the reference implementation (phenaki-pytorch 0.5.0, run offline: see `Reference`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PROMPT = "a red circle moves right"


@dataclass
class Config:
    name: str
    frame: int
    patch: int
    temporal_patch: int
    cvivit_dim: int
    spatial_depth: int
    temporal_depth: int
    cvivit_heads: int
    cvivit_dim_head: int
    codebook: int
    maskgit_dim: int
    maskgit_depth: int
    maskgit_heads: int
    maskgit_dim_head: int
    max_seq_len: int
    text_dim: int
    text_len: int = 16
    frames: int = 17
    steps: int = 18  # the reference's default (and only) number of steps
    guidance: float = 3.0
    train_batch: int = 2
    rounds: int = 5

    @property
    def grid(self) -> int:
        return self.frame // self.patch

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // self.temporal_patch

    @property
    def tokens(self) -> int:
        return self.latent_frames * self.grid**2


CONFIGS = {
    # the default model's size (the `shapes` preset), with a power-of-two codebook for the reference's LFQ
    "small": Config(
        "small",
        frame=64,
        patch=8,
        temporal_patch=2,
        cvivit_dim=128,
        spatial_depth=2,
        temporal_depth=2,
        cvivit_heads=4,
        cvivit_dim_head=32,
        codebook=1024,
        maskgit_dim=192,
        maskgit_depth=4,
        maskgit_heads=4,
        maskgit_dim_head=48,
        max_seq_len=9 * 64,
        text_dim=128,
        rounds=5,
    ),
    # the user's example (README): CViViT 512 / patch 32 / 4+4 layers on 256x256, MaskGit 512 x 6
    "readme": Config(
        "readme",
        frame=256,
        patch=32,
        temporal_patch=2,
        cvivit_dim=512,
        spatial_depth=4,
        temporal_depth=4,
        cvivit_heads=8,
        cvivit_dim_head=64,
        codebook=4096,
        maskgit_dim=512,
        maskgit_depth=6,
        maskgit_heads=8,
        maskgit_dim_head=64,
        max_seq_len=1024,
        text_dim=512,
        rounds=5,
    ),  # 3 were too few: the sampling ratio read 2.5x and 1.9x in two runs of one code
}
TASKS = ("sample", "encode_decode", "train_maskgit", "train_cvivit")
# The rows of each task: (row, system, method). Sampling runs in four ways: this project at the library's default
# precision (bf16 autocast on a CPU with bf16 units: `phenaki.precision.sampling_precision`) and forced to fp32, the
# reference as shipped (fp32) and under CPU bf16 autocast; its speed-up is against the reference's faster row.
# The other tasks run in fp32 on both sides (the library's encoder and training are fp32), one row each.
ROWS = {
    task: (("ours", "ours", task), ("reference", "reference", task))
    for task in ("encode_decode", "train_maskgit", "train_cvivit")
} | {
    "sample": (
        ("ours", "ours", "sample"),
        ("ours_fp32", "ours", "sample_fp32"),
        ("reference", "reference", "sample"),
        ("reference_bf16", "reference", "sample_bf16"),
    )
}
ROW_NAMES = {
    "ours": "this project",
    "ours_fp32": "this project, fp32",
    "reference": "phenaki-pytorch 0.5.0",
    "reference_bf16": "phenaki-pytorch 0.5.0, bf16 autocast",
}
TASK_TITLES = {
    "sample": "sample 17 frames",
    "encode_decode": "C-ViViT encode+decode",
    "train_maskgit": "MaskGit train step",
    "train_cvivit": "C-ViViT train step",
}


class Inputs:
    """The same random inputs for both systems."""

    def __init__(self, cfg: Config, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)
        self.video = torch.rand(1, 3, cfg.frames, cfg.frame, cfg.frame, generator=g)
        self.ids = torch.randint(0, cfg.codebook, (cfg.train_batch, cfg.latent_frames, cfg.grid, cfg.grid), generator=g)


# ---- the two systems ---------------------------------------------------------------------------------------------


def train_step(module: torch.nn.Module, optimizer, loss_fn) -> torch.Tensor:
    """One optimiser step of `module` in training mode (the same steps for both systems); back in eval mode after."""
    module.train()
    loss = loss_fn()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    module.eval()
    return loss.detach()


class Ours:
    name = "this project"

    def __init__(self, cfg: Config, inputs: Inputs, seed: int = 0):
        from phenaki import CViViT, MaskGit, Phenaki

        torch.manual_seed(seed)
        self.cfg, self.inputs = cfg, inputs
        cvivit = CViViT(
            dim=cfg.cvivit_dim,
            codebook_size=cfg.codebook,
            patch_size=cfg.patch,
            temporal_patch_size=cfg.temporal_patch,
            spatial_depth=cfg.spatial_depth,
            temporal_depth=cfg.temporal_depth,
            dim_head=cfg.cvivit_dim_head,
            heads=cfg.cvivit_heads,
            quantizer="lfq",
        )
        maskgit = MaskGit(
            num_tokens=cfg.codebook,
            max_seq_len=cfg.max_seq_len,
            dim=cfg.maskgit_dim,
            depth=cfg.maskgit_depth,
            heads=cfg.maskgit_heads,
            dim_head=cfg.maskgit_dim_head,
            dim_context=cfg.text_dim,
        )
        self.model = Phenaki(cvivit=cvivit, maskgit=maskgit, frame_size=cfg.frame).eval()
        # the same precomputed text embeddings as the reference: no text encoder runs on either side
        text, mask = inputs.text, torch.ones(inputs.text.shape[:2], dtype=torch.bool)
        self.model.encode_text = lambda texts: (text.expand(len(texts), -1, -1), mask.expand(len(texts), -1))
        self.opt_maskgit = torch.optim.Adam(maskgit.parameters(), lr=1e-4)
        self.opt_cvivit = torch.optim.Adam(cvivit.parameters(), lr=1e-4)

    def sample(self):
        # no refinement passes: the reference has none, and the work compared must be the same
        return self.model.sample(
            texts=PROMPT,
            num_frames=self.cfg.frames,
            steps=self.cfg.steps,
            guidance_scale=self.cfg.guidance,
            temperature=1.0,
            refine_passes=0,
            seed=0,
        )

    @property
    def precision(self) -> str:
        """The precision `sample` runs in by default here ("bf16" on a CPU with bf16 units)."""
        from phenaki.precision import sampling_precision

        return sampling_precision(self.model.device)

    def sample_fp32(self):
        from phenaki.precision import precision

        with precision("fp32"):
            return self.sample()

    def encode_decode(self):
        cvivit = self.model.cvivit
        return cvivit.decode(cvivit.encode(self.inputs.video))

    def train_maskgit(self):
        return train_step(
            self.model.maskgit,
            self.opt_maskgit,
            lambda: self.model(video_codebook_ids=self.inputs.ids, texts=[PROMPT] * self.inputs.ids.shape[0]),
        )

    def train_cvivit(self):
        return train_step(
            self.model.cvivit, self.opt_cvivit, lambda: self.model.cvivit(self.inputs.video, return_loss=True)
        )


class Reference:
    name = "phenaki-pytorch 0.5.0"

    def __init__(self, cfg: Config, inputs: Inputs, seed: int = 0):
        import phenaki_pytorch.phenaki_pytorch as reference
        from phenaki_pytorch import CViViT, MaskGit, Phenaki

        torch.manual_seed(seed)
        self.cfg, self.inputs = cfg, inputs
        # Offline: the reference asks the Hub for the T5 config (`get_encoded_dim`) at construction and runs T5 in
        # `sample`; both are replaced by our text width and our precomputed embeddings. VGG16 (ImageNet weights
        # fetched by torchvision) and the discriminator are built only with use_vgg_and_gan=True: they are off, and
        # neither takes part in any timed task.
        reference.get_encoded_dim = lambda name: cfg.text_dim
        self.cvivit = CViViT(
            dim=cfg.cvivit_dim,
            codebook_size=cfg.codebook,
            image_size=cfg.frame,
            patch_size=cfg.patch,
            temporal_patch_size=cfg.temporal_patch,
            spatial_depth=cfg.spatial_depth,
            temporal_depth=cfg.temporal_depth,
            dim_head=cfg.cvivit_dim_head,
            heads=cfg.cvivit_heads,
            use_vgg_and_gan=False,
        )
        maskgit = MaskGit(
            num_tokens=cfg.codebook,
            max_seq_len=cfg.max_seq_len,
            dim=cfg.maskgit_dim,
            depth=cfg.maskgit_depth,
            heads=cfg.maskgit_heads,
            dim_head=cfg.maskgit_dim_head,
            dim_context=cfg.text_dim,
        )
        self.model = Phenaki(
            cvivit=self.cvivit, maskgit=maskgit, steps=cfg.steps, t5_name="offline", text_embed_dim=cfg.text_dim
        )
        text = inputs.text
        self.model.encode_texts = lambda texts, output_device=None: text.expand(len(texts), -1, -1).to(
            output_device or text.device
        )
        self.opt_maskgit = torch.optim.Adam(maskgit.parameters(), lr=1e-4)
        self.opt_cvivit = torch.optim.Adam(self.cvivit.parameters(), lr=1e-4)

    def sample(self):
        return self.model.sample(texts=[PROMPT], num_frames=self.cfg.frames, cond_scale=self.cfg.guidance)

    def sample_bf16(self):
        """The reference's sampling under CPU bf16 autocast (its code unchanged): issue 22's fair comparison on a
        CPU with bf16 units."""
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.sample()

    @torch.no_grad()
    def encode_decode(self):
        return self.model.cvivit(self.inputs.video, return_recons_only=True)  # the sampler's (eval) copy

    def train_maskgit(self):
        batch = self.inputs.ids.shape[0]
        return train_step(
            self.model.maskgit,
            self.opt_maskgit,
            lambda: self.model(video_codebook_ids=self.inputs.ids, text_embeds=self.inputs.text.expand(batch, -1, -1)),
        )

    def train_cvivit(self):
        # reconstruction loss (no VGG, no GAN: as ours)
        return train_step(self.cvivit, self.opt_cvivit, lambda: self.cvivit(self.inputs.video))


SYSTEMS = {"ours": Ours, "reference": Reference}


def row_precision(row: str, task: str, ours_default: str) -> str:
    """The precision a row's matrix multiplies ran in: its "% of ceiling" is against that precision's ceiling."""
    if row == "ours":
        return ours_default if task == "sample" else "fp32"
    return "bf16" if row.endswith("_bf16") else "fp32"


def tokens_of(cfg: Config, task: str) -> int:
    return cfg.tokens * (cfg.train_batch if task == "train_maskgit" else 1)
