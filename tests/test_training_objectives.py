"""MaskGit and Token Critic: the model, and the training objectives the reference implementation gets wrong."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_phenaki

from phenaki import MaskGit, TokenCritic
from phenaki.models.maskgit import SelfCritic
from phenaki.objectives import critic_loss, drop_condition, maskgit_loss, random_mask


def small_maskgit(**overrides) -> MaskGit:
    torch.manual_seed(0)
    kwargs = dict(num_tokens=50, max_seq_len=64, dim=32, depth=2, heads=2, dim_head=16, dim_context=24)
    kwargs.update(overrides)
    return MaskGit(**kwargs)


def test_maskgit_takes_heads_dim_head_and_a_text_context():
    model = small_maskgit(heads=4, dim_head=8).eval()
    assert model.transformer.layers[0][0].heads == 4
    x = torch.randint(0, 51, (2, 40))
    context, mask = torch.randn(2, 7, 24), torch.ones(2, 7, dtype=torch.bool)
    conditioned = model(x, context=context, context_mask=mask)
    assert conditioned.shape == (2, 40, 50)
    assert not torch.allclose(conditioned, model(x))  # without context: unconditional
    mask[:, 3:] = False  # masked text tokens are ignored
    changed = context.clone()
    changed[:, 3:] = torch.randn(2, 4, 24)
    assert torch.allclose(
        model(x, context=context, context_mask=mask), model(x, context=changed, context_mask=mask), atol=1e-5
    )


def test_logits_at_matches_the_full_forward():
    model = small_maskgit().eval()
    x = torch.randint(0, 51, (2, 30))
    context, mask = torch.randn(2, 5, 24), torch.ones(2, 5, dtype=torch.bool)
    positions = torch.tensor([[0, 5, 29], [3, 4, 7]])
    full = model(x, context, mask)
    assert torch.allclose(
        model.logits_at(x, positions, context, mask), full.gather(1, positions[..., None].expand(-1, -1, 50)), atol=1e-5
    )


def test_bad_inputs_get_clear_errors():
    model = small_maskgit()
    with pytest.raises(ValueError, match="longer than max_seq_len=64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids must be in \\[0, 50\\)"):
        model(torch.full((1, 4), 51))
    with pytest.raises(ValueError, match="token ids must be in"):
        model(torch.full((1, 4), -1))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.rand(1, 4))
    with pytest.raises(ValueError, match="context must be \\(batch=1, text_len, 24\\)"):
        model(torch.zeros(1, 4, dtype=torch.long), context=torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="takes no text context"):
        small_maskgit(unconditional=True)(torch.zeros(1, 4, dtype=torch.long), context=torch.randn(1, 3, 24))


def test_mask_ratio_is_cosine_and_only_valid_tokens_are_masked():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (4000, 32))
    valid = torch.ones_like(ids, dtype=torch.bool)
    valid[:, 28:] = False  # padding
    masked = random_mask(ids, frame_tokens=4, continuation_prob=0.0, valid=valid, generator=generator)
    assert not masked[:, 28:].any()
    assert masked.sum(1).min() >= 1
    count = masked.sum(1).float()
    # count = ceil(28 * cos(pi/2 * U)): mean about 28 * 2/pi + 1/2, and P(count <= 13) = P(U >= acos(13/28) * 2/pi)
    assert abs(count.mean().item() - (28 * 2 / math.pi + 0.5)) < 0.3
    assert abs((count <= 13).float().mean().item() - (1 - math.acos(13 / 28) * 2 / math.pi)) < 0.03


def test_continuation_keeps_a_prefix_of_whole_frames_unmasked():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 50, (500, 36))  # 9 latent frames of 4 tokens
    masked = random_mask(ids, frame_tokens=4, continuation_prob=1.0, generator=generator)
    first_masked = masked.float().argmax(1)
    assert (first_masked >= 4).all()  # at least one whole frame primed in every row
    unmasked_prefix = torch.stack([(~row).long().cumprod(0).sum() for row in masked])
    assert len(set((unmasked_prefix // 4).tolist())) > 3  # various prefix lengths
    fixed = random_mask(
        ids[:3], frame_tokens=4, continuation_prob=0.0, prefix=torch.tensor([3, -1, 0]), generator=generator
    )
    assert not fixed[0, :12].any()


def test_maskgit_loss_is_cross_entropy_on_masked_tokens_only():
    model = small_maskgit().eval()
    ids = torch.randint(0, 50, (3, 20))
    masked = torch.zeros_like(ids, dtype=torch.bool)
    masked[:, ::3] = True
    loss, masked_logits = maskgit_loss(model, ids, masked, None, None)
    logits = model(ids.masked_fill(masked, model.mask_id))
    assert torch.isclose(loss, F.cross_entropy(logits[masked], ids[masked]), atol=1e-5)
    assert torch.allclose(masked_logits, logits[masked], atol=1e-5)
    assert not torch.isclose(loss, F.cross_entropy(logits.flatten(0, 1), ids.flatten()), atol=1e-3)


def test_condition_dropout_is_applied_in_training():
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(10_000, 6, dtype=torch.bool)
    dropped = ~drop_condition(mask, 0.1, generator).any(1)
    assert abs(dropped.float().mean().item() - 0.1) < 0.01
    assert not (~drop_condition(mask, 0.0, generator).any(1)).any()

    # with dropout 1, the text can't matter: two prompts give the same loss
    model = tiny_phenaki(critic=False, cond_drop_prob=1.0).train()
    video = torch.rand(2, 3, 17, 32, 32)
    ids = model.cvivit.encode(video)
    losses = [
        model(video_codebook_ids=ids, texts=[t, t], generator=torch.Generator().manual_seed(3)).item()
        for t in ("a red circle moves left", "a blue square stays still")
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    model = tiny_phenaki(critic=False, cond_drop_prob=0.0).train()
    losses = [
        model(video_codebook_ids=ids, texts=[t, t], generator=torch.Generator().manual_seed(3)).item()
        for t in ("a red circle moves left", "a blue square stays still")
    ]
    assert losses[0] != pytest.approx(losses[1], abs=1e-6)


class Recording(torch.nn.Module):
    """Calls the real critic and keeps its scores, so the test can look at the loss's gradient."""

    def __init__(self, critic):
        super().__init__()
        self.critic = critic

    def forward(self, *args, **kwargs):
        self.scores = self.critic(*args, **kwargs)
        self.scores.retain_grad()
        return self.scores


@pytest.mark.parametrize("always", [7, 9])
def test_critic_labels_say_whether_a_masked_token_was_replaced(always):
    logits = torch.full((14, 50), -100.0)
    logits[:, 7] = 100.0  # MaskGit's predictions at the masked positions: always token 7
    critic = Recording(TokenCritic(num_tokens=50, max_seq_len=64, dim=32, depth=1, heads=2, dim_head=16))
    ids = torch.full((2, 20), always)
    masked = torch.zeros_like(ids, dtype=torch.bool)
    masked[:, 5:12] = True
    loss = critic_loss(critic, ids, masked, logits, None, None)
    replaced = float(always != 7)
    expected = F.binary_cross_entropy_with_logits(critic.scores[masked], torch.full((14,), replaced))
    assert torch.isclose(loss, expected)
    loss.backward()
    assert (critic.scores.grad[~masked] == 0).all()  # unmasked positions are not in the loss
    assert (critic.scores.grad[masked] != 0).all()


@pytest.mark.parametrize("self_critic", [False, True])
def test_critic_is_optimised_by_the_training_loss(self_critic):
    model = tiny_phenaki(critic=not self_critic).train()
    if self_critic:
        model.critic = SelfCritic(model.maskgit)
    head = model.critic.to_score if self_critic else model.critic.to_out
    loss, parts = model(torch.rand(2, 3, 17, 32, 32), texts=["a", "b"], return_loss_breakdown=True)
    loss.backward()
    assert parts["critic"] > 0
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
